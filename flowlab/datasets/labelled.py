r"""Labelled 2D data: the Gaussian mixture's components and the pinwheel's arms.

For conditional generation on the plane. :func:`sample_with_labels` draws exactly the
points of :func:`flowlab.datasets.sample` for the same key (the same body, the same key
splits) together with the class each point was drawn from; :func:`sample_class` draws
i.i.d. points of one class (the true class-conditional $p(x \mid y)$, for per-class
metrics).

| name | classes | class $y$ |
|---|---|---|
| ``gaussian_mixture`` | 7 | the component $k$: $x = \mu_k + 0.12\,\varepsilon$ |
| ``pinwheel`` | 3 | the arm $j$: angle $4(j + r) + 0.2\,\varepsilon$ at radius $r$ |
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._checks import check_count, check_key
from .._typing import Array, Key, Points
from . import _params as P

__all__ = ["LABELLED_NAMES", "num_classes", "sample_class", "sample_with_labels"]

_F32 = jnp.float32
_I32 = jnp.int32

LABELLED_NAMES: tuple[str, ...] = ("gaussian_mixture", "pinwheel")
"""The 2D datasets with labels."""


def num_classes(name: str) -> int:
    """Number of classes of the labelled dataset ``name``."""
    _check(name)
    return P.MIXTURE_K if name == "gaussian_mixture" else P.PINWHEEL_ARMS


def _check(name: str) -> None:
    if name not in LABELLED_NAMES:
        raise ValueError(
            f"no labels for dataset {name!r}; expected one of: {', '.join(LABELLED_NAMES)}"
        )


def _mixture(arm, k_noise, n):
    means = jnp.asarray(P.mixture_means("gaussian_mixture"), _F32)
    return means[arm] + P.MIXTURE_STD * jax.random.normal(k_noise, (n, 2), _F32)


def _pinwheel(arm, k_r, k_t, n):
    r = jax.random.uniform(k_r, (n,), _F32) + 2.0**-24
    t = P.PINWHEEL_RATE * (arm.astype(_F32) + r)
    t = t + P.PINWHEEL_STD * jax.random.normal(k_t, (n,), _F32)
    return jnp.stack([r * jnp.sin(t), r * jnp.cos(t)], axis=-1)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _with_labels(name: str, key, n: int):
    # the key splits of flowlab.datasets._generators, so the points equal sample(name, key, n)
    if name == "gaussian_mixture":
        k_comp, k_noise = jax.random.split(key)
        arm = jax.random.randint(k_comp, (n,), 0, P.MIXTURE_K, _I32)
        return _mixture(arm, k_noise, n), arm
    k_arm, k_r, k_t = jax.random.split(key, 3)
    arm = jax.random.randint(k_arm, (n,), 0, P.PINWHEEL_ARMS, _I32)
    return _pinwheel(arm, k_r, k_t, n), arm


@functools.partial(jax.jit, static_argnums=(0, 2))
def _of_class(name: str, key, n: int, label):
    arm = jnp.full((n,), label, _I32)
    if name == "gaussian_mixture":
        return _mixture(arm, key, n)
    k_r, k_t = jax.random.split(key)
    return _pinwheel(arm, k_r, k_t, n)


def _widen(x: Array) -> Array:
    dtype = jnp.result_type(float)
    return x if x.dtype == dtype else x.astype(dtype)


def sample_with_labels(name: str, key: Key, n: int) -> tuple[Points, Array]:
    """``(points, labels)``: the ``n`` points of ``flowlab.datasets.sample(name, key, n)``
    (shape ``(n, 2)``) and the class of each (int32, shape ``(n,)``).

    Raises:
        ValueError: ``name`` has no labels (see :data:`LABELLED_NAMES`), ``key`` is not one
            PRNG key or ``n`` not a positive integer.
    """
    _check(name)
    check_key(key)
    x, y = _with_labels(name, key, check_count(n))
    return _widen(x), y


def sample_class(name: str, key: Key, n: int, label: int) -> Points:
    """``n`` i.i.d. points of class ``label`` of ``name``: draws of $p(x \\mid y)$.

    Raises:
        ValueError: as :func:`sample_with_labels`, or ``label`` outside
            ``0 .. num_classes(name) - 1``.
    """
    _check(name)
    check_key(key)
    k = num_classes(name)
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k:
        raise ValueError(f"expected label an int in 0..{k - 1} for {name!r}, got {label!r}")
    return _widen(_of_class(name, key, check_count(n), label))
