r"""What the score-based samplers need of a model, as two small abstract protocols.

* :class:`AbstractGaussianDiffusion`: a noise-prediction network
  $\hat\varepsilon_\theta(t, z)$ with a Gaussian perturbation kernel
  $z_t \mid z_0 \sim \mathcal{N}(a(t) z_0, \sigma(t)^2 I)$ and a grid of sampling times
  from the prior to the data. Ancestral sampling and DDIM need nothing else, so they serve
  the continuous-time :class:`~flowlab.Diffusion` (VP, sub-VP, VE) and the discrete-time
  :class:`~flowlab.DDPM` alike; DSM trains both.
* :class:`AbstractScoreModel`: a time-independent score $s(z) \approx \nabla\log p(z)$
  and a starting distribution, which is all Langevin dynamics needs (single-noise DSM, an
  energy-based model's $-\nabla E$).
"""

from __future__ import annotations

import abc

from ._model import AbstractModel
from ._typing import Array, Key, Point, Points, Time

__all__ = ["AbstractGaussianDiffusion", "AbstractScoreModel"]


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


class AbstractScoreModel(AbstractModel):
    """A time-independent score $s(z) \\approx \\nabla_z \\log p(z)$ (standardised
    coordinates) and where Langevin dynamics starts."""

    @abc.abstractmethod
    def score(self, z: Point) -> Point:
        r"""$s(z)$ at one standardised point of shape ``(d,)``."""

    @abc.abstractmethod
    def initial_sample(self, key: Key, n: int) -> Points:
        """``n`` standardised starting points for Langevin dynamics, shape ``(n, d)``."""
