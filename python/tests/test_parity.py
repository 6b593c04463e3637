"""Runs from Python equal `lattice run` byte for byte on the CPU (same config, seed, inputs)."""

import numpy as np
import pytest

import lattice

DEBUG = "configs/debug.ron"
FLOWS = "configs/flows_debug.ron"


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_moe_seeded_run_equals_the_cli(root, run_cli):
    out = run_cli(DEBUG)
    result = lattice.Simulation(root / DEBUG, backend="cpu").run()
    assert result.ids == [0, 1]
    assert result.ok == [True, True] and result.errors == [None, None]
    assert same_bytes(result.states, np.load(out / "states.npy"))


def test_moe_given_states_equal_the_cli(root, run_cli, tmp_path):
    sim = lattice.Simulation(str(root / DEBUG), backend="cpu")
    n, s = sim.input_shape
    states = np.random.default_rng(3).uniform(-0.5, 0.5, (2, n, s)).astype(np.float32)
    np.save(tmp_path / "init.npy", states)
    out = run_cli(DEBUG, "--init-states", str(tmp_path / "init.npy"), "--steps", "2")
    result = sim.run(states, steps=2)
    assert same_bytes(result.states, np.load(out / "states.npy"))
    assert sim.steps == 5, "a run's steps= does not change the simulation"


def test_flows_run_equals_the_cli(root, run_cli):
    out = run_cli(FLOWS)
    result = lattice.Simulation(root / FLOWS, backend="cpu").run()
    assert result.ids == list(range(8))
    assert same_bytes(result.surface, np.load(out / "surface.npy"))
    assert same_bytes(result.merged, np.load(out / "surface_merged.npy"))
    assert result.surface.shape == (8, 2, 20, 20)
    assert result.landed.dtype == np.uint32 and result.landed.shape == (8, 2, 20, 20)
    assert np.all(result.surface[result.landed == 0] == 0), "empty cells hold 0"
    landed = [int(result.landed[k].sum()) for k in range(8)]
    assert landed == [c["completed_front"] + c["completed_back"] for c in result.counts]
    assert any(c["completed_front"] + c["completed_back"] > 0 for c in result.counts)
    assert [s["step"] for s in result.steps] == list(range(len(result.steps)))


def test_flows_given_embeddings_equal_the_cli(root, run_cli, tmp_path):
    sim = lattice.Simulation(root / FLOWS, backend="cpu")
    emb = np.random.default_rng(5).normal(size=(8, sim.input_shape[0])).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    out = run_cli(FLOWS, "--embeddings", str(tmp_path / "emb.npy"))
    assert same_bytes(sim.run(embeddings=emb).surface, np.load(out / "surface.npy"))


def test_config_path_ron_text_and_dict_agree(root):
    text = (root / DEBUG).read_text()
    as_dict = {
        "seed": 42,
        "batch": {"items": 2, "max_batch_size": "Auto"},
        "simulation": {
            "Moe": {
                "lattice": {"dims": (15, 15, 15), "boundary": "Bounded", "radius_ratio": 0.3},
                "steps": 5,
                "state_size": 24,
                "local": {"h1": 12, "h2": 12, "processor_hidden": 12},
                "functional": {"hidden_dim": 12, "message_dim": 8},
                "distant": {"ode_hidden": 48},
                "gating": {"hidden_dim": 24},
                "combine": "Residual",
                "ode_steps": 3,
                "init_scale": 0.1,
            }
        },
    }
    runs = [
        lattice.Simulation(c, backend="cpu").run(steps=1).states
        for c in (str(root / DEBUG), text, as_dict)
    ]
    assert same_bytes(runs[0], runs[1]) and same_bytes(runs[0], runs[2])


def test_an_item_depends_only_on_its_id(root):
    sim = lattice.Simulation(root / DEBUG, backend="cpu")
    alone = sim.run(ids=[7], steps=2).states[0]
    together = sim.run(ids=[3, 7, 9], steps=2).states[1]
    assert same_bytes(alone, together)


@pytest.mark.parametrize("config", [DEBUG, FLOWS])
def test_the_simulation_describes_itself(root, config):
    sim = lattice.Simulation(root / config, backend="cpu")
    assert sim.kind in ("moe", "flows") and sim.seed == 42
    assert "Simulation(" in repr(sim) and sim.config_ron().lstrip().startswith("(")
    again = lattice.Simulation(sim.config_ron(), backend="cpu")
    assert again.dims == sim.dims and again.steps == sim.steps


NON_SQUARE = """(seed: 11, batch: (items: 3), simulation: Flows((dims: (7, 5, 8),
    embedding_dim: 16, carrier: (hidden: 16, layers: 1), neuron: (hidden: 8, output: 12),
    displacement_scale: 40.0, noise: 0.05, spawn: Some((threshold: 0.15, max_per_step: 2)))))"""


def test_a_non_square_flows_lattice_equals_the_cli_with_h_before_w(run_cli, tmp_path):
    config = tmp_path / "wide.ron"
    config.write_text(NON_SQUARE)
    out = run_cli(config)
    result = lattice.Simulation(config, backend="cpu").run()
    assert result.surface.shape == (3, 2, 5, 7), "[items, plane, H, W]"
    assert result.merged.shape == (3, 5, 7) and result.landed.shape == (3, 2, 5, 7)
    assert same_bytes(result.surface, np.load(out / "surface.npy"))
    assert same_bytes(result.merged, np.load(out / "surface_merged.npy"))
    landed = [int(result.landed[k].sum()) for k in range(3)]
    assert landed == [c["completed_front"] + c["completed_back"] for c in result.counts]
    assert sum(landed) > 0, "flows completed on the non-square surface"
