"""The report's appendix: every result, every setting, every dataset's figures, and the two
studies in full."""

from __future__ import annotations

from pathlib import Path

from ..results import Results
from .figures import TEXT_WIDTH_IN, figure_width, typst_figure
from .studies_prose import kde_study_text, sampler_text
from .tables import full_table, kde_table, sampler_table, typst_table
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


def settings_section(doc: Markup, res: Results) -> None:
    """Every hyperparameter, the evaluation settings, the solvers and estimators, what was
    tried, and how long the run took."""
    doc.heading("Hyperparameters, solvers and evaluation", label="sec:settings")
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        items = ", ".join(f"{k} = {v}" for k, v in hp.items())
        doc.lines.append(f"- *{esc(res.label(fam))}* ({esc(fam)}): {esc(items)}.")
    doc.lines.append("")
    ev = res.config.get("evaluation", {})
    if ev:
        doc.para("Evaluation settings: " + ", ".join(f"{k} = {v}" for k, v in ev.items()) + ".")
    est = sorted(
        {
            f"{k}: {v}"
            for d in res.details.values()
            for k, v in d.items()
            if k.endswith("estimator") and v
        }
    )
    tried = res.config.get("budget_source")
    doc.para(
        "Solvers. Exact likelihoods of ODE models: adaptive Dopri5 with a PID controller, "
        "rtol = atol = 10⁻⁵, the exact Jacobian trace, each example's error controlled "
        "separately; samples of ODE models: the same solver; the NFE columns count network "
        "evaluations (the adaptive solver's, or one per step of a fixed-step sampler). "
        + ("Estimators as recorded: " + "; ".join(est) + ". " if est else "")
        + "What was tried: "
        + ("; ".join(f"{res.label(f)}: {src}" for f, src in tried.items()) + ". " if tried else "")
        + "The budgets tuned on pinwheel compared learning rates and step counts by the exact "
        "hold-out NLL: lower learning rates plateaued near the Gaussian fit for these step "
        "counts, so the runs here use the best setting found; no wider sweep was run."
    )
    timings = res.config.get("timings", {})
    if timings.get("total_before_report_s"):
        doc.para(
            f"The run took {timings['total_before_report_s'] / 60:.1f} minutes before the "
            "report (training, evaluation"
            + (f", studies {timings['studies_s']:.0f} s" if timings.get("studies_s") else "")
            + ")."
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
                    caption=f"Training curves on {name} with the hold-out likelihood each model "
                    "has (exact NLL, or minus the bound; red, right axis) and the true entropy "
                    "(dotted, right axis).",
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
                    caption=f"Model samples (red) over fresh true samples (blue) on {name}.",
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
                "mixture as target, exact score: closed-form KL. (b, c) The mixture: energy "
                "distance of the samples to fresh true samples with the exact and the trained "
                "score; grey: noise floor (values below it are drawn inside the band). (d) "
                "DDIM's KL from its exact output density, with standard errors.",
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
            f"Every run ([@tab:samplers]): Gaussian mixture, {s['settings']['n']} samples "
            f"per run; energy noise floor {sci(s['energy_floor'])}; trained score: "
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
    if res.kde:
        kde_section(doc, res)
    if res.samplers:
        samplers_section(doc, res, figs, build)
