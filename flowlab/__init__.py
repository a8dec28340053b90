"""flowlab: continuous-time generative models on 2D data, with exact likelihoods."""

from . import nn as nn  # TEMP-NO-DATASETS
from . import train as train
from ._checkpoint import load_model as load_model
from ._checkpoint import save_model as save_model
from ._cnf import CNF as CNF
from ._ode import (
    ODEStats as ODEStats,
)
from ._ode import (
    SolverOptions as SolverOptions,
)
from ._ode import (
    augmented_solve as augmented_solve,
)
from ._ode import (
    batch_value_and_divergence as batch_value_and_divergence,
)
from ._ode import (
    flow_solve as flow_solve,
)
from ._ode import (
    standard_normal_log_prob as standard_normal_log_prob,
)
from ._ode import (
    value_and_divergence as value_and_divergence,
)
from ._single_noise import SingleNoiseDSM as SingleNoiseDSM
from ._single_noise import SingleNoiseScore as SingleNoiseScore
from ._standardize import Standardize as Standardize
from .diffusion import (
    DenoisingScoreMatching as DenoisingScoreMatching,
)
from .diffusion import (
    Diffusion as Diffusion,
)
from .diffusion import (
    ProbabilityFlow as ProbabilityFlow,
)
from .sde import (
    VESDE as VESDE,
)
from .sde import (
    VPSDE as VPSDE,
)
from .sde import (
    AbstractSDE as AbstractSDE,
)
from .sde import (
    SubVPSDE as SubVPSDE,
)
from .sde import (
    get_sde as get_sde,
)

__version__ = "0.1.0"
