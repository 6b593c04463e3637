"""Bad arrays and bad configs raise the named exceptions with the engine's messages."""

import numpy as np
import pytest

import lattice

DEBUG = "configs/debug.ron"
FLOWS = "configs/flows_debug.ron"


@pytest.fixture(scope="module")
def sim(root):
    return lattice.Simulation(root / DEBUG, backend="cpu")


def good(sim, b=1):
    return np.zeros((b, *sim.input_shape), np.float32)


def test_wrong_dtype_is_a_type_error(sim):
    with pytest.raises(TypeError, match="float32.*astype"):
        sim.run(good(sim).astype(np.float64))


def test_not_an_array_is_a_type_error(sim):
    with pytest.raises(TypeError, match="numpy float32 array"):
        sim.run([[0.0]])


@pytest.mark.parametrize("shape", [(3375, 24), (1, 3375, 23), (1, 3374, 24), (0, 3375, 24)])
def test_wrong_shape_is_a_value_error(sim, shape):
    with pytest.raises(ValueError, match=r"shape \[B, 3375, 24\]"):
        sim.run(np.zeros(shape, np.float32))


def test_non_contiguous_is_a_value_error(sim):
    strided = np.zeros((2, 3375, 48), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        sim.run(strided)


def test_non_finite_input_names_item_and_cell(sim):
    states = good(sim, 2)
    states[1, 17, 3] = np.inf
    with pytest.raises(ValueError, match=r"not finite at item 1, cell 17"):
        sim.run(states)


def test_ids_must_match_and_be_distinct(sim):
    with pytest.raises(ValueError, match="ids has 1 entries but states has 2"):
        sim.run(good(sim, 2), ids=[0])
    with pytest.raises(ValueError, match="submitted twice"):
        sim.run(ids=[4, 4])


def test_inputs_of_the_other_kind_are_refused(root, sim):
    with pytest.raises(ValueError, match="takes states="):
        sim.run(embeddings=np.zeros((1, 768), np.float32))
    flows = lattice.Simulation(root / FLOWS, backend="cpu")
    with pytest.raises(ValueError, match="takes embeddings="):
        flows.run(np.zeros((1, 768), np.float32))
    with pytest.raises(ValueError, match=r"shape \[B, 768\]"):
        flows.run(embeddings=np.zeros((2, 767), np.float32))


def test_a_ron_error_names_line_column_and_field(root):
    text = (root / DEBUG).read_text().replace("state_size: 24", "state_sise: 24")
    with pytest.raises(ValueError) as e:
        lattice.Simulation(text, backend="cpu")
    message = str(e.value)
    assert "<config string>:" in message and "state_sise" in message and "fix:" in message


def test_a_semantic_error_names_the_field(root):
    text = (root / DEBUG).read_text().replace("radius_ratio: 0.3", "radius_ratio: -1.0")
    with pytest.raises(ValueError, match="radius_ratio"):
        lattice.Simulation(text, backend="cpu")


def test_a_dict_error_names_the_field_path():
    bad = {"seed": 1, "batch": {"items": "two"}, "simulation": {}}
    with pytest.raises(ValueError, match=r"batch\.items"):
        lattice.Simulation(bad, backend="cpu")


def test_missing_file_wrong_type_and_backend(tmp_path, root):
    with pytest.raises(ValueError, match="cannot read config"):
        lattice.Simulation(str(tmp_path / "missing.ron"), backend="cpu")
    with pytest.raises(TypeError, match="path, a RON string or a dict"):
        lattice.Simulation(42)
    with pytest.raises(ValueError, match="backend must be"):
        lattice.Simulation(root / DEBUG, backend="tpu")
