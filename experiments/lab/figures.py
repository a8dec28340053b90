"""The one figure set of the experiment scripts: curves, overlay, density, trajectories.

Each function asks the model for arrays through the public protocol and hands them to
:mod:`flowlab.plotting`; none trains anything. The training panel (:func:`draw_curves`) is
shared with the typeset report (:mod:`lab.report.figures`): the train and hold-out lines are
the same loss on 500 training and 500 hold-out points, from the same weights (the EMA where
the run keeps one) and the same key (``History.train_eval_loss`` and ``holdout_loss``); the
per-step minibatch loss (live weights) is drawn faintly behind them. A GAN's panel shows the
course's value function instead of flowlab's summed loss (:func:`gan_value`).
"""

from __future__ import annotations

import dataclasses
import math
import re

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

import flowlab
from flowlab import datasets, plotting

GAN_EQUILIBRIUM = -2.0 * math.log(2.0)
"""The value $V(D, G)$ of the minimax game at its equilibrium ($D \\equiv 1/2$): $-2\\log 2$."""
GAN_VALUE_LABEL = "V(D, G) = E log D(x) + E log(1 − D(G(z)))"
"""The course's value function, as a GAN panel's axis label says it."""

_LABEL_WORDS = {
    "L_simple": "simple loss",
    "gaussian_mixture": "Gaussian mixture",
}


def display_label(label: str) -> str:
    """A model or dataset name as printed: no code names, no underscores
    (``"DDPM (L_simple)"`` -> ``"DDPM (simple loss)"``, ``"gaussian_mixture"`` ->
    ``"Gaussian mixture"``)."""
    for code, words in _LABEL_WORDS.items():
        label = label.replace(code, words)
    return re.sub(r"_+", " ", label)


def weights_text(ema_decay) -> str:
    """Which weights a run's evaluations used."""
    return f"EMA weights ({ema_decay:g})" if ema_decay else "live weights (no EMA)"


@dataclasses.dataclass
class Curves:
    """The lines of one training panel, as drawn. ``steps``/``train``/``holdout``: one value
    per evaluation (``train`` ``None`` where not recorded); ``minibatch``: one per step (live
    weights); ``running``: the minibatch's running mean where it stands in for ``train``
    (old histories and the GAN); ``gan``: the values are the course's :math:`V(D, G)`."""

    steps: np.ndarray
    train: np.ndarray | None
    holdout: np.ndarray
    minibatch: np.ndarray
    running: np.ndarray | None
    gan: bool

    def evaluation_points(self) -> np.ndarray:
        """Every plotted value the y-limits must contain."""
        parts = [self.holdout, *(a for a in (self.train, self.running) if a is not None)]
        v = np.concatenate([np.asarray(a, np.float64).ravel() for a in parts])
        return v[np.isfinite(v)]

    def late_points(self, divisor: int) -> np.ndarray:
        """The finite values of every curve (hold-out, train, running mean) from its
        ``len // divisor``-th point on, concatenated (each curve's own tail)."""
        tails = [np.asarray(a, np.float64)[len(a) // divisor :]
                 for a in (self.holdout, self.train, self.running)
                 if a is not None and len(a)]  # fmt: skip
        v = np.concatenate(tails) if tails else np.zeros(0)
        return v[np.isfinite(v)]


def gan_value(history) -> tuple[np.ndarray, np.ndarray] | None:
    """The course's value function :math:`V(D, G) = \\mathbb{E}\\log D(x) +
    \\mathbb{E}\\log(1 - D(G(z)))` of a GAN run, per step (minibatches) and on the hold-out
    set: minus the discriminator's cross-entropy that flowlab records (``d_loss``; its loss
    is the sum of both players' losses and the R1 penalty, which has no game meaning).
    ``None`` for a history without it."""
    d_step = history.step_aux.get("d_loss") if history.step_aux else None
    d_hold = history.metrics.get("holdout_d_loss")
    if not d_step or not d_hold:
        return None
    return -np.asarray(d_step, np.float64), -np.asarray(d_hold, np.float64)


def curves(history) -> Curves:
    """The lines :func:`draw_curves` draws for ``history``."""
    steps = np.asarray(history.step)
    gan = gan_value(history)
    if gan is not None:
        per_step, holdout = gan
        return Curves(steps, None, holdout, per_step, plotting.ema(per_step, 0.98), True)
    raw = np.asarray(history.step_losses, np.float64)
    train = getattr(history, "train_eval_loss", None)
    if train and len(train) == len(history.step):
        return Curves(steps, np.asarray(train), np.asarray(history.holdout_loss), raw, None, False)
    # histories saved before train_eval_loss: the minibatch loss's running mean (live weights)
    return Curves(
        steps, None, np.asarray(history.holdout_loss), raw, plotting.ema(raw, 0.98), False
    )


def _limits(c: Curves) -> tuple[float, float, bool]:
    """y-limits holding every evaluation point, and whether a symmetric-log axis is needed
    (the first points far above or below the rest)."""
    v = c.evaluation_points()
    if v.size == 0:
        return -1.0, 1.0, False
    lo, hi = float(v.min()), float(v.max())
    late = c.late_points(3)
    span_late = float(np.ptp(late)) if late.size else 0.0
    symlog = hi - lo > 20 * max(span_late, 1e-3 * max(abs(lo), abs(hi), 1e-12))
    if c.gan:
        lo, hi = min(lo, GAN_EQUILIBRIUM), max(hi, GAN_EQUILIBRIUM)
    pad = 0.08 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1.0)
    return lo - pad, hi + pad, symlog


def draw_curves(ax, history, *, ylabel: str, ms: float = 2.5, lw: float = 1.0) -> Curves:
    """One training panel on ``ax``: train (500 training points) and hold-out (500 hold-out
    points) loss, same weights and key, against gradient steps, the minibatch loss faint
    behind; for a GAN the course's :math:`V(D, G)` with its equilibrium :math:`-2\\log 2`.
    y-limits hold every evaluation point (symmetric-log axis, said in the axis label, when
    the first points lie far from the rest). Returns what was drawn."""
    c = curves(history)
    n = np.arange(1, c.minibatch.size + 1)
    ax.plot(n, c.minibatch, color="0.55", alpha=0.35, lw=0.4,
            label="minibatch loss, per step (live weights)" if not c.gan
            else "GAN: V on minibatches, per step")  # fmt: skip
    if c.running is not None:
        ax.plot(n, c.running, color=plotting.DATA_COLOUR, lw=lw,
                label="GAN: V on minibatches, running mean" if c.gan
                else "train: minibatch running mean")  # fmt: skip
    if c.train is not None:
        ax.plot(c.steps, c.train, "o-", color=plotting.DATA_COLOUR, ms=ms, lw=lw,
                label="train, 500 points")  # fmt: skip
    ax.plot(c.steps, c.holdout, "s-", color=plotting.HOLDOUT_COLOUR, ms=ms, lw=lw,
            label="hold-out, 500 points")  # fmt: skip
    if c.gan:
        ax.axhline(GAN_EQUILIBRIUM, color="k", ls="--", lw=0.8,
                   label="GAN equilibrium: V = −2 log 2 = −1.386")  # fmt: skip
    lo, hi, symlog = _limits(c)
    if symlog:
        # linear up to 1.5x the largest late value of any curve (the second half of each:
        # not the second half of their concatenation, which is a whole curve, spike included)
        late = np.abs(c.late_points(2))
        linthresh = max(float(np.max(late, initial=0.0)) * 1.5, 1e-3)
        # a spike inside the linear part (e.g. 0.70 over late values of 0.48): the symlog
        # axis would be linear anyway, with its ticks at the limits only
        symlog = max(abs(lo), abs(hi)) > linthresh
    if symlog:
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.yaxis.set_major_locator(
            matplotlib.ticker.SymmetricalLogLocator(base=10, linthresh=linthresh, subs=(1, 2, 5))
        )
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ylabel += " (symlog)"
    ax.set_ylim(lo, hi)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("gradient step")
    return c


def limits(train) -> tuple[np.ndarray, np.ndarray]:
    """A plotting box around the data: the 0.5-99.5 percentiles plus a quarter of the range."""
    tr = np.asarray(train)
    lo = np.percentile(tr, 0.5, axis=0) - 0.25 * np.ptp(tr, axis=0)
    hi = np.percentile(tr, 99.5, axis=0) + 0.25 * np.ptp(tr, axis=0)
    return lo, hi


def titled(fig, title: str):
    """``fig`` laid out tightly under the figure title ``title``, with room kept for it (a
    bare ``tight_layout`` lets the title run into the top row's panel titles)."""
    fig.suptitle(title)
    # two passes: with equal-aspect panels one pass leaves a row's x label touching the next
    # row's titles (4 px apart in a 3 x 3 sample grid; 15 px after the second)
    for _ in range(2):
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def training(history, *, title, loss_label, reference=None, ema_weights=False, metric_label=None):
    """Train and hold-out loss (:func:`draw_curves`: 500 points each, same weights and key)
    against gradient steps, and beside it the exact hold-out NLL when the run recorded one,
    with ``reference`` (the true entropy) as a dotted line."""
    metric = history.metrics.get("holdout_nll")
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(11 if metric else 6.5, 4.2),
                             squeeze=False)  # fmt: skip
    ax = axes[0, 0]
    c = draw_curves(ax, history, ylabel=GAN_VALUE_LABEL if gan_value(history) else loss_label,
                    ms=3.5, lw=1.4)  # fmt: skip
    weights = "live weights" if c.gan or not ema_weights else "EMA weights"
    ax.set_title(f"{title}\n(evaluations with {weights})" if not c.gan else title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if metric:
        ax = axes[0, 1]
        ax.plot(history.step, metric, "o-", color=plotting.MODEL_COLOUR, ms=3.5,
                label=metric_label or "exact hold-out NLL")  # fmt: skip
        if reference is not None:
            ax.axhline(reference, color="k", ls=":", lw=1.0,
                       label=f"true entropy = {reference:.3f}")  # fmt: skip
        ax.set_xlabel("gradient step")
        ax.set_ylabel("nats")
        ax.set_title(metric_label or "exact hold-out NLL")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def overlay(samples, oracle, train, *, title, label="model samples"):
    """Model and true samples on one plot, two colours."""
    lo, hi = limits(train)
    return plotting.sample_overlay(
        np.where(np.isfinite(samples), samples, np.nan),
        oracle,
        title=title,
        labels=(label, "true samples"),
        lim=((lo[0], hi[0]), (lo[1], hi[1])),
    )


def density(model, dataset: str, train, *, n_grid: int, title: str, nll=None, entropy=None):
    """The model's exact log-density beside the true one, on one shared colour scale
    (exact-likelihood models only)."""
    lo, hi = limits(train)
    xs, ys, pts = plotting.grid(lo, hi, n_grid)
    model_lp = np.asarray(model.log_prob(pts))
    panels = 2 if datasets.has_log_prob(dataset) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.2), squeeze=False)
    vmax = float(np.max(model_lp))
    if panels == 2:
        true_lp = datasets.log_prob(dataset, pts)
        vmax = max(vmax, float(np.max(true_lp)))
    model_title = f"{title} exact log-density"
    if nll is not None:
        model_title += f" (hold-out NLL {nll:.3f})"
    plotting.density_heatmap(
        xs, ys, model_lp, ax=axes[0, 0], vmax=vmax, log=True, title=model_title
    )
    if panels == 2:
        t = "true log-density" + (f" (entropy {entropy:.3f})" if entropy is not None else "")
        plotting.density_heatmap(xs, ys, true_lp, ax=axes[0, 1], title=t, vmax=vmax, log=True)
    name = dataset.replace("_", " ")
    fig.suptitle(f"{name}: log-density on a {n_grid}x{n_grid} grid (8 nats of range)")
    fig.tight_layout()  # short panel titles: no room needs keeping for the figure title
    return fig


def trajectories(model, key, *, title, n: int = 300, num_times: int = 60):
    """ODE paths of a flow from its prior to the data."""
    if not isinstance(model, flowlab.AbstractFlow):
        raise ValueError(f"trajectories need an ODE flow, got {type(model).__name__}")
    ts, paths = model.trajectories(key, n, num_times=num_times)
    return plotting.trajectories(ts, paths, title=title)


# -- the comparison grid ----------------------------------------------------------------------


def training_grid(names, families, histories, labels):
    """Rows: datasets; columns: trained models. Train and hold-out loss (:func:`draw_curves`),
    with the hold-out NLL (exact) or minus the bound on a twin axis."""
    fig, axes = plt.subplots(
        len(names), len(families), figsize=(4.4 * len(families), 3.4 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        for j, fam in enumerate(families):
            ax, hist = axes[i, j], histories[(name, fam)]
            c = draw_curves(ax, hist, ylabel=GAN_VALUE_LABEL if gan_value(hist) else "loss",
                            ms=3, lw=1.2)  # fmt: skip
            ax.set_title(f"{display_label(name)}: {display_label(labels[fam])}", fontsize=9)
            h2, l2 = [], []
            if not c.gan:
                for metric, label, style in (
                    ("holdout_nll", "exact hold-out NLL", "^--"),
                    ("holdout_neg_bound", "hold-out −bound", "d--"),
                ):
                    values = hist.metrics.get(metric)
                    if values:
                        ax2 = ax.twinx()
                        ax2.plot(hist.step, values, style, ms=3, color=plotting.MODEL_COLOUR,
                                 label=label)  # fmt: skip
                        ax2.axhline(datasets.entropy(name), color="k", lw=0.8, ls=":",
                                    label="true entropy")  # fmt: skip
                        ax2.set_ylabel("nats")
                        h2, l2 = ax2.get_legend_handles_labels()
                        break
            h1, l1 = ax.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best", framealpha=0.8)
    titled(fig, "Training curves (seed 0): train and hold-out loss on 500 points each, same "
           "weights (the EMA where a run keeps one) and key")  # fmt: skip
    return fig


def samples_grid(names, rows, arrays, labels):
    """Rows: datasets; columns: models (and the oracle): samples over fresh true samples."""
    fig, axes = plt.subplots(
        len(names), len(rows), figsize=(3.6 * len(rows), 3.6 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        a = arrays[name]
        lo, hi = limits(a["train"])
        for j, m in enumerate(rows):
            x = a["samples"][m]
            plotting.sample_overlay(
                np.where(np.isfinite(x), x, np.nan),
                a["reference"],
                title=f"{display_label(name)}: {display_label(labels[m])}",
                labels=("model" if m != "oracle" else "fresh true", "true"),
                lim=((lo[0], hi[0]), (lo[1], hi[1])),
                ax=axes[i, j],
            )
            axes[i, j].title.set_fontsize(8)
            axes[i, j].legend(fontsize=6, markerscale=3, loc="upper right")
    titled(fig, "Samples (red) vs fresh true samples (blue), seed 0")
    return fig


def density_grid(names, density, labels):
    """Rows: datasets; columns: exact-likelihood models and the truth, one colour scale per
    row."""
    cols = [c for c in next(iter(density.values()))[2] if c != "true"] + ["true"]
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(4.0 * len(cols), 3.4 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        xs, ys, grids = density[name]
        vmax = float(np.max(grids["true"]))
        for j, c in enumerate(cols):
            title = "true log-density" if c == "true" else display_label(labels[c])
            plotting.density_heatmap(
                xs,
                ys,
                grids[c],
                ax=axes[i, j],
                log=True,
                vmax=vmax,
                title=f"{display_label(name)}: {title}",
            )
            axes[i, j].title.set_fontsize(8)
    titled(fig, "Exact log-densities on a grid (8 nats of range, shared colour scale per row)")
    return fig


def nll_scatter(summary, names, order, labels):
    """Per dataset: KDE NLL against the exact NLL (or minus the bound, hollow) of every model
    and the oracle (mean ± std over seeds), with y = x and the true entropy."""
    import math

    markers = "osv^DPXh*p<>"
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.3 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        h = datasets.entropy(name)
        pts = [h]
        for k, m in enumerate(order):
            if (name, m) not in summary:
                continue
            s = summary[(name, m)]
            (y, ys, _) = s["kde_nll"]
            hollow = not math.isfinite(s["exact_nll"][0])
            (x, xs, _) = s["neg_bound"] if hollow else s["exact_nll"]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            ax.errorbar(
                x, y, xerr=xs, yerr=ys, fmt=markers[k % len(markers)],
                color=colours[k % len(colours)], mfc="none" if hollow else None, ms=8,
                capsize=2, label=display_label(labels[m]) + (" (−bound)" if hollow else ""),
            )  # fmt: skip
            pts += [x, y]
        lo, hi = min(pts), max(pts)
        pad = 0.15 * (hi - lo) + 0.05
        line = np.array([lo - pad, hi + pad])
        ax.plot(line, line, "k-", lw=0.8, label="KDE = exact")
        ax.axvline(h, color="grey", ls="--", lw=0.8, label=f"true entropy {h:.3f}")
        ax.axhline(h, color="grey", ls="--", lw=0.8)
        ax.set_xlim(*line)
        ax.set_ylim(*line)
        ax.set_xlabel("exact hold-out NLL or −bound (nats)")
        ax.set_ylabel("KDE hold-out NLL of samples (nats)")
        ax.set_title(display_label(name))
        ax.legend(fontsize=6.5, loc="lower right")
    titled(fig, "Exact (or bound) vs KDE hold-out NLL (mean ± std over seeds)")
    return fig
