"""Train an energy-based model on a 2D dataset and report its exact (quadrature) likelihood.

    python experiments/ebm_pinwheel.py                      # contrastive divergence, pinwheel
    python experiments/ebm_pinwheel.py --objective dsm      # energy trained by DSM instead
    python experiments/ebm_pinwheel.py --dataset spiral
    python experiments/ebm_pinwheel.py --smoke              # a few seconds, for CI

p(x) ∝ exp(-E(z)), z = (x - mu)/s, with E an MLP (SiLU) bounded by B = 30 plus a fixed
confining wall beyond the data box (see flowlab.ebm). log Z is computed by tensor
Gauss-Legendre quadrature on the data box widened by the wall (refined until two estimates
agree; the mass outside the box is bounded rigorously), so the hold-out NLL is exact up to
the reported quadrature error and is tracked during training. Two routes to the energy:

* cd: persistent contrastive divergence (Du & Mordatch 2019): K Langevin steps from a
  10,000-point replay buffer (5% re-initialised from uniform noise each step), energy
  magnitude penalty alpha (E(x)^2 + E(x~)^2), gradient clipping (Adam, clip 1.0);
* dsm: denoising score matching with the score -grad E at one sigma (learns p * N(0, s^2)).

Samples: annealed Langevin dynamics (eta 3e-2 -> 1e-3, standardised units) from uniform
noise on the data box, one energy gradient per step.

Writes to --out (default results/ebm_<dataset>_<objective>/): metrics.json, samples.npz,
history.json, model.eqx, checkpoint.eqx (re-running resumes from it) and figures (training
curves: the training loss and the exact hold-out NLL; CD's data/model energies; sample
overlay; exact vs true log-density), which full runs also copy to figures/.
"""

from __future__ import annotations

import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from lab import figures, pipeline, registry
from lab.common import (
    base_parser,
    check_dataset,
    default_out,
    nonnegative_float,
    positive_float,
    positive_int,
    training_flags,
)

import flowlab
from flowlab import plotting
from flowlab.ebm import EBM

OBJECTIVES = {"cd": "ebm_cd", "dsm": "ebm_dsm"}  # --objective -> registry family
LOG_Z_TOL = 1e-4  # refine log Z until two successive estimates agree to this
FLAGS = (
    "steps",
    "width",
    "depth",
    "batch_size",
    "lr",
    "eval_every",
    "langevin_steps",
    "step_size",
    "alpha",
    "sigma",
    "sample_steps",
)


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="cd",
        help="cd: persistent contrastive divergence; dsm: denoising score matching",
    )
    training_flags(p)
    p.add_argument("--langevin-steps", type=positive_int, default=None, help="CD: Langevin steps K")
    p.add_argument("--step-size", type=positive_float, default=None, help="CD: Langevin step eta")
    p.add_argument(
        "--alpha", type=nonnegative_float, default=None, help="CD: energy-magnitude penalty"
    )
    p.add_argument(
        "--sigma", type=positive_float, default=None, help="DSM: noise level (standardised)"
    )
    p.add_argument(
        "--sample-steps", type=positive_int, default=None, help="Langevin steps of sampling"
    )
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = registry.script_defaults(OBJECTIVES[args.objective], smoke=args.smoke)
    for name in FLAGS:
        value = getattr(args, name)
        if value is not None:
            if name not in hp:
                p.error(
                    f"--{name.replace('_', '-')} does not apply to --objective {args.objective}"
                )
            hp[name] = value
    hp["objective"] = args.objective
    default_out(args, f"ebm_{args.dataset}_{args.objective}")
    return args, hp


def training_metrics(model, holdout, hp: dict) -> dict:
    """The exact hold-out NLL and the quadrature's error estimate at every evaluation (one
    jitted evaluation for both)."""

    @eqx.filter_jit
    def nll_and_error(m):
        log_z, err = m.log_normalizer_with_error()
        z = m.standardizer().forward(holdout)
        lp = -jax.vmap(m.total_energy)(z) - log_z + m.standardizer().log_det()
        return -jnp.mean(lp), err

    last: dict = {}

    def evaluate(m, which: int) -> float:
        if last.get("model") is not m:
            last.update(model=m, values=[float(v) for v in nll_and_error(m)])
        return last["values"][which]

    return {"holdout_nll": lambda m: evaluate(m, 0), "log_z_error": lambda m: evaluate(m, 1)}


def energy_curves(history, *, title: str) -> plt.Figure:
    """CD's mean energy of the data and of the negatives (per step, EMA, hold-out)."""
    h = history.to_dict()
    aux, met, steps_eval = h["step_aux"], h["metrics"], np.asarray(h["step"])
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, colour, label in (
        ("energy_data", plotting.DATA_COLOUR, "data"),
        ("energy_model", plotting.MODEL_COLOUR, "negatives (Langevin from the buffer)"),
    ):
        v = np.asarray(aux[name])
        x = np.arange(1, v.size + 1)
        ax.plot(x, v, color=colour, alpha=0.2, lw=0.5)
        ax.plot(x, plotting.ema(v, 0.98), color=colour, lw=1.8, label=f"E({label}), EMA")
        if met.get(f"holdout_{name}"):
            ax.plot(steps_eval, met[f"holdout_{name}"], "o", color=colour, ms=3.5,
                    label=f"E({label.split(' ')[0]}), hold-out")  # fmt: skip
    ax.set_xlabel("gradient step")
    ax.set_ylabel("mean energy E (nats)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def normaliser_metrics(model: EBM, hp: dict, nll) -> dict:
    """log Z by the reported rule (2P panels, error estimate against P panels, as
    ``log_prob`` uses) and refined until two successive rules agree to ``LOG_Z_TOL``."""
    t = time.perf_counter()
    log_z = model.converged_log_normalizer(tol=LOG_Z_TOL, max_panels=4 * hp["quadrature_panels"])
    log_z_s = time.perf_counter() - t
    (_, coarse), (_, fine) = log_z["history"][:2]
    return {
        "log_z": fine,
        "log_z_quadrature_error": abs(fine - coarse),
        "log_z_nodes_per_axis": 2 * hp["quadrature_panels"] * hp["quadrature_order"],
        "log_z_converged": log_z["log_z"],
        "log_z_converged_error": log_z["error"],
        "log_z_converged_nodes_per_axis": log_z["nodes_per_axis"],
        "log_z_converged_ok": log_z["converged"],
        "log_z_refinement": log_z["history"],
        "log_z_outside_mass_bound": log_z["outside_mass_bound"],
        "log_z_time_s": log_z_s,
        "holdout_nll_converged_log_z": None if nll is None else nll + log_z["log_z"] - fine,
        "quadrature_box": [list(b) for b in model.quadrature_box],
    }


def add_figures(r: pipeline.Run) -> None:
    """The training curve, CD's energies, samples and the exact vs true density."""
    m, hp, objective = r.metrics, r.hp, r.hp["objective"]
    name = r.args.dataset.replace("_", " ")
    label = {"cd": "contrastive divergence", "dsm": f"DSM, sigma {hp.get('sigma')}"}[objective]
    r.figures["training"] = figures.training(
        r.history,
        title=f"EBM ({label}) on {name}",
        loss_label="CD loss" if objective == "cd" else "DSM loss (residual form)",
        reference=m.get("true_entropy"),
        metric_label="exact hold-out NLL (nats, quadrature log Z)",
    )
    if objective == "cd":
        r.figures["energies"] = energy_curves(
            r.history, title=f"EBM (CD) on {name}: mean energy of data and negatives"
        )
    r.figures["samples"] = figures.overlay(
        r.samples,
        r.oracle,
        r.train,
        title=f"EBM ({label}) samples vs true {name} samples\nLangevin, {hp['sample_steps']} "
        f"steps = {m['sample_nfe']} energy gradients per sample",
        label="EBM samples",
    )
    r.figures["density"] = figures.density(
        r.model,
        r.args.dataset,
        r.train,
        n_grid=40 if r.args.smoke else 160,
        title=f"EBM ({objective})",
        nll=m["holdout_nll"],
        entropy=m.get("true_entropy"),
    )


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sampler = flowlab.samplers.Langevin(
        steps=hp["sample_steps"],
        step_size=hp["sample_step_size"],
        final_step_size=hp["sample_final_step_size"],
    )
    family = OBJECTIVES[args.objective]
    r = pipeline.run(family, args, hp, sampler=sampler, training_metrics=training_metrics)
    model, m = r.model, r.metrics
    m.update(normaliser_metrics(model, r.hp, m["holdout_nll"]))
    finite = np.isfinite(r.samples).all(axis=1)
    m.update(
        objective=args.objective,
        model_entropy=float(eqx.filter_jit(EBM.entropy)(model)),
        sample_self_nll=float(-np.mean(np.asarray(model.log_prob(r.samples[finite])))),
        sample_self_nll_note="-mean log p(samples): equals model_entropy when the sampler "
        "samples the model exactly",
        sampler=repr(sampler),
        sample_steps=r.hp["sample_steps"],
        sample_nfe_note="energy-gradient evaluations per sample (one per Langevin step)",
        objective_config=repr(registry.build_objective(r.hp)),
    )
    add_figures(r)
    written = pipeline.write(r, f"ebm_{args.dataset}_{args.objective}")
    pipeline.report(r, written)
    print(
        f"[{family}] log Z = {m['log_z']:.5f} ({m['log_z_nodes_per_axis']}^2 nodes, error "
        f"estimate {m['log_z_quadrature_error']:.1e}); refined: {m['log_z_converged']:.5f} at "
        f"{m['log_z_converged_nodes_per_axis']}^2 nodes (last change "
        f"{m['log_z_converged_error']:.1e}); mass outside the quadrature box < "
        f"{m['log_z_outside_mass_bound']:.1e} of Z"
    )
    print(
        f"[{family}] model entropy {m['model_entropy']:.4f} nats; -mean log p of its Langevin "
        f"samples {m['sample_self_nll']:.4f}; energy distance to true samples "
        f"{m['energy_distance_to_true']:.2e} (noise floor {m['energy_noise_floor']:.1e}); "
        f"{m['sample_nfe']} energy gradients per sample"
    )
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
