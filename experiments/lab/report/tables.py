"""The report's tables: what each holds (a :class:`Table` built from the results) and how
it is typeset (:func:`typst_table`, a booktabs table in a numbered figure)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import studies
from ..results import Results
from .text import esc, num, pm, typst_text


@dataclasses.dataclass
class Table:
    """A table as typeset: header cells, and body rows of ``(group, key, cells)`` where
    ``key`` is ``(dataset, model, seed)`` (seed ``None`` for a mean over seeds) and
    ``cells`` are the strings printed, in column order; ``columns`` names the CSV column
    behind each cell (``None`` for a label)."""

    header: list[str]
    columns: list[str | None]
    rows: list[tuple[str, tuple, list[str]]]
    align: list[str]
    widths: list[str] | None = None
    cell_columns: list[list[str]] | None = None


QUANT_COLUMNS = (
    ("nll", "NLL"),
    ("kde_nll", "KDE NLL"),
    ("kl_gap", "KL gap"),
    ("bhattacharyya", "Bhatt."),
    ("energy", "energy ×10³"),
    ("w2", "W2"),
    ("sample_nfe", "NFE"),
)


def _cell(res: Results, dataset, model, col, seed=None) -> str:
    if seed is None and len(res.seeds) > 1:
        v, se = res.stat(dataset, model, col)
    else:
        r = res.row(dataset, model, seed) or {}
        v = r.get(col, math.nan)
        se = r.get(
            {"exact_nll": "exact_nll_se", "neg_bound": "neg_bound_se", "kde_nll": "kde_nll_se"}.get(
                col, ""
            ),
            math.nan,
        )
    if col in ("exact_nll", "neg_bound", "kde_nll"):
        return pm(v, se, 3)
    if col == "energy":
        return pm(1e3 * v, 1e3 * se if math.isfinite(se) else se, 2)
    if col == "sample_nfe":
        return "n/a" if not math.isfinite(v) else f"{v:.0f}"
    if col == "bhattacharyya":
        return pm(v, se, 4)
    if col.endswith("_s"):
        return pm(v, se, 1)
    return pm(v, se, 3)


def quantitative_table(res: Results, seed=None) -> Table:
    """Table 2 (one seed, or the mean ± standard error over seeds): the likelihood each
    model declares (exact NLL, or minus the bound marked ≤), sample metrics and NFE."""
    header = ["model", *[lbl for _, lbl in QUANT_COLUMNS]]
    columns: list[str | None] = [None]
    rows = []
    for name in res.datasets:
        for m in [*res.models, "oracle"]:
            r = res.row(name, m, seed if seed is not None else res.seeds[0])
            if r is None:
                continue
            cells = [res.label(m)]
            cols = []
            for col, _ in QUANT_COLUMNS:
                if col == "nll":
                    if math.isfinite(r.get("exact_nll", math.nan)):
                        cells.append(_cell(res, name, m, "exact_nll", seed))
                        cols.append("exact_nll")
                    elif math.isfinite(r.get("neg_bound", math.nan)):
                        cells.append("≤ " + _cell(res, name, m, "neg_bound", seed))
                        cols.append("neg_bound")
                    else:
                        cells.append("n/a")
                        cols.append("exact_nll")
                else:
                    cells.append(_cell(res, name, m, col, seed))
                    cols.append(col)
            rows.append((name, (name, m, seed), cells, cols))
    columns += [c for c, _ in QUANT_COLUMNS]
    return Table(
        header,
        columns,
        [(g, k, c) for g, k, c, _ in rows],
        ["left"] + ["right"] * len(QUANT_COLUMNS),
        cell_columns=[[None, *c] for *_, c in rows],  # the CSV column of each cell
    )


def hyperparameter_table(res: Results) -> Table:
    header = ["model", "network", "steps", "batch", "peak lr", "EMA", "other", "train time (s)"]
    rows = []
    std_keys = {
        "steps",
        "width",
        "depth",
        "batch_size",
        "lr",
        "ema_decay",
        "eval_every",
        "activation",
        "family",
        "dataset",
        "seed",
        "n_train",
        "n_holdout",
        "standardize_loc",
        "standardize_scale",
    }
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        extra = [f"{k} = {v}" for k, v in hp.items() if k not in std_keys]
        other = ", ".join(extra[:3]) + (
            f", … (+{len(extra) - 3}, appendix)" if len(extra) > 3 else ""
        )
        times = [
            r["train_time_s"]
            for r in res.rows
            if res.family(r["model"]) == fam and math.isfinite(r["train_time_s"])
        ]
        t = f"{np.mean(times):.0f}" if times else "n/a"
        rows.append(
            (
                "",
                (None, fam, None),
                [
                    res.label(fam),
                    f"MLP {hp.get('width', '?')}×{hp.get('depth', '?')}, "
                    f"{hp.get('activation', 'silu')}",
                    f"{hp.get('steps', '?')}",
                    f"{hp.get('batch_size', '?')}",
                    f"{hp.get('lr', float('nan')):g}",
                    "none" if hp.get("ema_decay") is None else f"{hp['ema_decay']:g}",
                    other or "–",
                    t,
                ],
            )
        )
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "left", "right", "right", "right", "right", "left", "right"],
        ["auto", "auto", "auto", "auto", "auto", "auto", "1fr", "auto"],
    )


def kde_table(res: Results) -> Table | None:
    if not res.kde:
        return None
    seed = res.seeds[0]
    bws = [b for b in studies.BANDWIDTHS if any(r["bandwidth"] == b for r in res.kde)]
    header = [
        "model",
        "NLL (nats)",
        *[f"KDE, {studies.BANDWIDTH_LABELS[b]}" for b in bws],
        "CV factor",
    ]
    rows = []
    by = {(r["dataset"], r["model"], r["bandwidth"]): r for r in res.kde if r["seed"] == seed}
    for name in res.datasets:
        for m in [*res.models, "oracle"]:
            if (name, m, bws[0]) not in by:
                continue
            r = res.row(name, m) or {}
            nll = r.get("exact_nll", math.nan)
            nll_txt = (
                pm(nll, r.get("exact_nll_se"))
                if math.isfinite(nll)
                else "≤ " + pm(r.get("neg_bound"), r.get("neg_bound_se"))
                if math.isfinite(r.get("neg_bound", math.nan))
                else "n/a"
            )
            cells = [res.label(m), nll_txt]
            cells += [pm(by[(name, m, b)]["kde_nll"], by[(name, m, b)]["kde_nll_se"]) for b in bws]
            cv = by.get((name, m, "cv"))
            cells.append(num(cv["factor"], 3) if cv else "n/a")
            rows.append((name, (name, m, seed), cells))
    return Table(header, [None] * len(header), rows, ["left"] + ["right"] * (len(header) - 1))


def full_table(res: Results, name: str) -> Table:
    """Appendix: every seed and column of one dataset."""
    cols = [
        ("exact_nll", "exact NLL"),
        ("neg_bound", "−bound"),
        ("kde_nll", "KDE NLL"),
        ("bhattacharyya", "Bhatt."),
        ("energy", "energy ×10³"),
        ("w2", "W2"),
        ("mmd", "MMD² ×10³"),
        ("sample_nfe", "NFE"),
        ("log_prob_nfe", "NFE (log p)"),
        ("train_time_s", "train (s)"),
        ("sample_time_s", "sample (s)"),
    ]
    header = ["model", "seed", *[c[1] for c in cols]]
    rows = []
    for r in res.rows:
        if r["dataset"] != name:
            continue
        cells = [res.label(r["model"]), str(r["seed"])]
        for c, _ in cols:
            v = r.get(c, math.nan)
            if not math.isfinite(v):
                cells.append("–")
            elif c in ("exact_nll", "neg_bound", "kde_nll"):
                cells.append(pm(v, r.get(c + "_se"), 3))
            elif c in ("energy", "mmd"):
                cells.append(num(1e3 * v, 2))
            elif c.endswith("nfe"):
                cells.append(f"{v:.0f}")
            elif c.endswith("_s"):
                cells.append(num(v, 2))
            elif c == "bhattacharyya":
                cells.append(num(v, 4))
            else:
                cells.append(num(v, 3))
        rows.append(("", (name, r["model"], r["seed"]), cells))
    return Table(
        header, [None, None, *[c for c, _ in cols]], rows, ["left"] + ["right"] * (len(header) - 1)
    )


def sampler_table(res: Results) -> Table | None:
    st = res.samplers
    if not st:
        return None
    header = ["sampler", "score", "steps", "NFE", "energy ×10³", "KL (nats)"]
    rows = []
    for r in st["mixture"]:
        kl = pm(r["kl"], r["kl_se"], 4) if math.isfinite(r.get("kl", math.nan)) else "–"
        steps = f"tol {r['tol']:g}" if "tol" in r else str(r["steps"])
        rows.append(
            (
                "",
                (None, r["sampler"], None),
                [
                    studies.SAMPLER_LABELS.get(r["sampler"], r["sampler"]),
                    r["score"],
                    steps,
                    str(r["nfe"]),
                    num(1e3 * r["energy"], 3),
                    kl,
                ],
            )
        )
    return Table(header, [None] * 6, rows, ["left", "left", "right", "right", "right", "right"])


def typst_table(
    tab: Table, *, caption: str, label: str, size: str | None = None, float_: bool = False
) -> str:
    """A booktabs table in a numbered figure with its caption above."""
    ncol = len(tab.header)
    cols = "(" + ", ".join(tab.widths or ["auto"] * ncol) + ",)"
    align = "(" + ", ".join(tab.align) + ",)"
    lines = ["#figure(", f"  {'text(size: ' + size + ')[' if size else '['}"]
    lines.append(f"#booktab(columns: {cols}, align: {align},")
    lines.append("  header: (" + ", ".join(f"[*{esc(h)}*]" for h in tab.header) + ",),")
    group = None
    for g, _, cells in tab.rows:
        if g and g != group:
            if group is not None:
                lines.append("  midrule(),")
            lines.append(f"  group({ncol})[{esc(g)}],")
            group = g
        first, rest = cells[0], cells[1:]
        lines.append("  " + ", ".join([f"box[{esc(first)}]", *(f"[{esc(c)}]" for c in rest)]) + ",")
    lines.append(")")
    lines.append("  ],")
    lines.append(f"  caption: [{typst_text(caption)}],")
    if float_:
        lines.append("  placement: auto,")
    lines.append(f") <{label}>")
    return "\n".join(lines)
