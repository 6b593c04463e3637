"""lattice: a 3D cellular lattice simulation engine (MoE cell updates and energy flows) on the
GPU (wgpu) or the CPU, batched over many independent lattices.

    import lattice
    sim = lattice.Simulation("configs/debug.ron", backend="cpu")
    result = sim.run()                 # the config's items, seeded by id
    result.states.shape                # (items, N, S), float32

Flows runs can start from texts, embedded by a local sentence encoder:

    enc = lattice.Encoder("models/all-MiniLM-L6-v2")
    vectors = enc.encode(["a text", "another"])       # (2, 384), unit rows
    result = sim.run(texts=["a text", "another"], encoder=enc)

Configs come from a path, a RON string or a dict; inputs, outputs and weights are numpy
arrays. A run releases the GIL, stops between steps on Ctrl-C (KeyboardInterrupt), and raises
ValueError for bad input, TypeError for a wrong array type, RuntimeError for a GPU failure and
MemoryError when not even one item fits the device: each as a class of `lattice.errors`
(`ConfigError`, `InputError`, `WeightsError`, `DeviceError`, `OutOfMemoryError`) that is also
a `LatticeError`. The engine's log records go to Python's `logging`, under the `lattice`
logger.
"""

from . import errors
from ._lattice import Encoder, FlowsResult, MoeResult, Simulation, __version__
from .errors import (
    ConfigError,
    DeviceError,
    InputError,
    LatticeError,
    OutOfMemoryError,
    WeightsError,
)

__all__ = [
    "Simulation",
    "Encoder",
    "MoeResult",
    "FlowsResult",
    "LatticeError",
    "ConfigError",
    "InputError",
    "WeightsError",
    "DeviceError",
    "OutOfMemoryError",
    "errors",
    "__version__",
]
