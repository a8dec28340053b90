"""flowlab: generative models on 2D data with the best likelihood each can have.

Every model meets one protocol (:class:`AbstractModel`: ``sample``, what it trains, its
likelihood kind); every continuous-time model is an ODE flow (:class:`AbstractFlow`) that
one likelihood ODE and one sampler serve. Submodules: ``datasets``, ``metrics``,
``plotting``, ``evaluate``, ``samplers``, ``objectives``, ``nn``, ``sde``, ``train``.
"""

import importlib as _importlib

from . import couplings as couplings
from . import datasets as datasets
from . import ebm as ebm
from . import gan as gan
from . import nn as nn
from . import objectives as objectives
from . import samplers as samplers
from . import sde as sde
from . import train as train
from . import vae as vae
from ._build import build_model as build_model
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import atomic_write_bytes as atomic_write_bytes
from ._checkpoint import atomic_write_text as atomic_write_text
from ._checkpoint import load_model as load_model
from ._checkpoint import read_header as read_header
from ._checkpoint import save_model as save_model
from ._denoising import AbstractGaussianDiffusion as AbstractGaussianDiffusion
from ._denoising import AbstractScoreModel as AbstractScoreModel
from ._flow import AbstractFlow as AbstractFlow
from ._model import LIKELIHOOD_KINDS as LIKELIHOOD_KINDS
from ._model import AbstractBoundLikelihood as AbstractBoundLikelihood
from ._model import AbstractExactLikelihood as AbstractExactLikelihood
from ._model import AbstractModel as AbstractModel
from ._model import likelihood_kind as likelihood_kind
from ._ode import ODEStats as ODEStats
from ._ode import SolverOptions as SolverOptions
from ._ode import Stats as Stats
from ._ode import augmented_solve as augmented_solve
from ._ode import batch_value_and_divergence as batch_value_and_divergence
from ._ode import flow_solve as flow_solve
from ._ode import standard_normal_log_prob as standard_normal_log_prob
from ._ode import value_and_divergence as value_and_divergence
from ._schedule import LinearBetaSchedule as LinearBetaSchedule
from ._standardize import Standardize as Standardize
from .cnf import CNF as CNF
from .ddpm import DDPM as DDPM
from .diffusion import Diffusion as Diffusion
from .diffusion import ProbabilityFlow as ProbabilityFlow
from .ebm import EBM as EBM
from .ebm import ContrastiveDivergence as ContrastiveDivergence
from .ebm import EnergyDSM as EnergyDSM
from .fit import Adam as Adam
from .fit import History as History
from .fit import Trainer as Trainer
from .fit import TrainState as TrainState
from .fit import default_optimizer as default_optimizer
from .fit import fit as fit
from .gan import GAN as GAN
from .gan import NonSaturatingGAN as NonSaturatingGAN
from .gan import TwoPlayerAdam as TwoPlayerAdam
from .objectives import DenoisingScoreMatching as DenoisingScoreMatching
from .objectives import FlowMatching as FlowMatching
from .objectives import MaximumLikelihood as MaximumLikelihood
from .objectives import SingleNoiseDSM as SingleNoiseDSM
from .sde import VESDE as VESDE
from .sde import VPSDE as VPSDE
from .sde import AbstractSDE as AbstractSDE
from .sde import SubVPSDE as SubVPSDE
from .sde import get_sde as get_sde
from .single_noise import SingleNoiseScore as SingleNoiseScore
from .vae import VAE as VAE
from .vae import NegativeELBO as NegativeELBO

__version__ = "0.2.0"

_LAZY = ("evaluate", "metrics", "plotting")  # SciPy / matplotlib: imported on first use


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'flowlab' has no attribute {name!r}")


__all__ = [
    "CNF",
    "EBM",
    "GAN",
    "VAE",
    "ContrastiveDivergence",
    "EnergyDSM",
    "NegativeELBO",
    "NonSaturatingGAN",
    "TwoPlayerAdam",
    "ebm",
    "gan",
    "vae",
    "CheckpointError",
    "DDPM",
    "LIKELIHOOD_KINDS",
    "VESDE",
    "VPSDE",
    "AbstractBoundLikelihood",
    "AbstractExactLikelihood",
    "AbstractFlow",
    "AbstractGaussianDiffusion",
    "AbstractModel",
    "AbstractSDE",
    "AbstractScoreModel",
    "Adam",
    "DenoisingScoreMatching",
    "Diffusion",
    "FlowMatching",
    "History",
    "LinearBetaSchedule",
    "MaximumLikelihood",
    "ODEStats",
    "ProbabilityFlow",
    "SingleNoiseDSM",
    "SingleNoiseScore",
    "SolverOptions",
    "Standardize",
    "Stats",
    "SubVPSDE",
    "TrainState",
    "Trainer",
    "atomic_write_bytes",
    "atomic_write_text",
    "augmented_solve",
    "batch_value_and_divergence",
    "build_model",
    "couplings",
    "datasets",
    "default_optimizer",
    "evaluate",
    "fit",
    "flow_solve",
    "get_sde",
    "likelihood_kind",
    "load_model",
    "metrics",
    "nn",
    "objectives",
    "plotting",
    "read_header",
    "samplers",
    "save_model",
    "sde",
    "standard_normal_log_prob",
    "train",
    "value_and_divergence",
]
