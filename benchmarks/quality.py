"""Section ``quality``: wall-clock time to a target exact hold-out NLL, with the public
:func:`flowlab.fit`; plot in ``figures/benchmark_time_to_quality.png``."""

from __future__ import annotations

import time

import jax
from _models import ROOT, build, fit_checking_nll

import flowlab
from flowlab import datasets

FM = dict(steps=20_000, width=256, depth=4, batch_size=1024, lr=2e-3, ema_decay=0.999)
MLE = dict(steps=3000, width=64, depth=3, batch_size=512, lr=1e-2, ema_decay=0.99)
QUALITY_RUNS = {
    # name: (objective, dataset, training data, hyperparameters, eval_every, time cap in s)
    "fm/checkerboard": ("fm", "checkerboard", "split", FM, 500, 300),
    "fm/checkerboard/fresh-data": ("fm", "checkerboard", "fresh", FM, 500, 300),
    "fm/gaussian_mixture": ("fm", "gaussian_mixture", "split", FM, 500, 300),
    "mle/checkerboard": ("mle", "checkerboard", "split", MLE, 100, 300),
    "mle/gaussian_mixture": ("mle", "gaussian_mixture", "split", MLE, 100, 300),
}
FAMILY = {"fm": "cnf_fm", "mle": "cnf_mle"}  # objective -> family of experiments/lab/registry.py
OBJECTIVE = {"fm": flowlab.FlowMatching, "mle": flowlab.MaximumLikelihood}


def quality_targets(dataset: str) -> float:
    if dataset == "checkerboard":
        return 3.60
    return datasets.entropy(dataset) + 0.10


def time_to_quality(name, quick):
    objective, dataset, regime, hp, eval_every, cap = QUALITY_RUNS[name]
    hp = dict(hp)
    if quick:
        hp["steps"] = 2000 if objective == "fm" else 200
        eval_every = max(eval_every // 2, 50)
        cap = 60
    key = jax.random.key(0)
    k_data, _, k_fit = jax.random.split(key, 3)
    train, holdout = datasets.split(dataset, k_data)
    if regime == "fresh":  # a fresh draw for (nearly) every point the run sees
        train = datasets.sample(dataset, jax.random.fold_in(k_data, 1), 1_000_000)
    target = quality_targets(dataset)
    model = build(FAMILY[objective], hp["width"], hp["depth"], train)
    loss = OBJECTIVE[objective]()
    t0 = time.perf_counter()
    _, points = fit_checking_nll(
        model,
        loss,
        train,
        holdout,
        key=k_fit,
        hp=hp,
        eval_every=eval_every,
        stop=lambda c: c["holdout_nll"] <= target or c["wall_s"] > cap,
    )
    nll_curve = [(c["step"], c["wall_s"], c["train_s"], c["holdout_nll"]) for c in points]
    total = time.perf_counter() - t0
    best = min(nll_curve, key=lambda r: r[3])
    reached = nll_curve[-1][3] <= target
    return {
        "objective": objective,
        "dataset": dataset,
        "training_data": regime,
        "target_nll": target,
        "true_entropy": datasets.entropy(dataset),
        "hyperparameters": hp,
        "eval_every": eval_every,
        "time_cap_s": cap,
        "reached": reached,
        "steps": nll_curve[-1][0] if reached else None,
        "wall_s": nll_curve[-1][1] if reached else None,
        "wall_s_without_nll_evals": nll_curve[-1][2] if reached else None,
        "best_nll": best[3],
        "best_at_step": best[0],
        "steps_run": nll_curve[-1][0],
        "total_s": total,
        "curve": [
            {"step": s, "wall_s": w, "train_s": tr, "holdout_nll": v} for s, w, tr, v in nll_curve
        ],
    }


def section_quality(quick: bool) -> dict:
    print("\n== time to quality: exact hold-out NLL (500 points) checked every K steps ==")
    out = {}
    for name in QUALITY_RUNS:
        r = time_to_quality(name, quick)
        out[name] = r
        if r["reached"]:
            msg = (
                f"reached {r['target_nll']:.3f} at step {r['steps']}: {r['wall_s']:.0f} s "
                f"({r['wall_s_without_nll_evals']:.0f} s without the NLL evaluations)"
            )
        else:
            msg = (
                f"NOT reached {r['target_nll']:.3f} in {r['steps_run']} steps / "
                f"{r['total_s']:.0f} s; best {r['best_nll']:.3f} at step {r['best_at_step']}"
            )
        print(f"   {name:28s} {msg}", flush=True)
    plot_quality(out)
    return out


def plot_quality(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlab.plotting import save_figure

    dsets = sorted({r["dataset"] for r in out.values()})
    fig, axes = plt.subplots(
        1, len(dsets), figsize=(6.5 * len(dsets), 4.4), constrained_layout=True, squeeze=False
    )
    for ax, ds in zip(axes[0], dsets, strict=True):
        target = None
        for r in out.values():
            if r["dataset"] != ds:
                continue
            target = r["target_nll"]
            ax.plot(
                [c["wall_s"] for c in r["curve"]],
                [c["holdout_nll"] for c in r["curve"]],
                "o-",
                ms=3,
                label=f"{r['objective'].upper()}, "
                + ("fresh samples" if r["training_data"] == "fresh" else "2000 training points"),
            )
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.3f} nats")
        ax.axhline(datasets.entropy(ds), color="grey", ls=":", lw=1, label="true entropy")
        ax.set(
            xlabel="wall-clock time since start of training (s)",
            ylabel="exact hold-out NLL (nats)",
            title=f"time to quality: {ds}",
        )
        lo = datasets.entropy(ds) - 0.05
        ax.set_ylim(lo, lo + (0.8 if ds == "checkerboard" else 1.0))
        ax.legend()
        ax.grid(True, alpha=0.3)
    save_figure(fig, ROOT / "figures" / "benchmark_time_to_quality.png", dpi=120)
