"""The report's tables: what each holds (a :class:`Table` built from the results) and how
it is typeset (:func:`typst_table`, a booktabs table in a numbered figure)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import studies
from ..figures import display_label
from ..registry import FAMILIES
from ..results import Results
from .text import esc, join, num, pm, typst_text


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
    notes: list[str] | None = None  # printed under the table, inside its figure
    size: str | None = None  # the table's font size, unless the caller sets one


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


# What the settings table's "other" column calls a family's own hyperparameters.
_HP_NAMES = {
    "sde": "SDE",
    "time_power": "t ~ Beta(a, 1), a =",
    "num_diffusion_steps": "T =",
    "sigma": "σ",
    "k": "noise draws",
    "latent_size": "latent size",
    "r1": "R1 weight",
    "b1": "Adam β₁",
    "variance": "decoder variance",
    "decoder_std": "decoder std",
    "langevin_steps": "Langevin steps",
    "step_size": "Langevin step",
    "buffer_size": "buffer",
    "alpha": "energy penalty",
    "dsm_alpha": "energy penalty",
    "sigma_min": "σ min",
    "num_samples": "ELBO samples",
}
_HP_SHOWN = {
    "cnf_fm": ("time_power",),
    "cnf_mle": (),
    "diffusion": ("sde",),
    "ddpm": ("num_diffusion_steps",),
    "dsm": ("sigma", "k"),
    "gan": ("latent_size", "r1", "b1"),
    "vae": ("latent_size", "variance"),
    "ebm": ("langevin_steps", "step_size", "buffer_size"),
    "ebm_dsm": ("sigma", "k"),
}
_ACTIVATIONS = {"silu": "SiLU", "leaky_relu": "leaky ReLU", "relu": "ReLU", "tanh": "tanh"}
# How a family's default was chosen, where its registry entry documents it (cited only
# beside a run at that default).
DEFAULT_PROVENANCE = {
    "cnf_fm": "chosen for time to quality on checkerboard, three seeds, its time law a = 3 on "
    "all four datasets, three seeds each (benchmarks/time_to_quality.py)",
    "diffusion": "chosen for time to quality and likelihood cost on pinwheel "
    "(benchmarks/defaults.py)",
}
_DEFAULT_SOURCE = "the family's default (its script's)"
_BUDGET_KEYS = ("steps", "width", "depth", "activation", "batch_size", "lr", "ema_decay")


def _network(fam: str, hp: dict) -> str:
    act = hp.get("activation", "silu")
    net = f"{hp.get('width', '?')}×{hp.get('depth', '?')} {_ACTIVATIONS.get(act, act)}"
    if fam == "gan":
        return net + " (G, D)"
    if fam == "vae":
        return net + " (enc., dec.)"
    return net


def _lr(hp: dict) -> str:
    if "generator_lr" in hp and "discriminator_lr" in hp:
        g, d = hp["generator_lr"], hp["discriminator_lr"]
        return f"{g:g} (G, D)" if g == d else f"G {g:g}, D {d:g}"
    return f"{hp.get('lr', float('nan')):g}"


def _evaluations(res: Results, fam: str, hp: dict) -> str:
    """Hold-out evaluations per run, as run (from a history) or from the budget."""
    h = next((res.histories[(n, fam)] for n in res.datasets if (n, fam) in res.histories), None)
    if h is not None:
        return str(len(h.step))
    if "steps" in hp and hp.get("eval_every"):
        return str(math.ceil(hp["steps"] / hp["eval_every"]))
    return "n/a"


def train_times(res: Results, fam: str) -> dict:
    """Mean training seconds of ``fam`` over seeds, per dataset (one row per trained model:
    the rows that share it share its time)."""
    per: dict = {}
    for r in res.rows:
        if res.family(r["model"]) != fam or not math.isfinite(r.get("train_time_s", math.nan)):
            continue
        per.setdefault(r["dataset"], {}).setdefault(r["seed"], r["train_time_s"])
    return {n: float(np.mean(list(v.values()))) for n, v in per.items()}


def _train_time(res: Results, fam: str) -> str:
    times = train_times(res, fam)
    if not times:
        return "n/a"
    vals = list(times.values())
    if len(vals) == 1:
        return f"{vals[0]:.0f}"
    return f"{np.mean(vals):.0f} ({min(vals):.0f}–{max(vals):.0f})"


def _other(fam: str, hp: dict) -> str:
    keys = _HP_SHOWN.get(fam)
    if keys is None:  # a family the table does not know: its non-standard settings
        keys = [k for k in hp if k in _HP_NAMES][:3]
    items = []
    for k in keys:
        if k in hp:
            v = hp[k]
            v = v.upper() if k == "sde" else f"{v:g}" if isinstance(v, float) else v
            items.append(f"{_HP_NAMES.get(k, k.replace('_', ' '))} {v}")
    return ", ".join(items) or "–"


def hyperparameter_table(res: Results) -> Table:
    """The settings table, one row per trained family as run (``config.json``'s
    ``budgets``): network, steps, batch, learning rate(s), EMA decay, hold-out evaluations
    per run, mean train time, and a few of the family's own settings (every setting is in
    the appendix). Its ``notes`` say where the budgets come from (``budget_source``), which
    table rows share one trained network, and which families share a network shape."""
    header = ["model", "MLP", "steps", "batch", "learning rate", "EMA", "evals", "train (s)",
              "other"]  # fmt: skip
    rows = []
    shapes: dict = {}
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        net = _network(fam, hp)
        shapes.setdefault(net.split(" (")[0], []).append(fam)
        rows.append(
            (
                "",
                (None, fam, None),
                [
                    display_label(res.label(fam)),
                    net,
                    f"{hp.get('steps', '?'):,}".replace(",", " "),
                    f"{hp.get('batch_size', '?')}",
                    _lr(hp),
                    "none" if not hp.get("ema_decay") else f"{hp['ema_decay']:g}",
                    _evaluations(res, fam, hp),
                    _train_time(res, fam),
                    _other(fam, hp),
                ],
            )
        )
    notes = budget_notes(res)
    shared = [
        f"{join([display_label(res.label(f)) for f in fams])} share the network shape (MLP "
        f"{net}), each trained separately"
        for net, fams in shapes.items()
        if len(fams) > 1
    ]
    for fam in res.families:
        rows_of = [m for m in res.models if res.family(m) == fam]
        if len(rows_of) > 1:
            shared.append(
                f"the rows {join([display_label(res.label(m)) for m in rows_of])} sample one "
                f"trained {display_label(res.label(fam))} network"
            )
    if shared:
        notes.append("Shared networks: " + "; ".join(shared) + ".")
    times = "mean over seeds" + (
        " and datasets (range of the per-dataset means)" if len(res.datasets) > 1 else ""
    )
    notes.append(
        "MLP: width × depth and activation (G, D: generator and discriminator; enc., dec.: "
        "encoder and decoder). Evals: hold-out evaluations per run. Train (s): wall-clock "
        f"training seconds, {times}."
    )
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "left", "right", "right", "right", "right", "right", "right", "left"],
        ["auto", "1fr", "auto", "auto", "auto", "auto", "auto", "auto", "1.6fr"],
        notes=[" ".join(notes)],
        size="8.5pt",
    )


def budget_notes(res: Results) -> list[str]:
    """Where each family's budget comes from (``config.json``'s ``budget_source``), with the
    registry's account of how a default was chosen where it documents one and the run used
    that default unchanged."""
    src = res.config.get("budget_source", {})
    by: dict = {}
    for fam in res.families:
        if res.hp(fam):
            by.setdefault(src.get(fam, "not recorded"), []).append(fam)
    notes = []
    for source, fams in by.items():
        who = (
            "every family"
            if len(fams) == len(res.families)
            else join([display_label(res.label(f)) for f in fams])
        )
        notes.append(f"Budgets of {who}: {source}.")
    for fam, why in DEFAULT_PROVENANCE.items():
        hp = res.hp(fam)
        if not hp or src.get(fam) != _DEFAULT_SOURCE or fam not in FAMILIES:
            continue
        if all(hp.get(k) == FAMILIES[fam].defaults.get(k) for k in _BUDGET_KEYS):
            notes.append(f"The default of {display_label(res.label(fam))} was {why}.")
    return notes


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
    header = ["sampler", "score", "dataset", "steps", "NFE", "energy ×10³", "KL (nats)"]
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
                    r["score"] if r["score"] != "learned" else "trained",
                    display_label(r.get("dataset", "gaussian_mixture")),
                    steps,
                    str(r["nfe"]),
                    num(1e3 * r["energy"], 3),
                    kl,
                ],
            )
        )
    return Table(
        header, [None] * 7, rows, ["left", "left", "left", "right", "right", "right", "right"]
    )


def typst_table(
    tab: Table, *, caption: str, label: str, size: str | None = None, float_: bool = False
) -> str:
    """A booktabs table in a numbered figure with its caption above."""
    ncol = len(tab.header)
    size = size or tab.size
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
    for note in tab.notes or []:
        body = f"text(size: 8.5pt)[{typst_text(note)}]"
        lines.append(f"  #block(above: 0.45em, width: 100%, align(left, {body}))")
    lines.append("  ],")
    lines.append(f"  caption: [{typst_text(caption)}],")
    if float_:
        lines.append("  placement: auto,")
    lines.append(f") <{label}>")
    return "\n".join(lines)
