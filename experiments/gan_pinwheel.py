"""Train a GAN (non-saturating loss, optional R1 penalty) on a 2D dataset; score its samples.

    python experiments/gan_pinwheel.py                       # pinwheel, 10k steps
    python experiments/gan_pinwheel.py --dataset checkerboard --r1 1.0
    python experiments/gan_pinwheel.py --smoke               # a few seconds, for CI

Generator (latent N(0, I_k) -> R^2) and discriminator (R^2 -> logit) are MLPs trained by the
one flowlab fit loop: one loss whose gradient is the discriminator's loss for the
discriminator and the non-saturating generator loss for the generator (stop_gradient on the
other player), one optimiser step for both, a learning rate per player (TwoPlayerAdam).

A GAN has no likelihood (kind *none*: ``holdout_nll`` is null). Its samples are scored like
every family's: KDE log-likelihood of the hold-out set, Bhattacharyya distance, W2, energy
distance and MMD, each beside the same score of fresh true samples (the oracle); the energy
distance also against its two-sample noise floor. ``flowlab.gan.sample_diagnostics`` flags
a collapsed generator (then no KDE score is written: a ``sample_diagnostic`` says why) and
measures mode coverage on a grid.

Writes to --out (default results/gan_<dataset>/): metrics.json, samples.npz, history.json,
model.eqx, checkpoint.eqx (re-running resumes from it) and three figures (the players' loss
curves with the equilibrium lines, sample overlay, the discriminator on a grid), which full
runs also copy to figures/.
"""

from __future__ import annotations

import sys

import jax
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from lab import figures, pipeline
from lab.common import apply_flags, base_parser, check_dataset, default_out, machine, timed
from lab.evaluate import likelihood_metrics, reference_metrics, sample_metrics
from lab.registry import FAMILIES, SMOKE, build_optimizer
from lab.registry import build_model as build_model  # flowlab.load_model(path, build_model)

from flowlab import datasets, plotting
from flowlab.evaluate import diagnostics as sample_diagnostics
from flowlab.gan import EQUILIBRIUM_D_LOSS, EQUILIBRIUM_G_LOSS, GAN
from flowlab.metrics import energy_distance

# The factory's GAN defaults (steps=10k, latent 8, MLPs 128x3 leaky ReLU, batch 256, both
# players' rates 1e-3 with b1=0.5, R1 0.1): on pinwheel (seed 0) the energy distance to fresh
# true samples is within the two-sample noise floor; 1-3 minutes on two CPU cores.
DEFAULTS = FAMILIES["gan"].defaults
FLOOR_PAIRS = 8  # independent pairs of true sample sets for the energy-distance noise floor
TARGET_FLOOR_MULTIPLE = 5.0  # the target: energy distance within 5x the floor


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument("--latent-size", type=int, default=None, help="generator latent dimension")
    p.add_argument("--width", type=int, default=None, help="hidden width of both players")
    p.add_argument("--depth", type=int, default=None, help="hidden layers of both players")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--generator-lr", type=float, default=None, help="generator peak rate")
    p.add_argument("--discriminator-lr", type=float, default=None, help="discriminator rate")
    p.add_argument("--r1", type=float, default=None, help="R1 penalty weight (0: none)")
    p.add_argument("--eval-every", type=int, default=None)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = dict(DEFAULTS)
    if args.smoke:
        hp.update(SMOKE)
    apply_flags(
        hp,
        args,
        (
            "steps",
            "latent_size",
            "width",
            "depth",
            "batch_size",
            "generator_lr",
            "discriminator_lr",
            "r1",
            "eval_every",
        ),
    )
    default_out(args, f"gan_{args.dataset}")
    return args, hp


def energy_floor(dataset: str, n: int, *, key) -> dict:
    """The energy distance between independent true sample sets of size ``n``: its
    root-mean-square over ``FLOOR_PAIRS`` pairs (the scale of a perfect model's score; one
    pair alone is as noisy as the number it calibrates) and the single first pair."""
    values = []
    for i in range(FLOOR_PAIRS):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        a = np.asarray(datasets.sample(dataset, k1, n))
        b = np.asarray(datasets.sample(dataset, k2, n))
        values.append(energy_distance(a, b))
    values = np.asarray(values)
    return {
        "energy_noise_floor": float(np.sqrt(np.mean(values**2))),
        "energy_noise_floor_single_pair": float(abs(values[0])),
        "energy_noise_floor_pairs": int(FLOOR_PAIRS),
    }


def gan_sample_metrics(samples, oracle, holdout, train, fresh) -> dict:
    """Every sample score of the GAN's samples and of the oracle (fresh true samples), and
    the collapse / mode-coverage diagnostics against the oracle (those of ``fresh``, a second
    independent true sample set, are their noise floor). A collapsed or non-finite sample
    set gets a ``sample_diagnostic`` saying so and ``None`` for the KDE scores, never a
    number like -9e30."""
    samples, oracle = np.asarray(samples), np.asarray(oracle)
    diag = sample_diagnostics(samples, oracle)
    sm = sample_metrics(samples, holdout, train, full=True)
    om = sample_metrics(oracle, holdout, train, full=True)
    if diag["status"] != "ok":
        sm["sample_diagnostic"] = diag["status"]
    finite = np.isfinite(samples).all(axis=1)
    out = {
        **sm,
        "energy_distance_to_true": (
            energy_distance(samples[finite], oracle) if finite.sum() >= 2 else None
        ),
        "mode_diagnostics": diag,
        "mode_diagnostics_oracle": sample_diagnostics(np.asarray(fresh), oracle),
    }
    for name in ("kde_loglik", "bhattacharyya", "energy_distance", "w2", "mmd"):
        out[f"{name}_oracle"] = om.get(name)
    return out


def loss_curves(history, *, title: str) -> plt.Figure:
    """The two players' losses against gradient steps (per step faint, EMA bold, hold-out
    dots) with their equilibrium values, and the discriminator's mean output on real and
    generated points.

    Left: the game's value $V(D, G) = \\mathbb{E}\\log D(x) + \\mathbb{E}\\log(1 - D(G(z)))
    = -L_D$ (the course's convention), $-2\\log 2$ at the equilibrium. Middle: the
    non-saturating generator loss $-\\mathbb{E}\\log D(G(z))$, $\\log 2$ there. Right:
    $D(x)$ on real and on generated points, both $1/2$ there."""
    h = history.to_dict() if hasattr(history, "to_dict") else history
    aux, met, steps_eval = h["step_aux"], h["metrics"], np.asarray(h["step"])
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    panels = [
        (
            axes[0],
            -np.asarray(aux["d_loss"]),
            -np.asarray(met.get("holdout_d_loss", [])),
            -EQUILIBRIUM_D_LOSS,
            "$-2\\log 2$",
            "value $V(D,G) = -L_D$ (nats)",
            "discriminator: $V(D,G) = E\\log D(x) + E\\log(1-D(G(z)))$",
        ),
        (
            axes[1],
            np.asarray(aux["g_loss"]),
            np.asarray(met.get("holdout_g_loss", [])),
            EQUILIBRIUM_G_LOSS,
            "$\\log 2$",
            "generator loss $L_G$ (nats)",
            "generator: non-saturating $L_G = -E\\log D(G(z))$",
        ),
    ]
    for ax, train, held, ref, ref_label, ylabel, panel_title in panels:
        x = np.arange(1, train.size + 1)
        ax.plot(x, train, color=plotting.DATA_COLOUR, alpha=0.2, lw=0.5, label="train (per step)")
        ax.plot(x, plotting.ema(train, 0.99), color=plotting.DATA_COLOUR, lw=1.8,
                label="train (EMA 0.99)")  # fmt: skip
        if held.size:
            ax.plot(steps_eval, held, "o-", color=plotting.HOLDOUT_COLOUR, ms=3.5, lw=1.3,
                    label="hold-out")  # fmt: skip
        ax.axhline(ref, color="k", ls="--", lw=1.2, label=f"equilibrium {ref_label} = {ref:.3f}")
        lo, hi = np.percentile(np.r_[train, held, ref], [1, 99])
        pad = 0.15 * (hi - lo) + 1e-3
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("gradient step")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10)
        ax.legend(loc="best", fontsize=8)
    ax = axes[2]
    for name, colour, label in (
        ("d_real", plotting.DATA_COLOUR, "real data"),
        ("d_fake", plotting.MODEL_COLOUR, "generated"),
    ):
        v = np.asarray(aux[name])
        x = np.arange(1, v.size + 1)
        ax.plot(x, plotting.ema(v, 0.99), color=colour, lw=1.8, label=f"{label}, train (EMA)")
        if met.get(f"holdout_{name}"):
            ax.plot(steps_eval, met[f"holdout_{name}"], "o", color=colour, ms=3.5,
                    label=f"{label}, hold-out")  # fmt: skip
    ax.axhline(0.5, color="k", ls="--", lw=1.2, label="equilibrium 1/2")
    ax.set_ylim(0, 1)
    ax.set_xlabel("gradient step")
    ax.set_ylabel("mean $D(x)$ = P(real)")
    ax.set_title("discriminator's output on real and generated points", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def discriminator_map(model: GAN, train, samples, *, title: str, n_grid: int) -> plt.Figure:
    """$D(x) = \\sigma(\\text{logit})$ on a grid around the data, with model samples (the
    colour scale is centred on 1/2, where an equilibrium discriminator sits everywhere)."""
    lo, hi = figures.limits(train)
    xs, ys, pts = plotting.grid(lo, hi, n_grid)
    prob = np.asarray(model.discriminate(pts)).reshape(n_grid, n_grid)
    with sns.axes_style("white"):
        fig, ax = plt.subplots(figsize=(6.4, 5.4))
    # a colour scale symmetric about 1/2 (the equilibrium), as wide as D's excursions
    half = max(float(np.max(np.abs(prob - 0.5))), 0.01)
    im = ax.imshow(prob, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), cmap="RdBu_r",
                   vmin=0.5 - half, vmax=0.5 + half, aspect="equal",
                   interpolation="nearest")  # fmt: skip
    fig.colorbar(im, ax=ax, label="$D(x)$ = P(real)", shrink=0.85)
    s = np.asarray(samples)
    s = s[np.isfinite(s).all(axis=1)]
    ax.scatter(s[:, 0], s[:, 1], s=1, color="k", alpha=0.35, label="GAN samples")
    ax.legend(loc="upper right", markerscale=4, framealpha=0.7)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    train, holdout, keys, hp = pipeline.prepare("gan", args, hp)
    # the factory's GAN, NonSaturatingGAN(r1) and TwoPlayerAdam, through the one fit loop
    # (resuming from --out/checkpoint.eqx; --fresh starts over)
    model, history, fit_call_s = pipeline.train_model("gan", args, hp, train, holdout, keys)

    lik = likelihood_metrics(model, holdout, key=keys["bound"])
    (samples, stats), sample_s = timed(
        model.sample_with_stats, keys["sample"], pipeline.N_SAMPLES, repeats=3
    )
    samples = np.asarray(samples)
    oracle = np.asarray(datasets.sample(args.dataset, keys["oracle"], pipeline.N_SAMPLES))
    train_np, holdout_np = np.asarray(train), np.asarray(holdout)
    fresh = np.asarray(
        datasets.sample(args.dataset, jax.random.fold_in(keys["oracle"], 2), pipeline.N_SAMPLES)
    )
    sm = gan_sample_metrics(samples, oracle, holdout_np, train_np, fresh)
    floor = energy_floor(
        args.dataset, pipeline.N_SAMPLES, key=jax.random.fold_in(keys["oracle"], 1)
    )
    ed = sm["energy_distance_to_true"]
    ratio = None if ed is None else ed / floor["energy_noise_floor"]
    final = {k: v[-1] for k, v in history.metrics.items() if v}
    metrics = {
        "family": "gan",
        "dataset": args.dataset,
        "seed": args.seed,
        "steps": hp["steps"],
        **lik,
        "holdout_nll_note": "a GAN has no likelihood: compare by the sample metrics",
        "sample_nfe": int(stats.nfe),
        "sample_time_s": sample_s,
        "n_samples": pipeline.N_SAMPLES,
        "train_time_s": history.wall_time[-1],
        "train_steps_per_s": hp["steps"] / history.wall_time[-1],
        "fit_call_s": fit_call_s,
        **sm,
        **floor,
        "energy_distance_over_floor": ratio,
        "energy_target_met": None if ratio is None else bool(ratio <= TARGET_FLOOR_MULTIPLE),
        "energy_target": f"energy distance to true samples <= {TARGET_FLOOR_MULTIPLE:g} x floor",
        "final_holdout": final,
        "equilibrium": {
            "d_loss": EQUILIBRIUM_D_LOSS,
            "value_V": -EQUILIBRIUM_D_LOSS,
            "g_loss": EQUILIBRIUM_G_LOSS,
            "d_real": 0.5,
            "d_fake": 0.5,
        },
        "loss_convention": (
            "d_loss = L_D = -E log D(x) - E log(1 - D(G(z))) (binary cross-entropy, 2 log 2 "
            "at the equilibrium); the curve shows the game's value V(D, G) = -L_D with the "
            "course's -2 log 2 line; g_loss = -E log D(G(z)) (non-saturating, log 2 there); "
            "the recorded train/hold-out 'loss' is L_D + L_G (+ R1), the one scalar the loop "
            "differentiates"
        ),
        "metric_notes": (
            "kde_loglik: Gaussian KDE (Scott) of 2000 samples scored on the 500 hold-out "
            "points; bhattacharyya, energy_distance, w2 (1000 points each), mmd: against the "
            "2000 training points; energy_distance_to_true: against 2000 fresh true samples "
            "(oracle), compared with energy_noise_floor"
        ),
        **reference_metrics(args.dataset, holdout_np),
        "hyperparameters": hp,
        "optimizer": build_optimizer(hp).describe(),
        "machine": machine(),
    }
    r = pipeline.Run(
        "gan", args, hp, model, history, train_np, holdout_np, oracle, samples, keys, metrics
    )
    name = args.dataset.replace("_", " ")
    r.figures["training"] = loss_curves(
        history,
        title=f"GAN (non-saturating, R1 {hp['r1']}) on {name}: the two players' losses",
    )
    kde = sm.get("kde_loglik")
    r.figures["samples"] = figures.overlay(
        samples,
        oracle,
        train_np,
        title=f"GAN samples vs true {name} samples\n"
        + (f"KDE loglik {kde['mean']:.3f}, " if kde else f"{sm['sample_diagnostic'][:60]}, ")
        + (f"energy distance {ed:.2g} (floor {floor['energy_noise_floor']:.2g})" if ed else ""),
        label="GAN samples",
    )
    r.figures["discriminator"] = discriminator_map(
        model,
        train_np,
        samples,
        title=f"discriminator D(x) on {name}, with GAN samples",
        n_grid=40 if args.smoke else 160,
    )
    written = pipeline.write(r, f"gan_{args.dataset}")

    pipeline.report(r, written)
    diag = sm["mode_diagnostics"]
    print(
        f"[gan] sample diagnostic: {diag['status']}; coverage {diag['coverage']:.3f} "
        f"(oracle {sm['mode_diagnostics_oracle']['coverage']:.3f}), precision "
        f"{diag['precision']:.3f}, spread ratio {diag['std_ratio']:.3f}"
    )
    if ed is not None:
        print(
            f"[gan] energy distance to fresh true samples {ed:.3g}; noise floor (RMS over "
            f"{FLOOR_PAIRS} true-true pairs) {floor['energy_noise_floor']:.3g}: ratio "
            f"{ratio:.2f} (target <= {TARGET_FLOOR_MULTIPLE:g})"
        )
    if sm.get("w2") is not None:
        print(
            f"[gan] W2 {sm['w2']:.4f} (oracle {sm['w2_oracle']:.4f}), MMD {sm['mmd']:.2e} "
            f"(oracle {sm['mmd_oracle']:.2e})"
        )
    print(
        "[gan] final hold-out: "
        + ", ".join(f"{k} {v:.4f}" for k, v in final.items())
        + f" (equilibrium d_loss {EQUILIBRIUM_D_LOSS:.4f}, g_loss {EQUILIBRIUM_G_LOSS:.4f})"
    )
    return metrics


if __name__ == "__main__":
    sys.exit(main() and 0)
