"""Texts in from Python: lattice.Encoder gives the same unit vectors as `lattice embed`, and
sim.run(texts=...) equals a run on those embeddings. The tiny random encoder of
tests/data/texts (16-d) runs everywhere; all-MiniLM-L6-v2 where LATTICE_TEST_ENCODER_DIR names
it."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import lattice

TEXTS = ["hello world", "energy flows to the surface", "", "Über ∑ 数据 🚀"]


def flows_config(dim, items=len(TEXTS), extra=""):
    return (
        f"(seed: 3, batch: (items: {items}), simulation: Flows((dims: (6, 5, 8), "
        f"embedding_dim: {dim}, carrier: (hidden: 8, layers: 1), neuron: (hidden: 8, output: 8), "
        f"displacement_scale: 40.0, noise: 0.05{extra})))"
    )


@pytest.fixture(scope="session")
def tiny(root):
    return root / "tests/data/texts/tiny-bert"


def test_encoder_gives_unit_rows_and_matches_the_command_line(tiny, lattice_bin, tmp_path):
    enc = lattice.Encoder(tiny)
    assert (enc.dim, enc.max_tokens, enc.architecture) == (16, 24, "bert")
    got = enc.encode(TEXTS)
    assert got.shape == (4, 16) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1.0, atol=1e-6)
    one_by_one = np.stack([enc.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    report = enc.last_report
    assert report["texts"] == 1 and len(report["batches"]) == 1
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "e.npy"
    subprocess.run(
        [str(lattice_bin), "-q", "embed", "--encoder", str(tiny), str(tmp_path / "t.txt"),
         "--out", str(out)],
        check=True,
    )
    np.testing.assert_array_equal(np.load(out), enc.encode(TEXTS))
    assert json.loads(out.with_suffix(".json").read_text())["texts"] == 4


def test_run_from_texts_equals_a_run_from_their_embeddings(tiny):
    sim = lattice.Simulation(flows_config(16), backend="cpu")
    enc = lattice.Encoder(tiny)
    from_texts = sim.run(texts=TEXTS, encoder=enc)
    by_path = sim.run(texts=TEXTS, encoder=str(tiny))
    from_vectors = sim.run(embeddings=enc.encode(TEXTS))
    for r in (by_path, from_vectors):
        np.testing.assert_array_equal(from_texts.surface, r.surface)
    assert list(from_texts.ids) == [0, 1, 2, 3]


def test_the_config_texts_run_when_no_input_is_given(tiny, tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    field = f', texts: Some((file: "t.txt", encoder: "{tiny}"))'
    path = tmp_path / "flows.ron"
    path.write_text(flows_config(16, extra=field))
    sim = lattice.Simulation(path, backend="cpu")
    plain = lattice.Simulation(flows_config(16), backend="cpu")
    np.testing.assert_array_equal(
        sim.run().surface, plain.run(texts=TEXTS, encoder=str(tiny)).surface
    )


def test_bad_texts_inputs_raise_value_errors(tiny, tmp_path):
    sim = lattice.Simulation(flows_config(32), backend="cpu")
    with pytest.raises(ValueError, match="16-d embeddings.*embedding_dim = 32"):
        sim.run(texts=TEXTS, encoder=str(tiny))
    ok = lattice.Simulation(flows_config(16), backend="cpu")
    with pytest.raises(ValueError, match="needs an encoder"):
        ok.run(texts=TEXTS)
    with pytest.raises(ValueError, match="not both"):
        ok.run(texts=TEXTS, embeddings=np.zeros((4, 16), np.float32), encoder=str(tiny))
    with pytest.raises(ValueError, match="is not a folder"):
        lattice.Encoder(tmp_path / "nothing")
    with pytest.raises(TypeError, match="Encoder or a model folder"):
        ok.run(texts=TEXTS, encoder=3)
    moe = lattice.Simulation("(simulation: Moe((lattice: (dims: (4, 4, 4)))))", backend="cpu")
    with pytest.raises(ValueError, match="texts go into Flows runs"):
        moe.run(texts=TEXTS, encoder=str(tiny))


def test_all_minilm_l6_v2_matches_the_reference(root):
    if not os.environ.get("LATTICE_TEST_ENCODER_DIR"):
        if os.environ.get("LATTICE_REQUIRE_ENCODER"):
            pytest.fail("LATTICE_REQUIRE_ENCODER is set but LATTICE_TEST_ENCODER_DIR is not")
        pytest.skip("LATTICE_TEST_ENCODER_DIR names no all-MiniLM-L6-v2 folder")
    lines = (root / "tests/data/texts/sentences.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    want = np.load(root / "tests/data/texts/all-MiniLM-L6-v2.reference.npy")
    got = lattice.Encoder(pathlib.Path(os.environ["LATTICE_TEST_ENCODER_DIR"])).encode(texts)
    cos = np.sum(got.astype(np.float64) * want, axis=1)
    assert cos.min() >= 0.9999 and np.abs(got - want).max() <= 1e-4


def test_flows_results_carry_path_lengths_and_z_movement():
    sim = lattice.Simulation(flows_config(16), backend="cpu")
    r = sim.run()
    for c in r.counts:
        done = c["completed_front"] + c["completed_back"]
        assert c["completed_per_created"] == pytest.approx(done / c["created"])
        if done:
            assert c["mean_path_steps"] == pytest.approx(c["completed_path_steps"] / done)
    for s in r.steps:
        assert s["z_move_variance"] is not None and s["z_move_variance"] >= 0.0
