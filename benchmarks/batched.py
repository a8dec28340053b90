"""Many runs as one program (issue 25): training throughput per run, batched against one
after another, for every family.

    python benchmarks/batched.py                  # R = 1, 3, 12, 36 (~12 min on 2 quiet cores)
    python benchmarks/batched.py --quick          # R = 1, 3; fewer steps (~2 min)
    python benchmarks/batched.py --families cnf_fm gan --runs 1 3 12

For each family at its defaults (``experiments/lab/registry.py``: network, batch, learning
rate, EMA, objective), R independent runs (seeds 0..R-1, each on its own checkerboard split;
the EBM on one split, since its data box is a static field) are trained by
``flowlab.fit_many`` for a fixed number of steps with one evaluation at the end, twice: the
first call compiles, the second is timed (compile excluded, reported apart). The sequential
baseline is R runs one after another with ``flowlab.fit``: R times the R = 1 time of
``fit`` measured the same way in the same process (the runs are identical in cost). Printed
per family and R: ms per step per run, batched and sequential, and the ratio (sequential /
batched: how much faster each run trains inside the batch), with the compile seconds of the
batched program. Medians of ``--repeats`` timed calls. Writes ``benchmarks/batched_results.json``
atomically after every family (with the machine), keeping other families' rows from earlier
invocations. ``--steps-scale`` shortens every family's timed call (e.g. 0.25 for R = 36).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import _timing  # first: puts experiments/ on sys.path
import jax
from lab import pipeline, registry

import flowlab
from flowlab._checkpoint import atomic_write_text

HERE = Path(__file__).resolve().parent
FAMILIES = ("cnf_fm", "cnf_mle", "diffusion", "ddpm", "dsm", "vae", "gan", "ebm")
# steps per timed call: about a second of training for one run on 2 cores
STEPS = {"cnf_mle": 20, "ebm": 100, "vae": 300}
DEFAULT_STEPS = 400


def runs_of(family: str, n_runs: int) -> list[dict]:
    out = []
    for seed in range(n_runs):
        data_seed = 0 if family == "ebm" else seed
        train, holdout = flowlab.datasets.split("checkerboard", jax.random.key(data_seed))
        args = argparse.Namespace(dataset="checkerboard", seed=data_seed)
        hp = registry.family(family).defaults
        _, _, keys, hp = pipeline.prepare(family, args, hp)
        hp = dict(hp, seed=seed)
        out.append(dict(hp=hp, model=registry.build_model(hp), train=train, holdout=holdout,
                        key=jax.random.fold_in(keys["train"], seed)))  # fmt: skip
    return out


def fit_kwargs(hp: dict, steps: int) -> dict:
    return dict(
        steps=steps,
        batch_size=hp["batch_size"],
        optimizer=registry.build_optimizer(hp),
        eval_every=steps,
        ema_decay=hp["ema_decay"],
        progress=False,
    )


def timed(fn, repeats: int) -> tuple[float, float]:
    """(compile-excluded median seconds of ``repeats`` calls after a first one, the first
    call's compile seconds)."""
    with flowlab.CompileClock() as clock:
        fn()
    first_compile = clock.seconds
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), first_compile


def measure(family: str, run_counts, repeats: int, quick: bool, scale=1.0) -> list[dict]:
    steps = max(10, int(STEPS.get(family, DEFAULT_STEPS) * scale) // (3 if quick else 1))
    runs = runs_of(family, max(run_counts))
    hp = runs[0]["hp"]
    objective = registry.build_objective(hp)
    kw = fit_kwargs(hp, steps)
    r0 = runs[0]

    def alone():
        flowlab.fit(r0["model"], objective, r0["train"], r0["holdout"], key=r0["key"], **kw)

    t_alone, compile_alone = timed(alone, repeats)
    rows = []
    for n in run_counts:
        batch = runs[:n]

        def together(batch=batch):
            flowlab.fit_many([r["model"] for r in batch], objective,
                             [r["train"] for r in batch], [r["holdout"] for r in batch],
                             keys=[r["key"] for r in batch], **kw)  # fmt: skip

        t_batch, compile_batch = timed(together, repeats)
        row = dict(
            family=family,
            runs=n,
            steps=steps,
            batched_ms_per_step_per_run=1e3 * t_batch / steps / n,
            sequential_ms_per_step_per_run=1e3 * t_alone / steps,
            speedup=t_alone * n / t_batch,
            batched_compile_s=compile_batch,
            alone_compile_s=compile_alone,
        )
        rows.append(row)
        print(
            f"{family:10s} R={n:3d}  batched {row['batched_ms_per_step_per_run']:7.3f} "
            f"ms/step/run  sequential {row['sequential_ms_per_step_per_run']:7.3f}  "
            f"speed-up {row['speedup']:5.2f}x  (compile {compile_batch:.1f} s)",
            flush=True,
        )
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--runs", nargs="+", type=int, default=None, help="R values")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps-scale", type=float, default=1.0, help="scale every family's steps")
    p.add_argument("--out", type=Path, default=HERE / "batched_results.json")
    args = p.parse_args(argv)
    run_counts = args.runs or ([1, 3] if args.quick else [1, 3, 12, 36])
    repeats = 1 if args.quick else args.repeats
    machine = _timing.machine()
    write = not args.quick or args.out != HERE / "batched_results.json"
    # results of earlier invocations for other families are kept (one file, merged by family)
    saved = json.loads(args.out.read_text()) if write and args.out.exists() else {}
    runs_by_family = {r["family"]: [] for r in saved.get("rows", [])}
    for r in saved.get("rows", []):
        runs_by_family[r["family"]].append(r)
    for fam in args.families:
        runs_by_family[fam] = measure(fam, run_counts, repeats, args.quick, args.steps_scale)
        rows = [r for fam_rows in runs_by_family.values() for r in fam_rows]
        out = dict(saved, quick=args.quick, repeats=repeats, rows=rows)
        out.setdefault("machines", {})
        out["machines"][fam] = machine
        if write:  # after every family, so that an interrupted run keeps what it measured
            atomic_write_text(args.out, json.dumps(out, indent=1))
    rows = [r for fam in args.families for r in runs_by_family[fam]]
    print("\n| family | R | batched ms/step/run | sequential ms/step/run | speed-up | compile s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['runs']} | {r['batched_ms_per_step_per_run']:.3f} | "
            f"{r['sequential_ms_per_step_per_run']:.3f} | {r['speedup']:.2f}x | "
            f"{r['batched_compile_s']:.1f} |"
        )
    return {"rows": rows}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
