"""The exceptions the engine raises. Each derives from `LatticeError` and from the builtin it
stands for, so `except lattice.LatticeError` catches every engine error and existing
`except ValueError` (or RuntimeError, MemoryError) code keeps working."""


class LatticeError(Exception):
    """Every error the engine raises with its own message."""


class ConfigError(LatticeError, ValueError):
    """A config that cannot be parsed or checked (the message names line, column and field)."""


class InputError(LatticeError, ValueError):
    """Inputs that do not suit the simulation: shapes, non-finite values, duplicate ids, texts,
    an encoder folder or a width that does not fit."""


class WeightsError(LatticeError, ValueError):
    """Weights that are missing a tensor, have an extra one, a wrong shape or another format."""


class DeviceError(LatticeError, RuntimeError):
    """The GPU failed, or an untrusted adapter failed its check against the CPU."""


class OutOfMemoryError(LatticeError, MemoryError):
    """Not even one item fits the device's memory."""


__all__ = [
    "LatticeError",
    "ConfigError",
    "InputError",
    "WeightsError",
    "DeviceError",
    "OutOfMemoryError",
]
