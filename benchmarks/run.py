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
    results["mle_train_w64_d3_b1000"] = mle
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {HERE / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
