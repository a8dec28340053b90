r"""Classical density baselines with closed-form likelihoods: a full-covariance Gaussian,
a Gaussian mixture fitted by EM, and a Gaussian kernel density estimate.

Each is a flowlab model with an exact likelihood (:class:`~flowlab.AbstractExactLikelihood`):
``log_prob`` is the closed form (no ODE, no estimate), ``sample`` draws from it, and it
trains nothing (it is fitted in closed form or by EM, not by :func:`~flowlab.fit`). They
are what a generative model in more than two dimensions must beat (the digits' bits/dim,
:mod:`flowlab.datasets.digits`).

* :meth:`Gaussian.fit`: the maximum-likelihood mean and covariance (plus ``ridge`` on the
  diagonal): $\log p(x) = -\tfrac12 (x-\mu)^\top\Sigma^{-1}(x-\mu) - \tfrac12\log|2\pi\Sigma|$.
* :meth:`GaussianMixture.fit`: ``k`` full-covariance components by expectation-maximisation
  (written here in NumPy float64, a few lines; initialised by ``k`` distinct data points
  drawn with the key), each covariance regularised by ``ridge`` times the identity.
* :meth:`KDE.fit`: $p(x) = \frac1n\sum_i \mathcal{N}(x; x_i, h^2 I)$, with ``h`` chosen
  from a grid by the mean log-likelihood of a validation set (:meth:`KDE.select`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.special

from ._checks import check_count, check_key, check_points
from ._model import AbstractExactLikelihood
from ._ode import Stats
from ._typing import Array, Key, Points, Values

__all__ = ["KDE", "Gaussian", "GaussianMixture"]

_LOG_2PI = math.log(2.0 * math.pi)


def _as_points(x, d: int | None = None, name: str = "x") -> np.ndarray:
    x = np.asarray(x, np.float64)
    check_points(x, x.shape[-1] if d is None else d, name)  # shape and finiteness
    return x


def _gaussian_log_prob(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    chol = np.linalg.cholesky(cov)
    sol = scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)
    return (
        -0.5 * np.sum(sol**2, axis=0) - np.sum(np.log(np.diag(chol))) - 0.5 * x.shape[-1] * _LOG_2PI
    )


class _AbstractBaseline(AbstractExactLikelihood):
    trainable_fields: ClassVar[tuple[str, ...]] = ()

    def log_prob_with_stats(self, x: Points, **kwargs: Any) -> tuple[Values, Stats]:
        """Closed-form $\\log p(x)$ of each row (nats), a float64 NumPy array; ``stats`` counts one
        evaluation."""
        if kwargs:
            raise ValueError(f"{type(self).__name__}.log_prob takes no options, got {kwargs}")
        x = _as_points(x, self.data_size)
        return self._log_prob(x), Stats.fixed(1, 1)

    def likelihood_label(self) -> str:
        return f"exact: closed form ({type(self).__name__})"

    def sample_with_stats(self, key: Key, n: int, *, sampler: Any = None):
        if sampler is not None:
            raise ValueError(f"{type(self).__name__} draws exact samples; got sampler={sampler!r}")
        check_key(key)
        n = check_count(n)
        return jnp.asarray(self._sample(key, n), jnp.float32), Stats.fixed(1, 1)


class Gaussian(_AbstractBaseline):
    """A full-covariance Gaussian $\\mathcal{N}(\\mu, \\Sigma)$ (use :meth:`fit`)."""

    mean: np.ndarray
    cov: np.ndarray
    data_size: int = eqx.field(static=True)
    standardize: None

    @classmethod
    def fit(cls, x, ridge: float = 0.0) -> Gaussian:
        """The maximum-likelihood Gaussian of the rows of ``x`` (covariance divided by
        ``n``), with ``ridge`` added to the covariance's diagonal."""
        x = _as_points(x)
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / x.shape[0] + ridge * np.eye(x.shape[1])
        return cls(mean=mean, cov=cov, data_size=x.shape[1], standardize=None)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        return _gaussian_log_prob(x, self.mean, self.cov)

    def _sample(self, key: Key, n: int) -> Array:
        chol = jnp.asarray(np.linalg.cholesky(self.cov), jnp.float32)
        eps = jax.random.normal(key, (n, self.data_size), jnp.float32)
        return jnp.asarray(self.mean, jnp.float32) + eps @ chol.T


class GaussianMixture(_AbstractBaseline):
    """A mixture of full-covariance Gaussians (use :meth:`fit`)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    data_size: int = eqx.field(static=True)
    iterations: int = eqx.field(static=True, default=0)
    standardize: None

    @classmethod
    def fit(
        cls,
        x,
        k: int,
        *,
        key: Key,
        ridge: float = 1e-3,
        max_iterations: int = 200,
        tol: float = 1e-6,
    ) -> GaussianMixture:
        r"""EM for ``k`` full-covariance components on the rows of ``x``.

        Initialisation: means at ``k`` distinct rows drawn with ``key``, every covariance
        the data's, equal weights. Each M-step adds ``ridge`` to every covariance's
        diagonal (keeps them invertible in 64 dimensions). Stops when the mean
        log-likelihood gains less than ``tol`` nats per point, or after
        ``max_iterations``.
        """
        check_key(key)
        k = check_count(k, "k")
        x = _as_points(x)
        n, d = x.shape
        if k > n:
            raise ValueError(f"expected k <= the number of points {n}, got k={k}")
        idx = np.asarray(jax.random.choice(key, n, (k,), replace=False))
        means = x[idx].copy()
        cov0 = np.cov(x.T, bias=True) + ridge * np.eye(d)
        covs = np.repeat(cov0[None], k, 0)
        weights = np.full(k, 1.0 / k)
        previous, it = -np.inf, 0
        for it in range(1, max_iterations + 1):  # noqa: B007
            logr = np.stack(
                [np.log(weights[j]) + _gaussian_log_prob(x, means[j], covs[j]) for j in range(k)],
                1,
            )
            total = scipy.special.logsumexp(logr, axis=1)
            resp = np.exp(logr - total[:, None])
            nk = resp.sum(0) + 1e-12
            weights = nk / n
            means = (resp.T @ x) / nk[:, None]
            for j in range(k):
                c = x - means[j]
                covs[j] = (resp[:, j, None] * c).T @ c / nk[j] + ridge * np.eye(d)
            mean_ll = float(total.mean())
            if mean_ll - previous < tol:
                break
            previous = mean_ll
        return cls(
            weights=weights, means=means, covs=covs, data_size=d, iterations=it, standardize=None
        )

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        logr = np.stack(
            [
                np.log(w) + _gaussian_log_prob(x, m, c)
                for w, m, c in zip(self.weights, self.means, self.covs, strict=True)
            ],
            1,
        )
        return scipy.special.logsumexp(logr, axis=1)

    def _sample(self, key: Key, n: int) -> Array:
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.choice(k_comp, len(self.weights), (n,), p=jnp.asarray(self.weights))
        chols = jnp.asarray(np.linalg.cholesky(self.covs), jnp.float32)
        eps = jax.random.normal(k_noise, (n, self.data_size), jnp.float32)
        means = jnp.asarray(self.means, jnp.float32)
        return means[comp] + jnp.einsum("nij,nj->ni", chols[comp], eps)


class KDE(_AbstractBaseline):
    r"""A Gaussian kernel density estimate $\frac1n\sum_i \mathcal{N}(x; x_i, h^2 I)$."""

    points: np.ndarray
    bandwidth: float = eqx.field(static=True)
    data_size: int = eqx.field(static=True)
    standardize: None

    @classmethod
    def fit(cls, x, bandwidth: float) -> KDE:
        """The KDE of the rows of ``x`` with kernel width ``bandwidth`` (> 0)."""
        if not (isinstance(bandwidth, int | float) and math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"expected a positive finite bandwidth, got {bandwidth!r}")
        x = _as_points(x)
        return cls(points=x, bandwidth=float(bandwidth), data_size=x.shape[1], standardize=None)

    @classmethod
    def select(cls, x, validation, bandwidths) -> tuple[KDE, dict[float, float]]:
        """The KDE of ``x`` whose bandwidth (from ``bandwidths``) gives ``validation`` the
        highest mean log-likelihood; returns it and ``{bandwidth: mean log-likelihood}``."""
        scores = {
            float(h): float(cls.fit(x, float(h))._log_prob(_as_points(validation)).mean())
            for h in bandwidths
        }
        best = max(scores, key=scores.get)
        return cls.fit(x, best), scores

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        h, d = self.bandwidth, self.data_size
        out = np.empty(x.shape[0])
        sq_pts = np.sum(self.points**2, 1)
        for start in range(0, x.shape[0], 256):
            xb = x[start : start + 256]
            d2 = np.sum(xb**2, 1)[:, None] + sq_pts[None] - 2.0 * xb @ self.points.T
            d2 = np.maximum(d2, 0.0)
            out[start : start + 256] = scipy.special.logsumexp(-0.5 * d2 / h**2, axis=1)
        return out - math.log(self.points.shape[0]) - d * math.log(h) - 0.5 * d * _LOG_2PI

    def _sample(self, key: Key, n: int) -> Array:
        k_i, k_e = jax.random.split(key)
        i = jax.random.randint(k_i, (n,), 0, self.points.shape[0])
        pts = jnp.asarray(self.points, jnp.float32)
        return pts[i] + self.bandwidth * jax.random.normal(k_e, (n, self.data_size), jnp.float32)
