"""The benchmarks' models and the measurements every section takes of them.

Models come from the experiments' one factory (``experiments/lab/registry.py``); trained ones
from ``experiments/compare.py``'s output folder (checkerboard, seed 0). Training is timed
through the public :class:`flowlab.Trainer`: ``Trainer.run`` fuses a chunk of steps in one
``lax.scan`` under one jit, as :func:`flowlab.fit` runs them.
"""

from __future__ import annotations

import time
from pathlib import Path

import _timing  # first: puts experiments/ on sys.path for factory
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from lab import registry

import flowlab
from flowlab import datasets

ROOT = Path(__file__).resolve().parent.parent
COMPARE_MODELS = ROOT / "results" / "compare" / "models" / "checkerboard" / "seed0"


def split(dataset: str):
    """The 2000 training and 500 hold-out points of ``datasets.split(dataset, key(0))``: the
    data every side-by-side and time-to-quality benchmark trains and scores on."""
    return datasets.split(dataset, jax.random.key(0))


def checkerboard_split():
    """The checkerboard training and hold-out sets of key 0."""
    return split("checkerboard")


def note_hits(point: dict, targets, hits: dict) -> None:
    """Record in ``hits`` (by ``f"{target:.3f}"``) the first check ``point`` (``step``,
    ``train_s``, ``holdout_nll``) at or below each target not yet reached."""
    for target in targets:
        key = f"{target:.3f}"
        if key not in hits and point["holdout_nll"] <= target:
            hits[key] = {"step": point["step"], "train_s": point["train_s"]}


def build(family: str, width: int, depth: int, train, seed: int = 0, **solver_options):
    """An untrained model of ``family`` (a name of ``registry.FAMILIES``) standardised on
    ``train``, its weights drawn from ``seed``; ``solver_options`` change the fields of its
    :class:`flowlab.SolverOptions`."""
    std = flowlab.Standardize.fit(train)
    hp = registry.family(family).defaults | {
        "family": family,
        "seed": seed,
        "width": width,
        "depth": depth,
        "standardize_loc": np.asarray(std.loc).tolist(),
        "standardize_scale": np.asarray(std.scale).tolist(),
    }
    model = registry.build_model(hp)
    return model.with_options(**solver_options) if solver_options else model


def trained(family: str):
    """The checkerboard seed-0 model of ``experiments/compare.py`` and its hyperparameters
    (or ``(None, None)`` when compare.py has not been run)."""
    path = COMPARE_MODELS / family / "model.eqx"
    if not path.exists():
        return None, None
    return flowlab.load_model(path, registry.build_model)


def trained_or_untrained(family: str, train):
    """The trained model of ``family``, else an untrained width-128 depth-4 one."""
    model, _ = trained(family)
    return build(family, 128, 4, train) if model is None else model


def cast(tree, dtype):
    """``tree`` with every floating-point array in ``dtype``."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def trainer(model, loss, data, batch, lr=2e-3):
    """``(Trainer, TrainState)`` of ``model`` (its trainable part; no EMA) with
    ``default_optimizer(10_000, lr)``."""
    params, static = eqx.partition(model, model.trainable())
    t = flowlab.Trainer(loss, flowlab.default_optimizer(10_000, learning_rate=lr), static, batch)
    return t, t.init(params, data, jax.random.key(0))


def bench_train(model, loss, data, batch, chunk, repeats, lr=2e-3):
    """Steady-state training throughput of ``chunk`` steps fused in one scan."""
    tr, state = trainer(model, loss, data, batch, lr)
    t, first = _timing.median_time(
        lambda: tr.run(state, data, jax.random.key(0), chunk)[1], repeats
    )
    return {
        "batch": batch,
        "step_ms": 1e3 * t / chunk,
        "steps_per_s": chunk / t,
        "points_per_s": chunk * batch / t,
        "compile_s": max(first - t, 0.0),
    }


def bench_log_prob(model, x, repeats):
    """Time and NFE of the exact ``log_prob`` of the points ``x``."""
    _, stats = model.log_prob_with_stats(x)
    t, first = _timing.median_time(lambda: model.log_prob(x), repeats)
    return {
        "n": int(x.shape[0]),
        "time_s": t,
        "compile_s": max(first - t, 0.0),
        "nfe": int(stats.nfe),
    }


def bench_sample(model, n, repeats, sampler=None):
    """Time and NFE of ``n`` samples (``sampler``: a :mod:`flowlab.samplers` object, or
    ``None`` for the model's default)."""
    key = jax.random.key(3)
    _, stats = model.sample_with_stats(key, n, sampler=sampler)
    t, first = _timing.median_time(lambda: model.sample(key, n, sampler=sampler), repeats)
    return {"n": n, "time_s": t, "compile_s": max(first - t, 0.0), "nfe": int(stats.nfe)}


def fit_checking_nll(
    model,
    objective,
    train,
    holdout,
    *,
    key,
    hp,
    eval_every,
    stop=None,
    on_check=None,
    optimizer=None,
    scored=None,
):
    """:func:`flowlab.fit` of ``model`` with ``hp`` (steps, batch_size, lr, ema_decay; the
    default optimiser unless ``optimizer`` is given) that checks the exact hold-out NLL
    every ``eval_every`` steps.

    Returns ``(model, curve)``: one dict per check with ``step``, ``wall_s`` (fit's wall
    time: compile and checks included), ``train_s`` (the same without the NLL checks),
    ``holdout_nll`` and ``nfe`` (of that check's solve). ``on_check(point)`` is called after
    each check; training ends early when ``stop(point)`` is true. ``scored(model, step)``,
    when given, is the model whose NLL is checked (e.g. a bias-corrected EMA); its time
    counts as a check's."""
    eval_s, curve = [0.0], []

    def holdout_nll(m):
        t = time.perf_counter()
        if scored is not None:
            m = scored(m, min(eval_every * (len(curve) + 1), hp["steps"]))
        lp, stats = m.log_prob_with_stats(holdout)
        value = -float(jnp.mean(lp))
        eval_s[0] += time.perf_counter() - t
        curve.append({"holdout_nll": value, "nfe": int(stats.nfe)})
        return value

    def check(step, history):
        wall = history.wall_time[-1]
        curve[-1] |= {"step": step, "wall_s": wall, "train_s": wall - eval_s[0]}
        if on_check is not None:
            on_check(curve[-1])
        return stop is not None and stop(curve[-1])

    model, _ = flowlab.fit(
        model,
        objective,
        train,
        holdout,
        key=key,
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=(
            flowlab.default_optimizer(hp["steps"], hp["lr"]) if optimizer is None else optimizer
        ),
        eval_every=eval_every,
        ema_decay=hp["ema_decay"],
        metrics={"holdout_nll": holdout_nll},
        progress=False,
        callback=check,
    )
    return model, curve
