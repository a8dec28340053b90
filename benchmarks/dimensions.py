"""Beyond 2D (issue 13): exact trace vs Hutchinson as the dimension grows.

    python benchmarks/dimensions.py                 # d = 2, 8, 32 (~3 min on 2 quiet cores)
    python benchmarks/dimensions.py --quick         # d = 2, 8, tiny budgets (~1 min)
    python benchmarks/dimensions.py --out x.json    # write the JSON elsewhere

The target is a d-dimensional mixture of eight isotropic Gaussians (means on a sphere of
radius 2.5 drawn with a fixed key, standard deviation 0.4) with a closed-form log-density
(a logsumexp). Its entropy is a **Monte Carlo estimate** (200,000 draws) with its standard
error; the mixture bound ``log K + H(one component)`` is printed beside it as a check.

For each d, with the same public API as in 2D (``flowlab.CNF`` over a width-128 depth-3
``flowlab.nn.MLPVectorField``):

1. a CNF is trained by flow matching (``flowlab.fit`` with ``flowlab.FlowMatching``: no
   trace needed) for a fixed budget;
2. from those weights, one maximum-likelihood training step (batch 256,
   ``flowlab.MaximumLikelihood`` defaults: adaptive Tsit5, rtol = atol = 1e-3, RMS norm)
   is timed with the exact trace and with ``hutchinson=True`` (median ms/step of a chunk
   of steps fused in one ``lax.scan`` under one jit, as ``flowlab.fit`` runs them; compile
   time separately), with the NFE of the training solve;
3. ``log_prob`` of 1000 hold-out points is timed with the exact trace
   (``model.log_prob(x)``) and with the Hutchinson estimate (``model.log_prob(x, key=k)``:
   one Rademacher probe per point, fixed over the solve), median ms and NFE;
4. the NLL gap reached: the exact hold-out NLL (2000 points) minus the entropy (with the
   two standard errors combined), the paired estimate of the same KL divergence
   ``mean(log p - log q)`` on the hold-out points (its SE is much smaller), and the
   Hutchinson estimate of the same NLL: its difference from the exact value (unbiased:
   within a few SE of zero) and its extra per-point noise.

Every random number comes from an explicit ``jax.random`` key. Writes
``benchmarks/dimensions_results.json`` atomically (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _models import bench_train
from _timing import machine, matmul_gflops, median_time

import flowlab

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "dimensions_results.json"

COMPONENTS = 8
RADIUS = 2.5
STD = 0.4

FULL = {
    "dims": (2, 8, 32),
    "width": 128,
    "depth": 3,
    "n_train": 100_000,
    "n_holdout": 2000,
    "entropy_samples": 200_000,
    "fm_steps": 3000,
    "fm_batch": 512,
    "mle_batch": 256,
    "mle_chunk": 3,
    "mle_repeats": 3,
    "log_prob_points": 1000,
    "log_prob_repeats": 3,
}
QUICK = FULL | {
    "dims": (2, 8),
    "width": 64,
    "depth": 2,
    "n_train": 10_000,
    "n_holdout": 500,
    "entropy_samples": 20_000,
    "fm_steps": 300,
    "fm_batch": 256,
    "mle_chunk": 2,
    "mle_repeats": 1,
    "log_prob_points": 250,
    "log_prob_repeats": 1,
}


# -- the target: a d-dimensional Gaussian mixture with a closed-form density -------------------


class GaussianMixture(eqx.Module):
    """Equal-weight mixture of isotropic Gaussians ``N(mean_k, std^2 I)``."""

    means: jax.Array  # (K, d)
    std: float = eqx.field(static=True)

    @classmethod
    def on_sphere(cls, key, d: int, k: int = COMPONENTS, radius=RADIUS, std=STD):
        """``k`` means drawn uniformly on the sphere of ``radius`` in ``R^d``."""
        directions = jax.random.normal(key, (k, d))
        means = radius * directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
        return cls(means, std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def log_prob(self, x):
        """Exact log-density of each row of ``x`` (shape ``(n, d)``), in nats."""
        k, d = self.means.shape
        sq = jnp.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)
        norm = math.log(k) + 0.5 * d * math.log(2 * math.pi * self.std**2)
        return jax.scipy.special.logsumexp(-0.5 * sq / self.std**2, axis=-1) - norm

    def sample(self, key, n: int):
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.randint(k_comp, (n,), 0, self.means.shape[0])
        return self.means[comp] + self.std * jax.random.normal(k_noise, (n, self.dim))

    def entropy_bound(self) -> float:
        """``log K + H(N(0, std^2 I))``: an upper bound of the mixture's entropy, reached
        when the components do not overlap."""
        k, d = self.means.shape
        return math.log(k) + 0.5 * d * math.log(2 * math.pi * math.e * self.std**2)

    def entropy_mc(self, key, n: int, chunk: int = 50_000) -> tuple[float, float]:
        """Monte Carlo estimate of the entropy ``-E log p(x)`` from ``n`` draws, and its
        standard error."""
        values = []
        log_prob = eqx.filter_jit(lambda target, x: target.log_prob(x))
        for i, start in enumerate(range(0, n, chunk)):
            x = self.sample(jax.random.fold_in(key, i), min(chunk, n - start))
            values.append(np.asarray(-log_prob(self, x), np.float64))
        v = np.concatenate(values)
        return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


# -- measurements ------------------------------------------------------------------------------


def bench_log_prob(model, x, repeats, key=None):
    """Time and NFE of ``model.log_prob(x)`` (exact trace) or, with a ``key``, of the
    Hutchinson estimate ``model.log_prob(x, key=key)``; the compile time is the first
    call's time less the median."""
    t0 = time.perf_counter()
    _, stats = jax.block_until_ready(model.log_prob_with_stats(x, key=key))
    first = time.perf_counter() - t0  # the same compiled solve as model.log_prob
    t, _ = median_time(lambda: model.log_prob(x, key=key), repeats)
    return {
        "n": int(x.shape[0]),
        "time_s": t,
        "compile_s": max(first - t, 0.0),
        "nfe": int(stats.nfe),
    }


def training_solve_nfe(model, loss, x, key):
    """NFE of the forward solve inside ``loss`` (a ``MaximumLikelihood``) on the batch ``x``,
    with the loss's own solver options."""
    train_model = model.with_options(
        rtol=loss.rtol, atol=loss.atol, max_steps=loss.max_steps, norm=loss.norm
    )
    _, stats = train_model.log_prob_with_stats(x, key=key if loss.hutchinson else None)
    return int(stats.nfe)


def chunked_log_prob(model, x, size, key=None):
    """``model.log_prob`` of ``x`` in chunks of ``size`` rows (one compiled shape)."""
    out = []
    for i, start in enumerate(range(0, x.shape[0], size)):
        k = None if key is None else jax.random.fold_in(key, i)
        out.append(np.asarray(model.log_prob(x[start : start + size], key=k), np.float64))
    return np.concatenate(out)


def mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def one_dimension(d: int, cfg: dict, key) -> dict:
    k_target, k_data, k_hold, k_ent, k_model, k_fit, k_probe = jax.random.split(key, 7)
    target = GaussianMixture.on_sphere(k_target, d)
    train = target.sample(k_data, cfg["n_train"])
    holdout = target.sample(k_hold, cfg["n_holdout"])
    phases = {}
    tick = time.perf_counter()

    def phase(name):
        nonlocal tick
        now = time.perf_counter()
        phases[name] = now - tick
        tick = now

    entropy, entropy_se = target.entropy_mc(k_ent, cfg["entropy_samples"])
    phase("entropy")
    out = {
        "d": d,
        "entropy_mc": entropy,
        "entropy_mc_se": entropy_se,
        "entropy_bound": target.entropy_bound(),
    }

    # 1. flow matching for the fixed budget
    field = flowlab.nn.MLPVectorField(d, cfg["width"], cfg["depth"], key=k_model)
    model = flowlab.CNF(field, standardize=flowlab.Standardize.fit(train))
    t0 = time.perf_counter()
    model, history = flowlab.fit(
        model,
        flowlab.FlowMatching(),
        train,
        holdout,
        key=k_fit,
        steps=cfg["fm_steps"],
        batch_size=cfg["fm_batch"],
        eval_every=cfg["fm_steps"],
        progress=False,
    )
    out["fm_train_s"] = time.perf_counter() - t0  # compile and the hold-out FM loss included
    out["fm_holdout_loss"] = history.holdout_loss[-1]
    phase("flow_matching")

    # 2. one maximum-likelihood step from those weights, exact trace vs Hutchinson
    batch = train[: cfg["mle_batch"]]
    for name, hutchinson in (("exact", False), ("hutchinson", True)):
        loss = flowlab.MaximumLikelihood(hutchinson=hutchinson)
        r = bench_train(model, loss, train, cfg["mle_batch"], cfg["mle_chunk"], cfg["mle_repeats"])
        r["train_solve_nfe"] = training_solve_nfe(model, loss, batch, k_probe)
        out[f"mle_step_{name}"] = r
    phase("mle_steps")
    out["mle_step_speedup"] = (
        out["mle_step_exact"]["step_ms"] / out["mle_step_hutchinson"]["step_ms"]
    )

    # 3. log_prob of log_prob_points points: exact trace vs the Hutchinson estimate
    n = cfg["log_prob_points"]
    x = holdout[:n]
    out["log_prob_exact"] = bench_log_prob(model, x, cfg["log_prob_repeats"])
    out["log_prob_hutchinson"] = bench_log_prob(model, x, cfg["log_prob_repeats"], k_probe)
    out["log_prob_speedup"] = out["log_prob_exact"]["time_s"] / out["log_prob_hutchinson"]["time_s"]
    phase("log_prob")

    # 4. the NLL gap reached, exact and estimated by Hutchinson on the same points
    lq = chunked_log_prob(model, holdout, n)
    lq_h = chunked_log_prob(model, holdout, n, key=k_probe)
    lp = np.asarray(target.log_prob(holdout), np.float64)
    nll, nll_se = mean_se(-lq)
    nll_h, nll_h_se = mean_se(-lq_h)
    diff, diff_se = mean_se(lq - lq_h)  # Hutchinson NLL minus exact NLL, paired
    kl, kl_se = mean_se(lp - lq)
    out["nll"] = {
        "n_holdout": int(holdout.shape[0]),
        "exact": nll,
        "exact_se": nll_se,
        "gap_vs_entropy": nll - entropy,
        "gap_vs_entropy_se": math.hypot(nll_se, entropy_se),
        "kl_paired": kl,
        "kl_paired_se": kl_se,
        "hutchinson": nll_h,
        "hutchinson_se": nll_h_se,
        "hutchinson_minus_exact": diff,
        "hutchinson_minus_exact_se": diff_se,
        "hutchinson_per_point_noise_std": float(np.std(lq_h - lq, ddof=1)),
        "true_log_prob_nll": float(-lp.mean()),
        "labels": {
            "exact": model.likelihood_label(),
            "hutchinson": model.likelihood_label(hutchinson=True),
        },
    }
    phase("holdout_nll")
    out["phase_s"] = phases
    return out


# -- output --------------------------------------------------------------------------------------


def print_tables(rows: list[dict]) -> None:
    print("\n-- cost: exact trace vs Hutchinson (median after compilation; NFE in brackets)")
    print(
        f"{'d':>3} | {'MLE step exact':>22} | {'MLE step Hutch.':>22} | {'x':>5} | "
        f"{'log_prob exact':>22} | {'log_prob Hutch.':>22} | {'x':>5}"
    )
    for r in rows:
        me, mh = r["mle_step_exact"], r["mle_step_hutchinson"]
        le, lh = r["log_prob_exact"], r["log_prob_hutchinson"]
        print(
            f"{r['d']:>3} | {me['step_ms']:9.1f} ms ({me['train_solve_nfe']:4d} NFE) | "
            f"{mh['step_ms']:9.1f} ms ({mh['train_solve_nfe']:4d} NFE) | "
            f"{r['mle_step_speedup']:5.2f} | "
            f"{le['time_s'] * 1e3:9.1f} ms ({le['nfe']:4d} NFE) | "
            f"{lh['time_s'] * 1e3:9.1f} ms ({lh['nfe']:4d} NFE) | {r['log_prob_speedup']:5.2f}"
        )
    print(
        "    compile (s): "
        + "; ".join(
            f"d={r['d']}: MLE {r['mle_step_exact']['compile_s']:.1f} / "
            f"{r['mle_step_hutchinson']['compile_s']:.1f}, log_prob "
            f"{r['log_prob_exact']['compile_s']:.1f} / {r['log_prob_hutchinson']['compile_s']:.1f}"
            for r in rows
        )
    )
    print("\n-- NLL reached by flow matching (nats; +- one standard error)")
    print(
        f"{'d':>3} | {'entropy (MC)':>16} | {'bound':>7} | {'exact NLL':>16} | "
        f"{'NLL - entropy':>15} | {'KL paired':>15} | {'Hutch. - exact':>16} | {'noise/pt':>8}"
    )
    for r in rows:
        s = r["nll"]
        print(
            f"{r['d']:>3} | {r['entropy_mc']:8.4f} +- {r['entropy_mc_se']:.4f} | "
            f"{r['entropy_bound']:7.3f} | {s['exact']:8.4f} +- {s['exact_se']:.4f} | "
            f"{s['gap_vs_entropy']:6.3f} +- {s['gap_vs_entropy_se']:.3f} | "
            f"{s['kl_paired']:6.3f} +- {s['kl_paired_se']:.3f} | "
            f"{s['hutchinson_minus_exact']:+7.4f} +- {s['hutchinson_minus_exact_se']:.4f} | "
            f"{s['hutchinson_per_point_noise_std']:8.3f}"
        )


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="d = 2, 8, tiny budgets")
    p.add_argument("--dims", type=int, nargs="+", help="override the dimensions")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.dims:
        cfg["dims"] = tuple(args.dims)
    t_start = time.perf_counter()
    info = machine()
    if not args.quick:
        info["matmul_gflops"] = matmul_gflops()
    print(
        f"== beyond 2D: exact trace vs Hutchinson, d = {cfg['dims']}"
        + (" (quick)" if args.quick else "")
    )
    rows = []
    for d in cfg["dims"]:
        t0 = time.perf_counter()
        rows.append(one_dimension(d, cfg, jax.random.fold_in(jax.random.key(13), d)))
        rows[-1]["wall_s"] = time.perf_counter() - t0
        phases = ", ".join(f"{k} {v:.1f}" for k, v in rows[-1]["phase_s"].items())
        print(f"   d = {d}: {rows[-1]['wall_s']:.1f} s ({phases})", flush=True)
    print_tables(rows)
    result = {
        "quick": args.quick,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "target": {
            "components": COMPONENTS,
            "radius": RADIUS,
            "std": STD,
            "entropy": "Monte Carlo estimate (entropy_mc +- entropy_mc_se)",
        },
        "machine": info,
        "dims": {str(r["d"]): r for r in rows},
        "total_s": time.perf_counter() - t_start,
    }
    info["load_average_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    flowlab._checkpoint.atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"\ntotal {result['total_s']:.1f} s; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
