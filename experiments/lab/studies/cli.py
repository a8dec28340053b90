"""What the numbers mean, measured: the KDE's bias and bandwidth, and the samplers' errors.

The command line of ``experiments/studies.py``: run the studies of :mod:`lab.studies` on a
results folder on disk and write ``studies/kde.csv`` and ``studies/samplers.json``; with
``--equal-compute``, only the equal-compute study (:mod:`lab.studies.equal_compute`, minutes
of training: never by default), written to ``studies/equal_compute/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

import flowlab

from ..common import ROOT, write_json
from ..registry import build_model
from ..results import load_cells, write_kde_csv
from . import equal_compute
from .kde import kde_study
from .samplers import (
    QUICK_SETTINGS,
    SMOKE_SETTINGS,
    STUDY_MODEL_BUDGET,
    SamplerStudySettings,
    sampler_study,
    train_study_model,
)


def find_learned_model(results: Path):
    """A trained VP diffusion (or DDPM) on the Gaussian mixture in a results folder."""
    for fam in ("diffusion", "ddpm"):
        for path in sorted(results.glob(f"models/gaussian_mixture/seed*/{fam}/model.eqx")):
            model, _ = flowlab.load_model(path, build_model)
            return model, str(path.relative_to(results))
    return None, ""


def run_studies(
    results: Path,
    *,
    smoke: bool = False,
    quick: bool = False,
    only: str | None = None,
    learned=None,
    learned_source: str = "",
    progress: bool = False,
    fresh: bool = False,
) -> dict:
    """Compute the studies for a results folder (arrays on disk, see :mod:`lab.results`) and
    write ``studies/kde.csv`` and ``studies/samplers.json``; returns what was written."""
    out = {}
    if only in (None, "kde"):
        out["kde"] = _run_kde(results)
    if only in (None, "samplers"):
        out["samplers"] = _run_samplers(
            results,
            smoke=smoke,
            quick=quick,
            learned=learned,
            learned_source=learned_source,
            progress=progress,
            fresh=fresh,
        )
    return out


def _run_kde(results: Path) -> list[dict]:
    """The KDE study of every sample set in ``results``, written to ``studies/kde.csv``."""
    t0 = time.perf_counter()
    rows = kde_study(load_cells(results))
    write_kde_csv(results / "studies" / "kde.csv", rows)
    print(f"[studies] KDE study: {len(rows)} rows in {time.perf_counter() - t0:.1f} s")
    return rows


def _run_samplers(
    results: Path,
    *,
    smoke: bool,
    quick: bool = False,
    learned,
    learned_source: str,
    progress: bool,
    fresh: bool,
) -> dict:
    """The sampler study, written to ``studies/samplers.json``. The learned score is
    ``learned``, else the run's own trained diffusion on the Gaussian mixture, else (unless
    ``smoke``) a model trained for the study in ``studies/sampler_model``."""
    t1 = time.perf_counter()
    if learned is None:
        learned, learned_source = find_learned_model(results)
    settings = SMOKE_SETTINGS if smoke else QUICK_SETTINGS if quick else SamplerStudySettings()
    if learned is None and settings.train_learned:
        learned, learned_source = _train_learned(results, progress=progress, fresh=fresh)
    key = jax.random.key(2024)
    study = sampler_study(learned, settings, key=key, learned_source=learned_source)
    study["total_seconds"] = time.perf_counter() - t1
    write_json(results / "studies" / "samplers.json", study)
    print(f"[studies] sampler study in {time.perf_counter() - t1:.1f} s")
    return study


def _train_learned(results: Path, *, progress: bool, fresh: bool):
    """The study's own trained score and the sentence that says how it was trained."""
    learned, hp, _ = train_study_model(
        results / "studies" / "sampler_model",
        STUDY_MODEL_BUDGET,
        progress=progress,
        fresh=fresh,
    )
    learned_source = (
        f"a VP diffusion trained for this study: {hp['steps']} DSM steps of batch "
        f"{hp['batch_size']} on the mixture's 2000 training points, MLP width "
        f"{hp['width']} and depth {hp['depth']}, learning rate {hp['lr']:g}"
    )
    return learned, learned_source


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "course_project")
    p.add_argument("--only", choices=("kde", "samplers"), default=None)
    p.add_argument("--smoke", action="store_true", help="tiny settings (seconds, for CI)")
    p.add_argument("--fresh", action="store_true", help="retrain the study's own model")
    g = p.add_argument_group("equal-compute study (--equal-compute: only this study)")
    g.add_argument(
        "--equal-compute", action="store_true", help="train every family for the same seconds"
    )
    g.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="training seconds of every run "
        f"(default {equal_compute.SECONDS:g}; smoke {equal_compute.SMOKE_SECONDS:g})",
    )
    g.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"seeds 0 .. SEEDS-1 (default {equal_compute.SEEDS}; smoke 1)",
    )
    g.add_argument(
        "--families",
        nargs="+",
        default=None,
        metavar="FAMILY",
        help=f"default: {' '.join(equal_compute.FAMILIES)} (smoke: "
        f"{' '.join(equal_compute.SMOKE_FAMILIES)})",
    )
    g.add_argument("--dataset", default=equal_compute.DATASET)
    args = p.parse_args(argv)
    if args.equal_compute:
        return equal_compute.run(
            args.results, dataset=args.dataset, seconds=args.seconds, seeds=args.seeds,
            families=args.families, smoke=args.smoke, fresh=args.fresh,
        )  # fmt: skip
    return run_studies(args.results, smoke=args.smoke, only=args.only, fresh=args.fresh)
