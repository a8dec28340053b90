"""The benchmarks' one set of measuring helpers: median time after compilation, peak RSS, the
machine's description, its matmul rate, FLOP floors, and a measurement in a child process.

``flowlab.evaluate.timed`` and ``lab.common.machine`` exist too; here ``median_time`` also
returns the first call's time (the compile time the tables report), and ``machine`` extends
``lab.common.machine()`` with what ``results.json`` records. ``lab.common`` is imported only inside
``machine`` (parent process only): it imports matplotlib and seaborn, which would inflate the
peak RSS measured in each family's own process.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import numpy as np
import optax

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))


def version(dist: str) -> str | None:
    """The installed version of the distribution ``dist``, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def median_time(fn, repeats: int) -> tuple[float, float]:
    """``(median seconds of repeats, seconds of the first call incl. compilation)``."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), first


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """``experiments/common.machine()`` plus the processor, the library versions, the date
    and the load average at the start."""
    from lab.common import machine as base

    return base() | {
        "processor": platform.processor() or platform.machine(),
        "equinox": eqx.__version__,
        "diffrax": diffrax.__version__,
        "optax": optax.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": os.getloadavg()[0],
    }


def matmul_gflops() -> float:
    """Measured float32 matmul rate of this machine (an upper bound on useful FLOP/s)."""
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    f = jax.jit(lambda a: a @ a)
    t, _ = median_time(lambda: f(a), 10)
    return 2 * 1024**3 / t / 1e9


def field_flops(width: int, depth: int, d: int = 2, n_time: int = 7) -> float:
    """FLOPs of one evaluation of an MLPVectorField (multiply-adds counted as 2)."""
    sizes = [d + n_time] + [width] * depth + [d]
    return 2.0 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def flops_floor_s(width, depth, n_points, nfe, gflops, exact_div=True) -> float:
    """Seconds that the field's FLOPs alone take at the measured matmul rate: the value and
    ``d = 2`` tangents (forward-mode, each about one more forward pass) per evaluation."""
    per_eval = field_flops(width, depth) * (3 if exact_div else 1)
    return per_eval * n_points * nfe / (gflops * 1e9)


def run_child(script: str | Path, *args: str) -> dict:
    """Run ``python script args`` (a measurement in its own process, e.g. for its own peak
    RSS or float64) and return the JSON object on the last line of its stdout."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])
