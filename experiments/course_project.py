"""The course project in one command: two model families on two course datasets, evaluated,
studied and written up as a typeset PDF.

    python experiments/course_project.py --models cnf_fm vae --datasets pinwheel checkerboard
    python experiments/course_project.py                 # cnf_fm, ddpm; pinwheel, checkerboard
    python experiments/course_project.py --smoke         # seconds, for CI
    python experiments/report.py --results results/course_project   # re-render the PDF only

Trains the grid the course asks for (every family of ``registry.FAMILIES`` works; each model
is evaluated by the likelihood kind it declares: exact, bound or none) on n = 2000 training
points with a 500-point hold-out set, then writes to ``--out`` (default
``results/course_project``):

* ``results.csv`` (one row per dataset, model and seed plus the oracle row; the schema of
  ``tables.py``, the same as ``compare.py``'s), ``summary.md``, ``config.json`` (every
  hyperparameter, evaluation setting, timing and the machine), ``details.json`` (estimator
  labels and sample diagnostics);
* ``models/<dataset>/seed<k>/<family>/`` (checkpoint, model, history; re-running resumes
  or reuses them, ``--fresh`` retrains), ``arrays/`` (samples, data and density grids for
  the figures);
* ``studies/`` (``studies.py``: the KDE bias and bandwidth study, and the DDPM / DDIM / SDE
  sampler study: the exact score on the Gaussian mixture, where it has a closed form, and
  a trained score on a dataset of the project, :func:`run_studies`);
* ``report.pdf`` (``report.py``), copied with its figures to
  ``figures/course_project_*`` for full runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import jax
from lab import grid, studies, tables
from lab.common import ROOT, machine, output_folder, positive_int, write_json
from lab.registry import FAMILIES, SMOKE

from flowlab import datasets
from flowlab._checkpoint import atomic_write_text

DEFAULT_MODELS = ("cnf_fm", "ddpm")
DEFAULT_DATASETS = ("pinwheel", "checkerboard")

# A default run trains each family exactly as its own script does (its tuned defaults in
# registry.FAMILIES: steps, network, batch, learning rate, EMA, evaluation interval), so its
# numbers are the converged ones; the report's settings table lists them as run.
BUDGET_SOURCE = "the family's default (its script's)"
SMOKE_BUDGET = dict(SMOKE, width=16, ema_decay=None)
SETTINGS = {
    "full": dict(n_samples=2000, grid=100),
    "smoke": dict(n_samples=300, grid=24),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        metavar="FAMILY",
        help=f"model families, any of: {', '.join(FAMILIES)}",
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(DEFAULT_DATASETS),
        metavar="NAME",
        help=f"course datasets, any of: {', '.join(datasets.COURSE_NAMES)}",
    )
    p.add_argument("--seeds", type=positive_int, default=1, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--steps", type=positive_int, default=None, help="override every family's steps")
    p.add_argument("--out", type=output_folder, default=None, help="output folder")
    p.add_argument("--smoke", action="store_true", help="tiny budgets (seconds, for CI)")
    p.add_argument(
        "--figures-dir",
        type=output_folder,
        default=ROOT / "figures",
        help="where full runs also copy report.pdf (not with --smoke)",
    )
    p.add_argument("--fresh", action="store_true", help="retrain instead of reusing models")
    p.add_argument("--no-studies", action="store_true", help="skip the KDE and sampler studies")
    p.add_argument("--no-report", action="store_true", help="skip the PDF")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    for fam in args.models:
        if fam not in FAMILIES:
            p.error(f"unknown model family {fam!r}; expected one of: {', '.join(FAMILIES)}")
    for name in args.datasets:
        if name not in datasets.COURSE_NAMES:
            p.error(
                f"unknown course dataset {name!r}; expected one of: "
                f"{', '.join(datasets.COURSE_NAMES)}"
            )
    args.models = list(dict.fromkeys(args.models))
    args.datasets = list(dict.fromkeys(args.datasets))
    if args.seeds < 1:
        p.error(f"expected --seeds >= 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        p.error(f"expected --steps >= 1, got {args.steps}")
    args.mode = "smoke" if args.smoke else "full"
    if args.out is None:
        args.out = ROOT / "results" / ("course_project_smoke" if args.smoke else "course_project")
    return args


def budget(fam: str, args) -> dict:
    """The hyperparameters one family trains with in this run."""
    hp = dict(FAMILIES[fam].defaults)
    if args.smoke:
        hp.update(SMOKE_BUDGET, **FAMILIES[fam].smoke)
    if args.steps is not None:
        hp["steps"] = args.steps
    if args.smoke or args.steps is not None:
        hp["eval_every"] = max(1, hp["steps"] // 4)
    return hp


def run_config(args, settings: dict, budgets: dict, timings: dict) -> dict:
    """What config.json records of this run."""
    return dict(
        mode=args.mode,
        script="experiments/course_project.py",
        datasets=args.datasets,
        models=args.models,
        families={fam: fam for fam in args.models},
        labels={fam: FAMILIES[fam].label for fam in args.models},
        loss_labels={fam: FAMILIES[fam].loss_label for fam in args.models},
        seeds=list(range(args.seeds)),
        budgets=budgets,
        budget_source={
            fam: "smoke budget (tiny, for CI)"
            if args.smoke
            else f"{BUDGET_SOURCE}, --steps {args.steps}"
            if args.steps is not None
            else BUDGET_SOURCE
            for fam in args.models
        },
        evaluation=dict(
            settings,
            kde_bandwidth="scott",
            reference="fresh true samples (n_samples)",
        ),
        machine=machine(),
        timings=timings,
    )


def study_score(run: grid.GridRun, names) -> tuple[object, str, str]:
    """The trained score of the sampler study, on a dataset of the project: the project's
    own VP diffusion on the first of ``names`` that has one, as ``(model, dataset,
    sentence)``; ``(None, "", "")`` when the project trains none. (A DDPM does not serve:
    the study's probability-flow and reverse-SDE samplers need the continuous-time SDE.)"""
    for name in names:
        model = run.models.get(name, {}).get("diffusion")
        if model is not None:
            return model, name, f"this project's {FAMILIES['diffusion'].label} on {name} (seed 0)"
    return None, "", ""


def run_studies(out: Path, run: grid.GridRun, timings: dict, args) -> None:
    """The studies of a finished project (unless ``--no-studies``), their time in
    ``timings["studies_s"]``: the KDE study of every sample set, and the sampler study with
    the exact score on the Gaussian mixture (the one course dataset whose score has a
    closed form) and a trained score on a dataset of the project (:func:`study_score`; else,
    outside smoke runs, a VP diffusion trained for the study on the project's first
    dataset)."""
    if args.no_studies:
        return
    t0 = time.perf_counter()
    studies.run_studies(out, only="kde")
    learned, name, source = study_score(run, args.datasets)
    settings = studies.SMOKE_SETTINGS if args.smoke else studies.SamplerStudySettings()
    if learned is None and settings.train_learned:
        name = args.datasets[0]
        learned, hp, _ = studies.train_study_model(
            out / "studies" / "sampler_model",
            studies.STUDY_MODEL_BUDGET,
            progress=not args.no_progress,
            fresh=args.fresh,
            dataset=name,
        )
        source = (
            f"a VP diffusion trained for this study: {hp['steps']} DSM steps of batch "
            f"{hp['batch_size']} on {name}'s 2000 training points, MLP width {hp['width']} "
            f"and depth {hp['depth']}, learning rate {hp['lr']:g}"
        )
    t1 = time.perf_counter()
    study = studies.sampler_study(
        learned,
        settings,
        key=jax.random.key(2024),
        learned_source=source,
        learned_dataset=name or studies.samplers.MIXTURE,
    )
    study["total_seconds"] = time.perf_counter() - t1
    write_json(out / "studies" / "samplers.json", study)
    print(f"[course_project] sampler study in {study['total_seconds']:.1f} s")
    timings["studies_s"] = time.perf_counter() - t0


def copy_report(args, pdf: Path) -> None:
    """A full run's report and its figures, copied to ``--figures-dir``."""
    if args.smoke or args.figures_dir is None:
        return
    args.figures_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pdf, args.figures_dir / "course_project_report.pdf")
    for fig in sorted((args.out / "report_build" / "figures").glob("*.png")):
        shutil.copyfile(fig, args.figures_dir / f"course_project_{fig.name}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS[args.mode]
    budgets = {fam: budget(fam, args) for fam in args.models}
    t_start = time.perf_counter()
    print(
        f"[course_project] {len(args.models)} model(s) x {len(args.datasets)} dataset(s) x "
        f"{args.seeds} seed(s), mode {args.mode}; output in {out}"
    )
    run = grid.run_grid(
        args.datasets,
        args.seeds,
        budgets,
        settings,
        grid.family_rows(args.models),
        out,
        script="course_project",
        progress=not args.no_progress,
        fresh=args.fresh,
    )
    order = [*args.models, "oracle"]
    tables.write_csv(out / "results.csv", run.rows)
    atomic_write_text(out / "summary.md", tables.summary_markdown(run.rows, order))
    write_json(out / "details.json", run.details)
    timings = run.timings
    config = run_config(args, settings, budgets, timings)
    write_json(out / "config.json", config)
    run_studies(out, run, timings, args)
    timings["total_before_report_s"] = time.perf_counter() - t_start
    write_json(out / "config.json", config)
    result = {"rows": run.rows, "out": out}
    pdf = grid.render_report(out, timings, args)
    if pdf is not None:
        write_json(out / "config.json", config)
        result["pdf"] = pdf
        copy_report(args, pdf)
    print(tables.summary_markdown(run.rows, order))
    print(f"[course_project] done in {time.perf_counter() - t_start:.0f} s; outputs in {out}")
    if "pdf" in result:
        print(f"      {result['pdf']}")
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
