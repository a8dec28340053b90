"""Shared plumbing of the experiment scripts: flags, output folders, atomic writes, machine.

Every experiment script takes ``--dataset --steps --seed --out --smoke --fresh`` and writes
``metrics.json``, ``samples.npz``, ``history.json``, a model checkpoint and figures to
``--out``; full (non-smoke) runs also copy their figures to ``figures/``. Flags are checked
where they are parsed (:func:`positive_int`, :func:`output_folder`, ...): a bad value is a
usage error (exit status 2) naming the flag, what it expects and what it got.

The rest of the shared code, one idea per module: ``registry.py`` (one entry per family:
label, defaults, smoke budget, table rows, objective), ``pipeline.py`` (train, evaluate
through :mod:`flowlab.evaluate` and write one model on one dataset), ``grid.py`` (the
comparison grid), ``figures.py`` (the figure set).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np

import flowlab
from flowlab._checkpoint import atomic_write_bytes, atomic_write_text
from flowlab.plotting import save_figure

ROOT = Path(__file__).resolve().parents[2]


def _number(text: str, kind, expected: str, ok):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, "a positive integer", lambda v: v >= 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, "a finite number > 0", lambda v: math.isfinite(v) and v > 0)


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)


def output_folder(text: str) -> Path:
    """argparse type: a folder that exists or can be made, and can be written to."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected an output folder, got the existing file {path}")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected an output folder, got {path}, below the existing file {existing}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"expected a writable output folder, got {path} ({existing} is not writable)"
        )
    return path


def training_flags(p: argparse.ArgumentParser) -> None:
    """The network and optimiser flags most scripts share: ``--width --depth --batch-size
    --lr --eval-every`` (``None``: the family's default)."""
    p.add_argument("--width", type=positive_int, default=None)
    p.add_argument("--depth", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    p.add_argument("--eval-every", type=positive_int, default=None)


def base_parser(description: str, default_dataset: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--dataset", default=default_dataset, help=f"one of: {', '.join(flowlab.datasets.NAMES)}"
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="gradient steps (default depends on the objective)",
    )
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of every PRNG key in the run"
    )
    p.add_argument(
        "--out",
        type=output_folder,
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
        type=output_folder,
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


def map_on_cores(fn, *iterables) -> list:
    """``list(map(fn, *iterables))`` on a thread per core, in order. For independent,
    deterministic calls that spend their time in code releasing the GIL (SciPy's
    assignment solver, NumPy's large array operations): the same results as ``map``."""
    items = list(zip(*iterables, strict=True))
    with ThreadPoolExecutor(max(1, min(len(items), os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda args: fn(*args), items))


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
