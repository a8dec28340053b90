r"""Two-dimensional toy distributions: key-based samplers, exact log-densities and entropies.

Every dataset is a distribution on $\mathbb{R}^2$ with a pure-JAX sampler: the same key gives
the same points, and every point is an i.i.d. draw (where the reference code used a
``linspace`` or fixed class counts we draw i.i.d. instead, so that a training set and a
hold-out set are independent samples of one distribution). Samples are ``float32``.

Densities and entropies are *reference numbers* and are computed on the host in ``float64``
with numpy/scipy: in closed form where one exists, otherwise by quadrature whose error is
far below anything a model can reach (``entropy_with_error`` reports it).

Two families:

- the course datasets ``spiral``, ``pinwheel``, ``checkerboard``, ``gaussian_mixture``;
- the literature toy set of FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py``), prefixed
  ``ffjord_`` so that the two pinwheels (and the two checkerboards) cannot be confused.

| name | ``log_prob`` | ``entropy`` (nats) |
|---|---|---|
| ``spiral`` | 1-D quadrature | 2-D grid quadrature |
| ``pinwheel`` | closed form (polar) | closed form + 1-D quadrature |
| ``checkerboard``, ``ffjord_checkerboard`` | closed form | $\log 32$ |
| ``gaussian_mixture``, ``ffjord_8gaussians`` | closed form | 2-D grid quadrature |
| ``ffjord_moons``, ``ffjord_swissroll`` | 1-D quadrature | 2-D grid quadrature |
| ``ffjord_circles``, ``ffjord_rings`` | closed form (Bessel) | 1-D radial quadrature |
| ``ffjord_pinwheel``, ``ffjord_2spirals`` | not available | not available |
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float
from scipy import special

from ._checks import check_count
from ._typing import Array, Key, Points

__all__ = [
    "COURSE_NAMES",
    "FFJORD_NAMES",
    "NAMES",
    "checkerboard",
    "entropy",
    "entropy_with_error",
    "ffjord_2spirals",
    "ffjord_8gaussians",
    "ffjord_checkerboard",
    "ffjord_circles",
    "ffjord_moons",
    "ffjord_pinwheel",
    "ffjord_rings",
    "ffjord_swissroll",
    "gaussian_mixture",
    "gaussian_mixture_params",
    "has_entropy",
    "has_log_prob",
    "log_prob",
    "pinwheel",
    "sample",
    "spiral",
    "split",
]

COURSE_NAMES: tuple[str, ...] = ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
"""The four datasets of the course, in its order."""
FFJORD_NAMES: tuple[str, ...] = (
    "ffjord_8gaussians",
    "ffjord_pinwheel",
    "ffjord_2spirals",
    "ffjord_moons",
    "ffjord_circles",
    "ffjord_rings",
    "ffjord_swissroll",
    "ffjord_checkerboard",
)
"""FFJORD's toy datasets, prefixed ``ffjord_``."""
NAMES: tuple[str, ...] = COURSE_NAMES + FFJORD_NAMES
"""Every valid dataset name."""

_F32 = jnp.float32
_TWO_PI = 2.0 * math.pi

# --- parameters of the definitions (used by both the samplers and the densities) ----------

_SPIRAL_THETA_MAX = 6.0 * math.pi
_SPIRAL_RATE = 0.05
_SPIRAL_STD = 0.04

_PINWHEEL_ARMS = 3
_PINWHEEL_RATE = 4.0
_PINWHEEL_STD = 0.2

_MIXTURE_K = 7
_MIXTURE_RADIUS = 1.2
_MIXTURE_STD = 0.12

_FFJORD_SCALE = 1.414  # FFJORD divides by this literal, not by sqrt(2)
_8G_DIRECTIONS = np.array(
    [
        (1.0, 0.0),
        (-1.0, 0.0),
        (0.0, 1.0),
        (0.0, -1.0),
        (1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0)),
        (1.0 / math.sqrt(2.0), -1.0 / math.sqrt(2.0)),
        (-1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0)),
        (-1.0 / math.sqrt(2.0), -1.0 / math.sqrt(2.0)),
    ]
)

_CIRCLES_RADII = (1.0, 0.5)  # before the final * 3
_CIRCLES_NOISE = 0.08  # before the final * 3
_RINGS_RADII = (1.0, 0.75, 0.5, 0.25)  # times 3
_RINGS_NOISE = 0.08  # after the * 3
_MOONS_NOISE = 0.1  # before the final * 2
_SWISSROLL_NOISE = 1.0  # before the final / 5


def _mixture_means(name: str) -> np.ndarray:
    if name == "gaussian_mixture":
        angles = _TWO_PI * np.arange(_MIXTURE_K) / _MIXTURE_K
        return _MIXTURE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return 4.0 * _8G_DIRECTIONS / _FFJORD_SCALE


def _mixture_std(name: str) -> float:
    return _MIXTURE_STD if name == "gaussian_mixture" else 0.5 / _FFJORD_SCALE


def gaussian_mixture_params(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    r"""Means, standard deviation and weights of an isotropic Gaussian mixture dataset.

    $p(x) = \sum_k w_k \, \mathcal{N}(x; \mu_k, \sigma^2 I)$, enough to build the exact score
    $\nabla_x \log p(x)$ of ``gaussian_mixture`` or ``ffjord_8gaussians``.

    **Arguments:**

    - `name`: ``"gaussian_mixture"`` or ``"ffjord_8gaussians"``.

    **Returns:**

    ``(means, std, weights)``: ``means`` of shape ``(K, 2)`` and ``weights`` of shape ``(K,)``
    as new ``float64`` arrays, ``std`` a float.
    """
    _check_name(name)
    if name not in ("gaussian_mixture", "ffjord_8gaussians"):
        raise ValueError(
            f"gaussian_mixture_params expects 'gaussian_mixture' or 'ffjord_8gaussians', "
            f"got {name!r}"
        )
    means = _mixture_means(name)
    return means, _mixture_std(name), np.full(len(means), 1.0 / len(means))


# --- input checks --------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(NAMES)}")


def _check_key(key: Key) -> None:
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return
    if dtype == jnp.uint32 and shape == (2,):  # legacy jax.random.PRNGKey
        return
    raise ValueError(
        f"key must be one JAX PRNG key (e.g. jax.random.key(0)), got "
        f"{type(key).__name__} with dtype {dtype} and shape {shape}"
    )


def _draw(fn: Callable[[Key, int], Array], key: Key, n: int) -> Points:
    _check_key(key)
    return fn(key, check_count(n))


# --- samplers ------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=1)
def _spiral(key, n):
    k_theta, k_noise = jax.random.split(key)
    theta = jax.random.uniform(k_theta, (n,), _F32, 0.0, _SPIRAL_THETA_MAX)
    r = _SPIRAL_RATE * theta
    centre = jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=-1)
    return centre + _SPIRAL_STD * jax.random.normal(k_noise, (n, 2), _F32)


def spiral(key: Key, n: int) -> Points:
    r"""Sample the course's Archimedean spiral.

    $$\theta \sim \mathcal{U}(0, 6\pi), \quad r = 0.05\,\theta, \quad
    x = (r\cos\theta,\ r\sin\theta) + \mathcal{N}(0, 0.04^2 I),$$

    so $p(x) = \frac{1}{6\pi}\int_0^{6\pi} \mathcal{N}(x; c(\theta), 0.04^2 I)\,d\theta$ with
    $c(\theta) = 0.05\,\theta\,(\cos\theta, \sin\theta)$ (three turns, radius up to 0.94).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_spiral, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _pinwheel(key, n):
    k_arm, k_r, k_t = jax.random.split(key, 3)
    arm = jax.random.randint(k_arm, (n,), 0, _PINWHEEL_ARMS).astype(_F32)
    # Midpoints of jax's float32 grid {k / 2^23}: r lies strictly inside (0, 1), so every
    # sample has a finite log-density (p has a 1/r factor and vanishes for r >= 1).
    r = jax.random.uniform(k_r, (n,), _F32) + 2.0**-24
    t = _PINWHEEL_RATE * (arm + r) + _PINWHEEL_STD * jax.random.normal(k_t, (n,), _F32)
    return jnp.stack([r * jnp.sin(t), r * jnp.cos(t)], axis=-1)


def pinwheel(key: Key, n: int) -> Points:
    r"""Sample the course's three-armed pinwheel.

    $$j \sim \mathcal{U}\{0, 1, 2\}, \quad r \sim \mathcal{U}(0, 1), \quad
    t = 4j + 4r + 0.2\,\varepsilon,\ \varepsilon \sim \mathcal{N}(0, 1), \quad
    x = (r \sin t,\ r \cos t).$$

    The course notebook used ``r = linspace(0, 1, n)``; we draw $r$ i.i.d. uniform so that
    training and hold-out sets are independent samples of the same limiting distribution.
    (It is drawn strictly inside $(0, 1)$, so every sample has a finite log-density.)

    In polar coordinates $r = |x|$, $\varphi = \operatorname{atan2}(x_1, x_2)$ the density is
    $p(x) = \frac{1}{r}\,\frac13\sum_{j=0}^{2}\sum_{k\in\mathbb{Z}}
    \mathcal{N}(\varphi + 2\pi k;\ 4j + 4r,\ 0.2^2)$ for $r < 1$ and $0$ for $r \ge 1$.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_pinwheel, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), _F32, -2.0, 2.0)
    lower = jax.random.bernoulli(k3, 0.5, (n,)).astype(_F32)
    x2 = jax.random.uniform(k2, (n,), _F32) - 2.0 * lower + jnp.mod(jnp.floor(x1), 2.0)
    return 2.0 * jnp.stack([x1, x2], axis=-1)


def checkerboard(key: Key, n: int) -> Points:
    r"""Sample the checkerboard: uniform on 8 of the 16 squares of side 2 tiling $[-4, 4)^2$.

    $$x_1 \sim \mathcal{U}(-2, 2), \quad
    x_2 = \mathcal{U}(0, 1) - 2\,\mathrm{Bernoulli}(\tfrac12) + (\lfloor x_1 \rfloor \bmod 2),
    \quad x = 2\,(x_1, x_2),$$

    so $p(x) = 1/32$ on the squares where
    $\lfloor x_1/2 \rfloor + \lfloor x_2/2 \rfloor$ is even, and $0$ elsewhere.
    The same definition as FFJORD's ``checkerboard`` (``ffjord_checkerboard`` is an alias).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_checkerboard, key, n)


def _mixture_draw(key, n, means, std):
    k_comp, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_comp, (n,), 0, means.shape[0])
    return jnp.asarray(means, _F32)[idx] + std * jax.random.normal(k_noise, (n, 2), _F32)


@functools.partial(jax.jit, static_argnums=1)
def _gaussian_mixture(key, n):
    return _mixture_draw(key, n, _mixture_means("gaussian_mixture"), _MIXTURE_STD)


def gaussian_mixture(key: Key, n: int) -> Points:
    r"""Sample the course's ring of seven Gaussians.

    $$p(x) = \frac17 \sum_{k=0}^{6} \mathcal{N}\big(x;\ 1.2\,(\cos\tfrac{2\pi k}{7},
    \sin\tfrac{2\pi k}{7}),\ 0.12^2 I\big).$$

    ``gaussian_mixture_params("gaussian_mixture")`` returns the means, std and weights.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_gaussian_mixture, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_8gaussians(key, n):
    k_comp, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_comp, (n,), 0, 8)
    centre = 4.0 * jnp.asarray(_8G_DIRECTIONS, _F32)[idx]
    return (centre + 0.5 * jax.random.normal(k_noise, (n, 2), _F32)) / _FFJORD_SCALE


def ffjord_8gaussians(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``8gaussians``.

    With $u_k$ the eight unit vectors at angles $k\pi/4$ and $k \sim \mathcal{U}\{0..7\}$:
    $$x = \big(4 u_k + 0.5\,\varepsilon\big) / 1.414, \quad \varepsilon \sim \mathcal{N}(0, I),$$
    i.e. an equal-weight mixture with means $4 u_k / 1.414$ and std $0.5 / 1.414$
    (FFJORD divides by the literal 1.414). ``gaussian_mixture_params("ffjord_8gaussians")``
    returns the means, std and weights.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_8gaussians, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_pinwheel(key, n):
    k_label, k_feat = jax.random.split(key)
    label = jax.random.randint(k_label, (n,), 0, 5).astype(_F32)
    feat = jax.random.normal(k_feat, (n, 2), _F32) * jnp.array([0.3, 0.1], _F32)
    radial = feat[:, 0] + 1.0
    tangential = feat[:, 1]
    angle = _TWO_PI * label / 5.0 + 0.25 * jnp.exp(radial)
    c, s = jnp.cos(angle), jnp.sin(angle)
    return 2.0 * jnp.stack([radial * c + tangential * s, -radial * s + tangential * c], axis=-1)


def ffjord_pinwheel(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``pinwheel`` (Johnson et al. 2016): five arms.

    $$\ell \sim \mathcal{U}\{0..4\}, \quad f = (1 + 0.3\,\varepsilon_1,\ 0.1\,\varepsilon_2),
    \quad a = \tfrac{2\pi \ell}{5} + 0.25\,e^{f_1}, \quad
    x = 2\,(f_1 \cos a + f_2 \sin a,\ -f_1 \sin a + f_2 \cos a),$$

    the last step being FFJORD's ``einsum("ti,tij->tj", features, rotations)``, which applies
    the transpose of the rotation matrix it builds. FFJORD draws ``n // 5`` points per arm
    and shuffles; we draw the arm of each point i.i.d. No exact density is provided.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_pinwheel, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_2spirals(key, n):
    k_angle, k_box, k_sign, k_noise = jax.random.split(key, 4)
    angle = jnp.sqrt(jax.random.uniform(k_angle, (n,), _F32)) * (540.0 * _TWO_PI / 360.0)
    box = 0.5 * jax.random.uniform(k_box, (n, 2), _F32)
    d1 = jnp.stack([-jnp.cos(angle) * angle, jnp.sin(angle) * angle], axis=-1) + box
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n, 1)), 1.0, -1.0).astype(_F32)
    return sign * d1 / 3.0 + 0.1 * jax.random.normal(k_noise, (n, 2), _F32)


def ffjord_2spirals(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``2spirals``.

    $$\nu = \sqrt{U_0}\cdot 540 \cdot \tfrac{2\pi}{360}, \quad
    d = (-\nu\cos\nu + 0.5\,U_1,\ \nu\sin\nu + 0.5\,U_2), \quad
    x = s\,d / 3 + 0.1\,\varepsilon,$$

    with $U_i \sim \mathcal{U}(0, 1)$, $\varepsilon \sim \mathcal{N}(0, I)$ and a sign
    $s = \pm 1$ drawn per point (FFJORD returns exactly half $d$ and half $-d$).
    No exact density is provided.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_2spirals, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_moons(key, n):
    k_angle, k_moon, k_noise = jax.random.split(key, 3)
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, math.pi)
    inner = jax.random.bernoulli(k_moon, 0.5, (n,))
    outer_pt = jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    inner_pt = jnp.stack([1.0 - jnp.cos(a), 1.0 - jnp.sin(a) - 0.5], axis=-1)
    x = jnp.where(inner[:, None], inner_pt, outer_pt)
    x = x + _MOONS_NOISE * jax.random.normal(k_noise, (n, 2), _F32)
    return 2.0 * x + jnp.array([-1.0, -0.2], _F32)


def ffjord_moons(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``moons``: scikit-learn's ``make_moons(noise=0.1)``, then $2x + (-1, -0.2)$.

    $$a \sim \mathcal{U}(0, \pi), \quad
    m = (\cos a, \sin a) \text{ or } (1 - \cos a,\ 1 - \sin a - 0.5) \text{ (prob. } \tfrac12
    \text{ each)}, \quad x = 2\,(m + 0.1\,\varepsilon) + (-1, -0.2).$$

    ``make_moons`` uses a ``linspace`` of angles and equal moon sizes; we draw both i.i.d.
    The density is a 1-D integral over $a$ (two arcs blurred by $\mathcal{N}(0, 0.2^2 I)$).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_moons, key, n)


def _rings_draw(key, n, radii, noise, scale_after):
    k_ring, k_angle, k_noise = jax.random.split(key, 3)
    idx = jax.random.randint(k_ring, (n,), 0, len(radii))
    radius = jnp.asarray(radii, _F32)[idx]
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, _TWO_PI)
    x = radius[:, None] * jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    return (x + noise * jax.random.normal(k_noise, (n, 2), _F32)) * scale_after


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_circles(key, n):
    return _rings_draw(key, n, _CIRCLES_RADII, _CIRCLES_NOISE, 3.0)


def ffjord_circles(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``circles``: ``make_circles(factor=0.5, noise=0.08)``, times 3.

    $$a \sim \mathcal{U}(0, 2\pi), \quad \rho \in \{1, 0.5\} \text{ (prob. } \tfrac12
    \text{ each)}, \quad x = 3\,\big(\rho\,(\cos a, \sin a) + 0.08\,\varepsilon\big),$$

    so the noise std is $0.24$ on circles of radius 3 and 1.5. ``make_circles`` uses a
    ``linspace`` of angles and equal circle sizes; we draw both i.i.d. The density is closed
    form (a mixture of two Rice-type densities, via the Bessel function $I_0$).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_circles, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_rings(key, n):
    radii = tuple(3.0 * r for r in _RINGS_RADII)
    return _rings_draw(key, n, radii, _RINGS_NOISE, 1.0)


def ffjord_rings(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``rings``: four concentric circles, equal weights.

    $$a \sim \mathcal{U}(0, 2\pi), \quad \rho \in \{3, 2.25, 1.5, 0.75\} \text{ (prob. }
    \tfrac14 \text{ each)}, \quad x = \rho\,(\cos a, \sin a) + 0.08\,\varepsilon.$$

    FFJORD uses ``linspace`` angles and fixed ring sizes; we draw both i.i.d. The density is
    closed form (a mixture of four Rice-type densities, via the Bessel function $I_0$).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_rings, key, n)


@functools.partial(jax.jit, static_argnums=1)
def _ffjord_swissroll(key, n):
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,), _F32))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1)
    return (x + _SWISSROLL_NOISE * jax.random.normal(k_noise, (n, 2), _F32)) / 5.0


def ffjord_swissroll(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``swissroll``: ``make_swiss_roll(noise=1.0)[:, [0, 2]] / 5``.

    $$t = 1.5\pi\,(1 + 2U), \quad x = \big((t\cos t,\ t\sin t) + \varepsilon\big) / 5,
    \quad U \sim \mathcal{U}(0, 1),\ \varepsilon \sim \mathcal{N}(0, I).$$

    The density is a 1-D integral over $t$ (a curve blurred by $\mathcal{N}(0, 0.2^2 I)$).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_ffjord_swissroll, key, n)


def ffjord_checkerboard(key: Key, n: int) -> Points:
    r"""Sample FFJORD's ``checkerboard``: identical to the course's ``checkerboard``.

    $$x_1 \sim \mathcal{U}(-2, 2), \quad
    x_2 = \mathcal{U}(0, 1) - 2\,\mathrm{Bernoulli}(\tfrac12) + (\lfloor x_1 \rfloor \bmod 2),
    \quad x = 2\,(x_1, x_2).$$

    The same key gives the same points as ``checkerboard``.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _draw(_checkerboard, key, n)


# --- Gaussian sums: mixtures, and curves blurred by isotropic noise ---------------------------

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
_LOG_CLIP = -700.0  # exp() below this underflows on a slow path; such terms are irrelevant


@dataclasses.dataclass(frozen=True, eq=False)
class _GaussianSum:
    r"""$p(x) = \sum_q w_q\, \mathcal{N}(x; c_q, \sigma^2 I)$ with $\sum_q w_q = 1$."""

    centres: np.ndarray  # (Q, 2)
    weights: np.ndarray  # (Q,)
    std: float

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log-density at the rows of ``x`` (shape ``(n, 2)``), chunked logsumexp over q."""
        inv_var = 1.0 / self.std**2
        c = self.centres
        # log w_q + (x . c_q - |c_q|^2 / 2) / s^2; the -|x|^2 / (2 s^2) is added at the end.
        scaled = c * inv_var
        bias = np.log(self.weights) - 0.5 * inv_var * np.sum(c**2, axis=1)
        chunk = max(1, 131_072 // len(c))
        out = np.empty(len(x))
        for start in range(0, len(x), chunk):
            xc = x[start : start + chunk]
            a = np.multiply(xc[:, :1], scaled[:, 0])
            a += xc[:, 1:] * scaled[:, 1]
            a += bias
            top = a.max(axis=1)
            a -= top[:, None]
            np.maximum(a, _LOG_CLIP, out=a)
            np.exp(a, out=a)
            out[start : start + chunk] = top + np.log(a.sum(axis=1))
        return out - 0.5 * inv_var * np.sum(x**2, axis=1) - math.log(_TWO_PI * self.std**2)

    def density_on_grid(self, g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
        """Density at ``(g1[i], g2[j])``, shape ``(len(g1), len(g2))``; separable, one matmul."""
        k1 = np.exp(-0.5 * ((g1[:, None] - self.centres[:, 0]) / self.std) ** 2)
        k2 = np.exp(-0.5 * ((g2[:, None] - self.centres[:, 1]) / self.std) ** 2)
        return (k1 * self.weights) @ k2.T / (_TWO_PI * self.std**2)


@dataclasses.dataclass(frozen=True, eq=False)
class _Curve:
    """A curve ``fn`` (``(Q,)`` to ``(Q, 2)``) run at ``t ~ U(lo, hi)``, picked w.p. ``weight``."""

    fn: Callable[[np.ndarray], np.ndarray]
    lo: float
    hi: float
    weight: float


def _curve_gaussian_sum(curves: tuple[_Curve, ...], std: float, panel: float) -> _GaussianSum:
    r"""Discretise a mixture of blurred curves into a sum of Gaussians.

    $p(x) = \sum_m \frac{w_m}{b_m - a_m}\int_{a_m}^{b_m} \mathcal{N}(x; c_m(t), \sigma^2 I)\,dt$ by
    composite 8-point Gauss--Legendre in $t$ on panels of arc length about
    ``panel * std / sqrt(1 + 8 std kappa)`` (curvature $\kappa$: points on the convex side of a
    tight bend see a narrower integrand), with panels refined geometrically (8 halvings)
    towards each end of the curve, where points beyond the end see an integrand that decays
    exponentially on the scale $\sigma^2 / d$.
    """
    centres, weights = [], []
    for curve in curves:
        t_fine = np.linspace(curve.lo, curve.hi, 40_001)
        velocity = np.gradient(curve.fn(t_fine), t_fine, axis=0)
        accel = np.gradient(velocity, t_fine, axis=0)
        speed = np.hypot(velocity[:, 0], velocity[:, 1])
        cross = velocity[:, 0] * accel[:, 1] - velocity[:, 1] * accel[:, 0]
        kappa = np.abs(cross) / np.maximum(speed, 1e-300) ** 3
        panels_per_t = speed * np.sqrt(1.0 + 8.0 * std * kappa) / (panel * std)
        u = np.concatenate([[0.0], np.cumsum(0.5 * (panels_per_t[1:] + panels_per_t[:-1]))])
        u *= t_fine[1] - t_fine[0]
        breaks = np.interp(np.linspace(0.0, u[-1], math.ceil(u[-1]) + 1), u, t_fine)
        halvings = 0.5 ** np.arange(1, 9)
        breaks = np.unique(
            np.concatenate(
                [
                    breaks,
                    breaks[0] + (breaks[1] - breaks[0]) * halvings,
                    breaks[-1] - (breaks[-1] - breaks[-2]) * halvings,
                ]
            )
        )
        lo, hi = breaks[:-1, None], breaks[1:, None]
        t = (0.5 * (lo + hi) + 0.5 * (hi - lo) * _GL_NODES).ravel()
        w = (0.5 * (hi - lo) * _GL_WEIGHTS).ravel() * (curve.weight / (curve.hi - curve.lo))
        centres.append(curve.fn(t))
        weights.append(w)
    return _GaussianSum(np.concatenate(centres), np.concatenate(weights), std)


def _spiral_curve(theta: np.ndarray) -> np.ndarray:
    r = _SPIRAL_RATE * theta
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


def _moons_outer(a: np.ndarray) -> np.ndarray:
    return np.stack([2.0 * np.cos(a) - 1.0, 2.0 * np.sin(a) - 0.2], axis=-1)


def _moons_inner(a: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - 2.0 * np.cos(a), 0.8 - 2.0 * np.sin(a)], axis=-1)


def _swissroll_curve(t: np.ndarray) -> np.ndarray:
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / 5.0


_CURVE_DATASETS: dict[str, tuple[tuple[_Curve, ...], float]] = {
    "spiral": ((_Curve(_spiral_curve, 0.0, _SPIRAL_THETA_MAX, 1.0),), _SPIRAL_STD),
    "ffjord_moons": (
        (_Curve(_moons_outer, 0.0, math.pi, 0.5), _Curve(_moons_inner, 0.0, math.pi, 0.5)),
        2.0 * _MOONS_NOISE,
    ),
    "ffjord_swissroll": (
        (_Curve(_swissroll_curve, 1.5 * math.pi, 4.5 * math.pi, 1.0),),
        _SWISSROLL_NOISE / 5.0,
    ),
}
# Panels of 2 std (8 nodes each): log p agrees with a 50x finer rule to ~1e-10 everywhere on
# a box around the support, down to log p = -300.
_CURVE_PANEL = 2.0


@functools.cache
def _gaussian_sum(name: str, panel: float = _CURVE_PANEL) -> _GaussianSum:
    if name in _CURVE_DATASETS:
        curves, std = _CURVE_DATASETS[name]
        return _curve_gaussian_sum(curves, std, panel)
    means, std, weights = gaussian_mixture_params(name)
    return _GaussianSum(means, weights, std)


def _xlogx(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p)
    positive = p > 0
    out[positive] = p[positive] * np.log(p[positive])
    return out


def _grid_entropy(gs: _GaussianSum) -> tuple[float, float]:
    r"""$-\int p \log p$ on a grid of step $\sigma/6$ over the centres' box plus $9\sigma$.

    The trapezoid rule converges geometrically for these smooth, rapidly decaying integrands
    (slowest where $\log p$ switches between well-separated components); returns the value
    and $|H_h - H_{2h}|$, which is an (over-)estimate of the error of the coarser rule.
    """
    h = gs.std / 6.0
    lo = gs.centres.min(axis=0) - 9.0 * gs.std
    hi = gs.centres.max(axis=0) + 9.0 * gs.std
    g1 = np.arange(lo[0], hi[0] + h, h)
    g2 = np.arange(lo[1], hi[1] + h, h)
    p = gs.density_on_grid(g1, g2)
    mass = p.sum() * h**2
    if abs(mass - 1.0) > 1e-6:
        raise RuntimeError(f"entropy grid integrates the density to {mass!r}, expected 1")
    plogp = _xlogx(p)
    fine = -plogp.sum() * h**2
    coarse = -plogp[::2, ::2].sum() * (2.0 * h) ** 2
    return float(fine), float(abs(fine - coarse))


def _gaussian_sum_entropy(name: str) -> tuple[float, float]:
    value, grid_error = _grid_entropy(_gaussian_sum(name))
    if name not in _CURVE_DATASETS:
        return value, grid_error
    finer, _ = _grid_entropy(_gaussian_sum(name, _CURVE_PANEL / 2.0))
    return value, grid_error + abs(finer - value)


# --- radially symmetric: circles blurred by isotropic noise (closed form) --------------------

_RING_DATASETS: dict[str, tuple[tuple[float, ...], float]] = {
    "ffjord_circles": (tuple(3.0 * r for r in _CIRCLES_RADII), 3.0 * _CIRCLES_NOISE),
    "ffjord_rings": (tuple(3.0 * r for r in _RINGS_RADII), _RINGS_NOISE),
}


def _ring_log_density(name: str, r: np.ndarray) -> np.ndarray:
    r"""$\log p$ at radius $r$: $\frac{1}{M}\sum_m \frac{1}{2\pi\sigma^2}
    e^{-(r^2+\rho_m^2)/2\sigma^2} I_0(r\rho_m/\sigma^2)$, written with ``i0e`` for stability."""
    radii, std = _RING_DATASETS[name]
    rho = np.asarray(radii)
    var = std**2
    terms = -0.5 * (r[:, None] - rho) ** 2 / var + np.log(special.i0e(r[:, None] * rho / var))
    return special.logsumexp(terms, axis=1) - math.log(len(rho)) - math.log(_TWO_PI * var)


def _ring_entropy_rule(name: str, panel: float) -> tuple[float, float]:
    radii, std = _RING_DATASETS[name]
    breaks = np.arange(0.0, max(radii) + 12.0 * std + panel * std, panel * std)
    lo, hi = breaks[:-1, None], breaks[1:, None]
    r = (0.5 * (lo + hi) + 0.5 * (hi - lo) * _GL_NODES).ravel()
    w = (0.5 * (hi - lo) * _GL_WEIGHTS).ravel() * _TWO_PI * r
    p = np.exp(_ring_log_density(name, r))
    return float(-np.sum(w * _xlogx(p))), float(np.sum(w * p))


def _ring_entropy(name: str) -> tuple[float, float]:
    r"""$H = -\int_0^\infty p(r)\log p(r)\,2\pi r\,dr$ by composite Gauss--Legendre."""
    value, mass = _ring_entropy_rule(name, 1.0)
    coarse, _ = _ring_entropy_rule(name, 2.0)
    if abs(mass - 1.0) > 1e-6:
        raise RuntimeError(f"radial rule integrates the density to {mass!r}, expected 1")
    return value, abs(value - coarse)


# --- pinwheel and checkerboard ---------------------------------------------------------------


def _pinwheel_log_angle_density(psi: np.ndarray) -> np.ndarray:
    r"""$\log q(\psi)$, $q(\psi) = \frac13\sum_j\sum_k \mathcal{N}(\psi + 2\pi k; 4j, 0.2^2)$."""
    d = psi[:, None] - _PINWHEEL_RATE * np.arange(_PINWHEEL_ARMS)
    d = np.mod(d + math.pi, _TWO_PI) - math.pi  # in [-pi, pi): |k| <= 2 is far more than enough
    d = d[:, :, None] + _TWO_PI * np.arange(-2, 3)
    var = _PINWHEEL_STD**2
    log_terms = (-0.5 * d**2 / var).reshape(len(psi), -1)
    return (
        special.logsumexp(log_terms, axis=1)
        - math.log(_PINWHEEL_ARMS)
        - 0.5 * math.log(_TWO_PI * var)
    )


def _pinwheel_log_prob(x: np.ndarray) -> np.ndarray:
    r = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 0], x[:, 1])
    with np.errstate(divide="ignore"):
        lp = _pinwheel_log_angle_density(phi - _PINWHEEL_RATE * r) - np.log(r)
    return np.where(r < 1.0, lp, -np.inf)


def _pinwheel_entropy() -> tuple[float, float]:
    r"""$H = H(\Phi \mid R) + E[\log R] = H(q) - 1$.

    With $x = r(\sin t, \cos t)$, $dx = r\,dr\,d\varphi$, so $p(x) = p(r, \varphi)/r$ and
    $H(X) = H(R, \Phi) + E[\log R]$; $R \sim \mathcal{U}(0, 1)$ has $H(R) = 0$ and
    $E[\log R] = -1$. Given $R = r$, $\Phi$ is the 3-component wrapped mixture $q$ shifted
    by $4r$, a rotation of the circle, so $H(\Phi \mid R = r) = H(q)$ for every $r$.
    $H(q)$ is a periodic integral: the trapezoid rule converges geometrically.
    """

    def h_q(m: int) -> float:
        psi = np.arange(m) * (_TWO_PI / m)
        q = np.exp(_pinwheel_log_angle_density(psi))
        return float(-np.sum(_xlogx(q)) * (_TWO_PI / m))

    fine, coarse = h_q(4096), h_q(2048)
    return fine - 1.0, abs(fine - coarse)


_CHECKERBOARD_LOG_DENSITY = -math.log(32.0)


def _checkerboard_log_prob(x: np.ndarray) -> np.ndarray:
    inside = np.all((x >= -4.0) & (x < 4.0), axis=1)
    cells = np.floor(x / 2.0)
    black = np.mod(cells[:, 0] + cells[:, 1], 2.0) == 0.0
    return np.where(inside & black, _CHECKERBOARD_LOG_DENSITY, -np.inf)


# --- the table of datasets and the by-name API ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Dataset:
    sampler: Callable[[Key, int], Points]
    log_prob: Callable[[np.ndarray], np.ndarray] | None
    entropy: Callable[[], tuple[float, float]] | None


def _gaussian_sum_entry(name: str, sampler: Callable[[Key, int], Points]) -> _Dataset:
    return _Dataset(
        sampler,
        lambda x: _gaussian_sum(name).log_prob(x),
        lambda: _gaussian_sum_entropy(name),
    )


def _ring_entry(name: str, sampler: Callable[[Key, int], Points]) -> _Dataset:
    return _Dataset(
        sampler,
        lambda x: _ring_log_density(name, np.hypot(x[:, 0], x[:, 1])),
        lambda: _ring_entropy(name),
    )


_CHECKERBOARD_ENTRY = _Dataset(
    checkerboard, _checkerboard_log_prob, lambda: (-_CHECKERBOARD_LOG_DENSITY, 0.0)
)
_DATASETS: dict[str, _Dataset] = {
    "spiral": _gaussian_sum_entry("spiral", spiral),
    "pinwheel": _Dataset(pinwheel, _pinwheel_log_prob, _pinwheel_entropy),
    "checkerboard": _CHECKERBOARD_ENTRY,
    "gaussian_mixture": _gaussian_sum_entry("gaussian_mixture", gaussian_mixture),
    "ffjord_8gaussians": _gaussian_sum_entry("ffjord_8gaussians", ffjord_8gaussians),
    "ffjord_pinwheel": _Dataset(ffjord_pinwheel, None, None),
    "ffjord_2spirals": _Dataset(ffjord_2spirals, None, None),
    "ffjord_moons": _gaussian_sum_entry("ffjord_moons", ffjord_moons),
    "ffjord_circles": _ring_entry("ffjord_circles", ffjord_circles),
    "ffjord_rings": _ring_entry("ffjord_rings", ffjord_rings),
    "ffjord_swissroll": _gaussian_sum_entry("ffjord_swissroll", ffjord_swissroll),
    "ffjord_checkerboard": dataclasses.replace(_CHECKERBOARD_ENTRY, sampler=ffjord_checkerboard),
}
assert tuple(_DATASETS) == NAMES


def _dataset(name: str) -> _Dataset:
    _check_name(name)
    return _DATASETS[name]


def sample(name: str, key: Key, n: int) -> Points:
    """Draw ``n`` i.i.d. points from the dataset ``name``; the same key gives the same points.

    **Arguments:**

    - `name`: one of ``NAMES``.
    - `key`: a JAX PRNG key.
    - `n`: number of points, a positive int.

    **Returns:**

    ``float32`` array of shape ``(n, 2)``.
    """
    return _dataset(name).sampler(key, n)


def split(name: str, key: Key, n_train: int = 2000, n_holdout: int = 500) -> tuple[Points, Points]:
    """A training set and a hold-out set, drawn from independent keys.

    ``k_train, k_holdout = jax.random.split(key)``; then
    ``sample(name, k_train, n_train)`` and ``sample(name, k_holdout, n_holdout)``.

    **Arguments:**

    - `name`: one of ``NAMES``.
    - `key`: a JAX PRNG key.
    - `n_train`, `n_holdout`: positive ints.

    **Returns:**

    ``(train, holdout)``, ``float32`` arrays of shapes ``(n_train, 2)`` and ``(n_holdout, 2)``.
    """
    dataset = _dataset(name)
    _check_key(key)
    check_count(n_train, "n_train")
    check_count(n_holdout, "n_holdout")
    k_train, k_holdout = jax.random.split(key)
    return dataset.sampler(k_train, n_train), dataset.sampler(k_holdout, n_holdout)


def has_log_prob(name: str) -> bool:
    """Whether ``log_prob(name, x)`` is available."""
    return _dataset(name).log_prob is not None


def has_entropy(name: str) -> bool:
    """Whether ``entropy(name)`` is available."""
    return _dataset(name).entropy is not None


def _names_with(attribute: str) -> str:
    return ", ".join(n for n in NAMES if getattr(_DATASETS[n], attribute) is not None)


def _names_without(attribute: str) -> str:
    return ", ".join(n for n in NAMES if getattr(_DATASETS[n], attribute) is None)


def log_prob(name: str, x: ArrayLike) -> Float[np.ndarray, " n"]:
    r"""The exact log-density $\log p(x)$ of the dataset ``name``, in ``float64``.

    Closed form where one exists; for ``spiral``, ``ffjord_moons`` and ``ffjord_swissroll``
    the 1-D integral $\int \mathcal{N}(x; c(t), \sigma^2 I)\,dt$ along the curve by composite
    Gauss--Legendre with about 10-digit accuracy. Points outside the support give ``-inf``.

    **Arguments:**

    - `name`: one of ``NAMES`` with ``has_log_prob(name)``.
    - `x`: points, array-like of shape ``(n, 2)`` (converted to ``float64``).

    **Returns:**

    ``np.ndarray`` of shape ``(n,)``, ``float64``.
    """
    dataset = _dataset(name)
    if dataset.log_prob is None:
        raise ValueError(
            f"no exact log-density for {name!r}; log_prob is available for: "
            f"{_names_with('log_prob')} (not for: {_names_without('log_prob')})"
        )
    shape = np.shape(x)
    if len(shape) != 2 or shape[1] != 2:
        raise ValueError(f"expected x of shape (n, 2), got shape {shape}")
    return dataset.log_prob(np.asarray(x, dtype=np.float64))


@functools.cache
def entropy_with_error(name: str) -> tuple[float, float]:
    r"""The differential entropy $H = -\int p \log p$ in nats, with its quadrature error.

    - ``checkerboard``: $\log 32$ exactly.
    - ``pinwheel``: $H = H(\Phi \mid R) + E[\log R] = H(q) - 1$, where
      $q(\psi) = \frac13\sum_j \sum_k \mathcal{N}(\psi + 2\pi k; 4j, 0.2^2)$ is the angle
      density given $r$ up to the rotation by $4r$ (so it does not depend on $r$), $H(q)$
      by the periodic trapezoid rule, and $E[\log R] = -1$ for $R \sim \mathcal{U}(0, 1)$.
    - Gaussian mixtures and blurred curves (``spiral``, ``ffjord_moons``,
      ``ffjord_swissroll``): trapezoid rule for $-p\log p$ on a 2-D grid of step $\sigma/6$
      covering the support plus $9\sigma$; the grid is checked to integrate $p$ to 1.
    - ``ffjord_circles``, ``ffjord_rings``: $-\int_0^\infty p\log p\ 2\pi r\,dr$ by
      composite Gauss--Legendre.

    Results are cached; each takes well under a second.

    **Arguments:**

    - `name`: one of ``NAMES`` with ``has_entropy(name)``.

    **Returns:**

    ``(value, error)``: the entropy and an estimate of its quadrature error (the change
    under a coarser rule; ``0.0`` where exact), both floats.
    """
    dataset = _dataset(name)
    if dataset.entropy is None:
        raise ValueError(
            f"no entropy for {name!r}; entropy is available for: "
            f"{_names_with('entropy')} (not for: {_names_without('entropy')})"
        )
    value, error = dataset.entropy()
    return float(value), float(error)


def entropy(name: str) -> float:
    """The differential entropy of the dataset ``name`` in nats (see ``entropy_with_error``).

    **Arguments:**

    - `name`: one of ``NAMES`` with ``has_entropy(name)``.

    **Returns:**

    The entropy, a float.
    """
    return entropy_with_error(name)[0]
