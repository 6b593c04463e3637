"""Weights as a dict of numpy arrays under the names of docs/weights.md, and as files."""

import numpy as np
import pytest

import lattice

DEBUG = "configs/debug.ron"


@pytest.fixture()
def sim(root):
    return lattice.Simulation(root / DEBUG, backend="cpu")


def test_weights_round_trip_through_a_dict(sim):
    before = sim.run(steps=1).states
    weights = sim.weights()
    assert weights["local.agg1.weight"].shape == (12, 24)
    assert all(w.dtype == np.float32 for w in weights.values())
    changed = {k: v.copy() for k, v in weights.items()}
    changed["local.proc2.bias"] += 0.25
    sim.load_weights(changed)
    got = sim.weights()
    assert all(np.array_equal(got[k], changed[k]) for k in changed)
    assert not np.array_equal(sim.run(steps=1).states, before), "the new weights are used"
    sim.load_weights(weights)
    assert sim.run(steps=1).states.tobytes() == before.tobytes()


def test_weights_round_trip_through_safetensors(sim, tmp_path):
    path = tmp_path / "w.safetensors"
    weights = sim.weights()
    sim.save_weights(path)
    sim.load_weights({k: np.zeros_like(v) for k, v in weights.items()})
    sim.load_weights(str(path))
    assert all(np.array_equal(sim.weights()[k], v) for k, v in weights.items())


def test_flows_weights_are_named_too(root):
    flows = lattice.Simulation(root / "configs/flows_debug.ron", backend="cpu")
    weights = flows.weights()
    assert len(weights) > 5
    flows.load_weights(weights)


@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda w: w.pop("local.alpha"), ValueError, ["local.alpha", "missing"]),
        (lambda w: w.update(extra=np.zeros(3, np.float32)), ValueError, ["extra", "not part"]),
        (
            lambda w: w.update({"local.agg1.weight": np.zeros((24, 12), np.float32)}),
            ValueError,
            ["local.agg1.weight", "shape"],
        ),
        (
            lambda w: w.update({"local.agg1.weight": np.zeros((12, 24))}),
            TypeError,
            ["float32", "float64"],
        ),
        (
            lambda w: w["local.agg1.bias"].__setitem__(3, np.nan),
            ValueError,
            ["local.agg1.bias", "not finite", "3"],
        ),
        (lambda w: w.update({"local.alpha": [0.1]}), TypeError, ["numpy", "list"]),
    ],
)
def test_bad_weights_are_named(sim, edit, error, words):
    weights = sim.weights()
    edit(weights)
    with pytest.raises(error) as e:
        sim.load_weights(weights)
    for w in words:
        assert w in str(e.value)


def test_a_missing_weights_file_is_a_value_error(sim, tmp_path):
    with pytest.raises(ValueError, match="cannot read weights"):
        sim.load_weights(tmp_path / "nope.safetensors")
