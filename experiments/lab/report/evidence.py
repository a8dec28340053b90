"""The tables of tests behind the report's comparing and judging sentences: the verdict per
dataset, the differences between models with their standard errors, the sample diagnostics
beside the true samples', the overfitting test, the bounds and the KDE against the exact
likelihood. Every number the prose quotes is printed here (or in :mod:`~lab.report.tables`),
formatted by the same functions (:func:`lab.report.text.measure_value`, :func:`pct`)."""

from __future__ import annotations

import math

from ..results import Results
from . import analysis as an
from .tables import Table
from .text import measure_value, num, pct, pm, words

NAME_COL = "1fr"


def _label(res: Results, m: str) -> str:
    return words(res.label(m))


def _verdict_measure(col: str) -> str:
    return {"exact_nll": "exact NLL (nats)", "energy": "energy distance"}[col]


def cost_cells(res: Results, dataset: str, model: str) -> list[str]:
    c = an._cost(res, dataset, model)
    return [
        "n/a" if not math.isfinite(c["nfe"]) else f"{c['nfe']:.0f}",
        num(c["sample_s"], 2),
        num(c["train_s"], 0),
    ]


def verdict_table(res: Results) -> Table:
    """Per dataset: the measure it is judged by, the best model with its value ± SE, how many
    of the others the test resolves it ahead of, and its cost (NFE per sample, sampling and
    training seconds)."""
    header = [
        "dataset",
        "judged by",
        "lowest",
        "value",
        "ahead of",
        "NFE",
        "sampling (s)",
        "training (s)",
    ]
    rows = []
    for name in res.datasets:
        v = an.verdict(res, name)
        if v is None:
            continue
        cells = [
            words(name),
            _verdict_measure(v.col),
            _label(res, v.best),
            measure_value(v.col, *v.value),
            f"{len(v.beats)} of {len(v.tests)}",
            *cost_cells(res, name, v.best),
        ]
        rows.append(("", (name, v.best, None), cells))
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "left", "left", "right", "right", "right", "right", "right"],
        ["auto", "auto", NAME_COL, "auto", "auto", "auto", "auto", "auto"],
    )


def claimed_differences(res: Results, dataset: str) -> list[an.Difference]:
    """The tests the text rests on for ``dataset``: the verdict's (best against every other
    model by its measure), the best against the runner-up by every other measure, and the
    KDE's choice against the exact likelihood's."""
    out: list[an.Difference] = []
    v = an.verdict(res, dataset)
    if v is not None:
        out += v.tests
    for col in an.RANKING_MEASURES:
        if v is not None and col == v.col:
            continue
        r = an.ranking(res, dataset, col)
        if len(r) >= 2 and (d := an.difference(res, dataset, col, r[0], r[1])) is not None:
            out.append(d)
    k = an.kde_check(res, dataset)
    if k["test"] is not None:
        out.append(k["test"])
    seen, unique = set(), []
    for d in out:
        key = (d.col, d.a, d.b)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def difference_table(res: Results, names: list[str] | None = None) -> Table:
    """The tests of :func:`claimed_differences`: better model, other model, the difference
    (better minus other) ± its SE, where the SE comes from, and the outcome ("resolved";
    "tie": not resolved by this test; "untested": no SE)."""
    header = ["measure", "lower (better)", "other", "difference ± SE", "SE from", "test"]
    rows = []
    for name in names or res.datasets:
        for d in claimed_differences(res, name):
            rows.append(
                (
                    words(name),
                    (name, d.col, d.a, d.b),
                    [
                        an.MEASURE_WORDS[d.col],
                        _label(res, d.a),
                        _label(res, d.b),
                        measure_value(d.col, d.diff, d.se),
                        d.se_kind,
                        d.outcome,
                    ],
                )
            )
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "left", "left", "right", "left", "left"],
        ["auto", NAME_COL, NAME_COL, "auto", "auto", "auto"],
    )


def _mode_cell(diag: dict) -> str:
    w, wt = diag.get("mode_weights"), diag.get("mode_weights_true")
    if not w or not wt:
        return "–"
    r = [a / t for a, t in zip(w, wt, strict=False) if t > 0]
    return f"{num(min(r), 2)} to {num(max(r), 2)}"


def abnormality_table(res: Results, names: list[str] | None = None) -> Table:
    """Per dataset and row (the first seed), the sample diagnostics beside the oracle's:
    fraction where the true density is zero, below its 1st percentile and far out; non-finite
    samples; each mode's weight over its true weight (smallest to largest); the spread
    ratio; and the flags the text names."""
    header = [
        "model",
        "zero density",
        "low density",
        "far out",
        "non-finite",
        "mode weight ÷ true",
        "spread",
        "flagged",
    ]
    rows = []
    names = names or res.datasets
    for r in an.abnormality_rows(res):
        if r["dataset"] not in names:
            continue
        d = r["diag"]
        flagged = "; ".join(f.words for f in r["flags"]) or "–"
        cells = [
            _label(res, r["model"]),
            pct(d["zero_density_fraction"]) if "zero_density_fraction" in d else "–",
            pct(d["off_support"]) if "off_support" in d else "–",
            pct(d.get("outside_box", math.nan)),
            str(d.get("non_finite", 0)),
            _mode_cell(d),
            "collapsed" if d.get("degenerate") else num(d.get("std_ratio", math.nan), 2),
            flagged,
        ]
        rows.append((words(r["dataset"]), (r["dataset"], r["model"], None), cells))
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "right", "right", "right", "right", "right", "right", "left"],
        # the flags take the width the numbers leave (a fixed narrow column ran to 5 pages)
        [NAME_COL, "auto", "auto", "auto", "auto", "auto", "auto", "1fr"],
    )


def training_rows(res: Results, names: list[str] | None = None) -> list[dict]:
    """Per dataset and family: the curve's trend (:func:`analysis.training_assessment`) and
    the overfitting test (:func:`analysis.overfitting`)."""
    out = []
    for name in names or res.datasets:
        for fam in res.families:
            h = res.histories.get((name, fam))
            ass = an.training_assessment(h) if h is not None and h.step_losses else None
            test = an.overfitting(res, name, fam)
            if ass is None and test is None:
                continue
            out.append(dict(dataset=name, family=fam, trend=ass, test=test))
    return out


def training_table(res: Results, names: list[str] | None = None) -> Table:
    """Per dataset and family: the per-step training loss at the start and the end (means of
    the first 5% and the last 10% of steps), the overfitting test's training and hold-out
    losses (same weights and key), their gap ± SE, gap / SE and the call; for a GAN the
    hold-out game value V(D, G)."""
    rows_in = training_rows(res, names)
    gan = any(r["trend"] and "game_value" in r["trend"] for r in rows_in)
    header = [
        "model",
        "loss, start",
        "loss, end",
        "train (eval)",
        "hold-out",
        "gap ± SE",
        "gap/SE",
        "overfitting",
    ] + (["V(D, G)"] if gan else [])
    rows = []
    for r in rows_in:
        t, a = r["test"], r["trend"]
        cells = [
            _label(res, r["family"]),
            num(a["start"]) if a else "–",
            num(a["end"]) if a else "–",
            num(t["train_loss"]) if t else "–",
            num(t["holdout_loss"]) if t else "–",
            pm(t["gap"], t["se"]) if t else "–",
            num(t["z"], 1) if t else "–",
            ("yes" if t["overfits"] else "no") if t else "not tested",
        ]
        if gan:
            cells.append(num(a["game_value"]) if a and "game_value" in a else "–")
        rows.append((words(r["dataset"]), (r["dataset"], r["family"], None), cells))
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left"] + ["right"] * (len(header) - 1),
        [NAME_COL] + ["auto"] * (len(header) - 1),
    )


def bound_table(res: Results) -> Table | None:
    """Models with an exact NLL and a bound (the VAE): exact NLL, minus the ELBO, minus the
    importance-weighted bound (K samples), how much tighter the IWAE is (± SE) and whether
    that is beyond its Monte Carlo error."""
    header = ["dataset", "model", "exact NLL", "−ELBO", "−IWAE", "K", "ELBO − IWAE gap", "tighter"]
    rows = []
    for name in res.datasets:
        for m in res.models:
            b = an.bound_check(res, name, m)
            if b is None:
                continue
            has = "improvement" in b
            rows.append(
                (
                    "",
                    (name, m, None),
                    [
                        words(name),
                        _label(res, m),
                        pm(*b["exact"]),
                        pm(*b["bound"]),
                        pm(*b["iwae"]) if has else "–",
                        str(b["k"]) if b.get("k") else "–",
                        pm(b["improvement"], b["improvement_se"]) if has else "–",
                        ("yes" if b["tighter"] else "no") if has else "–",
                    ],
                )
            )
    if not rows:
        return None
    return Table(header, [None] * len(header), rows, ["left", "left"] + ["right"] * 6)


def kde_check_table(res: Results) -> Table | None:
    """Per dataset: the KDE's own bias (the oracle's KDE NLL minus its exact NLL), the spread
    of the models' KDE NLLs, and the best model by exact NLL and by KDE NLL among those with
    both."""
    header = [
        "dataset",
        "KDE bias (true samples)",
        "spread of models' KDE NLL",
        "best by exact NLL",
        "best by KDE NLL",
    ]
    rows = []
    for name in res.datasets:
        k = an.kde_check(res, name)
        if not math.isfinite(k["bias"]):
            continue
        rows.append(
            (
                "",
                (name, None, None),
                [
                    words(name),
                    num(k["bias"]),
                    num(k["spread"]),
                    _label(res, k["best_exact"]) if k["best_exact"] else "–",
                    _label(res, k["best_kde"]) if k["best_kde"] else "–",
                ],
            )
        )
    if not rows:
        return None
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "right", "right", "left", "left"],
        ["auto", "auto", "auto", NAME_COL, NAME_COL],
    )
