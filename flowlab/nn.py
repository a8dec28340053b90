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

from ._checks import check_example
from ._typing import Key, Point, Time

__all__ = [
    "ACTIVATIONS",
    "ConditionalMLPField",
    "ConvVectorField",
    "FourierTimeEmbedding",
    "Linear",
    "MLPVectorField",
    "get_activation",
    "mlp",
]

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


class Linear(eqx.nn.Linear):
    r"""``eqx.nn.Linear`` computing ``x @ W.T + b`` (``eqx.nn.Linear`` computes ``W @ x``).

    The same layer, parameters and result (to float rounding); only the product's form
    differs, and that matters when many runs train as one program
    (:func:`flowlab.fit_many`): the per-example products of R stacked networks become one
    batched matrix product, which XLA's CPU backend runs 2-2.5x slower in ``W @ x`` form
    than in this one (width 64, batch 1024; ``benchmarks/batched.py``). Every network
    flowlab builds uses it (:func:`mlp`).
    """

    def __call__(self, x, *, key=None):
        if self.in_features == "scalar":
            if jnp.shape(x) != ():
                raise ValueError(f"x must have scalar shape, got {jnp.shape(x)}")
            x = jnp.broadcast_to(x, (1,))
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        if self.out_features == "scalar":
            y = jnp.squeeze(y)
        return y


def _as_linear(layer: eqx.nn.Linear) -> Linear:
    new = object.__new__(Linear)
    for name in ("weight", "bias", "in_features", "out_features", "use_bias"):
        object.__setattr__(new, name, getattr(layer, name))
    return new


def mlp(in_size, out_size, width_size: int, depth: int, activation: Callable, *, key: Key):
    """``eqx.nn.MLP(in_size, out_size, width_size, depth, activation, key=key)`` (the same
    initial weights) with its layers as :class:`Linear`."""
    net = eqx.nn.MLP(in_size, out_size, width_size, depth, activation, key=key)
    layers = tuple(_as_linear(layer) for layer in net.layers)
    return eqx.tree_at(lambda m: m.layers, net, layers)


class FourierTimeEmbedding(eqx.Module):
    r"""Fixed sinusoidal features of a scalar time.

    $$\phi(t) = \big(t,\ \sin(\pi k t),\ \cos(\pi k t)\big)_{k \in \text{frequencies}}$$
    """

    frequencies: tuple[float, ...] = eqx.field(
        static=True, converter=lambda fs: tuple(float(f) for f in fs)
    )

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
        self.time_embedding = FourierTimeEmbedding(time_frequencies)
        self.mlp = mlp(
            in_size=data_size + self.time_embedding.size,
            out_size=data_size,
            width_size=width,
            depth=depth,
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, t: Time, x: Point) -> Point:
        check_example("MLPVectorField", x, self.data_size)
        t = jnp.asarray(t, dtype=x.dtype)
        return self.mlp(jnp.concatenate([x, self.time_embedding(t)]))


class ConditionalMLPField(eqx.Module):
    r"""A time- and label-conditioned MLP $f_\theta(t, x, y)$ on one example of shape ``(d,)``.

    The input is $x$, a Fourier embedding of $t$ and a learned embedding of the label
    $y \in \{0, \dots, K\}$, where $y = K$ (``null_label``) is the *null* label of
    classifier-free guidance: "no condition" (Ho & Salimans 2022). One network thus gives
    both the conditional $f(t, x \mid y)$ and the unconditional $f(t, x)$ that
    :class:`flowlab.conditional.Guided` mixes.

    Arguments:
        data_size: dimension ``d``.
        num_classes: $K$, the number of real labels (the null label is $K$).
        width, depth, activation, time_frequencies: as :class:`MLPVectorField`.
        label_size: length of the label embedding.
        key: PRNG key for the initial weights (keyword-only).
    """

    mlp: eqx.nn.MLP
    time_embedding: FourierTimeEmbedding
    label_embedding: jax.Array
    data_size: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        num_classes: int,
        width: int = 128,
        depth: int = 3,
        activation: str | Callable = "silu",
        time_frequencies: tuple[float, ...] = (1.0, 2.0, 4.0),
        label_size: int = 16,
        *,
        key: Key,
    ):
        if min(data_size, num_classes, width, depth, label_size) < 1:
            raise ValueError(
                "data_size, num_classes, width, depth and label_size must be positive, got "
                f"{data_size}, {num_classes}, {width}, {depth}, {label_size}"
            )
        k_mlp, k_emb = jax.random.split(key)
        self.data_size = data_size
        self.num_classes = num_classes
        self.time_embedding = FourierTimeEmbedding(time_frequencies)
        self.label_embedding = jax.random.normal(k_emb, (num_classes + 1, label_size))
        self.mlp = mlp(
            in_size=data_size + self.time_embedding.size + label_size,
            out_size=data_size,
            width_size=width,
            depth=depth,
            activation=get_activation(activation),
            key=k_mlp,
        )

    @property
    def null_label(self) -> int:
        """The label meaning "no condition": ``num_classes``."""
        return self.num_classes

    def __call__(self, t: Time, x: Point, label) -> Point:
        check_example("ConditionalMLPField", x, self.data_size)
        if jnp.ndim(label) != 0:
            raise ValueError(f"expected one integer label, got shape {jnp.shape(label)}")
        t = jnp.asarray(t, dtype=x.dtype)
        emb = self.label_embedding[jnp.asarray(label, jnp.int32)].astype(x.dtype)
        return self.mlp(jnp.concatenate([x, self.time_embedding(t), emb]))


class ConvVectorField(eqx.Module):
    r"""A small convolutional field $f_\theta(t, x)$ for square greyscale images flattened to
    one example of shape ``(side * side,)`` (e.g. the 8x8 digits, ``d = 64``).

    ``depth`` 3x3 convolutions (``channels`` each, SAME padding, SiLU) with the Fourier
    time embedding added to every hidden layer through a linear map (one bias per channel),
    then a 3x3 convolution to one channel. Smooth, so the exact Jacobian trace and adaptive
    solves behave as for :class:`MLPVectorField`.

    Arguments:
        data_size: ``side * side``.
        channels: hidden channels.
        depth: hidden convolutions (at least 1).
        time_frequencies: as :class:`MLPVectorField`.
        key: PRNG key for the initial weights (keyword-only).
    """

    convs: tuple
    time_maps: tuple
    out: eqx.nn.Conv2d
    time_embedding: FourierTimeEmbedding
    data_size: int = eqx.field(static=True)
    side: int = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        channels: int = 32,
        depth: int = 3,
        time_frequencies: tuple[float, ...] = (1.0, 2.0, 4.0),
        *,
        key: Key,
    ):
        side = math.isqrt(data_size)
        if side * side != data_size or min(channels, depth) < 1:
            raise ValueError(
                "expected data_size a square (side * side) and positive channels and depth, got "
                f"{data_size}, {channels}, {depth}"
            )
        self.data_size, self.side = data_size, side
        self.time_embedding = FourierTimeEmbedding(time_frequencies)
        keys = jax.random.split(key, 2 * depth + 1)
        ins = [1] + [channels] * (depth - 1)
        self.convs = tuple(
            eqx.nn.Conv2d(c, channels, 3, padding="SAME", key=k)
            for c, k in zip(ins, keys[:depth], strict=True)
        )
        self.time_maps = tuple(
            Linear(self.time_embedding.size, channels, key=k) for k in keys[depth : 2 * depth]
        )
        self.out = eqx.nn.Conv2d(channels, 1, 3, padding="SAME", key=keys[-1])

    def __call__(self, t: Time, x: Point) -> Point:
        check_example("ConvVectorField", x, self.data_size)
        emb = self.time_embedding(jnp.asarray(t, dtype=x.dtype))
        h = x.reshape(1, self.side, self.side)
        for conv, tmap in zip(self.convs, self.time_maps, strict=True):
            h = jax.nn.silu(conv(h) + tmap(emb)[:, None, None])
        return self.out(h).reshape(self.data_size)


def num_parameters(module: eqx.Module) -> int:
    """Number of trainable scalars in ``module``."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))
    return int(sum(math.prod(leaf.shape) for leaf in leaves))
