"""The example script runs and writes its figure."""

import runpy

import pytest


def test_the_plot_example_writes_a_figure(root, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    out = tmp_path / "example.png"
    monkeypatch.setattr("sys.argv", ["plot.py", str(out)])
    runpy.run_path(str(root / "python/examples/plot.py"), run_name="__main__")
    assert out.stat().st_size > 10_000
