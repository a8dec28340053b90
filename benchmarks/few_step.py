r"""Few steps, measured (issue 23): source-to-target flows, the C2OT reproduction and the
NFE study.

Part A reproduces Cheng & Schwing (2025, "The Curse of Conditions", C2OT) Figure 1,
unconditional 8gaussians -> moons, on their generators (``torchcfm_8gaussians`` ->
``torchcfm_moons``) and their network: ``SimpleNet`` (input and time projections to 128,
three residual GELU blocks 128 -> 512 -> 128, output 2), Adam at lr 3e-4, batch 256, 20,000
iterations, no standardisation, 10 seeds, W2 on 10,000 generated against 10,000 fresh target
points. Their "W2" is ``ot.emd2(a, b, ot.dist(x, y))`` with POT's default squared-Euclidean
cost, i.e. the *squared* 2-Wasserstein distance of the two empirical measures; their "+-" is
``np.std`` (the population SD over seeds). We print both W2^2 (their unit) and W2. One
departure we cannot avoid in flowlab's ``fit``: they draw fresh points for every batch and
solve OT on 1024 points before cutting it into four batches of 256; here the target set is
a fixed 20,000-point sample and minibatch OT runs on each batch of 256.

Part B is the NFE study: 1, 2, 4, 8, 16 steps and adaptive (Dopri5) for flow matching
(FM), minibatch-OT FM, reflow rounds 1 and 2 (from the FM teacher; noise sources only) and
DDIM on a VP diffusion (adaptive = its probability-flow ODE), on 8gaussians -> moons and
the four course datasets (n = 2000 train / 500 hold-out from ``datasets.split``). Metrics:
W2 (exact assignment, 500 samples against the 500 hold-out points: a *sample metric*),
energy distance against the hold-out (500 vs 500, sample metric) with its true-sample
noise floor (RMS over 10 pairs of independent 500-point true samples), and for the ODE
models the *exact* hold-out NLL (adaptive solve, exact trace) minus the true entropy (for
the moons, which have no closed-form entropy, the paired estimate of KL(data || model),
mean of true minus model log-density, with its SE). Mean +- SD over seeds.

Mean flows and the shortcut model run when their modules (``flowlab.meanflow``,
``flowlab.shortcut``) exist; otherwise the JSON says they were not run.

    python benchmarks/few_step.py            # default (about 25 min on 2 shared cores)
    python benchmarks/few_step.py --quick    # fewer steps and seeds
    python benchmarks/few_step.py --smoke    # seconds; what the CI test runs
    python benchmarks/few_step.py --full     # part A on C2OT's exact protocol (hours on CPU)

Every time printed is wall-clock on a CPU shared with other jobs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
import scipy.spatial

from flowlab import CNF, Diffusion, Standardize, datasets, evaluate, fit, metrics, samplers
from flowlab.cnf import GaussianMixture
from flowlab.couplings import ExactOT
from flowlab.nn import MLPVectorField
from flowlab.objectives import DenoisingScoreMatching, FlowMatching

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "few_step_results.json"
NFES = (1, 2, 4, 8, 16)

# Cheng & Schwing 2025, Figure 1 (W2^2 in their code's unit, mean +- population SD, 10 runs)
C2OT_PUBLISHED = {
    "fm": {"euler1": (6.232, 0.186), "adaptive": (0.120, 0.045)},
    "ot": {"euler1": (0.072, 0.025), "adaptive": (0.050, 0.040)},
}
SETTINGS = {
    "smoke": dict(
        a_seeds=1,
        a_steps=20,
        a_n=100,
        a_train=500,
        b_seeds=1,
        b_steps=20,
        b_datasets=("gaussian_mixture",),
        reflow_pairs=200,
        b_methods=("fm", "ot"),
        floor_pairs=2,
        nfes=(1,),
    ),
    "quick": dict(
        a_seeds=2,
        a_steps=2000,
        a_n=2000,
        a_train=20_000,
        b_seeds=2,
        b_steps=1000,
        b_datasets=None,
        reflow_pairs=2000,
        b_methods=("fm", "ot", "reflow1", "ddim", "meanflow", "shortcut"),
        floor_pairs=10,
        nfes=NFES,
    ),
    "default": dict(
        a_seeds=3,
        a_steps=5000,
        a_n=2000,
        a_train=20_000,
        b_seeds=3,
        b_steps=2500,
        b_datasets=None,
        reflow_pairs=8000,
        b_methods=None,
        floor_pairs=10,
        nfes=NFES,
    ),
    "full": dict(
        a_seeds=10,
        a_steps=20_000,
        a_n=10_000,
        a_train=100_000,
        b_seeds=3,
        b_steps=2500,
        b_datasets=None,
        reflow_pairs=8000,
        b_methods=None,
        floor_pairs=10,
        nfes=NFES,
    ),
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
    """Exact squared W2 between two equal-size point sets (uniform weights): the optimal
    assignment of the squared-Euclidean cost (SciPy), the quantity POT's ``emd2`` returns."""
    cost = scipy.spatial.distance.cdist(np.asarray(x, np.float64), np.asarray(y, np.float64))
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
    try:
        from flowlab._flow_map import AbstractFlowMap
    except ImportError:
        return False
    return isinstance(model, AbstractFlowMap)


def write_json(path: Path, payload: dict) -> None:
    """Atomic: a temporary file in the same folder, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --- part A: C2OT Figure 1 -----------------------------------------------------------------


def c2ot_reproduction(cfg: dict, log) -> dict:
    n, steps = cfg["a_n"], cfg["a_steps"]
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    out: dict = {
        "settings": {
            "seeds": cfg["a_seeds"],
            "iterations": steps,
            "batch_size": 256,
            "lr": 3e-4,
            "w2_samples": n,
            "train_points": cfg["a_train"],
            "ot_batch": 256,
            "adaptive": "Dopri5, rtol = atol = 1e-4 (torchdyn's, as C2OT)",
            "unit": "W2^2 (POT emd2 on squared Euclidean cost), and W2",
            "spread": "population SD over seeds (np.std, as C2OT)",
        }
    }
    out["settings"]["network"] = (
        "C2OT SimpleNet: Linear(2,128) + Linear(1,128)(t), 3 x [x + Linear(512,128)(GELU(Linear(128,512)(x)))], Linear(128,2)"  # noqa: E501
    )
    # The finite-sample floor of W2^2: two independent target samples of size n.
    k1, k2 = jax.random.split(jax.random.key(12345))
    floor = w2_squared(
        datasets.sample("torchcfm_moons", k1, n), datasets.sample("torchcfm_moons", k2, n)
    )
    out["w2sq_floor_one_pair"] = floor
    runs = {m: [] for m in ("fm", "ot")}
    for method in ("fm", "ot"):
        loss = FlowMatching(coupling=ExactOT() if method == "ot" else None)
        for seed in range(cfg["a_seeds"]):
            key = jax.random.key(1000 + seed)
            k_net, k_train, k_fit, k_eval, k_target = jax.random.split(key, 5)
            train = datasets.sample("torchcfm_moons", k_train, cfg["a_train"])
            holdout = datasets.sample("torchcfm_moons", jax.random.fold_in(k_train, 1), 1000)
            model = CNF(SimpleNet(key=k_net), prior=prior, rtol=1e-4, atol=1e-4)
            start = time.perf_counter()
            model, _ = fit(
                model,
                loss,
                train,
                holdout,
                key=k_fit,
                steps=steps,
                batch_size=256,
                optimizer=optax.adam(3e-4),
                eval_every=steps,
                progress=False,
            )
            seconds = time.perf_counter() - start
            target = datasets.sample("torchcfm_moons", k_target, n)
            row = {"seed": seed, "train_seconds": seconds}
            for name, nfe in (("euler1", 1), ("adaptive", "adaptive")):
                x, used = _sample(model, k_eval, n, nfe)
                w2sq = w2_squared(x, target)
                row[name] = {"w2sq": w2sq, "w2": math.sqrt(w2sq), "nfe": used}
            runs[method].append(row)
            log(
                f"  A {method} seed {seed}: W2^2 1-step {row['euler1']['w2sq']:.3f}, "
                f"adaptive {row['adaptive']['w2sq']:.3f} (NFE {row['adaptive']['nfe']:.0f}); "
                f"train {seconds:.0f} s (shared CPU)"
            )
    summary = {}
    for method, rows in runs.items():
        summary[method] = {}
        for name in ("euler1", "adaptive"):
            w = np.asarray([r[name]["w2sq"] for r in rows])
            pub_mean, pub_sd = C2OT_PUBLISHED[method][name]
            mean = float(w.mean())
            summary[method][name] = {
                "w2sq_mean": mean,
                "w2sq_sd_population": float(w.std()),
                "w2_mean": float(np.sqrt(w).mean()),
                "nfe_mean": float(np.mean([r[name]["nfe"] for r in rows])),
                "published_w2sq": [pub_mean, pub_sd],
                "within_2sd": bool(abs(mean - pub_mean) <= 2 * pub_sd),
            }
        summary[method]["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in rows]))
    out["runs"] = runs
    out["summary"] = summary
    return out


# --- part B: the NFE study -------------------------------------------------------------------


def _study_data(name: str, seed: int):
    key = jax.random.key(seed)
    if name == "8gaussians_to_moons":
        train, holdout = datasets.split("torchcfm_moons", key)
        return train, holdout, "torchcfm_moons", GaussianMixture.from_dataset("torchcfm_8gaussians")
    train, holdout = datasets.split(name, key)
    return train, holdout, name, None


def _train(method, train, holdout, prior, steps, key, teacher=None, reflow_pairs=0):
    std = Standardize.fit(train)
    net = MLPVectorField(2, width=64, depth=3, key=jax.random.fold_in(key, 7))
    common = dict(batch_size=256, eval_every=steps, progress=False)
    if method in ("fm", "ot"):
        model = CNF(net, standardize=std, prior=prior)
        loss = FlowMatching(coupling=ExactOT() if method == "ot" else None)
        return fit(model, loss, train, holdout, key=key, steps=steps, **common)[0]
    if method.startswith("reflow"):
        from flowlab.rectified import reflow

        model, _, _ = reflow(teacher, teacher, key=key, n_pairs=reflow_pairs, steps=steps, **common)
        return model
    if method == "ddim":
        model = Diffusion(net, standardize=std)
        return fit(model, DenoisingScoreMatching(), train, holdout, key=key, steps=steps, **common)[
            0
        ]
    module = importlib.import_module(f"flowlab.{method}")
    return module.train_default(
        train, holdout, key=key, steps=steps, prior=prior
    )  # pragma: no cover


def _available(method: str) -> bool:
    if method in ("meanflow", "shortcut"):
        try:
            module = importlib.import_module(f"flowlab.{method}")
        except ImportError:
            return False
        return hasattr(module, "train_default")
    if method.startswith("reflow"):
        try:
            importlib.import_module("flowlab.rectified")
        except ImportError:
            return False
    return True


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
            "w2": metrics.wasserstein2(x, holdout_np),
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


def nfe_study(cfg: dict, log) -> dict:
    names = cfg["b_datasets"] or STUDY_DATASETS
    methods = cfg["b_methods"] or STUDY_METHODS
    out: dict = {
        "settings": {
            "seeds": cfg["b_seeds"],
            "steps": cfg["b_steps"],
            "batch_size": 256,
            "network": "MLPVectorField(width=64, depth=3), Adam (fit's default)",
            "n_train": 2000,
            "n_holdout": 500,
            "nfes": list(cfg["nfes"]),
            "w2": "exact assignment, 500 samples vs the 500 hold-out points (sample metric)",
            "energy_distance": "500 samples vs the 500 hold-out points (sample metric)",
            "floor": f"RMS of the energy distance of {cfg['floor_pairs']} pairs of "
            "independent 500-point true samples",
            "reflow_pairs": cfg["reflow_pairs"],
            "spread": "sample SD over seeds (ddof 1)",
        },
        "not_run": {},
        "datasets": {},
    }
    for method in methods:
        if not _available(method):
            out["not_run"][method] = "module not on this branch yet"
    for name in names:
        target = "torchcfm_moons" if name == "8gaussians_to_moons" else name
        floor = evaluate.noise_floor(target, 500, key=jax.random.key(99), pairs=cfg["floor_pairs"])
        floor_rms = floor["energy_distance"]["rms"]
        entry: dict = {"target": target, "ed_floor_rms": floor_rms, "methods": {}}
        for method in methods:
            if method in out["not_run"]:
                continue
            if name == "8gaussians_to_moons" and method in ("reflow1", "reflow2", "ddim"):
                entry["methods"][method] = {"not_run": "needs an N(0, I) source"}
                continue
            seeds = []
            for seed in range(cfg["b_seeds"]):
                train, holdout, target_name, prior = _study_data(name, seed)
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
    return out


_CACHE: dict = {}


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
            f"A. C2OT Figure 1, 8gaussians -> moons: W2^2 (their unit) on {s['w2_samples']} "
            f"samples, mean +- population SD over {s['seeds']} seeds, {s['iterations']} "
            f"iterations (sample metric; one-pair floor W2^2 = {a['w2sq_floor_one_pair']:.4f})"
        )
        lines.append(
            "| method | solver | flowlab W2^2 | flowlab W2 | NFE | published W2^2 | within 2 sd |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for method, rows in a["summary"].items():
            for name in ("euler1", "adaptive"):
                r = rows[name]
                pub = r["published_w2sq"]
                lines.append(
                    f"| {method.upper() if method == 'ot' else 'FM'} | "
                    f"{'Euler, 1 step' if name == 'euler1' else 'Dopri5'} | "
                    f"{r['w2sq_mean']:.3f} +- {r['w2sq_sd_population']:.3f} | "
                    f"{r['w2_mean']:.3f} | {r['nfe_mean']:.0f} | {pub[0]:.3f} +- {pub[1]:.3f} | "
                    f"{'yes' if r['within_2sd'] else 'no'} |"
                )
        lines.append("")
    b = result.get("nfe_study")
    if b:
        nfes = [str(k) for k in b["settings"]["nfes"]] + ["adaptive"]
        lines.append(
            "B. Energy distance (500 vs 500 hold-out, sample metric), mean +- SD over "
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
        lines.append("B'. W2 (exact assignment, 500 vs 500, sample metric) at 1 NFE and adaptive")
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
        ot1 = a["summary"]["ot"]["euler1"]["w2sq_mean"]
        out["c2ot_1nfe_w2sq_le_0.072"] = {"value": ot1, "met": bool(ot1 <= 0.072)}
        out["c2ot_within_2sd"] = {
            f"{m}_{k}": a["summary"][m][k]["within_2sd"]
            for m in ("fm", "ot")
            for k in ("euler1", "adaptive")
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
    return out


def plot(result: dict, path: Path) -> None:
    """Energy distance against NFE, one panel per dataset, methods as lines with SD error
    bars, adaptive solves as markers at their mean NFE, and 3x the noise floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = result["nfe_study"]
    names = list(study["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.0), squeeze=False)
    colours = dict(
        zip(STUDY_METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    for ax, name in zip(axes[0], names, strict=True):
        entry = study["datasets"][name]
        for method, m in entry["methods"].items():
            if "summary" not in m:
                continue
            sm = m["summary"]
            ks = [k for k in study["settings"]["nfes"] if sm[str(k)]["energy_distance"]["mean"]]
            ys = [sm[str(k)]["energy_distance"]["mean"] for k in ks]
            es = [sm[str(k)]["energy_distance"]["sd"] or 0.0 for k in ks]
            label = (
                "DDIM (VP diffusion)"
                if method == "ddim"
                else method.upper().replace("REFLOW", "reflow ")
            )
            ax.errorbar(
                ks, ys, yerr=es, marker="o", ms=4, capsize=3, label=label, color=colours[method]
            )
            ad = sm["adaptive"]
            if ad["energy_distance"]["mean"] is not None:
                ax.errorbar(
                    [ad["nfe"]["mean"]],
                    [ad["energy_distance"]["mean"]],
                    yerr=[ad["energy_distance"]["sd"] or 0.0],
                    marker="*",
                    ms=10,
                    capsize=3,
                    color=colours[method],
                    linestyle="none",
                )
        ax.axhline(3 * entry["ed_floor_rms"], color="grey", ls="--", lw=1, label="3 x noise floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("network evaluations (NFE); star = adaptive Dopri5")
        ax.set_ylabel("energy distance to 500 hold-out points")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3, which="both")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=8, loc="upper right")
    seeds = study["settings"]["seeds"]
    fig.suptitle(f"Sample quality against NFE (mean +- SD over {seeds} seeds; 500 samples)")
    fig.tight_layout()
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
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full" if args.full else "default"
    cfg = SETTINGS[mode]
    if args.plot_only:
        result = json.loads(args.out.read_text())
        plot(result, args.out.with_name("few_step.png"))
        print(tables(result))
        return 0

    def log(msg):
        print(msg, flush=True)

    result: dict = {
        "mode": mode,
        "jax": jax.__version__,
        "cpu_note": "timings on a CPU shared with other jobs",
    }
    if args.out.exists() and (args.skip_a or args.skip_b):
        result.update(
            {
                k: v
                for k, v in json.loads(args.out.read_text()).items()
                if k in ("c2ot", "nfe_study")
            }
        )
    start = time.perf_counter()
    if not args.skip_a:
        log("A. C2OT Figure 1 reproduction")
        result["c2ot"] = c2ot_reproduction(cfg, log)
        write_json(args.out, result)
    if not args.skip_b:
        log("B. NFE study")
        result["nfe_study"] = nfe_study(cfg, log)
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
