"""Shared plumbing of the experiment scripts: flags, output folders, atomic writes, machine.

Every experiment script takes ``--dataset --steps --seed --out --smoke --fresh`` and writes
``metrics.json``, ``samples.npz``, ``history.json``, a model checkpoint and figures to
``--out``; full (non-smoke) runs also copy their figures to ``figures/``.

The rest of the shared code, one idea per module: ``registry.py`` (one entry per family:
label, defaults, smoke budget, table rows, objective), ``pipeline.py`` (train, evaluate
through :mod:`flowlab.evaluate` and write one model on one dataset), ``grid.py`` (the
comparison grid), ``figures.py`` (the figure set).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import jax
import numpy as np

import flowlab
from flowlab._checkpoint import atomic_write_bytes, atomic_write_text
from flowlab.plotting import save_figure

ROOT = Path(__file__).resolve().parents[2]


def base_parser(description: str, default_dataset: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--dataset", default=default_dataset, help=f"one of: {', '.join(flowlab.datasets.NAMES)}"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="gradient steps (default depends on the objective)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every PRNG key in the run")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default results/<script>_<dataset>_<objective>)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a run of a few seconds that exercises every output (for CI)",
    )
    p.add_argument(
        "--figures-dir",
        type=Path,
        default=ROOT / "figures",
        help="where full runs also copy their figures (not written with --smoke)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="ignore an existing checkpoint in --out instead of resuming from it",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def check_dataset(parser: argparse.ArgumentParser, name: str) -> None:
    if name not in flowlab.datasets.NAMES:
        parser.error(
            f"unknown dataset {name!r}; expected one of: {', '.join(flowlab.datasets.NAMES)}"
        )


def apply_flags(hp: dict, args: argparse.Namespace, names) -> dict:
    """Override ``hp[name]`` with every flag of ``names`` the user gave (not ``None``)."""
    for name in names:
        if getattr(args, name) is not None:
            hp[name] = getattr(args, name)
    return hp


def default_out(args: argparse.Namespace, name: str) -> None:
    """Fill in ``--out`` when not given: ``results/<name>``, or ``results/<name>_smoke``."""
    if args.out is None:
        args.out = ROOT / "results" / (f"{name}_smoke" if args.smoke else name)


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic | jax.Array):
        obj = np.asarray(obj).item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_samples(path: Path, samples, **arrays) -> None:
    """``samples.npz`` with ``samples`` (shape ``(N, d)``) and any further named arrays."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    atomic_write_bytes(path, lambda f: np.savez(f, samples=np.asarray(samples), **arrays))


def machine() -> dict:
    import os

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def save_figures(figs: dict, out: Path, figures_dir: Path | None, prefix: str) -> list[Path]:
    """Save ``name -> Figure`` to ``out/name.png`` (and ``figures_dir/prefix_name.png``)."""
    written = []
    for name, fig in figs.items():
        paths = [out / f"{name}.png"]
        if figures_dir is not None:
            paths.append(figures_dir / f"{prefix}_{name}.png")
        save_figure(fig, *paths)
        written.extend(paths)
    return written
