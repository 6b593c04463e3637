"""What Python users expect of a package: exceptions they can catch as lattice errors or as the
builtins they stand for, the engine's logs in Python's logging, and the flows event trace on
the result (the same events `lattice run` writes to events.jsonl)."""

import json
import logging
import subprocess

import pytest

import lattice

TRACED = (
    "(seed: 5, batch: (items: 2), simulation: Flows((dims: (6, 5, 8), embedding_dim: 16, "
    "carrier: (hidden: 8, layers: 1), neuron: (hidden: 8, output: 8), displacement_scale: 40.0, "
    "noise: 0.05, spawn: Some((threshold: 0.15)), trace: Some((capacity: 1000)))))"
)


def test_errors_are_lattice_errors_and_builtins():
    with pytest.raises(lattice.ConfigError, match="stat_size") as e:
        lattice.Simulation("(simulation: Moe((lattice: (dims: (4, 4, 4)), stat_size: 3)))")
    assert isinstance(e.value, ValueError) and isinstance(e.value, lattice.LatticeError)
    sim = lattice.Simulation(TRACED, backend="cpu")
    with pytest.raises(lattice.InputError, match="embedding"):
        import numpy as np

        sim.run(embeddings=np.zeros((1, 3), np.float32))
    assert issubclass(lattice.DeviceError, RuntimeError)
    assert issubclass(lattice.OutOfMemoryError, MemoryError)
    assert issubclass(lattice.WeightsError, ValueError)


def test_engine_logs_reach_python_logging(caplog):
    with caplog.at_level(logging.INFO, logger="lattice"):
        lattice.Simulation(TRACED, backend="cpu")
    records = [r for r in caplog.records if r.name.startswith("lattice.")]
    assert any("flow networks" in r.getMessage() for r in records), caplog.records
    assert all(r.levelno >= logging.INFO for r in records)


def test_the_event_trace_is_on_the_result_as_the_cli_writes_it(lattice_bin, tmp_path):
    sim = lattice.Simulation(TRACED, backend="cpu")
    result = sim.run()
    assert result.events and result.events_overwritten == 0
    assert {e["event"] for e in result.events} <= {"spawn", "reflect", "terminate"}
    config = tmp_path / "traced.ron"
    config.write_text(TRACED)
    out = tmp_path / "out"
    subprocess.run(
        [str(lattice_bin), "-q", "run", str(config), "--backend", "cpu", "--out", str(out)],
        check=True,
    )
    lines = (out / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.events
    plain = lattice.Simulation(TRACED.replace(", trace: Some((capacity: 1000))", ""), backend="cpu")
    assert plain.run().events is None
