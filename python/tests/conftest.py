"""Shared fixtures: the repository's configs and the `lattice` binary the Python results are
compared with (LATTICE_BIN, else built with cargo from the checkout)."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def lattice_bin():
    given = os.environ.get("LATTICE_BIN")
    if given:
        return pathlib.Path(given)
    subprocess.run(["cargo", "build", "--quiet", "--bin", "lattice"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "lattice"


@pytest.fixture(scope="session")
def run_cli(lattice_bin, tmp_path_factory):
    """Runs `lattice run CONFIG --backend cpu ARGS...` into a fresh folder and returns it."""

    def run(config, *args):
        out = tmp_path_factory.mktemp("cli")
        cmd = [str(lattice_bin), "--quiet", "run", str(ROOT / config), "--backend", "cpu"]
        subprocess.run([*cmd, "--out", str(out), *args], check=True, capture_output=True)
        return out

    return run
