"""Compare CNFs (maximum likelihood, flow matching) and a VP diffusion model on 2D datasets.

    python experiments/compare.py                    # 4 datasets x 4 models x 3 seeds
    python experiments/compare.py --quick            # 1 seed, small budgets (~3 min)
    python experiments/compare.py --datasets pinwheel --models cnf_fm diffusion_ode
    python experiments/compare.py --smoke            # seconds, for CI

Models (rows of the table):

* ``cnf_mle``: CNF trained by maximum likelihood (FFJORD objective, exact trace).
* ``cnf_fm``: CNF trained by conditional flow matching.
* ``diffusion_sde``: VP diffusion trained by denoising score matching, sampled with the
  reverse SDE (Euler-Maruyama).
* ``diffusion_ode``: the *same* trained diffusion model sampled with the probability-flow
  ODE. Both diffusion rows share one checkpoint and one exact (PF-ODE) likelihood.
* ``oracle``: fresh true samples scored exactly as the model samples are; its exact NLL is
  ``-mean datasets.log_prob(holdout)``.

For every (dataset, model, seed): exact hold-out NLL (adaptive Tsit5, exact trace), the KDE
NLL of N model samples on the hold-out set, the gap KDE - exact, KL gap = exact NLL - true
entropy, Bhattacharyya distance / W2 / energy distance / MMD between model samples and fresh
true samples, NFE and timings.

Writes to --out (default results/compare/): results.csv (one row per dataset/model/seed),
summary.md (mean +- std over seeds), config.json, figures (training.png, samples.png,
density.png, nll.png; full runs also copy them to figures/compare_*.png) and models/ (one
checkpoint per dataset/seed/family; re-running resumes or reuses them and only re-evaluates;
``--fresh`` retrains).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from common import ROOT, machine, save_figures, write_json

import flowlab
from flowlab import CNF, Standardize, datasets, plotting
from flowlab._checkpoint import atomic_write_text
from flowlab.diffusion import DenoisingScoreMatching, Diffusion
from flowlab.metrics import (
    bhattacharyya_distance,
    energy_distance,
    kde_log_likelihood,
    mean_and_se,
    mmd,
    wasserstein2,
)
from flowlab.nn import MLPVectorField
from flowlab.train import FlowMatching, History, MaximumLikelihood, default_optimizer, fit

COURSE_DATASETS = ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
MODELS = ("cnf_mle", "cnf_fm", "diffusion_sde", "diffusion_ode")
FAMILY = {  # model row -> trained model it uses
    "cnf_mle": "cnf_mle",
    "cnf_fm": "cnf_fm",
    "diffusion_sde": "diffusion",
    "diffusion_ode": "diffusion",
}
FAMILY_INDEX = {"cnf_mle": 0, "cnf_fm": 1, "diffusion": 2}  # fixed key offsets per family
LABELS = {
    "cnf_mle": "CNF (max. likelihood)",
    "cnf_fm": "CNF (flow matching)",
    "diffusion_sde": "VP diffusion, reverse SDE",
    "diffusion_ode": "VP diffusion, PF-ODE",
    "diffusion": "VP diffusion (DSM)",
    "oracle": "oracle (true samples)",
}

# Training budgets per family, tuned on pinwheel (seed 0, exact hold-out NLL; true entropy
# -0.092): flow matching 8000 steps at lr 5e-3 -> ~0.12, DSM 8000 -> ~0.16 (PF-ODE), maximum
# likelihood 500 steps at lr 1e-2 -> ~0.14; lower learning rates plateau at the Gaussian fit
# (~1.0) for these budgets. Full run (4 datasets x 3 seeds): 29.5 min measured on two quiet
# CPU cores (maximum likelihood is ~40% of it: ~50 s per 500-step run).
BUDGETS = {
    "full": {
        "cnf_mle": dict(steps=500, width=64, depth=3, batch_size=512, lr=1e-2, ema_decay=0.99),
        "cnf_fm": dict(steps=8000, width=128, depth=4, batch_size=1024, lr=5e-3, ema_decay=0.999),
        "diffusion": dict(
            steps=8000, width=128, depth=4, batch_size=1024, lr=5e-3, ema_decay=0.999
        ),
    },
    "quick": {
        "cnf_mle": dict(steps=120, width=32, depth=2, batch_size=256, lr=1e-2, ema_decay=0.9),
        "cnf_fm": dict(steps=2000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99),
        "diffusion": dict(steps=2000, width=64, depth=3, batch_size=512, lr=5e-3, ema_decay=0.99),
    },
    "smoke": {
        "cnf_mle": dict(steps=20, width=16, depth=2, batch_size=64, lr=3e-3, ema_decay=None),
        "cnf_fm": dict(steps=40, width=16, depth=2, batch_size=128, lr=3e-3, ema_decay=None),
        "diffusion": dict(steps=40, width=16, depth=2, batch_size=128, lr=3e-3, ema_decay=None),
    },
}
EVALS_PER_RUN = 5  # hold-out evaluations (loss and exact NLL) per training run
SETTINGS = {  # evaluation settings per mode
    "full": dict(n_samples=2000, sde_steps=500, grid=100),
    "quick": dict(n_samples=2000, sde_steps=500, grid=60),
    "smoke": dict(n_samples=300, sde_steps=20, grid=24),
}
CSV_COLUMNS = (
    "dataset",
    "model",
    "seed",
    "exact_nll",
    "exact_nll_se",
    "kde_nll",
    "kde_nll_se",
    "kde_gap",
    "true_entropy",
    "kl_gap",
    "bhattacharyya",
    "w2",
    "energy",
    "mmd",
    "sample_nfe",
    "log_prob_nfe",
    "train_time_s",
    "sample_time_s",
    "log_prob_time_s",
    "train_steps",
    "n_train",
    "n_holdout",
    "n_samples",
)
SUMMARY_METRICS = (
    ("exact_nll", "exact NLL"),
    ("kde_nll", "KDE NLL"),
    ("kde_gap", "KDE − exact"),
    ("kl_gap", "KL gap"),
    ("bhattacharyya", "Bhattacharyya"),
    ("w2", "W2"),
    ("energy", "energy"),
    ("mmd", "MMD²"),
    ("sample_nfe", "NFE"),
    ("train_time_s", "train s"),
    ("sample_time_s", "sample s"),
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=list(COURSE_DATASETS), metavar="NAME")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--quick", action="store_true", help="1 seed and small budgets (~3 min)")
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
        help="delete the saved models and checkpoints of the requested runs and retrain them "
        "(needed after changing a budget: a checkpoint with other hyperparameters is refused)",
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


# -- models ---------------------------------------------------------------------------------


def build_model(hp: dict):
    """The model of a run, from its hyperparameters (weights from the seed and family)."""
    key = jax.random.fold_in(jax.random.key(hp["seed"]), 1 + FAMILY_INDEX[hp["family"]])
    net = MLPVectorField(2, width=hp["width"], depth=hp["depth"], activation="silu", key=key)
    std = Standardize(
        jnp.asarray(hp["standardize_loc"], jnp.float32),
        jnp.asarray(hp["standardize_scale"], jnp.float32),
    )
    if hp["family"] == "diffusion":
        return Diffusion(net, flowlab.VPSDE(), standardize=std)
    return CNF(net, standardize=std)


def train_family(family, hp, train, holdout, key, folder: Path, progress: bool, fresh=False):
    """Train (or resume, or load) one model; returns ``(model, history)``."""
    folder.mkdir(parents=True, exist_ok=True)
    model_path, history_path = folder / "model.eqx", folder / "history.json"
    if fresh:
        for path in (model_path, history_path, folder / "checkpoint.eqx"):
            path.unlink(missing_ok=True)
    if model_path.exists() and history_path.exists():
        saved = flowlab._checkpoint.read_header(model_path)["hyperparameters"]
        if saved == json.loads(json.dumps(hp)):
            model, _ = flowlab.load_model(model_path, build_model)
            return model, History.load(history_path)
    loss = {
        # The per-example max-norm training solve these results were recorded with (the
        # library default is now the ~1.5x cheaper RMS norm; see benchmarks/README.md).
        "cnf_mle": MaximumLikelihood(norm="max"),
        "cnf_fm": FlowMatching(),
        "diffusion": DenoisingScoreMatching(),
    }[family]

    def holdout_nll(m):
        return -float(jnp.mean(m.log_prob(holdout)))

    model, history = fit(
        build_model(hp),
        loss,
        train,
        holdout,
        key=key,
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=default_optimizer(hp["steps"], hp["lr"]),
        eval_every=hp["eval_every"],
        ema_decay=hp["ema_decay"],
        metrics={"holdout_nll": holdout_nll},
        checkpoint=folder / "checkpoint.eqx",
        hyperparameters=hp,
        progress=progress,
    )
    history.save(history_path)
    flowlab.save_model(model_path, model, hp)
    return model, history


# -- evaluation -----------------------------------------------------------------------------


def _block_time(fn):
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t


def score_samples(samples, reference, holdout) -> dict:
    """Sample-based metrics of ``samples`` against fresh true ``reference`` samples and the
    ``holdout`` set (NaN everywhere if a sample is non-finite)."""
    x = np.asarray(samples, np.float64)
    if not np.isfinite(x).all():
        return dict(kde_nll=math.nan, kde_nll_se=math.nan, bhattacharyya=math.nan, w2=math.nan,
                    energy=math.nan, mmd=math.nan)  # fmt: skip
    kde = kde_log_likelihood(x, holdout)
    ref = np.asarray(reference, np.float64)
    return dict(
        kde_nll=-kde.mean,
        kde_nll_se=kde.se,
        bhattacharyya=bhattacharyya_distance(x, ref),
        w2=wasserstein2(x, ref),
        energy=energy_distance(x, ref),
        mmd=mmd(x, ref),
    )


def evaluate_cell(name, seed, models, settings, histories, train_times, run_models):
    """Rows of one (dataset, seed): every requested model plus the oracle, and the arrays
    the figures need."""
    n = settings["n_samples"]
    key = jax.random.key(seed)
    k_data, _, _, k_sample, k_oracle = jax.random.split(key, 5)
    k_ref, k_fresh = jax.random.split(k_oracle)
    train, holdout = datasets.split(name, k_data)
    reference = np.asarray(datasets.sample(name, k_ref, n))
    h = datasets.entropy(name)
    base = dict(dataset=name, seed=seed, true_entropy=h, n_train=int(train.shape[0]),
                n_holdout=int(holdout.shape[0]), n_samples=n)  # fmt: skip
    rows, samples = [], {}
    exact_cache: dict[str, tuple] = {}
    for model_name in run_models:
        family = FAMILY[model_name]
        model = models[family]
        if family not in exact_cache:
            # compile once, then time the second call
            jax.block_until_ready(model.log_prob_with_stats(holdout))
            (lp, stats), t_lp = _block_time(lambda m=model: m.log_prob_with_stats(holdout))
            exact_cache[family] = (*mean_and_se(-np.asarray(lp)), int(stats.nfe), t_lp)
        nll, nll_se, lp_nfe, t_lp = exact_cache[family]
        if model_name == "diffusion_sde":
            fn = lambda m=model: m.sample_with_stats(
                k_sample, n, sampler="em", steps=settings["sde_steps"]
            )  # noqa: E501, E731
        elif model_name == "diffusion_ode":
            fn = lambda m=model: m.sample_with_stats(k_sample, n, sampler="ode")  # noqa: E731
        else:
            fn = lambda m=model: m.sample_with_stats(k_sample, n)  # noqa: E731
        jax.block_until_ready(fn())  # compile
        (x, info), t_s = _block_time(fn)
        nfe = info["nfe"] if isinstance(info, dict) else info.nfe
        x = np.asarray(x)
        samples[model_name] = x
        row = dict(base, model=model_name, exact_nll=nll, exact_nll_se=nll_se,
                   **score_samples(x, reference, holdout), sample_nfe=int(nfe),
                   log_prob_nfe=lp_nfe, train_time_s=train_times[family],
                   sample_time_s=t_s, log_prob_time_s=t_lp,
                   train_steps=histories[family].step[-1])  # fmt: skip
        rows.append(row)
    fresh = np.asarray(datasets.sample(name, k_fresh, n))
    samples["oracle"] = fresh
    true_lp = datasets.log_prob(name, np.asarray(holdout))
    o_nll, o_se = mean_and_se(-true_lp)
    rows.append(dict(base, model="oracle", exact_nll=o_nll, exact_nll_se=o_se,
                     **score_samples(fresh, reference, holdout), sample_nfe=0, log_prob_nfe=0,
                     train_time_s=0.0, sample_time_s=0.0, log_prob_time_s=0.0,
                     train_steps=0))  # fmt: skip
    for row in rows:
        row["kde_gap"] = row["kde_nll"] - row["exact_nll"]
        row["kl_gap"] = row["exact_nll"] - h
    return rows, dict(train=np.asarray(train), holdout=np.asarray(holdout),
                      reference=reference, samples=samples)  # fmt: skip


# -- outputs --------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(CSV_COLUMNS)]
    for r in rows:
        vals = []
        for c in CSV_COLUMNS:
            v = r[c]
            vals.append(f"{v:.6g}" if isinstance(v, float) else str(v))
        lines.append(",".join(vals))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_csv(path: Path) -> list[dict]:
    """Rows of a results.csv with numbers parsed."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in ("dataset", "model"):
                r[k] = float(v) if v not in ("", "nan") else math.nan
        r["seed"] = int(r["seed"])
    return rows


def summarise(rows: list[dict]) -> dict:
    """``(dataset, model) -> {metric: (mean, std, n)}`` over seeds (std 0 for one seed)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        out[k] = {}
        for c in CSV_COLUMNS[3:]:
            v = np.asarray([r[c] for r in rs], np.float64)
            std = float(v.std(ddof=1)) if v.size > 1 else 0.0
            out[k][c] = (float(v.mean()), std, int(v.size))
    return out


def _fmt(mean: float, std: float, n: int, column: str) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if column in ("sample_nfe", "log_prob_nfe", "train_steps"):
        return f"{mean:.0f}"
    if column.endswith("_s"):
        digits = 1 if abs(mean) >= 10 else 2
    else:
        digits = 3 if abs(mean) >= 0.01 or mean == 0 else 4
    if column in ("mmd", "energy") and abs(mean) < 0.01:
        return f"{mean:.1e}" + (f" ± {std:.0e}" if n > 1 else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def summary_markdown(rows: list[dict]) -> str:
    """One Markdown table per dataset: mean ± std over seeds of each metric."""
    summ = summarise(rows)
    order = [*MODELS, "oracle"]
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        models = [m for m in order if (name, m) in summ]
        n_seeds = summ[(name, models[0])]["exact_nll"][2]
        h = summ[(name, models[0])]["true_entropy"][0]
        lines += [
            f"### {name} (true entropy {h:.3f} nats; {n_seeds} seed{'s' * (n_seeds > 1)})",
            "",
            "| model | " + " | ".join(lbl for _, lbl in SUMMARY_METRICS) + " |",
            "|---|" + "---|" * len(SUMMARY_METRICS),
        ]
        for m in models:
            s = summ[(name, m)]
            cells = [_fmt(*s[c], c) for c, _ in SUMMARY_METRICS]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _limits(train):
    lo = np.percentile(train, 0.5, axis=0) - 0.2 * np.ptp(train, axis=0)
    hi = np.percentile(train, 99.5, axis=0) + 0.2 * np.ptp(train, axis=0)
    return lo, hi


def figure_training(names, families, histories) -> plt.Figure:
    """Rows: datasets; columns: trained models. Train loss (EMA) and hold-out loss, with the
    exact hold-out NLL on a twin axis."""
    fig, axes = plt.subplots(
        len(names), len(families), figsize=(4.4 * len(families), 3.2 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        for j, fam in enumerate(families):
            ax, hist = axes[i, j], histories[(name, fam)]
            raw = np.asarray(hist.step_losses)
            steps = np.arange(1, raw.size + 1)
            ax.plot(steps, plotting.ema(raw, 0.98), color=plotting.DATA_COLOUR, lw=1.3,
                    label="train (EMA)")  # fmt: skip
            ax.plot(hist.step, hist.holdout_loss, "o-", ms=3, color=plotting.HOLDOUT_COLOUR,
                    label="hold-out")  # fmt: skip
            lo, hi = np.percentile(np.r_[raw, hist.holdout_loss], [0.5, 97])
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
            ax.set_title(f"{name}: {LABELS[fam]}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.set_ylabel("training loss", fontsize=8)
            nll = hist.metrics.get("holdout_nll")
            if nll:
                ax2 = ax.twinx()
                ax2.plot(hist.step, nll, "s--", ms=3, color=plotting.MODEL_COLOUR,
                         label="exact hold-out NLL")  # fmt: skip
                ax2.axhline(datasets.entropy(name), color="k", lw=0.8, ls=":")
                ax2.set_ylabel("NLL (nats)", fontsize=8)
                h2, l2 = ax2.get_legend_handles_labels()
            else:
                h2, l2 = [], []
            h1, l1 = ax.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    fig.suptitle("Training curves (seed 0; dotted: true entropy)")
    fig.tight_layout()
    return fig


def figure_samples(names, models, arrays) -> plt.Figure:
    cols = [*models, "oracle"]
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(3.6 * len(cols), 3.6 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        a = arrays[name]
        lo, hi = _limits(a["train"])
        for j, m in enumerate(cols):
            x = a["samples"][m]
            plotting.sample_overlay(
                np.where(np.isfinite(x), x, np.nan),
                a["reference"],
                title=f"{name}: {LABELS[m]}",
                labels=("model" if m != "oracle" else "fresh true", "true"),
                lim=((lo[0], hi[0]), (lo[1], hi[1])),
                ax=axes[i, j],
            )
            axes[i, j].title.set_fontsize(8)
            axes[i, j].legend(fontsize=6, markerscale=3, loc="upper right")
    fig.suptitle("Samples (red) vs fresh true samples (blue), seed 0")
    fig.tight_layout()
    return fig


def figure_density(names, families, density) -> plt.Figure:
    cols = [*families, "true"]
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(4.0 * len(cols), 3.4 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        xs, ys, grids = density[name]
        vmax = float(np.max(grids["true"]))
        for j, c in enumerate(cols):
            title = "true log-density" if c == "true" else LABELS[c]
            plotting.density_heatmap(
                xs, ys, grids[c], ax=axes[i, j], log=True, vmax=vmax, title=f"{name}: {title}"
            )
            axes[i, j].title.set_fontsize(8)
    fig.suptitle("Exact log-densities on a grid (8 nats of range, shared colour scale per row)")
    fig.tight_layout()
    return fig


def figure_nll(rows: list[dict]) -> plt.Figure:
    """Per dataset: KDE NLL against exact NLL (mean ± std over seeds) for every model and the
    oracle, with the line y = x and the true entropy."""
    summ = summarise(rows)
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    markers = dict(cnf_mle="o", cnf_fm="s", diffusion_sde="^", diffusion_ode="v", oracle="*")
    colours = dict(zip(markers, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(1, len(names), figsize=(4.3 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        h = datasets.entropy(name)
        pts = []
        for m in markers:
            if (name, m) not in summ:
                continue
            s = summ[(name, m)]
            (x, xs, _), (y, ys, _) = s["exact_nll"], s["kde_nll"]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            ax.errorbar(x, y, xerr=xs, yerr=ys, fmt=markers[m], color=colours[m], ms=8,
                        capsize=2, label=LABELS[m])  # fmt: skip
            pts += [x, y]
        pts += [h]
        lo, hi = min(pts), max(pts)
        pad = 0.15 * (hi - lo) + 0.05
        line = np.array([lo - pad, hi + pad])
        ax.plot(line, line, "k-", lw=0.8, label="KDE = exact")
        ax.axvline(h, color="grey", ls="--", lw=0.8, label=f"true entropy {h:.3f}")
        ax.axhline(h, color="grey", ls="--", lw=0.8)
        ax.set_xlim(*line)
        ax.set_ylim(*line)
        ax.set_xlabel("exact hold-out NLL (nats)")
        ax.set_ylabel("KDE hold-out NLL of samples (nats)")
        ax.set_title(name)
        ax.legend(fontsize=6.5, loc="lower right")  # KDE > exact: points sit above y = x
    fig.suptitle("Exact vs KDE hold-out NLL (mean ± std over seeds)")
    fig.tight_layout()
    return fig


# -- main -----------------------------------------------------------------------------------


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    budgets, settings = BUDGETS[args.mode], SETTINGS[args.mode]
    families = list(dict.fromkeys(FAMILY[m] for m in args.models))
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
            key = jax.random.key(seed)
            k_data, _, k_train, _, _ = jax.random.split(key, 5)
            train, holdout = datasets.split(name, k_data)
            std = Standardize.fit(train)
            models, hists, train_times = {}, {}, {}
            for fam in families:
                hp = dict(budgets[fam], family=fam, dataset=name, seed=seed,
                          eval_every=max(1, budgets[fam]["steps"] // EVALS_PER_RUN),
                          standardize_loc=np.asarray(std.loc).tolist(),
                          standardize_scale=np.asarray(std.scale).tolist())  # fmt: skip
                t0 = time.perf_counter()
                models[fam], hists[fam] = train_family(
                    fam, hp, train, holdout, jax.random.fold_in(k_train, FAMILY_INDEX[fam]),
                    out / "models" / name / f"seed{seed}" / fam, not args.no_progress,
                    fresh=args.fresh,
                )  # fmt: skip
                train_times[fam] = hists[fam].wall_time[-1]
                print(
                    f"[compare] {name} seed {seed} {fam}: {hists[fam].step[-1]} steps, "
                    f"{train_times[fam]:.1f} s training "
                    f"({time.perf_counter() - t0:.1f} s this call)"
                )
            cell_rows, cell_arrays = evaluate_cell(
                name, seed, models, settings, hists, train_times, args.models
            )
            rows += cell_rows
            for r in cell_rows:
                print(
                    f"      {r['model']:<14} exact {r['exact_nll']:+.3f}  KDE {r['kde_nll']:+.3f}"
                    f"  gap {r['kde_gap']:+.3f}  KL gap {r['kl_gap']:+.3f}  "
                    f"BD {r['bhattacharyya']:.4f}  W2 {r['w2']:.3f}  NFE {r['sample_nfe']}"
                )
            if seed == 0:
                for fam in families:
                    histories[(name, fam)] = hists[fam]
                arrays[name] = cell_arrays
                lo, hi = _limits(cell_arrays["train"])
                xs, ys, pts = plotting.grid(lo, hi, settings["grid"])
                grids = {fam: np.asarray(models[fam].log_prob(pts)) for fam in families}
                grids["true"] = datasets.log_prob(name, pts)
                density[name] = (xs, ys, grids)
    write_csv(out / "results.csv", rows)
    atomic_write_text(out / "summary.md", summary_markdown(rows))
    write_json(out / "config.json", config)
    figs = {
        "training": figure_training(args.datasets, families, histories),
        "samples": figure_samples(args.datasets, args.models, arrays),
        "density": figure_density(args.datasets, families, density),
        "nll": figure_nll(rows),
    }
    figures_dir = args.figures_dir if args.mode == "full" else None
    written = save_figures(figs, out, figures_dir, "compare")
    print(summary_markdown(rows))
    print(f"[compare] done in {time.perf_counter() - t_start:.0f} s; outputs in {out}")
    for p in [out / "results.csv", out / "summary.md", *written]:
        print(f"      {p}")
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
