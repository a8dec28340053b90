r"""Differential entropies $H = -\int p \log p$ by quadrature, each with an error estimate.

Every function returns ``(value, error)``, the error being the change under a coarser rule
(``0.0`` where the value is exact).
"""

from __future__ import annotations

import numpy as np

from . import _densities as D
from . import _params as P


def _xlogx(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p)
    positive = p > 0
    out[positive] = p[positive] * np.log(p[positive])
    return out


def _grid_entropy(gs: D.GaussianSum) -> tuple[float, float]:
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


def gaussian_sum_entropy(name: str) -> tuple[float, float]:
    """Grid entropy of a mixture; for a blurred curve, plus the change under panels half as long."""
    value, grid_error = _grid_entropy(D.gaussian_sum(name))
    if name not in D.CURVE_DATASETS:
        return value, grid_error
    finer, _ = _grid_entropy(D.gaussian_sum(name, D.CURVE_PANEL / 2.0))
    return value, grid_error + abs(finer - value)


def _ring_entropy_rule(name: str, panel: float) -> tuple[float, float]:
    nodes, gl_weights = D.gauss_legendre()
    radii, std = D.RING_DATASETS[name]
    breaks = np.arange(0.0, max(radii) + 12.0 * std + panel * std, panel * std)
    lo, hi = breaks[:-1, None], breaks[1:, None]
    r = (0.5 * (lo + hi) + 0.5 * (hi - lo) * nodes).ravel()
    w = (0.5 * (hi - lo) * gl_weights).ravel() * P.TWO_PI * r
    p = np.exp(D.ring_log_density(name, r))
    return float(-np.sum(w * _xlogx(p))), float(np.sum(w * p))


def ring_entropy(name: str) -> tuple[float, float]:
    r"""$H = -\int_0^\infty p(r)\log p(r)\,2\pi r\,dr$ by composite Gauss--Legendre."""
    value, mass = _ring_entropy_rule(name, 1.0)
    coarse, _ = _ring_entropy_rule(name, 2.0)
    if abs(mass - 1.0) > 1e-6:
        raise RuntimeError(f"radial rule integrates the density to {mass!r}, expected 1")
    return value, abs(value - coarse)


def pinwheel_entropy() -> tuple[float, float]:
    r"""$H = H(\Phi \mid R) + E[\log R] = H(q) - 1$.

    With $x = r(\sin t, \cos t)$, $dx = r\,dr\,d\varphi$, so $p(x) = p(r, \varphi)/r$ and
    $H(X) = H(R, \Phi) + E[\log R]$; $R \sim \mathcal{U}(0, 1)$ has $H(R) = 0$ and
    $E[\log R] = -1$. Given $R = r$, $\Phi$ is the 3-component wrapped mixture $q$ shifted
    by $4r$, a rotation of the circle, so $H(\Phi \mid R = r) = H(q)$ for every $r$.
    $H(q)$ is a periodic integral: the trapezoid rule converges geometrically.
    """

    def h_q(m: int) -> float:
        psi = np.arange(m) * (P.TWO_PI / m)
        q = np.exp(D.pinwheel_log_angle_density(psi))
        return float(-np.sum(_xlogx(q)) * (P.TWO_PI / m))

    fine, coarse = h_q(4096), h_q(2048)
    return fine - 1.0, abs(fine - coarse)


def checkerboard_entropy() -> tuple[float, float]:
    r"""$\log 32$, exactly."""
    return -P.CHECKERBOARD_LOG_DENSITY, 0.0
