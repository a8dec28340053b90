r"""Score matching: denoising score matching for Gaussian-kernel diffusions (continuous
and discrete time), at one noise level for a single-noise score model, and with the score
$-\nabla_z E$ of an energy-based model."""

from __future__ import annotations

import enum

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_count
from .._protocols import AbstractEnergyModel, AbstractGaussianDiffusion, AbstractSDEModel
from .._typing import Array, Key, Points
from ..single_noise import SingleNoiseScore
from ._base import AbstractObjective, check_model

__all__ = ["WEIGHTINGS", "DenoisingScoreMatching", "EnergyDSM", "SingleNoiseDSM", "Weighting"]


class Weighting(enum.StrEnum):
    r"""Time weightings of :class:`DenoisingScoreMatching`: ``STD2`` $\lambda = \sigma^2$
    (the residual form) or ``LIKELIHOOD`` $\lambda = g^2$ (SDE models only)."""

    STD2 = "std2"
    LIKELIHOOD = "likelihood"


WEIGHTINGS: tuple[str, ...] = tuple(w.value for w in Weighting)
"""The names of :class:`Weighting` (for command-line flags)."""


def _weighting(value) -> Weighting:
    try:
        return Weighting(value)
    except ValueError:
        raise ValueError(
            f"unknown weighting {value!r}; expected one of: {', '.join(WEIGHTINGS)}"
        ) from None


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive integer, got {value!r}")


def _check_energy_model(model, name: str) -> None:
    check_model(
        model, AbstractEnergyModel, name, "an energy model (AbstractEnergyModel, e.g. an EBM)"
    )


class DenoisingScoreMatching(AbstractObjective):
    r"""Denoising score matching (Vincent 2011; Song et al. 2021; Ho et al. 2020) for a
    Gaussian-kernel diffusion model: a :class:`~flowlab.Diffusion` or a
    :class:`~flowlab.DDPM`.

    For a standardised data point $z_0$, a training time $t$ drawn by the model
    ($U(\epsilon, 1)$ for an SDE, a uniform step index for DDPM) and
    $z_t = a(t) z_0 + \sigma(t)\varepsilon$, the conditional score is
    $\nabla \log p(z_t \mid z_0) = -\varepsilon/\sigma(t)$, so with the weighting
    $\lambda(t) = \sigma(t)^2$ (``"std2"``, the course's residual form)
    $$\lambda(t)\,\big\|s_\theta(t, z_t) - \nabla\log p(z_t\mid z_0)\big\|^2
      = \big\|\hat\varepsilon_\theta(t, z_t) - \varepsilon\big\|^2,$$
    a residual of order one at every $t$; for DDPM this is $L_\text{simple}$.
    ``"likelihood"`` (SDE models only) uses $\lambda(t) = g(t)^2$ (Song et al. 2021b):
    then $\tfrac12\int_\epsilon^1 \mathbb{E}\,g^2\|s_\theta - \nabla\log p(z_t|z_0)\|^2 dt$
    (this loss times $(1-\epsilon)/2$, plus terms free of $\theta$) bounds the NLL of the
    model's *reverse SDE* (not of its PF-ODE) from above, in standardised coordinates
    (Song et al. 2021b, Theorem 1); the weight has high variance near $t = \epsilon$.

    The loss is summed over coordinates and averaged over the batch and the ``k``
    independent $(t, \varepsilon)$ draws per data point.

    Arguments:
        k: noise draws per data point.
        weighting: a :class:`Weighting` or its name, ``"std2"`` or ``"likelihood"``.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.

    Raises:
        ValueError: (when called, at trace time) for a model that is not an
            :class:`~flowlab.AbstractGaussianDiffusion` (with ``"likelihood"``: not an
            :class:`~flowlab.AbstractSDEModel`).
    """

    k: int = eqx.field(static=True, default=1)
    weighting: Weighting = eqx.field(static=True, default=Weighting.STD2, converter=_weighting)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        _check_positive_int(self.k, "k")

    def __call__(self, model, x: Points, key: Key) -> Array:
        check_model(
            model,
            AbstractGaussianDiffusion,
            "DenoisingScoreMatching",
            "a Gaussian-kernel diffusion (AbstractGaussianDiffusion: a Diffusion or a DDPM)",
        )
        z0 = jnp.repeat(model.standardizer(x.shape[-1]).forward(x), self.k, axis=0)
        k_t, k_noise = jax.random.split(key)
        t = model.training_times(k_t, z0.shape[0])
        noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
        a, std = jax.vmap(model.marginal)(t)
        zt = a[:, None] * z0 + std[:, None] * noise
        pred = jax.vmap(model.predict_noise)(t, zt)
        residual = jnp.sum((pred - noise) ** 2, axis=-1)
        if self.weighting is Weighting.LIKELIHOOD:
            if not isinstance(model, AbstractSDEModel):
                raise ValueError(
                    f"the 'likelihood' weighting needs an SDE model (AbstractSDEModel: g(t)), "
                    f"got {type(model).__name__}; use weighting='std2'"
                )
            residual = residual * jax.vmap(model.sde.diffusion)(t) ** 2 / std**2
        return jnp.mean(residual)


class SingleNoiseDSM(AbstractObjective):
    r"""Denoising score matching at a :class:`~flowlab.SingleNoiseScore`'s one $\sigma$, in
    residual form: $\sigma^2\|s_\theta(z + \sigma\varepsilon) + \varepsilon/\sigma\|^2 =
    \|\hat\varepsilon_\theta(z + \sigma\varepsilon) - \varepsilon\|^2$, averaged over the
    batch and ``k`` noise draws per point.

    Arguments:
        k: noise draws per data point.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.

    Raises:
        ValueError: (when called, at trace time) for a model that is not a
            :class:`~flowlab.SingleNoiseScore`.
    """

    k: int = eqx.field(static=True, default=1)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        _check_positive_int(self.k, "k")

    def __call__(self, model, x: Points, key: Key) -> Array:
        check_model(
            model,
            SingleNoiseScore,
            "SingleNoiseDSM",
            "a single-noise score model (SingleNoiseScore)",
        )
        z = jnp.repeat(model.standardizer(x.shape[-1]).forward(x), self.k, axis=0)
        noise = jax.random.normal(key, z.shape, z.dtype)
        pred = jax.vmap(model.predict_noise)(z + model.sigma * noise)
        return jnp.mean(jnp.sum((pred - noise) ** 2, axis=-1))


class EnergyDSM(AbstractObjective):
    r"""Denoising score matching for an :class:`~flowlab.EBM` with the score
    $s = -\nabla_z E$, at one noise level $\sigma$ (standardised units), in the course's
    residual form:
    $$\frac{1}{\sigma^2}\big\|\tilde z + \sigma^2 s(\tilde z) - z\big\|^2
      = \big\|\varepsilon - \sigma\nabla_z E(z + \sigma\varepsilon)\big\|^2,$$
    averaged over the batch and ``k`` noise draws per point, plus a small centring penalty
    $\alpha\,\overline{E(z)}^2$: DSM sees only $\nabla_z E$, so the energy's level is free
    and drifts (by $-15$ nats in 3000 steps on pinwheel), which would push it into the
    bound $B$; the penalty pins the level and leaves the shape alone. The minimiser is the
    score of the smoothed density $p_\sigma = p * N(0, \sigma^2 I)$ (Vincent 2011), so the
    EBM learns $p_\sigma$ (its exact NLL on data is that of $p_\sigma$, above the data's
    entropy); training differentiates through $\nabla_z E$ (double back-propagation).

    Arguments:
        sigma: the noise level (standardised units).
        k: noise draws per data point.
        alpha: the centring penalty.
        holdout_repeats: noise draws per hold-out point.

    Raises:
        ValueError: (when called, at trace time) for a model that is not an
            :class:`~flowlab.AbstractEnergyModel`.
    """

    sigma: float = eqx.field(static=True, default=0.1)
    k: int = eqx.field(static=True, default=4)
    alpha: float = eqx.field(static=True, default=1e-3)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        check_count(self.k, "k")
        if not self.sigma > 0:
            raise ValueError(f"expected sigma > 0, got {self.sigma!r}")
        if not self.alpha >= 0:
            raise ValueError(f"expected alpha >= 0, got {self.alpha!r}")

    def __call__(self, model, x: Points, key: Key) -> Array:
        _check_energy_model(model, "EnergyDSM")
        z = jnp.repeat(model.standardizer(x.shape[-1]).forward(x), self.k, axis=0)
        eps = jax.random.normal(key, z.shape, z.dtype)
        grad_e = jax.vmap(jax.grad(model.total_energy))(z + self.sigma * eps)
        loss = jnp.mean(jnp.sum((eps - self.sigma * grad_e) ** 2, axis=-1))
        if self.alpha == 0.0:
            return loss
        level = jnp.mean(jax.vmap(model.total_energy)(z))
        return loss + self.alpha * level**2
