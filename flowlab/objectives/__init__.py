r"""Every training objective, one file per kind: ``objective(model, batch, key) -> loss``.

An objective is an Equinox module (its fields are its configuration, recorded in
checkpoints) that maps a model, a batch of data points (data coordinates) and a key to a
scalar loss, or to ``(loss, aux)`` with ``aux`` a dict of scalars that
:func:`~flowlab.fit` records every step (e.g. each player's loss of a GAN). Every
objective declares ``holdout_repeats``: how many noise draws per hold-out point ``fit``
averages when it evaluates the hold-out loss with a fixed key.

An objective that carries state from step to step (e.g. the replay buffer of contrastive
divergence) subclasses :class:`AbstractStatefulObjective`; ``fit`` threads its state
through the fused training scan and checkpoints it.

* :class:`FlowMatching` (``flow_matching.py``): conditional flow matching for a
  :class:`~flowlab.CNF`, with minibatch couplings from :mod:`flowlab.couplings`.
* :class:`MeanFlowMatching` (``mean_flow.py``): the MeanFlow identity for a
  :class:`~flowlab.MeanFlow` (Geng et al. 2025).
* :class:`ShortcutMatching` (``shortcut.py``): flow matching plus self-consistency of
  jumps for a :class:`~flowlab.Shortcut` (Frans et al. 2025).
* :class:`ConditionalFlowMatching`, :class:`ConditionalDSM` (``conditional.py``): label-
  conditioned flow matching (optionally OT within classes, C2OT) and DSM with label dropout
  for classifier-free guidance (:mod:`flowlab.conditional`).
* :class:`MaximumLikelihood` (``likelihood.py``): $-\mathbb{E}\log p(x)$ for any
  exact-likelihood model, through the augmented ODE for an ODE flow.
* :class:`DenoisingScoreMatching`, :class:`SingleNoiseDSM`, :class:`EnergyDSM`
  (``score_matching.py``): DSM for a Gaussian-kernel diffusion (continuous or discrete
  time), at one noise level, and with an energy's score.
* :class:`NegativeELBO` (``elbo.py``): the negative ELBO of a VAE.
* :class:`ContrastiveDivergence` (``contrastive.py``): persistent CD for an energy model.
* :class:`NonSaturatingGAN` (``adversarial.py``): the two-player GAN game as one loss.
"""

from ._base import AbstractObjective as AbstractObjective
from ._base import AbstractStatefulObjective as AbstractStatefulObjective
from .adversarial import EQUILIBRIUM_D_LOSS as EQUILIBRIUM_D_LOSS
from .adversarial import EQUILIBRIUM_G_LOSS as EQUILIBRIUM_G_LOSS
from .adversarial import NonSaturatingGAN as NonSaturatingGAN
from .adversarial import discriminator_loss as discriminator_loss
from .adversarial import generator_loss as generator_loss
from .conditional import ConditionalDSM as ConditionalDSM
from .conditional import ConditionalFlowMatching as ConditionalFlowMatching
from .contrastive import ContrastiveDivergence as ContrastiveDivergence
from .elbo import NegativeELBO as NegativeELBO
from .flow_matching import FlowMatching as FlowMatching
from .likelihood import MaximumLikelihood as MaximumLikelihood
from .mean_flow import MeanFlowMatching as MeanFlowMatching
from .score_matching import WEIGHTINGS as WEIGHTINGS
from .score_matching import DenoisingScoreMatching as DenoisingScoreMatching
from .score_matching import EnergyDSM as EnergyDSM
from .score_matching import SingleNoiseDSM as SingleNoiseDSM
from .score_matching import Weighting as Weighting
from .shortcut import ShortcutMatching as ShortcutMatching

__all__ = [
    "ConditionalDSM",
    "ConditionalFlowMatching",
    "EQUILIBRIUM_D_LOSS",
    "EQUILIBRIUM_G_LOSS",
    "WEIGHTINGS",
    "AbstractObjective",
    "AbstractStatefulObjective",
    "ContrastiveDivergence",
    "DenoisingScoreMatching",
    "EnergyDSM",
    "FlowMatching",
    "MaximumLikelihood",
    "MeanFlowMatching",
    "NegativeELBO",
    "NonSaturatingGAN",
    "ShortcutMatching",
    "SingleNoiseDSM",
    "Weighting",
    "discriminator_loss",
    "generator_loss",
]
