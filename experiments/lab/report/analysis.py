"""What the report computes before it writes a word: every test behind a comparing or
judging sentence. Numbers only; the prose (:mod:`~lab.report.prose`) words them and the
evidence tables (:mod:`~lab.report.evidence`) show them.

* :func:`differences`: the difference between two models on a dataset by one measure, with
  its standard error (paired by seed over several seeds; with one seed the hold-out
  standard errors for likelihoods, a paired per-point SE for the KDE NLL, a bootstrap for
  the sample metrics) and whether the test resolves it (beyond the critical multiple of its
  SE and, for sample metrics, beyond the true-sample noise floor);
* :func:`verdict`: the best model of a dataset by exact likelihood where at least two
  models have one, by energy distance otherwise, with its cost and which differences are
  resolved;
* :func:`abnormality_rows`: each row's sample diagnostics beside the oracle's (true samples),
  with the flags the text names;
* :func:`overfitting`: the generalisation-gap test of each family;
* :func:`bound_check`: whether the importance-weighted bound is tighter than the ELBO beyond
  its Monte Carlo error;
* :func:`kde_check`: where the KDE likelihood and the exact likelihood disagree.

Each result is cached on the :class:`~lab.results.Results` it was computed from.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np
import scipy.spatial
import scipy.stats

from flowlab import evaluate, metrics
from flowlab.objectives import EQUILIBRIUM_D_LOSS

from ..common import map_on_cores
from ..results import Results
from .text import join, pct

# -- the criteria, said once in the text and in the tables' captions ---------------------------

Z_CRITICAL = 2.0
"""A difference with a large-sample standard error (hold-out points, bootstrap) is resolved
beyond this many SEs (two-sided, about 95%)."""

OVERFIT_Z = 3.0
"""The generalisation gap (hold-out minus training loss) flags overfitting beyond this many
SEs."""

FLOOR_RMS = 3.0
"""The energy distance's noise floor: this many RMS of the distance between two independent
true sample sets of the run's size."""

ABNORMAL_RATIO = 3.0
ABNORMAL_POINTS = 0.02
"""A fraction of samples is abnormal beyond ``ABNORMAL_RATIO`` times the oracle's and at
least ``ABNORMAL_POINTS`` above it."""

MODE_DROPPED = 0.25
MODE_OVER = 1.5
"""A mode is dropped below ``MODE_DROPPED`` of its true weight, over-weighted above
``MODE_OVER`` times it (and at least ``ABNORMAL_POINTS`` above)."""

SPREAD_TOL = 0.1
"""Samples are over- or under-dispersed when their spread ratio is off 1 by more than this
(and by three times the oracle's)."""

BOOTSTRAP = {"energy": 200, "bhattacharyya": 20, "w2": 20}
"""Bootstrap replicates per sample metric (one seed)."""

LIKELIHOODS = ("exact_nll", "neg_bound", "kde_nll")
SAMPLE_MEASURES = ("bhattacharyya", "energy", "w2")
MEASURES = (  # column, words; lower is better for all
    ("exact_nll", "exact NLL"),
    ("neg_bound", "minus the bound"),
    ("kde_nll", "KDE NLL"),
    ("bhattacharyya", "Bhattacharyya distance"),
    ("energy", "energy distance"),
    ("w2", "W2"),
)
MEASURE_WORDS = dict(MEASURES)

OFF_SUPPORT_WHERE = {
    "checkerboard": "in the empty squares",
    "pinwheel": "between the arms",
    "spiral": "off the spiral",
    "gaussian_mixture": "between the mixture components",
}
"""Where each dataset's low-density region is, in words."""
ZERO_DENSITY_WHERE = {
    "checkerboard": "in the empty squares or off the board",
    "pinwheel": "outside the unit disc",
}
"""Where each dataset's true density is zero, in words."""
RANKING_MEASURES = ("exact_nll", "kde_nll", "bhattacharyya", "energy", "w2")
"""The measures that rank models (minus a bound is an upper bound: it ranks nothing)."""


def _cache(res: Results) -> dict:
    cache = res.__dict__.get("_analysis")
    if cache is None:
        cache = res.__dict__["_analysis"] = {}
    return cache


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


# -- the noise floors ------------------------------------------------------------------------


def energy_noise(res: Results, dataset: str) -> float:
    """The RMS of the energy distance between two independent true sample sets of the run's
    size (``details.json``'s oracle ``energy_noise_floor``, from
    :func:`flowlab.evaluate.noise_floor`); a results folder written before that falls back to
    the oracle row's own energy distance (one true-true pair)."""
    floors = []
    for seed in res.seeds:
        f = (res.detail(dataset, "oracle", seed) or {}).get("energy_noise_floor")
        if _finite(f):
            floors.append(float(f))
    if floors:
        return float(np.mean(floors))
    return abs(res.stat(dataset, "oracle", "energy")[0])


def noise_floor(res: Results, dataset: str, col: str) -> float:
    """The smallest difference of a sample metric a perfect model's noise allows: three RMS
    of the energy distance between true sample sets; for Bhattacharyya and W2 the oracle's
    own value (fresh true samples against the reference); 0 for likelihoods."""
    if col == "energy":
        return FLOOR_RMS * energy_noise(res, dataset)
    if col in SAMPLE_MEASURES:
        v = res.stat(dataset, "oracle", col)[0]
        return abs(v) if math.isfinite(v) else 0.0
    return 0.0


def resolution(res: Results, dataset: str, col: str, a: str, b: str) -> float:
    """The smallest difference of ``col`` between ``a`` and ``b`` the test resolves (its
    critical multiple of the SE, or the noise floor, whichever is larger)."""
    d = difference(res, dataset, col, a, b)
    if d is None:
        return noise_floor(res, dataset, col)
    return max(d.critical * d.se if math.isfinite(d.se) else 0.0, d.floor)


# -- differences between two models ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Difference:
    """``a`` minus ``b`` by ``col`` on ``dataset`` (``a`` the lower: the better), with its
    standard error ``se`` (``se_kind`` says of what), the critical multiple of the SE and
    the noise floor it must clear, and whether it is ``resolved``."""

    dataset: str
    col: str
    a: str
    b: str
    value_a: float
    value_b: float
    diff: float
    se: float
    se_kind: str
    critical: float
    floor: float

    @property
    def z(self) -> float:
        return abs(self.diff) / self.se if self.se > 0 else math.inf

    @property
    def tested(self) -> bool:
        """Whether the difference has a standard error (else no test: neither a lead nor a
        tie may be claimed)."""
        return math.isfinite(self.se)

    @property
    def outcome(self) -> str:
        """``"resolved"``, ``"tie"`` (tested, not resolved) or ``"untested"``."""
        return "resolved" if self.resolved else "tie" if self.tested else "untested"

    @property
    def resolved(self) -> bool:
        if not math.isfinite(self.se):
            return False
        return abs(self.diff) > self.critical * self.se and abs(self.diff) > self.floor

    @property
    def better(self) -> str | None:
        """The model the test prefers (``None``: a tie by this test)."""
        return (self.a if self.diff < 0 else self.b) if self.resolved else None


def _values(res: Results, dataset: str, model: str, col: str) -> dict[int, float]:
    out = {}
    for seed in res.seeds:
        r = res.row(dataset, model, seed)
        if r is not None and _finite(r.get(col)):
            out[seed] = float(r[col])
    return out


def _kde_points(res: Results, dataset: str, model: str, seed: int):
    """Per-hold-out-point KDE log-densities (Scott) of ``model``'s saved samples, or None."""
    key = ("kde_points", dataset, model, seed)
    cache = _cache(res)
    if key not in cache:
        cell = res.cells.get((dataset, seed))
        x = None if cell is None else cell["samples"].get(model)
        out = None
        if x is not None and np.isfinite(x).all():
            try:
                kde = scipy.stats.gaussian_kde(np.asarray(x, np.float64).T, "scott")
                out = kde.logpdf(np.asarray(cell["holdout"], np.float64).T)
            except (np.linalg.LinAlgError, ValueError):
                out = None
        cache[key] = out
    return cache[key]


def _rng(res: Results, dataset: str, seed: int, stream: str) -> np.random.Generator:
    """The bootstrap's generator: seeded by the run's seed, the dataset and a named stream
    (a model's samples or the shared reference), so every replicate is reproducible."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(stream.encode())])


def _bootstrap(res: Results, dataset: str, model: str, col: str, seed: int):
    """Bootstrap replicates of ``col`` of ``model``'s samples against the saved reference:
    the samples resampled by the model's stream, the reference by a stream shared by every
    model (so differences between models are paired through the reference). ``None``
    without the arrays."""
    key = ("boot", dataset, model, col, seed)
    cache = _cache(res)
    if key in cache:
        return cache[key]
    cell = res.cells.get((dataset, seed))
    x = None if cell is None else cell["samples"].get(model)
    if x is None or not np.isfinite(x).all():
        cache[key] = None
        return None
    x = np.asarray(x, np.float64)
    ref = np.asarray(cell["reference"], np.float64)
    b = BOOTSTRAP[col]
    rx, rr = _rng(res, dataset, seed, model), _rng(res, dataset, seed, "reference")
    try:
        if col == "energy":
            out = _energy_bootstrap(x, ref, b, rx, rr)
        else:
            m = min(evaluate.W2_POINTS, len(x), len(ref)) if col == "w2" else None
            xs, rs = (x[:m], ref[:m]) if m else (x, ref)
            fn = metrics.wasserstein2 if col == "w2" else _bhattacharyya_replicate
            # every replicate's draws first (each stream in its own order, as one replicate
            # after another would draw them), then the replicates on a thread per core:
            # SciPy's assignment solver releases the GIL, so W2's replicates run in parallel
            ix = [rx.integers(0, len(xs), len(xs)) for _ in range(b)]
            ir = [rr.integers(0, len(rs), len(rs)) for _ in range(b)]
            out = np.array(map_on_cores(lambda i, j: fn(xs[i], rs[j]), ix, ir))
    except (ValueError, np.linalg.LinAlgError, metrics.DegenerateSamplesError):
        out = None
    cache[key] = out
    return out


BOOTSTRAP_GRID = 64
"""Grid cells per axis of a bootstrap replicate of the Bhattacharyya distance (the value
itself uses the adaptive default): the replicates' spread, not their level, is what the SE
needs, and a fixed grid makes them ten times cheaper."""


def _bhattacharyya_replicate(a, b) -> float:
    return metrics.bhattacharyya_distance(a, b, grid_size=BOOTSTRAP_GRID)


def _energy_bootstrap(x, ref, b, rx, rr) -> np.ndarray:
    """Replicates of :func:`flowlab.metrics.energy_distance` (U-statistic within-set terms)
    on resampled sets, as weighted sums over the distance matrices: a resampled set with
    multiplicities ``w`` has within-set sum ``w^T D w`` over ordered pairs of distinct draws
    (copies of one point are at distance 0)."""
    n, m = len(x), len(ref)
    wx = rx.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
    wr = rr.multinomial(m, np.full(m, 1.0 / m), size=b).astype(np.float64)
    dxr = scipy.spatial.distance.cdist(x, ref)
    dxx = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x))
    drr = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(ref))
    xy = ((wx @ dxr) * wr).sum(1) / (n * m)
    xx = ((wx @ dxx) * wx).sum(1) / (n * (n - 1))
    yy = ((wr @ drr) * wr).sum(1) / (m * (m - 1))
    return 2 * xy - xx - yy


def _se_one_seed(res: Results, dataset: str, col: str, a: str, b: str, seed: int):
    """``(SE of a minus b, what it is)`` from one seed."""
    ra, rb = res.row(dataset, a, seed) or {}, res.row(dataset, b, seed) or {}
    if col == "kde_nll":
        pa, pb = _kde_points(res, dataset, a, seed), _kde_points(res, dataset, b, seed)
        if pa is not None and pb is not None:
            return metrics.mean_and_se(pb - pa)[1], "paired over hold-out points"
    if col == "exact_nll":
        cell = res.cells.get((dataset, seed)) or {}
        lp = cell.get("log_prob") or {}
        la, lb = lp.get(a), lp.get(b)
        if la is not None and lb is not None and len(la) == len(lb) and len(la) > 1:
            d = np.asarray(lb, np.float64) - np.asarray(la, np.float64)  # NLL(a) - NLL(b)
            if np.isfinite(d).all():
                return metrics.mean_and_se(d)[1], "paired over hold-out points"
    if col in LIKELIHOODS:
        ses = [r.get(col + "_se") for r in (ra, rb)]
        if all(_finite(s) for s in ses):
            return math.hypot(*ses), "hold-out SEs combined"
        return math.nan, "no SE"
    ba, bb = _bootstrap(res, dataset, a, col, seed), _bootstrap(res, dataset, b, col, seed)
    if ba is None or bb is None:
        return math.nan, "no SE"
    return float(np.std(ba - bb, ddof=1)), f"bootstrap, {BOOTSTRAP[col]} replicates"


def difference(res: Results, dataset: str, col: str, a: str, b: str) -> Difference | None:
    """The test of ``a`` against ``b`` by ``col`` (see :func:`differences`), ordered so that
    ``a`` is the model with the lower value; ``None`` unless both have the measure."""
    key = ("diff", dataset, col, *sorted((a, b)))
    cache = _cache(res)
    if key in cache:
        return cache[key]
    va, vb = _values(res, dataset, a, col), _values(res, dataset, b, col)
    out = None
    if va and vb:
        paired = sorted(set(va) & set(vb))
        if len(paired) >= 2:
            d = np.array([va[s] - vb[s] for s in paired])
            mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
            ma, mb = np.mean([va[s] for s in paired]), np.mean([vb[s] for s in paired])
            kind = f"over {d.size} seeds, paired"
            crit = float(scipy.stats.t.ppf(0.975, d.size - 1))
        else:
            seed = paired[0] if paired else res.seeds[0]
            if seed not in va or seed not in vb:
                cache[key] = None
                return None
            ma, mb = va[seed], vb[seed]
            mean = ma - mb
            se, kind = _se_one_seed(res, dataset, col, a, b, seed)
            crit = Z_CRITICAL
        if mean > 0:
            a, b, ma, mb, mean = b, a, mb, ma, -mean
        out = Difference(
            dataset,
            col,
            a,
            b,
            float(ma),
            float(mb),
            mean,
            se,
            kind,
            crit,
            noise_floor(res, dataset, col),
        )
    cache[key] = out
    return out


def differences(res: Results, dataset: str, col: str) -> list[Difference]:
    """Every pair of models with ``col`` on ``dataset``: ``a`` minus ``b`` (``a`` the lower)
    with its SE. Several seeds: the difference paired by seed, SE over seeds, resolved
    beyond Student's t (97.5%, k − 1 degrees of freedom) times it. One seed: exact NLL with
    the SE of the per-point differences where the grid saved the per-point log-densities
    (both models score the same hold-out points), else, like minus the bound, with the two
    hold-out SEs combined (conservative); KDE NLL with the SE of the per-point differences;
    Bhattacharyya, energy distance and W2 by a bootstrap of the samples and the reference
    (:data:`BOOTSTRAP`), resolved beyond :data:`Z_CRITICAL` SEs. Sample metrics must also
    clear the noise floor (:func:`noise_floor`)."""
    models = [m for m in res.models if _values(res, dataset, m, col)]
    out = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            d = difference(res, dataset, col, a, b)
            if d is not None:
                out.append(d)
    return sorted(out, key=lambda d: (d.value_a, d.value_b))


def ranking(res: Results, dataset: str, col: str) -> list[str]:
    """Models with ``col`` on ``dataset``, best (lowest mean) first."""
    vals = {m: res.stat(dataset, m, col)[0] for m in res.models}
    return sorted((m for m in vals if math.isfinite(vals[m])), key=lambda m: vals[m])


def winners(res: Results, dataset: str) -> dict:
    """``measure -> (best, runner-up, difference, resolution, decisive)`` for every measure
    that at least two models of ``dataset`` have; ``decisive`` when the test of best
    against runner-up resolves it."""
    out = {}
    for col in RANKING_MEASURES:
        r = ranking(res, dataset, col)
        if len(r) < 2:
            continue
        d = difference(res, dataset, col, r[0], r[1])
        if d is None:
            continue
        out[col] = (r[0], r[1], -d.diff, resolution(res, dataset, col, r[0], r[1]), d.resolved)
    return out


# -- the verdict per dataset ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The best model of a dataset by ``col`` (exact NLL where at least two models have one,
    else energy distance), the tests of it against every other model with the measure
    (``beats``: resolved; ``ties``: not), and its cost (``nfe``, ``sample_s``, ``train_s``)."""

    dataset: str
    col: str
    best: str
    value: tuple[float, float]
    beats: list[str]
    ties: list[str]
    tests: list[Difference]
    cost: dict
    others: list[str]  # models without the measure, judged by their samples
    untested: list[str] = dataclasses.field(default_factory=list)  # no SE: no test


def _cost(res: Results, dataset: str, model: str) -> dict:
    return {
        k: res.stat(dataset, model, c)[0]
        for k, c in (
            ("nfe", "sample_nfe"),
            ("sample_s", "sample_time_s"),
            ("train_s", "train_time_s"),
        )
    }


def verdict(res: Results, dataset: str) -> Verdict | None:
    """The verdict a reader can act on (see :class:`Verdict`)."""
    exact = ranking(res, dataset, "exact_nll")
    col = "exact_nll" if len(exact) >= 2 else "energy"
    order = exact if col == "exact_nll" else ranking(res, dataset, "energy")
    if len(order) < 2:
        return None
    best = order[0]
    tests = [d for m in order[1:] if (d := difference(res, dataset, col, best, m)) is not None]
    beats = [d.b if d.a == best else d.a for d in tests if d.outcome == "resolved"]
    ties = [d.b if d.a == best else d.a for d in tests if d.outcome == "tie"]
    untested = [d.b if d.a == best else d.a for d in tests if d.outcome == "untested"]
    others = [m for m in res.models if m not in order and res.row(dataset, m) is not None]
    return Verdict(
        dataset,
        col,
        best,
        res.stat(dataset, best, col),
        beats,
        ties,
        tests,
        _cost(res, dataset, best),
        others,
        untested,
    )


# -- sample diagnostics against the oracle's ---------------------------------------------------


def sample_checks(samples, reference, dataset: str) -> dict:
    """What looks wrong in a sample set: :func:`flowlab.evaluate.diagnostics` against fresh
    true ``reference`` samples and the true density, with the Gaussian mixture's mode
    weights also under the names ``component_occupancy`` and ``dropped_components``."""
    diag = evaluate.diagnostics(samples, reference, dataset=dataset)
    keys = ("n", "non_finite", "degenerate", "off_support", "outside_box", "spread")
    out = {k: diag[k] for k in (*keys, "histogram_tv") if diag.get(k) is not None}
    out["diagnostics"] = diag
    if dataset == "gaussian_mixture" and "mode_weights" in diag:
        out["component_occupancy"] = diag["mode_weights"]
        out["dropped_components"] = diag["modes_dropped"]
    return out


def diagnostics(res: Results, dataset: str, row: str, seed: int | None = None) -> dict | None:
    """The saved diagnostics of one row (``details.json``), else computed from the saved
    samples against the saved reference (:func:`flowlab.evaluate.diagnostics`)."""
    seed = res.seeds[0] if seed is None else seed
    key = ("diag", dataset, row, seed)
    cache = _cache(res)
    if key not in cache:
        diag = (res.detail(dataset, row, seed) or {}).get("diagnostics")
        if diag is None:
            cell = res.cells.get((dataset, seed))
            x = None if cell is None else cell["samples"].get(row)
            if x is not None:
                diag = evaluate.diagnostics(x, cell["reference"], dataset=dataset)
        cache[key] = diag
    return cache[key]


@dataclasses.dataclass(frozen=True)
class Flag:
    """One abnormality: ``kind``, the row's ``value`` against the oracle's ``baseline``, and
    its words."""

    kind: str
    value: float
    baseline: float
    words: str


def _fraction_flag(v, base) -> bool:
    return (
        _finite(v) and v > ABNORMAL_RATIO * (base or 0.0) and v - (base or 0.0) >= ABNORMAL_POINTS
    )


def flags(diag: dict, oracle: dict | None, dataset: str) -> list[Flag]:
    """The abnormalities of one row's diagnostics against the oracle's (true samples):
    non-finite samples; a collapse (covariance of rank below 2); mass where the true
    density is zero or below its 1st percentile (:data:`OFF_SUPPORT_WHERE`) or far out,
    beyond :data:`ABNORMAL_RATIO` times the oracle's fraction and :data:`ABNORMAL_POINTS`
    above it; dropped and over-weighted modes; over- or under-dispersion."""
    oracle = oracle or {}
    out = []
    n = max(int(diag.get("n", 0)), 1)
    if diag.get("non_finite"):
        out.append(Flag("non_finite", diag["non_finite"] / n, 0.0, "non-finite samples"))
    if diag.get("degenerate"):
        line = diag.get("rank", 0) == 1
        out.append(
            Flag(
                "collapse",
                float(diag.get("rank", 0)),
                2.0,
                "samples collapsed onto a line" if line else "samples collapsed onto a point",
            )
        )
        return out
    where = OFF_SUPPORT_WHERE.get(dataset, "off the support")
    zero, zero0 = diag.get("zero_density_fraction"), oracle.get("zero_density_fraction", 0.0)
    if _fraction_flag(zero, zero0):
        out.append(
            Flag(
                "zero_density",
                zero,
                zero0 or 0.0,
                "mass where the true density is zero"
                + (f" ({ZERO_DENSITY_WHERE[dataset]})" if dataset in ZERO_DENSITY_WHERE else ""),
            )
        )
    low, low0 = diag.get("off_support"), oracle.get("off_support", 0.01)
    if _fraction_flag(low, low0) and not (
        out and out[-1].kind == "zero_density" and low - zero < ABNORMAL_POINTS
    ):
        out.append(
            Flag("off_support", low, low0, f"mass in the data's low-density region ({where})")
        )
    far, far0 = diag.get("outside_box"), oracle.get("outside_box", 0.0)
    if _fraction_flag(far, far0):
        out.append(Flag("outside_box", far, far0 or 0.0, "samples far outside the data's range"))
    w, wt = diag.get("mode_weights"), diag.get("mode_weights_true")
    if w and wt:
        for k, (a, t) in enumerate(zip(w, wt, strict=False)):
            if a < MODE_DROPPED * t:
                out.append(Flag(f"mode_dropped_{k}", a, t, f"{_mode_name(dataset, k)} dropped"))
            elif a > MODE_OVER * t and a - t >= ABNORMAL_POINTS:
                out.append(Flag(f"mode_over_{k}", a, t, f"{_mode_name(dataset, k)} over-weighted"))
    s, s0 = diag.get("std_ratio"), oracle.get("std_ratio", 1.0)
    if _finite(s) and abs(s - 1) > max(SPREAD_TOL, 3 * abs((s0 or 1.0) - 1)):
        out.append(
            Flag(
                "spread",
                s,
                s0 or 1.0,
                "over-dispersed samples" if s > 1 else "under-dispersed samples",
            )
        )
    return out


def _mode_name(dataset: str, k: int) -> str:
    kind = {"pinwheel": "arm", "checkerboard": "square", "gaussian_mixture": "component"}
    return f"{kind.get(dataset, 'mode')} {k + 1}"


def abnormality_rows(res: Results, seed: int | None = None) -> list[dict]:
    """Per (dataset, row) of ``seed`` (default the first, the one the overlays draw): its
    diagnostics, the oracle's, and its :func:`flags`; the oracle's own row first."""
    out = []
    for name in res.datasets:
        oracle = diagnostics(res, name, "oracle", seed)
        if oracle is not None:
            out.append(dict(dataset=name, model="oracle", diag=oracle, oracle=oracle, flags=[]))
        for m in res.models:
            diag = diagnostics(res, name, m, seed)
            if diag is not None:
                out.append(
                    dict(
                        dataset=name,
                        model=m,
                        diag=diag,
                        oracle=oracle,
                        flags=flags(diag, oracle, name),
                    )
                )
    return out


def abnormalities(chk: dict, oracle: dict | None = None, dataset: str | None = None) -> list[str]:
    """The words of the :func:`flags` of a :func:`sample_checks` result (or of a diagnostics
    dict) against ``oracle`` diagnostics (default: a perfect sampler's: 1% below the 1st
    percentile of the true density, nothing far out)."""
    diag = chk.get("diagnostics", chk)
    out = []
    for f in flags(diag, oracle, dataset or ""):
        if f.kind == "non_finite":
            out.append(f"{diag['non_finite']} of {diag['n']} samples are not finite")
        elif f.kind in ("zero_density", "off_support", "outside_box"):
            out.append(
                f"{f.words}: {pct(f.value)} of the samples (true samples: {pct(f.baseline)})"
            )
        else:
            out.append(f.words)
    return out


# -- training: the overfitting test and the game value ------------------------------------------


def overfitting(res: Results, dataset: str, family: str) -> dict | None:
    """The generalisation-gap test of ``family`` on ``dataset`` (details'
    ``generalisation_gap``: hold-out minus training loss with the same weights and key, SE
    over 10 paired chunks); over several seeds the mean gap with the SE of that mean
    (the seeds' SEs combined). ``overfits`` when gap / SE exceeds :data:`OVERFIT_Z`.
    ``None`` when the run saved no test."""
    rows = [m for m in res.models if res.family(m) == family] or [family]
    gaps = []
    for seed in res.seeds:
        for m in rows:
            g = (res.detail(dataset, m, seed) or {}).get("generalisation_gap")
            if g and _finite(g.get("gap")) and _finite(g.get("gap_se")):
                gaps.append(g)
                break
    if not gaps:
        return None
    k = len(gaps)
    gap = float(np.mean([g["gap"] for g in gaps]))
    se = float(math.sqrt(sum(g["gap_se"] ** 2 for g in gaps)) / k)
    z = gap / se if se > 0 else math.inf
    return dict(
        gap=gap,
        se=se,
        z=z,
        seeds=k,
        overfits=bool(z > OVERFIT_Z),
        train_loss=float(np.mean([g["train_loss"] for g in gaps])),
        holdout_loss=float(np.mean([g["holdout_loss"] for g in gaps])),
        chunks=int(gaps[0].get("chunks", 10)),
    )


def training_assessment(hist) -> dict:
    """The trend of one run's curves, from its history: start and end of the per-step loss
    (means over the first 5% and last 10% of steps) and whether it decreased beyond the
    tail's noise; the last ``train (eval)`` and hold-out losses (same weights and key) and,
    for a GAN, the hold-out game value V(D, G) = −L_D against its equilibrium −2 log 2.
    ``overfits`` is kept for old callers: a rise of the hold-out curve after its minimum
    (the report itself calls overfitting only from :func:`overfitting`)."""
    raw = np.asarray(hist.step_losses, np.float64)
    n = raw.size
    head, tail = raw[: max(1, n // 20)], raw[-max(1, n // 10) :]
    hold = np.asarray(hist.holdout_loss, np.float64)
    train_eval = np.asarray(getattr(hist, "train_eval_loss", None) or [], np.float64)
    best = int(np.nanargmin(hold)) if hold.size else 0
    out = dict(
        steps=int(hist.step[-1]) if hist.step else n,
        start=float(np.mean(head)) if n else math.nan,
        end=float(np.mean(tail)) if n else math.nan,
        noise=float(np.std(tail)) if n else math.nan,
        holdout_first=float(hold[0]) if hold.size else math.nan,
        holdout_end=float(hold[-1]) if hold.size else math.nan,
        holdout_min=float(hold[best]) if hold.size else math.nan,
        holdout_min_step=int(hist.step[best]) if hold.size else 0,
        train_eval_end=float(train_eval[-1]) if train_eval.size else math.nan,
    )
    out["decreased"] = bool(
        n and out["end"] < out["start"] - 2 * out["noise"] / math.sqrt(max(1, tail.size))
    )
    span = out["holdout_first"] - out["holdout_min"]
    rise = out["holdout_end"] - out["holdout_min"]
    out["overfits"] = bool(
        hold.size > 2 and best < hold.size - 1 and rise > max(0.1 * abs(span), 1e-12)
    )
    d_loss = hist.metrics.get("holdout_d_loss") if hist.metrics else None
    if d_loss:
        out["game_value"] = -float(d_loss[-1])
        out["game_equilibrium"] = -EQUILIBRIUM_D_LOSS
    for metric in ("holdout_nll", "holdout_neg_bound"):
        vals = hist.metrics.get(metric) if hist.metrics else None
        if vals:
            out[metric] = (float(vals[0]), float(vals[-1]))
    return out


# -- bounds and the KDE ------------------------------------------------------------------------


def bound_check(res: Results, dataset: str, model: str) -> dict | None:
    """For a model with an exact NLL and minus a bound (the VAE's −ELBO), and the
    importance-weighted bound where saved: the gaps to the exact NLL and whether the IWAE is
    tighter than the ELBO beyond its Monte Carlo error (``tighter``: −ELBO minus −IWAE above
    :data:`Z_CRITICAL` times the two SEs combined)."""
    e, nb = res.stat(dataset, model, "exact_nll"), res.stat(dataset, model, "neg_bound")
    if not (math.isfinite(e[0]) and math.isfinite(nb[0])):
        return None
    iw = res.detail_stat(dataset, model, "holdout_neg_iwae")
    k = (res.detail(dataset, model) or {}).get("iwae_k")
    out = dict(exact=e, bound=nb, bound_gap=nb[0] - e[0], iwae=iw, k=k)
    if math.isfinite(iw[0]):
        se = math.hypot(*(s if math.isfinite(s) else 0.0 for s in (nb[1], iw[1])))
        out.update(improvement=nb[0] - iw[0], improvement_se=se, iwae_gap=iw[0] - e[0])
        out["tighter"] = bool(nb[0] - iw[0] > Z_CRITICAL * se)
    return out


def kde_check(res: Results, dataset: str) -> dict:
    """The KDE likelihood against the exact one on ``dataset``: the KDE's own bias (the
    oracle's KDE NLL minus its exact NLL), the spread of the models' KDE NLLs, and the best
    model by each among the models with both."""
    o_kde, o_exact = (
        res.stat(dataset, "oracle", "kde_nll")[0],
        res.stat(dataset, "oracle", "exact_nll")[0],
    )
    kde = {m: res.stat(dataset, m, "kde_nll")[0] for m in res.models}
    kde = {m: v for m, v in kde.items() if math.isfinite(v)}
    both = [m for m in ranking(res, dataset, "exact_nll") if m in kde]
    out = dict(
        bias=o_kde - o_exact,
        spread=(max(kde.values()) - min(kde.values())) if len(kde) >= 2 else math.nan,
        best_exact=both[0] if both else None,
        best_kde=min(both, key=kde.get) if both else None,
        best_kde_all=min(kde, key=kde.get) if kde else None,
        n_both=len(both),
    )
    test = (
        difference(res, dataset, "kde_nll", out["best_exact"], out["best_kde"])
        if both and out["best_exact"] != out["best_kde"]
        else None
    )
    out["disagree"] = bool(test is not None and test.resolved)
    out["test"] = test
    return out


def all_sample_checks(res: Results) -> dict:
    """``(dataset, row) -> diagnostics`` of the first seed (saved or computed)."""
    out = {}
    for name in res.datasets:
        for m in res.models:
            d = diagnostics(res, name, m)
            if d is not None:
                out[(name, m)] = d
    return out


__all__ = [
    "Difference",
    "Flag",
    "Verdict",
    "abnormalities",
    "abnormality_rows",
    "bound_check",
    "difference",
    "differences",
    "energy_noise",
    "flags",
    "join",
    "kde_check",
    "noise_floor",
    "overfitting",
    "ranking",
    "resolution",
    "sample_checks",
    "training_assessment",
    "verdict",
    "winners",
]
