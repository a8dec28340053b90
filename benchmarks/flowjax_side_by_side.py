"""Time to the same exact hold-out NLL, flowjax's spline flows beside flowlab, in one run (CPU).

    nox -s bench_flowjax                  # installs flowjax==19.1.2, runs this (a few minutes)
    nox -s bench_flowjax -- --quick       # checkerboard only, each run ends at its targets
    python benchmarks/flowjax_side_by_side.py [--datasets ...] [--max-steps N] [--max-s S]

Every run trains on the same 2000 points of ``flowlab.datasets.split(name, key(0))`` and is
scored on the same 500 hold-out points by its exact NLL in data coordinates, checked every
250 steps on both sides. Targets: 3.77 and 3.70 nats on checkerboard (true entropy 3.466),
the true entropy + 0.10 on the Gaussian mixture.

- flowjax (its documented density-estimation settings): ``flowjax.flows.coupling_flow`` and
  ``masked_autoregressive_flow`` with ``RationalQuadraticSpline(knots=8, interval=4)``,
  ``flow_layers=8``, ``nn_width=50`` (one hidden layer, ReLU: flowjax's defaults), a standard
  normal base, Adam 5e-3, batches of 100, on the data standardised by the training set's mean
  and SD. The hold-out NLL is flowjax's analytic ``log_prob`` (its own
  ``MaximumLikelihoodLoss`` on the standardised hold-out) plus ``sum(log sd)``. Training
  minimises ``MaximumLikelihoodLoss`` with the 250 steps between checks fused in one
  ``jax.lax.scan`` under one ``eqx.filter_jit``, batches drawn as ``fit_to_data`` draws them
  (a fresh permutation of the training set each epoch, 20 batches of 100 per epoch): the
  fastest fair way to run flowjax. flowjax's own ``fit_to_data`` differs: one jitted call per
  step from a Python loop (a dispatch and a host round trip every step), 10% of the training
  points held back for a validation loss every epoch, early stopping on it (patience 5), at
  most ``max_epochs`` = 100 epochs (1,800 steps) by default, and the best-validation
  parameters returned. Here all 2000 points train, nothing stops early, and every run goes on
  to its caps (or to its targets with ``--stop-at-targets``).
- flowlab: the default flow-matching settings of ``experiments/lab/registry.py`` (family
  ``cnf_fm``: a 64x4 field, batch 1024, 24,000-step cosine schedule at lr 5e-3, EMA 0.999)
  through ``_models.fit_checking_nll`` (:func:`flowlab.fit`; the NLL from ``log_prob`` of the
  EMA weights, adaptive Dopri5 at rtol = atol = 1e-5 with the exact divergence), to the end of
  its schedule or the time cap.

"Best NLL" is the lowest hold-out check; it selects on the hold-out set, which flatters a
noisy or overfitting curve, so the final NLL is printed beside it. A target's time is that of
the first check at or below it.

The clock is training wall time: compile included, the hold-out NLL checks excluded (their
compile too), on both sides; JAX's caches are cleared before every run so each one pays its
own compile. Compile time is reported separately as the first 250-step chunk's time minus
the median of the later chunks' (not an AOT ``lower().compile()`` timing), ms/step as that
median / 250. Writes ``benchmarks/flowjax_results.json``. flowjax is never a flowlab
dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import _timing  # first: puts experiments/ on sys.path
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _models import note_hits, split

HERE = Path(__file__).resolve().parent
EVAL_EVERY = 250  # steps between hold-out NLL checks, both sides (one fused scan per chunk)
TARGETS = {"checkerboard": (3.77, 3.70), "gaussian_mixture": None}  # None: entropy + 0.10
FLOWJAX = {  # flowjax's documented density-estimation settings
    "knots": 8,
    "interval": 4,
    "flow_layers": 8,
    "nn_width": 50,
    "lr": 5e-3,
    "batch_size": 100,
}
FLOWS = ("coupling", "maf")
LABELS = {
    "coupling": "flowjax RQ-spline coupling",
    "maf": "flowjax RQ-spline MAF",
    "flowlab": "flowlab FM (defaults)",
}

INSTALL_HINT = (
    "flowjax is needed for this benchmark (it is not a flowlab dependency).\n"
    "Run it through nox, which installs it in a separate virtualenv:\n"
    "    nox -s bench_flowjax [-- --quick]\n"
    "or install it into the current environment:\n"
    "    pip install flowjax==19.1.2"
)


def targets_for(dataset: str) -> tuple[float, ...]:
    from flowlab import datasets

    fixed = TARGETS[dataset]
    return fixed if fixed is not None else (round(float(datasets.entropy(dataset)) + 0.10, 3),)


def chunk_timing(chunk_s: list[float]) -> dict:
    """Compile time (first chunk minus the median of the later ones) and ms/step."""
    if len(chunk_s) < 2:
        return {"compile_s": None, "step_ms": None}
    med = float(np.median(chunk_s[1:]))
    return {"compile_s": max(chunk_s[0] - med, 0.0), "step_ms": 1e3 * med / EVAL_EVERY}


def summarize(curve, hits, chunk_s) -> dict:
    best = min(curve, key=lambda c: c["holdout_nll"])
    return {
        "curve": curve,
        "hits": hits,
        "steps_run": curve[-1]["step"],
        "train_s": curve[-1]["train_s"],
        "best_nll": best["holdout_nll"],
        "best_step": best["step"],
        "final_nll": curve[-1]["holdout_nll"],
        **chunk_timing(chunk_s),
    }


def _print_check(name, c):
    print(
        f"    {name:<8} step {c['step']:6d}  {c['train_s']:6.1f} s  NLL {c['holdout_nll']:.3f}",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# flowjax


def flowjax_flow(kind: str, key):
    """flowjax's coupling or masked autoregressive flow with a rational-quadratic spline
    transformer at the documented density-estimation settings, on a 2-D standard normal."""
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    make = {"coupling": coupling_flow, "maf": masked_autoregressive_flow}[kind]
    return make(
        key,
        base_dist=Normal(jnp.zeros(2)),
        transformer=RationalQuadraticSpline(knots=FLOWJAX["knots"], interval=FLOWJAX["interval"]),
        flow_layers=FLOWJAX["flow_layers"],
        nn_width=FLOWJAX["nn_width"],
    )


def flowjax_chunk(optimizer, loss_fn, n_train: int):
    """``chunk(params, static, opt_state, z_train, key, step0)``: ``EVAL_EVERY`` steps of
    ``loss_fn`` fused in one ``lax.scan`` under one ``eqx.filter_jit``. Batches as
    ``fit_to_data`` draws them: epoch ``e`` visits ``permutation(fold_in(key, e))`` of the
    training set in batches of ``batch_size`` (a trailing partial batch dropped), so the
    batches do not depend on where the chunks fall."""
    batch = FLOWJAX["batch_size"]
    per_epoch = n_train // batch

    def epoch_perm(key, step):
        return jax.random.permutation(jax.random.fold_in(key, step // per_epoch), n_train)

    @eqx.filter_jit
    def chunk(params, static, opt_state, z_train, key, step0):
        def body(carry, step):
            params, opt_state, perm = carry
            b = step % per_epoch
            perm = jax.lax.cond(b == 0, lambda: epoch_perm(key, step), lambda: perm)
            x = z_train[jax.lax.dynamic_slice_in_dim(perm, b * batch, batch)]
            loss, grads = eqx.filter_value_and_grad(loss_fn)(params, static, x)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state, perm), loss

        steps = step0 + jnp.arange(EVAL_EVERY)
        carry = (params, opt_state, epoch_perm(key, step0))
        (params, opt_state, _), losses = jax.lax.scan(body, carry, steps)
        return params, opt_state, losses

    return chunk


def run_flowjax(kind, dataset, targets, *, max_steps, max_s, stop_at_targets, seed=0):
    """Train flowjax's ``kind`` flow to the caps (or its targets), checking the exact hold-out
    NLL every ``EVAL_EVERY`` steps; the clock leaves the checks out."""
    import optax
    import paramax
    from flowjax.train.losses import MaximumLikelihoodLoss

    jax.clear_caches()
    train, holdout = split(dataset)
    loc, scale = jnp.mean(train, axis=0), jnp.std(train, axis=0)
    z_train, z_holdout = (train - loc) / scale, (holdout - loc) / scale
    log_scale = float(jnp.sum(jnp.log(scale)))  # NLL in data coordinates = NLL in z + this

    init_key, train_key = jax.random.split(jax.random.key(seed))
    flow = flowjax_flow(kind, init_key)
    params, static = eqx.partition(  # as fit_to_data partitions
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    loss_fn = MaximumLikelihoodLoss()
    optimizer = optax.adam(FLOWJAX["lr"])
    opt_state = optimizer.init(params)
    chunk = flowjax_chunk(optimizer, loss_fn, z_train.shape[0])
    holdout_nll = eqx.filter_jit(loss_fn)  # -mean flow.log_prob(z_holdout), analytic

    curve, hits, chunk_s, train_s, step = [], {}, [], 0.0, 0
    while (
        step < max_steps and train_s < max_s and not (stop_at_targets and len(hits) == len(targets))
    ):
        t0 = time.perf_counter()
        step0 = jnp.asarray(step)  # an array: a Python int would be static (a recompile)
        params, opt_state, losses = chunk(params, static, opt_state, z_train, train_key, step0)
        jax.block_until_ready(losses)
        chunk_s.append(time.perf_counter() - t0)
        train_s += chunk_s[-1]
        step += EVAL_EVERY
        nll = float(holdout_nll(params, static, z_holdout)) + log_scale
        curve.append({"step": step, "train_s": train_s, "holdout_nll": nll})
        note_hits(curve[-1], targets, hits)
        _print_check(kind, curve[-1])
    settings = FLOWJAX | {
        "flow": kind,
        "nn_depth": 1,
        "activation": "relu",
        "epoch_batches": z_train.shape[0] // FLOWJAX["batch_size"],
    }
    return {"settings": settings} | summarize(curve, hits, chunk_s)


# ---------------------------------------------------------------------------------------------
# flowlab


def run_flowlab(dataset, targets, *, max_s, stop_at_targets, seed=0):
    """flowlab's default flow matching (registry family ``cnf_fm``) through
    ``_models.fit_checking_nll``: to the end of its schedule, the time cap, or (with
    ``stop_at_targets``) its targets."""
    from _models import build, fit_checking_nll
    from lab.registry import family

    jax.clear_caches()
    hp = dict(family("cnf_fm").defaults)
    train, holdout = split(dataset)
    model = build("cnf_fm", hp["width"], hp["depth"], train, seed=seed)
    hits = {}

    def on_check(c):
        note_hits(c, targets, hits)
        _print_check("flowlab", c)

    def stop(c):
        return c["train_s"] >= max_s or (stop_at_targets and len(hits) == len(targets))

    _, curve = fit_checking_nll(
        model,
        family("cnf_fm").objective(hp),
        train,
        holdout,
        key=jax.random.key(seed),
        hp=hp,
        eval_every=EVAL_EVERY,
        on_check=on_check,
        stop=stop,
    )
    hp.pop("eval_every", None)
    ends = [c["train_s"] for c in curve]
    chunk_s = [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]
    return {"settings": hp} | summarize(curve, hits, chunk_s)


def ratios(runs: dict, targets) -> dict:
    """Per target, flowlab's time over the faster flowjax flow's (``None`` unless both hit)."""
    out = {}
    for target in targets:
        key = f"{target:.3f}"
        flowjax = [
            r["hits"][key]["train_s"] for n, r in runs.items() if n in FLOWS and key in r["hits"]
        ]
        flowlab = runs.get("flowlab", {}).get("hits", {}).get(key)
        out[key] = flowlab["train_s"] / min(flowjax) if flowlab and flowjax else None
    return out


# ---------------------------------------------------------------------------------------------


def print_table(out: dict) -> None:
    for dataset, r in out.items():
        targets = [f"{t:.3f}" for t in r["targets"]]
        head = f"{'implementation':<28}" + "".join(
            f" {'to ' + t + ' s (step)':>20}" for t in targets
        )
        head += f" {'best NLL (step)':>17} {'final NLL (step)':>17} {'ms/step':>8} {'compile s':>9}"
        print(f"\n{dataset} (true entropy {r['true_entropy']:.3f} nats)")
        print(head)
        print("-" * len(head))
        for name, run in r["runs"].items():
            line = f"{LABELS[name]:<28}"
            for t in targets:
                h = run["hits"].get(t)
                cell = (
                    f"{h['train_s']:.1f} ({h['step']})"
                    if h
                    else f"> {run['train_s']:.0f} (not hit)"
                )
                line += f" {cell:>20}"
            line += f" {run['best_nll']:>9.3f} ({run['best_step']:>5})"
            line += f" {run['final_nll']:>9.3f} ({run['steps_run']:>5})"
            step_ms, compile_s = run["step_ms"], run["compile_s"]
            line += f" {step_ms:>8.3f}" if step_ms is not None else f" {'-':>8}"
            line += f" {compile_s:>9.1f}" if compile_s is not None else f" {'-':>9}"
            print(line)
        for t, ratio in r["flowlab_over_fastest_flowjax"].items():
            if ratio is not None:
                print(f"to {t}: flowlab's time / the faster flowjax flow's = {ratio:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument(
        "--implementations",
        nargs="+",
        default=[*FLOWS, "flowlab"],
        choices=[*FLOWS, "flowlab"],
        help="which runs (default: flowjax coupling and MAF, then flowlab)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="flowjax step cap (default 20,000; 4,000 with --quick)",
    )
    p.add_argument(
        "--max-s",
        type=float,
        default=None,
        help="training-time cap per run, both sides (default 120 s; 60 with --quick)",
    )
    p.add_argument(
        "--stop-at-targets",
        action="store_true",
        help="end each run once it has hit all its targets (default: run to the caps)",
    )
    p.add_argument(
        "--quick", action="store_true", help="checkerboard only, each run ends at its targets"
    )
    p.add_argument("--out", type=Path, default=HERE / "flowjax_results.json")
    args = p.parse_args()
    if args.quick:
        args.datasets = ["checkerboard"]
        args.stop_at_targets = True
    max_steps = args.max_steps or (4000 if args.quick else 20_000)
    max_steps = -(-max_steps // EVAL_EVERY) * EVAL_EVERY  # whole chunks: no recompilation
    max_s = args.max_s or (60.0 if args.quick else 120.0)

    try:
        import flowjax  # noqa: F401
        import paramax  # noqa: F401
    except ImportError as e:
        sys.exit(f"error: {e}\n\n{INSTALL_HINT}")

    from flowlab import datasets
    from flowlab._checkpoint import atomic_write_text

    info = {
        "quick": args.quick,
        "stop_at_targets": args.stop_at_targets,
        "eval_every": EVAL_EVERY,
        "flowjax_max_steps": max_steps,
        "max_train_s": max_s,
        "data": "datasets.split(name, key(0)): 2000 training points, 500 hold-out",
        "clock": "training wall time, compile included, hold-out NLL checks excluded",
        "compile_s": "first 250-step chunk minus the median of the later chunks",
        "machine": _timing.machine(),
        "versions": {
            name: _timing.version(name)
            for name in ["flowjax", "paramax", "jax", "jaxlib", "equinox", "optax", "flowlab"]
        },
    }
    print(
        f"caps: flowjax {max_steps} steps, {max_s:.0f} s training per run"
        + ("; each run ends at its targets" if args.stop_at_targets else "")
        + f"; hold-out NLL every {EVAL_EVERY} steps",
        flush=True,
    )
    out = {}
    for dataset in args.datasets:
        targets = targets_for(dataset)
        print(f"\n== {dataset}: time to exact hold-out NLL {targets} ==", flush=True)
        runs = {}
        for name in args.implementations:
            if name == "flowlab":
                runs[name] = run_flowlab(
                    dataset, targets, max_s=max_s, stop_at_targets=args.stop_at_targets
                )
            else:
                runs[name] = run_flowjax(
                    name,
                    dataset,
                    targets,
                    max_steps=max_steps,
                    max_s=max_s,
                    stop_at_targets=args.stop_at_targets,
                )
        out[dataset] = {
            "true_entropy": float(datasets.entropy(dataset)),
            "targets": list(targets),
            "runs": runs,
            "flowlab_over_fastest_flowjax": ratios(runs, targets),
        }
    info["machine"]["load_average_at_end"] = os.getloadavg()[0]
    print_table(out)
    m = info["machine"]
    print(
        f"\nload average {m['load_average_at_start']:.2f} at start, "
        f"{m['load_average_at_end']:.2f} at end; flowjax {info['versions']['flowjax']}, "
        f"jax {info['versions']['jax']}, equinox {info['versions']['equinox']}"
    )
    atomic_write_text(args.out, json.dumps(info | {"time_to_quality": out}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
