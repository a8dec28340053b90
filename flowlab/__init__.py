"""flowlab: generative models on 2D data with the best likelihood each can have.

Every model meets one protocol (:class:`AbstractModel`: ``sample``, what it trains, its
likelihood kind, stated by its type); every continuous-time model is an ODE flow
(:class:`AbstractFlow`) that one likelihood ODE and one sampler serve; samplers and
objectives ask for protocols (:class:`AbstractGaussianDiffusion`,
:class:`AbstractSDEModel`, :class:`AbstractScoreModel`, :class:`AbstractEnergyModel`,
:class:`AbstractLatentModel`), never for a family. One training loop, :func:`fit`.

Submodules: ``objectives`` (every loss, one module per kind), ``optim`` (optimisers),
``samplers`` (sampler objects), ``sde``, ``nn``, ``couplings``, ``datasets``, ``metrics``,
``plotting``, ``evaluate`` (scoring any model through the protocol), ``conditional``
(classifier-free guidance: a conditional field is still a vector field), ``baselines``
(closed-form Gaussian, mixture and KDE densities), and one module per
family (``cnf``, ``diffusion``, ``ddpm``, ``single_noise``, ``vae``, ``ebm``, ``gan``).
"""

import importlib as _importlib

from . import baselines as baselines
from . import conditional as conditional
from . import couplings as couplings
from . import datasets as datasets
from . import ebm as ebm
from . import gan as gan
from . import meanflow as meanflow
from . import nn as nn
from . import objectives as objectives
from . import optim as optim
from . import rectified as rectified
from . import samplers as samplers
from . import sde as sde
from . import shortcut as shortcut
from . import vae as vae
from ._build import build_model as build_model
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load_model as load_model
from ._checkpoint import read_header as read_header
from ._checkpoint import save_model as save_model
from ._compile import CompileClock as CompileClock
from ._compile import enable_compile_cache as enable_compile_cache
from ._fit import History as History
from ._fit import Trainer as Trainer
from ._fit import TrainState as TrainState
from ._fit import fit as fit
from ._fit_many import fit_many as fit_many
from ._flow import AbstractFlow as AbstractFlow
from ._flow_map import AbstractFlowMap as AbstractFlowMap
from ._flow_map import MLPFlowMapNet as MLPFlowMapNet
from ._model import LIKELIHOOD_KINDS as LIKELIHOOD_KINDS
from ._model import AbstractBoundLikelihood as AbstractBoundLikelihood
from ._model import AbstractExactLikelihood as AbstractExactLikelihood
from ._model import AbstractModel as AbstractModel
from ._model import likelihood_kind as likelihood_kind
from ._model import trainable_filter as trainable_filter
from ._ode import SolverOptions as SolverOptions
from ._ode import Stats as Stats
from ._ode import augmented_solve as augmented_solve
from ._ode import batch_value_and_divergence as batch_value_and_divergence
from ._ode import flow_solve as flow_solve
from ._ode import standard_normal_log_prob as standard_normal_log_prob
from ._ode import value_and_divergence as value_and_divergence
from ._prior import AbstractPrior as AbstractPrior
from ._prior import Gaussian as Gaussian
from ._prior import GaussianMixture as GaussianMixture
from ._protocols import AbstractEnergyModel as AbstractEnergyModel
from ._protocols import AbstractGaussianDiffusion as AbstractGaussianDiffusion
from ._protocols import AbstractLatentModel as AbstractLatentModel
from ._protocols import AbstractScoreModel as AbstractScoreModel
from ._protocols import AbstractSDEModel as AbstractSDEModel
from ._schedule import LinearBetaSchedule as LinearBetaSchedule
from ._standardize import Standardize as Standardize
from .cnf import CNF as CNF
from .ddpm import DDPM as DDPM
from .diffusion import Diffusion as Diffusion
from .diffusion import ProbabilityFlow as ProbabilityFlow
from .ebm import EBM as EBM
from .gan import GAN as GAN
from .meanflow import MeanFlow as MeanFlow
from .objectives import ContrastiveDivergence as ContrastiveDivergence
from .objectives import DenoisingScoreMatching as DenoisingScoreMatching
from .objectives import EnergyDSM as EnergyDSM
from .objectives import FlowMatching as FlowMatching
from .objectives import MaximumLikelihood as MaximumLikelihood
from .objectives import MeanFlowMatching as MeanFlowMatching
from .objectives import NegativeELBO as NegativeELBO
from .objectives import NonSaturatingGAN as NonSaturatingGAN
from .objectives import ShortcutMatching as ShortcutMatching
from .objectives import SingleNoiseDSM as SingleNoiseDSM
from .optim import Adam as Adam
from .optim import TwoPlayerAdam as TwoPlayerAdam
from .optim import default_optimizer as default_optimizer
from .sde import VESDE as VESDE
from .sde import VPSDE as VPSDE
from .sde import AbstractSDE as AbstractSDE
from .sde import SubVPSDE as SubVPSDE
from .sde import get_sde as get_sde
from .shortcut import Shortcut as Shortcut
from .single_noise import SingleNoiseScore as SingleNoiseScore
from .vae import VAE as VAE

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
    "AbstractFlowMap",
    "MLPFlowMapNet",
    "AbstractPrior",
    "Gaussian",
    "GaussianMixture",
    "MeanFlow",
    "MeanFlowMatching",
    "Shortcut",
    "ShortcutMatching",
    "AbstractGaussianDiffusion",
    "AbstractModel",
    "AbstractSDE",
    "AbstractScoreModel",
    "AbstractEnergyModel",
    "AbstractLatentModel",
    "AbstractSDEModel",
    "Adam",
    "DenoisingScoreMatching",
    "Diffusion",
    "FlowMatching",
    "History",
    "LinearBetaSchedule",
    "MaximumLikelihood",
    "ProbabilityFlow",
    "SingleNoiseDSM",
    "SingleNoiseScore",
    "SolverOptions",
    "Standardize",
    "Stats",
    "SubVPSDE",
    "TrainState",
    "Trainer",
    "augmented_solve",
    "batch_value_and_divergence",
    "build_model",
    "baselines",
    "conditional",
    "couplings",
    "datasets",
    "default_optimizer",
    "evaluate",
    "fit",
    "fit_many",
    "enable_compile_cache",
    "CompileClock",
    "flow_solve",
    "get_sde",
    "likelihood_kind",
    "trainable_filter",
    "load_model",
    "metrics",
    "nn",
    "objectives",
    "optim",
    "plotting",
    "read_header",
    "rectified",
    "samplers",
    "save_model",
    "sde",
    "shortcut",
    "meanflow",
    "standard_normal_log_prob",
    "value_and_divergence",
]
