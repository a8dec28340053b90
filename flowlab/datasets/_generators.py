r"""Data generators: key-based JAX samplers of the datasets, one jitted body per dataset and
one public wrapper made from it (not to be confused with the model samplers of
:mod:`flowlab.samplers`).

Throughout, $\varepsilon \sim \mathcal{N}(0, I)$ and $U \sim \mathcal{U}(0, 1)$ are fresh
draws per point.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from .._checks import check_count, check_key
from .._typing import Array, Key, Points
from . import _params as P

_F32 = jnp.float32


_SAMPLER_DOC_TAIL = """

    Returns ``n`` (a positive int) i.i.d. ``float32`` points of shape ``(n, 2)``; the same
    JAX PRNG ``key`` gives the same points. Density and entropy: see ``flowlab.datasets``.
"""


@functools.cache
def _jit(body: Callable[[Key, int], Array]) -> Callable[[Key, int], Array]:
    return jax.jit(body, static_argnums=1)


def draw(body: Callable[[Key, int], Array], key: Key, n: int) -> Points:
    """Check ``key`` and ``n``, then run the jitted ``body`` (``n`` static)."""
    check_key(key)
    return _jit(body)(key, check_count(n))


def _sampler(
    name: str, body: Callable[[Key, int], Array], doc: str
) -> Callable[[Key, int], Points]:
    def sampler(key: Key, n: int) -> Points:
        return draw(body, key, n)

    sampler.__name__ = sampler.__qualname__ = name
    sampler.__module__ = "flowlab.datasets"
    sampler.__doc__ = doc + _SAMPLER_DOC_TAIL
    return sampler


# --- the bodies (traced once per n) ---------------------------------------------------------


def _spiral(key, n):
    k_theta, k_noise = jax.random.split(key)
    theta = jax.random.uniform(k_theta, (n,), _F32, 0.0, P.SPIRAL_THETA_MAX)
    r = P.SPIRAL_RATE * theta
    centre = jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=-1)
    return centre + P.SPIRAL_STD * jax.random.normal(k_noise, (n, 2), _F32)


def _pinwheel(key, n):
    k_arm, k_r, k_t = jax.random.split(key, 3)
    arm = jax.random.randint(k_arm, (n,), 0, P.PINWHEEL_ARMS).astype(_F32)
    # Midpoints of jax's float32 grid {k / 2^23}: r lies strictly inside (0, 1), so every
    # sample has a finite log-density (p has a 1/r factor and vanishes for r >= 1).
    r = jax.random.uniform(k_r, (n,), _F32) + 2.0**-24
    t = P.PINWHEEL_RATE * (arm + r) + P.PINWHEEL_STD * jax.random.normal(k_t, (n,), _F32)
    return jnp.stack([r * jnp.sin(t), r * jnp.cos(t)], axis=-1)


def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), _F32, -2.0, 2.0)
    lower = jax.random.bernoulli(k3, 0.5, (n,)).astype(_F32)
    x2 = jax.random.uniform(k2, (n,), _F32) - 2.0 * lower + jnp.mod(jnp.floor(x1), 2.0)
    return 2.0 * jnp.stack([x1, x2], axis=-1)


def _gaussian_mixture(key, n):
    k_comp, k_noise = jax.random.split(key)
    means = P.mixture_means("gaussian_mixture")
    idx = jax.random.randint(k_comp, (n,), 0, means.shape[0])
    return jnp.asarray(means, _F32)[idx] + P.MIXTURE_STD * jax.random.normal(k_noise, (n, 2), _F32)


def _ffjord_8gaussians(key, n):
    k_comp, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_comp, (n,), 0, 8)
    centre = 4.0 * jnp.asarray(P.EIGHT_DIRECTIONS, _F32)[idx]
    return (centre + 0.5 * jax.random.normal(k_noise, (n, 2), _F32)) / P.FFJORD_SCALE


def _ffjord_pinwheel(key, n):
    k_label, k_feat = jax.random.split(key)
    label = jax.random.randint(k_label, (n,), 0, 5).astype(_F32)
    feat = jax.random.normal(k_feat, (n, 2), _F32) * jnp.array([0.3, 0.1], _F32)
    radial = feat[:, 0] + 1.0
    tangential = feat[:, 1]
    angle = P.TWO_PI * label / 5.0 + 0.25 * jnp.exp(radial)
    c, s = jnp.cos(angle), jnp.sin(angle)
    return 2.0 * jnp.stack([radial * c + tangential * s, -radial * s + tangential * c], axis=-1)


def _ffjord_2spirals(key, n):
    k_angle, k_box, k_sign, k_noise = jax.random.split(key, 4)
    angle = jnp.sqrt(jax.random.uniform(k_angle, (n,), _F32)) * (540.0 * P.TWO_PI / 360.0)
    box = 0.5 * jax.random.uniform(k_box, (n, 2), _F32)
    d1 = jnp.stack([-jnp.cos(angle) * angle, jnp.sin(angle) * angle], axis=-1) + box
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n, 1)), 1.0, -1.0).astype(_F32)
    return sign * d1 / 3.0 + 0.1 * jax.random.normal(k_noise, (n, 2), _F32)


def _ffjord_moons(key, n):
    k_angle, k_moon, k_noise = jax.random.split(key, 3)
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, math.pi)
    inner = jax.random.bernoulli(k_moon, 0.5, (n,))
    outer_pt = jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    inner_pt = jnp.stack([1.0 - jnp.cos(a), 1.0 - jnp.sin(a) - 0.5], axis=-1)
    x = jnp.where(inner[:, None], inner_pt, outer_pt)
    x = x + P.MOONS_NOISE * jax.random.normal(k_noise, (n, 2), _F32)
    return 2.0 * x + jnp.array([-1.0, -0.2], _F32)


def _rings(key, n, radii, noise, scale_after):
    k_ring, k_angle, k_noise = jax.random.split(key, 3)
    idx = jax.random.randint(k_ring, (n,), 0, len(radii))
    radius = jnp.asarray(radii, _F32)[idx]
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, P.TWO_PI)
    x = radius[:, None] * jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    return (x + noise * jax.random.normal(k_noise, (n, 2), _F32)) * scale_after


def _ffjord_circles(key, n):
    return _rings(key, n, P.CIRCLES_RADII, P.CIRCLES_NOISE, 3.0)


def _ffjord_rings(key, n):
    return _rings(key, n, tuple(3.0 * r for r in P.RINGS_RADII), P.RINGS_NOISE, 1.0)


def _ffjord_swissroll(key, n):
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,), _F32))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1)
    return (x + P.SWISSROLL_NOISE * jax.random.normal(k_noise, (n, 2), _F32)) / 5.0


# --- the public samplers ----------------------------------------------------------------------

_CHECKERBOARD_DOC = r"""$x_1 \sim \mathcal{U}(-2, 2)$,
    $x_2 = U - 2\,\mathrm{Bernoulli}(\tfrac12) + (\lfloor x_1 \rfloor \bmod 2)$,
    $x = 2\,(x_1, x_2)$: uniform on the 8 of the 16 side-2 squares tiling $[-4, 4)^2$ where
    $\lfloor x_1/2 \rfloor + \lfloor x_2/2 \rfloor$ is even."""

spiral = _sampler(
    "spiral",
    _spiral,
    r"""The course's Archimedean spiral (three turns, radius up to 0.94).

    $\theta \sim \mathcal{U}(0, 6\pi)$,
    $x = 0.05\,\theta\,(\cos\theta, \sin\theta) + 0.04\,\varepsilon$.""",
)
pinwheel = _sampler(
    "pinwheel",
    _pinwheel,
    r"""The course's three-armed pinwheel.

    $j \sim \mathcal{U}\{0, 1, 2\}$, $r \sim \mathcal{U}(0, 1)$, $t = 4j + 4r + 0.2\,\varepsilon$,
    $x = r\,(\sin t, \cos t)$. The course drew ``r = linspace(0, 1, n)``; here $r$ is i.i.d.
    and strictly inside $(0, 1)$, so every sample has a finite log-density.""",
)
checkerboard = _sampler(
    "checkerboard",
    _checkerboard,
    "The checkerboard (the same definition as FFJORD's).\n\n    " + _CHECKERBOARD_DOC,
)
gaussian_mixture = _sampler(
    "gaussian_mixture",
    _gaussian_mixture,
    r"""The course's ring of seven Gaussians.

    $p(x) = \frac17 \sum_{k=0}^{6} \mathcal{N}\big(x;\ 1.2\,(\cos\tfrac{2\pi k}{7},
    \sin\tfrac{2\pi k}{7}),\ 0.12^2 I\big)$; ``gaussian_mixture_params`` returns its parameters.""",
)
ffjord_8gaussians = _sampler(
    "ffjord_8gaussians",
    _ffjord_8gaussians,
    r"""FFJORD's ``8gaussians``.

    $x = (4 u_k + 0.5\,\varepsilon) / 1.414$ with $u_k$ the unit vector at angle $k\pi/4$,
    $k \sim \mathcal{U}\{0..7\}$ (FFJORD divides by the literal 1.414);
    ``gaussian_mixture_params`` returns its parameters.""",
)
ffjord_pinwheel = _sampler(
    "ffjord_pinwheel",
    _ffjord_pinwheel,
    r"""FFJORD's five-armed ``pinwheel`` (Johnson et al. 2016); no exact density.

    $\ell \sim \mathcal{U}\{0..4\}$, $f = (1 + 0.3\,\varepsilon_1,\ 0.1\,\varepsilon_2)$,
    $a = \tfrac{2\pi \ell}{5} + 0.25\,e^{f_1}$,
    $x = 2\,(f_1 \cos a + f_2 \sin a,\ -f_1 \sin a + f_2 \cos a)$ (FFJORD's ``einsum`` applies
    the transpose of the rotation it builds). FFJORD draws ``n // 5`` points per arm; here the
    arm is i.i.d.""",
)
ffjord_2spirals = _sampler(
    "ffjord_2spirals",
    _ffjord_2spirals,
    r"""FFJORD's ``2spirals``; no exact density.

    $\nu = \sqrt{U_0}\cdot 540 \cdot \tfrac{2\pi}{360}$,
    $d = (-\nu\cos\nu + 0.5\,U_1,\ \nu\sin\nu + 0.5\,U_2)$, $x = s\,d / 3 + 0.1\,\varepsilon$
    with a sign $s = \pm 1$ drawn per point (FFJORD returns exactly half $d$, half $-d$).""",
)
ffjord_moons = _sampler(
    "ffjord_moons",
    _ffjord_moons,
    r"""FFJORD's ``moons``: scikit-learn's ``make_moons(noise=0.1)``, then $2x + (-1, -0.2)$.

    $a \sim \mathcal{U}(0, \pi)$, $m = (\cos a, \sin a)$ or $(1 - \cos a,\ 0.5 - \sin a)$
    (probability $\tfrac12$ each), $x = 2\,(m + 0.1\,\varepsilon) + (-1, -0.2)$.
    ``make_moons`` uses a ``linspace`` of angles and equal moons; here both are i.i.d.""",
)
ffjord_circles = _sampler(
    "ffjord_circles",
    _ffjord_circles,
    r"""FFJORD's ``circles``: ``make_circles(factor=0.5, noise=0.08)``, times 3.

    $a \sim \mathcal{U}(0, 2\pi)$, $\rho \in \{1, 0.5\}$ (probability $\tfrac12$ each),
    $x = 3\,(\rho\,(\cos a, \sin a) + 0.08\,\varepsilon)$: noise std 0.24 on radii 3 and 1.5.
    ``make_circles`` uses a ``linspace`` of angles and equal circles; here both are i.i.d.""",
)
ffjord_rings = _sampler(
    "ffjord_rings",
    _ffjord_rings,
    r"""FFJORD's ``rings``: four concentric circles, equal weights.

    $a \sim \mathcal{U}(0, 2\pi)$, $\rho \in \{3, 2.25, 1.5, 0.75\}$ (probability $\tfrac14$
    each), $x = \rho\,(\cos a, \sin a) + 0.08\,\varepsilon$. FFJORD uses ``linspace`` angles and
    fixed ring sizes; here both are i.i.d.""",
)
ffjord_swissroll = _sampler(
    "ffjord_swissroll",
    _ffjord_swissroll,
    r"""FFJORD's ``swissroll``: ``make_swiss_roll(noise=1.0)[:, [0, 2]] / 5``.

    $t = 1.5\pi\,(1 + 2U)$, $x = \big((t\cos t,\ t\sin t) + \varepsilon\big) / 5$.""",
)
ffjord_checkerboard = _sampler(
    "ffjord_checkerboard",
    _checkerboard,
    "FFJORD's ``checkerboard``: the same key gives the same points as ``checkerboard``.\n\n    "
    + _CHECKERBOARD_DOC,
)

SAMPLERS: dict[str, Callable[[Key, int], Points]] = {
    "spiral": spiral,
    "pinwheel": pinwheel,
    "checkerboard": checkerboard,
    "gaussian_mixture": gaussian_mixture,
    "ffjord_8gaussians": ffjord_8gaussians,
    "ffjord_pinwheel": ffjord_pinwheel,
    "ffjord_2spirals": ffjord_2spirals,
    "ffjord_moons": ffjord_moons,
    "ffjord_circles": ffjord_circles,
    "ffjord_rings": ffjord_rings,
    "ffjord_swissroll": ffjord_swissroll,
    "ffjord_checkerboard": ffjord_checkerboard,
}
