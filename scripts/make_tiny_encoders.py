"""Writes the two tiny encoders the tests run on any machine, once.

tests/data/texts/tiny-bert and tiny-nomic-bert are model folders in the Hugging Face layout
(config.json, tokenizer.json, model.safetensors, sentence-transformers' pooling files) with
random weights: 16-d, 2 layers, a WordPiece vocabulary of letters, digits and common words.
They prove nothing about a model's quality; they let the encoder's batching, padding, errors
and the run-from-texts path be tested without downloading a model. Run again only to change
them:

    pip install numpy safetensors
    python scripts/make_tiny_encoders.py
"""

import json
import pathlib
import string

import numpy as np
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "texts"
DIM, LAYERS, HEADS, INNER, POSITIONS = 16, 2, 2, 32, 64

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an of to and in is it on for with as by at from this that be are was "
    "energy flow flows lattice cell cells plane surface step steps text texts hello world "
    "test batch processing works short long embedding model run"
).split()


def vocabulary() -> dict:
    tokens = SPECIAL + list(string.ascii_lowercase) + list(string.digits)
    tokens += list(string.punctuation) + WORDS
    tokens += ["##" + c for c in string.ascii_lowercase + string.digits]
    seen = []
    for t in tokens:
        if t not in seen:
            seen.append(t)
    return {t: i for i, t in enumerate(seen)}


def tokenizer(vocab: dict) -> dict:
    def special(content, i):
        return {"id": i, "content": content, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}

    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(t, vocab[t]) for t in SPECIAL],
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": True, "strip_accents": None,
                       "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]",
                  "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                  "vocab": vocab},
    }


def normal(rng, *shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def bert_weights(rng, vocab_size: int) -> dict:
    w = {
        "embeddings.word_embeddings.weight": normal(rng, vocab_size, DIM),
        "embeddings.position_embeddings.weight": normal(rng, POSITIONS, DIM),
        "embeddings.token_type_embeddings.weight": normal(rng, 2, DIM),
        "embeddings.LayerNorm.weight": np.ones(DIM, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(DIM, np.float32),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"]:
            w[p + name + ".weight"] = normal(rng, DIM, DIM)
            w[p + name + ".bias"] = normal(rng, DIM)
        w[p + "intermediate.dense.weight"] = normal(rng, INNER, DIM)
        w[p + "intermediate.dense.bias"] = normal(rng, INNER)
        w[p + "output.dense.weight"] = normal(rng, DIM, INNER)
        w[p + "output.dense.bias"] = normal(rng, DIM)
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
            w[p + ln + ".weight"] = np.ones(DIM, np.float32)
            w[p + ln + ".bias"] = np.zeros(DIM, np.float32)
    return w


def nomic_weights(rng, vocab_size: int) -> dict:
    w = {
        "embeddings.word_embeddings.weight": normal(rng, vocab_size, DIM),
        "embeddings.token_type_embeddings.weight": normal(rng, 2, DIM),
        "emb_ln.weight": np.ones(DIM, np.float32),
        "emb_ln.bias": np.zeros(DIM, np.float32),
    }
    for i in range(LAYERS):
        p = f"encoder.layers.{i}."
        w[p + "attn.Wqkv.weight"] = normal(rng, 3 * DIM, DIM)
        w[p + "attn.out_proj.weight"] = normal(rng, DIM, DIM)
        w[p + "mlp.fc11.weight"] = normal(rng, INNER, DIM)
        w[p + "mlp.fc12.weight"] = normal(rng, INNER, DIM)
        w[p + "mlp.fc2.weight"] = normal(rng, DIM, INNER)
        for ln in ["norm1", "norm2"]:
            w[p + ln + ".weight"] = np.ones(DIM, np.float32)
            w[p + ln + ".bias"] = np.zeros(DIM, np.float32)
    return w


def sentence_transformers_files(folder: pathlib.Path) -> None:
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2) + "\n")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": DIM, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}, indent=2) + "\n")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 24, "do_lower_case": False}, indent=2) + "\n")


def write(name: str, config: dict, weights: dict, vocab: dict) -> None:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer(vocab), indent=1) + "\n")
    save_file(weights, str(folder / "model.safetensors"))
    sentence_transformers_files(folder)
    print(f"wrote {folder}")


def main() -> None:
    vocab = vocabulary()
    rng = np.random.default_rng(2026)
    write("tiny-bert", {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(vocab),
        "hidden_size": DIM, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INNER, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "max_position_embeddings": POSITIONS, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute"}, bert_weights(rng, len(vocab)), vocab)
    write("tiny-nomic-bert", {
        "architectures": ["NomicBertModel"], "model_type": "nomic_bert",
        "vocab_size": len(vocab), "n_embd": DIM, "n_head": HEADS, "n_layer": LAYERS,
        "n_inner": INNER, "n_positions": POSITIONS, "type_vocab_size": 2,
        "layer_norm_epsilon": 1e-12, "rotary_emb_fraction": 1.0, "rotary_emb_base": 1000.0,
        "rotary_emb_interleaved": False, "qkv_proj_bias": False, "mlp_fc1_bias": False,
        "mlp_fc2_bias": False, "activation_function": "swiglu", "prenorm": False},
        nomic_weights(rng, len(vocab)), vocab)


if __name__ == "__main__":
    main()
