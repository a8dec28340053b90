"""The report's figures (matplotlib), drawn at the size they are printed: every figure is
the text width (6.5 in) wide and is included at that width, so a font's size in points is
its printed size (at least :data:`MIN_FONT_PT`). Training curves, sample overlays, exact
log-densities and the sampler study; each has a builder returning the figure
(``*_figure``, what the tests inspect) and a ``figure_*`` function saving it."""

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
from ..figures import display_label, draw_curves, weights_text  # noqa: E402
from ..results import Results  # noqa: E402
from .text import typst_text  # noqa: E402

TEXT_WIDTH_IN = 6.5  # US Letter minus two 1-inch margins
FIG_DPI = 220
MIN_FONT_PT = 8.0
"""The smallest font of any figure, in points as printed."""
RC = {
    "font.size": 8.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 9,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "savefig.dpi": FIG_DPI,
}
MAIN_DATASET_PREFERENCE = ("pinwheel",)
"""The dataset the main text shows large, when the results have it (else their first)."""


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


def _wrap(text: str, width_in: float, size_pt: float = 8.5) -> str:
    """``text`` wrapped to fit ``width_in`` inches at ``size_pt`` (about half an em a
    character)."""
    chars = max(10, int(width_in * 72 / (0.5 * size_pt)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _panels(names, items, *, max_cols: int, panel_w: float, panel_h: float, extra_h: float):
    """One panel per (name, item): each name starts a new row, rows hold at most
    ``max_cols`` panels; the figure is the text width wide. Returns ``(figure,
    {(name, item): axis}, panels per name-row)``."""
    cols = min(len(items), max_cols)
    rows_per = math.ceil(len(items) / cols)
    nrows = rows_per * len(names)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(TEXT_WIDTH_IN, panel_h * nrows + extra_h),
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


def _columns(n: int) -> int:
    """Columns of a text-width grid of ``n`` panels: all in a row up to 3, 2 x 2 for 4,
    else 3."""
    return n if n <= 3 else 2 if n == 4 else 3


def training_layout(res: Results) -> tuple[int, float]:
    """Columns and panel height of the training figure."""
    cols = _columns(max(len(res.families), 1))
    w = TEXT_WIDTH_IN / cols
    return cols, float(np.clip(0.62 * w, 1.75, 2.3))


def overlay_layout(res: Results, oracle: bool = True) -> tuple[int, float]:
    """Columns and panel size of the overlay figure: as few empty slots as possible, panels
    at least 1.3 in wide."""
    n = len(res.models) + oracle
    if n <= 4:
        cols = max(n, 1)
    else:
        cols = min((4, 5), key=lambda c: (-(-n // c) * c - n, -c))
    return cols, min(2.2, TEXT_WIDTH_IN / cols)


def main_datasets(res: Results, rows_per: int = 1, panel_h: float = 0.0, budget_in: float = 0.0):
    """The one dataset the main text's training and overlay figures show large (the others
    go to the appendix): the first of :data:`MAIN_DATASET_PREFERENCE` the results have,
    else their first. (``rows_per``, ``panel_h`` and ``budget_in`` are kept for callers.)"""
    for name in MAIN_DATASET_PREFERENCE:
        if name in res.datasets:
            return [name]
    return res.datasets[:1]


def _ylabel(res: Results, fam: str, history) -> str:
    if history.metrics.get("holdout_d_loss"):
        return "V(D, G) = E log D(x)\n+ E log(1 − D(G(z)))"
    return _short_loss(display_label(res.loss_label(fam)))


def _likelihood_axis(ax, history, dataset: str):
    """The exact hold-out NLL (or minus the bound) of one run on a second axis of ``ax``,
    with the true entropy; returns its legend ``(handles, labels)`` (empty when the run
    recorded neither)."""
    for metric, label in (
        ("holdout_nll", "exact hold-out NLL (right axis)"),
        ("holdout_neg_bound", "hold-out −bound (right axis)"),
    ):
        vals = history.metrics.get(metric)
        if vals:
            ax2 = ax.twinx()
            ax2.plot(
                history.step, vals, "^--", ms=2.5, lw=0.9, color=plotting.MODEL_COLOUR, label=label
            )
            ax2.axhline(
                datasets.entropy(dataset),
                color="k",
                lw=0.7,
                ls=":",
                label="true entropy (right axis)",
            )
            ax2.set_ylabel("nats")
            return ax2.get_legend_handles_labels()
    return [], []


def training_figure(res: Results, names=None, *, with_metric: bool = False):
    """One panel per (dataset, trained family): the train and hold-out loss on 500 points
    each, same weights (named in the panel title) and key, the minibatch loss faint behind
    (:func:`lab.figures.draw_curves`; a GAN's panel shows the course's V(D, G) with its
    equilibrium); with ``with_metric``, the exact hold-out NLL (or minus the bound) on a
    second axis with the true entropy. ``None`` when no run has a history."""
    names = res.datasets if names is None else names
    fams = [f for f in res.families if any((n, f) in res.histories for n in names)]
    if not fams:
        return None
    cols, panel_h = training_layout(res)
    cols = _columns(len(fams))
    w = TEXT_WIDTH_IN / cols
    legend: dict = {}
    with plt.rc_context(RC):
        fig, axes, _ = _panels(names, fams, max_cols=cols, panel_w=w, panel_h=panel_h, extra_h=0.55)
        for (name, fam), ax in axes.items():
            h = res.histories.get((name, fam))
            if h is None or not h.step_losses:
                ax.set_axis_off()
                continue
            c = draw_curves(ax, h, ylabel=_ylabel(res, fam, h), ms=2.5, lw=1.0)
            ema = res.hp(fam).get("ema_decay")
            title = display_label(res.label(fam))
            if len(names) > 1:
                title = f"{display_label(name)}: {title}"
            ax.set_title(_wrap(title, w) + "\n" + weights_text(None if c.gan else ema))
            ax.grid(alpha=0.25, lw=0.4)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            handles, labels = ax.get_legend_handles_labels()
            if with_metric and not c.gan:
                h2, l2 = _likelihood_axis(ax, h, name)
                handles, labels = handles + h2, labels + l2
            legend.update(zip(labels, handles, strict=True))
        if len(names) == 1:
            fig.suptitle(f"Training curves on {display_label(names[0])}, seed {res.seeds[0]}")
        _figure_legend(fig, legend)
    return fig


def _figure_legend(fig, legend: dict) -> None:
    """One legend under the figure: as many columns as fit the text width at 8 pt, every
    handle drawn opaque and thick enough to see (the faint per-step line included)."""
    longest = max(len(k) for k in legend)
    ncol = max(1, min(len(legend), int(TEXT_WIDTH_IN * 72 / (0.5 * 8 * longest + 30))))
    leg = fig.legend(
        list(legend.values()),
        list(legend.keys()),
        loc="outside lower center",
        ncol=ncol,
        frameon=False,
    )
    for handle in leg.legend_handles:
        handle.set_alpha(1.0)
        if hasattr(handle, "set_linewidth"):
            handle.set_linewidth(max(handle.get_linewidth(), 1.0))


def figure_training(res: Results, path: Path, names=None, *, with_metric: bool = False):
    """:func:`training_figure` saved to ``path`` (``None`` when there is nothing to draw)."""
    fig = training_figure(res, names, with_metric=with_metric)
    return None if fig is None else _save(fig, path)


def _short_loss(label: str) -> str:
    """An axis label from a loss description: the part before any parenthesis."""
    short = label.split(" (")[0]
    lines = textwrap.wrap(short, 22)  # at most two lines: the panels are small
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _dots(ax, x, colour, size: float) -> None:
    """A scatter of 2D points ``x`` as small translucent dots (rasterised)."""
    ax.scatter(x[:, 0], x[:, 1], s=size, color=colour, alpha=0.45, lw=0, rasterized=True)


def overlay_figure(res: Results, names=None, *, oracle: bool = True):
    """One panel per (dataset, model), the oracle last: model samples (red) over fresh true
    samples (blue), equal aspect, one box per dataset. ``None`` when no dataset has arrays."""
    names = res.datasets if names is None else names
    cols = [*res.models, *(["oracle"] if oracle else [])]
    names = [n for n in names if (n, res.seeds[0]) in res.cells]
    if not names:
        return None
    ncol, w = overlay_layout(res, oracle)
    size = float(np.clip(0.7 * (w / 1.3) ** 2, 0.6, 2.0))
    with plt.rc_context(RC):
        fig, axes, _ = _panels(names, cols, max_cols=ncol, panel_w=w, panel_h=w + 0.3, extra_h=0.55)
        n = 0
        for (name, m), ax in axes.items():
            cell = res.cells[(name, res.seeds[0])]
            lo, hi = _box(cell["train"])
            ref = cell["reference"]
            n = len(ref)
            _dots(ax, ref, plotting.DATA_COLOUR, size)
            x = cell["samples"].get(m)
            if x is not None:
                _dots(ax, np.where(np.isfinite(x), x, np.nan), plotting.MODEL_COLOUR, size)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            label = display_label(res.label(m)) if m != "oracle" else "oracle (true vs true)"
            ax.set_title(_wrap(label, w))
            if len(names) > 1 and cols.index(m) % ncol == 0:
                ax.set_ylabel(display_label(name))
        if len(names) == 1:
            fig.suptitle(
                f"Samples on {display_label(names[0])}, seed {res.seeds[0]}: "
                "model (red) over fresh true samples (blue)"
            )
        fig.legend(
            handles=[
                plt.Line2D([], [], marker="o", ls="", color=colour, ms=4, label=label)
                for colour, label in (
                    (plotting.MODEL_COLOUR, f"model samples (N = {n})"),
                    (plotting.DATA_COLOUR, f"fresh true samples (N = {n})"),
                )
            ],
            loc="outside lower center",
            ncol=2,
            frameon=False,
        )
    return fig


def figure_overlays(res: Results, path: Path, names=None, *, oracle: bool = True):
    """:func:`overlay_figure` saved to ``path`` (``None`` when there is nothing to draw)."""
    fig = overlay_figure(res, names, oracle=oracle)
    return None if fig is None else _save(fig, path)


def density_figure(res: Results):
    """Rows: datasets; columns: exact-likelihood models and the truth; one colour scale per
    row (log-density over 8 nats below the true maximum). ``None`` without two columns."""
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
    w = min(2.2, (TEXT_WIDTH_IN - 0.7) / len(cols))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            len(names),
            len(cols),
            figsize=(TEXT_WIDTH_IN, (w + 0.25) * len(names) + 0.3),
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
                    ax.set_title(
                        _wrap("true density" if c == "true" else display_label(res.label(c)), w)
                    )
                if j == 0:
                    ax.set_ylabel(display_label(name))
            if im is not None:
                fig.colorbar(im, ax=list(axes[i]), shrink=0.9, label="log p(x)", pad=0.01)
    return fig


def figure_density(res: Results, path: Path):
    """:func:`density_figure` saved to ``path`` (``None`` when there is nothing to draw)."""
    fig = density_figure(res)
    return None if fig is None else _save(fig, path)


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
    ax.set_title("(a) one Gaussian, exact score (closed form)")


def _energy_panel(ax, st: dict, score: str, letter: str, colours: dict) -> None:
    """(b, c) Energy distance against NFE with one ``score`` (exact: the mixture; learned:
    the dataset the score was trained on), and that dataset's noise floor (values below it
    drawn inside the band)."""
    learned = score == "learned"
    floor = st.get("learned_energy_floor", st["energy_floor"]) if learned else st["energy_floor"]
    dataset = (st.get("learned_dataset") or "gaussian_mixture") if learned else "gaussian_mixture"
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
    what = "trained score" if learned else "exact score"
    ax.set_title(f"({letter}) {display_label(dataset)}, {what}" + ("" if shown else ": none"))


def _ddim_kl_panel(ax, st: dict, colour) -> None:
    """(d) DDIM's exact KL against NFE: exact score (mixture) and trained score (on its
    dataset)."""
    learned_on = display_label(st.get("learned_dataset") or "gaussian_mixture")
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
            label="exact score, Gaussian mixture"
            if score == "exact"
            else f"trained score, {learned_on}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("KL(q ‖ p) (nats)")
    ax.set_title("(d) DDIM: exact KL of its samples")
    ax.legend(loc="upper right")


def samplers_figure(res: Results):
    """The sampler study, 2 × 2: (a) closed-form KL against NFE for a Gaussian target;
    energy distance against NFE (b) on the mixture with the exact score and (c) with the
    trained score on its dataset, each with its noise floor; (d) DDIM's exact KL against
    NFE, exact and trained score. ``None`` without a sampler study."""
    st = res.samplers
    if not st:
        return None
    names = [*studies.SAMPLERS, "ode_adaptive"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = dict(zip(names, palette, strict=False))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(TEXT_WIDTH_IN, 4.8), layout="constrained")
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
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    return fig


def figure_samplers(res: Results, path: Path):
    """:func:`samplers_figure` saved to ``path`` (``None`` without a sampler study)."""
    fig = samplers_figure(res)
    return None if fig is None else _save(fig, path)


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
