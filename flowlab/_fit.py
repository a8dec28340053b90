r"""The training loop, one for every model family: fused, resumable, with hold-out curves.

:class:`Trainer` holds what a step needs (objective, optimiser, batch size, EMA decay) and
runs many steps in one ``jax.lax.scan`` under ``eqx.filter_jit``; :func:`fit` drives it,
evaluates the hold-out loss every ``eval_every`` steps, keeps a :class:`History`, and
checkpoints (model, optimiser, EMA, objective state, history) so that a run resumes and
finishes with exactly the numbers of an uninterrupted one. What is trained is what the
model declares (``model.trainable()``); an objective's auxiliary outputs (e.g. each
player's loss of a GAN) are recorded every step; a stateful objective's state (e.g. a
contrastive-divergence replay buffer) rides along in the scan.

Public through :mod:`flowlab` (``flowlab.fit``, ``flowlab.Trainer``, ``flowlab.History``,
``flowlab.TrainState``); the optimisers live apart, in :mod:`flowlab.optim`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from ._checks import check_count, check_key, check_points
from ._compile import CompileClock
from ._fingerprint import describe_callable, describe_data
from ._model import AbstractModel, trainable_filter
from ._typing import Array, Key, Points
from .objectives import AbstractObjective, AbstractStatefulObjective
from .optim import Adam, default_optimizer

_log = logging.getLogger("flowlab")

__all__ = [
    "History",
    "TrainState",
    "Trainer",
    "fit",
]


def _describe_optimizer(optimizer) -> Any:
    """An optimiser's configuration for the checkpoint: its numbers (:class:`Adam`, or any
    with ``describe()``, e.g. :class:`~flowlab.TwoPlayerAdam`), or for another Optax
    transformation its type and a hash of its functions' code and closures (learning
    rates, schedules)."""
    if isinstance(optimizer, Adam) or callable(getattr(optimizer, "describe", None)):
        return optimizer.describe()
    return {"optax": describe_callable(optimizer)}


def _describe_objective(loss_fn) -> Any:
    """An objective's configuration for the checkpoint: an Equinox module (every flowlab
    objective) by its ``repr`` (its fields), any other callable by qualified name and a
    hash of its code and closure."""
    if isinstance(loss_fn, eqx.Module):
        return repr(loss_fn)
    return describe_callable(loss_fn)


def _check_ema_decay(ema_decay) -> None:
    if ema_decay is None:
        return
    real = isinstance(ema_decay, int | float | np.integer | np.floating)
    if isinstance(ema_decay, bool) or not real or not 0 <= ema_decay < 1:
        raise ValueError(
            "expected ema_decay to be None (no moving average) or a number in [0, 1) (the "
            f"weight of the old average at each step, e.g. 0.999), got {ema_decay!r}"
        )


@dataclasses.dataclass
class History:
    """What a training run did.

    Attributes:
        step, train_loss, holdout_loss, wall_time: one entry per evaluation; ``train_loss``
            is the mean over the steps since the previous evaluation; ``wall_time`` is
            seconds of training since the run began (resumes included, compile included).
        metrics: extra evaluations (name -> one value per evaluation), e.g. the exact
            hold-out NLL, and the hold-out values of an objective's auxiliary outputs
            (``holdout_<name>``).
        step_losses: the training loss of every step (for curves with an EMA).
        step_aux: an objective's auxiliary outputs, one value per step each.
        train_eval_loss: one entry per evaluation, the loss on a fixed subset of the
            training data as large as the hold-out set, computed exactly as
            ``holdout_loss`` is: with the same weights (the EMA where there is one) and the
            same key. ``holdout_loss - train_eval_loss`` is the generalisation gap, free of
            the EMA and of the objective's Monte Carlo noise (empty in histories saved
            before it was recorded).
        compile_time: seconds of ``wall_time`` spent compiling (tracing, lowering, and
            XLA's compile or the persistent cache's load; :class:`flowlab.CompileClock`),
            resumes included: ``wall_time[-1] - compile_time`` is the run without it.
        runs: how many runs trained in the same program (:func:`flowlab.fit_many`; 1 for
            :func:`flowlab.fit`). ``wall_time`` and ``compile_time`` are the program's,
            shared by its runs: ``wall_time[-1] / runs`` is this run's share.
    """

    step: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)
    holdout_loss: list[float] = dataclasses.field(default_factory=list)
    wall_time: list[float] = dataclasses.field(default_factory=list)
    metrics: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    step_aux: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    train_eval_loss: list[float] = dataclasses.field(default_factory=list)
    compile_time: float = 0.0
    runs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


class TrainState(eqx.Module):
    """The arrays a training run carries: trained parameters, their EMA (or ``None``),
    the optimiser state and the objective's state (or ``None``)."""

    params: Any
    ema: Any
    opt_state: Any
    objective_state: Any


def _split_loss(out) -> tuple[Array, dict]:
    if isinstance(out, tuple):
        loss, aux = out
        return loss, dict(aux)
    return out, {}


class Trainer(eqx.Module):
    """One optimiser step, and many fused in a scan, for a model's trained parameters.

    Arguments:
        objective: the loss (an :class:`~flowlab.objectives.AbstractObjective`, or any
            callable ``loss(model, batch, key)``).
        optimizer: an Optax transformation (e.g. :class:`~flowlab.optim.Adam`).
        static: the non-trained part of the model (from ``eqx.partition``).
        batch_size: points per step, drawn uniformly with replacement (a positive
            integer; it may exceed the number of points).
        ema_decay: decay of the weights' exponential moving average, in ``[0, 1)``, or
            ``None`` for none.

    Raises:
        ValueError: at construction, for a ``batch_size`` or ``ema_decay`` out of range.
    """

    objective: Any
    optimizer: Any
    static: Any
    batch_size: int = eqx.field(static=True)
    ema_decay: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_count(self.batch_size, "batch_size")
        _check_ema_decay(self.ema_decay)

    def init(self, params, data: Points, key: Key) -> TrainState:
        """The state of a fresh run."""
        obj_state = None
        if isinstance(self.objective, AbstractStatefulObjective):
            obj_state = self.objective.init_state(eqx.combine(params, self.static), data, key)
        ema = params if self.ema_decay is not None else None
        return TrainState(params, ema, self.optimizer.init(params), obj_state)

    def step(self, state: TrainState, data: Points, key: Key) -> tuple[TrainState, Array, dict]:
        """One step on a batch drawn from ``data``: ``(new state, loss, aux)`` (not jitted:
        ``run`` scans it; jit it yourself to dispatch steps one at a time)."""
        k_batch, k_loss = jax.random.split(key)
        idx = jax.random.randint(k_batch, (self.batch_size,), 0, data.shape[0])
        batch = data[idx]
        stateful = isinstance(self.objective, AbstractStatefulObjective)

        def loss_of(p):
            model = eqx.combine(p, self.static)
            if stateful:
                loss, aux, new = self.objective.step(model, batch, k_loss, state.objective_state)
                return loss, (aux, new)
            loss, aux = _split_loss(self.objective(model, batch, k_loss))
            return loss, (aux, None)

        (loss, (aux, obj_state)), grads = eqx.filter_value_and_grad(loss_of, has_aux=True)(
            state.params
        )
        # Optax mixes its int32 step count with floats (bias correction, schedules), which
        # JAX's strict dtype promotion (on in flowlab's test suite) refuses; flowlab's own
        # code is checked strictly, the optimiser's internals run with standard promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = eqx.apply_updates(state.params, updates)
        ema = state.ema
        if self.ema_decay is not None:
            ema = jax.tree_util.tree_map(
                lambda e, p: None if e is None else self.ema_decay * e + (1 - self.ema_decay) * p,
                ema,
                params,
                is_leaf=lambda x: x is None,
            )
        return TrainState(params, ema, opt_state, obj_state), loss, aux

    @eqx.filter_jit
    def run(self, state: TrainState, data: Points, key: Key, n_steps: int):
        """``n_steps`` steps in one ``lax.scan``: ``(new state, losses (n_steps,), aux)``."""

        def body(state, k):
            state, loss, aux = self.step(state, data, k)
            return state, (loss, aux)

        state, (losses, aux) = jax.lax.scan(body, state, jax.random.split(key, n_steps))
        return state, losses, aux

    def model(self, state: TrainState):
        """The model of a state: the EMA weights when kept, else the current ones."""
        return eqx.combine(state.ema if self.ema_decay is not None else state.params, self.static)


@eqx.filter_jit
def _holdout_loss(model, objective, holdout, key):
    return _split_loss(objective(model, holdout, key))


def _holdout_repeats(objective) -> int:
    if isinstance(objective, AbstractObjective):
        return objective.holdout_repeats
    return 1


def fit(
    model,
    loss_fn: Callable,
    train_data: Points,
    holdout_data: Points,
    *,
    key: Key,
    steps: int,
    batch_size: int = 512,
    optimizer: optax.GradientTransformation | None = None,
    eval_every: int = 250,
    ema_decay: float | None = None,
    metrics: dict[str, Callable[[Any], float]] | None = None,
    checkpoint: str | os.PathLike | None = None,
    hyperparameters: dict[str, Any] | None = None,
    progress: bool = True,
    filter_spec: Any = None,
    callback: Callable[[int, History], bool | None] | None = None,
):
    r"""Train ``model`` on ``train_data`` with ``loss_fn``; return ``(model, history)``.

    Steps run in chunks of ``eval_every``, each chunk one ``jax.lax.scan`` under
    ``eqx.filter_jit`` (one dispatch per chunk). After each chunk the hold-out loss is
    computed on all of ``holdout_data`` (tiled ``holdout_repeats`` times) with a fixed key
    (and, with the same weights and key, on as many training points: ``train_eval_loss``),
    ``metrics`` are evaluated on the current model, and — when ``checkpoint`` is a path —
    the run's state and history are saved atomically. Calling ``fit`` again with the same
    arguments and an existing checkpoint resumes from it and finishes with exactly the
    numbers an uninterrupted run would have given (chunk ``i`` always uses
    ``fold_in(key, i)``); it says so, with the step, on the ``"flowlab"`` logger (level
    INFO). The checkpoint records what the run trains on and with — the
    hyperparameters, the objective (its fields; a plain function by name and a hash of its
    code and closure), the optimiser, and the training and hold-out data (shape, dtype and a
    hash of their bytes) — and a resume that differs in any of them is refused.

    Arguments:
        model: a flowlab model (what it trains is ``model.trainable()``) or any Equinox
            module (every inexact array is trained).
        loss_fn: an objective from :mod:`flowlab.objectives` (or any
            ``loss(model, batch, key) -> scalar | (scalar, aux)``).
        train_data, holdout_data: shape ``(n, d)`` arrays, ``d`` the model's dimension.
        key: PRNG key; the whole run is a function of it.
        steps: total optimiser steps (a positive integer).
        batch_size: points per step, drawn uniformly with replacement (a positive integer;
            it may exceed the number of training points).
        optimizer: an Optax transformation (default :func:`~flowlab.optim.default_optimizer`).
        eval_every: steps between hold-out evaluations and checkpoints (a positive integer;
            the last chunk is shorter when it does not divide ``steps``).
        ema_decay: keep an exponential moving average of the weights with this decay, in
            ``[0, 1)``, and return it (hold-out losses are then those of the average);
            ``None`` keeps none.
        metrics: ``name -> fn(model) -> float`` evaluated at every evaluation.
        checkpoint: file path for a resumable checkpoint.
        hyperparameters: JSON-serialisable description of the run, saved in the checkpoint
            with the objective's and optimiser's configuration and the data's fingerprint;
            a checkpoint whose hyperparameters, objective, optimiser or data differ is
            refused rather than resumed.
        progress: show a progress bar.
        filter_spec: which parts of ``model`` to train (default ``model.trainable()``).
        callback: ``callback(step, history)`` after each evaluation and checkpoint; if it
            returns ``True`` training stops there and the model of that step is returned.

    Raises:
        ValueError: for a ``key`` that is not one PRNG key (e.g. an int seed), a count
            that is not a positive integer, an ``ema_decay`` outside
            ``[0, 1)``, data of the wrong shape or with non-finite values, a
            ``checkpoint`` that is a folder, or an objective that does not train this kind
            of model (at trace time).
        flowlab.CheckpointError: (a ``ValueError``) for a checkpoint written by another
            run (it names each entry that differs, saved and now), by a flowlab too old to
            record the data and objective it trained on, or not a checkpoint at all.
        FloatingPointError: when the training loss becomes non-finite.
    """
    check_key(key, "key")
    steps = check_count(steps, "steps")
    batch_size = check_count(batch_size, "batch_size")
    eval_every = check_count(eval_every, "eval_every")
    _check_ema_decay(ema_decay)
    _check_checkpoint_path(checkpoint)
    train_data, holdout_data = _check_data(model, train_data, holdout_data)
    if optimizer is None:
        optimizer = default_optimizer(steps)
    if filter_spec is None:
        filter_spec = trainable_filter(model)
    metrics = dict(metrics or {})
    hyperparameters = dict(hyperparameters or {})
    hyperparameters.setdefault("steps", steps)
    hyperparameters.setdefault("batch_size", batch_size)
    hyperparameters.setdefault("eval_every", eval_every)
    hyperparameters.setdefault("ema_decay", ema_decay)
    config = _run_config(loss_fn, optimizer, hyperparameters, train_data, holdout_data)

    params, static = eqx.partition(model, filter_spec)
    trainer = Trainer(loss_fn, optimizer, static, batch_size, ema_decay)
    train_key, eval_key, init_key = jax.random.split(key, 3)
    state = trainer.init(params, train_data, init_key)
    history, start_step = History(metrics={name: [] for name in metrics}), 0
    if checkpoint is not None and Path(checkpoint).exists():
        state, history, start_step = _resume(checkpoint, config, state)
        _log_resume(checkpoint, start_step, steps)
    elapsed = history.wall_time[-1] if history.wall_time else 0.0
    repeats = _holdout_repeats(loss_fn)
    holdout_rep = jnp.tile(holdout_data, (repeats, 1))
    train_rep = jnp.tile(train_data[: holdout_data.shape[0]], (repeats, 1))
    bar = _progress_bar(steps, start_step) if progress and start_step < steps else None

    t_start = time.perf_counter() - elapsed
    step = start_step
    with CompileClock() as clock:
        compiled_before = history.compile_time
        while step < steps:
            n = min(eval_every, steps - step)
            chunk = step // eval_every
            state, losses, aux = trainer.run(
                state, train_data, jax.random.fold_in(train_key, chunk), n
            )
            step += n
            current = trainer.model(state)
            holdout = _holdout_loss(current, loss_fn, holdout_rep, eval_key)
            train_eval = _holdout_loss(current, loss_fn, train_rep, eval_key)[0]
            history.train_eval_loss.append(float(train_eval))
            _record(history, step, np.asarray(losses), aux, holdout, metrics, current)
            history.wall_time.append(time.perf_counter() - t_start)
            history.compile_time = compiled_before + clock.seconds
            if not math.isfinite(history.train_loss[-1]):
                raise FloatingPointError(
                    f"training loss became non-finite between steps {step - n} and {step}; "
                    "lower the learning rate or (for maximum likelihood) loosen the solver"
                )
            if checkpoint is not None:
                header = {**config, "step": step, "history": history.to_dict()}
                save_checkpoint(checkpoint, state, header)
            if bar is not None:
                _show(bar, n, history)
            if callback is not None and callback(step, history):
                break
    if bar is not None:
        bar.close()
    return trainer.model(state), history


def _check_data(model, train_data, holdout_data) -> tuple[Points, Points]:
    """Both data sets as ``(n, d)`` float arrays, ``d`` the model's dimension (or the
    training data's, for a model that does not know it), or a ``ValueError`` naming both."""
    d = model.data_size if isinstance(model, AbstractModel) else None
    if d is None:
        d = train_data.shape[-1] if hasattr(train_data, "shape") else None
    for name, data in (("train_data", train_data), ("holdout_data", holdout_data)):
        shape = getattr(data, "shape", np.shape(data))
        if len(shape) == 2 and d is not None and shape[1] != d:
            raise ValueError(
                f"the model acts on {d}-dimensional points, but {name} has shape "
                f"{tuple(shape)} ({shape[1]}-dimensional)"
            )
    return check_points(train_data, d, "train_data"), check_points(holdout_data, d, "holdout_data")


def _log_resume(checkpoint, step: int, steps: int, what: str = "") -> None:
    """Say (logger ``"flowlab"``, level INFO) that a run resumes, and from which step."""
    done = " (finished: nothing left to train)" if step >= steps else ""
    _log.info("resuming %sfrom %s at step %d of %d%s", what, checkpoint, step, steps, done)


def _check_checkpoint_path(checkpoint) -> None:
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(
            f"expected checkpoint to be a file path (existing or not), got the folder {checkpoint}"
        )


def _run_config(loss_fn, optimizer, hyperparameters: dict, train_data, holdout_data) -> dict:
    """What a checkpoint records of the run, as JSON would read it back: a resumed run must
    match it exactly. ``data`` fingerprints both data sets (shape, dtype, SHA-256)."""
    config = {
        "hyperparameters": hyperparameters,
        "objective": _describe_objective(loss_fn),
        "optimizer": _describe_optimizer(optimizer),
        "data": {
            "train_data": describe_data(train_data),
            "holdout_data": describe_data(holdout_data),
        },
    }
    return json.loads(json.dumps(config))


def _resume(checkpoint, config: dict, state):
    """The training state and history saved in ``checkpoint``, after checking that it was
    written by the same run (hyperparameters, objective, optimiser, data); a
    :class:`~flowlab.CheckpointError` that shows the differences otherwise."""
    header, state = _load_run(checkpoint, config, state)
    return state, History.from_dict(header["history"]), header["step"]


def _differences(saved, now, path: str) -> list[tuple[str, Any, Any]]:
    """``(path, saved, now)`` of every leaf where two JSON values differ."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in list(now) + [k for k in saved if k not in now]:
            out += _differences(saved.get(k, "<missing>"), now.get(k, "<missing>"), f"{path}.{k}")
        return out
    nested = isinstance(saved, list) and any(isinstance(v, dict | list) for v in saved)
    if nested and isinstance(now, list) and len(saved) == len(now):  # e.g. fit_many's runs
        out = []
        for i, (a, b) in enumerate(zip(saved, now, strict=True)):
            out += _differences(a, b, f"{path}[{i}]")
        return out
    return [] if saved == now else [(path, saved, now)]


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_run(checkpoint, config: dict, like):
    """``(header, state)`` of ``checkpoint`` when its header matches ``config`` (else a
    :class:`~flowlab.CheckpointError` naming each entry that differs, saved and now); the
    state shaped ``like``."""
    header = read_header(checkpoint)  # compare the run first, then load its arrays
    if "data" not in header:
        raise CheckpointError(
            f"checkpoint {checkpoint} has no fingerprint of the data and objective it was "
            "trained with (it was written by an older flowlab), so this run cannot be "
            "checked against it: delete it (or use another path) to train from the start"
        )
    saved = {k: header.get(k) for k in config}
    if saved != config:
        top = [k for k in config if saved[k] != config[k]]
        diff = _differences(saved, config, "")
        lines = "\n".join(
            f"  {path[1:]}: saved {_short(old)}\n  {path[1:]}: now   {_short(new)}"
            for path, old, new in diff
        )
        raise CheckpointError(
            f"checkpoint {checkpoint} was written by a run with a different "
            f"{', '.join(top)}:\n{lines}\nuse another output path or delete the checkpoint"
        )
    return load_checkpoint(checkpoint, like)


def _record(history: History, step: int, losses, aux, holdout, metrics: dict, current) -> None:
    """Append one chunk's numbers to ``history``: the step, the mean and per-step training
    losses with their auxiliary outputs, the hold-out loss with its auxiliary outputs, and
    every metric of the current model."""
    holdout_loss, holdout_aux = holdout
    history.step.append(step)
    history.train_loss.append(float(losses.mean()))
    history.holdout_loss.append(float(holdout_loss))
    history.step_losses.extend(float(v) for v in losses)
    for name, values in aux.items():
        history.step_aux.setdefault(name, []).extend(float(v) for v in np.asarray(values))
    for name, value in holdout_aux.items():
        history.metrics.setdefault(f"holdout_{name}", []).append(float(value))
    for name, fn in metrics.items():
        history.metrics[name].append(float(fn(current)))


def _progress_bar(steps: int, start_step: int):
    return tqdm(total=steps, initial=start_step, desc="training", unit="step", dynamic_ncols=True)


def _show(bar, n: int, history: History) -> None:
    bar.update(n)
    post = {"train": f"{history.train_loss[-1]:.3f}", "holdout": f"{history.holdout_loss[-1]:.3f}"}
    post.update({k: f"{v[-1]:.3f}" for k, v in history.metrics.items() if v})
    bar.set_postfix(post)
