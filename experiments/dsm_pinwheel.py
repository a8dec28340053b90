"""Train a single-noise-level denoising score model on a 2D dataset and sample it with Langevin.

    python experiments/dsm_pinwheel.py                 # sigma = 0.1, k = 4, pinwheel
    python experiments/dsm_pinwheel.py --sigma 0.3 --dataset checkerboard
    python experiments/dsm_pinwheel.py --smoke         # a few seconds, for CI

The course's DSM: the residual-form loss with k noise draws per point at one noise level
sigma (standardised units); samples from annealed Langevin dynamics with the learned score.
It learns the score of the data smoothed by N(0, sigma^2 I) and has no likelihood (kind
*none*): it is scored by the sample-based metrics only.

Writes to --out (default results/dsm_<dataset>/): metrics.json, samples.npz, history.json,
model.eqx, checkpoint.eqx and figures (training curves, sample overlay).
"""

from __future__ import annotations

import sys

from lab import figures, pipeline
from lab.common import (
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    positive_float,
    positive_int,
)
from lab.registry import script_defaults

from flowlab.samplers import Langevin


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--sigma", type=positive_float, default=None, help="noise level (standardised units)"
    )
    p.add_argument("--k", type=positive_int, default=None, help="noise draws per data point")
    p.add_argument("--langevin-steps", type=positive_int, default=1000)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = script_defaults("dsm", smoke=args.smoke)
    if args.smoke:
        args.langevin_steps = min(args.langevin_steps, 50)
    apply_flags(hp, args, ("sigma", "k", "steps"))
    hp["langevin_steps"] = args.langevin_steps
    default_out(args, f"dsm_{args.dataset}")
    return args, hp


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    # SingleNoiseScore.default_sampler's annealing: eta from max(0.1 sigma^2, 1e-3) down 10x
    sampler = Langevin(steps=hp["langevin_steps"], step_size=max(0.1 * hp["sigma"] ** 2, 1e-3))
    r = pipeline.run("dsm", args, hp, sampler=sampler)
    m, name = r.metrics, args.dataset.replace("_", " ")
    m["sampler"] = repr(sampler)
    r.figures["training"] = figures.training(
        r.history,
        title=f"Single-noise DSM (sigma = {hp['sigma']}, k = {hp['k']}) on {name}",
        loss_label="DSM loss (residual form)",
        ema_weights=bool(hp["ema_decay"]),
    )
    r.figures["samples"] = figures.overlay(
        r.samples,
        r.oracle,
        r.train,
        title=f"DSM + Langevin ({hp['langevin_steps']} steps) vs true {name} samples",
        label="DSM samples",
    )
    written = pipeline.write(r, f"dsm_{args.dataset}")
    pipeline.report(r, written)
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
