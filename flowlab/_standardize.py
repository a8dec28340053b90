r"""An elementwise affine map $z = (x - \mu) / s$ with its log-determinant."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_points, is_concrete
from ._typing import Array, Points

__all__ = ["Standardize"]


class Standardize(eqx.Module):
    r"""Standardise data: $z = (x - \mu)/s$, so $\log p_x(x) = \log p_z(z) - \sum_i \log s_i$.

    Models work in $z$ coordinates (unit scale whatever the dataset) and every density they
    report is mapped back to the data's own coordinates with this log-determinant. The
    parameters are never trained (they pass through ``stop_gradient``).

    Arguments:
        loc: $\mu$, shape ``(d,)``, finite.
        scale: $s > 0$, shape ``(d,)``, finite.

    Raises:
        ValueError: ``loc`` and ``scale`` differ in shape or are not vectors; or (for
            concrete values: traced ones inside ``jit`` are not read) a ``loc`` that is not
            finite or a ``scale`` that is not positive and finite.
    """

    loc: Array
    scale: Array

    def __check_init__(self):
        if self.loc.shape != self.scale.shape or self.loc.ndim != 1:
            raise ValueError(
                f"loc and scale must both have shape (d,), got {self.loc.shape} and "
                f"{self.scale.shape}"
            )
        if is_concrete(self.loc) and not np.isfinite(np.asarray(self.loc)).all():
            raise ValueError(f"expected a finite loc, got {np.asarray(self.loc).tolist()}")
        if is_concrete(self.scale):
            scale = np.asarray(self.scale)
            if not (np.isfinite(scale) & (scale > 0)).all():
                raise ValueError(f"expected scale > 0 and finite, got {scale.tolist()}")

    @classmethod
    def identity(cls, d: int) -> Standardize:
        """The identity map in ``d`` dimensions."""
        return cls(jnp.zeros(d), jnp.ones(d))

    @classmethod
    def fit(cls, x: Points) -> Standardize:
        """Per-coordinate mean and standard deviation of ``x`` (shape ``(n, d)``).

        The scale is the standard deviation plus ``1e-8`` (a constant coordinate gets
        ``1e-8``), computed in ``x``'s own float dtype.

        Raises:
            ValueError: ``x`` is not of shape ``(n, d)`` with ``n >= 2``; it holds NaN or
                inf (the message counts the rows and names the first); or its scale
                cannot be computed in its dtype: the standard deviation overflows or
                underflows ``float32`` (e.g. data of size ``1e30`` or ``1e-30``; the
                message gives the scale found in ``float64``; rescale the data).
        """
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"expected data of shape (n, d) with n >= 2, got {x.shape}")
        x = check_points(x, x.shape[1], "data")
        std = jnp.std(x, axis=0)
        if is_concrete(std):
            _check_std(np.asarray(x), np.asarray(std))
        return cls(jnp.mean(x, axis=0), std + 1e-8)

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


def _check_std(x: np.ndarray, std: np.ndarray) -> None:
    """Refuse a standard deviation that the data's dtype got grossly wrong: ``inf`` from
    overflowing squares, or far too small from underflowing ones (off by more than a
    factor of two from the ``float64`` value; rounding never comes near that)."""
    found = np.std(x.astype(np.float64), axis=0)
    wrong = ~np.isfinite(std) | (std < 0.5 * found) | (std > 2.0 * found)
    if wrong.any():
        raise ValueError(
            f"the data's scale (per-coordinate standard deviation) is {found.tolist()} in "
            f"float64, which {x.dtype} arithmetic cannot compute (it gives "
            f"{std.tolist()}: overflow or underflow); rescale the data to about unit size "
            "or enable float64"
        )


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
