r"""The simplest score model: one fixed noise level, sampled with Langevin dynamics.

A network $\hat\varepsilon_\theta(z)$ trained by denoising score matching at a single
$\sigma$ (:class:`~flowlab.objectives.SingleNoiseDSM`) estimates the score of the
*smoothed* data density $p_\sigma = p_{\text{data}} * N(0, \sigma^2 I)$:
$s_\theta(z) = -\hat\varepsilon_\theta(z)/\sigma \approx \nabla \log p_\sigma(z)$
(Vincent 2011). Langevin dynamics $z \leftarrow z + \eta\, s_\theta(z) + \sqrt{2\eta}\,\xi$
(:class:`~flowlab.samplers.Langevin`) then samples $p_\sigma$ (as $\eta \to 0$ and the
number of steps grows). Small $\sigma$ gives a sharp target but a score that is poorly
learned away from the data, so mixing between modes is slow — the problem that
noise-conditional (annealed) models and the SDE family in :mod:`flowlab.diffusion` solve.
Likelihood kind *none*: score it with the sample-based metrics of :mod:`flowlab.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count
from ._ode import Stats
from ._protocols import AbstractScoreModel
from ._standardize import Standardize, resolve_data_size
from ._typing import Key, Point, Points
from .samplers import Langevin

__all__ = ["SingleNoiseScore"]


class SingleNoiseScore(AbstractScoreModel):
    r"""A score model at one noise level $\sigma$ (standardised coordinates).

    Arguments:
        network: noise predictor; called as ``network(0.0, z)`` so a
            :class:`~flowlab.nn.MLPVectorField` can be reused (its time input is constant).
        sigma: the noise level, in standardised units.
        standardize: the affine map to standardised coordinates.
        data_size: ``d``; read from the network or ``standardize`` when omitted.
    """

    network: Callable
    standardize: Standardize | None
    sigma: float = eqx.field(static=True)
    data_size: int | None = eqx.field(static=True)
    trainable_fields: ClassVar[tuple[str, ...]] = ("network",)

    def __init__(
        self,
        network,
        sigma: float,
        *,
        standardize: Standardize | None = None,
        data_size: int | None = None,
    ):
        if not sigma > 0:
            raise ValueError(f"expected sigma > 0, got {sigma!r}")
        self.network = network
        self.sigma = float(sigma)
        self.data_size, self.standardize = resolve_data_size(network, data_size, standardize)

    def predict_noise(self, z: Point) -> Point:
        r"""$\hat\varepsilon_\theta(z)$ at one standardised point."""
        return self.network(jnp.zeros((), z.dtype), z)

    def score(self, z: Point) -> Point:
        r"""$s_\theta(z) = -\hat\varepsilon_\theta(z)/\sigma \approx \nabla \log p_\sigma(z)$."""
        return -self.predict_noise(z) / self.sigma

    def initial_sample(self, key: Key, n: int) -> Points:
        return jax.random.normal(key, (n, self.require_data_size()))

    def default_sampler(self, steps: int = 1000):
        r"""Langevin with $\eta$ from $\max(0.1\sigma^2, 10^{-3})$ down to a tenth of it."""
        return Langevin(steps=steps, step_size=max(0.1 * self.sigma**2, 1e-3))

    def sample_with_stats(self, key: Key, n: int, *, sampler=None) -> tuple[Points, Stats]:
        """``n`` samples (data coordinates) from ``sampler`` (default
        :meth:`default_sampler`, which raises on a non-finite sample; see
        :class:`~flowlab.samplers.Langevin`) and their cost."""
        sampler = self.default_sampler() if sampler is None else sampler
        return sampler(self, key, check_count(n))

    def sample_langevin(
        self,
        key: Key,
        n: int,
        *,
        steps: int = 1000,
        step_size: float | None = None,
        final_step_size: float | None = None,
    ) -> Points:
        r"""``n`` samples from ``steps`` of Langevin dynamics started at $N(0, I)$ in
        standardised coordinates, $\eta$ annealed geometrically from ``step_size`` (default
        $\max(0.1\sigma^2, 10^{-3})$) to ``final_step_size`` (default ``step_size / 10``)."""
        eta0 = max(0.1 * self.sigma**2, 1e-3) if step_size is None else float(step_size)
        sampler = Langevin(
            steps=check_count(steps, "steps"), step_size=eta0, final_step_size=final_step_size
        )
        return sampler(self, key, check_count(n))[0]
