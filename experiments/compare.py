"""Compare every model family on the course's 2D datasets, each by the best likelihood it has.

    python experiments/compare.py                    # 4 datasets x every model x 3 seeds
    python experiments/compare.py --quick            # 1 seed, small budgets
    python experiments/compare.py --datasets pinwheel --models cnf_fm diffusion_ode
    python experiments/compare.py --smoke            # seconds, for CI

Rows of the table (``--models``); several rows can share one trained model:

* ``cnf_mle`` / ``cnf_fm``: CNFs trained by maximum likelihood / flow matching (exact NLL);
* ``diffusion_sde`` / ``diffusion_ode``: *one* VP diffusion model (DSM) sampled with the
  reverse SDE (Euler-Maruyama) and with the probability-flow ODE (exact PF-ODE NLL);
* ``ddpm``: discrete-time DDPM (simple noise-prediction loss), ancestral samples; its
  variational bound;
* ``dsm``: single-noise DSM with annealed Langevin (no likelihood);
* ``vae``: Gaussian VAE, exact marginal likelihood by quadrature over its 2D latent (its
  ELBO and IWAE bounds are in the script's own outputs);
* ``ebm``: energy-based model trained by contrastive divergence, exact likelihood by 2D
  quadrature of its normaliser, Langevin samples;
* ``gan``: non-saturating GAN (no likelihood: sample metrics only);
* ``oracle``: fresh true samples scored exactly as model samples are; its NLL is the true
  density's.

For every (dataset, model, seed): the likelihood the model declares (exact NLL with its
solver's NFE, or minus a bound), the KDE NLL of N samples on the hold-out set and its gap to
the exact NLL, the KL gap (NLL - true entropy), Bhattacharyya distance, W2, energy distance
and MMD to fresh true samples, NFE and timings.

Writes to --out (default results/compare/): results.csv (schema in tables.py), summary.md,
config.json, details.json, figures (training, samples, density, nll; full runs also copy
them to figures/compare_*.png), models/<dataset>/seed<k>/<family>/ (checkpoint, model,
history; re-running reuses finished models and only re-evaluates; ``--fresh`` retrains),
arrays/ (what the report draws), studies/ (the KDE and sampler studies of studies.py) and
the typeset report.pdf (report.py); a full run also writes figures/compare_report.pdf and
RESULTS.md, its Markdown digest.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from lab import figures, grid, report, tables
from lab.common import ROOT, machine, output_folder, positive_int, save_figures, write_json
from lab.registry import FAMILIES, LABELS, ROWS

from flowlab import datasets
from flowlab._checkpoint import atomic_write_text

COURSE_DATASETS = ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
MODELS = tuple(ROWS)  # the table's rows: registry.ROWS (a family sampled one way each)

# Training budgets per mode. A full run trains every family exactly as its own script does:
# its tuned defaults (registry.FAMILIES[fam].defaults: steps, network, batch, learning rate,
# EMA and evaluation interval), so the grid's numbers are the converged ones the scripts
# report; the report's settings table lists them as run. --quick and --smoke trade that for
# time (smaller networks and budgets, a fixed number of hold-out evaluations per run) and
# their reports say so.
BUDGETS = {
    "full": {fam: {} for fam in FAMILIES},
    "quick": {
        "cnf_mle": dict(steps=120, width=32, depth=2, batch_size=256, lr=1e-2, ema_decay=0.9),
        "cnf_fm": dict(steps=2000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99),
        "diffusion": dict(
            steps=2000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99, sde="vp"
        ),
        "ddpm": dict(steps=2000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99),
        "dsm": dict(
            steps=1000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99, sigma=0.1, k=4
        ),
        "vae": dict(steps=2000, width=64),
        "ebm": dict(steps=800),
        "gan": dict(steps=1500, width=64),
    },
    "smoke": {
        fam: dict(steps=20, width=16, depth=2, batch_size=64, lr=3e-3, ema_decay=None)
        for fam in ("cnf_mle", "cnf_fm", "diffusion", "ddpm", "dsm", "vae", "ebm", "gan")
    },
}
BUDGETS["smoke"]["diffusion"]["sde"] = "vp"
BUDGETS["smoke"]["dsm"].update(sigma=0.1, k=2)
BUDGETS["smoke"]["gan"].update(batch_size=128)
BUDGETS["smoke"]["vae"].update(quadrature_size=64)
BUDGETS["smoke"]["ebm"].update(langevin_steps=5, buffer_size=1000, holdout_steps=20,
                                quadrature_panels=4)  # fmt: skip
EVALS_PER_RUN = 5  # hold-out evaluations per training run of --quick and --smoke
SETTINGS = {  # evaluation settings per mode
    "full": dict(n_samples=2000, sde_steps=500, grid=64),
    "quick": dict(n_samples=2000, sde_steps=500, grid=60),
    "smoke": dict(n_samples=300, sde_steps=20, grid=24),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=list(COURSE_DATASETS), metavar="NAME")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL")
    p.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--quick", action="store_true", help="1 seed and small budgets")
    p.add_argument(
        "--smoke", action="store_true", help="one dataset, 1 seed, tiny budgets (seconds, for CI)"
    )
    p.add_argument("--out", type=output_folder, default=None, help="output folder")
    p.add_argument(
        "--figures-dir",
        type=output_folder,
        default=ROOT / "figures",
        help="where full runs also copy their figures (not with --quick or --smoke)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete the saved models and checkpoints of the requested runs and retrain them",
    )
    p.add_argument("--no-studies", action="store_true", help="skip the KDE and sampler studies")
    p.add_argument("--no-report", action="store_true", help="skip the typeset PDF")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    for name in args.datasets:
        if name not in datasets.NAMES:
            p.error(f"unknown dataset {name!r}; expected one of: {', '.join(datasets.NAMES)}")
        if not datasets.has_log_prob(name):
            p.error(f"dataset {name!r} has no exact log_prob; the oracle row needs one")
    if args.seeds < 1:
        p.error(f"expected --seeds >= 1, got {args.seeds}")
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.smoke:
        args.datasets = args.datasets[:1] if "--datasets" in (argv or sys.argv) else ["pinwheel"]
    if args.smoke or args.quick:
        args.seeds = 1
    if args.out is None:
        args.out = ROOT / "results" / ("compare" if args.mode == "full" else f"compare_{args.mode}")
    return args


def family_budgets(args, families) -> dict:
    """Every hyperparameter of each family: its defaults, overridden by this mode's budget."""
    hps = {}
    for fam in families:
        hp = {**FAMILIES[fam].defaults, **BUDGETS[args.mode][fam]}
        if args.mode != "full":  # a full run keeps each family's own evaluation interval
            hp["eval_every"] = max(1, hp["steps"] // EVALS_PER_RUN)
        hps[fam] = hp
    return hps


def run_config(args, families, hps) -> dict:
    """What config.json records of this run (its timings are filled in as it goes)."""
    return dict(
        mode=args.mode,
        script="experiments/compare.py",
        datasets=args.datasets,
        models=args.models,
        families={m: ROWS[m][0] for m in args.models},
        labels={k: LABELS.get(k, k) for k in [*families, *args.models, "oracle"]},
        loss_labels={fam: FAMILIES[fam].loss_label for fam in families},
        seeds=list(range(args.seeds)),
        budgets=hps,  # every hyperparameter: the family defaults and this mode's budget
        budget_source={
            f: "the family's default (its script's)" if args.mode == "full"
            else f"compare.py's {args.mode} budget" for f in families
        },
        evaluation=dict(SETTINGS[args.mode], evals_per_run=EVALS_PER_RUN, kde_bandwidth="scott",
                        reference="fresh true samples (n_samples)"),
        machine=machine(),
    )  # fmt: skip


def write_tables(out: Path, run: grid.GridRun, order: list[str]) -> None:
    """results.csv, summary.md and details.json of a finished grid."""
    tables.write_csv(out / "results.csv", run.rows)
    atomic_write_text(out / "summary.md", tables.summary_markdown(run.rows, order))
    write_json(out / "details.json", run.details)


def draw_figures(args, run: grid.GridRun, families, order, labels) -> list[Path]:
    """The comparison's four figures (copied to ``--figures-dir`` in full mode)."""
    names = args.datasets
    figs = {
        "training": figures.training_grid(names, families, run.histories, labels),
        "samples": figures.samples_grid(names, order, run.arrays, labels),
        "density": figures.density_grid(names, run.density, labels),
        "nll": figures.nll_scatter(tables.summarise(run.rows), names, order, labels),
    }
    full = args.mode == "full"
    return save_figures(figs, args.out, args.figures_dir if full else None, "compare")


def publish_report(args, pdf: Path) -> list[Path]:
    """A full run's report copied beside its figures, and RESULTS.md written from it."""
    if args.mode != "full":
        return [pdf]
    shutil.copyfile(pdf, args.figures_dir / "compare_report.pdf")
    md = report.write_markdown(
        args.out, ROOT / "RESULTS.md", args.figures_dir / "compare_report.pdf"
    )
    return [pdf, md]


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows_spec = {m: ROWS[m] for m in args.models}
    families = list(dict.fromkeys(fam for fam, _ in rows_spec.values()))
    hps = family_budgets(args, families)
    config = run_config(args, families, hps)
    print(
        f"[compare] {len(args.datasets)} dataset(s) x {len(args.models)} model(s) x "
        f"{args.seeds} seed(s), mode {args.mode}; output in {out}"
    )
    t_start = time.perf_counter()
    run = grid.run_grid(
        args.datasets,
        args.seeds,
        hps,
        SETTINGS[args.mode],
        rows_spec,
        out,
        script="compare",
        progress=not args.no_progress,
        fresh=args.fresh,
    )
    timings = config["timings"] = run.timings
    timings["grid_s"] = time.perf_counter() - t_start
    order = [*args.models, "oracle"]
    write_tables(out, run, order)
    write_json(out / "config.json", config)
    written = draw_figures(args, run, families, order, config["labels"])
    grid.run_studies(out, run, timings, args)
    write_json(out / "config.json", config)
    pdf = grid.render_report(out, timings, args)
    if pdf is not None:
        write_json(out / "config.json", config)
        written += publish_report(args, pdf)
    print(tables.summary_markdown(run.rows, order))
    total = time.perf_counter() - t_start
    print(f"[compare] done in {total:.0f} s (grid {timings['grid_s']:.0f} s); outputs in {out}")
    for p in [out / "results.csv", out / "summary.md", *written]:
        print(f"      {p}")
    return run.rows


if __name__ == "__main__":
    sys.exit(main() and 0)
