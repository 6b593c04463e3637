"""The GPU backend from Python agrees with the CPU (lavapipe in CI). Skipped without an
adapter unless LATTICE_REQUIRE_GPU is set, which makes a missing adapter a failure."""

import os

import numpy as np
import pytest

import lattice


def gpu_simulation(config):
    try:
        return lattice.Simulation(config, backend="gpu")
    except RuntimeError as e:
        if os.environ.get("LATTICE_REQUIRE_GPU"):
            raise
        pytest.skip(f"no GPU adapter: {e}")


def test_moe_on_the_gpu_matches_the_cpu(root):
    config = root / "configs/debug.ron"
    gpu = gpu_simulation(config)
    cpu = lattice.Simulation(config, backend="cpu")
    got, want = gpu.run(steps=2), cpu.run(steps=2)
    assert got.stats["backend"] != want.stats["backend"]
    # The GPU-vs-CPU tolerance of tests/gpu_moe.rs (summation orders differ).
    assert np.max(np.abs(got.states - want.states)) < 1e-4
