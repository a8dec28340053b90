"""The equal-compute study in the report: every family given the same training seconds
(:mod:`lab.studies.equal_compute`). The tests first (:func:`paired_difference`,
:func:`ranking`: differences paired by seed, standard error over seeds), then the table and
the text, whose every comparing sentence is one of those tests."""

from __future__ import annotations

import math

import numpy as np

from ..results import Results
from ..studies import equal_compute as study_module
from .tables import Table, typst_table
from .text import Markup, join, pm, sci

TIE_SE = 2.0
"""A difference within this many standard errors is a tie."""
FLOOR_MULTIPLE = 3.0
"""An energy distance below this many noise-floor RMS is indistinguishable from true samples
(the grid's resolution of the energy distance)."""


def values(study: dict, row: str, col: str) -> dict[int, float]:
    """``seed -> value`` of one row's column (finite values only)."""
    out = {}
    for r in study["records"]:
        v = r.get(col)
        if r["model"] == row and v is not None and math.isfinite(v):
            out[int(r["seed"])] = float(v)
    return out


def mean_se(study: dict, row: str, col: str) -> tuple[float, float, int]:
    """``(mean over seeds, standard error over seeds, seeds)``; with one seed its value and
    the hold-out standard error recorded with it (NaN for a column without one)."""
    v = values(study, row, col)
    if not v:
        return math.nan, math.nan, 0
    a = np.asarray(list(v.values()))
    if a.size == 1:
        rec = next(r for r in study["records"] if r["model"] == row and r.get(col) is not None)
        se = rec.get(col + "_se")
        return float(a[0]), math.nan if se is None else float(se), 1
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)), int(a.size)


def paired_difference(
    study: dict, col: str, a: str, b: str, col_b: str | None = None
) -> tuple[float, float, int]:
    """``a`` minus ``b`` on ``col`` (``b`` on ``col_b`` when given: minus a bound against
    an exact NLL), paired by seed: ``(mean difference, its standard error over seeds,
    seeds)``; the error is NaN with fewer than two seeds in common."""
    va, vb = values(study, a, col), values(study, b, col_b or col)
    d = np.asarray([va[s] - vb[s] for s in sorted(va) if s in vb])
    if d.size == 0:
        return math.nan, math.nan, 0
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return float(d.mean()), se, int(d.size)


def ranking(study: dict, col: str, rows: list[str]) -> dict | None:
    """The best of ``rows`` on ``col`` (lowest mean) and every other row's paired difference
    to it: ``{"best", "others": [(row, diff, se, n, verdict)]}``, ``verdict`` one of
    ``"worse"`` (difference above :data:`TIE_SE` standard errors), ``"tie"`` or
    ``"untested"`` (fewer than two seeds). ``None`` with fewer than two rows."""
    means = [(mean_se(study, r, col)[0], r) for r in rows]
    means = sorted((m, r) for m, r in means if math.isfinite(m))
    if len(means) < 2:
        return None
    best = means[0][1]
    others = []
    for _, r in means[1:]:
        d, se, n = paired_difference(study, col, r, best)
        if not math.isfinite(se):
            verdict = "untested"
        else:
            verdict = "worse" if d > TIE_SE * se else "tie"
        others.append((r, d, se, n, verdict))
    return {"best": best, "others": others}


def noise_floor(study: dict) -> float:
    """The energy distance's noise floor: the RMS over seeds of the floor saved with each
    seed's oracle row (two independent true sample sets of the study's size)."""
    f = [
        study["details"].get(f"seed{s}/oracle", {}).get("energy_noise_floor")
        for s in study["seeds"]
    ]
    f = np.asarray([x for x in f if x is not None and math.isfinite(x)])
    return float(np.sqrt(np.mean(f**2))) if f.size else math.nan


def _floor_pairs(study: dict) -> int:
    d = study["details"].get(f"seed{study['seeds'][0]}/oracle", {})
    return int(d.get("energy_noise_floor_pairs") or 0)


def _likelihood_rows(study: dict) -> tuple[list[str], list[str]]:
    """One row per family with an exact NLL, and one per family with only a bound."""
    exact, bound, seen = [], [], set()
    for row, fam in study["rows"].items():
        if fam in seen:
            continue
        if values(study, row, "exact_nll"):
            exact.append(row)
            seen.add(fam)
        elif values(study, row, "neg_bound"):
            bound.append(row)
            seen.add(fam)
    return exact, bound


def _runs(study: dict, family: str) -> list[dict]:
    return [r for r in study["runs"] if r["family"] == family]


def _span(vals, fmt) -> str:
    lo, hi = min(vals), max(vals)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def _steps(v) -> str:
    return f"{int(v):,}"


def equal_compute_table(study: dict) -> Table:
    """Per row: training seconds and steps (range over seeds), the mean share of the default
    steps, the exact NLL or minus the bound and the energy distance (mean ± SE over seeds),
    each with its paired difference to the best row."""
    exact, bound = _likelihood_rows(study)
    rank_nll = ranking(study, "exact_nll", exact)
    rank_energy = ranking(study, "energy", list(study["rows"]))
    diffs = {}
    for col, rank in (("nll", rank_nll), ("energy", rank_energy)):
        if rank is not None:
            diffs[(col, rank["best"])] = "best"
            for r, d, se, _, _ in rank["others"]:
                diffs[(col, r)] = d, se
    best_nll = rank_nll["best"] if rank_nll else None
    header = [
        "model",
        "train (s)",
        "steps",
        "of default",
        "NLL (nats)",
        "NLL − best",
        "energy ×10³",
        "energy − best",
    ]
    body = []
    family_rows = {}
    for row, fam in study["rows"].items():
        family_rows.setdefault(fam, row)
    for row, fam in study["rows"].items():
        runs = _runs(study, fam)
        secs = _span([r["train_seconds"] for r in runs], lambda v: f"{v:.1f}")
        steps = _span([r["steps"] for r in runs], _steps)
        share = np.mean([r["steps"] / r["default_steps"] for r in runs])
        nll_row = family_rows[fam]  # one likelihood per family, shared by its rows
        if values(study, row, "exact_nll"):
            nll = pm(*mean_se(study, row, "exact_nll")[:2])
            nll_d = _diff_cell(diffs.get(("nll", nll_row)), 1.0)
        elif values(study, row, "neg_bound"):
            nll = "≤ " + pm(*mean_se(study, row, "neg_bound")[:2])
            nll_d = "n/a"
            if best_nll is not None:
                d, se, _ = paired_difference(study, "neg_bound", row, best_nll, "exact_nll")
                nll_d = "≤ " + _diff_cell((d, se), 1.0) if math.isfinite(d) else "n/a"
        else:
            nll, nll_d = "n/a", "n/a"
        m, se, _ = mean_se(study, row, "energy")
        energy = pm(1e3 * m, 1e3 * se, 2)
        body.append(
            (
                "",
                (study["dataset"], row, None),
                [
                    study["labels"].get(row, row),
                    secs,
                    steps,
                    f"{100 * share:.0f}%",
                    nll,
                    nll_d,
                    energy,
                    _diff_cell(diffs.get(("energy", row)), 1e3),
                ],
            )
        )
    m, se, _ = mean_se(study, "oracle", "exact_nll")
    em, ese, _ = mean_se(study, "oracle", "energy")
    body.append(
        (
            "",
            (study["dataset"], "oracle", None),
            [study["labels"].get("oracle", "oracle"), "–", "–", "–", pm(m, se), "–"]
            + [pm(1e3 * em, 1e3 * ese, 2), "–"],
        )
    )
    n = len(header)
    return Table(
        header, [None] * n, body, ["left"] + ["right"] * (n - 1), ["1fr"] + ["auto"] * (n - 1)
    )


def _diff_cell(d, scale: float) -> str:
    if d is None:
        return "n/a"
    if d == "best":
        return "best"
    diff, se = d
    return pm(scale * diff, scale * se, 2 if scale != 1.0 else 3)


def _setup_text(study: dict) -> str:
    runs = study["runs"]
    t, n = study["seconds"], len(study["seeds"])
    labels = study["labels"]
    seeds = "one seed" if n == 1 else f"{n} seeds"
    text = (
        f"Every family was trained on {study['dataset']} for the same wall-clock budget of "
        f"T = {t:g} s per run ({seeds}). The clock starts before the first step is compiled "
        "and every run starts with empty compilation caches, so each pays its own "
        "compilation; the hold-out checks count too (the training objective on the hold-out "
        "set and on as many training points, every 1% of the family's default step count; "
        "no likelihood is tracked during training). Everything else is each family's default, "
        "including its learning-rate schedule, computed for its default step count: a run "
        "stopped by the clock stops before its learning rate has decayed, so this measures "
        "what T seconds of each family's default run give, not what a schedule tuned to T "
        "seconds would reach. A run stops at the first check at or after T, so it overshoots "
        "T by at most one check interval; the seconds and steps each run got are in "
        "[@tab:equal-compute]."
    )
    late = [r for r in runs if r["first_check_s"] >= t]
    if late:
        who = (
            "In every run"
            if len(late) == len(runs)
            else f"In runs of {join(sorted({labels[r['family']] for r in late}))}"
        )
        text += (
            f" {who}, compiling and the first check interval alone took T or more: those "
            "runs stopped at their first check."
        )
    done = sorted({labels[r["family"]] for r in runs if r["finished_schedule"]})
    if done:
        text += (
            f" {join(done)} finished the default schedule before T and stopped there, "
            "with fewer seconds than T."
        )
    if study.get("smoke"):
        text += (
            " This is a smoke run (smaller networks and sample sets, a budget of seconds): "
            "its numbers only exercise the code."
        )
    return text


def _name(study: dict, row: str, *, family: bool = False) -> str:
    """A row's label, or (``family``: for what the family shares, its likelihood) the label
    of the family that trained it."""
    key = study["rows"].get(row, row) if family else row
    return study["labels"].get(key, key)


def _verdicts(rank: dict, study: dict, scale: float, digits: int, family: bool):
    """The rows worse than the best, tied with it and untested: ``(name, "d ± se")`` each."""
    out = {"worse": [], "tie": [], "untested": []}
    for r, d, se, _, verdict in rank["others"]:
        out[verdict].append((_name(study, r, family=family), pm(scale * d, scale * se, digits)))
    return out["worse"], out["tie"], out["untested"]


def _ranking_sentence(
    rank: dict, study: dict, measure: str, scale: float, digits: int, unit: str = "",
    *, family: bool = False,
) -> str:  # fmt: skip
    worse, tie, untested = _verdicts(rank, study, scale, digits, family)
    best = _name(study, rank["best"], family=family)
    if untested and not (worse or tie):
        return (
            f"By {measure}, {best} has the lowest value; with one seed the study tests no "
            "difference (a standard error over seeds needs two seeds or more)."
        )
    s = f"By {measure} after T seconds, {best} has the lowest mean"
    if len(tie) == 1:
        s += f"; {tie[0][0]} is higher by {tie[0][1]}, less than {TIE_SE:g} standard errors: a tie"
    elif tie:
        s += f"; higher by less than {TIE_SE:g} standard errors, a tie: " + join(
            [f"{n} by {v}" for n, v in tie]
        )
    if worse:
        s += f"; higher by more than {TIE_SE:g} standard errors: " + join(
            [f"{n} by {v}" for n, v in worse]
        )
    return s + f" (differences to the best{unit}, paired by seed, ± SE over seeds)."


def _likelihood_text(study: dict) -> str:
    exact, bound = _likelihood_rows(study)
    rank = ranking(study, "exact_nll", exact)
    parts = []
    if rank is not None:
        measure = "exact hold-out NLL (of the models that have one)"
        parts.append(_ranking_sentence(rank, study, measure, 1.0, 3, family=True))
    elif exact:
        parts.append(f"Only {_name(study, exact[0], family=True)} has an exact likelihood.")
    for row in bound:
        name = _name(study, row, family=True)
        if rank is None:
            continue
        best = _name(study, rank["best"], family=True)
        d, se, _ = paired_difference(study, "neg_bound", row, rank["best"], "exact_nll")
        if not math.isfinite(se):
            continue
        if d < -TIE_SE * se:
            parts.append(
                f"{name} has only a variational bound, and minus its bound lies below "
                f"the exact NLL of {best} by more than {TIE_SE:g} standard errors "
                f"({pm(d, se)}): its NLL is lower too."
            )
        else:
            parts.append(
                f"{name} has only a variational bound, an upper bound on its NLL; minus the "
                f"bound is not below the exact NLL of {best} by more than {TIE_SE:g} standard "
                f"errors ({pm(d, se)}), so the bound does not order the two."
            )
    return " ".join(parts)


def _sample_text(study: dict) -> str:
    rank = ranking(study, "energy", list(study["rows"]))
    floor = noise_floor(study)
    parts = []
    if rank is not None:
        measure = "energy distance to fresh true samples"
        parts.append(_ranking_sentence(rank, study, measure, 1e3, 2, " ×10³"))
    if math.isfinite(floor):
        near = [
            _name(study, r)
            for r in study["rows"]
            if mean_se(study, r, "energy")[0] <= FLOOR_MULTIPLE * floor
        ]
        s = (
            f"Two independent true sample sets of this size are {sci(floor)} apart by energy "
            f"distance (root mean square over {_floor_pairs(study)} pairs, the noise floor)"
        )
        if near:
            s += (
                f"; {join(near)} {'lies' if len(near) == 1 else 'lie'} within "
                f"{FLOOR_MULTIPLE:g} times the floor on average: at this sample size "
                f"{'its samples are' if len(near) == 1 else 'their samples are'} "
                "indistinguishable from true samples by this measure"
            )
        parts.append(s + ".")
    return " ".join(parts)


def equal_compute_text(study: dict) -> list[str]:
    """The section's paragraphs: the setup, the likelihood and the samples."""
    paras = [_setup_text(study), _likelihood_text(study), _sample_text(study)]
    if len(study["seeds"]) > 1:
        paras.append(
            f"A difference counts as resolved when it exceeds {TIE_SE:g} standard errors over "
            f"the {len(study['seeds'])} seeds; with so few seeds the standard error is itself "
            "uncertain, so a resolved difference near that line is a weak finding."
        )
    return [p for p in paras if p]


def _caption(study: dict) -> str:
    runs = study["runs"]
    n = len(study["seeds"])
    floor = noise_floor(study)
    m = study.get("machine", {})
    loads = [x for r in runs for x in r.get("load_average", [])]
    pm_text = (
        "± is the standard error over seeds"
        if n > 1
        else "± is the standard error over the hold-out points of the one seed"
    )
    return (
        f"Equal compute: every family trained for T = {study['seconds']:g} s on "
        f"{study['dataset']} ({n} seed{'s' * (n > 1)}). Train: recorded seconds of training, "
        "compilation and hold-out checks (every 1% of the default step count) included; steps: "
        "steps reached; both as the range "
        "over seeds. Of default: mean steps reached as a share of the family's default step "
        "count. NLL: exact hold-out NLL, or ≤ minus the variational bound (an upper bound on "
        "the NLL); energy: energy distance to fresh true samples ×10³; "
        + pm_text
        + ". The − best columns: each row minus the lowest row, paired by seed (minus the bound "
        "against the lowest exact NLL). "
        + f"Energy noise floor {sci(floor)} (RMS over {_floor_pairs(study)} pairs of true sample "
        "sets). Longest last check interval "
        + f"{max(r['last_interval_s'] for r in runs):.2f} s; hold-out checks took at most "
        + f"{max(r['check_seconds'] for r in runs):.2f} s of a run"
        + (
            f"; load average {min(loads):.1f}–{max(loads):.1f} on {m.get('cpu_count', '?')} "
            "CPU cores"
            if loads
            else ""
        )
        + (
            f"; the study took {study['total_seconds'] / 60:.1f} min."
            if study.get("total_seconds")
            else "."
        )
    )


def equal_compute_section(doc: Markup, res: Results, *, level: int = 1) -> None:
    """The equal-compute study's section (heading, text, table) in ``doc``; nothing when the
    results folder has no study."""
    study = study_module.load(res.path)
    if study is None:
        return
    doc.heading("Equal compute: every family given the same seconds", level, "sec:equal-compute")
    for p in equal_compute_text(study):
        doc.para(p)
    doc.block(
        typst_table(
            equal_compute_table(study),
            caption=_caption(study),
            label="tab:equal-compute",
            size="8pt",
        )
    )


__all__ = [
    "equal_compute_section",
    "equal_compute_table",
    "equal_compute_text",
    "mean_se",
    "noise_floor",
    "paired_difference",
    "ranking",
]
