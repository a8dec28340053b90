"""Train a discrete-time DDPM (Ho et al. 2020) on a 2D dataset and report its variational bound.

    python experiments/ddpm_pinwheel.py                   # T = 1000, L_simple, pinwheel
    python experiments/ddpm_pinwheel.py --dataset checkerboard
    python experiments/ddpm_pinwheel.py --smoke           # a few seconds, for CI

The eps-prediction network is trained with L_simple; the hold-out likelihood is the DDPM
variational bound (a lower bound on log p, Monte Carlo over the T terms, Gaussian decoder
with variance beta_1), reported beside the exact probability-flow NLL of the continuous VP
model when `experiments/diffusion_pinwheel.py` has been run on the same dataset and seed.
Samples: ancestral (all T steps) and DDIM (eta = 0) with 50 and 1000 steps.

Writes to --out (default results/ddpm_<dataset>/): metrics.json (``holdout_neg_bound``, its
standard error, ``bound_name``, a ``samplers`` table), samples.npz, history.json, model.eqx,
checkpoint.eqx and figures (training curves with the bound, sampler overlays).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from lab import figures, pipeline, samplers
from lab.common import (
    ROOT,
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    positive_float,
    positive_int,
)
from lab.registry import script_defaults

from flowlab import plotting
from flowlab.evaluate import sample_metrics


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--num-diffusion-steps", type=positive_int, default=None, help="T (default 1000)"
    )
    p.add_argument("--width", type=positive_int, default=None)
    p.add_argument("--depth", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = script_defaults("ddpm", smoke=args.smoke)
    apply_flags(hp, args, ("steps", "num_diffusion_steps", "width", "depth", "lr"))
    default_out(args, f"ddpm_{args.dataset}")
    return args, hp


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    r = pipeline.run("ddpm", args, hp)
    m, name = r.metrics, args.dataset.replace("_", " ")
    T = r.model.num_steps
    runs = [("ancestral", samplers.make("ddpm"))] + [
        (f"ddim_{s}", samplers.make("ddim", s))
        for s in ((5, 20) if args.smoke else (50, min(1000, T)))
    ]
    table, samples = {}, {}
    for label, sampler in runs:
        jax.block_until_ready(r.model.sample(r.keys["sample"], pipeline.N_SAMPLES, sampler=sampler))
        t0 = time.perf_counter()
        x, stats = r.model.sample_with_stats(r.keys["sample"], pipeline.N_SAMPLES, sampler=sampler)
        x = np.asarray(jax.block_until_ready(x))
        samples[label] = x
        table[label] = {
            "sampler": repr(sampler),
            "nfe": int(stats.nfe),
            "time_s": time.perf_counter() - t0,
            **sample_metrics(x, r.holdout, r.train),
        }
    m["samplers"] = table
    r.arrays = {k: v for k, v in samples.items() if k != "ancestral"}
    vp = ROOT / "results" / f"diffusion_{args.dataset}_vp" / "metrics.json"
    if vp.exists():
        vp_m = json.loads(vp.read_text())
        if vp_m.get("seed") == args.seed:
            m["vp_pf_ode_holdout_nll"] = vp_m.get("holdout_nll")
            m["vp_pf_ode_holdout_nll_se"] = vp_m.get("holdout_nll_se")

    r.figures["training"] = plotting.training_curves(
        r.history,
        title=f"DDPM (T = {T}, L_simple) on {name}",
        loss_label="L_simple (noise-prediction MSE)",
        metric="holdout_neg_bound",
        metric_label="hold-out -(variational bound) (nats)",
        reference=m.get("true_entropy"),
        holdout_label="hold-out (EMA weights)" if hp["ema_decay"] else "hold-out",
    )
    lo, hi = figures.limits(r.train)
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 5.2), squeeze=False)
    for ax, (label, _sampler) in zip(axes.flat, runs, strict=True):
        sm = table[label]
        kde = sm["kde_loglik"]
        title = ("ancestral" if label == "ancestral" else "DDIM (eta = 0)") + f", NFE {sm['nfe']}"
        title += "\nKDE loglik " + (f"{kde['mean']:.3f}" if kde else sm["sample_diagnostic"][:20])
        plotting.sample_overlay(
            np.where(np.isfinite(samples[label]), samples[label], np.nan),
            r.oracle,
            title=title,
            labels=("DDPM samples", "true samples"),
            lim=((lo[0], hi[0]), (lo[1], hi[1])),
            ax=ax,
        )
    figures.titled(fig, f"DDPM (T = {T}) on {name}: samplers vs true samples")
    r.figures["samples"] = fig
    written = pipeline.write(r, f"ddpm_{args.dataset}")
    pipeline.report(r, written)
    if "vp_pf_ode_holdout_nll" in m:
        print(
            f"[ddpm] beside it: the continuous VP model's exact PF-ODE hold-out NLL "
            f"{m['vp_pf_ode_holdout_nll']:.4f} ± {m['vp_pf_ode_holdout_nll_se']:.4f} nats"
        )
    for label, sm in table.items():
        kde = sm["kde_loglik"]
        print(
            f"      {label:<10} NFE {sm['nfe']:>5}  {sm['time_s'] * 1e3:8.1f} ms  KDE "
            + (f"{kde['mean']:.4f}" if kde else "n/a")
            + f"  energy distance {sm['energy_distance']:.4f}"
        )
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
