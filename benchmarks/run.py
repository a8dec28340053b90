"""Speed figures of flowlab on this machine: exact log_prob, sampling, training throughput.

    python benchmarks/run.py            # prints a table, writes benchmarks/results.json
    python benchmarks/run.py --quick    # smaller repeats

Timings are medians of repeats after compilation; compile time is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import numpy as np

import flowlab
from flowlab import CNF, Standardize, datasets
from flowlab.nn import MLPVectorField
from flowlab.train import FlowMatching, MaximumLikelihood, _train_chunk, default_optimizer

HERE = Path(__file__).resolve().parent


def median_time(fn, repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), compile_s


def cnf(width, depth, train, seed=0):
    vf = MLPVectorField(2, width=width, depth=depth, key=jax.random.key(seed))
    return CNF(vf, standardize=Standardize.fit(train))


def bench_log_prob(model, x, repeats):
    (_, stats) = model.log_prob_with_stats(x)
    t, c = median_time(lambda: model.log_prob(x), repeats)
    return {"n": int(x.shape[0]), "time_s": t, "compile_s": c, "nfe": stats.as_dict()["nfe"]}


def bench_train(model, loss, data, batch, chunk, repeats):
    params, static = eqx.partition(model, flowlab.train.trainable_filter(model))
    opt = default_optimizer(1000)
    state = opt.init(params)

    def run():
        return _train_chunk(
            params, None, state, static, loss, opt, data, jax.random.key(0), chunk, batch, None
        )[3]

    t, c = median_time(run, repeats)
    return {
        "batch": batch,
        "step_ms": 1e3 * t / chunk,
        "steps_per_s": chunk / t,
        "points_per_s": chunk * batch / t,
        "compile_s": c,
    }


def bench_trained(repeats):
    """Figures for the models the experiment scripts trained (if their outputs exist)."""
    sys.path.insert(0, str(HERE.parent / "experiments"))
    out = {}
    runs = [("cnf_pinwheel_fm", "cnf_pinwheel"), ("diffusion_pinwheel_vp", "diffusion_pinwheel")]
    for run, module in runs:
        path = HERE.parent / "results" / run / "model.eqx"
        if not path.exists():
            print(f"(no trained model at {path}: run experiments/{module}.py for these figures)")
            continue
        build = __import__(module).build_model
        model, hp = flowlab.load_model(path, build)
        holdout = datasets.split(hp["dataset"], jax.random.split(jax.random.key(hp["seed"]), 5)[0])[
            1
        ]
        big = datasets.sample(hp["dataset"], jax.random.key(7), 10_000)
        row = {
            "log_prob_500": bench_log_prob(model, holdout, repeats),
            "log_prob_10k": bench_log_prob(model, big, max(1, repeats // 2)),
        }
        key = jax.random.key(3)
        if run.startswith("cnf"):
            _, st = model.sample_with_stats(key, 10_000)
            t, c = median_time(lambda m=model, k=key: m.sample(k, 10_000), repeats)
            row["sample_10k"] = {"time_s": t, "compile_s": c, "nfe": st.as_dict()["nfe"]}
        else:
            for sampler, steps in [
                ("ode", 0),
                ("em", 100),
                ("em", 1000),
                ("pc", 100),
                ("pc", 1000),
                ("ddpm", 1000),
            ]:
                kw = {"sampler": sampler} | ({"steps": steps} if steps else {})
                _, info = model.sample_with_stats(key, 10_000, **kw)
                t, c = median_time(
                    lambda kw=kw, m=model, k=key: m.sample(k, 10_000, **kw), max(1, repeats // 2)
                )
                row[f"sample_10k_{sampler}{steps or ''}"] = {
                    "time_s": t,
                    "compile_s": c,
                    "nfe": int(info["nfe"]),
                }
        out[run] = row
        print(
            f"trained {run}: "
            + "; ".join(f"{k} {v['time_s'] * 1e3:.0f} ms ({v['nfe']} NFE)" for k, v in row.items()),
            flush=True,
        )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    repeats = 3 if args.quick else 7
    train = datasets.sample("checkerboard", jax.random.key(0), 2000)
    holdout = datasets.sample("checkerboard", jax.random.key(1), 500)
    big = datasets.sample("checkerboard", jax.random.key(2), 10_000)
    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "diffrax": diffrax.__version__,
        },
        "note": "untrained networks: NFE of a trained model differs (see metrics.json "
        "of the experiments for trained figures)",
    }
    rows = []
    for width, depth in [(64, 3), (128, 3), (256, 4)]:
        m = cnf(width, depth, train)
        lp500 = bench_log_prob(m, holdout, repeats)
        lp10k = bench_log_prob(m, big, max(1, repeats // 2))
        fm = bench_train(m, FlowMatching(), train, 1024, 200, repeats)
        rows.append(
            {
                "width": width,
                "depth": depth,
                "log_prob_500": lp500,
                "log_prob_10k": lp10k,
                "train_fm_b1024": fm,
            }
        )
        print(
            f"width {width:3d} depth {depth}: log_prob 500 pts {lp500['time_s'] * 1e3:7.1f} ms "
            f"({lp500['nfe']} NFE, compile {lp500['compile_s']:.1f} s); 10k pts "
            f"{lp10k['time_s'] * 1e3:7.1f} ms; FM train (batch 1024) "
            f"{fm['step_ms']:.2f} ms/step, {fm['points_per_s']:.0f} points/s",
            flush=True,
        )
    m = cnf(64, 3, train)
    mle = bench_train(m, MaximumLikelihood(), train, 1000, 5, max(1, repeats // 2))
    print(
        f"MLE (width 64, depth 3, batch 1000, adaptive Tsit5 rtol=atol=1e-3): "
        f"{mle['step_ms']:.0f} ms/step, {mle['points_per_s']:.0f} points/s, "
        f"compile {mle['compile_s']:.1f} s"
    )
    results["cnf"] = rows
    results["trained"] = bench_trained(repeats)
    results["mle_train_w64_d3_b1000"] = mle
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {HERE / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
