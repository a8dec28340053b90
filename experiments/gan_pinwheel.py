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
distance also against its two-sample noise floor. ``flowlab.evaluate.diagnostics`` flags
a collapsed generator (then no KDE score is written: a ``sample_diagnostic`` says why) and
measures mode coverage on a grid.

Writes to --out (default results/gan_<dataset>/): metrics.json, samples.npz, history.json,
model.eqx, checkpoint.eqx (re-running resumes from it) and three figures (the players' loss
curves with the equilibrium lines, sample overlay, the discriminator on a grid), which full
runs also copy to figures/.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from lab import figures, pipeline
from lab.common import (
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    nonnegative_float,
    positive_int,
)
from lab.registry import build_optimizer, script_defaults

from flowlab import plotting
from flowlab.gan import GAN
from flowlab.objectives import EQUILIBRIUM_D_LOSS, EQUILIBRIUM_G_LOSS

# The registry's GAN defaults (steps=10k, latent 8, MLPs 128x3 leaky ReLU, batch 256, both
# players' rates 1e-3 with b1=0.5, R1 0.1): on pinwheel (seed 0) the energy distance to fresh
# true samples is within the two-sample noise floor (flowlab.evaluate.noise_floor: RMS over
# 8 pairs of true sample sets); 1-3 minutes on two CPU cores.
TARGET_FLOOR_MULTIPLE = 5.0  # the target: energy distance within 5x the floor


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--latent-size", type=positive_int, default=None, help="generator latent dimension"
    )
    p.add_argument("--width", type=positive_int, default=None, help="hidden width of both players")
    p.add_argument("--depth", type=positive_int, default=None, help="hidden layers of both players")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument(
        "--generator-lr", type=nonnegative_float, default=None, help="generator peak rate"
    )
    p.add_argument(
        "--discriminator-lr", type=nonnegative_float, default=None, help="discriminator rate"
    )
    p.add_argument("--r1", type=nonnegative_float, default=None, help="R1 penalty weight (0: none)")
    p.add_argument("--eval-every", type=positive_int, default=None)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = script_defaults("gan", smoke=args.smoke)
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


def collapse_flags(metrics: dict) -> dict:
    """The GAN's reading of :func:`flowlab.evaluate.diagnostics`: a collapsed, low-coverage
    or mode-dropping generator gets a ``sample_diagnostic`` saying so (a collapsed one has
    no KDE score: never a number like -9e30); the diagnostics of the samples and of a
    second true sample set (their noise floor) also under their earlier names."""
    diag = metrics["diagnostics"]
    out = {
        "mode_diagnostics": diag,
        "mode_diagnostics_oracle": metrics["diagnostics_oracle"],
    }
    if diag["status"] != "ok":
        out["sample_diagnostic"] = diag["status"]
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


NOTES = {
    "holdout_nll_note": "a GAN has no likelihood: compare by the sample metrics",
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
}


def add_figures(r) -> None:
    """The players' loss curves, the sample overlay and the discriminator map."""
    m, name = r.metrics, r.args.dataset.replace("_", " ")
    r.figures["training"] = loss_curves(
        r.history,
        title=f"GAN (non-saturating, R1 {r.hp['r1']}) on {name}: the two players' losses",
    )
    kde, ed = m.get("kde_loglik"), m["energy_distance_to_true"]
    r.figures["samples"] = figures.overlay(
        r.samples,
        r.oracle,
        r.train,
        title=f"GAN samples vs true {name} samples\n"
        + (f"KDE loglik {kde['mean']:.3f}, " if kde else f"{m['sample_diagnostic'][:60]}, ")
        + (f"energy distance {ed:.2g} (floor {m['energy_noise_floor']:.2g})" if ed else ""),
        label="GAN samples",
    )
    r.figures["discriminator"] = discriminator_map(
        r.model,
        r.train,
        r.samples,
        title=f"discriminator D(x) on {name}, with GAN samples",
        n_grid=40 if r.args.smoke else 160,
    )


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    # the registry's GAN, NonSaturatingGAN(r1) and TwoPlayerAdam, through the one fit loop
    # (resuming from --out/checkpoint.eqx; --fresh starts over), scored by flowlab.evaluate
    r = pipeline.run("gan", args, hp, full=True)
    m = r.metrics
    m.update(**collapse_flags(m), **NOTES, optimizer=build_optimizer(r.hp).describe())
    ratio = m["energy_distance_over_floor"]
    m["energy_target_met"] = None if ratio is None else bool(ratio <= TARGET_FLOOR_MULTIPLE)
    m["energy_target"] = f"energy distance to true samples <= {TARGET_FLOOR_MULTIPLE:g} x floor"
    add_figures(r)
    written = pipeline.write(r, f"gan_{args.dataset}")
    pipeline.report(r, written)
    diag = m["mode_diagnostics"]
    print(
        f"[gan] sample diagnostic: {diag['status']}; coverage {diag['coverage']:.3f} "
        f"(oracle {m['mode_diagnostics_oracle']['coverage']:.3f}), precision "
        f"{diag['precision']:.3f}, spread ratio {diag['std_ratio']:.3f}"
    )
    if m["energy_distance_to_true"] is not None:
        print(
            f"[gan] energy distance to fresh true samples {m['energy_distance_to_true']:.3g}; "
            f"noise floor (RMS over {m['energy_noise_floor_pairs']} true-true pairs) "
            f"{m['energy_noise_floor']:.3g}: ratio {ratio:.2f} (target <= "
            f"{TARGET_FLOOR_MULTIPLE:g})"
        )
    if m.get("w2") is not None:
        print(
            f"[gan] W2 {m['w2']:.4f} (oracle {m['w2_oracle']:.4f}), MMD {m['mmd']:.2e} "
            f"(oracle {m['mmd_oracle']:.2e})"
        )
    print(
        "[gan] final hold-out: "
        + ", ".join(f"{k} {v:.4f}" for k, v in m["final_holdout"].items())
        + f" (equilibrium d_loss {EQUILIBRIUM_D_LOSS:.4f}, g_loss {EQUILIBRIUM_G_LOSS:.4f})"
    )
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
