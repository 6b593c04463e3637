from ._lattice import Encoder as Encoder
from ._lattice import FlowsResult as FlowsResult
from ._lattice import MoeResult as MoeResult
from ._lattice import Simulation as Simulation
from ._lattice import __version__ as __version__
from . import errors as errors
from .errors import ConfigError as ConfigError
from .errors import DeviceError as DeviceError
from .errors import InputError as InputError
from .errors import LatticeError as LatticeError
from .errors import OutOfMemoryError as OutOfMemoryError
from .errors import WeightsError as WeightsError

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
