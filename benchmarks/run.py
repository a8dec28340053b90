"""flowlab's speed on this machine: throughput, likelihood and sampling times, time to quality,
scaling, and each fast path measured against the slower way it replaced.

    python benchmarks/run.py                        # everything (~25 min on 2 cores)
    python benchmarks/run.py --sections families fastpaths   # some sections
    python benchmarks/run.py --quick                # small repeats and budgets (~3 min)
    python benchmarks/run.py --replot               # redraw the plots from results.json

Prints one table per section and merges the figures into ``benchmarks/results.json``
(written atomically, with the machine's description); the scaling and time-to-quality
plots go to ``figures/benchmark_*.png``. Timings are medians of repeats after compilation;
compile times are reported separately. Trained models come from ``experiments/compare.py``
(checkerboard, seed 0) when its outputs exist, otherwise the section says so and uses
untrained networks (whose NFE is lower than a trained model's).

One module per section (``families.py``, ``fastpaths.py``, ``scaling.py``, ``quality.py``);
``_timing.py`` holds the measuring helpers and ``_models.py`` the models (built by
``experiments/lab/registry.py``) and what is measured of them. This file is the command line,
the merge into ``results.json`` and the table of targets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _timing import flops_floor_s, machine, matmul_gflops
from families import family_figures, section_families
from fastpaths import section_fastpaths, x64_probe
from quality import plot_quality, section_quality
from scaling import plot_scaling, section_scaling

from flowlab._checkpoint import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
RUNNERS = {
    "families": section_families,
    "fastpaths": section_fastpaths,
    "scaling": section_scaling,
    "quality": section_quality,
}
SECTIONS = tuple(RUNNERS)

# Reference figures measured on this machine (issue 6): the Diffrax documentation's CNF
# example and torchcfm (PyTorch CPU, 2 threads). See benchmarks/torchcfm_side_by_side.py for
# a side-by-side run of torchcfm.
DIFFRAX_EXAMPLE = {"points_per_s": 1000 / 1.9, "compile_s": 30.0, "log_prob_500_s": 0.09}
TORCHCFM_ICFM_MS = 2.7


# -- targets ----------------------------------------------------------------------------------


def print_targets(results: dict) -> None:
    fam = results.get("families")
    if not fam:
        return
    gflops = results.get("matmul_gflops")
    print("\n== targets (issue 6) ==")
    for mle in fam["cnf_mle"]["train"]:
        ratio = mle["points_per_s"] / DIFFRAX_EXAMPLE["points_per_s"]
        print(
            f"   MLE training, width 64 depth 3, {mle['solver']}: {mle['points_per_s']:.0f} "
            f"points/s = x{ratio:.1f} the Diffrax CNF example (target x3): "
            f"{'MET' if ratio >= 3 else 'MISSED'}; compile {mle['compile_s']:.1f} s "
            f"(target < 15 s): {'MET' if mle['compile_s'] < 15 else 'MISSED'}"
        )
    fm = fam["cnf_fm"]["train"][0]
    ratio = TORCHCFM_ICFM_MS / fm["step_ms"]
    print(
        f"   FM training, batch 256 width 64 depth 3: {fm['step_ms']:.2f} ms/step = "
        f"x{ratio:.1f} torchcfm I-CFM's {TORCHCFM_ICFM_MS} ms (target x2): "
        f"{'MET' if ratio >= 2 else 'MISSED'}"
    )
    for f in ("cnf_mle", "cnf_fm", "diffusion"):
        lp = fam[f]["log_prob_500"]
        tm = fam[f].get("trained_model") or {"width": 128, "depth": 4}
        floor = (
            flops_floor_s(tm["width"], tm["depth"], 500, lp["nfe"], gflops)
            if gflops
            else float("nan")
        )
        print(
            f"   exact log_prob 500 points, {f} ({tm['width']}x{tm['depth']}): "
            f"{lp['time_s'] * 1e3:.0f} ms, {lp['nfe']} NFE (target < 100 ms): "
            f"{'MET' if lp['time_s'] < 0.1 else 'MISSED'}; FLOP floor at {gflops:.0f} GFLOP/s: "
            f"{floor * 1e3:.0f} ms"
        )
    ode = fam["diffusion"]["sample_10k"]["ode"]
    print(
        f"   PF-ODE 10,000 samples: {ode['time_s']:.2f} s, {ode['nfe']} NFE (target < 2 s): "
        f"{'MET' if ode['time_s'] < 2 else 'MISSED'}"
    )
    q = results.get("quality", {}).get("fm/checkerboard")
    if q:
        ok = q["reached"] and q["wall_s"] < 120
        reached = (
            f"{q['wall_s']:.0f} s" if q["reached"] else f"not reached (best {q['best_nll']:.3f})"
        )
        print(
            f"   FM time to 3.60 nats on checkerboard (2000 points): "
            f"{reached}"
            f" (target < 120 s): {'MET' if ok else 'MISSED'}"
        )


# -- main -----------------------------------------------------------------------------------


def merge_results(new: dict) -> dict:
    """``results.json`` updated with ``new`` (top-level keys replaced), written atomically."""
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old.update(new)
    atomic_write_text(RESULTS, json.dumps(old, indent=2) + "\n")
    return old


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--quick", action="store_true", help="small repeats and budgets")
    p.add_argument(
        "--replot", action="store_true", help="redraw the figures from results.json only"
    )
    # Child processes (kept for old invocations; the sections now run their own modules).
    p.add_argument("--family", help=argparse.SUPPRESS)
    p.add_argument("--x64-probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.family:  # child process: one family, JSON on the last line of stdout
        print(json.dumps(family_figures(args.family, args.quick)))
        return 0
    if args.replot:
        saved = json.loads(RESULTS.read_text())
        if "scaling" in saved:
            plot_scaling(saved["scaling"])
        if "quality" in saved:
            plot_quality(saved["quality"])
        return 0
    if args.x64_probe:
        print(json.dumps(x64_probe(args.quick)))
        return 0
    info = machine()
    print(
        f"machine: {info['cpu_count']} CPUs, {info['platform']}, jax {info['jax']}, "
        f"diffrax {info['diffrax']}, load average {info['load_average_at_start']:.2f}"
    )
    gflops = matmul_gflops()
    print(f"float32 matmul (1024 x 1024): {gflops:.0f} GFLOP/s")
    results = {"machine": info, "matmul_gflops": gflops, "quick": args.quick}
    for name in args.sections:
        t = time.perf_counter()
        results[name] = RUNNERS[name](args.quick)
        results.setdefault("section_seconds", {})[name] = time.perf_counter() - t
        merged = merge_results(results)
    print_targets(merged)
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
