"""One comparison grid, shared by ``compare.py`` (every family) and ``course_project.py`` (any
two): train or reuse each family on a (dataset, seed) cell, evaluate every table row through
the model protocol only, and save what ``report.py`` reads.

A *row* of the table names a trained *family* and, optionally, a sampler: ``compare.py``'s
``diffusion_sde`` and ``diffusion_ode`` are one trained VP diffusion sampled two ways. The
keys follow one rule, so a model scores the same in both scripts: the cell's data, sample
and oracle keys come from the seed alone, and a family's training key from the seed and the
family's position in ``registry.FAMILIES`` (never from which other families run).

Both scripts run it through :func:`run_grid` (every cell), then :func:`run_studies` and
:func:`render_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import flowlab
from flowlab import datasets, plotting
from flowlab.evaluate import (
    diagnostics,
    generalisation_gap,
    likelihood,
    noise_floor,
    sample_metrics,
    timed,
)
from flowlab.metrics import mean_and_se

from . import figures, pipeline, report, results, studies
from .registry import FAMILIES, build_objective, coarse_log_prob

FLOOR_KEY = 11  # folded into the cell's key for the noise floor (no other key changes)
GAP_KEY = 13  # folded into the cell's key for the generalisation-gap test
# True-true pairs behind the saved energy-distance noise floor. With 4 the RMS is uncertain
# by about a third (pinwheel, n = 2000: 1.3e-4 from one set of 4 pairs, 3.4e-4 from 32),
# enough for the report to call a difference resolved that is not; 32 cost 0.8 s a cell.
FLOOR_PAIRS = 32
IWAE_K = 1000  # importance samples of the VAE's IWAE bound in the table's details
DETAIL_KEYS = ("log_prob_steps", "holdout_neg_iwae", "holdout_neg_iwae_se", "iwae_k")
# row name -> (trained family, sampler factory(settings) or None: the model's own sampler)
RowSpec = Mapping[str, tuple[str, Callable[[dict], object] | None]]


def family_rows(families) -> dict:
    """The rows of a grid whose rows are its families, each with its own sampler."""
    return {fam: (fam, None) for fam in families}


def _cell_runs(names, seeds: int, budgets: Mapping[str, dict], out: Path, script: str):
    """Every (dataset, seed, family) run of a grid: its data, keys, hyperparameters and
    folder, in the grid's order (seed by seed, dataset by dataset)."""
    runs = []
    for seed in range(seeds):
        for name in names:
            run_args = argparse.Namespace(dataset=name, seed=seed)
            train, holdout, keys, _ = pipeline.prepare(script, run_args, {})
            for fam, hp in budgets.items():
                _, _, _, hp = pipeline.prepare(fam, run_args, hp)
                index = list(FAMILIES).index(fam)
                runs.append(
                    dict(
                        name=name, seed=seed, family=fam, hp=hp, train=train,
                        holdout=holdout,
                        keys=dict(keys, train=jax.random.fold_in(keys["train"], index)),
                        folder=out / "models" / name / f"seed{seed}" / fam,
                    )
                )  # fmt: skip
    return runs


MEASURED_SHAPE = ("width", "depth", "batch_size")
"""The hyperparameters at which ``benchmarks/batched.py`` measured each family (its defaults)."""


def batch_family(fam: str, backend: str | None = None, hp: Mapping | None = None) -> bool:
    """Whether the grid trains ``fam``'s runs (hyperparameters ``hp``; default the family's
    own) as one program on ``backend`` (default: JAX's). On an accelerator wherever the family
    can batch. On a CPU, at the family's default network and batch, only where
    ``benchmarks/batched.py`` measured the batch at least as fast per run
    (``Family.batched_on_cpu``); at any other size (``--quick``'s and ``--smoke``'s smaller
    networks) the batch, which pays most for small networks, is kept: ``compare.py --quick``
    trained in 103 s batched against 113 s with DSM, DDPM, VAE and GAN one after another
    (warm cache, quiet machine, one run each on two days)."""
    spec = FAMILIES[fam]
    if not spec.batched:
        return False
    if (backend or jax.default_backend()) != "cpu" or spec.batched_on_cpu:
        return True
    hp = spec.defaults if hp is None else hp
    return any(hp.get(k) != spec.defaults.get(k) for k in MEASURED_SHAPE)


def _batches(runs: list[dict]) -> list[list[dict]]:
    """``runs`` of one family grouped into batches that can share one program: the same
    architecture and static fields (e.g. an EBM's data box, which differs by data set),
    objective and optimiser. Each run gets its ``model``. (A run alone trains with
    :func:`flowlab.fit`, with its own checkpoint, as a script would.)"""
    groups: list[list[dict]] = []
    for r in runs:
        r["model"] = pipeline.build_model(r["hp"])
        shared = _shared_part(r)
        for g in groups:
            if eqx.tree_equal(shared, _shared_part(g[0])) is True:
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _shared_part(r: dict):
    hp = r["hp"]
    static = eqx.filter(r["model"], eqx.is_array, inverse=True)
    fit = {k: hp[k] for k in ("steps", "batch_size", "eval_every", "ema_decay")}
    return static, repr(build_objective(hp)), repr(pipeline.build_optimizer(hp)), fit


def train_grid(
    names, seeds: int, budgets: Mapping[str, dict], out: Path, *, script: str,
    progress: bool = True, fresh: bool = False, log=print,
) -> dict:  # fmt: skip
    """Train (or reuse from ``out/models/<dataset>/seed<k>/<family>``) every family on every
    (dataset, seed) cell. A family's runs train as one program (:func:`flowlab.fit_many`:
    run r gives the numbers it would alone) in as few batches as their architectures allow,
    where :func:`batch_family` says batching pays (else one after another, as the scripts do);
    an interrupted batch resumes from ``out/models/batches/``. Returns ``{(dataset, seed):
    (models, histories, seconds)}``, each by family; a run's seconds are its share of its
    batch's training time."""
    cells: dict = {}
    all_runs = _cell_runs(names, seeds, budgets, out, script)
    for fam in budgets:
        pending = []
        for r in (r for r in all_runs if r["family"] == fam):
            t0 = time.perf_counter()
            done = pipeline.load_finished(r["hp"], r["folder"], fresh=fresh)
            if done is None:
                pending.append(r)
            else:
                _note(cells, r, *done, time.perf_counter() - t0)
        together = pending and batch_family(fam, hp=pending[0]["hp"])
        batches = _batches(pending) if together else [[r] for r in pending]
        for batch in batches:
            if len(batch) == 1:
                r = batch[0]
                model, history, seconds = pipeline.fit_or_load(
                    r["hp"], r["train"], r["holdout"], r["keys"], r["folder"],
                    progress=progress, fresh=False,
                )  # fmt: skip
                _note(cells, r, model, history, seconds)
                log(
                    f"[{script}] {r['name']} seed {r['seed']} {fam}: {history.step[-1]} steps, "
                    f"{history.wall_time[-1]:.1f} s training ({history.compile_time:.1f} s "
                    "compiling)"
                )
                continue
            t0 = time.perf_counter()
            ckpt = out / "models" / "batches" / f"{fam}-{_digest([r['hp'] for r in batch])}.eqx"
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            trained = pipeline.fit_batch(batch, ckpt, progress=progress)
            share = (time.perf_counter() - t0) / len(batch)
            for r, (model, history) in zip(batch, trained, strict=True):
                _note(cells, r, model, history, share)
            h = trained[0][1]
            log(
                f"[{script}] {fam}: {len(batch)} run(s) as one program, {h.step[-1]} steps, "
                f"{h.wall_time[-1]:.1f} s training ({h.compile_time:.1f} s compiling)"
            )
    return cells


def _note(cells: dict, r: dict, model, history, seconds: float) -> None:
    models, hists, call_s = cells.setdefault((r["name"], r["seed"]), ({}, {}, {}))
    models[r["family"]], hists[r["family"]], call_s[r["family"]] = model, history, seconds


def _digest(hps: list[dict]) -> str:
    return hashlib.sha1(json.dumps(hps, sort_keys=True).encode()).hexdigest()[:12]


def train_seconds(history) -> float:
    """A run's training seconds: its share of the program it trained in."""
    return history.wall_time[-1] / getattr(history, "runs", 1)


def row_record(base: dict, model: str, lik: dict, sm: dict, nfe, sample_s, train_s, steps):
    """One ``results.csv`` row (the schema of ``tables.py``)."""
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


def cell_base(name: str, seed: int, train, holdout, n: int) -> dict:
    """What every ``results.csv`` row of one (dataset, seed) shares."""
    return dict(
        dataset=name,
        seed=seed,
        true_entropy=datasets.entropy(name),
        n_train=int(len(train)),
        n_holdout=int(len(holdout)),
        n_samples=n,
    )


def oracle_record(base: dict, true_log_prob, fresh, holdout, reference) -> tuple[dict, dict]:
    """The oracle's ``results.csv`` row and sample metrics: fresh true samples scored as a
    model's are, with the true density's hold-out NLL (``true_log_prob``: its log-density
    at each hold-out point) as its exact likelihood."""
    nll, nll_se = mean_and_se(-np.asarray(true_log_prob, np.float64))
    lik = dict(
        likelihood_kind="exact",
        holdout_nll=nll,
        holdout_nll_se=nll_se,
        log_prob_nfe=0,
        log_prob_time_s=0.0,
    )
    sm = sample_metrics(fresh, holdout, reference, full=True)
    return row_record(base, "oracle", lik, sm, 0, 0.0, 0.0, 0), sm


def evaluate_cell(
    name: str, seed: int, models: dict, histories: dict, settings: dict, rows: RowSpec
):
    """Rows, arrays and details of one (dataset, seed): every row of ``rows`` and the oracle
    (fresh true samples scored exactly as model samples are). A family's likelihood is
    computed once and shared by its rows."""
    n = settings["n_samples"]
    key = jax.random.key(seed)
    k_data, _, _, k_sample, k_oracle = jax.random.split(key, 5)
    k_ref, k_fresh = jax.random.split(k_oracle)
    train, holdout = datasets.split(name, k_data)
    holdout_np = np.asarray(holdout)
    reference = np.asarray(datasets.sample(name, k_ref, n))
    base = cell_base(name, seed, train, holdout, n)
    records, samples, details, lik_cache, log_prob = [], {}, {}, {}, {}
    for row_name, (fam, make_sampler) in rows.items():
        model, hist = models[fam], histories[fam]
        if fam not in lik_cache:  # with the IWAE bound where the model has one (the VAE)
            lik_cache[fam] = likelihood(
                model, holdout, key=jax.random.fold_in(key, 7),
                iwae_k=settings.get("iwae_k", IWAE_K),
            )  # fmt: skip
        lik = lik_cache[fam].metrics
        log_prob[row_name] = lik_cache[fam].log_prob
        sampler = None if make_sampler is None else make_sampler(settings)
        kwargs = {} if sampler is None else {"sampler": sampler}
        (x, stats), t_s = timed(model.sample_with_stats, k_sample, n, repeats=1, **kwargs)
        x = np.asarray(x)
        samples[row_name] = x
        sm = sample_metrics(x, holdout_np, reference, full=True)
        records.append(
            row_record(
                base, row_name, lik, sm, int(stats.nfe), t_s, train_seconds(hist), hist.step[-1]
            )
        )
        details[row_name] = dict(
            sample_diagnostic=sm["sample_diagnostic"],
            diagnostics=diagnostics(x, reference, dataset=name),
            **{k: v for k, v in lik.items() if k.endswith("estimator") or k in DETAIL_KEYS},
            sampler=repr(sampler) if sampler is not None else f"{type(model).__name__} default",
            kde_bandwidth_factor=None
            if sm.get("kde_loglik") is None
            else sm["kde_loglik"]["bandwidth_factor"],
        )
    fresh = np.asarray(datasets.sample(name, k_fresh, n))
    samples["oracle"] = fresh
    log_prob["oracle"] = np.asarray(datasets.log_prob(name, holdout_np), np.float64)
    row, sm = oracle_record(base, log_prob["oracle"], fresh, holdout_np, reference)
    records.append(row)
    floor = _energy_floor(name, n, key)
    details["oracle"] = dict(
        sample_diagnostic=sm["sample_diagnostic"],
        diagnostics=diagnostics(fresh, reference, dataset=name),
        **floor,
    )
    arrays = dict(
        train=np.asarray(train),
        holdout=holdout_np,
        reference=reference,
        samples=samples,
        log_prob=log_prob,
    )
    return records, arrays, details


def generalisation_gaps(models: dict, budgets: Mapping[str, dict], train, holdout, seed: int):
    """Each family's overfitting test (:func:`flowlab.evaluate.generalisation_gap`: its own
    training objective on the hold-out set minus on as many training points, same weights
    and keys, with its standard error)."""
    key = jax.random.fold_in(jax.random.key(seed), GAP_KEY)
    return {
        fam: generalisation_gap(
            model, build_objective({**budgets[fam], "family": fam}), train, holdout, key=key
        )
        for fam, model in models.items()
    }


def _energy_floor(name: str, n: int, key) -> dict:
    """The energy distance's noise floor at ``n`` samples, computed once per cell
    (:func:`flowlab.evaluate.noise_floor`), as saved with the oracle row in
    ``details.json``."""
    floor = noise_floor(name, n, key=jax.random.fold_in(key, FLOOR_KEY), pairs=FLOOR_PAIRS)
    energy = floor["energy_distance"]
    return dict(
        energy_noise_floor=energy["rms"],
        energy_noise_floor_std=energy["std"],
        energy_noise_floor_pairs=floor["pairs"],
    )


@dataclasses.dataclass
class GridRun:
    """What :func:`run_grid` collects: every table row and ``details.json`` entry, and of
    seed 0 the trained models, histories, arrays and density grids by dataset."""

    rows: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)
    models: dict = dataclasses.field(default_factory=dict)  # dataset -> {family: model}
    histories: dict = dataclasses.field(default_factory=dict)  # (dataset, family) -> History
    arrays: dict = dataclasses.field(default_factory=dict)  # dataset -> cell arrays
    density: dict = dataclasses.field(default_factory=dict)  # dataset -> (xs, ys, grids)
    timings: dict = dataclasses.field(default_factory=lambda: {"train_s": {}, "evaluate_s": {}})


def run_grid(
    names, seeds: int, budgets: Mapping[str, dict], settings: dict, rows: RowSpec, out: Path,
    *, script: str, progress: bool = True, fresh: bool = False,
) -> GridRun:  # fmt: skip
    """Train every (dataset, seed) cell (:func:`train_grid`: each family's runs as one
    program), then evaluate the cells seed by seed, saving each cell's arrays (and, for seed
    0, its density grids) under ``out`` as it finishes."""
    run = GridRun()
    trained = train_grid(names, seeds, budgets, out, script=script, progress=progress,
                         fresh=fresh)  # fmt: skip
    for seed in range(seeds):
        for name in names:
            run_cell(run, name, seed, trained[name, seed], budgets, settings, rows, out)
    return run


def run_cell(run: GridRun, name: str, seed: int, trained, budgets, settings, rows, out: Path):
    """One cell of :func:`run_grid`: evaluate its trained models, save, print, time."""
    models, hists, call_s = trained
    run.timings["train_s"].update({f"{name}/seed{seed}/{f}": s for f, s in call_s.items()})
    t0 = time.perf_counter()
    cell_rows, arrays, details = evaluate_cell(name, seed, models, hists, settings, rows)
    gaps = generalisation_gaps(models, budgets, arrays["train"], arrays["holdout"], seed)
    for row, (fam, _) in rows.items():
        details[row]["generalisation_gap"] = gaps[fam]
    run.rows += cell_rows
    run.details.update({f"{name}/seed{seed}/{m}": d for m, d in details.items()})
    results.write_cell_arrays(out, name, seed, **arrays)
    for r in cell_rows:
        print("      " + line(r))
    if seed == 0:
        run.models[name] = models
        run.histories.update({(name, fam): h for fam, h in hists.items()})
        run.arrays[name] = arrays
        run.density[name] = density_grids(
            name, models, arrays["train"], settings["grid"], len(arrays["holdout"])
        )
        results.write_density(out, name, *run.density[name])
    run.timings["evaluate_s"][f"{name}/seed{seed}"] = time.perf_counter() - t0


def run_studies(out: Path, run: GridRun, timings: dict, args) -> None:
    """The studies on a finished grid (unless ``args.no_studies``), with this run's trained
    score when it has one; their time goes into ``timings["studies_s"]``."""
    if args.no_studies:
        return
    t0 = time.perf_counter()
    learned, source = study_model(run.models)
    studies.run_studies(out, smoke=args.smoke, quick=args.mode == "quick", learned=learned,
                        learned_source=source, progress=not args.no_progress,
                        fresh=args.fresh)  # fmt: skip
    timings["studies_s"] = time.perf_counter() - t0


def render_report(out: Path, timings: dict, args):
    """The report of a finished results folder (unless ``args.no_report``: ``None``); its
    time goes into ``timings["report_s"]``."""
    if args.no_report:
        return None
    t0 = time.perf_counter()
    pdf = report.render(out)
    timings["report_s"] = time.perf_counter() - t0
    return pdf


def chunked_log_prob(model, points, chunk: int, **kwargs) -> np.ndarray:
    """``model.log_prob(points, **kwargs)`` in chunks of ``chunk`` points (the last one
    padded), so that the function compiled for the hold-out set's shape is reused instead of
    recompiled."""
    points = np.asarray(points)
    out = []
    for i in range(0, len(points), chunk):
        c = points[i : i + chunk]
        k = len(c)
        if k < chunk:
            c = np.concatenate([c, np.repeat(c[-1:], chunk - k, axis=0)])
        out.append(np.asarray(model.log_prob(c, **kwargs))[:k])
    return np.concatenate(out)


def density_grids(name: str, models: dict, train, n_grid: int, chunk: int):
    """Log-densities of the exact-likelihood families (at their
    :func:`~lab.registry.coarse_log_prob` settings) and of the data on one grid:
    ``(xs, ys, {family or "true": values})``."""
    lo, hi = figures.limits(train)
    xs, ys, pts = plotting.grid(lo, hi, n_grid)
    grids = {
        fam: chunked_log_prob(m, pts, chunk, **coarse_log_prob(fam, m))
        for fam, m in models.items()
        if flowlab.likelihood_kind(m) == "exact"
    }
    grids["true"] = datasets.log_prob(name, pts)
    return xs, ys, grids


def line(r: dict) -> str:
    """One row, printed as a cell finishes."""

    def f(v, spec):
        return "   n/a" if v is None else format(v, spec)

    return (
        f"{r['model']:<14} {r['likelihood_kind']:<5}  NLL {f(r['exact_nll'], '+.3f')}  "
        f"-bound {f(r['neg_bound'], '+.3f')}  KDE {f(r['kde_nll'], '+.3f')}  "
        f"KL gap {f(r['kl_gap'], '+.3f')}  BD {f(r['bhattacharyya'], '.4f')}  "
        f"energy {f(r['energy'], '.4f')}  NFE {r['sample_nfe']}  {r['sample_diagnostic'][:40]}"
    )


def study_model(models_by_dataset: dict):
    """The trained score the sampler study uses: the grid's own VP diffusion (or DDPM) on
    the Gaussian mixture, if the run has one; otherwise ``(None, "")`` (studies.py trains
    one)."""
    trained = models_by_dataset.get("gaussian_mixture", {})
    for fam in ("diffusion", "ddpm"):
        if fam in trained:
            return trained[fam], f"this run's {FAMILIES[fam].label} on gaussian_mixture (seed 0)"
    return None, ""
