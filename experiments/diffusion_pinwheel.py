"""Train a score-based diffusion model on a 2D dataset (pinwheel by default) and compare samplers.

    python experiments/diffusion_pinwheel.py                    # VP SDE, every sampler
    python experiments/diffusion_pinwheel.py --sde ve --sampler pc
    python experiments/diffusion_pinwheel.py --dataset checkerboard --steps 30000
    python experiments/diffusion_pinwheel.py --smoke            # a few seconds, for CI

The noise-prediction network is trained by denoising score matching; the reported density
is the exact probability-flow ODE likelihood (adaptive Dopri5, exact Jacobian trace). Every
sampler draws the same number of samples: the PF-ODE (adaptive), Euler-Maruyama and
predictor-corrector at 100 and 1000 steps, ancestral DDPM at 100 and 1000 steps, and DDIM
(eta = 0) at 50 and 1000 steps.

Writes to --out (default results/diffusion_<dataset>_<sde>/): metrics.json (with a
``samplers`` table: NFE, time, KDE log-likelihood, Bhattacharyya and energy distance per
sampler), samples.npz (``samples`` from the PF-ODE plus one array per sampler), history.json,
model.eqx, checkpoint.eqx (re-running resumes from it) and four figures, which full runs also
copy to figures/.
"""

from __future__ import annotations

import math
import sys
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from lab import figures, pipeline, samplers
from lab.common import (
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    training_flags,
)
from lab.registry import script_defaults

from flowlab import plotting
from flowlab.evaluate import sample_metrics
from flowlab.sde import SDES

SMOKE_STEPS = {"em": (5,), "pc": (5,), "ddpm": (5,), "ddim": (10,)}
SAMPLER_STEPS = {"em": (100, 1000), "pc": (100, 1000), "ddpm": (100, 1000), "ddim": (50, 1000)}
STOCHASTIC = ("em", "pc", "ddpm", "ddim")  # names or aliases of lab.samplers (em: sde)


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument("--sde", choices=list(SDES), default="vp", help="forward SDE")
    p.add_argument(
        "--sampler",
        choices=["all", *STOCHASTIC],
        default="all",
        help="fixed-step sampler(s) to compare with the PF-ODE (always run); all: em, pc, "
        "ddpm (ancestral) and ddim (eta = 0)",
    )
    training_flags(p)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = script_defaults("diffusion", smoke=args.smoke)
    apply_flags(hp, args, ("steps", "width", "depth", "batch_size", "lr", "eval_every"))
    hp.update(sde=args.sde, objective="dsm")
    default_out(args, f"diffusion_{args.dataset}_{args.sde}")
    return args, hp


def sampler_runs(sampler: str, smoke: bool) -> list[tuple[str, str, int]]:
    """``(label, sampler name, steps)`` of every fixed-step sampler run."""
    names = STOCHASTIC if sampler == "all" else (sampler,)
    table = SMOKE_STEPS if smoke else SAMPLER_STEPS
    return [(f"{name}_{s}", name, s) for name in names for s in table[name]]


def sampler_table(r: pipeline.Run, runs) -> tuple[dict, dict]:
    """Samples and scores of the PF-ODE (the pipeline's samples) and of every fixed-step
    sampler run of ``runs``: ``(samples, table)`` keyed by run label."""
    m = r.metrics
    samples = {"ode": r.samples}
    table = {
        "ode": {
            "sampler": "ode",
            "steps": None,
            "nfe": m["sample_nfe"],
            "time_s": m["sample_time_s"],
            "finite": bool(np.isfinite(r.samples).all()),
            **sample_metrics(r.samples, r.holdout, r.train),
        }
    }
    for label, sampler_name, steps in runs[1:]:
        sampler = samplers.make(sampler_name, steps)
        n = pipeline.N_SAMPLES
        jax.block_until_ready(r.model.sample(r.keys["sample"], n, sampler=sampler))  # compile
        t0 = time.perf_counter()
        x, stats = r.model.sample_with_stats(r.keys["sample"], n, sampler=sampler)
        x = np.asarray(jax.block_until_ready(x))
        seconds = time.perf_counter() - t0
        samples[label] = x
        table[label] = {
            "sampler": sampler_name,
            "sampler_object": repr(sampler),
            "steps": steps,
            "nfe": int(stats.nfe),
            "time_s": seconds,
            "finite": bool(np.isfinite(x).all()),
            **sample_metrics(x, r.holdout, r.train),
        }
    return samples, table


def samples_figure(r: pipeline.Run, runs, samples: dict, table: dict, *, title: str):
    """One panel per sampler run: its samples over the true ones, with NFE and KDE score."""
    lo, hi = figures.limits(r.train)
    cols = min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 5.2 * rows), squeeze=False)
    for ax, (label, sampler_name, steps) in zip(axes.flat, runs, strict=False):
        sm = table[label]
        panel = samplers.label(sampler_name) + ("" if steps is None else f", {steps} steps")
        kde = sm["kde_loglik"]
        panel += f"\nNFE {sm['nfe']}, KDE loglik " + (
            f"{kde['mean']:.3f}" if kde is not None else sm["sample_diagnostic"][:20]
        )
        plotting.sample_overlay(
            np.where(np.isfinite(samples[label]), samples[label], np.nan),
            r.oracle,
            title=panel,
            labels=("model samples", "true samples"),
            lim=((lo[0], hi[0]), (lo[1], hi[1])),
            ax=ax,
        )
    for ax in list(axes.flat)[len(runs) :]:
        ax.set_axis_off()
    figures.titled(fig, title)
    return fig


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    r = pipeline.run("diffusion", args, hp)
    m, name = r.metrics, args.dataset.replace("_", " ")
    m.update(sde=args.sde, objective="dsm", eps=r.model.sde.eps)
    runs = [("ode", "ode", None), *sampler_runs(args.sampler, args.smoke)]
    samples, table = sampler_table(r, runs)
    m["samplers"] = table
    r.arrays = {k: v for k, v in samples.items() if k != "ode"}

    sde_label = {"vp": "VP", "subvp": "sub-VP", "ve": "VE"}[args.sde]
    r.figures["training"] = figures.training(
        r.history,
        title=f"Diffusion ({sde_label} SDE, DSM) on {name}",
        loss_label="denoising score-matching loss",
        metric_label="exact PF-ODE hold-out NLL (nats)",
        reference=m.get("true_entropy"),
        ema_weights=bool(hp["ema_decay"]),
    )
    r.figures["samples"] = samples_figure(
        r, runs, samples, table,
        title=f"Diffusion ({sde_label} SDE) on {name}: samplers vs true samples",
    )  # fmt: skip
    r.figures["density"] = figures.density(
        r.model,
        args.dataset,
        r.train,
        n_grid=40 if args.smoke else 120,
        title="PF-ODE",
        nll=m["holdout_nll"],
        entropy=m.get("true_entropy"),
    )
    r.figures["trajectories"] = figures.trajectories(
        r.model,
        r.keys["sample"],
        title=f"Diffusion ({sde_label}) on {name}: PF-ODE paths from the prior (t=1) to data",
    )
    written = pipeline.write(r, f"diffusion_{args.dataset}_{args.sde}")
    pipeline.report(r, written)
    print(f"[diffusion] {pipeline.N_SAMPLES} samples per sampler:")
    for label, sm in table.items():
        kde = sm["kde_loglik"]
        kde_txt = f"{kde['mean']:.4f} ± {kde['se']:.4f}" if kde is not None else "n/a"
        print(
            f"      {label:<10} NFE {sm['nfe']:>5}  {sm['time_s'] * 1e3:8.1f} ms  KDE {kde_txt}  "
            f"energy distance {sm['energy_distance']:.4f}  diagnostic {sm['sample_diagnostic']}"
        )
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
