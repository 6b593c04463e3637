from ._lattice import Encoder as Encoder
from ._lattice import FlowsResult as FlowsResult
from ._lattice import MoeResult as MoeResult
from ._lattice import Simulation as Simulation
from ._lattice import __version__ as __version__
