"""How flowlab's flow-matching (and diffusion) defaults were chosen: time to quality on all
four course datasets, one configuration at a time (issue 13).

    python benchmarks/defaults.py                 # every configuration x dataset (~45 min)
    python benchmarks/defaults.py --configs a b   # some configurations
    python benchmarks/defaults.py --datasets checkerboard --quick

Each run trains a CNF by flow matching (or a VP diffusion model by denoising score matching,
its likelihood through the probability-flow ODE) with :func:`flowlab.fit` on the 2000 training
points of ``datasets.split(name, key(0))`` for the configuration's whole learning-rate
schedule, and measures the exact hold-out NLL (500 points, the model's default adaptive
solver at rtol = atol = 1e-5 — Tsit5 when the saved runs were taken, Dopri5 now — exact
trace, the EMA weights) every ``EVAL_EVERY`` steps. The clock is the training wall time
from the start of ``fit`` (compile included) minus the time spent on those NLL evaluations.
Printed per run: the time to a gap of 0.30 and of 0.15 nats above the dataset's true
entropy, the NLL at the end, and the exact ``log_prob`` of the trained model with two
adaptive solvers (Tsit5, Dopri5; rtol = atol = 1e-5, exact trace): median time after compile
and NFE for the 500 hold-out points, time for 10,000 points, and the largest error on the
500 points against Dopri8 at rtol = atol = 1e-8. Writes ``benchmarks/defaults_results.json``; run it
alone (the two cores are the instrument).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _timing
import diffrax
import jax
import jax.numpy as jnp
from _models import build, fit_checking_nll
from lab import registry

import flowlab
from flowlab import couplings, datasets
from flowlab._checkpoint import atomic_write_text

HERE = Path(__file__).resolve().parent
EVAL_EVERY = 500
DEFAULT_SOLVER = "tsit5"
GAPS = (0.30, 0.15)
DATASETS = ("pinwheel", "checkerboard", "gaussian_mixture", "spiral")

# name: hyperparameters (coupling None: independent pairs)
CONFIGS = {
    "128x4 b1024 lr5e-3": dict(width=128, depth=4, batch_size=1024, lr=5e-3, coupling=None),
    "128x4 b256 lr5e-3 OT": dict(width=128, depth=4, batch_size=256, lr=5e-3, coupling="ot"),
    "128x4 b512 lr5e-3": dict(width=128, depth=4, batch_size=512, lr=5e-3, coupling=None),
    "64x4 b512 lr5e-3": dict(width=64, depth=4, batch_size=512, lr=5e-3, coupling=None),
    "64x4 b256 lr5e-3 OT": dict(width=64, depth=4, batch_size=256, lr=5e-3, coupling="ot"),
    "128x3 b1024 lr5e-3": dict(width=128, depth=3, batch_size=1024, lr=5e-3, coupling=None),
    # second round: longer schedules for the narrow field, and widths between
    "64x4 b512 lr5e-3 24k": dict(
        width=64, depth=4, batch_size=512, lr=5e-3, coupling=None, steps=24_000
    ),
    "64x4 b1024 lr5e-3 24k": dict(
        width=64, depth=4, batch_size=1024, lr=5e-3, coupling=None, steps=24_000
    ),
    "96x4 b1024 lr5e-3": dict(width=96, depth=4, batch_size=1024, lr=5e-3, coupling=None),
    "64x5 b512 lr5e-3 24k": dict(
        width=64, depth=5, batch_size=512, lr=5e-3, coupling=None, steps=24_000
    ),
}
CONFIGS |= {
    f"diffusion {w}x4 b1024 lr{lr:.0e} {s // 1000}k": dict(
        family="diffusion", width=w, depth=4, batch_size=1024, lr=lr, steps=s
    )
    for w, lr, s in ((256, 2e-3, 20_000), (128, 5e-3, 20_000), (64, 5e-3, 24_000))
}
COMMON = dict(family="cnf_fm", steps=12_000, ema_decay=0.999, coupling=None)


def objective(hp):
    if hp["family"] != "cnf_fm":
        return registry.family(hp["family"]).objective(hp)
    coupling = None if hp["coupling"] is None else couplings.Sinkhorn()
    return flowlab.FlowMatching(coupling=coupling, time_power=hp.get("time_power", 1.0))


def run(name: str, dataset: str, quick: bool) -> dict:
    hp = COMMON | CONFIGS[name]
    if quick:
        hp["steps"] = 2000
    k_data, _, k_fit = jax.random.split(jax.random.key(0), 3)
    train, holdout = datasets.split(dataset, k_data)
    entropy = float(datasets.entropy(dataset))
    model = build(hp["family"], hp["width"], hp["depth"], train)
    model, points = fit_checking_nll(
        model, objective(hp), train, holdout, key=k_fit, hp=hp, eval_every=EVAL_EVERY
    )
    to_gap = {}
    for gap in GAPS:
        hit = next((c for c in points if c["holdout_nll"] - entropy <= gap), None)
        to_gap[f"{gap:.2f}"] = None if hit is None else {k: hit[k] for k in ("step", "train_s")}
    solvers = {}
    x10k = datasets.sample(dataset, jax.random.key(5), 10_000)
    reference = model.with_options(solver=diffrax.Dopri8(), rtol=1e-8, atol=1e-8, max_steps=65536)
    ref = reference.log_prob(holdout)
    for solver_name, solver in (("tsit5", diffrax.Tsit5()), ("dopri5", diffrax.Dopri5())):
        m = model.with_options(solver=solver)
        lp, stats = m.log_prob_with_stats(holdout)
        solvers[solver_name] = {
            "log_prob_500_s": _timing.median_time(lambda m=m: m.log_prob(holdout), 5)[0],
            "log_prob_500_nfe": int(stats.nfe),
            "log_prob_10k_s": _timing.median_time(lambda m=m: m.log_prob(x10k), 3)[0],
            "max_abs_error_500": float(jnp.max(jnp.abs(lp - ref))),
        }
    return {
        "config": name,
        "dataset": dataset,
        "hyperparameters": hp,
        "true_entropy": entropy,
        "to_gap": to_gap,
        "final_nll": points[-1]["holdout_nll"],
        "final_gap": points[-1]["holdout_nll"] - entropy,
        "train_s": points[-1]["train_s"],
        "log_prob_500_s": solvers[DEFAULT_SOLVER]["log_prob_500_s"],
        "log_prob_500_nfe": solvers[DEFAULT_SOLVER]["log_prob_500_nfe"],
        "log_prob": solvers,
        "curve": [{k: c[k] for k in ("step", "train_s", "holdout_nll")} for c in points],
    }


def table(results: dict) -> str:
    """The runs as a Markdown table, one row per configuration, a column per dataset."""
    runs = results["runs"]
    names = [n for n in CONFIGS if any(k.endswith("/" + n) for k in runs)]
    sets = [d for d in DATASETS if any(k.startswith(d + "/") for k in runs)]
    lines = ["| configuration | " + " | ".join(sets) + " |\n|---|" + "---|" * len(sets)]
    for name in names:
        cells = []
        for d in sets:
            r = runs.get(f"{d}/{name}")
            if r is None:
                cells.append("")
                continue
            hits = [r["to_gap"][k] for k in ("0.30", "0.15")]
            hit = " / ".join("–" if h is None else f"{h['train_s']:.1f}" for h in hits)
            cells.append(
                f"{hit} s; {r['final_gap']:+.3f} in {r['train_s']:.0f} s; "
                f"{1e3 * r['log_prob_500_s']:.0f} ms"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--quick", action="store_true", help="2000-step schedules")
    p.add_argument("--out", default=str(HERE / "defaults_results.json"))
    p.add_argument("--table", action="store_true", help="print the saved runs as Markdown")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if args.table:
        print(table(results))
        return
    results.setdefault("runs", {})
    results["machine"] = _timing.machine()
    for dataset in args.datasets:
        for name in args.configs:
            r = run(name, dataset, args.quick)
            results["runs"][f"{dataset}/{name}"] = r
            atomic_write_text(out, json.dumps(results, indent=1))
            g = "  ".join(
                f"gap<={k}: "
                + ("not reached" if v is None else f"{v['train_s']:5.1f} s ({v['step']})")
                for k, v in r["to_gap"].items()
            )
            print(
                f"{dataset:17s} {name:27s} {g}  end {r['final_nll']:.3f} "
                f"(gap {r['final_gap']:+.3f}) in {r['train_s']:.0f} s  log_prob(500 | 10k) "
                + ";  ".join(
                    f"{k} {1e3 * v['log_prob_500_s']:.0f} ms / {v['log_prob_500_nfe']} NFE | "
                    f"{v['log_prob_10k_s']:.2f} s, err {v['max_abs_error_500']:.0e}"
                    for k, v in r["log_prob"].items()
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
