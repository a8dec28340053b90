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


def resolve_data_size(
    network, data_size: int | None, standardize: Standardize | None
) -> tuple[int | None, Standardize | None]:
    """The data dimension and standardisation of a model, from what its constructor got.

    ``data_size`` if given, else ``network.data_size`` (flowlab's networks have one), else
    the dimension of ``standardize``, else ``None``: unknown until the model is handed
    points (``log_prob`` reads it from their shape; sampling then needs ``data_size``).
    A missing standardisation is the identity. The one place every family resolves these.
    """
    if data_size is None and isinstance(getattr(network, "data_size", None), int):
        data_size = network.data_size
    if data_size is None and standardize is not None:
        data_size = standardize.loc.shape[0]
    if data_size is not None:
        if isinstance(data_size, bool) or int(data_size) != data_size or data_size < 1:
            raise ValueError(f"data_size must be a positive integer, got {data_size!r}")
        data_size = int(data_size)
    if standardize is None:
        return data_size, (None if data_size is None else Standardize.identity(data_size))
    if not isinstance(standardize, Standardize):
        raise ValueError(
            f"expected standardize to be a Standardize, got {type(standardize).__name__}"
        )
    if standardize.loc.shape != (data_size,):
        raise ValueError(
            f"standardize acts on shape {standardize.loc.shape}, expected ({data_size},)"
        )
    return data_size, standardize
