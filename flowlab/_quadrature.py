r"""Quadrature on boxes, the one module for it: tensor-product rules in log space.

* Composite Gauss–Legendre (:func:`panel_rule`, :func:`tensor_rule`,
  :func:`log_integral`): $\log\int_Q e^{f(z)}\,dz$, used by the energy-based model
  (:mod:`flowlab.ebm`) to normalise $e^{-E}$ over the plane.
* The trapezoid rule (:func:`trapezoid_rule`), used by the VAE (:mod:`flowlab.vae`) for
  its marginal over a Gaussian latent, where it converges geometrically and the grid of half
  the resolution (every other node) gives a free error estimate.

Both build their grid with :func:`tensor_product`. For Gauss–Legendre, each axis of the box
$Q = \prod_i [a_i, b_i]$ is cut into ``panels`` equal panels with ``order`` Gauss–Legendre
nodes each; the rule is exact for polynomials of degree $2\,\text{order} - 1$ on every panel
and converges geometrically for analytic integrands, so doubling the panels and comparing
the two estimates gives a (conservative) error estimate for the coarser one. Everything is
jittable and differentiable in ``f``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array

__all__ = [
    "evaluate_on_rule",
    "log_integral",
    "panel_rule",
    "tensor_product",
    "tensor_rule",
    "trapezoid_rule",
]


def panel_rule(lo: float, hi: float, panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and weights on ``[lo, hi]`` (float64 numpy).

    Arguments:
        lo, hi: the interval, ``lo < hi``.
        panels: number of equal panels.
        order: Gauss–Legendre nodes per panel.

    Returns:
        ``(nodes, weights)``, each of shape ``(panels * order,)``; ``weights`` sum to
        ``hi - lo``.
    """
    if not hi > lo:
        raise ValueError(f"expected an interval with lo < hi, got [{lo}, {hi}]")
    for value, name in ((panels, "panels"), (order, "order")):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"expected {name} to be a positive integer, got {value!r}")
    t, w = np.polynomial.legendre.leggauss(int(order))
    h = (hi - lo) / panels
    left = lo + h * np.arange(panels)
    nodes = (left[:, None] + 0.5 * h * (t[None, :] + 1.0)).ravel()
    weights = np.tile(0.5 * h * w, panels)
    return nodes, weights


def trapezoid_rule(lo: float, hi: float, intervals: int) -> tuple[np.ndarray, np.ndarray]:
    """The trapezoid rule on ``[lo, hi]`` with ``intervals`` equal intervals (float64 numpy).

    Returns:
        ``(nodes, weights)``, each of shape ``(intervals + 1,)``: ``h`` inside and ``h/2``
        at the two ends, ``h = (hi - lo) / intervals``.
    """
    if not hi > lo:
        raise ValueError(f"expected an interval with lo < hi, got [{lo}, {hi}]")
    if isinstance(intervals, bool) or int(intervals) != intervals or intervals < 1:
        raise ValueError(f"expected intervals to be a positive integer, got {intervals!r}")
    intervals = int(intervals)
    h = (hi - lo) / intervals
    weights = np.full(intervals + 1, h)
    weights[[0, -1]] *= 0.5
    return np.linspace(lo, hi, intervals + 1), weights


def tensor_product(
    nodes: list[np.ndarray], log_weights: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The tensor product of one-dimensional rules given by their nodes and log-weights:
    ``(points, log_weights)`` of shapes ``(N, d)`` and ``(N,)``, ``N`` the product of the
    rules' sizes, the first axis varying slowest (float64 numpy; a weight of zero is a
    log-weight of ``-inf``)."""
    if len(nodes) != len(log_weights) or not nodes:
        raise ValueError(
            f"expected as many node arrays as log-weight arrays (at least one), got "
            f"{len(nodes)} and {len(log_weights)}"
        )
    grids = np.meshgrid(*nodes, indexing="ij")
    log_w = np.zeros(())
    for lw in log_weights:
        log_w = np.add.outer(log_w, lw)
    return np.stack([g.ravel() for g in grids], axis=-1), log_w.ravel()


def tensor_rule(
    box: tuple[tuple[float, float], ...], panels: int, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """The tensor-product panel rule on ``box``: ``(points, log_weights)`` of shapes
    ``(N, d)`` and ``(N,)``, ``N = (panels * order) ** d`` (float64 numpy)."""
    rules = [panel_rule(lo, hi, panels, order) for lo, hi in box]
    return tensor_product([r[0] for r in rules], [np.log(r[1]) for r in rules])


def log_integral(
    log_f: Callable[[Array], Array],
    box: tuple[tuple[float, float], ...],
    panels: int,
    order: int,
    chunk: int = 16384,
) -> tuple[Array, int]:
    r"""$\log \int_Q e^{\log f(z)}\,dz$ by the tensor-product panel rule, in log space.

    Arguments:
        log_f: $\log f$ at one point of shape ``(d,)``, returning a scalar.
        box: ``((lo_1, hi_1), ..., (lo_d, hi_d))``.
        panels: panels per axis.
        order: Gauss–Legendre nodes per panel.
        chunk: points per vectorised evaluation (bounds memory under ``grad``).

    Returns:
        ``(log integral, number of evaluations of log_f)``.
    """
    values, log_w = evaluate_on_rule(log_f, box, panels, order, chunk)
    return jax.nn.logsumexp(values + log_w), values.shape[0]


def evaluate_on_rule(
    log_f: Callable[[Array], Array],
    box: tuple[tuple[float, float], ...],
    panels: int,
    order: int,
    chunk: int = 16384,
) -> tuple[Array, Array]:
    """``log_f`` at every node of :func:`tensor_rule` and the log-weights, as arrays of
    shape ``(N,)`` (for integrals of other functionals of $f$, e.g. an entropy)."""
    points, log_w = tensor_rule(box, panels, order)
    n = points.shape[0]
    dtype = jnp.result_type(float)
    values = jax.lax.map(log_f, jnp.asarray(points, dtype), batch_size=min(int(chunk), n))
    if values.shape != (n,):
        raise ValueError(
            f"expected log_f to return a scalar per point, got shape {values.shape[1:]}"
        )
    return values, jnp.asarray(log_w, dtype)
