r"""Few steps, measured (issue 23): source-to-target flows, the C2OT reproduction, the
1-NFE target and the NFE study.

Part A reproduces Cheng & Schwing (2025, "The Curse of Conditions", C2OT) Figure 1,
unconditional 8gaussians -> moons, on their protocol (github hkchengrex/C2OT, ``moons.py``
and ``c2ot/utils/playground_utils.py``): their generators (``torchcfm_8gaussians`` ->
``torchcfm_moons``), their network ``SimpleNet`` (input and time projections to 128, three
residual GELU blocks 128 -> 512 -> 128, output 2; no standardisation), Adam at lr 3e-4,
20,000 iterations, and their batch scheme: every outer iteration draws 1,024 fresh source
and target points, pairs them by the exact assignment (OT runs; ``linear_sum_assignment``,
here flowlab's ``ExactOT``), and cuts them into four optimiser batches of 256, with
``F.mse_loss`` (a small custom loop, ``c2ot_train``, built from flowlab's CNF, prior,
coupling and optax; R runs as one vmapped program). Evaluation as theirs: 10,000 source
draws, one Euler step and Dopri5 (rtol = atol = 1e-4), each against one 10,000-point
target draw by ``ot.emd2`` on POT's squared-Euclidean cost, i.e. the *squared* W2 (here
SciPy's exact assignment: the same optimum); their "+-" is ``np.std`` (population SD) over
10 runs. Two independent 10,000-point target samples are W2^2 ~ 0.011 apart, below their
0.050, which is why they needed 10,000 points (at 2,000 the floor is ~ 0.04-0.07).

Part A' is the 1-NFE target: one reflow round (Liu et al. 2023) of each OT-FM model of
part A (student = the teacher's weights and prior), on C2OT's metric. Part A''
(``--target-only``) is the same target with flowlab's own recipe (the ``cnf_fm`` family's
tuned training: OT-FM, one reflow round of it, and a mean flow on the same pairs), and
part C (``--course-target``) takes that recipe to the four course datasets, scored against
the true-sample noise floor as part B scores.

Part B is the NFE study: 1, 2, 4, 8, 16 steps and adaptive (Dopri5) for flow matching
(FM), minibatch-OT FM, reflow rounds 1 and 2 (from the FM teacher), DDIM on a VP
diffusion (adaptive = its probability-flow ODE; noise source only), mean flows (MeanFlow +
MeanFlowMatching) and the shortcut model (Shortcut + ShortcutMatching), each with k jumps of
``samplers.FlowMap``, on 8gaussians -> moons (every method but DDIM from the 8gaussians
source, ``prior=``) and the four course datasets (n = 2000 train, ``b_eval_n`` hold-out).
Metrics: W2 (exact assignment, ``b_eval_n`` samples against as many hold-out points: a
*sample metric*), energy distance against the hold-out (sample metric; a U-statistic, so
it can be <= 0) with its true-sample noise floor (RMS over 10 pairs of independent
``b_eval_n``-point true samples), and for the ODE models the *exact* hold-out NLL
(adaptive solve, exact trace) minus the true entropy (for the moons, which have no
closed-form entropy, the paired estimate of KL(data || model), mean of true minus model
log-density, with its SE). Mean +- SD over seeds.

    python benchmarks/few_step.py            # default (hours on 2 shared cores)
    python benchmarks/few_step.py --quick    # fewer steps and seeds
    python benchmarks/few_step.py --smoke    # seconds; what the CI test runs (--skip-a)
    python benchmarks/few_step.py --full     # part A with C2OT's 10 runs per method
    --skip-a / --skip-b, --b-steps / --b-seeds / --b-datasets / --b-eval-n override part B
    --target-only, --course-target: only part A'' or part C (the JSON's other parts kept)
    --merge-a / --merge-b JSON...: join runs split over processes; --plot-only: reprint

Every time printed is wall-clock on a CPU shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
import scipy.spatial

from flowlab import (
    CNF,
    Diffusion,
    MeanFlow,
    MLPFlowMapNet,
    Shortcut,
    Standardize,
    datasets,
    default_optimizer,
    evaluate,
    fit,
    metrics,
    samplers,
)
from flowlab._checkpoint import atomic_write_text
from flowlab._flow_map import AbstractFlowMap
from flowlab.cnf import GaussianMixture
from flowlab.couplings import ExactOT
from flowlab.nn import MLPVectorField
from flowlab.objectives import (
    DenoisingScoreMatching,
    FlowMatching,
    MeanFlowMatching,
    ShortcutMatching,
)
from flowlab.rectified import Reflow, reflow, reflow_pairs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "few_step_results.json"
NFES = (1, 2, 4, 8, 16)

# Cheng & Schwing 2025, Figure 1 (W2^2 in their code's unit, mean +- population SD, 10 runs)
C2OT_PUBLISHED = {
    "fm": {"euler1": (6.232, 0.186), "adaptive": (0.120, 0.045)},
    "ot": {"euler1": (0.072, 0.025), "adaptive": (0.050, 0.040)},
}
DEFAULT_SETTINGS = dict(
    a_ot_seeds=2,
    a_fm_seeds=1,
    a_steps=20_000,
    a_n=10_000,
    t5_steps=3000,
    t5_pairs=20_000,
    t5_fl_steps=24_000,
    t5_fl_reflow_steps=48_000,
    t5_fl_pairs=50_000,
    t5_seeds=10,
    b_seeds=3,
    b_eval_n=2000,
    b_steps=2500,
    b_datasets=None,
    reflow_pairs=8000,
    b_methods=None,
    floor_pairs=10,
    nfes=NFES,
)
SETTINGS = {  # each mode: the default with what it changes
    "smoke": {
        **DEFAULT_SETTINGS,
        **dict(
            a_ot_seeds=1,
            a_steps=8,
            a_n=64,
            t5_steps=4,
            t5_pairs=64,
            t5_fl_steps=4,
            t5_fl_reflow_steps=4,
            t5_fl_pairs=64,
            t5_seeds=1,
            b_seeds=1,
            b_eval_n=100,
            b_steps=10,
            b_datasets=("8gaussians_to_moons",),
            reflow_pairs=100,
            b_methods=("meanflow",),
            floor_pairs=2,
            nfes=(1,),
        ),
    },
    "quick": {
        **DEFAULT_SETTINGS,
        **dict(
            a_steps=2000,
            a_n=2000,
            t5_steps=500,
            t5_pairs=4000,
            t5_fl_steps=2000,
            t5_fl_reflow_steps=2000,
            t5_fl_pairs=5000,
            t5_seeds=2,
            b_seeds=2,
            b_eval_n=500,
            b_steps=1000,
            reflow_pairs=2000,
            b_methods=("fm", "ot", "reflow1", "ddim", "meanflow", "shortcut"),
        ),
    },
    "default": DEFAULT_SETTINGS,
    "full": {
        **DEFAULT_SETTINGS,
        **dict(a_ot_seeds=10, a_fm_seeds=10),
    },
}
STUDY_DATASETS = ("8gaussians_to_moons",) + datasets.COURSE_NAMES
STUDY_METHODS = ("fm", "ot", "reflow1", "reflow2", "ddim", "meanflow", "shortcut")


# --- C2OT's network ------------------------------------------------------------------------


class SimpleNet(eqx.Module):
    """C2OT's ``SimpleNet(in_dim=2, dim=128, depth=3)``: ``h = W_in x + W_t t``, then
    ``h <- h + W_2 gelu(W_1 h)`` (128 -> 512 -> 128) three times, then ``W_out h``. PyTorch's
    default initialisation (uniform, bound 1/sqrt(fan_in)) is Equinox's."""

    inp: eqx.nn.Linear
    temb: eqx.nn.Linear
    blocks: list
    out: eqx.nn.Linear
    data_size: int = eqx.field(static=True)

    def __init__(self, dim: int = 128, depth: int = 3, *, key):
        keys = jax.random.split(key, 3 + 2 * depth)
        self.inp = eqx.nn.Linear(2, dim, key=keys[0])
        self.temb = eqx.nn.Linear(1, dim, key=keys[1])
        self.out = eqx.nn.Linear(dim, 2, key=keys[2])
        self.blocks = [
            (
                eqx.nn.Linear(dim, 4 * dim, key=keys[3 + 2 * i]),
                eqx.nn.Linear(4 * dim, dim, key=keys[4 + 2 * i]),
            )
            for i in range(depth)
        ]
        self.data_size = 2

    def __call__(self, t, z):
        h = self.inp(z) + self.temb(jnp.reshape(t, (1,)).astype(z.dtype))
        for lin1, lin2 in self.blocks:
            h = h + lin2(jax.nn.gelu(lin1(h), approximate=False))
        return self.out(h)


# --- metrics -------------------------------------------------------------------------------


def w2_squared(x, y) -> float:
    """Exact squared W2 between two equal-size point sets (uniform weights): POT's ``emd2``
    on the squared-Euclidean cost (C2OT's own metric; network simplex, about 20 s at
    10,000 points) when POT is installed (``pip install -e .[bench]``), else SciPy's
    optimal assignment (the same optimum, since uniform equal-size sets have a permutation
    among their optimal plans; fine up to a few thousand points, but it can take many
    minutes at 10,000 when the sets are far apart)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    try:
        import ot
    except ImportError:
        ot = None
    if ot is not None:
        return float(ot.emd2([], [], ot.dist(x, y), numItermax=10**8))
    cost = scipy.spatial.distance.cdist(x, y)
    cost **= 2
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
        "n": int(len(v)),
    }


def _sample(model, key, n, nfe):
    """Samples and NFE: ``nfe`` Euler steps (DDIM steps for a diffusion), or the adaptive
    ODE when ``nfe`` is ``"adaptive"``."""
    if nfe == "adaptive":
        x, stats = model.sample_with_stats(key, n)
        return np.asarray(x, np.float64), float(stats.nfe)
    if isinstance(model, Diffusion):
        sampler = samplers.DDIM(steps=nfe, eta=0.0)
    elif _is_flow_map(model):
        sampler = samplers.FlowMap(steps=nfe)
    else:
        sampler = samplers.Euler(steps=nfe)
    x, stats = model.sample_with_stats(key, n, sampler=sampler)
    return np.asarray(x, np.float64), float(stats.nfe)


def _is_flow_map(model) -> bool:
    return isinstance(model, AbstractFlowMap)


def write_json(path: Path, payload: dict) -> None:
    """Atomic (flowlab's own atomic write: a temporary file, then ``os.replace``), with the
    mode ``open()`` would give."""
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


# --- part A: C2OT Figure 1 -----------------------------------------------------------------

C2OT_BATCH = 256  # optimiser batch
C2OT_OT_BATCH = 1024  # points per OT solve, cut into four optimiser batches (their moons.py)


def _c2ot_chunk(static, prior, is_ot, iterations_per_outer):
    """One jitted program: ``len(keys)`` outer iterations of C2OT's loop for R runs at once
    (vmapped): fresh 1024-point source and target draws, the exact assignment for OT runs
    (identity for FM runs), then four Adam steps on batches of 256 with
    ``F.mse_loss(v, x1 - x0)`` (mean over points and coordinates)."""
    opt = optax.adam(3e-4)
    nb = C2OT_OT_BATCH // C2OT_BATCH

    def outer(params, state, ot, key):
        k0, k1, kt = jax.random.split(key, 3)
        x0 = prior.sample(k0, C2OT_OT_BATCH)
        x1 = datasets.sample("torchcfm_moons", k1, C2OT_OT_BATCH)
        perm = ExactOT().permutation(x0, x1)
        x0 = jnp.where(ot, x0[perm], x0)
        ts = jax.random.uniform(kt, (nb, C2OT_BATCH))

        def step(carry, batch):
            p, s = carry
            a0, a1, t = batch

            def loss(p):
                net = eqx.combine(p, static)
                xt = t[:, None] * a1 + (1.0 - t[:, None]) * a0
                return jnp.mean((jax.vmap(net)(t, xt) - (a1 - a0)) ** 2)

            value, grads = jax.value_and_grad(loss)(p)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        batches = (x0.reshape(nb, C2OT_BATCH, 2), x1.reshape(nb, C2OT_BATCH, 2), ts)
        (params, state), losses = jax.lax.scan(step, (params, state), batches)
        return params, state, jnp.mean(losses)

    @jax.jit
    def chunk(params, state, keys):  # keys: (outer iterations, R)
        def body(carry, k):
            p, s, loss = jax.vmap(outer)(*carry, is_ot, k)
            return (p, s), loss

        (params, state), losses = jax.lax.scan(body, (params, state), keys)
        return params, state, losses[-1]

    return chunk, opt


def _split_keys(key_data, done: int, n: int):
    return jax.random.split(jax.random.fold_in(jax.random.wrap_key_data(key_data), done), n)


def c2ot_train(runs, iterations: int, log, chunk_iterations: int = 1000):
    """Train C2OT's SimpleNet for each ``(method, seed)`` of ``runs`` (method ``"fm"`` or
    ``"ot"``) for ``iterations`` optimiser steps, all runs as one vmapped program (the same
    numbers as separate runs: each run has its own keys). Returns the trained CNFs (prior
    ``torchcfm_8gaussians``, no standardisation, Dopri5 at rtol = atol = 1e-4 as C2OT's
    torchdyn solve) and the wall-clock seconds (shared CPU; per run = total / R)."""
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    nets = [SimpleNet(key=jax.random.key(1000 + seed)) for _, seed in runs]
    parts = [eqx.partition(n, eqx.is_inexact_array) for n in nets]
    static = parts[0][1]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *[p for p, _ in parts])
    is_ot = jnp.asarray([m == "ot" for m, _ in runs])
    chunk, opt = _c2ot_chunk(static, prior, is_ot, C2OT_OT_BATCH // C2OT_BATCH)
    state = jax.vmap(opt.init)(params)
    run_keys = jnp.stack([jax.random.key_data(jax.random.key(2000 + 17 * seed + (m == "ot")))
                          for m, seed in runs])  # fmt: skip
    per_outer = C2OT_OT_BATCH // C2OT_BATCH
    start = time.perf_counter()
    done = 0
    while done < iterations:
        n_outer = max(1, min(chunk_iterations, iterations - done) // per_outer)
        keys = jax.vmap(_split_keys, in_axes=(0, None, None))(run_keys, done, n_outer)
        with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes int and float
            params, state, loss = chunk(params, state, jnp.swapaxes(keys, 0, 1))
        done += n_outer * per_outer
        log(
            f"  A train {done}/{iterations}: loss {np.round(np.asarray(loss), 3).tolist()} "
            f"({time.perf_counter() - start:.0f} s, shared CPU)"
        )
    seconds = time.perf_counter() - start
    models = [
        CNF(
            eqx.combine(jax.tree.map(lambda x, r=r: x[r], params), static),
            prior=prior,
            rtol=1e-4,
            atol=1e-4,
        )  # fmt: skip
        for r in range(len(runs))
    ]
    return models, seconds


def c2ot_score(model, seed: int, n: int, nfes=(1, "adaptive")) -> dict:
    """C2OT's evaluation: ``n`` source draws (10,000 in their moons.py) carried by 1 Euler
    step and by Dopri5, each scored against one ``n``-point target draw by the exact W2^2
    (POT ``emd2`` on the squared-Euclidean cost; here SciPy's assignment, the same optimum)."""
    k_eval = jax.random.key(3000 + seed)
    target = datasets.sample("torchcfm_moons", jax.random.key(4000 + seed), n)
    row = {}
    for nfe in nfes:
        x, used = _sample(model, k_eval, n, nfe)
        w2sq = w2_squared(x, target) if np.isfinite(x).all() else float("nan")
        row["euler1" if nfe == 1 else str(nfe)] = {"w2sq": w2sq, "w2": math.sqrt(w2sq), "nfe": used}
    return row


def c2ot_reproduction(cfg: dict, log) -> tuple[dict, list]:
    n, steps = cfg["a_n"], cfg["a_steps"]
    first = cfg.get("a_seed_offset", 0)  # runs may be split over processes by seed
    runs = [("ot", first + s) for s in range(cfg["a_ot_seeds"])] + [
        ("fm", first + s) for s in range(cfg["a_fm_seeds"])
    ]
    out: dict = {
        "settings": {
            "runs": [f"{m} seed {s}" for m, s in runs],
            "iterations": steps,
            "batch_size": C2OT_BATCH,
            "ot_batch": f"exact assignment on {C2OT_OT_BATCH} fresh points, cut into "
            f"{C2OT_OT_BATCH // C2OT_BATCH} optimiser batches of {C2OT_BATCH} (C2OT moons.py)",
            "data": "fresh draws every outer iteration (no fixed training set), as C2OT",
            "lr": 3e-4,
            "optimizer": "Adam(3e-4), torch defaults (betas 0.9, 0.999, eps 1e-8)",
            "loss": "F.mse_loss(v, x1 - x0): mean over points and coordinates",
            "w2_samples": n,
            "adaptive": "Dopri5, rtol = atol = 1e-4 (torchdyn's, as C2OT; flowlab solves all "
            f"{n} points as one batch, C2OT in batches of 256, so the NFE differs)",
            "unit": "W2^2 (POT emd2 on squared Euclidean cost; here SciPy's exact "
            "assignment), and W2",
            "spread": "population SD over seeds (np.std, as C2OT)",
            "network": "C2OT SimpleNet: Linear(2,128) + Linear(1,128)(t), 3 x [x + "
            "Linear(512,128)(GELU(Linear(128,512)(x)))], Linear(128,2) (396,034 parameters)",
        }
    }
    # The finite-sample floor of W2^2: two independent target samples of size n.
    k1, k2 = jax.random.split(jax.random.key(12345))
    out["w2sq_floor_one_pair"] = w2_squared(
        datasets.sample("torchcfm_moons", k1, n), datasets.sample("torchcfm_moons", k2, n)
    )
    log(f"  A W2^2 floor (two {n}-point target samples): {out['w2sq_floor_one_pair']:.4f}")
    models, seconds = c2ot_train(runs, steps, log)
    save_dir = os.environ.get("FEW_STEP_SAVE")  # optional: keep the trained networks
    if save_dir:
        for (method, seed), model in zip(runs, models, strict=True):
            eqx.tree_serialise_leaves(f"{save_dir}/c2ot_{method}{seed}.eqx", model)
    rows = {"fm": [], "ot": []}
    for (method, seed), model in zip(runs, models, strict=True):
        row = {"seed": seed, "train_seconds": seconds / len(runs), **c2ot_score(model, seed, n)}
        rows[method].append(row)
        log(
            f"  A {method} seed {seed}: W2^2 1-step {row['euler1']['w2sq']:.4f}, adaptive "
            f"{row['adaptive']['w2sq']:.4f} (NFE {row['adaptive']['nfe']:.0f})"
        )
    out["train_seconds_all_runs"] = seconds
    out["runs"] = rows
    out["summary"] = _c2ot_summary(rows)
    teachers = [m for (method, _), m in zip(runs, models, strict=True) if method == "ot"]
    return out, teachers


def same_protocol(new: dict, old: dict, keys, what: str) -> None:
    """Refuse to merge ``what`` (settings ``new``) into runs with settings ``old`` unless
    they agree on every one of ``keys``: a ``ValueError`` naming the first that differs."""
    for key in keys:
        if new[key] != old[key]:
            raise ValueError(
                f"cannot merge {what} with {key}={new[key]!r} into runs with "
                f"{key}={old[key]!r}: not the same protocol"
            )


def merge_c2ot(base: dict, others: list[dict]) -> dict:
    """Part A of ``base`` with the runs of ``others`` added (a run of the same method and
    seed replaced), its summary recomputed and each merged invocation's training time and
    settings kept under ``merged``."""
    rows = {m: {r["seed"]: r for r in rs} for m, rs in base["runs"].items()}
    merged = list(base.get("merged", []))
    for other in others:
        same_protocol(other["settings"], base["settings"], ("iterations", "batch_size",
                      "w2_samples", "lr"), "part A runs")  # fmt: skip
        for method, rs in other["runs"].items():
            rows.setdefault(method, {}).update({r["seed"]: r for r in rs})
        merged.append({"runs": other["settings"]["runs"],
                       "train_seconds_all_runs": other["train_seconds_all_runs"]})  # fmt: skip
    runs = {m: [rs[k] for k in sorted(rs)] for m, rs in rows.items()}
    settings = dict(base["settings"])
    settings["runs"] = [f"{m} seed {r['seed']}" for m in ("ot", "fm") for r in runs.get(m, [])]
    return {**base, "runs": runs, "summary": _c2ot_summary(runs), "merged": merged,
            "settings": settings}  # fmt: skip


def _c2ot_summary(rows: dict) -> dict:
    summary = {}
    for method, rs in rows.items():
        if not rs:
            continue
        summary[method] = {}
        for name in ("euler1", "adaptive"):
            w = np.asarray([r[name]["w2sq"] for r in rs])
            pub_mean, pub_sd = C2OT_PUBLISHED[method][name]
            mean = float(w.mean())
            summary[method][name] = {
                "w2sq_mean": mean,
                "w2sq_sd_population": float(w.std()),
                "w2_mean": float(np.sqrt(w).mean()),
                "nfe_mean": float(np.mean([r[name]["nfe"] for r in rs])),
                "runs": len(rs),
                "published_w2sq": [pub_mean, pub_sd],
                "within_2sd": bool(abs(mean - pub_mean) <= 2 * pub_sd),
            }
        summary[method]["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in rs]))
    return summary


def one_nfe_target(cfg: dict, teachers: list, log, seeds=None, earlier=None) -> dict:
    """Target 5: reflow (one round, Liu et al. 2023) of each C2OT OT-FM model, the student
    starting from the teacher's weights and sharing its prior, trained with
    :class:`flowlab.rectified.Reflow` (Adam 3e-4, batch 256, as C2OT) on the teacher's
    adaptive-ODE pairs; scored at 1 and 2 Euler steps on C2OT's protocol (W2^2, n points).
    ``seeds``: each teacher's run seed (default 0, 1, ...; it seeds the pairs and the
    training); ``earlier``: a previous result whose runs of other seeds are kept."""
    n, steps, n_pairs = cfg["a_n"], cfg["t5_steps"], cfg["t5_pairs"]
    seeds = list(range(len(teachers))) if seeds is None else list(seeds)
    out: dict = {
        "settings": {
            "method": "1 reflow round of each C2OT OT-FM model (student = teacher's weights "
            "and prior), Reflow objective on fixed pairs",
            "pairs": n_pairs,
            "steps": steps,
            "batch_size": C2OT_BATCH,
            "optimizer": "Adam(3e-4)",
            "w2_samples": n,
            "metric": "W2^2 as C2OT (exact assignment, sample metric)",
        },
        "runs": [r for r in (earlier or {}).get("runs", []) if r["seed"] not in seeds],
    }
    if out["runs"]:
        same_protocol(out["settings"], earlier["settings"], ("pairs", "steps", "batch_size",
                      "optimizer", "w2_samples"), "reflow runs")  # fmt: skip
    for seed, teacher in zip(seeds, teachers, strict=True):
        start = time.perf_counter()
        pairs = reflow_pairs(teacher, jax.random.key(5000 + seed), n_pairs)
        train, holdout = pairs.split(max(1, n_pairs // 10))
        student, _ = fit(
            teacher,
            Reflow(pairs),
            train.x1,
            holdout.x1,
            key=jax.random.key(6000 + seed),
            steps=steps,
            batch_size=C2OT_BATCH,
            optimizer=optax.adam(3e-4),
            eval_every=steps,
            progress=False,
        )
        seconds = time.perf_counter() - start
        row = {"seed": seed, "reflow_seconds": seconds,
               **c2ot_score(student, seed, n, nfes=(1, 2))}  # fmt: skip
        out["runs"].append(row)
        log(
            f"  T5 reflow of OT seed {seed}: W2^2 1 NFE {row['euler1']['w2sq']:.4f}, 2 NFE "
            f"{row['2']['w2sq']:.4f}; reflow {seconds:.0f} s (pairs + training, shared CPU)"
        )
    out["runs"].sort(key=lambda r: r["seed"])
    w = np.asarray([r["euler1"]["w2sq"] for r in out["runs"]])
    out["w2sq_1nfe_mean"] = float(w.mean())
    out["w2sq_1nfe_sd_population"] = float(w.std())
    out["met"] = bool(w.mean() <= 0.072)
    return out


# flowlab's recipe for the 1-NFE targets (parts A'' and C): the cnf_fm family's tuned
# training, and one reflow round of its OT-FM teacher with t leaning to 0
RECIPE = dict(width=64, depth=4, lr=5e-3, ema=0.998, batch=256, reflow_time_power=0.5)


def _recipe_fit(model, objective, data, holdout, key, steps: int):
    """``flowlab.fit`` with the recipe's optimiser (``default_optimizer`` over ``steps``
    from its lr), EMA and batch, one hold-out evaluation at the end."""
    model, _ = fit(model, objective, data, holdout, key=key, steps=steps,
                   batch_size=RECIPE["batch"], optimizer=default_optimizer(steps, RECIPE["lr"]),
                   ema_decay=RECIPE["ema"], eval_every=steps, progress=False)  # fmt: skip
    return model


def _recipe_reflow(teacher, k_pairs, k_student, n_pairs: int, steps: int):
    """One reflow round of ``teacher`` by the recipe: ``n_pairs`` pairs of its adaptive
    solve (a tenth held out), the student starting from the teacher's weights, ``steps``
    steps of :class:`Reflow` with t of density 0.5 t^-0.5 (a one-step Euler sampler reads
    the field at t = 0 only)."""
    pairs = reflow_pairs(teacher, k_pairs, n_pairs)
    train_pairs, holdout_pairs = pairs.split(max(1, n_pairs // 10))
    objective = Reflow(pairs, time_power=RECIPE["reflow_time_power"])
    return _recipe_fit(teacher, objective, train_pairs.x1, holdout_pairs.x1, k_student, steps)


def one_nfe_flowlab(cfg: dict, log, partial=None) -> dict:
    """Target 5 with flowlab's own models, trained by flowlab's recipe (the ``cnf_fm``
    family's tuned defaults: a width-64 depth-4 SiLU MLP field, :func:`flowlab.fit` with
    :func:`flowlab.default_optimizer` (Adam, warm-up, cosine decay from lr 5e-3), EMA 0.998,
    batch 256, standardised coordinates; 20,000 moons training points, the 8gaussians source
    as ``prior=``), scored on C2OT's protocol (W2^2 by exact assignment, ``a_n`` generated
    against ``a_n`` fresh target points). Candidates, each at 1 NFE:

    * OT-FM: flow matching with the exact assignment within each batch of 256
      (``ExactOT``), uniform t, ``t5_fl_steps`` steps; 1 Euler step (its adaptive solve is
      scored too: it is what the reflow distils);
    * one reflow round of it: ``t5_fl_pairs`` pairs of the teacher's adaptive solve, the
      student starting from the teacher's weights (sharing its prior), ``t5_fl_reflow_steps``
      steps of :class:`~flowlab.rectified.Reflow` with t of density 0.5 t^-0.5 (a one-step
      Euler sampler reads the field at t = 0 only, so the time law leans there);
    * a mean flow (``MeanFlow`` + ``MeanFlowMatching`` with the same ``ExactOT`` pairs,
      width 64 depth 4), ``t5_fl_steps`` steps; 1 jump.

    ``partial(out)`` is called after each seed (the caller writes the JSON)."""
    n, steps, n_pairs = cfg["a_n"], cfg["t5_fl_steps"], cfg["t5_fl_pairs"]
    r_steps = cfg["t5_fl_reflow_steps"]
    width, depth, lr, ema, batch = (RECIPE[k] for k in ("width", "depth", "lr", "ema", "batch"))
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    out: dict = {
        "settings": {
            "network": f"MLPVectorField / MLPFlowMapNet, width {width}, depth {depth} (SiLU): "
            "the cnf_fm family's default size",
            "training": f"flowlab.fit, default_optimizer (Adam, warm-up, cosine from lr {lr}), "
            f"EMA {ema}, batch {batch}; OT-FM and mean flow {steps} steps with ExactOT pairs "
            f"within each batch (uniform t); reflow: {n_pairs} pairs of the OT-FM teacher's "
            f"adaptive solve, {r_steps} more steps, t of density 0.5 t^-0.5",
            "train_points": 20_000,
            "w2_samples": n,
            "metric": "W2^2 as C2OT (exact assignment, sample metric), 1 NFE",
            "seeds": cfg["t5_seeds"],
        },
        "methods": {},
    }
    rows: dict = {"ot_fm": [], "reflow1_ot_fm": [], "meanflow_ot": []}

    for seed in range(cfg["t5_seeds"]):
        key = jax.random.key(7000 + seed)
        k_data, k_hold, k_net, k_fit, k_rf, k_mf = jax.random.split(key, 6)
        data = datasets.sample("torchcfm_moons", k_data, 20_000)
        holdout = datasets.sample("torchcfm_moons", k_hold, 1000)
        std = Standardize.fit(data)
        start = time.perf_counter()
        net = MLPVectorField(2, width=width, depth=depth, key=k_net)
        teacher = _recipe_fit(
            CNF(net, standardize=std, prior=prior),
            FlowMatching(coupling=ExactOT()),
            data,
            holdout,
            k_fit,
            steps,
        )
        t_teacher = time.perf_counter() - start
        rows["ot_fm"].append({"seed": seed, "train_seconds": t_teacher,
                              **c2ot_score(teacher, seed, n, nfes=(1, "adaptive"))})  # fmt: skip
        start = time.perf_counter()
        student = _recipe_reflow(teacher, *jax.random.split(k_rf), n_pairs, r_steps)
        t_reflow = time.perf_counter() - start
        rows["reflow1_ot_fm"].append({"seed": seed, "train_seconds": t_teacher + t_reflow,
                                      "reflow_seconds": t_reflow,
                                      **c2ot_score(student, seed, n, nfes=(1, 2))})  # fmt: skip
        start = time.perf_counter()
        mf = MeanFlow(MLPFlowMapNet(2, width=width, depth=depth, key=k_net), standardize=std,
                      prior=prior)  # fmt: skip
        mf = _recipe_fit(mf, MeanFlowMatching(coupling=ExactOT()), data, holdout, k_mf, steps)
        rows["meanflow_ot"].append({"seed": seed, "train_seconds": time.perf_counter() - start,
                                    **c2ot_score(mf, seed, n, nfes=(1,))})  # fmt: skip
        log(
            "  A'' seed {}: W2^2 at 1 NFE: OT-FM {:.4f} (adaptive {:.4f}), reflow 1 {:.4f}, "
            "mean flow (OT) {:.4f}; train s {:.0f} / {:.0f} / {:.0f}".format(
                seed,
                rows["ot_fm"][-1]["euler1"]["w2sq"],
                rows["ot_fm"][-1]["adaptive"]["w2sq"],
                *(rows[m][-1]["euler1"]["w2sq"] for m in ("reflow1_ot_fm", "meanflow_ot")),
                *(rows[m][-1]["train_seconds"] for m in rows),
            )  # fmt: skip
        )
        _summarise_flowlab(out, rows)
        if partial is not None:
            partial(out)
    return out


def _summarise_flowlab(out: dict, rows: dict) -> None:
    """``out``'s per-method means and population SDs (as C2OT) over the seeds run so far,
    its best method and whether that meets the 0.072 target."""
    for method, rs in rows.items():
        w = np.asarray([r["euler1"]["w2sq"] for r in rs])
        out["methods"][method] = {
            "runs": rs,
            "w2sq_1nfe_mean": float(w.mean()),
            "w2sq_1nfe_sd_population": float(w.std()),
            "train_seconds_mean": float(np.mean([r["train_seconds"] for r in rs])),
        }
        if "adaptive" in rs[0]:
            a = np.asarray([r["adaptive"]["w2sq"] for r in rs])
            out["methods"][method]["w2sq_adaptive_mean"] = float(a.mean())
            out["methods"][method]["w2sq_adaptive_sd_population"] = float(a.std())
    out["seeds_run"] = len(rows["ot_fm"])
    best = min(out["methods"], key=lambda m: out["methods"][m]["w2sq_1nfe_mean"])
    out["best"] = best
    out["met"] = bool(out["methods"][best]["w2sq_1nfe_mean"] <= 0.072)


def one_nfe_course(cfg: dict, log, partial=None) -> dict:
    """Part C: the course datasets' 1-NFE target (energy distance within 3x the true-sample
    noise floor) for the few-step models of part A'' trained by the same recipe (the
    ``cnf_fm`` family's: width-64 depth-4 field, ``default_optimizer`` from lr 5e-3, EMA
    0.998, batch 256): OT-FM (``ExactOT`` pairs within each batch, ``t5_fl_steps`` steps)
    and one reflow round of it (``t5_fl_pairs`` pairs, ``t5_fl_reflow_steps`` steps, t of
    density 0.5 t^-0.5), on part B's data (2,000 training points, ``b_eval_n`` hold-out
    points of the same seed) and scored as part B scores (energy distance and W2 of
    ``b_eval_n`` samples against the hold-out, the floor of ``floor_pairs`` pairs of
    independent true samples; the exact NLL minus the true entropy)."""
    names = cfg["b_datasets"] or datasets.COURSE_NAMES
    steps, r_steps, n_pairs = cfg["t5_fl_steps"], cfg["t5_fl_reflow_steps"], cfg["t5_fl_pairs"]
    lr, ema, batch = RECIPE["lr"], RECIPE["ema"], RECIPE["batch"]
    out: dict = {
        "settings": {
            "recipe": f"part A''s: MLPVectorField width {RECIPE['width']} depth "
            f"{RECIPE['depth']}; flowlab.fit, "
            f"default_optimizer (cosine from lr {lr}), EMA {ema}, batch {batch}; OT-FM "
            f"{steps} steps with ExactOT pairs (uniform t); reflow: {n_pairs} pairs of its "
            f"adaptive solve, {r_steps} more steps, t of density 0.5 t^-0.5",
            "seeds": cfg["b_seeds"],
            "n_train": 2000,
            "n_holdout": cfg["b_eval_n"],
            "nfes": [1],
            "energy_distance": f"{cfg['b_eval_n']} samples vs the {cfg['b_eval_n']} hold-out "
            "points (sample metric; a U-statistic, so it can be <= 0)",
            "floor": f"RMS of the energy distance of {cfg['floor_pairs']} pairs of "
            f"independent {cfg['b_eval_n']}-point true samples (as part B)",
            "spread": "sample SD over seeds (ddof 1)",
        },
        "datasets": {},
    }

    for name in names:
        floor = evaluate.noise_floor(
            name, cfg["b_eval_n"], key=jax.random.key(99), pairs=cfg["floor_pairs"]
        )["energy_distance"]["rms"]
        rows: dict = {"ot": [], "reflow1": []}
        for seed in range(cfg["b_seeds"]):
            data, holdout, target_name, _ = _study_data(name, seed, cfg["b_eval_n"])
            key = jax.random.key(100 + seed)
            k_net, k_fit, k_pairs, k_student = jax.random.split(key, 4)
            start = time.perf_counter()
            net = MLPVectorField(2, width=RECIPE["width"], depth=RECIPE["depth"], key=k_net)
            model = CNF(net, standardize=Standardize.fit(data))
            # fit's hold-out loss on 500 points, as part B's (the scores use all of them)
            teacher = _recipe_fit(model, FlowMatching(coupling=ExactOT()), data, holdout[:500],
                                  k_fit, steps)  # fmt: skip
            t_teacher = time.perf_counter() - start
            start = time.perf_counter()
            student = _recipe_reflow(teacher, k_pairs, k_student, n_pairs, r_steps)
            t_reflow = time.perf_counter() - start
            for method, model, seconds in (("ot", teacher, t_teacher),
                                           ("reflow1", student, t_teacher + t_reflow)):  # fmt: skip
                scores = _score(model, target_name, holdout, floor, (1,), key)
                scores["train_seconds"] = seconds
                rows[method].append(scores)
            log(
                f"  C {name} seed {seed}: 1-NFE ED / floor: OT-FM "
                f"{rows['ot'][-1]['1']['ed_over_floor']:.1f} (adaptive "
                f"{rows['ot'][-1]['adaptive']['energy_distance'] / floor:.1f}), reflow "
                f"{rows['reflow1'][-1]['1']['ed_over_floor']:.1f}; train {t_teacher:.0f} s + "
                f"{t_reflow:.0f} s (shared CPU)"
            )
        out["datasets"][name] = {
            "ed_floor_rms": floor,
            "methods": {
                m: {"seeds": rs, "summary": _summarise(rs, (1,))} for m, rs in rows.items()
            },
        }
        if partial is not None:
            partial(out)
    return out


# --- part B: the NFE study -------------------------------------------------------------------


def _study_data(name: str, seed: int, n_holdout: int):
    key = jax.random.key(seed)
    if name == "8gaussians_to_moons":
        train, holdout = datasets.split("torchcfm_moons", key, 2000, n_holdout)
        return train, holdout, "torchcfm_moons", GaussianMixture.from_dataset("torchcfm_8gaussians")
    train, holdout = datasets.split(name, key, 2000, n_holdout)
    return train, holdout, name, None


def _train(method, train, holdout, prior, steps, key, teacher=None, reflow_pairs=0):
    """One model of the study: a CNF by flow matching (``fm``; ``ot`` with minibatch OT), a
    reflow round of ``teacher`` (the student starts from the teacher's weights and shares
    its prior), a VP diffusion (``ddim``), or a flow map (``meanflow``: MeanFlow +
    MeanFlowMatching; ``shortcut``: Shortcut + ShortcutMatching), each with the source
    ``prior`` (``None``: N(0, I)), trained by ``flowlab.fit`` (Adam 1e-3, batch 256)."""
    std = Standardize.fit(train)
    k_net = jax.random.fold_in(key, 7)
    common = dict(batch_size=256, eval_every=steps, progress=False)
    # fit's hold-out loss is only its history here (the study scores on all of `holdout`):
    # 500 points keep an OT coupling's exact assignment on it from dominating the time
    holdout = holdout[:500]
    if method in ("fm", "ot"):
        model = CNF(MLPVectorField(2, width=64, depth=3, key=k_net), standardize=std, prior=prior)
        loss = FlowMatching(coupling=ExactOT() if method == "ot" else None)
        return fit(model, loss, train, holdout, key=key, steps=steps, **common)[0]
    if method.startswith("reflow"):
        model, _, _ = reflow(teacher, teacher, key=key, n_pairs=reflow_pairs, steps=steps, **common)
        return model
    if method == "ddim":
        model = Diffusion(MLPVectorField(2, width=64, depth=3, key=k_net), standardize=std)
        loss = DenoisingScoreMatching()
        return fit(model, loss, train, holdout, key=key, steps=steps, **common)[0]
    family, loss = {
        "meanflow": (MeanFlow, MeanFlowMatching()),
        "shortcut": (Shortcut, ShortcutMatching()),
    }[method]
    net = MLPFlowMapNet(2, width=64, depth=3, key=k_net)
    model = family(net, standardize=std, prior=prior)
    return fit(model, loss, train, holdout, key=key, steps=steps, **common)[0]


def _score(model, target_name, holdout, floor_rms, nfes, key) -> dict:
    holdout_np = np.asarray(holdout, np.float64)
    out: dict = {}
    for nfe in list(nfes) + ["adaptive"]:
        x, used = _sample(model, jax.random.fold_in(key, 0), len(holdout_np), nfe)
        if not np.isfinite(x).all():
            out[str(nfe)] = {"nfe": used, "w2": None, "energy_distance": None}
            continue
        ed = metrics.energy_distance(x, holdout_np)
        out[str(nfe)] = {
            "nfe": used,
            "w2": math.sqrt(w2_squared(x, holdout_np)),  # POT's emd2 when installed
            "energy_distance": ed,
            "ed_over_floor": ed / floor_rms,
        }
    lp = np.asarray(model.log_prob(jnp.asarray(holdout)), np.float64)
    true_lp = datasets.log_prob(target_name, holdout_np)
    if datasets.has_entropy(target_name):
        gap = float(-lp.mean() - datasets.entropy(target_name))
        out["nll_gap"] = {"value": gap, "kind": "exact NLL (adaptive, exact trace) - true entropy"}
    else:
        diff = true_lp - lp
        out["nll_gap"] = {
            "value": float(diff.mean()),
            "se": float(diff.std(ddof=1) / math.sqrt(len(diff))),
            "kind": "KL(data || model): mean of true - exact model log-density, paired",
        }
    return out


def nfe_study(cfg: dict, log, partial=None) -> dict:
    names = cfg["b_datasets"] or STUDY_DATASETS
    methods = cfg["b_methods"] or STUDY_METHODS
    out: dict = {
        "settings": {
            "seeds": cfg["b_seeds"],
            "steps": cfg["b_steps"],
            "batch_size": 256,
            "network": "MLPVectorField(width=64, depth=3), Adam (fit's default)",
            "n_train": 2000,
            "n_holdout": cfg["b_eval_n"],
            "nfes": list(cfg["nfes"]),
            "w2": f"exact assignment, {cfg['b_eval_n']} samples vs the {cfg['b_eval_n']} "
            "hold-out points (sample metric)",
            "energy_distance": f"{cfg['b_eval_n']} samples vs the {cfg['b_eval_n']} hold-out "
            "points (sample metric; a U-statistic, so it can be <= 0)",
            "floor": f"RMS of the energy distance of {cfg['floor_pairs']} pairs of "
            f"independent {cfg['b_eval_n']}-point true samples",
            "reflow_pairs": cfg["reflow_pairs"],
            "spread": "sample SD over seeds (ddof 1)",
        },
        "not_run": {},
        "datasets": {},
    }
    for name in names:
        target = "torchcfm_moons" if name == "8gaussians_to_moons" else name
        floor = evaluate.noise_floor(
            target, cfg["b_eval_n"], key=jax.random.key(99), pairs=cfg["floor_pairs"]
        )
        floor_rms = floor["energy_distance"]["rms"]
        entry: dict = {"target": target, "ed_floor_rms": floor_rms, "methods": {}}
        for method in methods:
            if method in out["not_run"]:
                continue
            if name == "8gaussians_to_moons" and method == "ddim":
                entry["methods"][method] = {"not_run": "a diffusion's source is N(0, I)"}
                continue
            seeds = []
            for seed in range(cfg.get("b_seed_offset", 0), cfg["b_seeds"]):
                train, holdout, target_name, prior = _study_data(name, seed, cfg["b_eval_n"])
                key = jax.random.key(100 + seed)
                start = time.perf_counter()
                teacher = None
                if method.startswith("reflow"):
                    teacher = _CACHE.get((name, seed, "fm" if method == "reflow1" else "reflow1"))
                    if teacher is None:
                        continue
                model = _train(
                    method,
                    train,
                    holdout,
                    prior,
                    cfg["b_steps"],
                    key,
                    teacher,
                    cfg["reflow_pairs"],
                )
                seconds = time.perf_counter() - start
                _CACHE[(name, seed, method)] = model
                scores = _score(model, target_name, holdout, floor_rms, cfg["nfes"], key)
                scores["train_seconds"] = seconds
                seeds.append(scores)
                log(
                    f"  B {name} {method} seed {seed}: 1-NFE ED {scores['1']['energy_distance']}"
                    f" (floor {floor_rms:.4f}), gap {scores['nll_gap']['value']:.3f}; "
                    f"train {seconds:.0f} s (shared CPU)"
                )
            entry["methods"][method] = {"seeds": seeds, "summary": _summarise(seeds, cfg["nfes"])}
        out["datasets"][name] = entry
        if partial is not None:
            partial(out)
    return out


_CACHE: dict = {}


def merge_study(base: dict, others: list[dict]) -> dict:
    """Part B of ``base`` with the datasets of ``others`` (other invocations of the same
    study, e.g. with ``--b-datasets`` split over processes) added, a dataset in both
    replaced by the other's; refused unless every protocol setting agrees."""
    keys = ("seeds", "steps", "batch_size", "network", "n_train", "n_holdout", "nfes",
            "reflow_pairs")  # fmt: skip
    datasets_ = dict(base["datasets"])
    not_run = dict(base.get("not_run", {}))
    for other in others:
        same_protocol(other["settings"], base["settings"], keys, "study datasets")
        datasets_.update(other["datasets"])
        not_run.update(other.get("not_run", {}))
    order = [n for n in STUDY_DATASETS if n in datasets_] + [
        n for n in datasets_ if n not in STUDY_DATASETS
    ]
    return {**base, "datasets": {n: datasets_[n] for n in order}, "not_run": not_run}


def _summarise(seeds: list, nfes) -> dict:
    summary: dict = {}
    for nfe in [str(k) for k in nfes] + ["adaptive"]:
        summary[nfe] = {
            metric: mean_sd([s[nfe].get(metric) for s in seeds])
            for metric in ("w2", "energy_distance", "ed_over_floor", "nfe")
        }
    summary["nll_gap"] = mean_sd([s["nll_gap"]["value"] for s in seeds])
    summary["train_seconds"] = mean_sd([s["train_seconds"] for s in seeds])
    return summary


# --- tables and targets ----------------------------------------------------------------------


def _fmt(ms: dict, digits: int = 3) -> str:
    if ms is None or ms.get("mean") is None:
        return "-"
    sd = ms.get("sd")
    return f"{ms['mean']:.{digits}f}" + ("" if sd is None else f" +- {sd:.{digits}f}")


def tables(result: dict) -> str:
    lines = []
    a = result.get("c2ot")
    if a:
        s = a["settings"]
        lines.append(
            f"A. C2OT Figure 1, 8gaussians -> moons: W2^2 (their unit; exact assignment, "
            f"sample metric) on {s['w2_samples']} vs {s['w2_samples']} points, mean +- "
            f"population SD over the runs, {s['iterations']} iterations (floor: two independent "
            f"{s['w2_samples']}-point target samples are W2^2 = {a['w2sq_floor_one_pair']:.4f} "
            "apart)"
        )
        lines.append(
            "| method | solver | runs | flowlab W2^2 | flowlab W2 | NFE | published W2^2 "
            "(10 runs) | within 2 sd |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for method, rows in a["summary"].items():
            for name in ("euler1", "adaptive"):
                r = rows[name]
                pub = r["published_w2sq"]
                lines.append(
                    f"| {method.upper() if method == 'ot' else 'FM'} | "
                    f"{'Euler, 1 step' if name == 'euler1' else 'Dopri5'} | {r['runs']} | "
                    f"{r['w2sq_mean']:.3f} +- {r['w2sq_sd_population']:.3f} | "
                    f"{r['w2_mean']:.3f} | {r['nfe_mean']:.0f} | {pub[0]:.3f} +- {pub[1]:.3f} | "
                    f"{'yes' if r['within_2sd'] else 'no'} |"
                )
        lines.append("")
    t5 = result.get("one_nfe_target")
    if t5:
        st = t5["settings"]
        lines.append(
            f"A'. 1-NFE target (W2^2 <= 0.072, C2OT's metric on {st['w2_samples']} points): "
            f"{st['method']}; {st['steps']} steps on {st['pairs']} pairs"
        )
        lines.append("| teacher | W2^2 1 NFE | W2^2 2 NFE | reflow s (shared CPU) |")
        lines.append("|---|---|---|---|")
        for r in t5["runs"]:
            lines.append(
                f"| OT-FM seed {r['seed']} | {r['euler1']['w2sq']:.4f} | {r['2']['w2sq']:.4f} | "
                f"{r['reflow_seconds']:.0f} |"
            )
        lines.append(
            f"| mean +- population SD | {t5['w2sq_1nfe_mean']:.4f} +- "
            f"{t5['w2sq_1nfe_sd_population']:.4f} | | |"
        )
        lines.append("")
    fl = result.get("one_nfe_flowlab")
    if fl:
        st = fl["settings"]
        lines.append(
            f"A''. 1-NFE target (W2^2 <= 0.072) with flowlab's few-step models, on C2OT's "
            f"metric: W2^2 by exact assignment on {st['w2_samples']} vs {st['w2_samples']} "
            f"points (sample metric), mean +- population SD over "
            f"{fl.get('seeds_run', st['seeds'])} seeds; "
            f"{st['network']}; {st['training']}"
        )
        lines.append(
            "| model | W2^2 at 1 NFE | per-seed | W2^2 adaptive (Dopri5) | train s (shared CPU) |"
        )
        lines.append("|---|---|---|---|---|")
        names = {"ot_fm": "OT-FM, 1 Euler step", "reflow1_ot_fm": "reflow 1 of OT-FM, 1 step",
                 "meanflow_ot": "mean flow with OT pairs, 1 jump"}  # fmt: skip
        for method in sorted(fl["methods"], key=lambda k: list(names).index(k) if k in names
                             else len(names)):  # fmt: skip
            m = fl["methods"][method]
            per = ", ".join(f"{r['euler1']['w2sq']:.4f}" for r in m["runs"])
            adaptive = (
                f"{m['w2sq_adaptive_mean']:.4f} +- {m['w2sq_adaptive_sd_population']:.4f}"
                if "w2sq_adaptive_mean" in m
                else "-"
            )
            lines.append(
                f"| {names.get(method, method)} | {m['w2sq_1nfe_mean']:.4f} +- "
                f"{m['w2sq_1nfe_sd_population']:.4f} | {per} | {adaptive} | "
                f"{m['train_seconds_mean']:.0f} |"
            )
        lines.append("")
    c = result.get("one_nfe_course")
    if c:
        st = c["settings"]
        lines.append(
            f"C. Course datasets at 1 NFE with part A''s recipe ({st['recipe']}): energy "
            f"distance ({st['energy_distance']}) over the noise floor ({st['floor']}), mean +- "
            f"SD over {st['seeds']} seeds; each model's adaptive (Dopri5) solve beside it; exact "
            "NLL - true entropy; training seconds (shared CPU, reflow: teacher + reflow)"
        )
        lines.append(
            "| dataset | method | ED 1 NFE | ED / floor | ED adaptive | W2 1 NFE | NLL gap | "
            "train s |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for name, entry in c["datasets"].items():
            for method, m in entry["methods"].items():
                sm = m["summary"]
                lines.append(
                    f"| {name} | {method} | {_fmt(sm['1']['energy_distance'], 4)} | "
                    f"{_fmt(sm['1']['ed_over_floor'], 1)} | "
                    f"{_fmt(sm['adaptive']['energy_distance'], 4)} | {_fmt(sm['1']['w2'])} | "
                    f"{_fmt(sm['nll_gap'])} | {_fmt(sm['train_seconds'], 0)} |"
                )
        lines.append("")
    b = result.get("nfe_study")
    if b:
        nfes = [str(k) for k in b["settings"]["nfes"]] + ["adaptive"]
        lines.append(
            f"B. Energy distance ({b['settings']['n_holdout']} samples vs as many hold-out "
            "points, sample metric; a U-statistic, can be <= 0), mean +- SD over "
            f"{b['settings']['seeds']} seeds; last columns: exact NLL - true entropy (nats; "
            "KL estimate for the moons) and training seconds (shared CPU)"
        )
        lines.append(
            "| dataset | method | "
            + " | ".join(f"NFE {k}" for k in nfes)
            + " | NLL gap | train s |"
        )
        lines.append("|---|---|" + "---|" * (len(nfes) + 2))
        for name, entry in b["datasets"].items():
            lines.append(
                f"| {name} | floor (RMS) | {entry['ed_floor_rms']:.4f} |" + " |" * (len(nfes) + 1)
            )
            for method, m in entry["methods"].items():
                if "summary" not in m:
                    lines.append(
                        f"| {name} | {method} | {m.get('not_run', '-')} |" + " |" * (len(nfes) + 1)
                    )
                    continue
                sm = m["summary"]
                cells = [_fmt(sm[k]["energy_distance"], 4) for k in nfes]
                lines.append(
                    f"| {name} | {method} | "
                    + " | ".join(cells)
                    + f" | {_fmt(sm['nll_gap'])} | {_fmt(sm['train_seconds'], 0)} |"
                )
        lines.append("")
        lines.append(
            f"B'. W2 (exact assignment, {b['settings']['n_holdout']} vs "
            f"{b['settings']['n_holdout']}, sample metric) at 1 NFE and adaptive, mean +- SD"
        )
        lines.append("| dataset | method | W2 1 NFE | W2 adaptive | adaptive NFE |")
        lines.append("|---|---|---|---|---|")
        for name, entry in b["datasets"].items():
            for method, m in entry["methods"].items():
                if "summary" in m:
                    sm = m["summary"]
                    lines.append(
                        f"| {name} | {method} | {_fmt(sm['1']['w2'])} | "
                        f"{_fmt(sm['adaptive']['w2'])} | {_fmt(sm['adaptive']['nfe'], 0)} |"
                    )
        if b["not_run"]:
            lines.append("")
            lines.append("Not run: " + "; ".join(f"{k} ({v})" for k, v in b["not_run"].items()))
    return "\n".join(lines)


def targets(result: dict) -> dict:
    out: dict = {}
    a = result.get("c2ot")
    if a:
        if "ot" in a["summary"]:
            ot1 = a["summary"]["ot"]["euler1"]["w2sq_mean"]
            out["c2ot_ot_fm_1nfe_w2sq_le_0.072"] = {"value": ot1, "met": bool(ot1 <= 0.072)}
    t5 = result.get("one_nfe_target")
    if t5:
        out["best_few_step_1nfe_w2sq_le_0.072"] = {
            "model": "reflow 1 of OT-FM",
            "value": t5["w2sq_1nfe_mean"],
            "met": t5["met"],
        }
        out["c2ot_within_2sd"] = {
            f"{m}_{k}": a["summary"][m][k]["within_2sd"]
            for m in a["summary"]
            for k in ("euler1", "adaptive")
        }
    fl = result.get("one_nfe_flowlab")
    if fl:
        best = fl["methods"][fl["best"]]
        out["flowlab_best_1nfe_w2sq_le_0.072"] = {
            "model": fl["best"],
            "value": best["w2sq_1nfe_mean"],
            "sd_population": best["w2sq_1nfe_sd_population"],
            "train_seconds_shared_cpu": best["train_seconds_mean"],
            "met": fl["met"],
        }
    b = result.get("nfe_study")
    if b:
        per = {}
        for name, entry in b["datasets"].items():
            if name == "8gaussians_to_moons":
                continue
            best, best_ratio = None, math.inf
            for method, m in entry["methods"].items():
                if method == "ddim" or "summary" not in m:
                    continue
                ratio = m["summary"]["1"]["ed_over_floor"]["mean"]
                if ratio is not None and ratio < best_ratio:
                    best, best_ratio = method, ratio
            per[name] = {"best_method": best, "ed_over_floor": best_ratio, "met": best_ratio <= 3.0}
        out["course_1nfe_ed_within_3x_floor"] = per
    c = result.get("one_nfe_course")
    if c:  # part C's longer-trained models join part B's candidates
        per = out.setdefault("course_1nfe_ed_within_3x_floor", {})
        for name, entry in c["datasets"].items():
            for method, m in entry["methods"].items():
                ratio = m["summary"]["1"]["ed_over_floor"]["mean"]
                if ratio is not None and ratio < per.get(name, {}).get("ed_over_floor", math.inf):
                    per[name] = {"best_method": f"{method} (part C recipe)",
                                 "ed_over_floor": ratio, "met": ratio <= 3.0}  # fmt: skip
    return out


def plot(result: dict, path: Path) -> None:
    """Energy distance against NFE, one panel per dataset, methods as lines with SD error
    bars, adaptive solves as stars at their mean NFE, and 3x the noise floor dashed.

    The energy distance is a U-statistic and can be <= 0 (a model as close to the target
    as the hold-out is to itself); a log axis cannot show those, so a mean <= 0 is drawn
    as a downward triangle on the panel's bottom edge (labelled in the legend), never
    dropped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = result["nfe_study"]
    names = list(study["datasets"])
    n_eval = study["settings"].get("n_holdout", 500)
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows), squeeze=False)
    axes = [list(grid.ravel()[: len(names)])]
    for spare in grid.ravel()[len(names) :]:
        spare.axis("off")
    colours = dict(
        zip(STUDY_METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    labels = {"fm": "FM", "ot": "OT-FM", "reflow1": "reflow 1", "reflow2": "reflow 2",
              "ddim": "DDIM (VP diffusion)", "meanflow": "mean flow",
              "shortcut": "shortcut"}  # fmt: skip
    for ax, name in zip(axes[0], names, strict=True):
        entry = study["datasets"][name]
        positives = [3 * entry["ed_floor_rms"]]
        points = []  # (method, x, mean, sd, adaptive)
        for method, m in entry["methods"].items():
            if "summary" not in m:
                continue
            sm = m["summary"]
            for k in study["settings"]["nfes"]:
                ms = sm[str(k)]["energy_distance"]
                if ms["mean"] is not None:
                    points.append((method, k, ms["mean"], ms["sd"] or 0.0, False))
            ad = sm["adaptive"]
            if ad["energy_distance"]["mean"] is not None:
                e = ad["energy_distance"]
                points.append((method, ad["nfe"]["mean"], e["mean"], e["sd"] or 0.0, True))
        positives += [y for _, _, y, _, _ in points if y > 0]
        bottom = 0.5 * min(positives)
        for method in dict.fromkeys(p[0] for p in points):
            mine = [p for p in points if p[0] == method]
            steps = [p for p in mine if not p[4]]
            xs = [p[1] for p in steps]
            ys = [max(p[2], bottom) for p in steps]
            es = [p[3] for p in steps]
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=3,
                        label=labels.get(method, method), color=colours[method])  # fmt: skip
            for x, y in [(p[1], p[2]) for p in mine]:
                if y <= 0:
                    ax.plot([x], [bottom], marker="v", ms=9, color=colours[method],
                            markerfacecolor="none", linestyle="none",
                            label="mean <= 0 (drawn at the bottom edge)")  # fmt: skip
            for x, y, e, _ in [(p[1], p[2], p[3], p[4]) for p in mine if p[4] and p[2] > 0]:
                ax.errorbar([x], [y], yerr=[e], marker="*", ms=11, capsize=3,
                            color=colours[method], linestyle="none")  # fmt: skip
        ax.axhline(3 * entry["ed_floor_rms"], color="grey", ls="--", lw=1, label="3 x noise floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8 * bottom)
        ax.set_xlabel("network evaluations (NFE); star = adaptive Dopri5")
        ax.set_ylabel(f"energy distance to {n_eval} hold-out points")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3, which="both")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    if len(grid.ravel()) > len(names):  # the legend in the spare panel
        grid.ravel()[-1].legend(handles.values(), handles.keys(), fontsize=10, loc="center")
    else:
        fig.legend(handles.values(), handles.keys(), fontsize=9, loc="lower center", ncol=4)
    seeds = study["settings"]["seeds"]
    fig.suptitle(
        f"Sample quality against NFE: energy distance, {n_eval} samples (sample metric), "
        f"mean +- SD over {seeds} seeds"
    )
    fig.tight_layout(rect=(0, 0 if len(grid.ravel()) > len(names) else 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer seeds and steps")
    group.add_argument("--smoke", action="store_true", help="a few seconds; what CI runs")
    group.add_argument("--full", action="store_true", help="part A on C2OT's exact protocol")
    parser.add_argument("--skip-a", action="store_true", help="skip the C2OT reproduction")
    parser.add_argument("--skip-b", action="store_true", help="skip the NFE study")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON path")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from --out")
    parser.add_argument(
        "--target-only", action="store_true", help="only the 1-NFE target with flowlab's models"
    )
    parser.add_argument(
        "--course-target",
        action="store_true",
        help="only part C: part A''s recipe on the course datasets, 1-NFE energy distance",
    )
    parser.add_argument(
        "--reflow-from",
        nargs="+",
        type=Path,
        help="part A' only: reflow these saved C2OT OT-FM models (FEW_STEP_SAVE files)",
    )
    parser.add_argument("--b-steps", type=int, help="override the study's training steps")
    parser.add_argument("--b-seeds", type=int, help="override the study's seeds")
    parser.add_argument("--b-datasets", nargs="+", help="override the study's datasets")
    parser.add_argument("--b-eval-n", type=int, help="override the study's sample size")
    parser.add_argument("--b-seed-offset", type=int, help="part B: start at this seed")
    parser.add_argument("--a-ot-seeds", type=int, help="override part A's OT-FM runs")
    parser.add_argument("--a-fm-seeds", type=int, help="override part A's FM runs")
    parser.add_argument("--a-seed-offset", type=int, help="part A: start at this seed")
    parser.add_argument("--no-a-reflow", action="store_true", help="skip part A' (reflow)")
    parser.add_argument(
        "--merge-b", nargs="+", type=Path, metavar="JSON",
        help="merge part B's datasets of these JSONs (other invocations, e.g. --b-datasets) "
        "into --out, recompute its targets, redraw the figure, and train nothing",
    )  # fmt: skip
    parser.add_argument(
        "--merge-a", nargs="+", type=Path, metavar="JSON",
        help="merge part A's runs of these JSONs (other invocations, e.g. --a-seed-offset) "
        "into --out, recompute its summary and targets, and train nothing",
    )  # fmt: skip
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(SETTINGS[mode])
    names = ("b_steps", "b_seeds", "b_datasets", "b_eval_n", "b_seed_offset", "a_ot_seeds",
             "a_fm_seeds", "a_seed_offset")  # fmt: skip
    for name in names:
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    if args.merge_a:
        result = json.loads(args.out.read_text())
        result["c2ot"] = merge_c2ot(result["c2ot"], [json.loads(p.read_text())["c2ot"]
                                                     for p in args.merge_a])  # fmt: skip
        result["targets"] = targets(result)
        write_json(args.out, result)
        print(tables(result))
        return 0
    if args.merge_b:
        result = json.loads(args.out.read_text())
        studies = [json.loads(p.read_text())["nfe_study"] for p in args.merge_b]
        if "nfe_study" not in result:  # the first JSON's study is the base
            result["nfe_study"], studies = studies[0], studies[1:]
        result["nfe_study"] = merge_study(result["nfe_study"], studies)
        result["targets"] = targets(result)
        write_json(args.out, result)
        plot(result, args.out.with_name("few_step.png"))
        print(tables(result))
        return 0
    if args.plot_only:
        result = json.loads(args.out.read_text())
        result["targets"] = targets(result)
        write_json(args.out, result)
        if "nfe_study" in result:
            plot(result, args.out.with_name("few_step.png"))
        print(tables(result))
        print("Targets:", json.dumps(result["targets"], indent=1))
        return 0

    def log(msg):
        print(msg, flush=True)

    result: dict = {
        "mode": mode,
        "jax": jax.__version__,
        "cpu_note": "timings on a CPU shared with other jobs",
    }
    if args.out.exists() and (args.skip_a or args.skip_b or args.target_only or args.course_target):
        result.update(
            {
                k: v
                for k, v in json.loads(args.out.read_text()).items()
                if k in ("c2ot", "one_nfe_target", "one_nfe_flowlab", "nfe_study", "one_nfe_course")
            }
        )
    start = time.perf_counter()
    if args.reflow_from:
        if args.out.exists():  # the reflow rows join those already there; the rest is kept
            result = json.loads(args.out.read_text())
        prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
        like = CNF(SimpleNet(key=jax.random.key(0)), prior=prior, rtol=1e-4, atol=1e-4)
        teachers = [eqx.tree_deserialise_leaves(p, like) for p in args.reflow_from]
        # FEW_STEP_SAVE names a run's network c2ot_ot<seed>.eqx; its seed seeds the reflow
        found = [re.search(r"ot(\d+)\.eqx$", p.name) for p in args.reflow_from]
        seeds = [int(m.group(1)) for m in found] if all(found) else None
        log("A'. The 1-NFE target: reflow of the saved OT-FM models")
        result["one_nfe_target"] = one_nfe_target(
            cfg, teachers, log, seeds=seeds, earlier=result.get("one_nfe_target")
        )
        result["targets"] = targets(result)
        write_json(args.out, result)
        print(tables(result))
        return 0
    single = {  # flag: (heading, JSON key, the part's function)
        "course_target": ("C. The course datasets' 1-NFE target with part A''s recipe",
                          "one_nfe_course", one_nfe_course),
        "target_only": ("A''. The 1-NFE target with flowlab's few-step models",
                        "one_nfe_flowlab", one_nfe_flowlab),
    }  # fmt: skip
    for flag, (heading, part, run_part) in single.items():
        if getattr(args, flag):  # one part alone, written after each seed or dataset
            log(heading)
            result[part] = run_part(
                cfg, log, lambda p, part=part: write_json(args.out, {**result, part: p})
            )
            result["targets"] = targets(result)
            write_json(args.out, result)
            print(tables({part: result[part]}))
            return 0
    if not args.skip_a:
        log("A. C2OT Figure 1 reproduction")
        result["c2ot"], teachers = c2ot_reproduction(cfg, log)
        write_json(args.out, result)
        if teachers and not args.no_a_reflow:
            log("A'. The 1-NFE target: reflow of the OT-FM models")
            result["one_nfe_target"] = one_nfe_target(cfg, teachers, log)
            write_json(args.out, result)
    if not args.skip_b:
        log("B. NFE study")

        def partial(study):
            write_json(args.out, {**result, "nfe_study": study})

        result["nfe_study"] = nfe_study(cfg, log, partial)
    result["targets"] = targets(result)
    result["wall_seconds"] = time.perf_counter() - start
    write_json(args.out, result)
    if "nfe_study" in result and mode != "smoke":
        plot(result, args.out.with_name("few_step.png"))
    print(tables(result))
    print("Targets:", json.dumps(result["targets"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
