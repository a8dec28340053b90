r"""Discrete-time DDPM (Ho et al. 2020): $T$ noising steps, an $\varepsilon$-predictor and its
variational bound.

The forward chain $q(z_i \mid z_{i-1}) = \mathcal{N}(\sqrt{1-\beta_i}\,z_{i-1}, \beta_i I)$,
$i = 1..T$ (linear $\beta_i$ from $10^{-4}$ to $0.02$ for $T = 1000$, the shared
:class:`~flowlab._schedule.LinearBetaSchedule`), gives
$z_i \mid z_0 \sim \mathcal{N}(\sqrt{\bar\alpha_i} z_0, (1 - \bar\alpha_i) I)$,
$\bar\alpha_i = \prod_{j \le i}(1 - \beta_j)$. A network $\hat\varepsilon_\theta(i/T, z_i)$
trained with $L_\text{simple} = \mathbb{E}\|\hat\varepsilon_\theta - \varepsilon\|^2$
(:class:`~flowlab.objectives.DenoisingScoreMatching`) defines the reverse chain
$p_\theta(z_{i-1} \mid z_i) = \mathcal{N}(\tilde\mu(z_i, \hat z_0), \beta_i I)$.

Likelihood kind *bound*: :meth:`DDPM.log_prob_bound` is the variational bound
$\log p_\theta(z_0) \ge -L_T - \sum_{i=2}^T L_{i-1} - L_0$ (Ho et al. eq. 5), with

* $L_T = \mathrm{KL}(q(z_T|z_0)\,\|\,\mathcal{N}(0, I))$ in closed form;
* $L_{i-1} = \mathrm{KL}(q(z_{i-1}|z_i, z_0)\,\|\,p_\theta(z_{i-1}|z_i))$ between Gaussians
  in closed form, $z_i$ drawn from $q(z_i | z_0)$ (one draw per term; every $i$ is summed,
  none sampled);
* the **decoder term** for continuous data: $L_0 = -\log \mathcal{N}(z_0;
  \hat z_0(z_1), \beta_1 I)$, a Gaussian with the first step's variance (Ho et al. use a
  discretised decoder for 8-bit images; 2D data are continuous).

The bound is computed in standardised coordinates and mapped to the data's with the
standardisation's log-determinant, so it is in nats in data coordinates; it is a Monte
Carlo estimate of a bound (report its standard error), never an exact likelihood. Samplers:
:class:`~flowlab.samplers.Ancestral` (default, all $T$ steps) and
:class:`~flowlab.samplers.DDIM` (any subsequence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_count, check_key
from ._model import AbstractBoundLikelihood
from ._ode import Stats
from ._protocols import AbstractGaussianDiffusion
from ._schedule import LinearBetaSchedule
from ._standardize import Standardize, resolve_data_size
from ._typing import Array, Key, Point, Points, Time, Values
from .samplers import Ancestral

__all__ = ["DDPM"]


class DDPM(AbstractGaussianDiffusion, AbstractBoundLikelihood):
    r"""A discrete-time DDPM with $T$ = ``num_steps`` steps.

    Times are $t = i/T$, $i = 0..T$ ($t = 0$ is the data, $t = 1$ the prior), so the network
    sees a time in $[0, 1]$ like every other flowlab network.

    Arguments:
        network: noise predictor $\hat\varepsilon_\theta(t, z)$ on one example.
        num_steps: $T$ (default 1000).
        schedule: the $\beta$ schedule (default linear, $\beta_1 = 10^{-4}$,
            $\beta_T = 0.02$ at $T = 1000$).
        data_size, standardize: as for every flowlab model.
    """

    network: Callable
    standardize: Standardize | None
    schedule: LinearBetaSchedule
    num_steps: int = eqx.field(static=True)
    data_size: int | None = eqx.field(static=True)
    trainable_fields: ClassVar[tuple[str, ...]] = ("network",)
    bound_name: ClassVar[str] = "DDPM variational bound (Ho et al. 2020, eq. 5)"

    def __init__(
        self,
        network: Callable[[Time, Point], Point],
        num_steps: int = 1000,
        *,
        schedule: LinearBetaSchedule | None = None,
        data_size: int | None = None,
        standardize: Standardize | None = None,
    ):
        self.network = network
        self.num_steps = check_count(num_steps, "num_steps")
        self.schedule = LinearBetaSchedule() if schedule is None else schedule
        self.schedule.discrete(self.num_steps)  # validates
        self.data_size, self.standardize = resolve_data_size(network, data_size, standardize)

    # -- the schedule ------------------------------------------------------------------------

    def betas(self) -> np.ndarray:
        r"""$\beta_1, \dots, \beta_T$ (float64)."""
        return self.schedule.discrete(self.num_steps)

    def alpha_bars(self) -> np.ndarray:
        r"""$\bar\alpha_0 = 1, \bar\alpha_1, \dots, \bar\alpha_T$ (float64, length $T+1$)."""
        return np.concatenate([[1.0], np.cumprod(1.0 - self.betas())])

    def marginal(self, t: Time) -> tuple[Array, Array]:
        i = jnp.round(jnp.asarray(t) * self.num_steps).astype(jnp.int32)
        ab = jnp.asarray(self.alpha_bars(), jnp.result_type(float))
        return jnp.sqrt(ab[i]), jnp.sqrt(1.0 - ab[i])

    def sampling_times(self, steps: int) -> Array:
        steps = check_count(steps, "steps")
        if steps > self.num_steps:
            raise ValueError(
                f"a DDPM with T={self.num_steps} steps samples with at most {self.num_steps} "
                f"steps, got steps={steps}"
            )
        idx = np.round(np.linspace(self.num_steps, 0, steps + 1)).astype(int)
        return jnp.asarray(idx / self.num_steps, jnp.result_type(float))

    @property
    def default_steps(self) -> int:
        return self.num_steps

    def training_times(self, key: Key, n: int) -> Array:
        i = jax.random.randint(key, (n,), 1, self.num_steps + 1)
        return i.astype(jnp.result_type(float)) / self.num_steps

    def predict_noise(self, t: Time, z: Point) -> Point:
        return self.network(t, z)

    def prior_sample(self, key: Key, n: int) -> Points:
        return jax.random.normal(key, (n, self.require_data_size()))

    # -- sampling ----------------------------------------------------------------------------

    def sample_with_stats(self, key: Key, n: int, *, sampler=None) -> tuple[Points, Stats]:
        """``n`` samples (data coordinates) and their cost; default sampler: ancestral over
        all $T$ steps (:class:`~flowlab.samplers.Ancestral`)."""
        sampler = Ancestral() if sampler is None else sampler
        return sampler(self, key, check_count(n))

    # -- the variational bound ---------------------------------------------------------------

    def log_prob_bound(self, x: Points, *, key: Key) -> Values:
        r"""The variational lower bound on $\log p_\theta(x)$ of each row of ``x`` (nats,
        data coordinates), one Monte Carlo draw of $z_i$ per term and point.

        Returns an array of shape ``(n,)``; average several keys (or points) and report the
        standard error. Raises ``ValueError`` for ``x`` not of shape ``(n, d)`` or
        non-finite, or a ``key`` that is not one PRNG key (e.g. an int seed)."""
        x = self.check_points(x)
        check_key(key)
        return _log_prob_bound(self, x, key)

    def bound_terms(self, x: Points, *, key: Key) -> dict[str, Values]:
        r"""The terms of the bound per point (standardised coordinates, nats):
        ``prior`` $L_T$, ``diffusion`` $\sum_{i\ge2} L_{i-1}$, ``decoder`` $L_0$, and
        ``log_det`` (the standardisation's); ``log_prob_bound = log_det - prior - diffusion -
        decoder``."""
        x = self.check_points(x)
        check_key(key)
        return _bound_terms(self, x, key)


def _gaussian_kl(mean_q, var_q, mean_p, var_p):
    d = mean_q.shape[-1]
    return 0.5 * (
        jnp.sum((mean_q - mean_p) ** 2, axis=-1) / var_p
        + d * (var_q / var_p - 1.0 - jnp.log(var_q / var_p))
    )


@eqx.filter_jit
def _bound_terms(model: DDPM, x, key):
    std = model.standardizer(x.shape[-1])
    z0 = std.forward(x)
    n, d = z0.shape
    dtype = z0.dtype
    T = model.num_steps
    ab = model.alpha_bars()
    betas = model.betas()
    a = jnp.asarray(np.sqrt(ab), dtype)
    s2 = jnp.asarray(1.0 - ab, dtype)
    beta = jnp.asarray(betas, dtype)

    # L_T: KL(N(a_T z0, s_T^2) || N(0, I))
    prior = 0.5 * jnp.sum(a[T] ** 2 * z0**2 + s2[T] - 1.0 - jnp.log(s2[T]), axis=-1)

    def term(i, k):
        # one draw z_i ~ q(z_i | z0) and the network's x0 prediction
        noise = jax.random.normal(k, z0.shape, dtype)
        zi = a[i] * z0 + jnp.sqrt(s2[i]) * noise
        t = jnp.full((n,), i / T, dtype)
        eps = jax.vmap(model.network)(t, zi)
        x0_hat = (zi - jnp.sqrt(s2[i]) * eps) / a[i]
        return zi, x0_hat

    def kl_term(carry, inputs):
        i, k = inputs
        zi, x0_hat = term(i, k)
        # posterior q(z_{i-1} | z_i, z0): mean (r s_{i-1}^2 z_i + a_{i-1} beta_i z0)/s_i^2
        r = a[i] / a[i - 1]
        coef_z = r * s2[i - 1] / s2[i]
        coef_0 = a[i - 1] * beta[i - 1] / s2[i]
        mean_q = coef_z * zi + coef_0 * z0
        mean_p = coef_z * zi + coef_0 * x0_hat
        var_q = s2[i - 1] * beta[i - 1] / s2[i]
        return carry + _gaussian_kl(mean_q, var_q, mean_p, beta[i - 1]), None

    k_dec, k_diff = jax.random.split(key)
    idx = jnp.arange(2, T + 1)
    diffusion, _ = jax.lax.scan(
        kl_term, jnp.zeros(n, dtype), (idx, jax.random.split(k_diff, T - 1))
    )
    # L_0 = -log N(z0; x0_hat(z_1), beta_1 I)
    _, x0_hat = term(1, k_dec)
    decoder = 0.5 * jnp.sum((z0 - x0_hat) ** 2, axis=-1) / beta[0] + 0.5 * d * jnp.log(
        2 * jnp.pi * beta[0]
    )
    return {"prior": prior, "diffusion": diffusion, "decoder": decoder, "log_det": std.log_det()}


def _log_prob_bound(model: DDPM, x, key):
    t = _bound_terms(model, x, key)
    return t["log_det"] - t["prior"] - t["diffusion"] - t["decoder"]
