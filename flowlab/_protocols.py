r"""What samplers and objectives need of a model, as small abstract protocols.

Samplers (:mod:`flowlab.samplers`) and objectives (:mod:`flowlab.objectives`) ask for one of
these, never for a concrete family, so a new family that meets a protocol gets its samplers
and losses without touching them (and no family module imports a sampler module that
imports it back).

* :class:`AbstractGaussianDiffusion`: a noise-prediction network
  $\hat\varepsilon_\theta(t, z)$ with a Gaussian perturbation kernel
  $z_t \mid z_0 \sim \mathcal{N}(a(t) z_0, \sigma(t)^2 I)$ and a grid of sampling times
  from the prior to the data. Ancestral sampling and DDIM need nothing else, so they serve
  the continuous-time :class:`~flowlab.Diffusion` (VP, sub-VP, VE) and the discrete-time
  :class:`~flowlab.DDPM` alike; DSM trains both.
* :class:`AbstractSDEModel`: a Gaussian diffusion whose kernel comes from a forward SDE
  (``sde``): what the reverse-SDE samplers (Euler–Maruyama, predictor–corrector) and the
  likelihood weighting of DSM need.
* :class:`AbstractScoreModel`: a time-independent score $s(z) \approx \nabla\log p(z)$
  and a starting distribution, which is all Langevin dynamics needs (single-noise DSM, an
  energy-based model's $-\nabla E$).
* :class:`AbstractEnergyModel`: a score model whose score is $-\nabla_z E(z)$ of a scalar
  energy (contrastive divergence and energy DSM train the energy).
* :class:`AbstractLatentModel`: a Gaussian decoder $p(u \mid z)$ from a standard normal
  latent, sampled in one decoder pass (:class:`~flowlab.samplers.Decoder`).
"""

from __future__ import annotations

import abc

import equinox as eqx

from ._model import AbstractModel
from ._typing import Array, Key, Point, Points, Time
from .sde import AbstractSDE

__all__ = [
    "AbstractEnergyModel",
    "AbstractGaussianDiffusion",
    "AbstractLatentModel",
    "AbstractSDEModel",
    "AbstractScoreModel",
]


class AbstractGaussianDiffusion(AbstractModel):
    """A noise predictor with a Gaussian kernel $z_t = a(t) z_0 + \\sigma(t)\\varepsilon$."""

    @abc.abstractmethod
    def predict_noise(self, t: Time, z: Point) -> Point:
        r"""$\hat\varepsilon_\theta(t, z)$ at one standardised point of shape ``(d,)``."""

    @abc.abstractmethod
    def marginal(self, t: Time) -> tuple[Array, Array]:
        r"""$(a(t), \sigma(t))$ of the kernel at a scalar time."""

    @abc.abstractmethod
    def sampling_times(self, steps: int) -> Array:
        """``steps + 1`` times from the prior's to the data's, shape ``(steps + 1,)``."""

    @property
    @abc.abstractmethod
    def default_steps(self) -> int:
        """The number of steps a sampler takes when not told (DDPM: its $T$)."""

    @abc.abstractmethod
    def training_times(self, key: Key, n: int) -> Array:
        """``n`` times drawn as denoising score matching draws them, shape ``(n,)``."""

    @abc.abstractmethod
    def prior_sample(self, key: Key, n: int) -> Points:
        """``n`` standardised draws from the prior, shape ``(n, d)``."""


class AbstractSDEModel(AbstractGaussianDiffusion):
    """A Gaussian diffusion whose kernel is that of a forward SDE $dz = f\\,dt + g\\,dw$.

    Attributes:
        sde: the forward SDE (drift $f$, diffusion $g$, kernel, prior).
    """

    sde: eqx.AbstractVar[AbstractSDE]


class AbstractScoreModel(AbstractModel):
    """A time-independent score $s(z) \\approx \\nabla_z \\log p(z)$ (standardised
    coordinates) and where Langevin dynamics starts."""

    @abc.abstractmethod
    def score(self, z: Point) -> Point:
        r"""$s(z)$ at one standardised point of shape ``(d,)``."""

    @abc.abstractmethod
    def initial_sample(self, key: Key, n: int) -> Points:
        """``n`` standardised starting points for Langevin dynamics, shape ``(n, d)``."""


class AbstractEnergyModel(AbstractScoreModel):
    """A score model with a scalar energy: $s(z) = -\\nabla_z E(z)$."""

    @abc.abstractmethod
    def total_energy(self, z: Point) -> Array:
        r"""$E(z)$ at one standardised point of shape ``(d,)``: the scalar whose negative
        gradient is the score and whose $e^{-E}$ is the unnormalised density."""


class AbstractLatentModel(AbstractModel):
    """A Gaussian decoder $p(u \\mid z) = \\mathcal{N}(m(z), \\operatorname{diag}\\sigma(z)^2)$
    (standardised coordinates) from a latent $z \\sim \\mathcal{N}(0, I_k)$.

    Attributes:
        latent_size: $k$.
    """

    latent_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def likelihood(self, z: Array) -> tuple[Point, Point]:
        r"""Mean and standard deviation of $p(u \mid z)$ at one latent of shape ``(k,)``."""
