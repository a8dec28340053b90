"""Section ``families``: training throughput, ``log_prob`` and sampling time (with NFE) and
peak RSS of each model family on checkerboard, each family in its own process.

    python benchmarks/families.py --family cnf_fm [--quick]   # one family, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
from _models import (
    bench_log_prob,
    bench_sample,
    bench_train,
    build,
    checkerboard_split,
    trained,
)
from _timing import peak_rss_mib, run_child

import flowlab
from flowlab import datasets
from flowlab.samplers import get_sampler

FAMILIES = ("cnf_mle", "cnf_fm", "diffusion")
FAMILY_CONFIGS = {
    # (width, depth, batch, solver options, label): the reference configuration of issue 6
    # first, then the configuration of the experiment scripts' default runs.
    "cnf_mle": [
        (64, 3, 1000, {}, "adaptive Tsit5 rtol=atol=1e-3 (MaximumLikelihood default)"),
        (64, 3, 1000, {"dt0": 0.05, "max_steps": 20}, "fixed dt0=0.05, 20 Tsit5 steps"),
    ],
    "cnf_fm": [(64, 3, 256, {}, ""), (256, 4, 1024, {}, "")],
    "diffusion": [(64, 3, 256, {}, ""), (256, 4, 1024, {}, "")],
}
LOSSES = {
    "cnf_mle": flowlab.MaximumLikelihood,
    "cnf_fm": flowlab.FlowMatching,
    "diffusion": flowlab.DenoisingScoreMatching,
}
# Diffusion samplers timed on 10,000 points: (name of flowlab.samplers.get_sampler, steps);
# 0 steps is the PF-ODE. --quick runs the first four.
DIFFUSION_SAMPLERS = [
    ("ode", 0),
    ("em", 100),
    ("pc", 100),
    ("ddpm", 100),
    ("em", 1000),
    ("pc", 1000),
    ("ddpm", 1000),
]


def family_figures(family: str, quick: bool) -> dict:
    """Everything measured for one model family (run in its own process for its peak RSS)."""
    repeats = 3 if quick else 7
    train, holdout = checkerboard_split()
    out = {"family": family, "train": []}
    mle = family == "cnf_mle"
    for width, depth, batch, options, label in FAMILY_CONFIGS[family]:
        model = build(family, width, depth, train, **options)
        loss = LOSSES[family]()
        if "max_steps" in options:
            loss = flowlab.MaximumLikelihood(max_steps=options["max_steps"])
        chunk = (3 if quick else 5) if mle else (100 if quick else 200)
        r = bench_train(model, loss, train, batch, chunk, max(1, repeats // 2 if mle else repeats))
        out["train"].append({"width": width, "depth": depth, "solver": label, **r})
    model, hp = trained(family)
    if mle and model is not None:
        # Maximum-likelihood steps get dearer as the flow learns (more solver steps): one
        # step from the trained weights, with each training norm.
        for norm in ("rms", "max"):
            r = bench_train(model, flowlab.MaximumLikelihood(norm=norm), train, 1000, 3, 1)
            label = f"trained weights, adaptive rtol=atol=1e-3, {norm} norm"
            out["train"].append({"width": hp["width"], "depth": hp["depth"], "solver": label, **r})
    if model is None:
        out["trained_model"] = None
        model = build(family, 128, 4, train)
    else:
        out["trained_model"] = {k: hp[k] for k in ("width", "depth", "steps", "dataset")}
    big = datasets.sample("checkerboard", jax.random.key(7), 10_000)
    out["log_prob_500"] = bench_log_prob(model, holdout, repeats)
    out["log_prob_10k"] = bench_log_prob(model, big, max(1, repeats // 3))
    out["sample_10k"] = {}
    if family == "diffusion":
        for name, steps in DIFFUSION_SAMPLERS[:4] if quick else DIFFUSION_SAMPLERS:
            sampler = get_sampler(name, **({"steps": steps} if steps else {}))
            out["sample_10k"][f"{name}{steps or ''}"] = bench_sample(
                model, 10_000, max(1, repeats // 3) if steps >= 1000 else repeats, sampler
            )
    else:
        out["sample_10k"]["ode"] = bench_sample(model, 10_000, repeats)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run_family_subprocess(family: str, quick: bool) -> dict:
    """``family_figures`` in a fresh process (its own peak RSS)."""
    try:
        return run_child(Path(__file__), "--family", family, *(["--quick"] if quick else []))
    except RuntimeError as e:
        raise RuntimeError(f"benchmark of {family} failed:\n{str(e)[-3000:]}") from None


def section_families(quick: bool) -> dict:
    print(
        "\n== model families (checkerboard; training throughput on untrained nets, "
        "likelihood and sampling with the trained models of experiments/compare.py) =="
    )
    out = {}
    for family in FAMILIES:
        r = run_family_subprocess(family, quick)
        out[family] = r
        trained_note = (
            f"trained {r['trained_model']['width']}x{r['trained_model']['depth']}"
            if r["trained_model"]
            else "UNTRAINED 128x4 (run experiments/compare.py for trained figures)"
        )
        print(f"-- {family}  (peak RSS {r['peak_rss_mib']:.0f} MiB; {trained_note})")
        for t in r["train"]:
            print(
                f"   train width {t['width']:3d} depth {t['depth']} batch {t['batch']:4d} "
                f"{t['solver']}: "
                f"{t['step_ms']:8.2f} ms/step  {t['steps_per_s']:8.1f} steps/s  "
                f"{t['points_per_s']:9.0f} points/s  compile {t['compile_s']:.1f} s"
            )
        for k in ("log_prob_500", "log_prob_10k"):
            v = r[k]
            print(
                f"   {k:13s}: {v['time_s'] * 1e3:8.1f} ms  {v['nfe']:5d} NFE  "
                f"compile {v['compile_s']:.1f} s"
            )
        for k, v in r["sample_10k"].items():
            print(f"   sample 10k {k:8s}: {v['time_s'] * 1e3:8.1f} ms  {v['nfe']:5d} NFE")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", required=True, choices=FAMILIES)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(family_figures(args.family, args.quick)))


if __name__ == "__main__":
    main()
