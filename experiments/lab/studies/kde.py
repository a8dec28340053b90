r"""The KDE study: the KDE's own bias and how the bandwidth moves it.

Every sample-based likelihood in the report is the mean log-density of the hold-out points
under a Gaussian KDE of $N$ model samples. The same KDE of $N$ *fresh true samples* (the
oracle row) against the true density's exact NLL measures the KDE's own bias, the floor
below which it resolves nothing. The bandwidth moves that floor: Scott's rule
($n^{-1/(d+4)}$), Silverman's ($(n(d+2)/4)^{-1/(d+4)}$, *the same number* in $d = 2$), half
of Scott's, and a bandwidth chosen by leave-one-out likelihood cross-validation on the
samples themselves (never on the hold-out set). Reported per (dataset, model, seed): the
KDE NLL under each bandwidth and the model ranking each one gives (:func:`kde_study`).
"""

from __future__ import annotations

import math

import numpy as np

from flowlab import datasets
from flowlab.metrics import DegenerateSamplesError, kde_log_likelihood

from ..common import map_on_cores

BANDWIDTHS = ("scott", "silverman", "half_scott", "cv")
BANDWIDTH_LABELS = {
    "scott": "Scott",
    "silverman": "Silverman",
    "half_scott": "½ Scott",
    "cv": "CV",
}


def scott_factor(n: int, d: int = 2) -> float:
    """Scott's bandwidth factor $n^{-1/(d+4)}$ (SciPy's ``gaussian_kde`` convention: the
    kernel covariance is the factor squared times the sample covariance)."""
    return float(n ** (-1.0 / (d + 4)))


def silverman_factor(n: int, d: int = 2) -> float:
    """Silverman's factor $(n(d+2)/4)^{-1/(d+4)}$; equal to Scott's when $d = 2$."""
    return float((n * (d + 2) / 4.0) ** (-1.0 / (d + 4)))


def loo_curve(samples):
    r"""The leave-one-out mean log-likelihood of ``samples`` (shape ``(n, d)``) as a function
    of the bandwidth factor $f$ (kernel covariance $f^2\hat\Sigma$, SciPy's convention):
    $f \mapsto \frac1n\sum_i \log \frac{1}{n-1}\sum_{j\ne i}
    \mathcal{N}(x_i; x_j, f^2\hat\Sigma)$. The pairwise distances are computed once."""
    x = np.asarray(samples, np.float64)
    n, d = x.shape
    cov = np.atleast_2d(np.cov(x.T))
    chol = np.linalg.cholesky(cov)
    w = np.linalg.solve(chol, (x - x.mean(0)).T).T  # whitened: D2 = Mahalanobis^2
    sq = np.sum(w**2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * w @ w.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    d_min = np.min(d2, axis=1)
    half_logdet = float(np.sum(np.log(np.diag(chol))))

    def curve(f: float) -> float:
        a = -(d2 - d_min[:, None]) / (2.0 * f * f)  # shifted by each row's maximum
        lse = -d_min / (2.0 * f * f) + np.log(np.sum(np.exp(a), axis=1))
        log_k = -0.5 * d * np.log(2.0 * np.pi) - d * np.log(f) - half_logdet
        return float(np.mean(lse + log_k - np.log(n - 1)))

    return curve


def loo_log_likelihood(samples, factors) -> np.ndarray:
    """:func:`loo_curve` at every factor in ``factors``."""
    curve = loo_curve(samples)
    return np.asarray([curve(float(f)) for f in np.asarray(factors, np.float64)])


def cv_factor(samples, *, num: int = 14, lo: float = 0.02, hi: float = 1.5) -> float:
    """The bandwidth factor that maximises the leave-one-out likelihood of ``samples``: a
    log-spaced grid of ``num`` factors in ``[lo, hi]``, then golden-section refinement (in
    log f) on the bracket around the best grid point."""
    curve = loo_curve(samples)
    grid = np.geomspace(lo, hi, num)
    ll = [curve(float(f)) for f in grid]
    i = int(np.argmax(ll))
    a, b = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, num - 1)])
    g = (math.sqrt(5) - 1) / 2
    c, e = b - g * (b - a), a + g * (b - a)
    fc, fe = curve(math.exp(c)), curve(math.exp(e))
    for _ in range(10):
        if fc > fe:
            b, e, fe = e, c, fc
            c = b - g * (b - a)
            fc = curve(math.exp(c))
        else:
            a, c, fc = c, e, fe
            e = a + g * (b - a)
            fe = curve(math.exp(e))
    return float(math.exp((a + b) / 2))


def bandwidth_factor(name: str, samples) -> float:
    """The factor of the bandwidth called ``name`` (one of :data:`BANDWIDTHS`)."""
    n, d = np.asarray(samples).shape
    if name == "scott":
        return scott_factor(n, d)
    if name == "silverman":
        return silverman_factor(n, d)
    if name == "half_scott":
        return 0.5 * scott_factor(n, d)
    if name == "cv":
        return cv_factor(samples)
    raise ValueError(f"unknown bandwidth {name!r}; expected one of {BANDWIDTHS}")


def kde_study(cells: list[dict], *, bandwidths=BANDWIDTHS) -> list[dict]:
    """KDE NLL of the hold-out set under every bandwidth, for every sample set.

    ``cells``: one dict per (dataset, seed) with ``dataset``, ``seed``, ``holdout`` (shape
    ``(n, 2)``) and ``samples`` (model row name -> samples; include ``"oracle"``, fresh true
    samples), and optionally ``exact`` (row -> exact NLL, or minus the bound, for the
    ranking). Returns one row per (dataset, seed, model, bandwidth) with ``factor``,
    ``kde_nll``, ``kde_nll_se``, ``true_nll`` (the true density's hold-out NLL, the
    oracle's exact value) and ``bias`` (KDE NLL minus the true NLL: for the oracle, the
    KDE's own bias)."""
    jobs = []  # (row without the fit, samples, hold-out), in the order of the result
    for cell in cells:
        name, holdout = cell["dataset"], np.asarray(cell["holdout"], np.float64)
        true_nll = float(-np.mean(datasets.log_prob(name, holdout)))
        for model, x in cell["samples"].items():
            x = np.asarray(x, np.float64)
            for bw in bandwidths:
                row = dict(
                    dataset=name,
                    seed=int(cell["seed"]),
                    model=model,
                    bandwidth=bw,
                    true_nll=true_nll,
                )
                jobs.append((row, x, holdout))
    # the fits are independent and deterministic, and NumPy's large array operations
    # release the GIL: a thread per core, the rows in the same order with the same numbers
    fits = map_on_cores(lambda row, x, h: _kde_fit(x, h, row["bandwidth"], row["true_nll"]),
                        *zip(*jobs, strict=True))  # fmt: skip
    return [{**row, **fit} for (row, _, _), fit in zip(jobs, fits, strict=True)]


def _kde_fit(x: np.ndarray, holdout: np.ndarray, bw: str, true_nll: float) -> dict:
    """``factor``, ``kde_nll``, ``kde_nll_se`` and ``bias`` of the KDE of the samples ``x``
    with the bandwidth ``bw`` on ``holdout`` (NaN for non-finite or degenerate samples)."""
    try:
        if not np.isfinite(x).all():
            raise DegenerateSamplesError(
                "non-finite samples",
                name="samples",
                n=len(x),
                n_distinct=0,
                dim=2,
                rank=0,
                eigenvalues=np.zeros(2),
            )
        f = bandwidth_factor(bw, x)
        res = kde_log_likelihood(x, holdout, bw_method=f)
        return dict(factor=f, kde_nll=-res.mean, kde_nll_se=res.se, bias=-res.mean - true_nll)
    except DegenerateSamplesError:
        return dict(factor=math.nan, kde_nll=math.nan, kde_nll_se=math.nan, bias=math.nan)


def rankings(kde_rows: list[dict]) -> dict:
    """``(dataset, seed, bandwidth) -> [models from best to worst KDE NLL]`` (the oracle
    and models without a finite KDE NLL left out)."""
    groups: dict[tuple, list[tuple[float, str]]] = {}
    for r in kde_rows:
        if r["model"] == "oracle" or not math.isfinite(r["kde_nll"]):
            continue
        groups.setdefault((r["dataset"], r["seed"], r["bandwidth"]), []).append(
            (r["kde_nll"], r["model"])
        )
    return {k: [m for _, m in sorted(v)] for k, v in groups.items()}
