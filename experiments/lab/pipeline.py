"""One model, one dataset: train, evaluate, write every output. Shared by the scripts.

``run(family, args, hp)`` trains the family's model on the dataset's 2000 training points
(hold-out 500, independent keys), resuming from ``--out/checkpoint.eqx`` when it exists,
evaluates it with :func:`flowlab.evaluate.evaluate` (the likelihood the model declares,
sample metrics beside the oracle's and their noise floors, reference numbers, sample
diagnostics), then writes ``metrics.json`` (those, timings, hyperparameters, machine),
``samples.npz``, ``history.json``, ``model.eqx`` and the figure set. :func:`run` returns a
:class:`Run` that a script can extend (extra samplers, extra bounds) before it calls
:func:`write`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import flowlab
from flowlab import datasets
from flowlab.evaluate import Likelihood, evaluate

from .common import machine, save_figures, write_json, write_samples
from .registry import (
    ALIASES,
    FAMILIES,
    build_model,
    build_objective,
    build_optimizer,
    coarse_log_prob,
    family,
)

N_SAMPLES = 2000  # model samples for plots, KDE and samples.npz (same n as training)


@dataclasses.dataclass
class Run:
    """Everything a finished run holds (arrays as numpy)."""

    family: str
    args: Any
    hp: dict
    model: Any
    history: flowlab.History
    train: np.ndarray
    holdout: np.ndarray
    oracle: np.ndarray
    samples: np.ndarray
    keys: dict
    metrics: dict
    figures: dict = dataclasses.field(default_factory=dict)
    arrays: dict = dataclasses.field(default_factory=dict)
    stats: Any = None  # what drawing the samples cost (flowlab.Stats)
    log_prob: np.ndarray | None = None  # per-point exact log-density of the hold-out set

    @property
    def out(self) -> Path:
        return self.args.out


def prepare(family_name: str, args, hp: dict):
    """Data, keys and hyperparameters of a run (the same for every family)."""
    key = jax.random.key(args.seed)
    k_data, _, k_train, k_sample, k_oracle = jax.random.split(key, 5)
    train, holdout = datasets.split(args.dataset, k_data)
    std = flowlab.Standardize.fit(train)
    hp = dict(hp)
    hp.update(
        family=family_name,
        dataset=args.dataset,
        seed=args.seed,
        activation=hp.get("activation", "silu"),
        n_train=int(train.shape[0]),
        n_holdout=int(holdout.shape[0]),
        standardize_loc=np.asarray(std.loc).tolist(),
        standardize_scale=np.asarray(std.scale).tolist(),
    )
    known = family_name in FAMILIES or family_name in ALIASES
    fam = family(family_name) if known else None
    if fam is not None and fam.data_hp is not None:
        hp.update(fam.data_hp(hp, np.asarray(std.forward(train))))
    keys = dict(train=k_train, sample=k_sample, oracle=k_oracle, bound=jax.random.fold_in(key, 7))
    return train, holdout, keys, hp


def default_training_metrics(model, holdout, keys, family_name: str | None = None) -> dict:
    """What to evaluate on the hold-out set at every evaluation: the exact NLL (with the
    family's :func:`~lab.registry.coarse_log_prob` settings), or minus the bound, by the
    model's likelihood kind (nothing for kind *none*)."""
    if flowlab.likelihood_kind(model) == "exact":
        kw = {} if family_name is None else coarse_log_prob(family_name, model)
        return {"holdout_nll": lambda m: -float(jnp.mean(m.log_prob(holdout, **kw)))}
    if isinstance(model, flowlab.AbstractBoundLikelihood):
        return {
            "holdout_neg_bound": lambda m: (
                -float(jnp.mean(m.log_prob_bound(holdout, key=keys["bound"])))
            )
        }
    return {}


def _paths(folder: Path) -> tuple[Path, Path, Path]:
    return folder / "checkpoint.eqx", folder / "model.eqx", folder / "history.json"


def load_finished(hp: dict, folder: Path, *, fresh: bool):
    """``(model, history)`` of the finished run of ``hp`` saved in ``folder``, or ``None``
    (nothing there, other hyperparameters, or ``fresh``: then its files are removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt, model_path, history_path = _paths(folder)
    if fresh:
        for path in (ckpt, model_path, history_path):
            path.unlink(missing_ok=True)
    if model_path.exists() and history_path.exists():
        saved = flowlab.read_header(model_path).get("hyperparameters")
        if saved == json.loads(json.dumps(hp)):
            model, _ = flowlab.load_model(model_path)
            return model, flowlab.History.load(history_path)
    return None


def _fit_kwargs(hp: dict, progress: bool) -> dict:
    return dict(
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=build_optimizer(hp),
        eval_every=hp["eval_every"],
        ema_decay=hp["ema_decay"],
        progress=progress,
    )


def _save_finished(hp: dict, folder: Path, model, history) -> None:
    _, model_path, history_path = _paths(folder)
    history.save(history_path)
    flowlab.save_model(model_path, model, hp)


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever ``sys.stdout`` is when a record comes."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def show_flowlab_log() -> None:
    """Print what flowlab logs at level INFO (a resumed run says so, and from which step)
    to stdout, whatever the progress setting; once per process."""
    log = logging.getLogger("flowlab")
    if not any(isinstance(h, _Stdout) for h in log.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("[flowlab] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _with_fresh_hint(err: flowlab.CheckpointError, checkpoint: Path) -> flowlab.CheckpointError:
    return flowlab.CheckpointError(
        f"{err}\n(rerun with --fresh to discard {checkpoint} and train from the start)"
    )


def fit_or_load(
    hp: dict, train, holdout, keys, folder: Path, *, progress: bool, fresh: bool, metrics=None
):
    """Train the model of ``hp`` in ``folder`` (resuming from its checkpoint, and saying so),
    or load it when ``folder`` holds a finished run with the same hyperparameters; returns
    ``(model, history, seconds this call took)``. A checkpoint of another run (or not
    readable) raises :class:`flowlab.CheckpointError`, pointing to ``--fresh``."""
    t0 = time.perf_counter()
    done = load_finished(hp, folder, fresh=fresh)
    if done is not None:
        return (*done, time.perf_counter() - t0)
    model = build_model(hp)
    if metrics is None:
        metrics = default_training_metrics(model, holdout, keys, hp.get("family"))
    ckpt = _paths(folder)[0]
    try:
        show_flowlab_log()
        model, history = flowlab.fit(
            model,
            build_objective(hp),
            train,
            holdout,
            key=keys["train"],
            metrics=metrics,
            checkpoint=ckpt,
            hyperparameters=hp,
            **_fit_kwargs(hp, progress),
        )
    except flowlab.CheckpointError as err:
        raise _with_fresh_hint(err, ckpt) from None
    _save_finished(hp, folder, model, history)
    return model, history, time.perf_counter() - t0


def fit_batch(runs: list[dict], checkpoint: Path, *, progress: bool):
    """Train runs of one family and architecture as one program (:func:`flowlab.fit_many`),
    each as :func:`fit_or_load` would alone (same keys, metrics and outputs in its
    ``folder``). ``runs``: dicts with ``hp``, ``train``, ``holdout``, ``keys``, ``folder``
    and ``model`` (built from ``hp``). The batch checkpoints to ``checkpoint`` (resumed when
    there, removed when done). Returns ``[(model, history)]`` in the order of ``runs``."""
    hps = [r["hp"] for r in runs]
    try:
        show_flowlab_log()
        models, histories = flowlab.fit_many(
            [r["model"] for r in runs],
            build_objective(hps[0]),
            [r["train"] for r in runs],
            [r["holdout"] for r in runs],
            keys=[r["keys"]["train"] for r in runs],
            metrics=[
                default_training_metrics(r["model"], r["holdout"], r["keys"], r["hp"]["family"])
                for r in runs
            ],
            checkpoint=checkpoint,
            hyperparameters=hps,
            **_fit_kwargs(hps[0], progress),
        )
    except flowlab.CheckpointError as err:
        raise _with_fresh_hint(err, checkpoint) from None
    for r, model, history in zip(runs, models, histories, strict=True):
        _save_finished(r["hp"], r["folder"], model, history)
    checkpoint.unlink(missing_ok=True)
    return list(zip(models, histories, strict=True))


def train_model(family_name: str, args, hp: dict, train, holdout, keys, *, metrics=None):
    """Build and fit the model of a script run in ``args.out`` (resuming from the
    checkpoint there, and saying so; ``--fresh`` starts over). A checkpoint of another run
    ends the script with its message (exit status 1), not a traceback."""
    model = build_model(hp)
    n_params = flowlab.nn.num_parameters(eqx_filter_trainable(model))
    print(
        f"[{family_name}] {args.dataset}: {hp['n_train']} train / {hp['n_holdout']} hold-out "
        f"points; {family(family_name).label}; {hp['steps']} steps of batch "
        f"{hp['batch_size']}; {n_params} trained parameters; likelihood: "
        f"{flowlab.likelihood_kind(model)}"
    )
    ckpt = args.out / "checkpoint.eqx"
    if args.fresh and ckpt.exists():
        ckpt.unlink()
    # a script always refits from its checkpoint (a finished checkpoint costs nothing)
    (args.out / "model.eqx").unlink(missing_ok=True)
    try:
        return fit_or_load(
            hp,
            train,
            holdout,
            keys,
            args.out,
            progress=not args.no_progress,
            fresh=False,
            metrics=metrics,
        )
    except flowlab.CheckpointError as err:
        raise SystemExit(f"[{family_name}] {err}") from None


def eqx_filter_trainable(model):
    """The trained part of a model (for counting parameters)."""
    import equinox as eqx

    return eqx.filter(model, model.trainable())


def run(
    family_name: str,
    args,
    hp: dict,
    *,
    sampler=None,
    training_metrics: Callable[[Any, Any, dict], dict] | None = None,
    likelihood: Callable[[Any, Any, dict], Likelihood] | None = None,
    full: bool = False,
) -> Run:
    """Train and evaluate one model; returns the :class:`Run` (not yet written).

    ``sampler``: the sampler object of the samples (``None``: the model's own);
    ``training_metrics(model, holdout, hp)``: what to track at each evaluation (default:
    the likelihood by kind); ``likelihood(model, holdout, hp)``: the hold-out likelihood
    (default :func:`flowlab.evaluate.likelihood`, e.g. a refined quadrature instead);
    ``full``: W2 and MMD too.
    """
    train, holdout, keys, hp = prepare(family_name, args, hp)
    metrics = None
    if training_metrics is not None:
        metrics = training_metrics(build_model(hp), holdout, hp)
    model, history, fit_call_s = train_model(
        family_name, args, hp, train, holdout, keys, metrics=metrics
    )
    lik = None if likelihood is None else likelihood(model, holdout, hp)
    ev = evaluate(
        model, args.dataset, train, holdout, key=keys, n_samples=N_SAMPLES, sampler=sampler,
        full=full, timing_repeats=3, likelihood=lik,
    )  # fmt: skip
    metrics = {
        "family": hp["family"],
        "dataset": args.dataset,
        "seed": args.seed,
        "steps": hp["steps"],
        **ev.metrics,
        "train_time_s": history.wall_time[-1],
        "train_compile_s": history.compile_time,
        "train_steps_per_s": hp["steps"] / history.wall_time[-1],
        "fit_call_s": fit_call_s,
        "final_holdout": {k: v[-1] for k, v in history.metrics.items() if v},
        "hyperparameters": hp,
        "machine": machine(),
    }
    return Run(
        family_name,
        args,
        hp,
        model,
        history,
        np.asarray(train),
        np.asarray(holdout),
        ev.oracle,
        ev.samples,
        keys,
        metrics,
        stats=ev.stats,
        log_prob=ev.log_prob,
    )


def write(r: Run, prefix: str) -> list[Path]:
    """Write ``metrics.json``, ``samples.npz`` and the figures (copied to ``figures/`` for
    full runs); return the figure paths."""
    write_json(r.out / "metrics.json", r.metrics)
    write_samples(r.out / "samples.npz", r.samples, **r.arrays)
    figures_dir = None if r.args.smoke else r.args.figures_dir
    return save_figures(r.figures, r.out, figures_dir, prefix)


def report(r: Run, written: list[Path]) -> None:
    """Print the headline numbers."""
    m, tag = r.metrics, f"[{r.family}]"
    print(
        f"{tag} trained {m['steps']} steps in {m['train_time_s']:.1f} s "
        f"({m['train_steps_per_s']:.0f} steps/s, compile and evaluations included)"
    )
    if m.get("holdout_nll") is not None:
        line = f"{tag} exact hold-out NLL {m['holdout_nll']:.4f} ± {m['holdout_nll_se']:.4f} nats"
        if "true_entropy" in m:
            line += f"; true entropy {m['true_entropy']:.4f} (gap {m['nll_gap_to_entropy']:+.4f})"
        print(line)
        print(
            f"{tag} log_prob of {len(r.holdout)} points: {m['log_prob_time_s'] * 1e3:.1f} ms, "
            f"{m['log_prob_nfe']} NFE ({m['holdout_nll_estimator']})"
        )
    if "kl_data_to_model" in m:
        print(
            f"{tag} true density on the same hold-out points: NLL {m['oracle_holdout_nll']:.4f}; "
            f"paired KL(data || model) {m['kl_data_to_model']:.4f} ± "
            f"{m['kl_data_to_model_se']:.4f} nats"
        )
    if m.get("holdout_neg_bound") is not None:
        print(
            f"{tag} hold-out -({m['bound_name']}) {m['holdout_neg_bound']:.4f} ± "
            f"{m['holdout_neg_bound_se']:.4f} nats (an upper bound on the NLL)"
        )
    kde, kde_o = m.get("kde_loglik"), m.get("kde_loglik_oracle")
    if kde is not None:
        print(
            f"{tag} KDE log-likelihood on hold-out: model samples {kde['mean']:.4f} ± "
            f"{kde['se']:.4f}, true samples (oracle) {kde_o['mean']:.4f} ± {kde_o['se']:.4f}"
        )
        print(
            f"{tag} Bhattacharyya distance to training data: model {m['bhattacharyya']:.4f}, "
            f"oracle {m['bhattacharyya_oracle']:.4f}"
        )
    else:
        print(f"{tag} sample diagnostic: {m['sample_diagnostic']}")
    print(f"{tag} outputs in {r.out}")
    for p in written:
        print(f"      {p}")
