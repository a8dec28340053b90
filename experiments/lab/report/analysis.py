"""What the report computes before it writes a word: the trend of each training curve, what
looks wrong in a sample set, the noise of the energy distance, the smallest difference a
measure resolves and who wins by which measure. Numbers only; the prose is elsewhere."""

from __future__ import annotations

import math

import numpy as np

from flowlab import evaluate

from ..results import Results
from .text import join, pct


def training_assessment(hist) -> dict:
    """Trend of the training loss and the hold-out loss of one run, from its history:
    start and end of the per-step loss (means over the first 5% and last 10% of steps), the
    per-step noise, the hold-out loss at its minimum and at the end, and the final gap."""
    raw = np.asarray(hist.step_losses, np.float64)
    n = raw.size
    head, tail = raw[: max(1, n // 20)], raw[-max(1, n // 10) :]
    hold = np.asarray(hist.holdout_loss, np.float64)
    train = np.asarray(hist.train_loss, np.float64)
    best = int(np.nanargmin(hold)) if hold.size else 0
    out = dict(
        steps=int(hist.step[-1]) if hist.step else n,
        start=float(np.mean(head)),
        end=float(np.mean(tail)),
        noise=float(np.std(tail)),
        holdout_first=float(hold[0]) if hold.size else math.nan,
        holdout_end=float(hold[-1]) if hold.size else math.nan,
        holdout_min=float(hold[best]) if hold.size else math.nan,
        holdout_min_step=int(hist.step[best]) if hold.size else 0,
        train_end=float(train[-1]) if train.size else math.nan,
    )
    out["decreased"] = out["end"] < out["start"] - 2 * out["noise"] / math.sqrt(max(1, tail.size))
    span = out["holdout_first"] - out["holdout_min"]
    rise = out["holdout_end"] - out["holdout_min"]
    out["overfits"] = bool(
        hold.size > 2 and best < hold.size - 1 and rise > max(0.1 * abs(span), 1e-12)
    )
    out["gap"] = out["holdout_end"] - out["train_end"]
    for metric in ("holdout_nll", "holdout_neg_bound"):
        vals = hist.metrics.get(metric)
        if vals:
            out[metric] = (float(vals[0]), float(vals[-1]))
    return out


def sample_checks(samples, reference, dataset: str) -> dict:
    """What looks wrong in a sample set, as the report reads it: an adapter over
    :func:`flowlab.evaluate.diagnostics` against fresh true ``reference`` samples and the
    true density. Keys: ``n``, ``non_finite``, ``degenerate``, ``off_support`` (mass below
    the 1st percentile of the true log-density of true samples: 1% for a perfect sampler),
    ``outside_box`` (far outliers), ``spread`` (per-axis std ratios), ``histogram_tv``
    (16×16 histograms) and, for the Gaussian mixture, ``component_occupancy`` and
    ``dropped_components`` (the diagnostics' ``mode_weights`` and ``modes_dropped``)."""
    diag = evaluate.diagnostics(samples, reference, dataset=dataset)
    keys = ("n", "non_finite", "degenerate", "off_support", "outside_box", "spread")
    out = {k: diag[k] for k in (*keys, "histogram_tv") if diag.get(k) is not None}
    if dataset == "gaussian_mixture" and "mode_weights" in diag:
        out["component_occupancy"] = diag["mode_weights"]
        out["dropped_components"] = diag["modes_dropped"]
    return out


def abnormalities(chk: dict, *, off_support: bool = True) -> list[str]:
    """Phrases for what a :func:`sample_checks` result shows to be abnormal (without the
    mass off the support when ``off_support`` is false: said elsewhere)."""
    out = []
    if chk.get("non_finite"):
        out.append(f"{chk['non_finite']} of {chk['n']} samples are not finite")
    if chk.get("degenerate"):
        out.append("the samples have collapsed onto a point or a line")
        return out
    off = chk.get("off_support", 0.0) if off_support else 0.0
    if off > 0.05:
        out.append(
            f"{pct(off)} of the samples fall where the data has almost no mass (true samples: 1%)"
        )
    elif off > 0.02:
        out.append(f"a thin haze of {pct(off)} of the samples lies off the support (true: 1%)")
    if chk.get("outside_box", 0.0) > 0.005:
        out.append(f"{pct(chk['outside_box'])} are far outside the data's range")
    spread = chk.get("spread")
    if spread is not None:
        s = float(np.mean(spread))
        if s > 1.1:
            out.append(f"the samples are over-dispersed ({pct(s - 1, 0)} wider than the data)")
        elif s < 0.9:
            out.append(f"the samples are under-dispersed ({pct(1 - s, 0)} narrower than the data)")
    dropped = chk.get("dropped_components")
    if dropped:
        out.append(
            f"mixture component{'s' * (len(dropped) > 1)} {join([str(k) for k in dropped])} "
            "hold less than a quarter of their mass (dropped modes)"
        )
    return out


def all_sample_checks(res: Results) -> dict:
    out = {}
    for name in res.datasets:
        cell = res.cells.get((name, res.seeds[0]))
        if cell is None:
            continue
        for model, x in cell["samples"].items():
            out[(name, model)] = sample_checks(x, cell["reference"], name)
    return out


def energy_noise(res: Results, dataset: str) -> float:
    """The RMS of the energy distance between two independent true sample sets of the run's
    size: its noise when model and data agree. The grid saves it with the oracle row
    (``details.json``: ``energy_noise_floor``, from :func:`flowlab.evaluate.noise_floor`);
    a results folder written before that falls back to the oracle row's own energy
    distance (one true-true pair), without recomputing anything."""
    detail = res.detail(dataset, "oracle") or {}
    floor = detail.get("energy_noise_floor")
    if floor is not None and math.isfinite(floor):
        return float(floor)
    return abs(res.stat(dataset, "oracle", "energy")[0])


MEASURES = (  # column, words; lower is better for all
    ("exact_nll", "exact NLL"),
    ("kde_nll", "KDE NLL"),
    ("bhattacharyya", "Bhattacharyya distance"),
    ("energy", "energy distance"),
    ("w2", "W2"),
)


def resolution(res: Results, dataset: str, col: str, a: str, b: str) -> float:
    """The smallest difference of ``col`` between models ``a`` and ``b`` that this run
    resolves: two combined standard errors for likelihoods; three noise RMS for the energy
    distance; the oracle's own value (its finite-sample floor) for Bhattacharyya and W2."""
    if col in ("exact_nll", "kde_nll", "neg_bound"):
        se = [res.stat(dataset, m, col)[1] for m in (a, b)]
        se = [x if math.isfinite(x) else 0.0 for x in se]
        return 2.0 * math.hypot(*se)
    if col == "energy":
        return 3.0 * energy_noise(res, dataset)
    oracle = res.stat(dataset, "oracle", col)[0]
    return abs(oracle) if math.isfinite(oracle) else 0.0


def winners(res: Results, dataset: str) -> dict:
    """``measure -> (best, runner-up, difference, resolution, decisive)`` for every measure
    that at least two models of ``dataset`` have; ``decisive`` when the difference exceeds
    the resolution (:func:`resolution`)."""
    out = {}
    for col, _ in MEASURES:
        vals = [(res.stat(dataset, m, col)[0], m) for m in res.models]
        vals = sorted((v, m) for v, m in vals if math.isfinite(v))
        if len(vals) < 2:
            continue
        (v0, best), (v1, second) = vals[0], vals[1]
        r = resolution(res, dataset, col, best, second)
        out[col] = (best, second, v1 - v0, r, v1 - v0 > r)
    return out
