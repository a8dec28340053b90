"""Flow-matching training speed, flowlab vs torchcfm, in one run on one machine (CPU).

    nox -s bench_torchcfm                 # installs torch==2.13.0 (CPU) + torchcfm, runs this
    nox -s bench_torchcfm -- --quick      # a short run (a minute or two)
    nox -s bench_torchcfm -- --time-to-quality   # time to a hold-out NLL (about 15 min)
    python benchmarks/torchcfm_side_by_side.py [--steps N] [--quick]

Both sides train the same problem: the checkerboard training set (2000 points of
``flowlab.datasets.split("checkerboard", key(0))``), batches of 256 drawn uniformly with
replacement, an MLP of width 64 with 3 hidden layers, Adam with learning rate 1e-3.

- torchcfm: ``torchcfm.models.MLP(dim=2, w=64, time_varying=True)`` (input ``[x, t]``, three
  hidden SELU layers), eager PyTorch, one Python step per batch, for I-CFM
  (``ConditionalFlowMatcher(sigma=0)``) and OT-CFM
  (``ExactOptimalTransportConditionalFlowMatcher(sigma=0)``, exact OT of each batch with POT).
  Timed in blocks of 200 steps (50 with ``--quick``) after a warm-up; ms/step is the median
  over blocks. torch runs with 2 intra-op threads, then again with 1 (``--torch-threads``):
  on a busy 2-core machine 2 threads can be many times slower than 1.
- flowlab: ``CNF(MLPVectorField(2, width=64, depth=3))`` with ``FlowMatching()``, timed as
  flowlab's own training loop runs it: ``flowlab.Trainer.run``, as ``flowlab.fit`` calls it
  (200 steps fused in one ``lax.scan`` under one jit). ms/step is the median over repeated
  chunks; compile time is reported separately. Two flowlab rows: the default vector field
  (SiLU, Fourier time features, input size 2 + 7) and one matched to torchcfm's MLP (SELU,
  raw ``t`` only, input size 2 + 1). XLA's CPU backend picks its own thread count.

With ``--time-to-quality`` both libraries train until their exact hold-out NLL (the 500
hold-out points of the same split, data coordinates) reaches targets: 3.77 and 3.70 nats on
checkerboard, the true entropy + 0.10 on the Gaussian mixture.

- torchcfm: OT-CFM at its tutorial settings (``MLP(dim=2, w=64, time_varying=True)``,
  ``ExactOptimalTransportConditionalFlowMatcher(sigma=0.1)``, batch 256, Adam 1e-3), one
  thread (faster than two here), in the data's own coordinates as its tutorials train
  (``--torch-standardize``: flowlab's standardised ones, where sigma = 0.1 blurs more:
  3.82 nats after 31,500 steps on checkerboard), checked every 500 steps. Its NLL comes
  from its own field through torchdyn's adaptive ``dopri5`` (rtol = atol = 1e-5) with the
  exact divergence (one autograd pass per dimension).
- flowlab: the default flow-matching settings of ``experiments/lab/registry.py`` through
  :func:`flowlab.fit` (exact trace, adaptive Dopri5 at rtol = atol = 1e-5), checked every
  250 steps.
- The clock is training wall time only: compile included, NLL evaluations excluded, on
  both sides. Writes ``benchmarks/torchcfm_ttq_results.json``.

Writes ``benchmarks/torchcfm_results.json``. torch is never a dependency of flowlab itself.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = 256
WIDTH = 64
DEPTH = 3
LR = 1e-3
CHUNK = 200  # flowlab: steps fused in one jit call (flowlab.fit uses eval_every=250)

INSTALL_HINT = (
    "torch and torchcfm are needed for this benchmark (they are not flowlab dependencies).\n"
    "Run it through nox, which installs them in a separate virtualenv:\n"
    "    nox -s bench_torchcfm [-- --quick]\n"
    "or install them into the current environment:\n"
    "    pip install torch==2.13.0 torchcfm"
)


def torch_trainer(fm, train, seed=0):
    """``(model, step)``: torchcfm's tutorial MLP (width ``WIDTH``) with Adam(``LR``), and one
    eager training step of the flow matcher ``fm`` on a batch of ``BATCH`` points drawn
    uniformly with replacement from ``train``; ``step()`` returns the loss."""
    import torch
    from torchcfm.models import MLP

    torch.manual_seed(seed)
    model = MLP(dim=2, w=WIDTH, time_varying=True)  # [x, t] -> 3 x (Linear + SELU) -> Linear
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = train.shape[0]

    def step():
        opt.zero_grad()
        x1 = train[torch.randint(0, n, (BATCH,))]
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        opt.step()
        return loss

    return model, step


def time_torch(fm, train, n_blocks, block, warmup, seed=0):
    """Median ms/step over ``n_blocks`` blocks of ``block`` eager steps, after ``warmup`` steps."""
    _, step = torch_trainer(fm, train, seed)
    for _ in range(warmup):
        step()
    blocks = []
    for _ in range(n_blocks):
        t0 = time.perf_counter()
        for _ in range(block):
            loss = step()
        last = loss.item()
        blocks.append(time.perf_counter() - t0)
    return summarize(blocks, block, compile_s=None, last_loss=last)


def time_flowlab(vf_kwargs, train, n_chunks, seed=1):
    """Median ms/step over ``n_chunks`` fused chunks of CHUNK steps (first call, which
    compiles, timed separately)."""
    import equinox as eqx
    import jax
    import optax

    import flowlab
    from flowlab.nn import MLPVectorField

    vf = MLPVectorField(2, width=WIDTH, depth=DEPTH, key=jax.random.key(seed), **vf_kwargs)
    model = flowlab.CNF(vf, standardize=flowlab.Standardize.fit(train))
    params, static = eqx.partition(model, model.trainable())
    trainer = flowlab.Trainer(flowlab.FlowMatching(), optax.adam(LR), static, BATCH)
    state = trainer.init(params, train, jax.random.key(seed))

    def run(key):  # CHUNK steps from the same state, fused in one lax.scan under one jit
        return jax.block_until_ready(trainer.run(state, train, key, CHUNK)[1])

    t0 = time.perf_counter()
    run(jax.random.key(0))
    first = time.perf_counter() - t0
    blocks = []
    for i in range(n_chunks):
        t0 = time.perf_counter()
        losses = run(jax.random.key(i + 1))
        blocks.append(time.perf_counter() - t0)
    med = sorted(blocks)[len(blocks) // 2]
    return summarize(blocks, CHUNK, compile_s=max(first - med, 0.0), last_loss=float(losses[-1]))


def summarize(blocks, block, compile_s, last_loss):
    import numpy as np

    return {
        "step_ms": 1e3 * float(np.median(blocks)) / block,
        "step_ms_min": 1e3 * float(np.min(blocks)) / block,
        "steps_per_s": block * len(blocks) / float(np.sum(blocks)),
        "timed_steps": block * len(blocks),
        "block_steps": block,
        "compile_s": compile_s,
        "last_loss": last_loss,
    }


# ---------------------------------------------------------------------------------------------
# --time-to-quality: wall time of each library to a target exact hold-out NLL.

TTQ_TARGETS = {"checkerboard": (3.77, 3.70), "gaussian_mixture": None}  # None: entropy + 0.10
TTQ_EVAL_EVERY = {"torchcfm": 500, "flowlab": 250}


def ttq_targets(dataset):
    from flowlab import datasets

    fixed = TTQ_TARGETS[dataset]
    return fixed if fixed is not None else (round(float(datasets.entropy(dataset)) + 0.10, 3),)


def torch_holdout_nll(model, z_holdout, log_scale, rtol=1e-5, atol=1e-5):
    """Exact hold-out NLL (nats, data coordinates) of a torchcfm vector field: its ODE
    solved from data (t = 1) to noise (t = 0) with torchdyn's adaptive dopri5 at ``rtol`` =
    ``atol``, carrying the exact divergence (one autograd pass per dimension).
    ``log_scale``: sum of the log standard deviations of the standardisation."""
    import math

    import torch
    from torchdyn.numerics import odeint

    d = z_holdout.shape[1]
    nfe = [0]

    def field(s, state):  # s = 1 - t runs 0 -> 1; state = [x, integral of div v]
        nfe[0] += 1
        with torch.enable_grad():
            x = state[:, :d].detach().requires_grad_(True)
            t = torch.full((x.shape[0], 1), 1.0 - float(s))
            v = model(torch.cat([x, t], dim=-1))
            div = sum(
                torch.autograd.grad(v[:, i].sum(), x, retain_graph=i < d - 1)[0][:, i]
                for i in range(d)
            )
        return torch.cat([-v.detach(), div.detach()[:, None]], dim=-1)

    state = torch.cat([z_holdout, torch.zeros(z_holdout.shape[0], 1)], dim=-1)
    with torch.no_grad():
        _, sol = odeint(field, state, torch.tensor([0.0, 1.0]), "dopri5", atol=atol, rtol=rtol)
    x0, div_integral = sol[-1][:, :d], sol[-1][:, d]
    log_p0 = -0.5 * (x0**2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
    log_p = log_p0 - div_integral - log_scale
    return -float(log_p.mean()), nfe[0]


def ttq_torchcfm(dataset, targets, max_steps, max_s, sigma, standardize=False, seed=0):
    """torchcfm's OT-CFM at its tutorial settings: ``MLP(dim=2, w=64, time_varying=True)``,
    ``ExactOptimalTransportConditionalFlowMatcher(sigma)``, batches of 256, Adam(1e-3), in
    the data's own coordinates (``standardize=True``: flowlab's standardised ones)."""
    import numpy as np
    import torch
    from _models import note_hits, split
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

    import flowlab

    train, holdout = split(dataset)
    if standardize:  # train in flowlab's standardised coordinates (sigma then in those units)
        std = flowlab.Standardize.fit(train)
    else:  # the data's own coordinates, as torchcfm's tutorials train
        std = flowlab.Standardize.identity(train.shape[1])
    log_scale = float(np.log(np.asarray(std.scale)).sum())
    z_train = torch.from_numpy(np.array(std.forward(train), dtype=np.float32))
    z_holdout = torch.from_numpy(np.array(std.forward(holdout), dtype=np.float32))
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=sigma)
    model, train_step = torch_trainer(fm, z_train, seed)
    curve, hits, train_s, step = [], {}, 0.0, 0
    every = TTQ_EVAL_EVERY["torchcfm"]
    while step < max_steps and train_s < max_s and len(hits) < len(targets):
        t0 = time.perf_counter()
        for _ in range(every):
            train_step()
        train_s += time.perf_counter() - t0
        step += every
        nll, nfe = torch_holdout_nll(model, z_holdout, log_scale)
        curve.append({"step": step, "train_s": train_s, "holdout_nll": nll, "nfe": nfe})
        note_hits(curve[-1], targets, hits)
        print(
            f"    torchcfm step {step:6d}  {train_s:6.1f} s  NLL {nll:.3f} ({nfe} NFE)", flush=True
        )
    return {"curve": curve, "hits": hits, "steps_run": step, "train_s": train_s}


def ttq_flowlab(dataset, targets, seed=0):
    """flowlab's default flow-matching settings (``experiments/lab/registry.py``, family
    ``cnf_fm``), trained by :func:`flowlab.fit`; the clock is fit's wall time (compile
    included) minus the hold-out NLL evaluations."""
    import jax
    from _models import build, fit_checking_nll, note_hits, split
    from lab.registry import family

    jax.clear_caches()  # every dataset's clock includes compiling, as a fresh process's would
    hp = dict(family("cnf_fm").defaults)
    train, holdout = split(dataset)
    model = build("cnf_fm", hp["width"], hp["depth"], train, seed=seed)
    hits = {}

    def report(c):
        note_hits(c, targets, hits)
        print(
            f"    flowlab  step {c['step']:6d}  {c['train_s']:6.1f} s  NLL {c['holdout_nll']:.3f} "
            f"({c['nfe']} NFE)",
            flush=True,
        )

    _, curve = fit_checking_nll(
        model,
        family("cnf_fm").objective(hp),
        train,
        holdout,
        key=jax.random.key(seed),
        hp=hp,
        eval_every=TTQ_EVAL_EVERY["flowlab"],
        on_check=report,
        stop=lambda c: len(hits) == len(targets),
    )
    hp.pop("eval_every", None)
    return {"hyperparameters": hp, "curve": curve, "hits": hits, "steps_run": curve[-1]["step"]}


def time_to_quality(args) -> dict:
    from flowlab import datasets

    out = {}
    for dataset in args.datasets:
        targets = ttq_targets(dataset)
        print(f"\n== {dataset}: time to exact hold-out NLL {targets} ==", flush=True)
        torch_run = ttq_torchcfm(
            dataset, targets, args.max_steps, args.max_s, args.sigma, args.torch_standardize
        )
        flowlab_run = ttq_flowlab(dataset, targets)
        ratios = {}
        for target in targets:
            key = f"{target:.3f}"
            th, fh = torch_run["hits"].get(key), flowlab_run["hits"].get(key)
            ratios[key] = th["train_s"] / fh["train_s"] if th and fh else None
        out[dataset] = {
            "true_entropy": float(datasets.entropy(dataset)),
            "targets": list(targets),
            "torchcfm": torch_run,
            "flowlab": flowlab_run,
            "ratio": ratios,
        }
    return out


def print_time_to_quality(out, args):
    print(
        f"\ntime to quality (training wall time, hold-out NLL evaluations excluded; torchcfm "
        f"OT-CFM sigma={args.sigma}, tutorial MLP, batch 256, Adam 1e-3; flowlab defaults)"
    )
    head = (
        f"{'dataset':<17} {'target':>7} {'torchcfm s (steps)':>20} {'flowlab s (steps)':>20} "
        f"{'ratio':>7}"
    )
    print(head)
    print("-" * len(head))
    for dataset, r in out.items():
        for target in r["targets"]:
            key = f"{target:.3f}"
            cells = []
            for side in ("torchcfm", "flowlab"):
                h = r[side]["hits"].get(key)
                cells.append(
                    f"{h['train_s']:.1f} ({h['step']})"
                    if h
                    else f"> {r[side]['curve'][-1]['train_s']:.0f} (not hit)"
                )
            ratio = r["ratio"][key]
            print(
                f"{dataset:<17} {target:>7.3f} {cells[0]:>20} {cells[1]:>20} "
                + (f"{ratio:>6.1f}x" if ratio else f"{'-':>7}")
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per implementation (default 2000; 150 torch / 600 flowlab with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="few steps (a minute or two in all)")
    p.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        default=[2, 1],
        help="torch intra-op thread counts to time (default: 2, then 1 for comparison)",
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--time-to-quality",
        action="store_true",
        help="train both libraries to target hold-out NLLs instead of timing steps",
    )
    p.add_argument("--datasets", nargs="+", default=list(TTQ_TARGETS), choices=list(TTQ_TARGETS))
    p.add_argument("--max-steps", type=int, default=60_000, help="torchcfm step cap")
    p.add_argument("--max-s", type=float, default=420.0, help="torchcfm training-time cap (s)")
    p.add_argument("--sigma", type=float, default=0.1, help="torchcfm OT-CFM sigma (tutorial 0.1)")
    p.add_argument(
        "--torch-standardize",
        action="store_true",
        help="train torchcfm in flowlab's standardised coordinates (default: the data's own)",
    )
    args = p.parse_args()
    if args.out is None:
        name = "torchcfm_ttq_results.json" if args.time_to_quality else "torchcfm_results.json"
        args.out = HERE / name
    # torch: blocks of `block` eager steps; flowlab: fused chunks of CHUNK steps.
    block = 50 if args.quick else 200
    torch_steps = args.steps or (150 if args.quick else 2000)
    flowlab_steps = args.steps or (600 if args.quick else 2000)
    torch_blocks = max(1, round(torch_steps / block))
    flowlab_chunks = max(1, round(flowlab_steps / CHUNK))
    warmup = 20 if args.quick else 200

    try:
        import torch
        import torchcfm  # noqa: F401
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )
    except ImportError as e:
        sys.exit(f"error: {e}\n\n{INSTALL_HINT}")

    import jax
    import numpy as np
    from _models import checkerboard_split
    from _timing import version

    import flowlab
    from flowlab._checkpoint import atomic_write_text

    train_jax, _ = checkerboard_split()
    # Same standardised coordinates as flowlab's CNF (done once, outside the timed loop).
    z = np.array(flowlab.Standardize.fit(train_jax).forward(train_jax), dtype=np.float32)
    train_torch = torch.from_numpy(z)

    loadavg = os.getloadavg if hasattr(os, "getloadavg") else lambda: None
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "dataset": "checkerboard, 2000 training points (datasets.split, key 0)",
        "batch": BATCH,
        "width": WIDTH,
        "hidden_layers": DEPTH,
        "optimizer": f"Adam lr={LR} (both sides)",
        "torch_block_steps": block,
        "torch_warmup_steps": warmup,
        "flowlab_chunk_steps": CHUNK,
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_affinity": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "load_avg_at_start": loadavg(),
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch_threads": args.torch_threads,
            "jax_devices": [str(d) for d in jax.devices()],
        },
        "versions": {
            name: version(name)
            for name in ["torch", "torchcfm", "pot", "jax", "jaxlib", "equinox", "optax", "flowlab"]
        },
    }

    if args.time_to_quality:
        torch.set_num_threads(min(args.torch_threads))
        info["machine"]["torch_threads"] = min(args.torch_threads)
        out = time_to_quality(args)
        info["machine"]["load_avg_at_end"] = loadavg()
        print_time_to_quality(out, args)
        atomic_write_text(args.out, json.dumps(info | {"time_to_quality": out}, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    rows = {}
    print(
        f"batch {BATCH}; torch: {torch_blocks} x {block} steps after {warmup} warm-up, threads "
        f"{args.torch_threads}; flowlab: {flowlab_chunks} x {CHUNK} fused steps"
    )
    matchers = {
        "I-CFM": lambda: ConditionalFlowMatcher(sigma=0.0),
        "OT-CFM": lambda: ExactOptimalTransportConditionalFlowMatcher(sigma=0.0),
    }
    for threads in args.torch_threads:
        torch.set_num_threads(threads)
        for label, make in matchers.items():
            name = f"torchcfm {label}, {threads} thread{'s' if threads > 1 else ''}"
            rows[name] = time_torch(make(), train_torch, torch_blocks, block, warmup)
            rows[name]["torch_threads"] = threads
            print(f"  {name}: {rows[name]['step_ms']:.3f} ms/step")
    flowlab_rows = {
        "flowlab FM": {},
        "flowlab FM, torchcfm-matched MLP": {"activation": jax.nn.selu, "time_frequencies": ()},
    }
    for name, kw in flowlab_rows.items():
        rows[name] = time_flowlab(kw, train_jax, flowlab_chunks)
        print(f"  {name}: {rows[name]['step_ms']:.3f} ms/step")
    info["machine"]["load_avg_at_end"] = loadavg()

    # Speed-up of each flowlab row over each torchcfm row (ratio of median ms/step).
    speedups = {
        f: {t: rows[t]["step_ms"] / rows[f]["step_ms"] for t in rows if t.startswith("torchcfm")}
        for f in flowlab_rows
    }

    head = (
        f"{'implementation':<34} {'ms/step':>8} {'steps/s':>8} {'compile s':>9} "
        f"{'flowlab FM':>11} {'fl. matched':>11}"
    )
    print(f"\n{'':<64}{'flowlab speed-up':^23}")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        line = f"{name:<34} {r['step_ms']:>8.3f} {r['steps_per_s']:>8.0f} "
        line += f"{r['compile_s']:>9.2f}" if r["compile_s"] is not None else f"{'-':>9}"
        for f in flowlab_rows:
            line += f" {speedups[f][name]:>10.1f}x" if name in speedups[f] else f" {'':>11}"
        print(line)
    m = info["machine"]
    v = info["versions"]
    print(
        f"\n{m['cpu_count']} CPUs; load avg at start {m['load_avg_at_start']}, at end "
        f"{m['load_avg_at_end']}; torch {v['torch']}, torchcfm {v['torchcfm']}, jax {v['jax']}"
    )
    print(
        f"Notes: ms/step = median over timed blocks (torch {block} steps, flowlab {CHUNK} steps "
        "per jit call,\n"
        "  as flowlab.fit runs them; compile time separate); steps/s = over all timed "
        "steps.\n"
        "  torchcfm: eager PyTorch, torchcfm.models.MLP: [x, t] -> 3 x (Linear 64 + SELU) -> "
        "Linear.\n"
        "  flowlab FM: eqx MLP, 3 hidden layers of 64, SiLU, input [x, t, sin/cos(pi k t), "
        "k = 1, 2, 4];\n"
        "  the matched row uses SELU and input [x, t] like torchcfm's MLP.\n"
        "  Both sides: plain Adam(1e-3) (fit's default optimiser adds warm-up/cosine and "
        "clipping).\n"
        "  OT-CFM adds an exact OT plan per batch (POT ot.emd, 256 x 256, on the CPU)."
    )
    one = {k.split(",")[0]: r["step_ms"] for k, r in rows.items() if r.get("torch_threads") == 1}
    for name, r in rows.items():
        base = one.get(name.split(",")[0])
        if r.get("torch_threads", 1) > 1 and base and r["step_ms"] > 2 * base:
            print(
                f"WARNING: {name} is {r['step_ms'] / base:.0f}x slower than with 1 thread: the "
                "CPU is oversubscribed (see load avg); compare with the 1-thread rows."
            )
    out = info | {"results": rows, "flowlab_speedup": speedups}
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
