r"""Continuous normalizing flow: a vector field, a base distribution (the standard normal, or
any :class:`AbstractPrior` with samples and an exact log-density, so that a flow can carry
one distribution onto another) and an exact likelihood."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._flow import AbstractFlow
from ._ode import SolverOptions, standard_normal_log_prob
from ._standardize import Standardize, resolve_data_size
from ._typing import Key, Point, Points, Time, Values

__all__ = ["CNF", "AbstractPrior", "Gaussian", "GaussianMixture"]


class AbstractPrior(eqx.Module):
    """A base distribution in *data* coordinates: samples and an exact, traceable
    log-density (abstract). What :class:`CNF` takes as ``prior=`` to flow from one
    distribution to another (e.g. ``8gaussians -> moons``)."""

    data_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def sample(self, key: Key, n: int) -> Points:
        """``n`` draws, shape ``(n, d)``."""

    @abc.abstractmethod
    def log_prob(self, x: Points) -> Values:
        """Exact log-density at each row of ``x`` (shape ``(n, d)``), in nats."""


class Gaussian(AbstractPrior):
    r"""$\mathcal{N}(\mu, \Sigma)$ with a full covariance (Cholesky factor ``L``,
    $\Sigma = L L^\top$).

    Arguments:
        mean: shape ``(d,)``.
        cov: shape ``(d, d)``, symmetric positive definite.
    """

    mean: jax.Array
    chol: jax.Array
    data_size: int = eqx.field(static=True)

    def __init__(self, mean, cov):
        mean = jnp.asarray(mean, float)
        cov = jnp.asarray(cov, float)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(
                f"expected mean of shape (d,) and cov of shape (d, d), got {mean.shape} and "
                f"{cov.shape}"
            )
        chol = jnp.linalg.cholesky(cov)
        if not bool(jnp.all(jnp.isfinite(chol))):
            raise ValueError("expected cov to be symmetric positive definite")
        self.mean, self.chol, self.data_size = mean, chol, int(mean.shape[0])

    def sample(self, key: Key, n: int) -> Points:
        eps = jax.random.normal(key, (n, self.data_size))
        return self.mean + eps @ self.chol.T

    def log_prob(self, x: Points) -> Values:
        z = jax.scipy.linalg.solve_triangular(self.chol, (x - self.mean).T, lower=True).T
        log_det = jnp.sum(jnp.log(jnp.diag(self.chol)))
        return standard_normal_log_prob(z) - log_det


class GaussianMixture(AbstractPrior):
    r"""$\sum_k w_k\,\mathcal{N}(\mu_k, \sigma^2 I)$, an isotropic Gaussian mixture.

    Arguments:
        means: shape ``(K, d)``.
        std: the common standard deviation $\sigma > 0$.
        weights: shape ``(K,)``, positive (normalised here); uniform by default.

    :meth:`from_dataset` builds the mixture datasets (``gaussian_mixture``,
    ``ffjord_8gaussians``, ``torchcfm_8gaussians``), whose ``log_prob`` then equals
    :func:`flowlab.datasets.log_prob`.
    """

    means: jax.Array
    std: float = eqx.field(static=True)
    log_weights: jax.Array
    data_size: int = eqx.field(static=True)

    def __init__(self, means, std: float, weights=None):
        means = jnp.asarray(means, float)
        if means.ndim != 2:
            raise ValueError(f"expected means of shape (K, d), got {means.shape}")
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"expected std > 0, got {std!r}")
        k = means.shape[0]
        w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (k,) or not np.all(w > 0):
            raise ValueError(f"expected {k} positive weights, got {w!r}")
        self.means, self.std, self.data_size = means, float(std), int(means.shape[1])
        self.log_weights = jnp.asarray(np.log(w / w.sum()), float)

    @classmethod
    def from_dataset(cls, name: str) -> GaussianMixture:
        """The mixture dataset ``name`` (see :func:`flowlab.datasets.gaussian_mixture_params`)."""
        from .datasets import gaussian_mixture_params

        means, std, weights = gaussian_mixture_params(name)
        return cls(means, std, weights)

    def sample(self, key: Key, n: int) -> Points:
        k_comp, k_noise = jax.random.split(key)
        idx = jax.random.categorical(k_comp, self.log_weights, shape=(n,))
        return self.means[idx] + self.std * jax.random.normal(k_noise, (n, self.data_size))

    def log_prob(self, x: Points) -> Values:
        d2 = jnp.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)
        log_norm = self.data_size * (math.log(self.std) + 0.5 * math.log(2 * math.pi))
        return jax.nn.logsumexp(self.log_weights - 0.5 * d2 / self.std**2, axis=-1) - log_norm


class CNF(AbstractFlow):
    r"""A continuous normalizing flow $\dot z = f(t, z)$ from $N(0, I)$ at $t=0$ to data at
    $t=1$ (``t_base = 0``, ``t_data = 1``).

    The vector field acts on standardised coordinates $z = (x - \mu)/s$ (see
    :class:`~flowlab.Standardize`); every density is reported in the data's own coordinates:
    $$\log p(x) = \log N(z_0; 0, I) + \int_1^0 \nabla\cdot f(t, z_t)\,dt - \sum_i \log s_i,$$
    with $z_1 = (x - \mu)/s$ integrated backwards to $z_0$. The divergence is the exact
    Jacobian trace and the solve adaptive (Dopri5, PID, ``rtol = atol = 1e-5`` by default).
    Sampling integrates forwards. Trained: ``vector_field``.

    **Source to target.** With ``prior=`` an :class:`AbstractPrior` $q$ (given in data
    coordinates) the flow starts from $x_0 \sim q$ instead of $N(0, I)$, and the likelihood
    stays exact: $\log p(x) = \log q(x_0) + \int_1^0 \nabla\cdot f\,dt$. In standardised
    coordinates the prior is $z_0 = (x_0 - \mu)/s$, with density
    $q(\mu + s z_0)\prod_i s_i$ (``prior_log_prob``), so the same standardisation serves
    source and target. :class:`~flowlab.objectives.FlowMatching` draws its $z_0$ from
    ``prior_sample``, so it trains source to target unchanged (independent or minibatch-OT
    pairs).

    Arguments:
        vector_field: any Equinox module or plain callable ``f(t, z) -> dz/dt`` acting on one
            example of shape ``(d,)``.
        data_size: ``d``; read from ``vector_field.data_size`` or ``standardize`` when
            omitted; if neither has it, ``log_prob`` reads it from its points (sampling then
            needs it).
        standardize: the affine map to standardised coordinates (identity by default).
        prior: ``None`` for $N(0, I)$ in standardised coordinates, or an
            :class:`AbstractPrior` in data coordinates (its ``data_size`` must match).
        **solver_options: fields of :class:`~flowlab.SolverOptions` (``solver``, ``rtol``,
            ``atol``, ``max_steps``, ``adjoint``, ``norm``, ``dt0``).
    """

    vector_field: Callable
    standardize: Standardize | None
    options: SolverOptions
    data_size: int | None = eqx.field(static=True)
    prior: AbstractPrior | None = None
    trainable_fields: ClassVar[tuple[str, ...]] = ("vector_field",)

    def __init__(
        self,
        vector_field: Callable[[Time, Point], Point],
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        prior: AbstractPrior | None = None,
        **solver_options,
    ):
        if prior is not None and not isinstance(prior, AbstractPrior):
            raise ValueError(
                f"expected prior to be None or an AbstractPrior, got {type(prior).__name__}"
            )
        if prior is not None and data_size is None and standardize is None:
            if not isinstance(getattr(vector_field, "data_size", None), int):
                data_size = prior.data_size
        self.vector_field = vector_field
        self.data_size, self.standardize = resolve_data_size(vector_field, data_size, standardize)
        if prior is not None and prior.data_size != self.data_size:
            raise ValueError(
                f"expected a prior of data_size {self.data_size}, got {prior.data_size}"
            )
        self.prior = prior
        self.options = SolverOptions(**solver_options)

    def field(self, t: Time, z: Point) -> Point:
        return self.vector_field(t, z)

    @property
    def t_base(self) -> float:
        return 0.0

    @property
    def t_data(self) -> float:
        return 1.0

    def prior_sample(self, key: Key, n: int) -> Points:
        d = self.require_data_size()
        if self.prior is None:
            return jax.random.normal(key, (n, d))
        return self.standardizer(d).forward(self.prior.sample(key, n))

    def prior_log_prob(self, z: Points) -> Values:
        if self.prior is None:
            return standard_normal_log_prob(z)
        std = self.standardizer(z.shape[-1])
        return self.prior.log_prob(std.inverse(z)) - std.log_det()
