r"""An elementwise affine map $z = (x - \mu) / s$ with its log-determinant."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._typing import Array, Points

__all__ = ["Standardize"]


class Standardize(eqx.Module):
    r"""Standardise data: $z = (x - \mu)/s$, so $\log p_x(x) = \log p_z(z) - \sum_i \log s_i$.

    Models work in $z$ coordinates (unit scale whatever the dataset) and every density they
    report is mapped back to the data's own coordinates with this log-determinant. The
    parameters are never trained (they pass through ``stop_gradient``).

    Arguments:
        loc: $\mu$, shape ``(d,)``.
        scale: $s > 0$, shape ``(d,)``.
    """

    loc: Array
    scale: Array

    def __check_init__(self):
        if self.loc.shape != self.scale.shape or self.loc.ndim != 1:
            raise ValueError(
                f"loc and scale must both have shape (d,), got {self.loc.shape} and "
                f"{self.scale.shape}"
            )

    @classmethod
    def identity(cls, d: int) -> Standardize:
        """The identity map in ``d`` dimensions."""
        return cls(jnp.zeros(d), jnp.ones(d))

    @classmethod
    def fit(cls, x: Points) -> Standardize:
        """Per-coordinate mean and standard deviation of ``x`` (shape ``(n, d)``)."""
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"expected data of shape (n, d) with n >= 2, got {x.shape}")
        return cls(jnp.mean(x, axis=0), jnp.std(x, axis=0) + 1e-8)

    def _params(self):
        return jax.lax.stop_gradient(self.loc), jax.lax.stop_gradient(self.scale)

    def forward(self, x: Array) -> Array:
        """Data to standardised coordinates."""
        loc, scale = self._params()
        return (x - loc) / scale

    def inverse(self, z: Array) -> Array:
        """Standardised to data coordinates."""
        loc, scale = self._params()
        return z * scale + loc

    def log_det(self) -> Array:
        r"""$\log |\det \partial z / \partial x| = -\sum_i \log s_i$."""
        return -jnp.sum(jnp.log(self._params()[1]))
