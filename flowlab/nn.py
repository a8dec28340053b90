r"""Time-conditioned networks: vector fields $f(t, x) \to dx/dt$ and score networks.

Every network here acts on **one example** (``x`` of shape ``(d,)``, ``t`` a scalar) and
is vectorised with ``jax.vmap`` at the edge, as in Equinox's own ``eqx.nn.MLP``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._typing import Key, Point, Time

__all__ = ["ACTIVATIONS", "MLPVectorField", "FourierTimeEmbedding", "get_activation"]

ACTIVATIONS: dict[str, Callable] = {
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
}
"""Smooth activations by name (smoothness keeps the ODE's Jacobian well behaved)."""


def get_activation(name: str | Callable) -> Callable:
    """Return the activation called ``name`` (or ``name`` itself when it is callable)."""
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}"
        ) from None


class FourierTimeEmbedding(eqx.Module):
    r"""Fixed sinusoidal features of a scalar time.

    $$\phi(t) = \big(t,\ \sin(\pi k t),\ \cos(\pi k t)\big)_{k \in \text{frequencies}}$$
    """

    frequencies: tuple[float, ...] = eqx.field(static=True)

    @property
    def size(self) -> int:
        """Length of the embedding."""
        return 1 + 2 * len(self.frequencies)

    def __call__(self, t: Time) -> jax.Array:
        t = jnp.asarray(t)
        freqs = jnp.asarray(self.frequencies, dtype=t.dtype if t.dtype.kind == "f" else None)
        angles = jnp.pi * freqs * t
        return jnp.concatenate([t[None], jnp.sin(angles), jnp.cos(angles)])


class MLPVectorField(eqx.Module):
    r"""A time-conditioned MLP $f_\theta(t, x)$ acting on one example of shape ``(d,)``.

    The input is $x$ concatenated with a Fourier embedding of $t$; the output has the
    shape of $x$. With a smooth activation (SiLU by default) the field is $C^\infty$, so
    adaptive ODE solvers and exact Jacobian traces behave well.

    Arguments:
        data_size: dimension ``d`` of the data.
        width: hidden width.
        depth: number of hidden layers.
        activation: a name from :data:`ACTIVATIONS` or a callable.
        time_frequencies: frequencies $k$ of the time features $\sin(\pi k t), \cos(\pi k t)$.
        key: PRNG key for the initial weights (keyword-only).
    """

    mlp: eqx.nn.MLP
    time_embedding: FourierTimeEmbedding
    data_size: int = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        width: int = 128,
        depth: int = 3,
        activation: str | Callable = "silu",
        time_frequencies: tuple[float, ...] = (1.0, 2.0, 4.0),
        *,
        key: Key,
    ):
        if data_size < 1 or width < 1 or depth < 1:
            raise ValueError(
                f"data_size, width and depth must be positive, got {data_size}, {width}, {depth}"
            )
        self.data_size = data_size
        self.time_embedding = FourierTimeEmbedding(tuple(float(f) for f in time_frequencies))
        self.mlp = eqx.nn.MLP(
            in_size=data_size + self.time_embedding.size,
            out_size=data_size,
            width_size=width,
            depth=depth,
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, t: Time, x: Point) -> Point:
        if x.shape != (self.data_size,):
            raise ValueError(
                f"MLPVectorField acts on one example of shape ({self.data_size},), "
                f"got shape {x.shape}; use jax.vmap for batches"
            )
        t = jnp.asarray(t, dtype=x.dtype)
        return self.mlp(jnp.concatenate([x, self.time_embedding(t)]))


def num_parameters(module: eqx.Module) -> int:
    """Number of trainable scalars in ``module``."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))
    return int(sum(math.prod(leaf.shape) for leaf in leaves))
