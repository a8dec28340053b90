"""Figures from arrays: training curves, sample overlays, density heatmaps, trajectories.

Every function takes arrays (or a :class:`~flowlab.History`) and returns a matplotlib
``Figure``; none trains or integrates a model. Ask the model for what to plot
(``model.sample``, ``model.log_prob`` on :func:`grid`, ``model.trajectories``) and pass the
arrays here. A function given ``ax=`` draws into that axes of the caller's figure and leaves
the figure's layout to the caller (``fig.tight_layout()`` once, after the last panel); without
``ax`` it makes and lays out a figure of its own.

Importing this module leaves matplotlib's backend alone (whatever ``MPLBACKEND``,
``matplotlib.use`` or a notebook chose); figures are saved with ``Figure.savefig``, which
works under any backend, including a headless one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "animate_particles",
    "density_evolution",
    "density_heatmap",
    "ema",
    "grid",
    "sample_overlay",
    "save_figure",
    "training_curves",
    "trajectories",
    "vector_field",
]

MODEL_COLOUR = sns.color_palette("deep")[3]  # red
DATA_COLOUR = sns.color_palette("deep")[0]  # blue
HOLDOUT_COLOUR = sns.color_palette("deep")[1]  # orange


def ema(values: Sequence[float], decay: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (as in Adam), same length as ``values``."""
    v = np.asarray(values, np.float64)
    out = np.empty_like(v)
    acc = 0.0
    for i, x in enumerate(v):
        acc = decay * acc + (1 - decay) * x
        out[i] = acc / (1 - decay ** (i + 1))
    return out


def grid(lo: Sequence[float], hi: Sequence[float], n: int = 200):
    """A regular 2D grid: returns ``(xs (n,), ys (n,), points (n*n, 2))`` in row-major order
    (``points.reshape(n, n, 2)[i, j] == (xs[j], ys[i])``)."""
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(lo[1], hi[1], n)
    xx, yy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def _history_arrays(history):
    if isinstance(history, dict):
        return history
    return history.to_dict()


def training_curves(
    history,
    *,
    title: str = "Training curve",
    loss_label: str = "loss",
    ema_decay: float = 0.98,
    metric: str | None = "holdout_nll",
    metric_label: str = "exact hold-out NLL (nats)",
    reference: float | None = None,
    reference_label: str = "true entropy",
    holdout_label: str = "hold-out",
) -> Figure:
    """Train and hold-out loss against gradient steps (left) and, when ``history`` has it,
    a metric such as the exact hold-out NLL against steps with a reference line (right).

    The per-step training loss is drawn faintly with its EMA (``ema_decay``) on top; the
    hold-out loss is evaluated on all hold-out points every ``eval_every`` steps.
    """
    h = _history_arrays(history)
    has_metric = metric is not None and metric in h.get("metrics", {})
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(
            1, 2 if has_metric else 1, figsize=(12 if has_metric else 7, 4.5), squeeze=False
        )
    ax = axes[0, 0]
    raw = np.asarray(h["step_losses"])
    steps = np.arange(1, raw.size + 1)
    ax.plot(steps, raw, color=DATA_COLOUR, alpha=0.25, lw=0.6, label="train (per step)")
    ax.plot(steps, ema(raw, ema_decay), color=DATA_COLOUR, lw=1.8, label=f"train (EMA {ema_decay})")
    ax.plot(
        h["step"],
        h["holdout_loss"],
        "o-",
        color=HOLDOUT_COLOUR,
        ms=3.5,
        lw=1.5,
        label=holdout_label,
    )
    lo = np.percentile(np.concatenate([raw, h["holdout_loss"]]), 0.5)
    hi = np.percentile(raw, 99)
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.15 * (hi - lo))
    ax.set_xlabel("gradient step")
    ax.set_ylabel(loss_label)
    ax.set_title(title)
    ax.legend(loc="upper right")
    if has_metric:
        ax = axes[0, 1]
        ax.plot(
            h["step"], h["metrics"][metric], "o-", color=MODEL_COLOUR, ms=3.5, label=metric_label
        )
        if reference is not None:
            ax.axhline(
                reference, color="k", ls="--", lw=1.2, label=f"{reference_label} = {reference:.3f}"
            )
        ax.set_xlabel("gradient step")
        ax.set_ylabel("nats")
        ax.set_title(metric_label)
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _panel(ax, figsize) -> tuple[Figure, Any, bool]:
    """``(fig, ax, own)``: the caller's axes and its figure, or (``ax`` ``None``) a new
    white-styled figure of ``figsize`` with one axes, which the function then owns."""
    if ax is not None:
        return ax.figure, ax, False
    with sns.axes_style("white"):
        fig, ax = plt.subplots(figsize=figsize)
    return fig, ax, True


def _laid_out(fig: Figure, own: bool) -> Figure:
    """``fig``, laid out when the function made it; a caller's figure is laid out by the
    caller, once, after its last panel (not once per panel)."""
    if own:
        fig.tight_layout()
    return fig


def sample_overlay(
    model_samples,
    true_samples,
    *,
    title: str = "Model samples vs data",
    labels: tuple[str, str] = ("model", "data"),
    lim: tuple[tuple[float, float], tuple[float, float]] | None = None,
    ax=None,
) -> Figure:
    """Model and true samples on one scatter, in two colours, equal aspect."""
    m, d = np.asarray(model_samples), np.asarray(true_samples)
    fig, ax, own = _panel(ax, (5.5, 5.5))
    ax.scatter(
        d[:, 0],
        d[:, 1],
        s=4,
        alpha=0.45,
        color=DATA_COLOUR,
        label=f"{labels[1]} (n={len(d)})",
        rasterized=True,
    )
    ax.scatter(
        m[:, 0],
        m[:, 1],
        s=4,
        alpha=0.45,
        color=MODEL_COLOUR,
        label=f"{labels[0]} (n={len(m)})",
        rasterized=True,
    )
    if lim is not None:
        ax.set_xlim(lim[0])
        ax.set_ylim(lim[1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=3, framealpha=0.9)
    return _laid_out(fig, own)


def density_heatmap(
    xs,
    ys,
    log_density,
    *,
    title: str = "Model density",
    points=None,
    cmap: str = "magma",
    log: bool = False,
    vmax: float | None = None,
    log_range: float = 8.0,
    ax=None,
) -> Figure:
    """A density on a grid (``log_density`` shape ``(len(ys), len(xs))`` or flat),
    optionally with ``points`` overlaid.

    Linear scale (default): colours show $p(x)$ up to ``vmax`` (default: the 99.5th
    percentile on the grid, so one integrable spike, e.g. pinwheel's centre, does not wash
    out the rest). ``log=True``: colours show $\\log p(x)$ over the ``log_range`` nats below
    ``vmax`` (default: the grid's maximum of $\\log p$). Pass the same ``vmax`` to panels
    that should be compared."""
    logp = np.asarray(log_density, np.float64).reshape(len(ys), len(xs))
    if log:
        top = float(np.max(logp[np.isfinite(logp)])) if vmax is None else vmax
        image, vmin, vmax, label = (
            np.maximum(logp, top - log_range),
            top - log_range,
            top,
            ("log density $\\log p(x)$"),
        )
    else:
        image = np.exp(logp)
        vmax = float(np.percentile(image, 99.5)) if vmax is None else vmax
        vmin, label = 0.0, "density $p(x)$"
    fig, ax, own = _panel(ax, (6.2, 5.2))
    im = ax.imshow(
        image,
        vmin=vmin,
        vmax=vmax,
        origin="lower",
        extent=(xs[0], xs[-1], ys[0], ys[-1]),
        cmap=cmap,
        aspect="equal",
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    if points is not None:
        p = np.asarray(points)
        ax.scatter(p[:, 0], p[:, 1], s=1, color="white", alpha=0.4, label="hold-out data")
        ax.legend(loc="upper right", markerscale=4, framealpha=0.6)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    return _laid_out(fig, own)


def trajectories(
    ts,
    xs,
    *,
    title: str = "ODE trajectories from base to data",
    max_paths: int = 400,
    cmap: str = "viridis",
    ax=None,
) -> Figure:
    """Particle paths ``xs`` (shape ``(T, n, 2)`` at times ``ts``) as lines coloured by time,
    with start points (grey) and end points (red) marked."""
    ts, xs = np.asarray(ts), np.asarray(xs)
    xs = xs[:, :max_paths]
    fig, ax, own = _panel(ax, (6.4, 5.4))
    segs = np.stack([xs[:-1], xs[1:]], axis=2)  # (T-1, n, 2, 2)
    t_mid = 0.5 * (ts[:-1] + ts[1:])
    lc = LineCollection(segs.reshape(-1, 2, 2), cmap=cmap, linewidths=0.6, alpha=0.7)
    lc.set_array(np.repeat(t_mid, xs.shape[1]))
    ax.add_collection(lc)
    ax.scatter(xs[0, :, 0], xs[0, :, 1], s=6, color="0.45", label=f"start (t={ts[0]:g})", zorder=3)
    ax.scatter(
        xs[-1, :, 0], xs[-1, :, 1], s=6, color=MODEL_COLOUR, label=f"end (t={ts[-1]:g})", zorder=3
    )
    fig.colorbar(lc, ax=ax, label="time $t$", shrink=0.85)
    ax.autoscale()
    ax.set_aspect("equal")
    # the equal aspect and the colorbar make the panel narrow: fewer x ticks keep their
    # labels apart at the default size
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=2, framealpha=0.9)
    return _laid_out(fig, own)


def save_figure(fig: Figure, *paths: str | os.PathLike, dpi: int = 130) -> None:
    """Save ``fig`` to each path atomically (temporary file, then rename) and close it."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    plt.close(fig)


def density_evolution(
    xs,
    ys,
    log_densities,
    ts,
    *,
    title: str = "Density along the flow",
    log_range: float = 8.0,
    cmap: str = "magma",
) -> Figure:
    """One log-density panel per time: ``log_densities`` of shape ``(T, len(ys), len(xs))``
    (or ``(T, len(ys) * len(xs))``) at times ``ts`` (shape ``(T,)``), on a shared colour
    scale spanning ``log_range`` nats below the overall maximum."""
    lds = np.asarray(log_densities, np.float64).reshape(len(ts), len(ys), len(xs))
    top = float(np.max(lds[np.isfinite(lds)]))
    n = len(ts)
    with sns.axes_style("white"):
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.0, 3.6), squeeze=False)
    im = None
    for i, (ax, t) in enumerate(zip(axes[0], ts, strict=True)):
        im = ax.imshow(
            np.maximum(lds[i], top - log_range),
            vmin=top - log_range,
            vmax=top,
            origin="lower",
            extent=(xs[0], xs[-1], ys[0], ys[-1]),
            cmap=cmap,
            aspect="equal",
        )
        ax.set_title(f"$t = {float(t):.2f}$")
        ax.set_xlabel("$x_1$")
        if i == 0:
            ax.set_ylabel("$x_2$")
        else:
            ax.set_yticklabels([])
    fig.colorbar(im, ax=list(axes[0]), label="$\\log p_t(x)$", shrink=0.85)
    fig.suptitle(title)
    return fig


def vector_field(
    xs,
    ys,
    velocities,
    *,
    title: str = "Vector field",
    points=None,
    stream: bool = True,
    ax=None,
) -> Figure:
    """A 2D field on a grid (``velocities`` of shape ``(len(ys), len(xs), 2)`` or flat
    ``(len(ys) * len(xs), 2)``) as a streamplot (or quiver) coloured by speed, optionally
    with ``points`` overlaid."""
    v = np.asarray(velocities, np.float64).reshape(len(ys), len(xs), 2)
    speed = np.hypot(v[..., 0], v[..., 1])
    fig, ax, own = _panel(ax, (6.2, 5.2))
    if stream:
        art = ax.streamplot(
            np.asarray(xs),
            np.asarray(ys),
            v[..., 0],
            v[..., 1],
            color=speed,
            cmap="viridis",
            density=1.2,
            linewidth=0.8,
            arrowsize=0.8,
        ).lines
    else:
        xx, yy = np.meshgrid(xs, ys)
        art = ax.quiver(xx, yy, v[..., 0], v[..., 1], speed, cmap="viridis")
    fig.colorbar(art, ax=ax, label="speed $|f(t, x)|$", shrink=0.85)
    if points is not None:
        p = np.asarray(points)
        ax.scatter(p[:, 0], p[:, 1], s=2, color=MODEL_COLOUR, alpha=0.4, label="samples")
        ax.legend(loc="upper right", markerscale=4)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    return _laid_out(fig, own)


def animate_particles(
    ts,
    xs,
    path: str | os.PathLike,
    *,
    title: str = "Particles flowing from base to data",
    fps: int = 20,
    reference=None,
    dpi: int = 90,
) -> Path:
    """Write an animation of particles ``xs`` (shape ``(T, n, 2)`` at times ``ts``), one frame
    per time: a GIF through Pillow, or an MP4 when ``path`` ends in ``.mp4`` and ffmpeg is
    available. ``reference`` points (e.g. data) are drawn faintly behind. Returns the path."""
    from matplotlib import animation

    ts, xs = np.asarray(ts), np.asarray(xs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lo = np.percentile(xs.reshape(-1, 2), 0.5, axis=0)
    hi = np.percentile(xs.reshape(-1, 2), 99.5, axis=0)
    pad = 0.1 * (hi - lo)
    with sns.axes_style("white"):
        fig, ax = plt.subplots(figsize=(5.0, 5.0))
    if reference is not None:
        r = np.asarray(reference)
        ax.scatter(r[:, 0], r[:, 1], s=2, color=DATA_COLOUR, alpha=0.2, label="data")
    scat = ax.scatter(xs[0, :, 0], xs[0, :, 1], s=3, color=MODEL_COLOUR, label="particles")
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="upper right", markerscale=3)
    label = ax.set_title(f"{title}\n$t = {ts[0]:.2f}$")

    def update(i):
        scat.set_offsets(xs[i])
        label.set_text(f"{title}\n$t = {ts[i]:.2f}$")
        return scat, label

    anim = animation.FuncAnimation(fig, update, frames=len(ts), blit=False)
    if path.suffix == ".mp4" and animation.writers.is_available("ffmpeg"):
        writer = animation.FFMpegWriter(fps=fps)
    else:
        if path.suffix == ".mp4":
            raise ValueError(f"ffmpeg is not available to write {path}; use a .gif path")
        writer = animation.PillowWriter(fps=fps)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    anim.save(tmp, writer=writer, dpi=dpi)
    os.replace(tmp, path)
    plt.close(fig)
    return path
