r"""Forward noising SDEs of score-based diffusion models (Song et al. 2021).

Each SDE $dx = f(t, x)\,dt + g(t)\,dw$ runs from the data at $t = \epsilon$ (a small
cut-off, where the score is still finite) to (approximately) its prior at $t = 1$. All three
have affine drifts, so the perturbation kernel is Gaussian:
$$x_t \mid x_0 \sim \mathcal{N}\big(a(t)\,x_0,\ \sigma(t)^2 I\big),$$
with $a$ the *marginal mean coefficient* and $\sigma$ the *marginal standard deviation*
(both measured from $t = 0$). Denoising score matching, the samplers and the
probability-flow ODE in :mod:`flowlab.diffusion` need nothing else.

Times are scalars and points single examples of shape ``(d,)``, except
:meth:`~AbstractSDE.prior_sample` and :meth:`~AbstractSDE.prior_log_prob`, which act on
batches ``(n, d)``.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._schedule import LinearBetaSchedule
from ._typing import Array, Key, Point, Points, Time, Values

__all__ = ["AbstractSDE", "SDES", "SubVPSDE", "VESDE", "VPSDE", "get_sde"]


def _isotropic_log_prob(x: Points, std: float) -> Values:
    d = x.shape[-1]
    return -0.5 * jnp.sum(x**2, axis=-1) / std**2 - d * np.log(std) - 0.5 * d * np.log(2 * np.pi)


class AbstractSDE(eqx.Module):
    r"""A forward SDE $dx = f(t, x)\,dt + g(t)\,dw$ with a Gaussian perturbation kernel.

    Subclasses define the drift $f$, the scalar diffusion $g$, the kernel
    $x_t \mid x_0 \sim \mathcal{N}(a(t) x_0, \sigma(t)^2 I)$ and the prior $p_1$. The two
    must agree: $a' = a \cdot f/x$ (the drift is linear, $f(t, x) = \dot a / a \cdot x$) and
    $(\sigma^2)' = 2 (\dot a / a)\, \sigma^2 + g^2$.

    Attributes:
        eps: the time of the data, $0 < \epsilon < 1$; models are trained on
            $t \sim U(\epsilon, 1)$ and every density is the model's density at $t=\epsilon$.
    """

    eps: eqx.AbstractVar[float]

    def __check_init__(self):
        if not (0.0 < self.eps < 1.0):
            raise ValueError(f"expected 0 < eps < 1, got eps={self.eps!r}")

    @abc.abstractmethod
    def drift(self, t: Time, x: Point) -> Point:
        """The drift $f(t, x)$ at one point ``x`` of shape ``(d,)``."""

    @abc.abstractmethod
    def diffusion(self, t: Time) -> Array:
        """The scalar diffusion coefficient $g(t)$."""

    @abc.abstractmethod
    def marginal_mean_coeff(self, t: Time) -> Array:
        r"""$a(t)$ in $\mathbb{E}[x_t \mid x_0] = a(t)\,x_0$."""

    @abc.abstractmethod
    def marginal_std(self, t: Time) -> Array:
        r"""$\sigma(t)$ in $\operatorname{Cov}[x_t \mid x_0] = \sigma(t)^2 I$."""

    @abc.abstractmethod
    def prior_sample(self, key: Key, shape: tuple[int, ...]) -> Array:
        """Draws from the prior $p_1$ of the given shape (e.g. ``(n, d)``)."""

    @abc.abstractmethod
    def prior_log_prob(self, x: Points) -> Values:
        """Log-density of the prior at each row of ``x`` (shape ``(n, d)`` -> ``(n,)``)."""


class _AbstractLinearBetaSDE(AbstractSDE):
    r"""The drift $-\tfrac12\beta(t)\,x$ of the VP family with the shared
    :class:`~flowlab._schedule.LinearBetaSchedule`: $a(t) = e^{-B(t)/2}$, prior
    $\mathcal{N}(0, I)$. Subclasses hold the fields and choose the diffusion and with it
    $\sigma(t)$.

    Attributes:
        beta_min, beta_max: $0 < \beta_{\min} < \beta_{\max}$.
    """

    beta_min: eqx.AbstractVar[float]
    beta_max: eqx.AbstractVar[float]

    @property
    def schedule(self) -> LinearBetaSchedule:
        """The $\beta$ schedule (validated on construction)."""
        return LinearBetaSchedule(self.beta_min, self.beta_max)

    def __check_init__(self):
        self.schedule  # noqa: B018  (raises on an invalid schedule)

    def beta(self, t: Time) -> Array:
        r"""$\beta(t)$."""
        return self.schedule.beta(t)

    def integrated_beta(self, t: Time) -> Array:
        r"""$B(t) = \int_0^t \beta(s)\,ds$."""
        return self.schedule.integrated(t)

    def drift(self, t: Time, x: Point) -> Point:
        return -0.5 * self.beta(t) * x

    def marginal_mean_coeff(self, t: Time) -> Array:
        return jnp.exp(-0.5 * self.integrated_beta(t))

    def prior_sample(self, key: Key, shape: tuple[int, ...]) -> Array:
        return jax.random.normal(key, shape)

    def prior_log_prob(self, x: Points) -> Values:
        return _isotropic_log_prob(x, 1.0)


class VPSDE(_AbstractLinearBetaSDE):
    r"""Variance-preserving SDE, the continuous limit of DDPM.

    $$dx = -\tfrac12 \beta(t)\, x\,dt + \sqrt{\beta(t)}\,dw, \qquad
    \beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min}).$$
    With $B(t) = \int_0^t \beta = \beta_{\min} t + \tfrac12 (\beta_{\max}-\beta_{\min}) t^2$:
    $a(t) = e^{-B(t)/2}$, $\sigma(t)^2 = 1 - e^{-B(t)}$; prior $\mathcal{N}(0, I)$.
    With the defaults $a(1) = e^{-B(1)/2} = e^{-5.025} \approx 0.0066$, so $p_1$ is
    $\mathcal{N}(0, I)$ to within $a(1)^2 \approx 4\cdot 10^{-5}$ in variance for unit-scale data.

    Arguments:
        beta_min, beta_max: $0 < \beta_{\min} < \beta_{\max}$.
        eps: data time (default $10^{-3}$).
    """

    beta_min: float = eqx.field(static=True, default=0.1)
    beta_max: float = eqx.field(static=True, default=20.0)
    eps: float = eqx.field(static=True, default=1e-3)

    def diffusion(self, t: Time) -> Array:
        return jnp.sqrt(self.beta(t))

    def marginal_std(self, t: Time) -> Array:
        return jnp.sqrt(-jnp.expm1(-self.integrated_beta(t)))


class SubVPSDE(_AbstractLinearBetaSDE):
    r"""Sub-variance-preserving SDE: the VP drift with a smaller diffusion.

    $$dx = -\tfrac12 \beta(t)\, x\,dt + \sqrt{\beta(t)\big(1 - e^{-2B(t)}\big)}\,dw,$$
    so $a(t) = e^{-B(t)/2}$ as for VP but $\sigma(t) = 1 - e^{-B(t)}$ (the VP variance
    $1 - e^{-B}$ squared, hence below it). Prior $\mathcal{N}(0, I)$.

    Arguments:
        beta_min, beta_max: $0 < \beta_{\min} < \beta_{\max}$.
        eps: data time (default $10^{-3}$).
    """

    beta_min: float = eqx.field(static=True, default=0.1)
    beta_max: float = eqx.field(static=True, default=20.0)
    eps: float = eqx.field(static=True, default=1e-3)

    def diffusion(self, t: Time) -> Array:
        return jnp.sqrt(self.beta(t) * -jnp.expm1(-2.0 * self.integrated_beta(t)))

    def marginal_std(self, t: Time) -> Array:
        return -jnp.expm1(-self.integrated_beta(t))


class VESDE(AbstractSDE):
    r"""Variance-exploding SDE (the continuous limit of SMLD / NCSN).

    $$dx = \sigma(t)\sqrt{2 \log(\sigma_{\max}/\sigma_{\min})}\,dw, \qquad
    \sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^t.$$
    No drift, so $a(t) = 1$, and integrating $g^2$ from 0 gives the exact kernel variance
    $\sigma(t)^2 - \sigma_{\min}^2$ (Song et al.'s code uses $\sigma(t)^2$, i.e. treats the
    data as already blurred by $\sigma_{\min}$; here the kernel matches the SDE exactly).
    Prior $\mathcal{N}(0, \sigma_{\max}^2 I)$.

    flowlab models work in standardised coordinates (unit variance per coordinate), where
    pairwise distances of the 2D datasets are a few units; $\sigma_{\max}$ must cover them
    (Song & Ermon 2020, technique 1), so the default is $\sigma_{\max} = 4$ rather than the
    image-scale 50 or 348.

    Arguments:
        sigma_min, sigma_max: $0 < \sigma_{\min} < \sigma_{\max}$.
        eps: data time (default $10^{-3}$).
    """

    sigma_min: float = eqx.field(static=True, default=0.01)
    sigma_max: float = eqx.field(static=True, default=4.0)
    eps: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if not (0.0 < self.sigma_min < self.sigma_max):
            raise ValueError(
                f"expected 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )

    @property
    def _log_ratio(self) -> float:
        return float(np.log(self.sigma_max / self.sigma_min))

    def sigma(self, t: Time) -> Array:
        r"""$\sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^t$."""
        return self.sigma_min * jnp.exp(t * self._log_ratio)

    def drift(self, t: Time, x: Point) -> Point:
        return jnp.zeros_like(x)

    def diffusion(self, t: Time) -> Array:
        return self.sigma(t) * np.sqrt(2.0 * self._log_ratio)

    def marginal_mean_coeff(self, t: Time) -> Array:
        return jnp.ones_like(jnp.asarray(t, dtype=float))

    def marginal_std(self, t: Time) -> Array:
        return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * self._log_ratio * t))

    def prior_sample(self, key: Key, shape: tuple[int, ...]) -> Array:
        return self.sigma_max * jax.random.normal(key, shape)

    def prior_log_prob(self, x: Points) -> Values:
        return _isotropic_log_prob(x, self.sigma_max)


SDES: dict[str, type[AbstractSDE]] = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}
"""The SDEs by name, for :func:`get_sde` and command-line flags."""


def get_sde(name: str, **kwargs) -> AbstractSDE:
    """The SDE called ``name`` (``"vp"``, ``"subvp"`` or ``"ve"``), built with ``kwargs``."""
    try:
        cls = SDES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown SDE {name!r}; expected one of: {', '.join(SDES)}") from None
    return cls(**kwargs)
