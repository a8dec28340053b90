r"""Exact log-densities on the host in ``float64``: closed forms and 1-D quadrature.

- Gaussian sums $p(x) = \sum_q w_q\,\mathcal{N}(x; c_q, \sigma^2 I)$: the two mixtures
  exactly, and curves blurred by isotropic noise (``spiral``, ``ffjord_moons``,
  ``ffjord_swissroll``), $p(x) = \int \mathcal{N}(x; c(t), \sigma^2 I)\,dt$, discretised by
  composite Gauss--Legendre in $t$.
- Radially symmetric rings (``ffjord_circles``, ``ffjord_rings``): closed form via $I_0$.
- ``pinwheel`` in polar coordinates, ``checkerboard`` piecewise constant.

SciPy is imported on first use, so that importing ``flowlab.datasets`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

from . import _params as P

_LOG_CLIP = -700.0  # exp() below this underflows on a slow path; such terms are irrelevant


@functools.cache
def gauss_legendre() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of 8-point Gauss--Legendre on ``[-1, 1]``."""
    return np.polynomial.legendre.leggauss(8)


# --- Gaussian sums: mixtures, and curves blurred by isotropic noise ---------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianSum:
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
        return out - 0.5 * inv_var * np.sum(x**2, axis=1) - math.log(P.TWO_PI * self.std**2)

    def density_on_grid(self, g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
        """Density at ``(g1[i], g2[j])``, shape ``(len(g1), len(g2))``; separable, one matmul."""
        k1 = np.exp(-0.5 * ((g1[:, None] - self.centres[:, 0]) / self.std) ** 2)
        k2 = np.exp(-0.5 * ((g2[:, None] - self.centres[:, 1]) / self.std) ** 2)
        return (k1 * self.weights) @ k2.T / (P.TWO_PI * self.std**2)


@dataclasses.dataclass(frozen=True, eq=False)
class _Curve:
    """A curve ``fn`` (``(Q,)`` to ``(Q, 2)``) run at ``t ~ U(lo, hi)``, picked w.p. ``weight``."""

    fn: Callable[[np.ndarray], np.ndarray]
    lo: float
    hi: float
    weight: float


def _curve_gaussian_sum(curves: tuple[_Curve, ...], std: float, panel: float) -> GaussianSum:
    r"""Discretise a mixture of blurred curves into a sum of Gaussians.

    $p(x) = \sum_m \frac{w_m}{b_m - a_m}\int_{a_m}^{b_m} \mathcal{N}(x; c_m(t), \sigma^2 I)\,dt$ by
    composite 8-point Gauss--Legendre in $t$ on panels of arc length about
    ``panel * std / sqrt(1 + 8 std kappa)`` (curvature $\kappa$: points on the convex side of a
    tight bend see a narrower integrand), with panels refined geometrically (8 halvings)
    towards each end of the curve, where points beyond the end see an integrand that decays
    exponentially on the scale $\sigma^2 / d$.
    """
    nodes, gl_weights = gauss_legendre()
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
        t = (0.5 * (lo + hi) + 0.5 * (hi - lo) * nodes).ravel()
        w = (0.5 * (hi - lo) * gl_weights).ravel() * (curve.weight / (curve.hi - curve.lo))
        centres.append(curve.fn(t))
        weights.append(w)
    return GaussianSum(np.concatenate(centres), np.concatenate(weights), std)


def _spiral_curve(theta: np.ndarray) -> np.ndarray:
    r = P.SPIRAL_RATE * theta
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


def _moons_outer(a: np.ndarray) -> np.ndarray:
    return np.stack([2.0 * np.cos(a) - 1.0, 2.0 * np.sin(a) - 0.2], axis=-1)


def _moons_inner(a: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - 2.0 * np.cos(a), 0.8 - 2.0 * np.sin(a)], axis=-1)


def _scurve_curve(t: np.ndarray) -> np.ndarray:
    c = np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1.0)], axis=-1)
    return P.TORCHCFM_SCURVE_SCALE * c


def _swissroll_curve(t: np.ndarray) -> np.ndarray:
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / 5.0


CURVE_DATASETS: dict[str, tuple[tuple[_Curve, ...], float]] = {
    "spiral": ((_Curve(_spiral_curve, 0.0, P.SPIRAL_THETA_MAX, 1.0),), P.SPIRAL_STD),
    "ffjord_moons": (
        (_Curve(_moons_outer, 0.0, math.pi, 0.5), _Curve(_moons_inner, 0.0, math.pi, 0.5)),
        2.0 * P.MOONS_NOISE,
    ),
    "ffjord_swissroll": (
        (_Curve(_swissroll_curve, 1.5 * math.pi, 4.5 * math.pi, 1.0),),
        P.SWISSROLL_NOISE / 5.0,
    ),
    "torchcfm_scurve": (
        (_Curve(_scurve_curve, -1.5 * math.pi, 1.5 * math.pi, 1.0),),
        P.TORCHCFM_SCURVE_SCALE * P.TORCHCFM_SCURVE_NOISE,
    ),
}
# Panels of 2 std (8 nodes each): log p agrees with a 50x finer rule to ~1e-10 everywhere on
# a box around the support, down to log p = -300.
CURVE_PANEL = 2.0


@functools.cache
def gaussian_sum(name: str, panel: float = CURVE_PANEL) -> GaussianSum:
    """The Gaussian sum of a mixture or blurred-curve dataset (curves: panels of ``panel`` std)."""
    if name in CURVE_DATASETS:
        curves, std = CURVE_DATASETS[name]
        return _curve_gaussian_sum(curves, std, panel)
    means, std, weights = P.gaussian_mixture_params(name)
    return GaussianSum(means, weights, std)


# --- radially symmetric: circles blurred by isotropic noise (closed form) --------------------

RING_DATASETS: dict[str, tuple[tuple[float, ...], float]] = {
    "ffjord_circles": (tuple(3.0 * r for r in P.CIRCLES_RADII), 3.0 * P.CIRCLES_NOISE),
    "ffjord_rings": (tuple(3.0 * r for r in P.RINGS_RADII), P.RINGS_NOISE),
}


def ring_log_density(name: str, r: np.ndarray) -> np.ndarray:
    r"""$\log p$ at radius $r$: $\frac{1}{M}\sum_m \frac{1}{2\pi\sigma^2}
    e^{-(r^2+\rho_m^2)/2\sigma^2} I_0(r\rho_m/\sigma^2)$, written with ``i0e`` for stability."""
    from scipy import special

    radii, std = RING_DATASETS[name]
    rho = np.asarray(radii)
    var = std**2
    terms = -0.5 * (r[:, None] - rho) ** 2 / var + np.log(special.i0e(r[:, None] * rho / var))
    return special.logsumexp(terms, axis=1) - math.log(len(rho)) - math.log(P.TWO_PI * var)


# --- pinwheel (polar) and checkerboard (piecewise constant) ------------------------------------


def pinwheel_log_angle_density(psi: np.ndarray) -> np.ndarray:
    r"""$\log q(\psi)$, $q(\psi) = \frac13\sum_j\sum_k \mathcal{N}(\psi + 2\pi k; 4j, 0.2^2)$."""
    from scipy import special

    d = psi[:, None] - P.PINWHEEL_RATE * np.arange(P.PINWHEEL_ARMS)
    d = np.mod(d + math.pi, P.TWO_PI) - math.pi  # in [-pi, pi): |k| <= 2 is far more than enough
    d = d[:, :, None] + P.TWO_PI * np.arange(-2, 3)
    var = P.PINWHEEL_STD**2
    log_terms = (-0.5 * d**2 / var).reshape(len(psi), -1)
    return (
        special.logsumexp(log_terms, axis=1)
        - math.log(P.PINWHEEL_ARMS)
        - 0.5 * math.log(P.TWO_PI * var)
    )


def pinwheel_log_prob(x: np.ndarray) -> np.ndarray:
    r"""$\log p(x) = \log q(\varphi - 4r) - \log r$ for $r = |x| < 1$, $\varphi =
    \operatorname{atan2}(x_1, x_2)$; $-\infty$ for $r \ge 1$."""
    r = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 0], x[:, 1])
    with np.errstate(divide="ignore"):
        lp = pinwheel_log_angle_density(phi - P.PINWHEEL_RATE * r) - np.log(r)
    return np.where(r < 1.0, lp, -np.inf)


def checkerboard_log_prob(x: np.ndarray) -> np.ndarray:
    """``log(1/32)`` on the squares where ``floor(x1/2) + floor(x2/2)`` is even, else ``-inf``."""
    inside = np.all((x >= -4.0) & (x < 4.0), axis=1)
    cells = np.floor(x / 2.0)
    black = np.mod(cells[:, 0] + cells[:, 1], 2.0) == 0.0
    return np.where(inside & black, P.CHECKERBOARD_LOG_DENSITY, -np.inf)


# --- torchcfm's moons: arcs swept along (1, 1) by a uniform shift (closed form) ---------------


_EDGE = 1e-6
_SIN_FLOOR = 1e-6


def torchcfm_moons_log_prob(x: np.ndarray) -> np.ndarray:
    r"""$\log p$ of ``torchcfm_moons``, summed over the preimages of each point.

    In $y = (x + 1)/3$ a point is $y = m(a) + u\,(1, 1)$, $a \sim \mathcal{U}(0, \pi)$,
    $u \sim \mathcal{U}(0, \delta)$ ($\delta = 0.2$), moon $m$ w.p. $\tfrac12$. With
    $\varphi = a + \pi/4$, $y_1 - y_2 = \sqrt2\cos\varphi$ (outer moon) or
    $\tfrac12 - \sqrt2\cos\varphi$ (inner), so $\varphi = \pm\arccos(\cdot)$ (mod
    $2\pi$), $u = y_1 - m_1(a)$, and the Jacobian of $(a, u) \mapsto y$ is
    $\sqrt2\,|\sin\varphi|$: $p_y(y) = \sum \frac{1}{2\pi\delta\sqrt2|\sin\varphi|}$ over
    the preimages with $a \in [0, \pi]$, $u \in [0, \delta]$, and $p(x) = p_y(y)/9$.
    On the two fold lines ($\sin\varphi = 0$, a null set where $p$ is infinite)
    $|\sin\varphi|$ is floored at $10^{-6}$ and points within $10^{-6}$ of the band's
    edges count as inside (``float32`` samples land there); $-\infty$ off the support.
    """
    scale, delta = P.TORCHCFM_MOONS_SCALE, P.TORCHCFM_MOONS_NOISE
    y = (x - P.TORCHCFM_MOONS_SHIFT) / scale
    g = y[:, 0] - y[:, 1]
    density = np.zeros(len(y))
    for inner in (False, True):
        v = ((0.5 - g) if inner else g) / math.sqrt(2.0)
        ok = np.abs(v) <= 1.0 + _EDGE
        v = np.clip(v, -1.0, 1.0)
        base = np.arccos(v)
        # |sin(phi)|, floored: float32 samples land on the fold lines, where p is infinite
        sin_phi = np.sqrt(np.maximum(1.0 - v**2, _SIN_FLOOR**2))
        for phi in (base, P.TWO_PI - base):
            a = phi - 0.25 * math.pi
            m1 = 1.0 - np.cos(a) if inner else np.cos(a)
            u = y[:, 0] - m1
            # slack for points drawn in float32 on the edges of the band (a null set)
            keep = ok & (a >= -_EDGE) & (a <= math.pi + _EDGE)
            keep &= (u >= -_EDGE) & (u <= delta + _EDGE)
            term = 1.0 / (2.0 * math.pi * delta * math.sqrt(2.0) * sin_phi)
            density += np.where(keep, term, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(density) - 2.0 * math.log(scale)
