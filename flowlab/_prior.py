r"""Base distributions for source-to-target flows: an :class:`AbstractPrior` has samples and
an exact log-density *in data coordinates*; a flow given ``prior=`` (:class:`~flowlab.CNF`,
:class:`~flowlab.MeanFlow`, :class:`~flowlab.Shortcut`) starts from it instead of
$N(0, I)$, mapped to its standardised coordinates with the Jacobian of the standardisation:
$z_0 = (x_0 - \mu)/s$ has density $q(\mu + s z_0)\prod_i s_i$.

Priors are recorded in a saved model's hyperparameters (:meth:`AbstractPrior.to_config`,
:func:`~flowlab.cnf.prior_from_config`), so :func:`flowlab.load_model` rebuilds a flow
with its prior."""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._ode import standard_normal_log_prob
from ._standardize import resolve_data_size
from ._typing import Key, Points, Values

__all__ = [
    "AbstractPrior",
    "Gaussian",
    "GaussianMixture",
    "check_prior",
    "prior_from_config",
    "prior_log_prob",
    "prior_sample",
]


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

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """A JSON-ready dict from which :func:`~flowlab.cnf.prior_from_config` rebuilds
        this prior."""


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

    def to_config(self) -> dict[str, Any]:
        chol = np.asarray(self.chol, np.float64)
        return {
            "kind": "gaussian",
            "mean": np.asarray(self.mean, np.float64).tolist(),
            "cov": (chol @ chol.T).tolist(),
        }

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

    def to_config(self) -> dict[str, Any]:
        return {
            "kind": "gaussian_mixture",
            "means": np.asarray(self.means, np.float64).tolist(),
            "std": self.std,
            "weights": np.exp(np.asarray(self.log_weights, np.float64)).tolist(),
        }

    def sample(self, key: Key, n: int) -> Points:
        k_comp, k_noise = jax.random.split(key)
        idx = jax.random.categorical(k_comp, self.log_weights, shape=(n,))
        return self.means[idx] + self.std * jax.random.normal(k_noise, (n, self.data_size))

    def log_prob(self, x: Points) -> Values:
        d2 = jnp.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)
        log_norm = self.data_size * (math.log(self.std) + 0.5 * math.log(2 * math.pi))
        return jax.nn.logsumexp(self.log_weights - 0.5 * d2 / self.std**2, axis=-1) - log_norm


def prior_from_config(config: dict[str, Any]) -> AbstractPrior:
    """The prior recorded by :meth:`AbstractPrior.to_config` (``config["kind"]``:
    ``"gaussian"`` or ``"gaussian_mixture"``)."""
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind == "gaussian":
        return Gaussian(config["mean"], config["cov"])
    if kind == "gaussian_mixture":
        return GaussianMixture(config["means"], config["std"], config.get("weights"))
    raise ValueError(
        f"expected a prior config with kind 'gaussian' or 'gaussian_mixture', got {config!r}"
    )


def check_prior(prior, network, data_size, standardize):
    """Shared constructor check of a flow with ``prior=``: ``(data_size, standardize, prior)``
    with the data size read from the prior when nothing else gives it, and a clear error
    for a prior that is not an :class:`AbstractPrior` or of the wrong size."""
    if prior is not None and not isinstance(prior, AbstractPrior):
        raise ValueError(
            f"expected prior to be None or an AbstractPrior, got {type(prior).__name__}"
        )
    if prior is not None and data_size is None and standardize is None:
        if not isinstance(getattr(network, "data_size", None), int):
            data_size = prior.data_size
    data_size, standardize = resolve_data_size(network, data_size, standardize)
    if prior is not None and prior.data_size != data_size:
        raise ValueError(f"expected a prior of data_size {data_size}, got {prior.data_size}")
    return data_size, standardize, prior


def prior_sample(flow, key: Key, n: int) -> Points:
    """``n`` draws of ``flow.prior`` in ``flow``'s standardised coordinates (``N(0, I)``
    when ``flow.prior`` is ``None``)."""
    d = flow.require_data_size()
    if flow.prior is None:
        return jax.random.normal(key, (n, d))
    return flow.standardizer(d).forward(flow.prior.sample(key, n))


def prior_log_prob(flow, z: Points) -> Values:
    r"""Exact log-density of ``flow``'s prior at standardised points ``z``: the prior's
    density at $x = \mu + s z$ plus $\sum_i \log s_i$ (``N(0, I)`` when ``None``)."""
    if flow.prior is None:
        return standard_normal_log_prob(z)
    std = flow.standardizer(z.shape[-1])
    return flow.prior.log_prob(std.inverse(z)) - std.log_det()
