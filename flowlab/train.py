"""Training API in one namespace: the objectives (:mod:`flowlab.objectives`) and the loop
(:mod:`flowlab.fit`), as ``flowlab.train.<name>`` for scripts written against it."""

from ._model import trainable_filter as trainable_filter
from .fit import Adam as Adam
from .fit import History as History
from .fit import Trainer as Trainer
from .fit import TrainState as TrainState
from .fit import default_optimizer as default_optimizer
from .fit import fit as fit
from .objectives import AbstractObjective as AbstractObjective
from .objectives import AbstractStatefulObjective as AbstractStatefulObjective
from .objectives import DenoisingScoreMatching as DenoisingScoreMatching
from .objectives import FlowMatching as FlowMatching
from .objectives import MaximumLikelihood as MaximumLikelihood
from .objectives import SingleNoiseDSM as SingleNoiseDSM

__all__ = [
    "AbstractObjective",
    "AbstractStatefulObjective",
    "Adam",
    "DenoisingScoreMatching",
    "FlowMatching",
    "History",
    "MaximumLikelihood",
    "SingleNoiseDSM",
    "TrainState",
    "Trainer",
    "default_optimizer",
    "fit",
    "trainable_filter",
]
