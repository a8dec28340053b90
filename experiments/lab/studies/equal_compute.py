r"""The equal-compute study: every family trained for the same wall-clock seconds.

    python experiments/studies.py --equal-compute --results DIR              # 20 s, 3 seeds
    python experiments/studies.py --equal-compute --results DIR --smoke      # seconds, for CI

The comparison grid answers *which family is best at convergence* (each at its own tuned
budget); this study answers *which is best per second*: every family of :data:`FAMILIES`
is trained on one dataset for the same budget of :data:`SECONDS` seconds of training,
compilation and the hold-out checks included (``History.wall_time``, which starts before
the first step is compiled; every run starts with JAX's caches cleared, so each pays its
own compilation, as a fresh process would). Everything else is the family's default
(:data:`lab.registry.FAMILIES`), *including its learning-rate schedule, computed for its
default step count*: a run stopped by the clock stops before its learning rate has decayed
(and before its EMA has caught up), so the study measures what T seconds of each family's
default run give, not what a schedule tuned to T seconds would reach. The one change is the
check interval: the clock is read at every hold-out check, so checks come every
:data:`CHECK_FRACTION` of the default step count (0.25–0.55 s at the default speeds
below), and no
likelihood is tracked during training (the grid computes the exact NLL at every check,
which here would eat the budget of the exact-likelihood families only).

The stopping rule (:func:`stop_after`): a callback ends the run at the first check at which
``wall_time`` is at least T, so a run's recorded seconds lie in ``[T, T + its last check
interval]``; both, and the steps reached, are saved per run. A run that finishes its
default schedule before T stops there (``finished_schedule``). The keys follow the grid's
rule (data, sampling and oracle keys from the seed; a family's training key from the seed
and its position in the registry), and the trained models are evaluated by the grid's own
:func:`lab.grid.evaluate_cell`: the exact NLL or minus the bound with its standard error,
the KDE NLL, the energy distance to fresh true samples with its noise floor, and the rest of
a ``results.csv`` row.

Written under ``<results>/studies/equal_compute/``, each file atomically:
``models/<dataset>/seed<k>/<family>/`` (``model.eqx``, ``history.json``, ``run.json``),
``evaluations/<dataset>_seed<k>.json`` (the evaluated rows of one seed) and
``equal_compute.json`` (everything the report reads: :func:`load`). Re-running reuses every
finished run and evaluation with the same settings; an interrupted run is trained again
from the start (a resumed run would pay its compilation twice).

Choice of T and seeds. Trained to convergence at their defaults on the 2-core machine,
flow-matching CNF takes about 35 s, VP diffusion 40 s, the VAE 55 s, the EBM 45 s and the
GAN 25 s. T = 20 s lies below every one of them, where the question "best per second" has
an answer different from "best at convergence" (at those speeds the GAN gets about 80% of
its default run, flow matching 55%, VP diffusion half, the EBM 45%, the VAE 35%); with
T = 60 s most families would finish their schedules and the study would repeat the grid,
and with T = 5 s compilation would be most of the budget (the smoke runs compile for 2–8 s
on the loaded machine; maximum-likelihood CNF, which back-propagates through its ODE
solver, for about 20 s). Three seeds give a standard error over seeds. The cost: 24 runs of
20 s and a little overshoot, about 8 minutes, plus each seed's evaluation of eight families
(about a minute on a quiet machine, judged from the course project's 29 s for four
(dataset, family) cells): about 11 minutes in all, estimated; ``total_seconds`` records
what it took.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

import flowlab
from flowlab.evaluate import timed

from .. import pipeline, registry
from ..common import _jsonable, machine, write_json
from ..results import nan_from_json

SECONDS = 20.0
"""The default training budget of every run (seconds, compilation included)."""
SEEDS = 3
DATASET = "pinwheel"
FAMILIES = registry.ROW_ORDER
"""The families of the comparison table (the grid's eight)."""
CHECK_FRACTION = 0.01
"""A hold-out check (and a look at the clock) every this fraction of the default steps."""
SETTINGS = dict(n_samples=2000, sde_steps=500)
"""Evaluation settings: those of the full comparison grid (``compare.py``)."""

SMOKE_SECONDS = 1.5
SMOKE_FAMILIES = ("cnf_fm", "gan")
SMOKE_SETTINGS = dict(n_samples=300, sde_steps=20)
SMOKE_HP = dict(width=32, depth=2, batch_size=128)
"""A smoke run's smaller networks (the steps stay the defaults: the clock stops the run)."""

FOLDER = Path("studies") / "equal_compute"
SUMMARY = "equal_compute.json"


def study_hp(family: str, *, smoke: bool = False) -> dict:
    """The hyperparameters of a family's run in the study: its defaults (steps, network,
    batch, learning rate and schedule, EMA), checked every :data:`CHECK_FRACTION` of its
    default steps; with ``smoke``, the smaller networks of :data:`SMOKE_HP` and the
    family's own smoke settings (e.g. the EBM's shorter chains)."""
    fam = registry.family(family)
    hp = dict(fam.defaults)
    if smoke:
        hp.update({k: v for k, v in {**SMOKE_HP, **fam.smoke}.items() if k in hp})
    hp["eval_every"] = max(1, round(CHECK_FRACTION * hp["steps"]))
    return hp


def stop_after(seconds: float):
    """The stopping rule: a :func:`flowlab.fit` callback that ends training at the first
    check at which the run's ``wall_time`` is at least ``seconds``."""

    def callback(step: int, history: flowlab.History) -> bool:
        return history.wall_time[-1] >= seconds

    return callback


def _rows(families) -> dict:
    """The table rows of ``families``: the registry's (a family sampled one way each)."""
    rows = {}
    for fam in families:
        spec = registry.FAMILIES[fam].rows or {fam: registry.Row(registry.LABELS[fam])}
        rows.update({row: (fam, r.sampler) for row, r in spec.items()})
    return rows


def _check_seconds(model, hp: dict, train, holdout, key) -> float:
    """What one hold-out check costs once compiled: the objective on the hold-out set and on
    as many training points, each tiled as :func:`flowlab.fit` tiles them (median of one
    timed call after a compiling one, both sets)."""
    objective = registry.build_objective(hp)
    repeats = getattr(objective, "holdout_repeats", 1)
    loss = eqx.filter_jit(lambda m, x, k: objective(m, x, k))
    total = 0.0
    for data in (holdout, train[: len(holdout)]):
        _, s = timed(loss, model, jnp.tile(data, (repeats, 1)), key, repeats=1)
        total += s
    return total


def train_run(
    family: str,
    dataset: str,
    seed: int,
    seconds: float,
    folder: Path,
    *,
    smoke: bool = False,
    fresh: bool = False,
    progress: bool = False,
):
    """Train (or reuse from ``folder``) one family for ``seconds`` of wall-clock training
    on one (dataset, seed): ``(model, history, run record)``. The record holds the seconds
    and steps the run got, its last check interval, whether it finished its default
    schedule, the estimated seconds spent in hold-out checks, and the machine's load."""
    args = argparse.Namespace(dataset=dataset, seed=seed)
    train, holdout, keys, hp = pipeline.prepare(family, args, study_hp(family, smoke=smoke))
    index = list(registry.FAMILIES).index(family)  # the grid's rule: the seed and the position
    key = jax.random.fold_in(keys["train"], index)
    paths = {n: folder / n for n in ("model.eqx", "history.json", "run.json")}
    wanted = dict(family=family, dataset=dataset, seed=seed, seconds=seconds, hp=hp)
    if fresh:
        for p in paths.values():
            p.unlink(missing_ok=True)
    if all(p.exists() for p in paths.values()):
        record = _read_json(paths["run.json"])
        if {k: record.get(k) for k in wanted} == _roundtrip(wanted):
            model, _ = flowlab.load_model(paths["model.eqx"])
            return model, flowlab.History.load(paths["history.json"]), dict(record, reused=True)
    for p in paths.values():  # a stale or partial run is trained again from the start
        p.unlink(missing_ok=True)
    jax.clear_caches()  # every run pays its own compilation, as a fresh process would
    load_before, t0 = os.getloadavg()[0], time.perf_counter()
    model, history = flowlab.fit(
        pipeline.build_model(hp),
        registry.build_objective(hp),
        train,
        holdout,
        key=key,
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=registry.build_optimizer(hp),
        eval_every=hp["eval_every"],
        ema_decay=hp["ema_decay"],
        metrics={},
        hyperparameters=hp,
        progress=progress,
        callback=stop_after(seconds),
    )
    call_s, load_after = time.perf_counter() - t0, os.getloadavg()[0]
    wall = history.wall_time
    check_s = _check_seconds(model, hp, train, holdout, jax.random.key(0))
    record = dict(
        wanted,
        train_seconds=wall[-1],
        last_interval_s=wall[-1] - (wall[-2] if len(wall) > 1 else 0.0),
        first_check_s=wall[0],
        steps=history.step[-1],
        default_steps=hp["steps"],
        eval_every=hp["eval_every"],
        checks=len(history.step),
        finished_schedule=history.step[-1] >= hp["steps"],
        check_seconds_each=check_s,
        check_seconds=check_s * len(history.step),
        call_seconds=call_s,
        load_average=[load_before, load_after],
        niceness=os.nice(0),
    )
    folder.mkdir(parents=True, exist_ok=True)
    history.save(paths["history.json"])
    flowlab.save_model(paths["model.eqx"], model, hp)
    write_json(paths["run.json"], record)  # written last: its presence marks a finished run
    return model, history, dict(record, reused=False)


def evaluate_seed(
    dataset: str, seed: int, models: dict, histories: dict, records: dict, settings: dict,
    rows: dict, path: Path,
) -> tuple[list, dict]:  # fmt: skip
    """The ``results.csv`` rows and ``details.json`` entries of one seed (the oracle
    included), evaluated by :func:`lab.grid.evaluate_cell`, or reused from ``path`` for
    every row whose run and settings are unchanged."""
    saved = _read_json(path) if path.exists() else {}
    ident = {row: _run_id(records[fam]) for row, (fam, _) in rows.items()}
    same = saved.get("settings") == _roundtrip(settings)
    keep = {r for r in rows if same and saved.get("runs", {}).get(r) == ident[r]}
    todo = {r: spec for r, spec in rows.items() if r not in keep}
    if not todo and "oracle" in saved.get("details", {}):
        return saved["records"], saved["details"]
    # the grid imports the studies (and the report); imported here, at call time, so that
    # lab.studies stays below both
    from ..grid import evaluate_cell

    new_records, _, new_details = evaluate_cell(dataset, seed, models, histories, settings, todo)
    old = {r["model"]: r for r in saved.get("records", []) if r["model"] in keep}
    by_row = {**old, **{r["model"]: r for r in new_records}}
    details = {r: d for r, d in saved.get("details", {}).items() if r in keep}
    details.update(new_details)
    records_out = [by_row[r] for r in [*rows, "oracle"]]
    details_out = {r: details[r] for r in [*rows, "oracle"]}
    write_json(path, dict(settings=settings, runs=ident, records=records_out, details=details_out))
    return _roundtrip(records_out), _roundtrip(details_out)


def run(
    out: Path,
    *,
    dataset: str = DATASET,
    seconds: float | None = None,
    seeds: int | None = None,
    families=None,
    settings: dict | None = None,
    smoke: bool = False,
    fresh: bool = False,
    progress: bool = False,
    log=print,
) -> dict:
    """Train every family of ``families`` for ``seconds`` on ``dataset`` with seeds
    ``0 .. seeds - 1`` (seed by seed, so that an interrupted study holds whole seeds),
    evaluate them as the grid does, and write ``out/studies/equal_compute/equal_compute.json``
    (returned). ``None`` means :data:`SECONDS`, :data:`SEEDS` and :data:`FAMILIES`, or with
    ``smoke`` :data:`SMOKE_SECONDS`, one seed and :data:`SMOKE_FAMILIES`, with smaller
    networks and evaluation (:data:`SMOKE_HP`, :data:`SMOKE_SETTINGS`); ``fresh``: retrain
    every run."""
    if seconds is None:
        seconds = SMOKE_SECONDS if smoke else SECONDS
    if seeds is None:
        seeds = 1 if smoke else SEEDS
    if families is None:
        families = SMOKE_FAMILIES if smoke else FAMILIES
    if seconds <= 0:
        raise ValueError(f"expected seconds > 0, got {seconds}")
    if seeds < 1:
        raise ValueError(f"expected seeds >= 1, got {seeds}")
    families = [registry.family(f).name for f in families]
    settings = dict(SMOKE_SETTINGS if smoke else SETTINGS, **(settings or {}))
    root = Path(out) / FOLDER
    rows = _rows(families)
    t0 = time.perf_counter()
    runs, records, details = [], [], {}
    for seed in range(seeds):
        models, histories, recs = {}, {}, {}
        for fam in families:
            folder = root / "models" / dataset / f"seed{seed}" / fam
            models[fam], histories[fam], recs[fam] = train_run(
                fam, dataset, seed, seconds, folder, smoke=smoke, fresh=fresh, progress=progress
            )
            r = recs[fam]
            log(
                f"[equal compute] {dataset} seed {seed} {fam}: {r['steps']} of "
                f"{r['default_steps']} steps in {r['train_seconds']:.2f} s (budget {seconds:g} s, "
                f"last check interval {r['last_interval_s']:.2f} s)"
                + (" (reused)" if r["reused"] else "")
            )
        runs += [recs[f] for f in families]
        path = root / "evaluations" / f"{dataset}_seed{seed}.json"
        seed_records, seed_details = evaluate_seed(
            dataset, seed, models, histories, recs, settings, rows, path
        )
        records += seed_records
        details.update({f"seed{seed}/{r}": d for r, d in seed_details.items()})
    study = dict(
        dataset=dataset,
        seconds=seconds,
        seeds=list(range(seeds)),
        families=families,
        rows={r: fam for r, (fam, _) in rows.items()},
        labels={k: registry.LABELS.get(k, k) for k in [*families, *rows, "oracle"]},
        smoke=smoke,
        settings=settings,
        check_fraction=CHECK_FRACTION,
        runs=runs,
        records=records,
        details=details,
        machine=machine(),
        total_seconds=time.perf_counter() - t0,
    )
    write_json(root / SUMMARY, study)
    log(f"[equal compute] {len(runs)} runs in {study['total_seconds']:.0f} s; {root / SUMMARY}")
    return _roundtrip(study)


def load(results: Path) -> dict | None:
    """The study saved in a results folder (``None`` if it has none), with JSON's ``null``
    (a non-finite number) read back as NaN."""
    path = Path(results) / FOLDER / SUMMARY
    return nan_from_json(_read_json(path)) if path.exists() else None


def _run_id(record: dict) -> list:
    """What identifies a trained run for its evaluation: where it stopped and when."""
    return [record["steps"], record["train_seconds"]]


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


def _roundtrip(obj):
    """``obj`` as its JSON file reads back (tuples as lists, numpy scalars as numbers)."""
    return json.loads(json.dumps(_jsonable(obj)))


__all__ = [
    "CHECK_FRACTION",
    "DATASET",
    "FAMILIES",
    "SECONDS",
    "SEEDS",
    "SETTINGS",
    "SMOKE_FAMILIES",
    "SMOKE_SECONDS",
    "evaluate_seed",
    "load",
    "run",
    "stop_after",
    "study_hp",
    "train_run",
]
