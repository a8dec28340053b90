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
import numpy as np

from .._checks import check_count, check_key
from .._typing import Array, Key, Points
from . import _params as P

# Every draw is float32 / int32 whatever the precision, so a key gives the same points with
# or without jax_enable_x64 (``draw`` then widens them to the default float dtype).
_F32 = jnp.float32
_I32 = jnp.int32
_HALF = np.float32(0.5)  # bernoulli draws its uniforms in the dtype of p


_SAMPLER_DOC_TAIL = """

    Returns ``n`` (a positive int) i.i.d. points of shape ``(n, 2)`` in JAX's default float
    dtype (``float32``; ``float64`` under ``jax_enable_x64``, the same values widened); the
    same JAX PRNG ``key`` gives the same points. Density and entropy: see ``flowlab.datasets``.
"""


@functools.cache
def _jit(body: Callable[[Key, int], Array]) -> Callable[[Key, int], Array]:
    return jax.jit(body, static_argnums=1)


def draw(body: Callable[[Key, int], Array], key: Key, n: int) -> Points:
    """Check ``key`` and ``n``, then run the jitted ``body`` (``n`` static).

    The bodies draw in ``float32``, so a key gives the same points whatever the precision;
    the points come back in JAX's default float dtype (``float64`` under
    ``jax_enable_x64``: the ``float32`` values, widened), so that they meet models built in
    that precision."""
    check_key(key)
    x = _jit(body)(key, check_count(n))
    dtype = jnp.result_type(float)
    return x if x.dtype == dtype else x.astype(dtype)


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
    arm = jax.random.randint(k_arm, (n,), 0, P.PINWHEEL_ARMS, _I32).astype(_F32)
    # Midpoints of jax's float32 grid {k / 2^23}: r lies strictly inside (0, 1), so every
    # sample has a finite log-density (p has a 1/r factor and vanishes for r >= 1).
    r = jax.random.uniform(k_r, (n,), _F32) + 2.0**-24
    t = P.PINWHEEL_RATE * (arm + r) + P.PINWHEEL_STD * jax.random.normal(k_t, (n,), _F32)
    return jnp.stack([r * jnp.sin(t), r * jnp.cos(t)], axis=-1)


def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), _F32, -2.0, 2.0)
    lower = jax.random.bernoulli(k3, _HALF, (n,)).astype(_F32)
    x2 = jax.random.uniform(k2, (n,), _F32) - 2.0 * lower + jnp.mod(jnp.floor(x1), 2.0)
    return 2.0 * jnp.stack([x1, x2], axis=-1)


def _gaussian_mixture(key, n):
    k_comp, k_noise = jax.random.split(key)
    means = P.mixture_means("gaussian_mixture")
    idx = jax.random.randint(k_comp, (n,), 0, means.shape[0], _I32)
    return jnp.asarray(means, _F32)[idx] + P.MIXTURE_STD * jax.random.normal(k_noise, (n, 2), _F32)


def _ffjord_8gaussians(key, n):
    k_comp, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_comp, (n,), 0, 8, _I32)
    centre = 4.0 * jnp.asarray(P.EIGHT_DIRECTIONS, _F32)[idx]
    return (centre + 0.5 * jax.random.normal(k_noise, (n, 2), _F32)) / P.FFJORD_SCALE


def _ffjord_pinwheel(key, n):
    k_label, k_feat = jax.random.split(key)
    label = jax.random.randint(k_label, (n,), 0, 5, _I32).astype(_F32)
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
    sign = jnp.where(jax.random.bernoulli(k_sign, _HALF, (n, 1)), 1.0, -1.0).astype(_F32)
    return sign * d1 / 3.0 + 0.1 * jax.random.normal(k_noise, (n, 2), _F32)


def _ffjord_moons(key, n):
    k_angle, k_moon, k_noise = jax.random.split(key, 3)
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, math.pi)
    inner = jax.random.bernoulli(k_moon, _HALF, (n,))
    outer_pt = jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    inner_pt = jnp.stack([1.0 - jnp.cos(a), 1.0 - jnp.sin(a) - 0.5], axis=-1)
    x = jnp.where(inner[:, None], inner_pt, outer_pt)
    x = x + P.MOONS_NOISE * jax.random.normal(k_noise, (n, 2), _F32)
    return 2.0 * x + jnp.array([-1.0, -0.2], _F32)


def _rings(key, n, radii, noise, scale_after):
    k_ring, k_angle, k_noise = jax.random.split(key, 3)
    idx = jax.random.randint(k_ring, (n,), 0, len(radii), _I32)
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


def _torchcfm_8gaussians(key, n):
    k_comp, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_comp, (n,), 0, 8, _I32)
    centre = P.TORCHCFM_8G_SCALE * jnp.asarray(P.EIGHT_DIRECTIONS, _F32)[idx]
    return centre + np.float32(P.TORCHCFM_8G_STD) * jax.random.normal(k_noise, (n, 2), _F32)


def _torchcfm_moons(key, n):
    k_angle, k_moon, k_shift = jax.random.split(key, 3)
    a = jax.random.uniform(k_angle, (n,), _F32, 0.0, math.pi)
    inner = jax.random.bernoulli(k_moon, _HALF, (n,))
    outer_pt = jnp.stack([jnp.cos(a), jnp.sin(a)], axis=-1)
    inner_pt = jnp.stack([1.0 - jnp.cos(a), 0.5 - jnp.sin(a)], axis=-1)
    x = jnp.where(inner[:, None], inner_pt, outer_pt)
    # torchdyn: X += rand(n, 1) * noise, one uniform shift along (1, 1) per point
    x = x + P.TORCHCFM_MOONS_NOISE * jax.random.uniform(k_shift, (n, 1), _F32)
    return P.TORCHCFM_MOONS_SCALE * x + P.TORCHCFM_MOONS_SHIFT


def _torchcfm_scurve(key, n):
    k_t, k_noise = jax.random.split(key)
    t = 3.0 * math.pi * (jax.random.uniform(k_t, (n,), _F32) - 0.5)
    x = jnp.stack([jnp.sin(t), jnp.sign(t) * (jnp.cos(t) - 1.0)], axis=-1)
    x = x + P.TORCHCFM_SCURVE_NOISE * jax.random.normal(k_noise, (n, 2), _F32)
    return P.TORCHCFM_SCURVE_SCALE * x


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

torchcfm_8gaussians = _sampler(
    "torchcfm_8gaussians",
    _torchcfm_8gaussians,
    r"""torchcfm's ``sample_8gaussians`` (also C2OT's source): eight Gaussians on a circle of
    radius 5.

    $x = 5 u_k + 0.1^{1/4}\,\varepsilon$, $u_k$ the unit vector at angle $k\pi/4$,
    $k \sim \mathcal{U}\{0..7\}$. Quirk: ``eight_normal_sample(scale=5, var=0.1)`` passes
    $\sqrt{0.1}\,I$ to ``MultivariateNormal`` as its *covariance*, so the standard deviation
    is $0.1^{1/4} \approx 0.562$, not $\sqrt{0.1}$. ``gaussian_mixture_params`` returns its
    parameters.""",
)
torchcfm_moons = _sampler(
    "torchcfm_moons",
    _torchcfm_moons,
    r"""torchcfm's ``sample_moons`` (also C2OT's target): torchdyn's
    ``generate_moons(noise=0.2)``, then $3x - 1$.

    $a \sim \mathcal{U}(0, \pi)$, $m = (\cos a, \sin a)$ or $(1 - \cos a,\ 0.5 - \sin a)$
    (probability $\tfrac12$ each), $x = 3\,(m + u\,(1, 1)) - 1$ with $u \sim \mathcal{U}(0,
    0.2)$. Quirk: torchdyn's "noise" is ``rand(n, 1) * noise``, *one uniform* draw added to
    *both* coordinates, so each moon is its arc swept along the diagonal $(1, 1)$ by up to
    $0.6$ (after the scaling): a band with sharp edges, not a Gaussian blur, and its density
    has integrable $1/\sqrt{\cdot}$ singularities where the arc runs parallel to $(1, 1)$.
    torchdyn uses a ``linspace`` of angles and equal moons; here both are i.i.d. Exact
    log-density (closed form over the preimages); no entropy.""",
)
torchcfm_scurve = _sampler(
    "torchcfm_scurve",
    _torchcfm_scurve,
    r"""The S-curve of Tong et al.'s runner (``SKLearnDataModule("scurve")``; torchcfm itself
    has no ``sample_scurve``): ``make_s_curve(noise=0.05)[:, [0, 2]] * 1.5``.

    $t = 3\pi\,(U - \tfrac12)$, $x = 1.5\,\big((\sin t,\ \operatorname{sign}(t)(\cos t - 1))
    + 0.05\,\varepsilon\big)$: a blurred curve with isotropic noise std $0.075$ (the
    S-curve's discarded middle coordinate does not matter).""",
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
    "torchcfm_8gaussians": torchcfm_8gaussians,
    "torchcfm_moons": torchcfm_moons,
    "torchcfm_scurve": torchcfm_scurve,
}
