"""The report's figures (matplotlib), drawn at the size they are printed: training curves,
sample overlays, exact log-densities and the sampler study."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))

import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from flowlab import datasets, plotting  # noqa: E402

from .. import studies  # noqa: E402
from ..results import Results  # noqa: E402
from .text import typst_text  # noqa: E402

TEXT_WIDTH_IN = 6.5  # US Letter minus two 1-inch margins
FIG_DPI = 220
RC = {
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "savefig.dpi": FIG_DPI,
}


def _box(train):
    tr = np.asarray(train)
    lo = np.percentile(tr, 0.5, axis=0) - 0.2 * np.ptp(tr, axis=0)
    hi = np.percentile(tr, 99.5, axis=0) + 0.2 * np.ptp(tr, axis=0)
    return lo, hi


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return path


def _panels(names, items, *, max_cols: int, panel_w: float, panel_h: float, extra_h: float):
    """One panel per (name, item): each name starts a new row, rows hold at most
    ``max_cols`` panels. Returns ``(figure, {(name, item): axis}, panels per name-row)``."""
    cols = min(len(items), max_cols)
    rows_per = math.ceil(len(items) / cols)
    nrows = rows_per * len(names)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(panel_w * cols, panel_h * nrows + extra_h),
        squeeze=False,
        layout="constrained",
    )
    mapping = {}
    for i, name in enumerate(names):
        for k, item in enumerate(items):
            mapping[(name, item)] = axes[i * rows_per + k // cols, k % cols]
    used = {id(ax) for ax in mapping.values()}
    for ax in axes.flat:
        if id(ax) not in used:
            ax.set_axis_off()
    return fig, mapping, rows_per


def training_layout(res: Results) -> tuple[int, float]:
    """Columns and panel height of the training figure."""
    cols = min(len(res.families), 3)
    w = min(3.25, TEXT_WIDTH_IN / max(cols, 1))
    return cols, 0.5 * w


def overlay_layout(res: Results, oracle: bool = True) -> tuple[int, float]:
    """Columns and panel size of the overlay figure."""
    cols = min(len(res.models) + oracle, 4)
    return cols, min(1.85, TEXT_WIDTH_IN / max(cols, 1))


def main_datasets(res: Results, rows_per: int, panel_h: float, budget_in: float = 4.8):
    """The datasets a main-text figure shows: as many as fit in ``budget_in`` inches."""
    k = max(1, int(budget_in // (rows_per * panel_h + 1e-9)))
    return res.datasets[:k]


def _loss_panel(ax, history, title: str, ylabel: str) -> None:
    """Per-step training loss (faint), its EMA and the hold-out loss of one run."""
    raw = np.asarray(history.step_losses)
    steps = np.arange(1, raw.size + 1)
    ax.plot(steps, raw, color=plotting.DATA_COLOUR, alpha=0.18, lw=0.4, label="train (per step)")
    ax.plot(
        steps,
        plotting.ema(raw, 0.98),
        color=plotting.DATA_COLOUR,
        lw=1.1,
        label="train (EMA 0.98)",
    )
    ax.plot(
        history.step,
        history.holdout_loss,
        "o-",
        color=plotting.HOLDOUT_COLOUR,
        ms=2.5,
        lw=1.0,
        label="hold-out",
    )
    lo, hi = np.percentile(np.r_[raw, history.holdout_loss], [0.5, 98])
    ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.15 * (hi - lo))
    ax.set_title(title)
    ax.set_xlabel("gradient step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25, lw=0.4)


def _likelihood_axis(ax, history, dataset: str):
    """The exact hold-out NLL (or minus the bound) of one run on a second axis of ``ax``,
    with the true entropy; returns its legend ``(handles, labels)`` (empty when the run
    recorded neither)."""
    for metric, label in (
        ("holdout_nll", "exact hold-out NLL (right)"),
        ("holdout_neg_bound", "hold-out −bound (right)"),
    ):
        vals = history.metrics.get(metric)
        if vals:
            ax2 = ax.twinx()
            ax2.plot(
                history.step, vals, "s--", ms=2.2, lw=0.9, color=plotting.MODEL_COLOUR, label=label
            )
            ax2.axhline(
                datasets.entropy(dataset), color="k", lw=0.7, ls=":", label="true entropy (right)"
            )
            ax2.set_ylabel("nats")
            return ax2.get_legend_handles_labels()
    return [], []


def figure_training(res: Results, path: Path, names=None, *, with_metric: bool = False):
    """One panel per (dataset, trained family): per-step training loss (faint), its EMA and
    the hold-out loss, on one axis; with ``with_metric``, the exact hold-out NLL (or minus
    the bound) on a second axis with the true entropy."""
    names = res.datasets if names is None else names
    fams = [f for f in res.families if any((n, f) in res.histories for n in names)]
    if not fams:
        return None
    cols, panel_h = training_layout(res)
    with plt.rc_context(RC):
        fig, axes, _ = _panels(
            names,
            fams,
            max_cols=cols,
            panel_w=TEXT_WIDTH_IN / cols,
            panel_h=panel_h,
            extra_h=0.3,
        )
        legend: dict = {}
        for (name, fam), ax in axes.items():
            h = res.histories.get((name, fam))
            if h is None or not h.step_losses:
                ax.set_axis_off()
                continue
            _loss_panel(ax, h, f"{name}: {res.label(fam)}", _short_loss(res.loss_label(fam)))
            handles, labels = ax.get_legend_handles_labels()
            if with_metric:
                h2, l2 = _likelihood_axis(ax, h, name)
                handles, labels = handles + h2, labels + l2
            legend.update(zip(labels, handles, strict=True))
        fig.legend(
            list(legend.values()),
            list(legend.keys()),
            loc="outside lower center",
            ncol=len(legend) if len(legend) <= 4 else 3,
            frameon=False,
        )
        return _save(fig, path)


def _short_loss(label: str) -> str:
    """An axis label from a loss description: the part before any parenthesis."""
    short = label.split(" (")[0]
    lines = textwrap.wrap(short, 16)  # at most two lines: the panels are small
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _dots(ax, x, colour) -> None:
    """A scatter of 2D points ``x`` as small translucent dots (rasterised)."""
    ax.scatter(x[:, 0], x[:, 1], s=0.6, color=colour, alpha=0.45, lw=0, rasterized=True)


def figure_overlays(res: Results, path: Path, names=None, *, oracle: bool = True):
    """One panel per (dataset, model), the oracle last: model samples (red) over fresh true
    samples (blue), equal aspect, one box per dataset."""
    names = res.datasets if names is None else names
    cols = [*res.models, *(["oracle"] if oracle else [])]
    names = [n for n in names if (n, res.seeds[0]) in res.cells]
    if not names:
        return None
    ncol, w = overlay_layout(res, oracle)
    with plt.rc_context(RC):
        fig, axes, _ = _panels(names, cols, max_cols=ncol, panel_w=w, panel_h=w, extra_h=0.3)
        n = 0
        for (name, m), ax in axes.items():
            cell = res.cells[(name, res.seeds[0])]
            lo, hi = _box(cell["train"])
            ref = cell["reference"]
            n = len(ref)
            _dots(ax, ref, plotting.DATA_COLOUR)
            x = cell["samples"].get(m)
            if x is not None:
                _dots(ax, np.where(np.isfinite(x), x, np.nan), plotting.MODEL_COLOUR)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            label = res.label(m) if m != "oracle" else "oracle (true vs true)"
            ax.set_title(f"{name}: {label}" if len(names) > 1 and ncol < len(cols) else label)
            if cols.index(m) % ncol == 0:
                ax.set_ylabel(name)
        fig.legend(
            handles=[
                plt.Line2D([], [], marker="o", ls="", color=colour, ms=3, label=label)
                for colour, label in (
                    (plotting.MODEL_COLOUR, f"model samples (N = {n})"),
                    (plotting.DATA_COLOUR, f"fresh true samples (N = {n})"),
                )
            ],
            loc="outside lower center",
            ncol=2,
            frameon=False,
        )
        return _save(fig, path)


def figure_density(res: Results, path: Path):
    """Rows: datasets; columns: exact-likelihood models and the truth; one colour scale per
    row (log-density over 8 nats below the true maximum)."""
    names = [n for n in res.datasets if n in res.density]
    if not names:
        return None
    cols = []
    for n in names:
        for c in res.density[n][2]:
            if c != "true" and c not in cols:
                cols.append(c)
    cols.append("true")
    if len(cols) < 2:
        return None
    w = min(2.0, (TEXT_WIDTH_IN - 0.5) / len(cols))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            len(names),
            len(cols),
            figsize=(w * len(cols) + 0.5, w * len(names) + 0.2),
            squeeze=False,
            layout="constrained",
        )
        for i, name in enumerate(names):
            xs, ys, grids = res.density[name]
            top = float(np.max(grids["true"]))
            im = None
            for j, c in enumerate(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if c not in grids:
                    ax.set_axis_off()
                    continue
                lp = np.asarray(grids[c], np.float64).reshape(len(ys), len(xs))
                im = ax.imshow(
                    np.clip(lp, top - 8.0, top),
                    vmin=top - 8.0,
                    vmax=top,
                    origin="lower",
                    extent=(xs[0], xs[-1], ys[0], ys[-1]),
                    cmap="magma",
                    interpolation="nearest",
                )
                if i == 0:
                    ax.set_title("true density" if c == "true" else res.label(c))
                if j == 0:
                    ax.set_ylabel(name)
            if im is not None:
                fig.colorbar(im, ax=list(axes[i]), shrink=0.9, label="log p(x)", pad=0.01)
        return _save(fig, path)


def _gaussian_panel(ax, st: dict, colours: dict) -> None:
    """(a) Closed-form KL against NFE for one Gaussian target, with the samplers' limits."""
    for name in studies.SAMPLERS:
        g = sorted((r for r in st["gaussian"] if r["sampler"] == name), key=lambda r: r["nfe"])
        ax.loglog([r["nfe"] for r in g], [r["kl"] for r in g], "o-", ms=2.5, color=colours[name])
    for r in st["gaussian"]:
        if r["sampler"].startswith("limit"):
            ls = ":" if r["sampler"] == "limit_sde" else "--"
            ax.axhline(r["kl"], color="0.35", lw=0.8, ls=ls)
    ax.set_ylabel("KL(q ‖ p) (nats)")
    ax.set_title("(a) one Gaussian, exact score: closed form")


def _energy_panel(ax, st: dict, score: str, letter: str, colours: dict) -> None:
    """(b, c) Energy distance against NFE on the mixture with one ``score``, and the noise
    floor (values below it drawn inside the band)."""
    floor = st["energy_floor"]
    shown = False
    for name in [*studies.SAMPLERS, "ode_adaptive"]:
        rs = sorted(
            (r for r in st["mixture"] if r["sampler"] == name and r["score"] == score),
            key=lambda r: r["nfe"],
        )
        rs = [r for r in rs if math.isfinite(r["energy"])]
        if not rs:
            continue
        shown = True
        y = [max(r["energy"], floor / 10) for r in rs]
        ax.loglog([r["nfe"] for r in rs], y, "o-", ms=2.5, color=colours[name])
    ax.axhspan(floor / 10, floor, color="0.88", lw=0)
    ax.set_ylabel("energy distance")
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(f"({letter}) mixture, {score} score" + ("" if shown else ": none"))


def _ddim_kl_panel(ax, st: dict, colour) -> None:
    """(d) DDIM's exact KL against NFE on the mixture, exact and trained score."""
    for score, marker in (("exact", "o"), ("learned", "s")):
        rs = sorted(
            (
                r
                for r in st["mixture"]
                if r["sampler"] == "ddim" and r["score"] == score and math.isfinite(r["kl"])
            ),
            key=lambda r: r["nfe"],
        )
        if not rs:
            continue
        ax.errorbar(
            [r["nfe"] for r in rs],
            [max(r["kl"], 1e-5) for r in rs],
            yerr=[r["kl_se"] for r in rs],
            fmt="-",
            marker=marker,
            ms=2.8,
            color=colour,
            mfc="white" if score == "learned" else None,
            capsize=1.5,
            lw=0.9,
            label=f"{score} score",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("KL(q ‖ p) (nats)")
    ax.set_title("(d) mixture, DDIM: exact KL of its samples")
    ax.legend(loc="upper right")


def figure_samplers(res: Results, path: Path):
    """The sampler study, 2 × 2: (a) closed-form KL against NFE for a Gaussian target;
    energy distance against NFE on the mixture with (b) the exact and (c) the trained score,
    with the noise floor; (d) DDIM's exact KL against NFE, exact and trained score."""
    st = res.samplers
    if not st:
        return None
    names = [*studies.SAMPLERS, "ode_adaptive"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = dict(zip(names, palette, strict=False))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(TEXT_WIDTH_IN, 4.0), layout="constrained")
        _gaussian_panel(axes[0, 0], st, colours)
        _energy_panel(axes[0, 1], st, "exact", "b", colours)
        _energy_panel(axes[1, 0], st, "learned", "c", colours)
        _ddim_kl_panel(axes[1, 1], st, colours["ddim"])
        for ax in axes.flat:
            ax.set_xlabel("NFE")
            ax.grid(alpha=0.25, lw=0.4, which="major")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        handles = [
            plt.Line2D([], [], color=colours[n], marker="o", ms=3, label=studies.SAMPLER_LABELS[n])
            for n in names
        ]
        handles += [
            plt.Line2D([], [], color="0.35", ls=":", label="stochastic limit (a)"),
            plt.Line2D([], [], color="0.35", ls="--", label="deterministic limit (a)"),
            matplotlib.patches.Patch(color="0.88", label="energy noise floor (b, c)"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
        return _save(fig, path)


def figure_width(path: Path) -> float:
    with Image.open(path) as im:
        return im.size[0] / FIG_DPI


def typst_figure(
    path: Path, build: Path, *, caption: str, label: str, width_in: float, float_: bool = False
) -> str:
    """An image in a numbered figure; ``float_`` lets Typst place it at the top or bottom
    of a page (main text), otherwise it stays where it is (appendix)."""
    rel = path.relative_to(build).as_posix()
    return (
        f'#figure(image("{rel}", width: {min(width_in, TEXT_WIDTH_IN):.2f}in),\n'
        f"  caption: [{typst_text(caption)}],\n"
        + ("  placement: auto,\n" if float_ else "")
        + f") <{label}>"
    )
