"""Compare every model family on the course's 2D datasets, each by the best likelihood it has.

    python experiments/compare.py                    # 4 datasets x every model x 3 seeds
    python experiments/compare.py --quick            # 1 seed, small budgets
    python experiments/compare.py --datasets pinwheel --models cnf_fm diffusion_ode
    python experiments/compare.py --smoke            # seconds, for CI

Rows of the table (``--models``); several rows can share one trained model:

* ``cnf_mle`` / ``cnf_fm``: CNFs trained by maximum likelihood / flow matching (exact NLL);
* ``diffusion_sde`` / ``diffusion_ode``: *one* VP diffusion model (DSM) sampled with the
  reverse SDE (Euler-Maruyama) and with the probability-flow ODE (exact PF-ODE NLL);
* ``ddpm``: discrete-time DDPM (L_simple), ancestral samples; its variational bound;
* ``dsm``: single-noise DSM with annealed Langevin (no likelihood);
* ``oracle``: fresh true samples scored exactly as model samples are; its NLL is the true
  density's.

For every (dataset, model, seed): the likelihood the model declares (exact NLL with its
solver's NFE, or minus a bound), the KDE NLL of N samples on the hold-out set and its gap to
the exact NLL, the KL gap (NLL - true entropy), Bhattacharyya distance, W2, energy distance
and MMD to fresh true samples, NFE and timings.

Writes to --out (default results/compare/): results.csv (schema in tables.py), summary.md,
config.json, figures (training, samples, density, nll; full runs also copy them to
figures/compare_*.png) and models/<dataset>/seed<k>/<family>/ (checkpoint, model, history;
re-running reuses finished models and only re-evaluates; ``--fresh`` retrains).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pipeline
import tables
from common import ROOT, machine, save_figures, timed, write_json
from evaluate import likelihood_metrics, sample_metrics
from factory import FAMILIES

import figures
from flowlab import atomic_write_text, datasets, plotting
from flowlab.samplers import EulerMaruyama

COURSE_DATASETS = ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
# row -> (trained family, sampler factory(settings) or None for the model's default)
ROWS = {
    "cnf_mle": ("cnf_mle", None),
    "cnf_fm": ("cnf_fm", None),
    "diffusion_sde": ("diffusion", lambda s: EulerMaruyama(steps=s["sde_steps"])),
    "diffusion_ode": ("diffusion", None),
    "ddpm": ("ddpm", None),
    "dsm": ("dsm", None),
    "vae": ("vae", None),
    "ebm": ("ebm", None),
    "gan": ("gan", None),
}
MODELS = tuple(ROWS)
LABELS = {
    "cnf_mle": "CNF (max. likelihood)",
    "cnf_fm": "CNF (flow matching)",
    "diffusion_sde": "VP diffusion, reverse SDE",
    "diffusion_ode": "VP diffusion, PF-ODE",
    "diffusion": "VP diffusion (DSM)",
    "ddpm": "DDPM (ancestral)",
    "dsm": "single-noise DSM (Langevin)",
    "vae": "VAE (decoder noise)",
    "ebm": "EBM (Langevin)",
    "gan": "GAN",
    "oracle": "oracle (true samples)",
}

# Training budgets per family. cnf_mle, cnf_fm and diffusion were tuned on pinwheel (seed 0,
# exact hold-out NLL; true entropy -0.092): flow matching 8000 steps at lr 5e-3 -> ~0.12,
# DSM 8000 -> ~0.16 (PF-ODE), maximum likelihood 500 steps at lr 1e-2 -> ~0.14; lower
# learning rates plateau at the Gaussian fit (~1.0) for these budgets. ddpm and dsm share
# the diffusion network and budget.
_NET = dict(width=128, depth=4, batch_size=1024, lr=5e-3, ema_decay=0.999)
BUDGETS = {
    "full": {
        "cnf_mle": dict(steps=500, width=64, depth=3, batch_size=512, lr=1e-2, ema_decay=0.99),
        "cnf_fm": dict(steps=8000, **_NET),
        "diffusion": dict(steps=8000, sde="vp", **_NET),
        "ddpm": dict(steps=8000, num_diffusion_steps=1000, **_NET),
        "dsm": dict(steps=4000, sigma=0.1, k=4, **_NET),
        "vae": dict(steps=8000),
        "ebm": dict(steps=3000),
        "gan": dict(steps=5000),
    },
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
EVALS_PER_RUN = 5  # hold-out evaluations (loss and likelihood) per training run
SETTINGS = {  # evaluation settings per mode
    "full": dict(n_samples=2000, sde_steps=500, grid=100),
    "quick": dict(n_samples=2000, sde_steps=500, grid=60),
    "smoke": dict(n_samples=300, sde_steps=20, grid=24),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=list(COURSE_DATASETS), metavar="NAME")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--quick", action="store_true", help="1 seed and small budgets")
    p.add_argument(
        "--smoke", action="store_true", help="one dataset, 1 seed, tiny budgets (seconds, for CI)"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument(
        "--figures-dir",
        type=Path,
        default=ROOT / "figures",
        help="where full runs also copy their figures (not with --quick or --smoke)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete the saved models and checkpoints of the requested runs and retrain them",
    )
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


def evaluate_cell(name, seed, models, settings, run_models, train_times, histories):
    """Rows of one (dataset, seed): every requested model plus the oracle, and the arrays
    the figures need. Each model is reached through the protocol only."""
    n = settings["n_samples"]
    key = jax.random.key(seed)
    k_data, _, _, k_sample, k_oracle = jax.random.split(key, 5)
    k_ref, k_fresh = jax.random.split(k_oracle)
    train, holdout = datasets.split(name, k_data)
    holdout_np = np.asarray(holdout)
    reference = np.asarray(datasets.sample(name, k_ref, n))
    h = datasets.entropy(name)
    base = dict(dataset=name, seed=seed, true_entropy=h, n_train=int(train.shape[0]),
                n_holdout=int(holdout.shape[0]), n_samples=n)  # fmt: skip
    rows, samples, lik_cache = [], {}, {}
    for row_name in run_models:
        fam, make_sampler = ROWS[row_name]
        model = models[fam]
        if fam not in lik_cache:
            lik = likelihood_metrics(model, holdout, key=jax.random.fold_in(key, 7))
            lik.pop("_log_prob", None)
            lik_cache[fam] = lik
        lik = lik_cache[fam]
        sampler = None if make_sampler is None else make_sampler(settings)
        kwargs = {} if sampler is None else {"sampler": sampler}  # None: the model's own
        (x, stats), t_s = timed(model.sample_with_stats, k_sample, n, repeats=1, **kwargs)
        x = np.asarray(x)
        samples[row_name] = x
        sm = sample_metrics(x, holdout_np, reference, full=True)
        rows.append(_row(base, row_name, lik, sm, int(stats.nfe), t_s, train_times[fam],
                         histories[fam].step[-1]))  # fmt: skip
    fresh = np.asarray(datasets.sample(name, k_fresh, n))
    samples["oracle"] = fresh
    true_lp = datasets.log_prob(name, holdout_np)
    oracle_lik = dict(likelihood_kind="exact", holdout_nll=float(-np.mean(true_lp)),
                      holdout_nll_se=float(np.std(true_lp, ddof=1) / np.sqrt(true_lp.size)),
                      log_prob_nfe=0, log_prob_time_s=0.0)  # fmt: skip
    sm = sample_metrics(fresh, holdout_np, reference, full=True)
    rows.append(_row(base, "oracle", oracle_lik, sm, 0, 0.0, 0.0, 0))
    arrays = dict(train=np.asarray(train), holdout=holdout_np, reference=reference,
                  samples=samples)  # fmt: skip
    return rows, arrays


def _row(base, model, lik, sm, nfe, sample_s, train_s, steps) -> dict:
    kde = sm.get("kde_loglik")
    row = dict(
        base,
        model=model,
        likelihood_kind=lik["likelihood_kind"],
        exact_nll=lik.get("holdout_nll"),
        exact_nll_se=lik.get("holdout_nll_se"),
        neg_bound=lik.get("holdout_neg_bound"),
        neg_bound_se=lik.get("holdout_neg_bound_se"),
        bound_name=lik.get("bound_name", ""),
        kde_nll=None if kde is None else -kde["mean"],
        kde_nll_se=None if kde is None else kde["se"],
        bhattacharyya=sm.get("bhattacharyya"),
        w2=sm.get("w2"),
        energy=sm.get("energy_distance"),
        mmd=sm.get("mmd"),
        sample_nfe=nfe,
        log_prob_nfe=lik.get("log_prob_nfe"),
        train_time_s=train_s,
        sample_time_s=sample_s,
        log_prob_time_s=lik.get("log_prob_time_s"),
        train_steps=steps,
        sample_diagnostic=sm["sample_diagnostic"],
    )
    nll = row["exact_nll"]
    row["kde_gap"] = None if nll is None or row["kde_nll"] is None else row["kde_nll"] - nll
    row["kl_gap"] = None if nll is None else nll - base["true_entropy"]
    return row


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    budgets, settings = BUDGETS[args.mode], SETTINGS[args.mode]
    families = list(dict.fromkeys(ROWS[m][0] for m in args.models))
    config = dict(mode=args.mode, datasets=args.datasets, models=args.models,
                  seeds=list(range(args.seeds)), budgets={f: budgets[f] for f in families},
                  evaluation=settings, machine=machine())  # fmt: skip
    print(
        f"[compare] {len(args.datasets)} dataset(s) x {len(args.models)} model(s) x "
        f"{args.seeds} seed(s), mode {args.mode}; output in {out}"
    )
    rows, histories, arrays, density = [], {}, {}, {}
    t_start = time.perf_counter()
    for name in args.datasets:
        for seed in range(args.seeds):
            run_args = argparse.Namespace(dataset=name, seed=seed)
            train, holdout, keys, _ = pipeline.prepare("compare", run_args, {})
            models, hists, train_times = {}, {}, {}
            for index, fam in enumerate(families):
                # the family's defaults, overridden by this mode's budget
                _, _, _, hp = pipeline.prepare(
                    fam, run_args, {**FAMILIES[fam].defaults, **budgets[fam]}
                )
                hp["eval_every"] = max(1, hp["steps"] // EVALS_PER_RUN)
                fam_keys = dict(keys, train=jax.random.fold_in(keys["train"], index))
                folder = out / "models" / name / f"seed{seed}" / fam
                models[fam], hists[fam], call_s = pipeline.fit_or_load(
                    hp, train, holdout, fam_keys, folder, progress=not args.no_progress,
                    fresh=args.fresh,
                )  # fmt: skip
                train_times[fam] = hists[fam].wall_time[-1]
                print(
                    f"[compare] {name} seed {seed} {fam}: {hists[fam].step[-1]} steps, "
                    f"{train_times[fam]:.1f} s training ({call_s:.1f} s this call)"
                )
            cell_rows, cell_arrays = evaluate_cell(
                name, seed, models, settings, args.models, train_times, hists
            )
            rows += cell_rows
            for r in cell_rows:
                print("      " + _line(r))
            if seed == 0:
                for fam in families:
                    histories[(name, fam)] = hists[fam]
                arrays[name] = cell_arrays
                lo, hi = figures.limits(cell_arrays["train"])
                xs, ys, pts = plotting.grid(lo, hi, settings["grid"])
                grids = {
                    fam: np.asarray(models[fam].log_prob(pts))
                    for fam in families
                    if models[fam].likelihood_kind == "exact"
                }
                grids["true"] = datasets.log_prob(name, pts)
                density[name] = (xs, ys, grids)
    tables.write_csv(out / "results.csv", rows)
    order = [*MODELS, "oracle"]
    atomic_write_text(out / "summary.md", tables.summary_markdown(rows, order))
    write_json(out / "config.json", config)
    labels = {k: LABELS.get(k, k) for k in [*families, *args.models, "oracle"]}
    figs = {
        "training": figures.training_grid(args.datasets, families, histories, labels),
        "samples": figures.samples_grid(args.datasets, [*args.models, "oracle"], arrays, labels),
        "density": figures.density_grid(args.datasets, density, labels),
        "nll": figures.nll_scatter(tables.summarise(rows), args.datasets, order, labels),
    }
    figures_dir = args.figures_dir if args.mode == "full" else None
    written = save_figures(figs, out, figures_dir, "compare")
    print(tables.summary_markdown(rows, order))
    print(f"[compare] done in {time.perf_counter() - t_start:.0f} s; outputs in {out}")
    for p in [out / "results.csv", out / "summary.md", *written]:
        print(f"      {p}")
    return rows


def _line(r: dict) -> str:
    def f(v, spec):
        return "   n/a" if v is None else format(v, spec)

    return (
        f"{r['model']:<14} {r['likelihood_kind']:<5}  NLL {f(r['exact_nll'], '+.3f')}  "
        f"-bound {f(r['neg_bound'], '+.3f')}  KDE {f(r['kde_nll'], '+.3f')}  "
        f"KL gap {f(r['kl_gap'], '+.3f')}  BD {f(r['bhattacharyya'], '.4f')}  "
        f"W2 {f(r['w2'], '.3f')}  NFE {r['sample_nfe']}  {r['sample_diagnostic'][:40]}"
    )


if __name__ == "__main__":
    sys.exit(main() and 0)
