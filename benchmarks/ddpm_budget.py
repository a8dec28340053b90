"""What the DDPM's training budget buys: the course project's DDPM at its default budget
against cheaper networks, batches and schedules, on the course project's two datasets.

    python benchmarks/ddpm_budget.py                       # every configuration (~16 min)
    python benchmarks/ddpm_budget.py --configs "128x4 b512 20k"

Each configuration trains the DDPM exactly as ``experiments/course_project.py`` does (the
same split, keys and grid code: :func:`lab.grid.train_grid`, both datasets' runs as one
program) and is scored exactly as the project scores it (:func:`lab.grid.evaluate_cell`):
the DDPM bound on the 500 hold-out points (−bound, nats, with its SE over points; a bound,
not a likelihood), and on 2000 ancestral samples (1000 steps) the KDE hold-out NLL, the KDE
Bhattacharyya distance and the energy distance, beside the same measures of 2000 fresh true
samples (the oracle row). Training seconds are the batch's wall time (compile included)
divided by its runs. Writes ``benchmarks/ddpm_budget_results.json``; run it alone (the two
cores are the instrument).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import _timing  # noqa: F401  (first: puts experiments/ on sys.path)
from lab import grid
from lab.registry import FAMILIES, ROWS

from flowlab._checkpoint import atomic_write_text

HERE = Path(__file__).resolve().parent
DATASETS = ("pinwheel", "checkerboard")
SETTINGS = dict(n_samples=2000, grid=100)  # course_project.py's evaluation settings
SMOKE = dict(steps=20, width=16, depth=2, batch_size=64, eval_every=10)  # --smoke, for CI
SMOKE_SETTINGS = dict(n_samples=200, grid=8)
# name: overrides of the DDPM's defaults (registry.FAMILIES["ddpm"].defaults)
CONFIGS = {
    "256x4 b1024 20k (default)": {},
    "128x4 b512 20k": dict(width=128, depth=4, batch_size=512),
    "128x4 b512 8k": dict(width=128, depth=4, batch_size=512, steps=8000, eval_every=1000),
    "256x4 b1024 6k": dict(steps=6000, eval_every=1000),
}
MEASURES = ("neg_bound", "neg_bound_se", "kde_nll", "kde_nll_se", "bhattacharyya", "energy")


def run_config(name: str, overrides: dict, folder: Path, smoke: bool = False) -> dict:
    hp = {**FAMILIES["ddpm"].defaults, **overrides, **(SMOKE if smoke else {})}
    settings = SMOKE_SETTINGS if smoke else SETTINGS
    t0 = time.perf_counter()
    cells = grid.train_grid(DATASETS, 1, {"ddpm": hp}, folder, script="course_project",
                            progress=False, log=lambda *_: None)  # fmt: skip
    train_s = (time.perf_counter() - t0) / len(DATASETS)
    out = {"config": name, "hyperparameters": hp, "train_s_per_run": train_s, "datasets": {}}
    for ds in DATASETS:
        models, hists, _ = cells[ds, 0]
        rows, _, _ = grid.evaluate_cell(ds, 0, models, hists, settings, {"ddpm": ROWS["ddpm"]})
        by = {r["model"]: r for r in rows}
        out["datasets"][ds] = {
            "ddpm": {k: by["ddpm"][k] for k in MEASURES},
            "oracle": {k: by["oracle"][k] for k in ("kde_nll", "bhattacharyya", "energy")},
            "compile_s": hists["ddpm"].compile_time,
        }
        d = out["datasets"][ds]["ddpm"]
        print(
            f"{name:28s} {ds:13s} -bound {d['neg_bound']:.3f} +- {d['neg_bound_se']:.3f} (SE)"
            f"  KDE NLL {d['kde_nll']:.3f}  BD {d['bhattacharyya']:.4f}  energy "
            f"{d['energy']:.4f}  train {train_s:.0f} s/run",
            flush=True,
        )
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", type=Path, default=HERE / "ddpm_budget_results.json")
    p.add_argument("--smoke", action="store_true", help="tiny budgets (seconds, for CI)")
    args = p.parse_args(argv)
    saved = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    for name in args.configs:
        folder = Path(tempfile.mkdtemp(prefix="ddpm_budget_"))
        try:
            saved["runs"][name] = run_config(name, CONFIGS[name], folder, args.smoke)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        saved["machine"] = _timing.machine()
        atomic_write_text(args.out, json.dumps(saved, indent=1))
    return saved


if __name__ == "__main__":
    main()
