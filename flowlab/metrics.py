r"""Sample-based metrics: KDE log-likelihood and the KDE Bhattacharyya distance.

These are for models whose samples are all we score. Where a model has an exact
likelihood (every flowlab model does), report that; these estimates carry the bias of the
kernel density estimate (a noise floor that the oracle — fresh true samples scored the same
way — shows).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats

from ._checks import check_points

__all__ = ["KDEResult", "bhattacharyya_distance", "kde_log_likelihood", "mean_and_se"]


def mean_and_se(values) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n))."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        raise ValueError(f"need at least 2 values for a standard error, got {v.size}")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


@dataclasses.dataclass(frozen=True)
class KDEResult:
    """Mean KDE log-likelihood of hold-out points, its standard error and the bandwidth."""

    mean: float
    se: float
    bw_method: str | float
    bandwidth_factor: float
    n_samples: int
    n_holdout: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _as_points(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected {name} of shape (n, d) with n >= 2, got shape {x.shape}")
    check_points(x, x.shape[1], name)  # non-finite values
    return x


def _kde(samples, bw_method) -> scipy.stats.gaussian_kde:
    return scipy.stats.gaussian_kde(_as_points(samples, "samples").T, bw_method=bw_method)


def kde_log_likelihood(samples, holdout, bw_method: str | float = "scott") -> KDEResult:
    r"""Fit ``scipy.stats.gaussian_kde`` to model ``samples`` (shape ``(N, d)``) and return the
    mean of its ``logpdf`` on ``holdout`` (shape ``(n, d)``) with a standard error.

    Arguments:
        bw_method: ``"scott"`` (default), ``"silverman"`` or a float factor, as in SciPy.
    """
    kde = _kde(samples, bw_method)
    h = _as_points(holdout, "holdout")
    if h.shape[1] != kde.d:
        raise ValueError(f"expected holdout of shape (n, {kde.d}), got shape {h.shape}")
    mean, se = mean_and_se(kde.logpdf(h.T))
    return KDEResult(mean, se, bw_method, float(kde.factor), kde.n, h.shape[0])


def bhattacharyya_distance(
    samples_p,
    samples_q,
    bw_method: str | float = "scott",
    grid_size: int = 200,
    margin: float = 3.0,
) -> float:
    r"""KDE-based Bhattacharyya distance $D_B = -\log \int \sqrt{\hat p(x)\,\hat q(x)}\,dx$.

    Estimator: fit a Gaussian KDE to each sample set (``bw_method`` as in SciPy) and
    integrate $\sqrt{\hat p \hat q}$ with the midpoint rule on a ``grid_size`` $\times$
    ``grid_size`` grid covering both sets plus ``margin`` bandwidths on each side (2D
    only). $D_B = 0$ iff the two KDEs coincide; for two Gaussians
    $D_B = \tfrac18 \Delta\mu^\top \Sigma^{-1} \Delta\mu + \tfrac12 \log
    \frac{\det \Sigma}{\sqrt{\det \Sigma_p \det \Sigma_q}}$ with
    $\Sigma = (\Sigma_p + \Sigma_q)/2$, which the KDE estimate approaches for large samples
    (its kernels inflate each covariance slightly).
    """
    kp, kq = _kde(samples_p, bw_method), _kde(samples_q, bw_method)
    if kp.d != 2 or kq.d != 2:
        raise ValueError(f"bhattacharyya_distance integrates on a 2D grid, got d={kp.d}")
    pts = np.concatenate([kp.dataset, kq.dataset], axis=1)
    pad = margin * np.sqrt(np.maximum(np.diag(kp.covariance), np.diag(kq.covariance)))
    lo, hi = pts.min(1) - pad, pts.max(1) + pad
    edges = [np.linspace(lo[i], hi[i], grid_size + 1) for i in range(2)]
    mids = [0.5 * (e[1:] + e[:-1]) for e in edges]
    xx, yy = np.meshgrid(*mids)
    grid = np.stack([xx.ravel(), yy.ravel()])
    cell = (edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0])
    bc = np.sum(np.sqrt(kp(grid) * kq(grid))) * cell
    return float(-np.log(np.clip(bc, 1e-300, None)))
