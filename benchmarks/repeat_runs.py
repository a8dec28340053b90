"""Cold against warm: the scripts run again with the compilation cache their first run filled
(issue 25's "compile once" targets, measured end to end).

    python benchmarks/repeat_runs.py                    # the main job, 3 rounds (~6 min)
    python benchmarks/repeat_runs.py --compare-quick    # and compare.py --quick (~15 min more)
    python benchmarks/repeat_runs.py --smoke            # seconds: the main job's --smoke, 1 round

Each round starts from a new, empty cache folder (``FLOWLAB_COMPILE_CACHE``) and an empty
output folder, and runs, each in its own process:

1. **cold**: the script with ``--fresh`` (trains; compiles every program into the cache);
2. **warm**: the same command again (trains again; loads the programs the first run cached);
3. **rerun** (the main job only): the same without ``--fresh``, i.e. what a user types a
   second time (resumes the finished checkpoint, then evaluates and draws again).

Wall time is the process's, from start to exit (imports included). Inside each process the
compilation cache's own events are counted: programs asked of the cache, programs it served,
and so the programs it could not serve (compiled anew). Medians over rounds; the ratios are
of medians measured in this one run. Writes ``benchmarks/repeat_runs_results.json``
atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _timing import machine

from flowlab._checkpoint import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "repeat_runs_results.json"

# Runs a script in this process after registering a listener for the cache's events; writes
# what it counted to the JSON file named by REPEAT_RUNS_COUNTS when the process exits.
CHILD = textwrap.dedent(
    """
    import atexit, json, os, runpy, sys
    from jax import monitoring
    seen = {"requests": 0, "hits": 0}
    def listen(event, **_):
        if event == "/jax/compilation_cache/compile_requests_use_cache":
            seen["requests"] += 1
        elif event == "/jax/compilation_cache/cache_hits":
            seen["hits"] += 1
    monitoring.register_event_listener(listen)
    def dump():
        with open(os.environ["REPEAT_RUNS_COUNTS"], "w") as f:
            json.dump(seen, f)
    atexit.register(dump)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    """
)


def run_once(args: list[str], cache: Path, label: str) -> dict:
    """One process: ``python args`` with the cache in ``cache``; its wall time and counts."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        counts = Path(f.name)
    env = dict(os.environ, FLOWLAB_COMPILE_CACHE=str(cache), REPEAT_RUNS_COUNTS=str(counts))
    env.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    seen = json.loads(counts.read_text())
    counts.unlink()
    out = dict(
        wall_s=wall,
        cache_requests=seen["requests"],
        cache_hits=seen["hits"],
        compiled=seen["requests"] - seen["hits"],
    )
    print(
        f"  {label:<24} {wall:7.1f} s   programs {out['cache_requests']:4d}, "
        f"served by the cache {out['cache_hits']:4d}, compiled {out['compiled']:4d}",
        flush=True,
    )
    return out


def main_job_round(work: Path, smoke: bool) -> dict:
    """cold, warm and rerun of ``python experiments/cnf_pinwheel.py`` in ``work``."""
    cache, out = work / "cache", work / "cnf"
    cmd = ["experiments/cnf_pinwheel.py", "--out", str(out), "--figures-dir", str(work / "fig")]
    cmd += ["--no-progress"] + (["--smoke"] if smoke else [])
    return {
        "cold": run_once([*cmd, "--fresh"], cache, "main job, cold"),
        "warm": run_once([*cmd, "--fresh"], cache, "main job, warm --fresh"),
        "rerun": run_once(cmd, cache, "main job, rerun"),
    }


def compare_quick_round(work: Path) -> dict:
    """cold and warm of ``python experiments/compare.py --quick --fresh``, then its timings."""
    cache, out = work / "cache", work / "compare"
    cmd = ["experiments/compare.py", "--quick", "--fresh", "--no-progress", "--out", str(out)]
    result = {}
    for label in ("cold", "warm"):
        result[label] = run_once(cmd, cache, f"compare --quick, {label}")
        timings = json.loads((out / "config.json").read_text())["timings"]
        result[label]["parts_s"] = {
            "train": sum(timings.get("train_s", {}).values()),
            "evaluate": sum(timings.get("evaluate_s", {}).values()),
            "studies": timings.get("studies_s"),
            "report": timings.get("report_s"),
        }
        print(f"    parts: {result[label]['parts_s']}", flush=True)
    return result


def medians(rounds: list[dict]) -> dict:
    """Median wall time of each run (cold, warm, rerun) over rounds."""
    return {r: statistics.median(x[r]["wall_s"] for x in rounds) for r in rounds[0]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="cold/warm rounds of the main job")
    p.add_argument("--compare-quick", action="store_true", help="also compare.py --quick")
    p.add_argument(
        "--only-compare-quick", action="store_true",
        help="only compare.py --quick; the main job's rounds already in --out are kept",
    )  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="the main job's --smoke, one round")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"expected --rounds >= 1, got {args.rounds}")
    if args.only_compare_quick and not args.out.exists():
        p.error(f"--only-compare-quick keeps the main job's rounds of {args.out}: not found")
    if args.only_compare_quick:
        result = json.loads(args.out.read_text())
    else:
        rounds = 1 if args.smoke else args.rounds
        result = {"machine": machine(), "smoke": args.smoke, "main_job": [],
                  "compare_quick": None}  # fmt: skip
        for i in range(rounds):
            print(f"round {i + 1} of {rounds}", flush=True)
            with tempfile.TemporaryDirectory(prefix="repeat-runs-") as work:
                result["main_job"].append(main_job_round(Path(work), args.smoke))
        m = result["main_job_median_s"] = medians(result["main_job"])
        result["main_job_faster_than_cold"] = {r: 1 - m[r] / m["cold"] for r in ("warm", "rerun")}
        f = result["main_job_faster_than_cold"]
        print(
            f"main job, median of {rounds}: cold {m['cold']:.1f} s, warm --fresh "
            f"{m['warm']:.1f} s ({f['warm']:.0%} faster), rerun {m['rerun']:.1f} s "
            f"({f['rerun']:.0%} faster)"
        )
    if args.only_compare_quick or (args.compare_quick and not args.smoke):
        with tempfile.TemporaryDirectory(prefix="repeat-runs-") as work:
            result["compare_quick"] = compare_quick_round(Path(work))
        if args.only_compare_quick:
            result["compare_quick_machine"] = machine()
        c = result["compare_quick"]
        print(
            f"compare --quick (one run each): cold {c['cold']['wall_s']:.0f} s, "
            f"warm {c['warm']['wall_s']:.0f} s"
        )
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
