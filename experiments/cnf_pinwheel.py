"""Train a CNF on a 2D dataset (pinwheel by default) and report its exact likelihood.

    python experiments/cnf_pinwheel.py                      # flow matching on pinwheel
    python experiments/cnf_pinwheel.py --objective mle      # maximum likelihood (FFJORD)
    python experiments/cnf_pinwheel.py --dataset checkerboard --steps 30000
    python experiments/cnf_pinwheel.py --smoke              # a few seconds, for CI

Writes to --out (default results/cnf_<dataset>_<objective>/): metrics.json, samples.npz,
history.json, model.eqx, checkpoint.eqx (re-running resumes from it) and four figures, which
full runs also copy to figures/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from common import (
    ROOT,
    base_parser,
    check_dataset,
    machine,
    save_figures,
    timed,
    write_json,
    write_samples,
)

import flowlab
from flowlab import CNF, Standardize, datasets, plotting
from flowlab.metrics import bhattacharyya_distance, kde_log_likelihood, mean_and_se
from flowlab.nn import MLPVectorField
from flowlab.train import FlowMatching, MaximumLikelihood, default_optimizer, fit

# Defaults per objective: chosen so that the default run finishes within 5 minutes on two
# CPU cores (see README for the measured numbers).
DEFAULTS = {
    "fm": dict(
        steps=20_000, width=256, depth=4, batch_size=1024, lr=2e-3, ema_decay=0.999, eval_every=1000
    ),
    "mle": dict(
        steps=1_200, width=64, depth=3, batch_size=512, lr=3e-3, ema_decay=0.99, eval_every=200
    ),
}
SMOKE = dict(steps=40, width=32, depth=2, batch_size=128, eval_every=20)
N_SAMPLES = 2000  # model samples drawn for plots, KDE and samples.npz (same n as training)


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--objective",
        choices=["fm", "mle"],
        default="fm",
        help="fm: conditional flow matching; mle: maximum likelihood (FFJORD)",
    )
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--eval-every", type=int, default=None)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = dict(DEFAULTS[args.objective])
    if args.smoke:
        hp.update(SMOKE)
    for name in ("steps", "width", "depth", "batch_size", "lr", "eval_every"):
        if getattr(args, name) is not None:
            hp[name] = getattr(args, name)
    if args.out is None:
        args.out = ROOT / "results" / f"cnf_{args.dataset}_{args.objective}"
        if args.smoke:
            args.out = args.out.with_name(args.out.name + "_smoke")
    return args, hp


def build_model(hp: dict) -> CNF:
    """The CNF of a run, from its hyperparameters (weights from the seed)."""
    vf = MLPVectorField(
        2,
        width=hp["width"],
        depth=hp["depth"],
        activation=hp["activation"],
        key=jax.random.fold_in(jax.random.key(hp["seed"]), 1),
    )
    std = Standardize(
        jnp.asarray(hp["standardize_loc"], jnp.float32),
        jnp.asarray(hp["standardize_scale"], jnp.float32),
    )
    return CNF(vf, standardize=std)


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.eqx"
    if args.fresh and ckpt.exists():
        ckpt.unlink()

    key = jax.random.key(args.seed)
    k_data, _, k_train, k_sample, k_oracle = jax.random.split(key, 5)
    train, holdout = datasets.split(args.dataset, k_data)
    std = Standardize.fit(train)
    hp.update(
        dataset=args.dataset,
        objective=args.objective,
        seed=args.seed,
        activation="silu",
        n_train=int(train.shape[0]),
        n_holdout=int(holdout.shape[0]),
        standardize_loc=np.asarray(std.loc).tolist(),
        standardize_scale=np.asarray(std.scale).tolist(),
    )
    model = build_model(hp)
    loss = FlowMatching() if args.objective == "fm" else MaximumLikelihood()
    print(
        f"[cnf] {args.dataset}: {hp['n_train']} train / {hp['n_holdout']} hold-out points; "
        f"objective {args.objective}; {hp['steps']} steps of batch {hp['batch_size']}; "
        f"MLP width {hp['width']} depth {hp['depth']} "
        f"({flowlab.nn.num_parameters(model.vector_field)} parameters)"
    )

    def holdout_nll(m):
        return -float(jnp.mean(m.log_prob(holdout)))

    t0 = time.perf_counter()
    model, history = fit(
        model,
        loss,
        train,
        holdout,
        key=k_train,
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=default_optimizer(hp["steps"], hp["lr"]),
        eval_every=hp["eval_every"],
        ema_decay=hp["ema_decay"],
        metrics={"holdout_nll": holdout_nll},
        checkpoint=ckpt,
        hyperparameters=hp,
        progress=not args.no_progress,
    )
    fit_call_s = time.perf_counter() - t0
    history.save(out / "history.json")
    flowlab.save_model(out / "model.eqx", model, hp)

    # -- exact likelihood and sampling, timed after compilation -----------------------------
    (lp, lp_stats), lp_time = timed(model.log_prob_with_stats, holdout)
    nll_mean, nll_se = mean_and_se(-np.asarray(lp))
    (samples, s_stats), s_time = timed(model.sample_with_stats, k_sample, N_SAMPLES)
    samples = np.asarray(samples)
    oracle = np.asarray(datasets.sample(args.dataset, k_oracle, N_SAMPLES))

    metrics = {
        "dataset": args.dataset,
        "objective": args.objective,
        "seed": args.seed,
        "steps": hp["steps"],
        "holdout_nll": nll_mean,
        "holdout_nll_se": nll_se,
        "holdout_nll_estimator": "exact: adaptive Tsit5 (rtol=atol=1e-5), exact Jacobian trace",
        "log_prob_nfe": lp_stats.as_dict()["nfe"],
        "log_prob_steps": lp_stats.as_dict()["num_steps"],
        "log_prob_time_s": lp_time,
        "sample_nfe": s_stats.as_dict()["nfe"],
        "sample_time_s": s_time,
        "n_samples": N_SAMPLES,
        "train_time_s": history.wall_time[-1],
        "train_steps_per_s": hp["steps"] / history.wall_time[-1],
        "fit_call_s": fit_call_s,
        "kde_loglik": kde_log_likelihood(samples, holdout).as_dict(),
        "kde_loglik_oracle": kde_log_likelihood(oracle, holdout).as_dict(),
        "bhattacharyya": bhattacharyya_distance(samples, np.asarray(train)),
        "bhattacharyya_oracle": bhattacharyya_distance(oracle, np.asarray(train)),
        "hyperparameters": hp,
        "machine": machine(),
    }
    if datasets.has_entropy(args.dataset):
        h, h_se = datasets.entropy_with_error(args.dataset)
        metrics.update(true_entropy=h, true_entropy_se=h_se, nll_gap_to_entropy=nll_mean - h)
    if datasets.has_log_prob(args.dataset):
        true_lp = datasets.log_prob(args.dataset, np.asarray(holdout))
        metrics["oracle_holdout_nll"] = float(-np.mean(true_lp))
        # Paired Monte Carlo estimate of KL(p_data || p_model) on the hold-out points: the
        # same gap as NLL - entropy, without the sampling noise of the hold-out set.
        kl, kl_se = mean_and_se(true_lp - np.asarray(lp, np.float64))
        metrics.update(kl_data_to_model=kl, kl_data_to_model_se=kl_se)
    write_json(out / "metrics.json", metrics)
    write_samples(out / "samples.npz", samples)

    # -- figures -----------------------------------------------------------------------------
    name = args.dataset.replace("_", " ")
    obj = {"fm": "flow matching", "mle": "maximum likelihood"}[args.objective]
    figs = {}
    figs["training"] = plotting.training_curves(
        history,
        title=f"CNF ({obj}) on {name}",
        loss_label="flow-matching loss" if args.objective == "fm" else "NLL (nats)",
        reference=metrics.get("true_entropy"),
        holdout_label="hold-out (EMA weights)" if hp["ema_decay"] else "hold-out",
    )
    tr = np.asarray(train)
    lo = np.percentile(tr, 0.5, axis=0) - 0.25 * np.ptp(tr, axis=0)
    hi = np.percentile(tr, 99.5, axis=0) + 0.25 * np.ptp(tr, axis=0)
    lim = ((lo[0], hi[0]), (lo[1], hi[1]))
    figs["samples"] = plotting.sample_overlay(
        samples,
        oracle,
        title=f"CNF ({obj}) samples vs true {name} samples",
        labels=("CNF samples", "true samples"),
        lim=lim,
    )
    n_grid = 40 if args.smoke else 160
    xs, ys, pts = plotting.grid(lo, hi, n_grid)
    model_lp = np.asarray(model.log_prob(pts))
    panels = 2 if datasets.has_log_prob(args.dataset) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.2), squeeze=False)
    vmax = float(np.max(model_lp))
    if panels == 2:
        true_lp_grid = datasets.log_prob(args.dataset, pts)
        vmax = max(vmax, float(np.max(true_lp_grid)))
    plotting.density_heatmap(
        xs,
        ys,
        model_lp,
        ax=axes[0, 0],
        vmax=vmax,
        log=True,
        title=f"CNF exact log-density (hold-out NLL {nll_mean:.3f})",
    )
    if panels == 2:
        title = "true log-density"
        if "true_entropy" in metrics:
            title += f" (entropy {metrics['true_entropy']:.3f})"
        plotting.density_heatmap(
            xs, ys, true_lp_grid, ax=axes[0, 1], title=title, vmax=vmax, log=True
        )
    fig.suptitle(f"{name}: log-density on a {n_grid}x{n_grid} grid (8 nats of range)")
    fig.tight_layout()
    figs["density"] = fig
    ts, paths = model.trajectories(k_sample, 300, num_times=60)
    figs["trajectories"] = plotting.trajectories(
        ts, paths, title=f"CNF ({obj}) on {name}: ODE paths from N(0, I) to data"
    )
    figures_dir = None if args.smoke else args.figures_dir
    written = save_figures(figs, out, figures_dir, f"cnf_{args.dataset}_{args.objective}")

    # -- report ------------------------------------------------------------------------------
    print(
        f"[cnf] trained {hp['steps']} steps in {metrics['train_time_s']:.1f} s "
        f"({metrics['train_steps_per_s']:.0f} steps/s, compile included)"
    )
    line = f"[cnf] exact hold-out NLL {nll_mean:.4f} ± {nll_se:.4f} nats"
    if "true_entropy" in metrics:
        line += (
            f"; true entropy {metrics['true_entropy']:.4f} "
            f"(gap {metrics['nll_gap_to_entropy']:+.4f})"
        )
    print(line)
    if "kl_data_to_model" in metrics:
        print(
            f"[cnf] true density on the same hold-out points: NLL "
            f"{metrics['oracle_holdout_nll']:.4f}; paired KL(data || model) estimate "
            f"{metrics['kl_data_to_model']:.4f} ± {metrics['kl_data_to_model_se']:.4f} nats"
        )
    print(
        f"[cnf] log_prob of {holdout.shape[0]} points: {lp_time * 1e3:.1f} ms, "
        f"{metrics['log_prob_nfe']} NFE; {N_SAMPLES} samples: {s_time * 1e3:.1f} ms, "
        f"{metrics['sample_nfe']} NFE"
    )
    kde, kde_o = metrics["kde_loglik"], metrics["kde_loglik_oracle"]
    print(
        f"[cnf] KDE log-likelihood on hold-out: model samples {kde['mean']:.4f} ± "
        f"{kde['se']:.4f}, true samples (oracle) {kde_o['mean']:.4f} ± {kde_o['se']:.4f}"
    )
    print(
        f"[cnf] Bhattacharyya distance to training data: model {metrics['bhattacharyya']:.4f}"
        f", oracle {metrics['bhattacharyya_oracle']:.4f}"
    )
    print(f"[cnf] outputs in {out}" + (f" and {figures_dir}" if figures_dir else ""))
    for p in written:
        print(f"      {p}")
    return metrics


if __name__ == "__main__":
    sys.exit(main() and 0)
