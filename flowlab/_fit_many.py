r"""Many independent training runs as one program: :func:`fit_many`.

R runs of one architecture and objective (different seeds, datasets, initial weights) are
stacked on a leading *run axis* — models, optimiser states, EMAs, objective states, keys
and, where they differ, the data — and each chunk of steps of all R runs is one
``jax.vmap``-ed ``lax.scan`` under one jit. Run ``r`` of a batch follows exactly the
computation :func:`flowlab.fit` does for it alone (same key splits, same batches, same
evaluations), so its numbers agree with the lone run's to float rounding. On a 2-core CPU it
buys little (flow matching at batch 256: 1.24x per run at R = 3; ``benchmarks/batched.py``),
since one run's products already keep the cores busy; on an accelerator it is one launch
instead of R. With several devices the run axis is sharded over them (a 1-D
``jax.sharding.Mesh`` named ``"runs"``, ``NamedSharding``): each device trains its share of
the runs and nothing crosses between them. Under ``jax.distributed`` the same code spans
hosts (``jax.devices()`` lists every host's devices).

Every family trains this way, maximum likelihood included (its adaptive solves are
batched: a chunk's solve takes as many steps as the run that needs most, the other runs
wait: 0.8x of one run after another on the CPU), and the EBM on one data set (its data box
is a static field). Per-run histories, metrics and early stopping
(``callback`` stops one run: its state is frozen while the others go on), one checkpoint
for the batch, and exact resumption, as :func:`flowlab.fit`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._checkpoint import save_checkpoint
from ._checks import check_count, check_key
from ._compile import CompileClock
from ._fit import (
    History,
    Trainer,
    TrainState,
    _check_checkpoint_path,
    _check_data,
    _check_ema_decay,
    _holdout_repeats,
    _load_run,
    _log_resume,
    _progress_bar,
    _record,
    _run_config,
    _split_loss,
)
from ._model import trainable_filter
from .optim import default_optimizer

__all__ = ["fit_many", "stack", "unstack"]


def stack(trees: Sequence[Any]) -> Any:
    """One pytree whose array leaves are the leaves of ``trees`` stacked on a new leading
    axis (the run axis); every tree must have the same structure."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Run ``index`` of a stacked pytree (its array leaves indexed on the leading axis)."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


class _Batch(eqx.Module):
    """What the run axis does not touch: the objective, optimiser and the model's
    non-array parts (architecture, activation, solver options), shared by every run."""

    template: Trainer

    def trainer(self, static_arrays) -> Trainer:
        t = self.template
        static = eqx.combine(static_arrays, t.static)
        return Trainer(t.objective, t.optimizer, static, t.batch_size, t.ema_decay)


def _in_axes(data_batched: bool):
    return 0 if data_batched else None


@eqx.filter_jit
def _init_many(batch: _Batch, static_arrays, params, data, keys, data_batched: bool):
    def one(sa, p, d, k):
        return batch.trainer(sa).init(p, d, k)

    return jax.vmap(one, in_axes=(0, 0, _in_axes(data_batched), 0))(
        static_arrays, params, data, keys
    )


@eqx.filter_jit
def _run_many(
    batch: _Batch, static_arrays, state, data, keys, chunk, active, n_steps, data_batched
):
    """Chunk ``chunk`` of every run: ``n_steps`` steps from ``fold_in(keys[r], chunk)``, as
    :func:`flowlab.fit` runs its chunk ``chunk``."""

    def one(sa, s, d, k, a):
        trainer = batch.trainer(sa)
        k = jax.random.fold_in(k, chunk)

        def body(s, k):
            s, loss, aux = trainer.step(s, d, k)
            return s, (loss, aux)

        new, (losses, aux) = jax.lax.scan(body, s, jax.random.split(k, n_steps))
        # a stopped run keeps its state (its steps are computed and dropped)
        new = jax.tree_util.tree_map(lambda n, o: jnp.where(a, n, o), new, s)
        return new, losses, aux

    return jax.vmap(one, in_axes=(0, 0, _in_axes(data_batched), 0, 0))(
        static_arrays, state, data, keys, active
    )


@eqx.filter_jit
def _eval_many(batch: _Batch, static_arrays, state, data, keys, data_batched: bool):
    def one(sa, s, d, k):
        trainer = batch.trainer(sa)
        return _split_loss(trainer.objective(trainer.model(s), d, k))

    return jax.vmap(one, in_axes=(0, 0, _in_axes(data_batched), 0))(
        static_arrays, state, data, keys
    )


def _as_runs(data, n_runs: int, name: str):
    """``data`` as one shared ``(n, d)`` array or ``(R, n, d)``: returns (array, batched)."""
    if isinstance(data, (list, tuple)):
        if len(data) != n_runs:
            raise ValueError(f"{name} lists {len(data)} data sets for {n_runs} runs")
        shapes = {tuple(np.shape(x)) for x in data}
        if len(shapes) != 1:
            raise ValueError(
                f"the runs' {name} must share one shape to be stacked; got shapes {sorted(shapes)}"
            )
        return list(data), True
    shape = np.shape(data)
    if len(shape) == 3:
        if shape[0] != n_runs:
            raise ValueError(
                f"{name} has shape {shape}: {shape[0]} data sets on its leading axis for "
                f"{n_runs} runs"
            )
        return [data[r] for r in range(n_runs)], True
    return [data] * n_runs, False


def _per_run(value, n_runs: int, name: str, kind) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n_runs:
            raise ValueError(f"{name} has {len(value)} entries for {n_runs} runs")
        return list(value)
    if value is None or isinstance(value, kind):
        return [value] * n_runs
    raise TypeError(f"{name} must be a {kind.__name__} or a list of one per run")


def _run_keys(keys, n_runs: int | None) -> list:
    if isinstance(keys, (list, tuple)):
        out = list(keys)
    else:
        keys = jnp.asarray(keys)
        if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1:
            raise TypeError(
                "keys must be a list of jax.random.key(...) or a 1-D array of them (e.g. "
                f"jax.random.split(key, R)); got {keys.dtype} of shape {keys.shape}"
            )
        out = [keys[r] for r in range(keys.shape[0])]
    if n_runs is not None and len(out) != n_runs:
        raise ValueError(f"{len(out)} keys for {n_runs} models: one key per run")
    for r, key in enumerate(out):
        check_key(key, f"keys[{r}]")
    return out


def _mesh(n_runs: int, devices) -> Mesh | None:
    """A 1-D mesh over as many of ``devices`` as divide the number of runs (``None`` for
    one device)."""
    devices = list(jax.devices() if devices is None else devices)
    n = max(k for k in range(1, len(devices) + 1) if n_runs % k == 0)
    return Mesh(np.array(devices[:n]), ("runs",)) if n > 1 else None


def _place(tree, mesh: Mesh | None, batched: bool = True):
    if mesh is None:
        return tree
    spec = PartitionSpec("runs") if batched else PartitionSpec()
    sharding = NamedSharding(mesh, spec)
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)


def fit_many(
    models: Sequence[Any],
    loss_fn: Callable,
    train_data,
    holdout_data,
    *,
    keys,
    steps: int,
    batch_size: int = 512,
    optimizer: optax.GradientTransformation | None = None,
    eval_every: int = 250,
    ema_decay: float | None = None,
    metrics: dict[str, Callable[[Any], float]] | Sequence[dict] | None = None,
    checkpoint: str | os.PathLike | None = None,
    hyperparameters: dict[str, Any] | Sequence[dict] | None = None,
    progress: bool = True,
    filter_spec: Any = None,
    callback: Callable[[int, int, History], bool | None] | None = None,
    devices: Sequence[Any] | None = None,
) -> tuple[list[Any], list[History]]:
    r"""Train R independent runs as one program; return ``(models, histories)``, R each.

    Run ``r`` is the run ``fit(models[r], loss_fn, train_data[r], holdout_data[r],
    key=keys[r], ...)`` would do, with the same numbers to float rounding; all runs share
    the objective, optimiser, step count, batch size, EMA and evaluation interval, and
    their models share an architecture (the same non-array fields; the arrays — weights,
    standardisation — may differ).

    Arguments:
        models: R models of one architecture (a list).
        loss_fn: the objective, shared.
        train_data, holdout_data: one ``(n, d)`` array shared by every run, or one per run
            (a list of R arrays of one shape, or an ``(R, n, d)`` array).
        keys: R PRNG keys (a list, or ``jax.random.split(key, R)``); run ``r`` is a
            function of ``keys[r]`` as :func:`flowlab.fit`'s run is of its ``key``.
        steps, batch_size, optimizer, eval_every, ema_decay, filter_spec: as
            :func:`flowlab.fit`, shared.
        metrics: ``name -> fn(model) -> float`` for every run, or a list of one such dict
            per run (e.g. each run's own hold-out NLL); evaluated on each run's model at
            every evaluation.
        checkpoint: one file for the whole batch; calling again with the same arguments
            resumes from it with exactly the numbers of an uninterrupted batch (it records
            each run's hyperparameters and data fingerprint, the objective and optimiser,
            and refuses a batch that differs, as :func:`flowlab.fit` does).
        hyperparameters: one dict for every run, or a list of one per run (saved in the
            checkpoint and checked on resume).
        progress: show one progress bar for the batch.
        callback: ``callback(run, step, history)`` after each evaluation of each running
            run; ``True`` stops that run there (its returned model is that step's) while
            the others go on.
        devices: the devices to shard the run axis over (default ``jax.devices()``): as
            many as divide R are used, each holding R / n of the runs.

    ``History.wall_time`` and ``compile_time`` are the batch's (shared by its runs).

    Raises:
        ValueError: as :func:`flowlab.fit` (counts, ``ema_decay``, data, checkpoint), and
            for runs that cannot share one program (a different number of keys, data sets
            or per-run entries than models; models that differ in a non-array field).
    """
    models = list(models)
    if not models:
        raise ValueError("fit_many needs at least one model")
    n_runs = len(models)
    run_keys = _run_keys(keys, n_runs)
    steps = check_count(steps, "steps")
    batch_size = check_count(batch_size, "batch_size")
    eval_every = check_count(eval_every, "eval_every")
    _check_ema_decay(ema_decay)
    _check_checkpoint_path(checkpoint)
    trains, train_batched = _as_runs(train_data, n_runs, "train_data")
    holdouts, holdout_batched = _as_runs(holdout_data, n_runs, "holdout_data")
    checked = [_check_data(m, t, h) for m, t, h in zip(models, trains, holdouts, strict=True)]
    trains, holdouts = [c[0] for c in checked], [c[1] for c in checked]
    if optimizer is None:
        optimizer = default_optimizer(steps)
    run_metrics = [dict(m or {}) for m in _per_run(metrics, n_runs, "metrics", dict)]
    hps = []
    for hp in _per_run(hyperparameters, n_runs, "hyperparameters", dict):
        hp = dict(hp or {})
        hp.setdefault("steps", steps)
        hp.setdefault("batch_size", batch_size)
        hp.setdefault("eval_every", eval_every)
        hp.setdefault("ema_decay", ema_decay)
        hps.append(hp)
    configs = [
        _run_config(loss_fn, optimizer, hp, t, h)
        for hp, t, h in zip(hps, trains, holdouts, strict=True)
    ]
    config = {
        "runs": n_runs,
        "configs": configs,
        # each run's config also at the top, so that read_header shows the first run's
        **configs[0],
    }

    # split every model into what is trained, the other arrays, and the shared rest
    params, static_arrays, rest = [], [], None
    for r, model in enumerate(models):
        spec = trainable_filter(model) if filter_spec is None else filter_spec
        p, static = eqx.partition(model, spec)
        arrays, others = eqx.partition(static, eqx.is_array)
        if rest is None:
            rest, first_params = others, p
        elif not eqx.tree_equal(others, rest) or (
            jax.tree_util.tree_structure(p) != jax.tree_util.tree_structure(first_params)
        ):
            where = _first_difference(others, rest, "model")
            raise ValueError(
                f"model {r} differs from model 0 in a non-array field ({where}): the runs of "
                "one batch must share their architecture and every static field (width, "
                "depth, activation, solver options, an EBM's data box, ...); train them in "
                "separate batches"
            )
        params.append(p)
        static_arrays.append(arrays)

    mesh = _mesh(n_runs, devices)
    batch = _Batch(Trainer(loss_fn, optimizer, rest, batch_size, ema_decay))
    static_arrays = _place(stack(static_arrays), mesh)
    split = [jax.random.split(k, 3) for k in run_keys]
    train_keys = _place(jnp.stack([s[0] for s in split]), mesh)
    eval_keys = _place(jnp.stack([s[1] for s in split]), mesh)
    init_keys = _place(jnp.stack([s[2] for s in split]), mesh)
    train = _place(jnp.stack(trains) if train_batched else trains[0], mesh, train_batched)
    repeats = _holdout_repeats(loss_fn)
    holdout_rep = [jnp.tile(h, (repeats, 1)) for h in holdouts]
    train_rep = [
        jnp.tile(t[: h.shape[0]], (repeats, 1)) for t, h in zip(trains, holdouts, strict=True)
    ]
    if holdout_batched or train_batched:  # the training subset follows the training data
        holdout_rep, train_rep = jnp.stack(holdout_rep), jnp.stack(train_rep)
        eval_batched = True
    else:
        holdout_rep, train_rep, eval_batched = holdout_rep[0], train_rep[0], False
    holdout_rep = _place(holdout_rep, mesh, eval_batched)
    train_rep = _place(train_rep, mesh, eval_batched)

    state = _init_many(
        batch, static_arrays, _place(stack(params), mesh), train, init_keys, train_batched
    )
    histories = [History(metrics={name: [] for name in m}, runs=n_runs) for m in run_metrics]
    active = np.ones(n_runs, bool)
    start_step = 0
    if checkpoint is not None and Path(checkpoint).exists():
        header, (state, saved_active) = _load_run(checkpoint, config, (state, jnp.asarray(active)))
        histories = [History.from_dict(h) for h in header["histories"]]
        active, start_step = np.asarray(saved_active, bool), header["step"]
        _log_resume(checkpoint, start_step, steps, f"{n_runs} runs ")
        state = _place(state, mesh)
    elapsed = histories[0].wall_time[-1] if histories[0].wall_time else 0.0
    bar = _progress_bar(steps, start_step) if progress and start_step < steps else None
    if bar is not None:
        bar.set_description(f"training {n_runs} runs")

    t_start = time.perf_counter() - elapsed
    step = start_step
    with CompileClock() as clock:
        compiled_before = histories[0].compile_time
        while step < steps and active.any():
            n = min(eval_every, steps - step)
            chunk = step // eval_every
            state, losses, aux = _run_many(
                batch,
                static_arrays,
                state,
                train,
                train_keys,
                jnp.asarray(chunk, jnp.int32),
                _place(jnp.asarray(active), mesh),
                n,
                train_batched,
            )
            step += n
            holdout = _eval_many(batch, static_arrays, state, holdout_rep, eval_keys, eval_batched)
            train_eval = _eval_many(
                batch, static_arrays, state, train_rep, eval_keys, eval_batched
            )[0]
            losses, aux = np.asarray(losses), jax.tree_util.tree_map(np.asarray, aux)
            holdout = jax.tree_util.tree_map(np.asarray, holdout)
            train_eval = np.asarray(train_eval)
            for r in np.flatnonzero(active):
                history = histories[r]
                history.train_eval_loss.append(float(train_eval[r]))
                current = _model_of(batch, static_arrays, state, r) if run_metrics[r] else None
                _record(
                    history,
                    step,
                    losses[r],
                    {k: v[r] for k, v in aux.items()},
                    (holdout[0][r], {k: v[r] for k, v in holdout[1].items()}),
                    run_metrics[r],
                    current,
                )
            now = time.perf_counter() - t_start
            for r in np.flatnonzero(active):
                histories[r].wall_time.append(now)
            for h in histories:
                h.compile_time = compiled_before + clock.seconds
            for r in np.flatnonzero(active):
                if not math.isfinite(histories[r].train_loss[-1]):
                    raise FloatingPointError(
                        f"run {r}: training loss became non-finite between steps {step - n} "
                        f"and {step}; lower the learning rate or (for maximum likelihood) "
                        "loosen the solver"
                    )
            if callback is not None:
                for r in np.flatnonzero(active):
                    if callback(int(r), step, histories[r]):
                        active[r] = False
            if checkpoint is not None:
                header = {
                    **config,
                    "step": step,
                    "histories": [h.to_dict() for h in histories],
                }
                save_checkpoint(checkpoint, (state, jnp.asarray(active)), header)
            if bar is not None:
                bar.update(n)
                bar.set_postfix(
                    running=int(active.sum()),
                    holdout=f"{np.mean([h.holdout_loss[-1] for h in histories]):.3f}",
                )
    if bar is not None:
        bar.close()
    out = [_model_of(batch, static_arrays, state, r) for r in range(n_runs)]
    return out, histories


def _first_difference(a, b, path: str) -> str:
    """Where two pytrees of non-array fields first differ, e.g. ``model.box: ... vs ...``."""
    if type(a) is not type(b):
        return f"{path}: {type(b).__name__} vs {type(a).__name__}"
    if isinstance(a, eqx.Module):
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name, None), getattr(b, field.name, None)
            if not eqx.tree_equal(x, y):
                return _first_difference(x, y, f"{path}.{field.name}")
    elif isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if not eqx.tree_equal(x, y):
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {b!r} in model 0, {a!r} here"


def _model_of(batch: _Batch, static_arrays, state: TrainState, r: int):
    """Run ``r``'s model (its EMA weights when kept)."""
    trainer = batch.trainer(unstack(static_arrays, r))
    return trainer.model(unstack(state, r))
