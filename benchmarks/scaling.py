"""Section ``scaling``: training step time against batch size and width, ``log_prob`` time
against width and number of points; log-log plot in ``figures/benchmark_scaling.png``."""

from __future__ import annotations

import jax
from _models import (
    ROOT,
    bench_log_prob,
    bench_train,
    build,
    checkerboard_split,
    trained_or_untrained,
)

import flowlab
from flowlab import datasets


def section_scaling(quick: bool) -> dict:
    print("\n== scaling (log-log plot in figures/benchmark_scaling.png) ==")
    train, holdout = checkerboard_split()
    repeats = 3 if quick else 5
    out = {"fm_batch": [], "mle_batch": [], "fm_width": [], "log_prob_width": [], "log_prob_n": []}
    batches = [256, 1024, 4096] if quick else [256, 512, 1024, 2048, 4096, 8192]
    widths = [64, 128, 256] if quick else [64, 128, 256, 512]
    fm = flowlab.FlowMatching()
    for b in batches:
        r = bench_train(build("cnf_fm", 128, 3, train), fm, train, b, 50, repeats)
        out["fm_batch"].append(r)
        print(f"   FM train, width 128 depth 3, batch {b:5d}: {r['step_ms']:8.2f} ms/step")
    mle = flowlab.MaximumLikelihood(max_steps=20)
    for b in batches[: 3 if quick else 5]:
        model = build("cnf_mle", 64, 3, train, dt0=0.05, max_steps=20)
        r = bench_train(model, mle, train, b, 3, max(1, repeats - 2))
        out["mle_batch"].append(r)
        print(
            f"   MLE train, width 64 depth 3, 20 Tsit5 steps, batch {b:5d}: "
            f"{r['step_ms']:8.1f} ms/step"
        )
    for w in widths:
        r = bench_train(build("cnf_fm", w, 3, train), fm, train, 1024, 50, repeats)
        out["fm_width"].append({"width": w, **r})
        m = build("cnf_mle", w, 3, train, dt0=0.05, max_steps=20)
        lp = bench_log_prob(m, holdout, repeats)
        out["log_prob_width"].append({"width": w, **lp})
        print(
            f"   width {w:3d} depth 3: FM train batch 1024 {r['step_ms']:8.2f} ms/step; "
            f"log_prob 500 pts, 20 fixed Tsit5 steps ({lp['nfe']} NFE) "
            f"{lp['time_s'] * 1e3:8.1f} ms"
        )
    model = trained_or_untrained("cnf_fm", train)
    for n in [100, 500, 2000, 10_000] + ([] if quick else [50_000]):
        x = datasets.sample("checkerboard", jax.random.key(11), n)
        lp = bench_log_prob(model, x, max(1, repeats - 2) if n >= 10_000 else repeats)
        out["log_prob_n"].append(lp)
        print(
            f"   log_prob (trained FM CNF, adaptive rtol=atol=1e-5), {n:6d} points: "
            f"{lp['time_s'] * 1e3:9.1f} ms  ({lp['nfe']} NFE, "
            f"{lp['time_s'] / n / lp['nfe'] * 1e9:.0f} ns per point per NFE)"
        )
    plot_scaling(out)
    return out


def plot_scaling(out):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlab.plotting import save_figure

    def curve(ax, rows, x, y, style, label, scale=1.0):
        ax.loglog([r[x] for r in rows], [r[y] * scale for r in rows], style, label=label)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    ax = axes[0]
    curve(ax, out["fm_batch"], "batch", "step_ms", "o-", "flow matching (width 128, depth 3)")
    label = "max. likelihood (width 64, depth 3, 20 steps)"
    curve(ax, out["mle_batch"], "batch", "step_ms", "s-", label)
    ax.set(
        xlabel="batch size (points per step)",
        ylabel="time per training step (ms)",
        title="training step time vs batch size",
    )
    ax.legend()
    ax = axes[1]
    curve(ax, out["fm_width"], "width", "step_ms", "o-", "FM training step (batch 1024), ms")
    label = "exact log_prob of 500 points (121 NFE), ms"
    curve(ax, out["log_prob_width"], "width", "time_s", "s-", label, scale=1e3)
    ax.set(xlabel="network width (depth 3)", ylabel="time (ms)", title="time vs network width")
    ax.legend()
    ax = axes[2]
    ns = [r["n"] for r in out["log_prob_n"]]
    ax.loglog(ns, [r["time_s"] for r in out["log_prob_n"]], "o-", label="trained FM CNF")
    ax.loglog(
        ns,
        [out["log_prob_n"][0]["time_s"] * n / ns[0] for n in ns],
        "k:",
        label="linear in n (from the first point)",
    )
    ax.set(
        xlabel="points evaluated",
        ylabel="time (s)",
        title="exact log_prob time vs number of points",
    )
    ax.legend()
    ticks = [[r["batch"] for r in out["fm_batch"]], [r["width"] for r in out["fm_width"]], ns]
    for a, xt in zip(axes, ticks, strict=True):
        a.set_xticks(xt)
        a.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(True, which="both", alpha=0.3)
    save_figure(fig, ROOT / "figures" / "benchmark_scaling.png", dpi=120)
