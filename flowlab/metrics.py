r"""Sample-based metrics: KDE log-likelihood and the KDE Bhattacharyya distance.

These are for models whose samples are all we score. Where a model has an exact
likelihood (every flowlab model does), report that; these estimates carry the bias of the
kernel density estimate (a noise floor that the oracle — fresh true samples scored the same
way — shows).

A KDE needs samples that span the plane: points that are all identical, or all on a line (as
a collapsed generator produces), have a singular covariance, and the KDE scores are then
meaningless (SciPy either fails or returns numbers like -1e16). ``kde_log_likelihood`` and
``bhattacharyya_distance`` raise :class:`DegenerateSamplesError` (a ``ValueError``) for
them, which a caller can catch and record as an explicit flag; ``check_samples`` runs the
same check alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize
import scipy.spatial.distance
import scipy.stats

from ._checks import check_points

__all__ = [
    "DegenerateSamplesError",
    "KDEResult",
    "bhattacharyya_distance",
    "check_samples",
    "energy_distance",
    "grid_mass",
    "kde_log_likelihood",
    "mean_and_se",
    "mmd",
    "wasserstein2",
]


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


class DegenerateSamplesError(ValueError):
    """Samples whose covariance does not have full rank ``d``: a KDE of them is meaningless.

    Attributes: ``name`` (the argument), ``n`` (number of samples), ``n_distinct`` (number of
    distinct points), ``dim`` (``d``), ``rank`` (numerical rank of the covariance) and
    ``eigenvalues`` (of the covariance, ascending).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        n: int,
        n_distinct: int,
        dim: int,
        rank: int,
        eigenvalues: np.ndarray,
    ):
        super().__init__(message)
        self.name, self.n, self.n_distinct = name, n, n_distinct
        self.dim, self.rank, self.eigenvalues = dim, rank, eigenvalues


# An eigen-direction of the covariance counts as zero when its standard deviation is at most
# this many machine epsilons (of the samples' dtype) times the largest coordinate: rounding
# points on a line to float32 leaves them a thickness of about 0.3 eps |x|.
_RANK_EPS_FACTOR = 100.0


def _check_full_rank(x: np.ndarray, eps: float, name: str) -> None:
    n, d = x.shape
    eigenvalues = np.linalg.eigvalsh(np.atleast_2d(np.cov(x.T)))
    tol = _RANK_EPS_FACTOR * eps * float(np.max(np.abs(x)))
    rank = int(np.sum(np.sqrt(np.maximum(eigenvalues, 0.0)) > tol))
    if rank == d:
        return
    n_distinct = len(np.unique(x, axis=0))
    points = "point" if n_distinct == 1 else "points"
    raise DegenerateSamplesError(
        f"{name} are degenerate: a Gaussian KDE needs samples whose covariance has full rank "
        f"{d}, got {n} samples ({n_distinct} distinct {points}) whose covariance has rank "
        f"{rank} (eigenvalues {np.array2string(eigenvalues, precision=3)}; a direction with "
        f"std <= {tol:.3g} counts as zero). A collapsed generator produces this: report the "
        f"run as degenerate rather than as a KDE score.",
        name=name,
        n=n,
        n_distinct=n_distinct,
        dim=d,
        rank=rank,
        eigenvalues=eigenvalues,
    )


def _eps(samples) -> float:
    dtype = np.asarray(samples).dtype
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


def check_samples(samples, name: str = "samples") -> None:
    """Check that ``samples`` (shape ``(N, d)``, ``N >= 2``, finite) can be fitted by a KDE.

    Raises :class:`DegenerateSamplesError` (a ``ValueError``) when their covariance is
    singular to the precision of their dtype (all points identical, or all on a line in 2D),
    and ``ValueError`` for a bad shape or non-finite values.
    """
    _check_full_rank(_as_points(samples, name), _eps(samples), name)


_BW_RULES = ("scott", "silverman")


def _check_bw_method(bw_method) -> None:
    """A rule name, a positive finite factor or a callable; ``ValueError`` otherwise."""
    if isinstance(bw_method, str):
        if bw_method not in _BW_RULES:
            raise ValueError(
                f"expected bw_method 'scott', 'silverman', a positive number or a callable, "
                f"got {bw_method!r}"
            )
    elif callable(bw_method):
        return
    elif isinstance(bw_method, bool) or not isinstance(bw_method, int | float | np.number):
        raise ValueError(
            f"expected bw_method 'scott', 'silverman', a positive number or a callable, got "
            f"{type(bw_method).__name__} {bw_method!r}"
        )
    elif not (np.isfinite(bw_method) and bw_method > 0):
        raise ValueError(
            f"expected a positive finite bandwidth factor bw_method, got {bw_method!r}"
        )


def _kde(samples, bw_method, name: str = "samples") -> scipy.stats.gaussian_kde:
    _check_bw_method(bw_method)
    x = _as_points(samples, name)
    _check_full_rank(x, _eps(samples), name)
    with np.errstate(invalid="ignore", divide="ignore"):  # a callable's bad factor: below
        kde = scipy.stats.gaussian_kde(x.T, bw_method=bw_method)
    if not (np.isfinite(kde.factor) and kde.factor > 0):  # a callable's answer
        raise ValueError(
            f"expected bw_method to give a positive finite bandwidth factor, got {kde.factor!r}"
        )
    return kde


def kde_log_likelihood(samples, holdout, bw_method: str | float = "scott") -> KDEResult:
    r"""Fit ``scipy.stats.gaussian_kde`` to model ``samples`` (shape ``(N, d)``) and return the
    mean of its ``logpdf`` on ``holdout`` (shape ``(n, d)``) with a standard error.

    Arguments:
        bw_method: ``"scott"`` (default), ``"silverman"``, a positive float factor, or a
            callable of the KDE returning one, as in SciPy.

    Raises:
        DegenerateSamplesError: ``samples`` do not span ``d`` dimensions.
        ValueError: a bad shape, non-finite points, or a ``bw_method`` that is not one of
            the above (e.g. a factor that is zero, negative or NaN).
    """
    kde = _kde(samples, bw_method)
    h = _as_points(holdout, "holdout")
    if h.shape[1] != kde.d:
        raise ValueError(f"expected holdout of shape (n, {kde.d}), got shape {h.shape}")
    mean, se = mean_and_se(kde.logpdf(h.T))
    return KDEResult(mean, se, bw_method, float(kde.factor), kde.n, h.shape[0])


CELLS_PER_BANDWIDTH = 3.0  # grid cells per kernel standard deviation in bhattacharyya_distance


def bhattacharyya_distance(
    samples_p,
    samples_q,
    bw_method: str | float = "scott",
    grid_size: int | None = None,
    margin: float = 3.0,
) -> float:
    r"""KDE-based Bhattacharyya distance $D_B = -\log \int \sqrt{\hat p(x)\,\hat q(x)}\,dx$.

    Estimator: fit a Gaussian KDE to each sample set (``bw_method`` as in SciPy) and
    integrate $\sqrt{\hat p \hat q}$ with the midpoint rule on a grid covering both sets
    plus ``margin`` bandwidths on each side (2D only). The grid has ``grid_size`` cells per
    axis; by default (``None``) as many as give :data:`CELLS_PER_BANDWIDTH` cells per
    kernel standard deviation on the narrower axis (at least 48, at most 200). The integrand
    is a sum of Gaussians at least that wide, for which the midpoint rule's error falls like
    $e^{-2\pi^2 (\sigma/\Delta)^2}$: on the four course datasets the default grid (48 to
    about 100 cells) agrees with a 400-cell grid to 6e-6, at a tenth of the cost.

    $D_B = 0$ iff the two KDEs coincide; for two Gaussians
    $D_B = \tfrac18 \Delta\mu^\top \Sigma^{-1} \Delta\mu + \tfrac12 \log
    \frac{\det \Sigma}{\sqrt{\det \Sigma_p \det \Sigma_q}}$ with
    $\Sigma = (\Sigma_p + \Sigma_q)/2$, which the KDE estimate approaches for large samples
    (its kernels inflate each covariance slightly).

    Raises:
        DegenerateSamplesError: either sample set does not span the plane.
        ValueError: a bad shape, non-finite points, or a ``bw_method`` that is not
            ``"scott"``, ``"silverman"``, a positive finite factor or a callable.
    """
    kp, kq = _kde(samples_p, bw_method, "samples_p"), _kde(samples_q, bw_method, "samples_q")
    if kp.d != 2 or kq.d != 2:
        raise ValueError(f"bhattacharyya_distance integrates on a 2D grid, got d={kp.d}")
    pts = np.concatenate([kp.dataset, kq.dataset], axis=1)
    pad = margin * np.sqrt(np.maximum(np.diag(kp.covariance), np.diag(kq.covariance)))
    lo, hi = pts.min(1) - pad, pts.max(1) + pad
    if grid_size is None:
        bw = np.sqrt(min(np.diag(kp.covariance).min(), np.diag(kq.covariance).min()))
        grid_size = int(np.clip(np.ceil((hi - lo).max() / bw * CELLS_PER_BANDWIDTH), 48, 200))
    elif grid_size < 2:
        raise ValueError(f"expected grid_size >= 2 (or None), got {grid_size}")
    edges = [np.linspace(lo[i], hi[i], grid_size + 1) for i in range(2)]
    mids = [0.5 * (e[1:] + e[:-1]) for e in edges]
    xx, yy = np.meshgrid(*mids)
    grid = np.stack([xx.ravel(), yy.ravel()])
    cell = (edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0])
    bc = np.sum(np.sqrt(kp(grid) * kq(grid))) * cell
    return float(-np.log(np.clip(bc, 1e-300, None)))


def wasserstein2(x, y) -> float:
    r"""Exact 2-Wasserstein distance between two equal-size point sets (uniform weights).

    $W_2 = \big(\min_\pi \frac1n \sum_i \|x_i - y_{\pi(i)}\|^2\big)^{1/2}$ over
    permutations $\pi$, solved exactly with SciPy's assignment solver (Jonker–Volgenant),
    $O(n^3)$: fine for $n \le$ a few thousand.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"expected two point sets of the same shape, got {x.shape} and {y.shape}")
    cost = scipy.spatial.distance.cdist(x, y, "sqeuclidean")
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def energy_distance(x, y) -> float:
    r"""Energy distance $2\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|$
    (Székely & Rizzo), with the unbiased U-statistics for the within-set terms. Needs no
    bandwidth; zero in expectation iff the distributions are equal (so the estimate can be
    slightly negative)."""
    x, y = _as_points(x, "x"), _as_points(y, "y")
    xy = scipy.spatial.distance.cdist(x, y).mean()
    n, m = len(x), len(y)
    xx = scipy.spatial.distance.pdist(x).sum() * 2 / (n * (n - 1))
    yy = scipy.spatial.distance.pdist(y).sum() * 2 / (m * (m - 1))
    return float(2 * xy - xx - yy)


def mmd(x, y, bandwidth: float | None = None) -> float:
    r"""Squared maximum mean discrepancy with a Gaussian kernel
    $k(a, b) = \exp(-\|a-b\|^2 / (2 h^2))$, unbiased U-statistic estimate.

    ``bandwidth`` $h$ defaults to the median pairwise distance of the pooled sample (the
    median heuristic); state it when reporting. When more than half of the pooled pairs
    coincide (collapsed samples, e.g. a generator that emits one point), that median is 0
    and $h$ is the median of the *nonzero* pairwise distances instead; when every pooled
    point is the same, both sets are the same point mass and the result is 0 for every
    bandwidth. (For ``n`` copies of $a$ against ``m`` copies of $b \ne a$ that fallback
    gives $h = \|a - b\|$ and $\mathrm{MMD}^2 = 2 - 2e^{-1/2}$.)

    Raises:
        ValueError: a bad shape or non-finite points, or a ``bandwidth`` that is not a
            positive finite number.
    """
    if bandwidth is not None and (
        isinstance(bandwidth, bool)
        or not isinstance(bandwidth, int | float | np.number)
        or not (np.isfinite(bandwidth) and bandwidth > 0)
    ):
        raise ValueError(
            f"expected bandwidth to be a positive finite number or None (the median "
            f"heuristic), got {bandwidth!r}"
        )
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if bandwidth is None:
        pooled = scipy.spatial.distance.pdist(np.concatenate([x, y]))
        bandwidth = float(np.median(pooled))
        if bandwidth == 0.0:  # collapsed samples: the median of the distances that are not
            nonzero = pooled[pooled > 0]
            if nonzero.size == 0:  # one point mass against itself
                return 0.0
            bandwidth = float(np.median(nonzero))

    def k(d2):
        return np.exp(-d2 / (2 * bandwidth**2))

    n, m = len(x), len(y)
    kxx = k(scipy.spatial.distance.pdist(x, "sqeuclidean")).sum() * 2 / (n * (n - 1))
    kyy = k(scipy.spatial.distance.pdist(y, "sqeuclidean")).sum() * 2 / (m * (m - 1))
    kxy = k(scipy.spatial.distance.cdist(x, y, "sqeuclidean")).mean()
    return float(kxx + kyy - 2 * kxy)


def grid_mass(log_density, xs, ys) -> float:
    r"""$\int p$ by the midpoint rule over a regular grid (``log_density`` of shape
    ``(len(ys), len(xs))`` or flat): a model's density should integrate to about 1 over a
    grid that covers its support."""
    lp = np.asarray(log_density, np.float64).reshape(len(ys), len(xs))
    return float(np.exp(lp).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
