"""Train a CNF on a 2D dataset (pinwheel by default) and report its exact likelihood.

    python experiments/cnf_pinwheel.py                      # flow matching on pinwheel
    python experiments/cnf_pinwheel.py --objective mle      # maximum likelihood (FFJORD)
    python experiments/cnf_pinwheel.py --dataset checkerboard --steps 30000
    python experiments/cnf_pinwheel.py --smoke              # a few seconds, for CI

Writes to --out (default results/cnf_<dataset>_<objective>/): metrics.json, samples.npz,
history.json, model.eqx, checkpoint.eqx (re-running resumes from it) and four figures, which
full runs also copy to figures/.
"""

from __future__ import annotations

import sys

from lab import figures, pipeline
from lab.common import (
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    training_flags,
)
from lab.registry import script_defaults

OBJECTIVES = {"fm": "cnf_fm", "mle": "cnf_mle"}


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="fm",
        help="fm: conditional flow matching; mle: maximum likelihood (FFJORD)",
    )
    training_flags(p)
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = script_defaults(OBJECTIVES[args.objective], smoke=args.smoke)
    apply_flags(hp, args, ("steps", "width", "depth", "batch_size", "lr", "eval_every"))
    hp["objective"] = args.objective
    default_out(args, f"cnf_{args.dataset}_{args.objective}")
    return args, hp


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    r = pipeline.run(OBJECTIVES[args.objective], args, hp)
    m, name = r.metrics, args.dataset.replace("_", " ")
    m["objective"] = args.objective
    obj = {"fm": "flow matching", "mle": "maximum likelihood"}[args.objective]
    r.figures["training"] = figures.training(
        r.history,
        title=f"CNF ({obj}) on {name}",
        loss_label="flow-matching loss" if args.objective == "fm" else "NLL (nats)",
        reference=m.get("true_entropy"),
        ema_weights=bool(hp["ema_decay"]),
    )
    r.figures["samples"] = figures.overlay(
        r.samples,
        r.oracle,
        r.train,
        title=f"CNF ({obj}) samples vs true {name} samples",
        label="CNF samples",
    )
    r.figures["density"] = figures.density(
        r.model,
        args.dataset,
        r.train,
        n_grid=40 if args.smoke else 160,
        title="CNF",
        nll=m["holdout_nll"],
        entropy=m.get("true_entropy"),
    )
    r.figures["trajectories"] = figures.trajectories(
        r.model, r.keys["sample"], title=f"CNF ({obj}) on {name}: ODE paths from N(0, I) to data"
    )
    written = pipeline.write(r, f"cnf_{args.dataset}_{args.objective}")
    pipeline.report(r, written)
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
