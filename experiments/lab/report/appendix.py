"""The report's appendix: every result, every setting, every dataset's figures, and the two
studies in full."""

from __future__ import annotations

import math
from pathlib import Path

from ..figures import display_label
from ..results import Results
from .equal_compute import equal_compute_section
from .figures import TEXT_WIDTH_IN, figure_width, typst_figure
from .studies_prose import kde_study_text, sampler_text
from .tables import budget_notes, full_table, kde_table, sampler_table, typst_table
from .text import Markup, esc, sci


def _machine(res: Results) -> str:
    m = res.config.get("machine", {})
    if not m:
        return "the machine that ran the experiment"
    return (
        f"{m.get('cpu_count', '?')} CPU core(s), {m.get('platform', '?')}, JAX "
        f"{m.get('jax', '?')} ({m.get('backend', '?')})"
    )


def all_results_section(doc: Markup, res: Results) -> None:
    """Every column of ``results.csv``, one full-width table per dataset."""
    doc.lines.append("#wide[")
    doc.heading("All results", label="sec:all")
    doc.para(
        "Every dataset and every seed, every column of results.csv except the reference "
        "values (true entropy, sizes). KDE NLL with Scott's bandwidth; energy and MMD² "
        "(Gaussian kernel, median-distance bandwidth) ×10³; times in seconds on "
        + _machine(res)
        + ". Timings on a machine shared with other jobs are longer than on a quiet one."
    )
    for name in res.datasets:
        doc.block(
            typst_table(
                full_table(res, name),
                label=f"tab:all-{name}",
                size="8pt",
                caption=f"All results on {name}.",
            )
        )
    doc.lines.append("]")


# Hyperparameter and evaluation-setting names as the appendix prints them (others: the
# name with spaces for underscores).
READABLE = {
    "batch_size": "batch size",
    "lr": "learning rate",
    "ema_decay": "EMA decay",
    "eval_every": "hold-out evaluation every (steps)",
    "num_diffusion_steps": "diffusion steps T",
    "generator_lr": "generator learning rate",
    "discriminator_lr": "discriminator learning rate",
    "b1": "Adam β₁",
    "r1": "R1 penalty weight",
    "k": "noise draws per point",
    "sigma": "noise σ",
    "sigma_min": "σ min",
    "sde": "SDE",
    "n_samples": "samples per model",
    "sde_steps": "reverse-SDE steps",
    "grid": "density grid points per axis",
    "evals_per_run": "hold-out evaluations per run (quick and smoke budgets)",
    "kde_bandwidth": "KDE bandwidth",
    "reference": "reference samples",
}


def readable_settings(settings: dict) -> str:
    """``key = value`` pairs with readable names and values, no code names."""
    items = []
    for k, v in settings.items():
        if k in ("family", "dataset", "seed"):
            continue
        if isinstance(v, float):
            v = f"{v:g}"
        elif v is None:
            v = "none"
        elif isinstance(v, str):
            v = display_label(v)
        items.append(f"{READABLE.get(k, k.replace('_', ' '))} = {v}")
    return ", ".join(items)


def settings_section(doc: Markup, res: Results) -> None:
    """Every hyperparameter, the evaluation settings, the solvers and estimators, where the
    budgets come from, and how long the run took."""
    doc.heading("Hyperparameters, solvers and evaluation", label="sec:settings")
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        doc.lines.append(f"- *{esc(display_label(res.label(fam)))}*: {esc(readable_settings(hp))}.")
    doc.lines.append("")
    ev = res.config.get("evaluation", {})
    if ev:
        doc.para("Evaluation settings: " + readable_settings(ev) + ".")
    est = sorted(
        {
            f"{display_label(k)}: {v}"
            for d in res.details.values()
            if isinstance(d, dict)
            for k, v in d.items()
            if k.endswith("estimator") and v
        }
    )
    doc.para(
        "Solvers. Exact likelihoods of ODE models: adaptive Dopri5 with a PID controller, "
        "rtol = atol = 10⁻⁵, the exact Jacobian trace, each example's error controlled "
        "separately; samples of ODE models: the same solver; the NFE columns count network "
        "evaluations (the adaptive solver's, or one per step of a fixed-step sampler). "
        + ("Estimators as recorded: " + "; ".join(est) + ". " if est else "")
    )
    doc.para(
        "Where the budgets come from. "
        + " ".join(budget_notes(res))
        + " No sweep was run for this report: the settings above are each family's default "
        "as its own script trains it, not the result of a search here."
    )
    timings = res.config.get("timings", {})
    fams = res.config.get("families", {})
    trained = {
        (r["dataset"], r["seed"], fams.get(r["model"], r["model"])): r.get("train_time_s")
        for r in res.rows
        if r["model"] != "oracle"
    }
    train_s = sum(v for v in trained.values() if v is not None and math.isfinite(v))
    evaluate = timings.get("evaluate_s")
    evaluate_s = sum(evaluate.values()) if isinstance(evaluate, dict) else None
    if train_s > 0:
        doc.para(
            f"Cost of the run: {train_s / 60:.1f} minutes of training in all ({len(trained)} "
            "trainings, each its recorded wall-clock time with compilation and hold-out "
            "evaluations; a model shared by two table rows counted once)"
            + (f", {evaluate_s / 60:.1f} minutes of evaluation" if evaluate_s else "")
            + (
                f", {timings['studies_s'] / 60:.1f} minutes of studies"
                if timings.get("studies_s")
                else ""
            )
            + "."
        )


def figures_section(doc: Markup, res: Results, figs: dict, build: Path) -> None:
    """Every dataset's training curves with the likelihood, the overlays the main text left
    out, and the exact log-densities."""
    for name in res.datasets:
        path = figs.get(f"training_nll_{name}")
        if path:
            doc.block(
                typst_figure(
                    path,
                    build,
                    label=f"fig:training-nll-{name}",
                    width_in=figure_width(path),
                    caption=f"Training curves on {display_label(name)}: the train and hold-out "
                    "loss on 500 points each, from the same weights (named above each panel) "
                    "and key; grey, behind: the minibatch loss of every step (live weights); "
                    "red, right axis: the hold-out likelihood each model has (exact NLL, or "
                    "minus the bound) with the true entropy (dotted). A GAN panel shows the "
                    "value V(D, G) with its equilibrium −2 log 2. A y-axis marked symlog is "
                    "linear near zero and logarithmic beyond, so that the first evaluations "
                    "stay in view.",
                )
            )
        path = figs.get(f"overlays_{name}")
        if path:
            doc.block(
                typst_figure(
                    path,
                    build,
                    label=f"fig:overlays-{name}",
                    width_in=figure_width(path),
                    caption="Model samples (red) over fresh true samples (blue) on "
                    f"{display_label(name)}.",
                )
            )
    if figs.get("density"):
        doc.block(
            typst_figure(
                figs["density"],
                build,
                label="fig:density",
                width_in=figure_width(figs["density"]),
                caption="Exact log-densities of the exact-likelihood models beside the true one, "
                "on one colour scale per dataset (8 nats below the true maximum).",
            )
        )


def kde_section(doc: Markup, res: Results) -> None:
    """The KDE study: its text and its table."""
    doc.heading("What the KDE measures", label="sec:kde")
    for p in kde_study_text(res):
        doc.para(p)
    doc.block(
        typst_table(
            kde_table(res),
            label="tab:kde",
            size="8.5pt",
            caption="KDE hold-out NLL (nats) of each sample set under four bandwidths "
            "(SciPy factors; Silverman = Scott in 2D; CV: leave-one-out likelihood on the "
            "samples). For the oracle, KDE NLL minus its exact NLL is the KDE's own bias.",
        )
    )


def samplers_section(doc: Markup, res: Results, figs: dict, build: Path) -> None:
    """The sampler study: its figure, its text and every run."""
    doc.heading("Samplers: discretisation against learning error", label="sec:samplers")
    if figs.get("samplers"):
        doc.block(
            typst_figure(
                figs["samplers"],
                build,
                label="fig:samplers",
                width_in=TEXT_WIDTH_IN,
                caption="DDPM (ancestral), DDIM (η = 0), the reverse SDE (Euler–Maruyama) and "
                "the probability-flow ODE (fixed-step Euler; adaptive Dopri5 at several "
                "tolerances) on a VP diffusion. (a) One Gaussian component of the course "
                "mixture as target, exact score: closed-form KL. (b) The mixture with its "
                "exact score and (c) the trained score on "
                + display_label(res.samplers.get("learned_dataset") or "gaussian_mixture")
                + ", the dataset it was trained on: energy distance of the samples to fresh "
                "true samples of that dataset; grey: its noise floor (values below it are "
                "drawn inside the band). (d) DDIM's KL from its exact output density, with "
                "standard errors.",
            )
        )
    doc.para(
        "The course's theory item asks for a comparison of DDPM [@ho2020], DDIM "
        "[@song2021ddim] and the SDE [@song2021sde] on simple Gaussian distributions. "
        "The course Gaussian mixture has a closed-form score at every noise level, so "
        "each sampler can be run with the exact score (discretisation error only) and "
        "with a trained one (plus learning error)"
        + ("; [@fig:samplers] shows both." if figs.get("samplers") else ".")
    )
    for p in sampler_text(res):
        doc.para(p)
    st = sampler_table(res)
    if st is not None:
        s = res.samplers
        doc.para(
            f"Every run ([@tab:samplers]): {s['settings']['n']} samples per run; energy "
            f"noise floor {sci(s['energy_floor'])} on the Gaussian mixture"
            + (
                f" and {sci(s['learned_energy_floor'])} on {display_label(s['learned_dataset'])}"
                if s.get("learned_dataset") and s.get("learned_dataset") != "gaussian_mixture"
                else ""
            )
            + "; trained score: "
            f"{s.get('learned_source') or 'none'}; the study took "
            f"{s.get('total_seconds', s.get('seconds', 0)):.0f} s."
        )
        doc.block(
            typst_table(
                st, label="tab:samplers", size="8pt", caption="Every sampler run of the study."
            )
        )


def appendix(doc: Markup, res: Results, figs: dict, build: Path) -> None:
    """The appendix, after the references."""
    all_results_section(doc, res)
    settings_section(doc, res)
    figures_section(doc, res, figs, build)
    equal_compute_section(doc, res)
    if res.kde:
        kde_section(doc, res)
    if res.samplers:
        samplers_section(doc, res, figs, build)
