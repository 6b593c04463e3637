"""Run the DEBUG MoE config and the flows debug config from Python and plot a z-slice of the
states and the two flow surfaces with matplotlib (cells no flow reached in grey).

    pip install ./python matplotlib
    python python/examples/plot.py [OUT.png]
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import lattice

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main(out):
    moe = lattice.Simulation(ROOT / "configs/debug.ron", backend="auto")
    states = moe.run().states  # [items, N, S]
    w, h, d = moe.dims
    z, channel = d // 2, 0
    grid = states[0].reshape(d, h, w, -1)  # [z, y, x, channel]

    flows = lattice.Simulation(ROOT / "configs/flows_debug.ron", backend="auto")
    result = flows.run()
    surface = np.ma.masked_where(result.landed[0] == 0, result.surface[0])  # [2, H, W]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), constrained_layout=True)
    im = axes[0].imshow(grid[z, :, :, channel], origin="lower", cmap="viridis")
    axes[0].set(title=f"MoE item 0, z = {z}, channel {channel}", xlabel="x", ylabel="y")
    fig.colorbar(im, ax=axes[0], label=f"channel {channel}")
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    lo, hi = surface.min(), surface.max()
    for ax, plane, name in zip(axes[1:], surface, ["front (z = -1)", "back (z = +1)"]):
        im = ax.imshow(plane, origin="lower", cmap=cmap, vmin=lo, vmax=hi)
        ax.set(title=f"flows item 0, {name} plane", xlabel="x", ylabel="y")
    fig.colorbar(im, ax=axes[1:], label="energy (grey: no flow landed)")
    fig.savefig(out, dpi=100)
    print(f"wrote {out} ({moe.backend}; {len(states)} MoE items, {len(result)} flow items)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lattice-example.png")
