"""The one figure set of the experiment scripts: curves, overlay, density, trajectories.

Each function asks the model for arrays through the public protocol and hands them to
:mod:`flowlab.plotting`; none trains anything.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import flowlab
from flowlab import datasets, plotting


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
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def training(history, *, title, loss_label, reference=None, ema_weights=False, metric_label=None):
    """Train and hold-out loss on one axis (EMA of the noisy per-step loss), and the exact
    hold-out NLL when the run recorded one."""
    kwargs = {}
    if metric_label is not None:
        kwargs["metric_label"] = metric_label
    return plotting.training_curves(
        history,
        title=title,
        loss_label=loss_label,
        reference=reference,
        holdout_label="hold-out (EMA weights)" if ema_weights else "hold-out",
        **kwargs,
    )


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
    """Rows: datasets; columns: trained models. Train loss (EMA) and hold-out loss, with the
    hold-out NLL (exact) or minus the bound on a twin axis."""
    fig, axes = plt.subplots(
        len(names), len(families), figsize=(4.4 * len(families), 3.2 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        for j, fam in enumerate(families):
            ax, hist = axes[i, j], histories[(name, fam)]
            raw = np.asarray(hist.step_losses)
            steps = np.arange(1, raw.size + 1)
            ax.plot(steps, plotting.ema(raw, 0.98), color=plotting.DATA_COLOUR, lw=1.3,
                    label="train (EMA)")  # fmt: skip
            ax.plot(hist.step, hist.holdout_loss, "o-", ms=3, color=plotting.HOLDOUT_COLOUR,
                    label="hold-out")  # fmt: skip
            lo, hi = np.percentile(np.r_[raw, hist.holdout_loss], [0.5, 97])
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
            ax.set_title(f"{name}: {labels[fam]}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.set_ylabel("training loss", fontsize=8)
            h2, l2 = [], []
            for metric, label, style in (
                ("holdout_nll", "exact hold-out NLL", "s--"),
                ("holdout_neg_bound", "hold-out -bound", "d--"),
            ):
                values = hist.metrics.get(metric)
                if values:
                    ax2 = ax.twinx()
                    ax2.plot(hist.step, values, style, ms=3, color=plotting.MODEL_COLOUR,
                             label=label)  # fmt: skip
                    ax2.axhline(datasets.entropy(name), color="k", lw=0.8, ls=":")
                    ax2.set_ylabel("nats", fontsize=8)
                    h2, l2 = ax2.get_legend_handles_labels()
            h1, l1 = ax.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    titled(fig, "Training curves (seed 0; dotted: true entropy)")
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
                title=f"{name}: {labels[m]}",
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
            title = "true log-density" if c == "true" else labels[c]
            plotting.density_heatmap(
                xs, ys, grids[c], ax=axes[i, j], log=True, vmax=vmax, title=f"{name}: {title}"
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
                capsize=2, label=labels[m] + (" (−bound)" if hollow else ""),
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
        ax.set_title(name)
        ax.legend(fontsize=6.5, loc="lower right")
    titled(fig, "Exact (or bound) vs KDE hold-out NLL (mean ± std over seeds)")
    return fig
