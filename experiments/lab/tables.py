"""The comparison's table: one row per (dataset, model, seed), its CSV and its summaries.

The schema is shared by ``compare.py``, ``course_project.py`` and ``report.py``. Cells a
model does not have are empty: a model of likelihood kind *bound* has no ``exact_nll`` but
a ``neg_bound`` (minus its bound, an upper bound on the NLL, named by ``bound_name``); a
model of kind *none* has neither.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from flowlab._checkpoint import atomic_write_text

COLUMNS = (
    "dataset",
    "model",
    "seed",
    "likelihood_kind",
    "exact_nll",
    "exact_nll_se",
    "neg_bound",
    "neg_bound_se",
    "bound_name",
    "kde_nll",
    "kde_nll_se",
    "kde_gap",
    "true_entropy",
    "kl_gap",
    "bhattacharyya",
    "w2",
    "energy",
    "mmd",
    "sample_nfe",
    "log_prob_nfe",
    "train_time_s",
    "sample_time_s",
    "log_prob_time_s",
    "train_steps",
    "n_train",
    "n_holdout",
    "n_samples",
)
TEXT = ("dataset", "model", "likelihood_kind", "bound_name")
NUMERIC = tuple(c for c in COLUMNS if c not in TEXT and c != "seed")

SUMMARY_METRICS = (
    ("exact_nll", "exact NLL"),
    ("neg_bound", "−bound"),
    ("kde_nll", "KDE NLL"),
    ("kde_gap", "KDE − exact"),
    ("kl_gap", "KL gap"),
    ("bhattacharyya", "Bhattacharyya"),
    ("w2", "W2"),
    ("energy", "energy"),
    ("mmd", "MMD²"),
    ("sample_nfe", "NFE"),
    ("train_time_s", "train s"),
    ("sample_time_s", "sample s"),
)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` with the :data:`COLUMNS` schema, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes cells with commas (bound names)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_cell(r.get(c)) for c in COLUMNS])
    atomic_write_text(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict]:
    """Rows of a ``results.csv`` with numbers parsed (``nan`` for an empty cell)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k in NUMERIC:
                r[k] = float(v) if v not in ("", "nan") else math.nan
        r["seed"] = int(r["seed"])
    return rows


def summarise(rows: list[dict]) -> dict:
    """``(dataset, model) -> {metric: (mean, std, n)}`` over seeds (std 0 for one seed;
    ``n`` counts the seeds with a finite value)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        out[k] = {"likelihood_kind": rs[0].get("likelihood_kind", "")}
        for c in NUMERIC:
            v = np.asarray([r.get(c, math.nan) for r in rs], np.float64)
            v = v[np.isfinite(v)]
            if v.size == 0:
                out[k][c] = (math.nan, math.nan, 0)
                continue
            std = float(v.std(ddof=1)) if v.size > 1 else 0.0
            out[k][c] = (float(v.mean()), std, int(v.size))
    return out


def fmt(mean: float, std: float, n: int, column: str) -> str:
    """A cell ``mean ± std`` with digits for the column (``n/a`` when missing)."""
    if not math.isfinite(mean):
        return "n/a"
    if column in ("sample_nfe", "log_prob_nfe", "train_steps"):
        return f"{mean:.0f}"
    if column.endswith("_s"):
        digits = 1 if abs(mean) >= 10 else 2
    else:
        digits = 3 if abs(mean) >= 0.01 or mean == 0 else 4
    if column in ("mmd", "energy") and abs(mean) < 0.01:
        return f"{mean:.1e}" + (f" ± {std:.0e}" if n > 1 else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def summary_markdown(rows: list[dict], order: list[str], labels: dict | None = None) -> str:
    """One Markdown table per dataset: the mean over seeds of each metric, with ``± SD`` (the
    standard deviation over seeds; none with one seed), the models in ``order`` (then any
    others, named by ``labels`` where given), each with its likelihood kind."""
    labels = labels or {}
    summ = summarise(rows)
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        present = [m for m in dict.fromkeys(r["model"] for r in rows) if (name, m) in summ]
        models = [m for m in order if m in present] + [m for m in present if m not in order]
        n_seeds = max(summ[(name, m)]["kde_nll"][2] for m in models)
        h = summ[(name, models[0])]["true_entropy"][0]
        spread = "mean ± SD over the seeds" if n_seeds > 1 else "one seed, no spread shown"
        lines += [
            f"### {name} (true entropy {h:.3f} nats; {n_seeds} seed{'s' * (n_seeds > 1)}: "
            f"{spread})",
            "",
            "| model | likelihood | " + " | ".join(lbl for _, lbl in SUMMARY_METRICS) + " |",
            "|---|---|" + "---|" * len(SUMMARY_METRICS),
        ]
        for m in models:
            s = summ[(name, m)]
            cells = [fmt(*s[c], c) for c, _ in SUMMARY_METRICS]
            label = labels.get(m, m)
            lines.append(f"| {label} | {s['likelihood_kind']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
