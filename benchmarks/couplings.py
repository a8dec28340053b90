"""Minibatch couplings for flow matching: time per call, exactness, and the solvers not chosen.

    python benchmarks/couplings.py                  # batches 64, 256, 512, 1024 (a few minutes)
    python benchmarks/couplings.py --quick          # batches 64 and 256, fewer repeats
    python benchmarks/couplings.py --no-candidates  # only flowlab's couplings

For every coupling in :mod:`flowlab.couplings` and batch size (d = 2; noise ``x0`` from
N(0, I), data ``x1`` from eight Gaussians on a circle of radius 2), it reports the median
time of one coupling call under ``jax.jit`` (each call on a fresh batch, after compilation)
and the time per step when the coupling runs inside a ``lax.scan`` over batches, the way
the fused training loop runs it (``ExactOT``'s host callback included). It also reports

- exactness: the fraction of batches on which ``ExactOT``'s assignment cost equals
  ``scipy.optimize.linear_sum_assignment``'s optimum, and the largest relative excess;
  the Sinkhorn plan's cost above the exact optimum for each epsilon;
- ``ExactOT``'s two parts: the JAX warm start and the host assignment on the reduced cost;
- the candidates measured before choosing (``--no-candidates`` skips them): a pure-JAX
  auction algorithm (cold with epsilon scaling, and warm-started from Sinkhorn duals), the
  plain log-domain Sinkhorn without annealing, OTT-JAX's Sinkhorn if ``ott`` is importable,
  and torchcfm's ``OTPlanSampler`` (POT's exact ``emd``, then sampling from the plan) if
  ``torch`` and ``ot`` are importable.

Writes ``benchmarks/couplings_results.json`` atomically. Timings are medians; on a shared
machine they are upper bounds (the load average is recorded at start and end).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.spatial.distance

from flowlab._checkpoint import atomic_write_text
from flowlab.couplings import ExactOT, Independent, Sinkhorn, _assignment_host, _sinkhorn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "couplings_results.json"
TARGET_MS = 2.0  # issue 13: an OT coupling at most 2 ms per step at batch 256


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def make_batch(rng: np.random.Generator, n: int, d: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Noise N(0, I) and eight Gaussians (std 0.3) on a circle of radius 2, float32."""
    x0 = rng.normal(size=(n, d))
    angle = 2 * np.pi * rng.integers(8, size=n) / 8
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], 1)
    x1 = np.zeros((n, d))
    x1[:, :2] = centres
    x1 += 0.3 * rng.normal(size=(n, d))
    return x0.astype(np.float32), x1.astype(np.float32)


def median_ms(fn, batches, max_seconds: float) -> tuple[float, float, int]:
    """Median wall and process-CPU time (ms) of ``fn(x0, x1, key)`` over fresh batches.

    On a loaded machine the CPU time (all of this process's threads) is the steadier
    figure; on a quiet one the two agree up to XLA's intra-op threading.
    """
    wall, cpu = [], []
    start = time.perf_counter()
    for k, (x0, x1) in enumerate(batches):
        key = jax.random.key(k)
        t, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(x0, x1, key))
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if time.perf_counter() - start > max_seconds and len(wall) >= 3:
            break
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu)), len(wall)


def time_jax(coupling_fn, n, rng, repeats, max_seconds, scan_steps) -> dict:
    """Compile time, median ms per jitted call, and ms per step inside a lax.scan."""
    jitted = jax.jit(coupling_fn)
    x0, x1 = make_batch(rng, n)
    t = time.perf_counter()
    jax.block_until_ready(jitted(x0, x1, jax.random.key(0)))
    compile_s = time.perf_counter() - t
    batches = [make_batch(rng, n) for _ in range(repeats)]
    call_ms, call_cpu_ms, calls = median_ms(jitted, batches, max_seconds)

    @jax.jit
    def scanned(x0s, x1s, keys):
        def step(carry, inputs):
            a, b = coupling_fn(*inputs)
            return carry + jnp.sum((a - b) ** 2), None

        return jax.lax.scan(step, jnp.zeros(()), (x0s, x1s, keys))[0]

    data = [make_batch(rng, n) for _ in range(scan_steps)]
    x0s = jnp.asarray(np.stack([d[0] for d in data]))
    x1s = jnp.asarray(np.stack([d[1] for d in data]))
    keys = jax.random.split(jax.random.key(1), scan_steps)
    jax.block_until_ready(scanned(x0s, x1s, keys))
    runs, cpus = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(scanned(x0s, x1s, keys))
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {
        "call_ms": call_ms,
        "call_cpu_ms": call_cpu_ms,
        "calls": calls,
        "scan_step_ms": 1e3 * float(np.median(runs)) / scan_steps,
        "scan_step_cpu_ms": 1e3 * float(np.median(cpus)) / scan_steps,
        "compile_s": compile_s,
    }


def exact_cost(x0, x1) -> float:
    cost = scipy.spatial.distance.cdist(x0.astype(np.float64), x1.astype(np.float64), "sqeuclidean")
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def assignment_exactness(perm_fn, n, rng, batches) -> dict:
    """How often ``perm_fn``'s assignment cost equals scipy's optimum, and the worst excess."""
    equal, excess = 0, []
    for _ in range(batches):
        x0, x1 = make_batch(rng, n)
        perm = np.asarray(perm_fn(x0, x1))
        if sorted(perm.tolist()) != list(range(n)):
            raise AssertionError("not a permutation")
        got = np.mean(np.sum((x0[perm].astype(np.float64) - x1) ** 2, -1))
        opt = exact_cost(x0, x1)
        equal += bool(np.isclose(got, opt, rtol=1e-9, atol=0))
        excess.append(got / opt - 1)
    return {"batches": batches, "equal_fraction": equal / batches, "max_rel_excess": max(excess)}


def exact_ot_parts(n, rng, repeats) -> dict:
    """ExactOT's warm start (JAX) and host assignment (scipy), timed apart, vs scipy cold."""
    coupling = ExactOT()

    @jax.jit
    def duals(x0, x1):
        cost = jnp.sum((x0[:, None] - x1[None]) ** 2, -1)
        f, g, _, it = _sinkhorn(
            cost,
            coupling.warm_start_epsilon * jnp.mean(cost),
            threshold=1e-2,
            max_iterations=coupling.warm_start_iterations,
            inner_iterations=10,
            anneal=True,
        )
        return f, g, it

    x0, x1 = make_batch(rng, n)
    jax.block_until_ready(duals(x0, x1))
    times = {k: [] for k in ["warm", "warm_cpu", "host", "host_cpu", "raw", "raw_cpu"]}
    iters = []

    def timed(name, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times[name].append(time.perf_counter() - t)
        times[name + "_cpu"].append(time.process_time() - c)
        return out

    for _ in range(repeats):
        x0, x1 = make_batch(rng, n)
        f, g, it = timed("warm", lambda x0=x0, x1=x1: jax.block_until_ready(duals(x0, x1)))
        iters.append(int(it))
        f, g = np.asarray(f), np.asarray(g)
        timed("host", lambda x0=x0, x1=x1, f=f, g=g: _assignment_host(x0, x1, f, g))
        if n <= 512 or len(times["raw"]) < 2:
            z = np.zeros(n, np.float32)
            timed("raw", lambda x0=x0, x1=x1, z=z: _assignment_host(x0, x1, z, z))
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    return {
        "warm_start_ms": med["warm"],
        "warm_start_cpu_ms": med["warm_cpu"],
        "warm_start_iterations": float(np.median(iters)),
        "host_assignment_reduced_ms": med["host"],
        "host_assignment_reduced_cpu_ms": med["host_cpu"],
        "host_assignment_raw_ms": med["raw"],
        "host_assignment_raw_cpu_ms": med["raw_cpu"],
    }


# --- candidates not chosen -----------------------------------------------------------------


def _auction(cost, prices, eps, max_rounds):
    """Jacobi forward auction (Bertsekas): rows bid for columns; minimises sum C[i, col[i]]."""
    n = cost.shape[0]
    ar = jnp.arange(n)

    def cond(s):
        return jnp.any(s[0] < 0) & (s[3] < max_rounds)

    def body(s):
        row_to_col, col_to_row, prices, k = s
        values = -cost - prices[None, :]
        w1 = jnp.max(values, 1)
        j1 = jnp.argmax(values, 1)
        w2 = jnp.max(jnp.where(ar[None, :] == j1[:, None], -jnp.inf, values), 1)
        free = row_to_col < 0
        bid = jnp.where(free, prices[j1] + (w1 - w2) + eps, -jnp.inf)
        best = jax.ops.segment_max(bid, j1, num_segments=n)
        wins = free & (bid == best[j1])
        winner = jax.ops.segment_min(jnp.where(wins, ar, n), j1, num_segments=n)
        got = winner < n
        old = jnp.where(got & (col_to_row >= 0), col_to_row, n)
        row_to_col = row_to_col.at[old].set(-1, mode="drop")
        row_to_col = row_to_col.at[jnp.where(got, winner, n)].set(ar, mode="drop")
        col_to_row = jnp.where(got, winner, col_to_row)
        prices = jnp.where(got, best, prices)
        return row_to_col, col_to_row, prices, k + 1

    init = (jnp.full(n, -1), jnp.full(n, -1), prices, 0)
    row_to_col, _, prices, rounds = jax.lax.while_loop(cond, body, init)
    return row_to_col, prices, rounds


@functools.partial(jax.jit, static_argnames=("warm",))
def auction_permutation(x0, x1, warm: bool):
    """Pure-JAX exact assignment candidate: perm with x0[perm[j]] paired with x1[j].

    Cold: epsilon scaling over 6 phases (factor 5) down to 1e-3 * mean cost / n (total cost
    within n * eps of the optimum). Warm: prices from an annealed Sinkhorn's column
    potentials (relative epsilon 1e-3), then one phase at the final epsilon.
    """
    cost = jnp.sum((x1[:, None] - x0[None]) ** 2, -1)  # rows: x1, columns: x0
    n = cost.shape[0]
    scale = jnp.mean(cost)
    eps_final = jnp.maximum(1e-3 * scale / n, 32 * jnp.finfo(cost.dtype).eps * jnp.max(cost))
    if warm:
        _, g, _, _ = _sinkhorn(
            cost, 1e-3 * scale, threshold=1e-2, max_iterations=200, inner_iterations=20,
            anneal=True,
        )  # fmt: skip
        row_to_col, _, rounds = _auction(cost, -g, eps_final, 100_000)
        return row_to_col, rounds
    schedule = eps_final * 5.0 ** jnp.arange(5, -1, -1.0)

    def phase(carry, eps):
        prices, rounds = carry
        row_to_col, prices, k = _auction(cost, prices, eps, 100_000)
        return (prices, rounds + k), row_to_col

    (_, rounds), assignments = jax.lax.scan(phase, (jnp.zeros(n), 0), schedule)
    return assignments[-1], rounds


def ott_sinkhorn(epsilon: float):
    """OTT-JAX's Sinkhorn at the same relative epsilon and threshold, sampled the same way."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    from flowlab.couplings import _sample_plan

    solver = sinkhorn.Sinkhorn(threshold=1e-3, max_iterations=2000)

    def fn(x0, x1, key):
        geom = pointcloud.PointCloud(x0, x1, epsilon=epsilon, relative_epsilon="mean")
        out = solver(linear_problem.LinearProblem(geom))
        i, j = _sample_plan(out.matrix, x0.shape[0], key)
        return x0[i], x1[j]

    return fn


def torchcfm_exact(n, rng, repeats, max_seconds) -> dict | None:
    """torchcfm's OTPlanSampler('exact') (POT emd + sampling), or its exact equivalent."""
    try:
        import ot  # noqa: F401
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    try:
        from torchcfm.optimal_transport import OTPlanSampler

        sampler, source = OTPlanSampler(method="exact"), "torchcfm.OTPlanSampler('exact')"
    except ImportError:
        import ot as pot

        class _Sampler:  # torchcfm 1.0.7's OTPlanSampler('exact').sample_plan, inlined
            gen = np.random.default_rng(0)

            def sample_plan(self, x0, x1):
                a, b = pot.unif(x0.shape[0]), pot.unif(x1.shape[0])
                plan = pot.emd(a, b, (torch.cdist(x0, x1) ** 2).numpy())
                p = plan.flatten() / plan.sum()
                choices = self.gen.choice(plan.size, p=p, size=x0.shape[0])
                i, j = np.divmod(choices, plan.shape[1])
                return x0[i], x1[j]

        sampler, source = _Sampler(), "POT emd + torchcfm's sample_map, inlined"
    batches = [tuple(map(torch.from_numpy, make_batch(rng, n))) for _ in range(repeats)]
    sampler.sample_plan(*batches[0])
    ms, cpu_ms, calls = median_ms(lambda a, b, k: sampler.sample_plan(a, b), batches, max_seconds)
    return {"call_ms": ms, "call_cpu_ms": cpu_ms, "calls": calls, "source": source}


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--max-seconds", type=float, default=4.0, help="per timing, about")
    parser.add_argument("--quick", action="store_true", help="batches 64 and 256, 7 repeats")
    parser.add_argument("--no-candidates", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = [64, 256], 7
    rng = np.random.default_rng(0)

    couplings = {
        "Independent": Independent(),
        "ExactOT": ExactOT(),
        "ExactOT (no warm start: scipy on the raw cost)": ExactOT(warm_start=False),
        "Sinkhorn eps=0.05": Sinkhorn(epsilon=0.05),
        "Sinkhorn eps=0.01": Sinkhorn(epsilon=0.01),
    }
    candidates = {}
    if not args.no_candidates:
        candidates["Sinkhorn eps=0.01, not annealed"] = Sinkhorn(epsilon=0.01, anneal=False)
        try:
            candidates["OTT-JAX Sinkhorn eps=0.05"] = ott_sinkhorn(0.05)
            candidates["OTT-JAX Sinkhorn eps=0.01"] = ott_sinkhorn(0.01)
        except ImportError:
            pass

    out = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.machine(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax_devices": [str(d) for d in jax.devices()],
            "load_avg_at_start": list(os.getloadavg()),
        },
        "versions": {
            k: version(k) for k in ["jax", "jaxlib", "equinox", "scipy", "ott-jax", "torch", "pot"]
        },
        "d": 2,
        "epsilon": "relative to the batch's mean squared distance",
        "target_ms_at_256": TARGET_MS,
        "timing": {},
        "exactness": {},
        "exact_ot_parts": {},
        "sinkhorn_cost_excess": {},
        "candidates": {},
    }
    print(f"jax {jax.__version__} on {jax.devices()[0]}, load {os.getloadavg()[0]:.1f}")

    for n in args.sizes:
        scan_steps = 20 if n <= 256 else 5
        for name, coupling in {**couplings, **candidates}.items():
            if name.startswith("ExactOT (no warm") and n > 512 and args.max_seconds < 30:
                repeats = 3
            else:
                repeats = args.repeats
            row = time_jax(coupling, n, rng, repeats, args.max_seconds, scan_steps)
            table = "candidates" if name in candidates else "timing"
            out[table].setdefault(name, {})[str(n)] = row
            print(
                f"{name:48s} n={n:5d}  call {row['call_ms']:8.2f} ms "
                f"(cpu {row['call_cpu_ms']:8.2f})  in scan {row['scan_step_ms']:8.2f} ms/step "
                f"(cpu {row['scan_step_cpu_ms']:8.2f})"
                f"  compile {row['compile_s']:.1f} s",
                flush=True,
            )
        parts = exact_ot_parts(n, rng, min(args.repeats, 7))
        out["exact_ot_parts"][str(n)] = parts
        print(f"{'  ExactOT parts':48s} n={n:5d}  " + json.dumps(parts), flush=True)
        if not args.no_candidates and n <= 256:
            for warm in [False, True]:
                name = f"pure-JAX auction ({'warm start' if warm else 'epsilon scaling'})"
                fn = functools.partial(auction_permutation, warm=warm)
                fn(*make_batch(rng, n))[0].block_until_ready()
                ms, cpu_ms, calls = median_ms(
                    lambda a, b, k, fn=fn: fn(a, b)[0], [make_batch(rng, n) for _ in range(5)], 10
                )
                rounds = int(fn(*make_batch(rng, n))[1])
                ex = assignment_exactness(lambda a, b, fn=fn: fn(a, b)[0], n, rng, 5)
                out["candidates"].setdefault(name, {})[str(n)] = {
                    "call_ms": ms, "call_cpu_ms": cpu_ms, "calls": calls, "rounds": rounds, **ex
                }  # fmt: skip
                print(f"{name:48s} n={n:5d}  call {ms:9.2f} ms  rounds {rounds}  {ex}", flush=True)
            row = torchcfm_exact(n, rng, args.repeats, args.max_seconds)
            if row is not None:
                out["candidates"].setdefault("torchcfm OT-CFM plan sampler", {})[str(n)] = row
                print(
                    f"{'torchcfm OTPlanSampler exact':48s} n={n:5d}  call {row['call_ms']:.2f} ms"
                )

    n_ex = 256 if 256 in args.sizes else args.sizes[0]
    perm = jax.jit(ExactOT().permutation)
    out["exactness"][f"ExactOT, n={n_ex}"] = assignment_exactness(perm, n_ex, rng, 20)
    print(f"ExactOT exactness at n={n_ex}: {out['exactness'][f'ExactOT, n={n_ex}']}")
    plan = jax.jit(lambda c, a, b: c.plan(a, b))
    for eps in [0.1, 0.05, 0.01, 0.003, 0.001]:
        excess, iters = [], []
        for _ in range(5):
            x0, x1 = make_batch(rng, n_ex)
            p, info = plan(Sinkhorn(epsilon=eps), x0, x1)
            cost = scipy.spatial.distance.cdist(x0, x1, "sqeuclidean")
            excess.append(float(np.sum(np.asarray(p, np.float64) * cost)) / exact_cost(x0, x1) - 1)
            iters.append(int(info.iterations))
        out["sinkhorn_cost_excess"][str(eps)] = {
            "n": n_ex, "median_rel_excess": float(np.median(excess)),
            "median_iterations": float(np.median(iters)),
        }  # fmt: skip
        print(f"Sinkhorn eps={eps}: plan cost {np.median(excess):+.2%} above exact OT, "
              f"{np.median(iters):.0f} iterations")  # fmt: skip
    out["machine"]["load_avg_at_end"] = list(os.getloadavg())

    # The table.
    sizes = [str(n) for n in args.sizes]
    print(
        "\nms per coupling call under jit, d = 2: wall median / process-CPU median "
        "[wall per step inside a lax.scan]"
    )
    print(f"{'coupling':48s}" + "".join(f"{'n=' + s:>28s}" for s in sizes))
    for table in ["timing", "candidates"]:
        for name, rows in out[table].items():
            cells = []
            for s in sizes:
                r = rows.get(s)
                if r is None:
                    cells.append(f"{'-':>28s}")
                    continue
                cell = f"{r['call_ms']:.2f} / {r['call_cpu_ms']:.2f}"
                if "scan_step_ms" in r:
                    cell += f" [{r['scan_step_ms']:.2f}]"
                cells.append(f"{cell:>28s}")
            print(f"{name:48s}" + "".join(cells))
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
