"""Time to quality of flow matching on checkerboard: where the seconds go, and candidate
defaults for ``cnf_fm`` measured against today's (issue 25).

    python benchmarks/time_to_quality.py --decompose --seeds 0 1   # the shortlist (~4 min)
    python benchmarks/time_to_quality.py --step-cost          # the shortlist's ms/step, interleaved
    python benchmarks/time_to_quality.py --configs a b --stop-at-targets --cap 10000
    python benchmarks/time_to_quality.py --dataset pinwheel --eval-every 500 --configs a b
    python benchmarks/time_to_quality.py --list               # every configuration's settings

Each configuration trains a CNF by flow matching with :func:`flowlab.fit` (through
``_models.fit_checking_nll``) on the 2000 training points of
``datasets.split("checkerboard", key(0))`` and checks the exact hold-out NLL (500 points,
EMA weights, the model's default adaptive solve: Dopri5, rtol = atol = 1e-5, exact trace)
every ``eval_every`` steps. The clock is fit's wall time from its start (compile included)
minus those NLL checks, as in ``torchcfm_side_by_side.py --time-to-quality``; JAX's caches
are cleared before every run so that each pays its own compiling. Printed per run: steps and
seconds to 3.77 and 3.70 nats, the best and the last NLL (and whether the schedule ran to its
end), the compile seconds of the training scan, of the hold-out loss and of the NLL check
(trace + lowering + XLA compile, from ``jax.monitoring``'s duration events), and the
steady-state ms/step inside fit (chunk to chunk, hold-out losses included). With
``--decompose`` each run's clock at each target is split into compiling, the steps at the
scan's own ms/step, the hold-out losses fit computes after every chunk, and the rest.
Other course datasets (``--dataset``) are scored at their true entropy + 0.30 and + 0.15.

``--step-cost`` measures ms/step of the training scan alone (``flowlab.Trainer.run``, a
chunk of ``eval_every`` steps as fit runs it), the configurations interleaved round by
round in one process, and prints each one's median and its ratio to today's defaults.

Step counts and NLLs do not depend on the machine's load; seconds do. Run the timing alone
on a quiet machine (the two cores are the instrument). Writes (merges into)
``benchmarks/time_to_quality_results.json`` atomically (``--out`` for another file; the
exploration behind ``benchmarks/TIME_TO_QUALITY.md`` is in ``time_to_quality_explore.json``).

Variants that flowlab does not offer today are prototyped here with public API only:
``time`` (the law of t in the flow-matching loss: ``FlowMatching`` draws it uniformly) is
:class:`TimeSampledFlowMatching`, which with ``("uniform",)`` gives ``FlowMatching()``'s
numbers; ``ema_debias`` scores the bias-corrected EMA
$(\\bar\\theta_n - \\beta^n\\theta_0)/(1-\\beta^n)$ (fit's EMA starts from the initial weights,
so after n steps a weight $\\beta^n$ of them is still in it), computed from fit's EMA at each
check.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import _timing
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _models import build, fit_checking_nll, note_hits, split

import flowlab
from flowlab import datasets
from flowlab.objectives import AbstractObjective

HERE = Path(__file__).resolve().parent
TARGETS = {"checkerboard": (3.77, 3.70)}  # others: the true entropy + 0.30 and + 0.15
GAPS = (0.30, 0.15)
# cnf_fm's defaults of issue 13 (experiments/lab/registry.py when this was written), pinned
# so that "today" stays the same configuration when the registry changes
BASE = dict(
    steps=24_000,
    width=64,
    depth=4,
    batch_size=1024,
    lr=5e-3,
    ema_decay=0.999,
    warmup=None,  # default_optimizer's: min(500, steps // 20)
    time=("uniform",),
    ema_debias=False,  # needs an EMA (ema_decay not None)
    eval_every=250,
    cap=None,  # stop after this many steps (None: the whole schedule)
)

# name: the differences from BASE (checked every 250 steps)
CONFIGS: dict[str, dict] = {
    "today": {},
    # round 1: one factor at a time, seed 0, ended at 3.70 (or 10,000 steps)
    "ema debiased": dict(ema_debias=True),
    "ema 0.998": dict(ema_decay=0.998),
    "ema 0.995": dict(ema_decay=0.995),
    "no ema": dict(ema_decay=None),
    "6k": dict(steps=6_000),
    "8k": dict(steps=8_000),
    "10k": dict(steps=10_000),
    "12k": dict(steps=12_000),
    "lr 1e-2": dict(lr=1e-2),
    "lr 2e-3": dict(lr=2e-3),
    "b256": dict(batch_size=256),
    "b512": dict(batch_size=512),
    "b2048": dict(batch_size=2048),
    "64x3": dict(depth=3),
    "128x3": dict(width=128, depth=3),
    "logit-normal(0,1)": dict(time=("logit_normal", 0.0, 1.0)),
    "power(2)": dict(time=("power", 2.0)),
    # round 2: the levers of round 1 (batch 256, lr 1e-2, power(2) times, EMA 0.998) combined
    "power(1.5)": dict(time=("power", 1.5)),
    "power(3)": dict(time=("power", 3.0)),
    "lr 2e-2": dict(lr=2e-2),
    "b1024 lr1e-2 power(2)": dict(lr=1e-2, time=("power", 2.0)),
    "b512 power(2)": dict(batch_size=512, time=("power", 2.0)),
    "b512 lr1e-2 power(2)": dict(batch_size=512, lr=1e-2, time=("power", 2.0)),
    "b256 lr1e-2": dict(batch_size=256, lr=1e-2),
    "b256 power(2)": dict(batch_size=256, time=("power", 2.0)),
    "b256 ema 0.998": dict(batch_size=256, ema_decay=0.998),
    "b256 lr1e-2 power(2)": dict(batch_size=256, lr=1e-2, time=("power", 2.0)),
    "b256 lr1e-2 power(2) ema 0.998": dict(
        batch_size=256, lr=1e-2, time=("power", 2.0), ema_decay=0.998
    ),
    "64x3 b256 power(2)": dict(depth=3, batch_size=256, time=("power", 2.0)),
    "b128 power(2)": dict(batch_size=128, time=("power", 2.0)),
    # round 3: small batches, steeper time laws, their EMA
    "b256 power(3)": dict(batch_size=256, time=("power", 3.0)),
    "b128 power(3)": dict(batch_size=128, time=("power", 3.0)),
    "b256 power(2) ema 0.998": dict(batch_size=256, time=("power", 2.0), ema_decay=0.998),
    "b256 power(3) ema 0.998": dict(batch_size=256, time=("power", 3.0), ema_decay=0.998),
    "b128 power(2) ema 0.998": dict(batch_size=128, time=("power", 2.0), ema_decay=0.998),
    "b128 power(2) lr 3e-3": dict(batch_size=128, time=("power", 2.0), lr=3e-3),
    "b256 power(4)": dict(batch_size=256, time=("power", 4.0)),
    # round 4: whole schedules (final NLL); the other three datasets with --dataset
    "b256 power(3) ema 0.998 48k": dict(
        batch_size=256, time=("power", 3.0), ema_decay=0.998, steps=48_000
    ),
    # round 5: around the recommendation
    "b256 power(2) ema 0.998 warmup 100": dict(
        batch_size=256, time=("power", 2.0), ema_decay=0.998, warmup=100
    ),
    "b256 power(2) ema 0.995": dict(batch_size=256, time=("power", 2.0), ema_decay=0.995),
}
RECOMMENDED = "b256 power(2) ema 0.998"
SHORTLIST = ["today", RECOMMENDED, "b256 power(3) ema 0.998"]


class TimeSampledFlowMatching(AbstractObjective):
    r"""``flowlab.FlowMatching()`` (independent pairs, straight paths, ``sigma_min = 0``)
    with $t$ drawn from another law: ``("uniform",)``; ``("logit_normal", m, s)``:
    $t = \sigma(m + s\,\xi)$, $\xi \sim N(0, 1)$; ``("power", a)``: density $a t^{a-1}$
    ($a > 1$ puts more weight near the data, $t = 1$). Keys are split as FlowMatching
    splits them, so ``("uniform",)`` gives its numbers."""

    time: tuple = eqx.field(static=True, default=("uniform",))
    holdout_repeats: int = eqx.field(static=True, default=8)

    def _t(self, u):
        kind, *args = self.time
        if kind == "uniform":
            return u
        if kind == "logit_normal":
            m, s = args
            return jax.nn.sigmoid(m + s * jax.scipy.special.ndtri(u))
        if kind == "power":
            (a,) = args
            return u ** (1.0 / a)
        raise ValueError(f"unknown time law {self.time!r}")

    def __call__(self, model, x, key):
        z1 = model.standardizer(x.shape[-1]).forward(x)
        k0, kt, _, _ = jax.random.split(key, 4)
        z0 = jax.random.normal(k0, z1.shape, z1.dtype)
        t = self._t(jax.random.uniform(kt, (z1.shape[0],), z1.dtype))
        zt = t[:, None] * z1 + (1.0 - t[:, None]) * z0
        pred = jax.vmap(model.field)(t, zt)
        return jnp.mean(jnp.sum((pred - (z1 - z0)) ** 2, axis=-1))


def settings(name: str) -> dict:
    return BASE | CONFIGS[name]


def objective(cfg: dict):
    if tuple(cfg["time"]) == ("uniform",):
        return flowlab.FlowMatching()
    return TimeSampledFlowMatching(time=tuple(cfg["time"]))


def optimizer(cfg: dict):
    return flowlab.default_optimizer(cfg["steps"], cfg["lr"], warmup=cfg["warmup"])


def debiased(initial, decay):
    """``scored(model, step)``: the bias-corrected EMA of fit's EMA weights."""
    p0, _ = eqx.partition(initial, initial.trainable())

    def scored(model, step):
        params, static = eqx.partition(model, model.trainable())
        w = decay**step
        fixed = jax.tree_util.tree_map(lambda e, p: (e - w * p) / (1.0 - w), params, p0)
        return eqx.combine(fixed, static)

    return scored


class CompileClock:
    """Seconds of tracing, lowering and XLA compiling per jitted function, from
    ``jax.monitoring``'s duration events (registered once; ``reset`` between runs)."""

    EVENTS = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration")

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        jax.monitoring.register_event_duration_secs_listener(self._on)

    def _on(self, event, duration, **kw):
        kind = event.rsplit("/", 1)[-1]
        if kind in self.EVENTS:
            name = str(kw.get("fun_name", "?"))
            name = name[4:-1] if name.startswith("jit(") else name
            self.seconds[name] += duration

    def reset(self):
        self.seconds.clear()

    def of(self, *names) -> float:
        return float(sum(self.seconds.get(n, 0.0) for n in names))


def targets(dataset: str) -> tuple[float, ...]:
    if dataset in TARGETS:
        return TARGETS[dataset]
    return tuple(round(float(datasets.entropy(dataset)) + gap, 3) for gap in GAPS)


def run(name, seed, clock, dataset="checkerboard", stop_at_targets=False, **overrides) -> dict:
    """One configuration trained by ``fit_checking_nll``; ``overrides`` replace settings
    (``cap``, ``eval_every``)."""
    cfg = settings(name) | {k: v for k, v in overrides.items() if v is not None}
    train, holdout = split(dataset)
    goals = targets(dataset)
    model = build("cnf_fm", cfg["width"], cfg["depth"], train, seed=seed)
    jax.clear_caches()  # every run pays its own compiling, as a fresh process would
    clock.reset()
    hits = {}

    cap = min(cfg["cap"] or cfg["steps"], cfg["steps"])
    _, curve = fit_checking_nll(
        model,
        objective(cfg),
        train,
        holdout,
        key=jax.random.key(seed),
        hp=cfg,
        eval_every=cfg["eval_every"],
        optimizer=optimizer(cfg),
        scored=debiased(model, cfg["ema_decay"]) if cfg["ema_debias"] else None,
        on_check=lambda c: note_hits(c, goals, hits),
        stop=lambda c: c["step"] >= cap or (stop_at_targets and len(hits) == len(goals)),
    )
    steps = np.array([c["step"] for c in curve])
    train_s = np.array([c["train_s"] for c in curve])
    per_step = np.diff(train_s) / np.diff(steps) if len(curve) > 2 else np.array([np.nan])
    best = min(curve, key=lambda c: c["holdout_nll"])
    return {
        "config": name,
        "dataset": dataset,
        "targets": list(goals),
        "seed": seed,
        "settings": cfg,
        "hits": hits,
        "best_nll": best["holdout_nll"],
        "best_step": best["step"],
        "last_nll": curve[-1]["holdout_nll"],
        "last_step": curve[-1]["step"],
        "schedule_done": curve[-1]["step"] >= cfg["steps"],
        "last_nfe": curve[-1]["nfe"],
        "fit_ms_per_step": 1e3 * float(np.median(per_step[1:] if len(per_step) > 1 else per_step)),
        "first_chunk_s": float(train_s[0]),
        "compile_s": {
            "train_scan": clock.of("run"),
            "holdout_loss": clock.of("_holdout_loss"),
            "nll_check": clock.of("_log_prob"),
            "all": float(sum(clock.seconds.values())),
        },
        "load_average": os.getloadavg(),
        "curve": [{k: c[k] for k in ("step", "train_s", "holdout_nll", "nfe")} for c in curve],
    }


def step_cost(names, rounds: int, repeats: int) -> dict:
    """ms/step of each configuration's training scan (``Trainer.run`` of ``eval_every``
    steps), interleaved: every round times each configuration ``repeats`` times."""
    train, _ = split("checkerboard")
    runs = {}
    for name in names:
        cfg = settings(name)
        model = build("cnf_fm", cfg["width"], cfg["depth"], train, seed=0)
        params, static = eqx.partition(model, model.trainable())
        tr = flowlab.Trainer(
            objective(cfg), optimizer(cfg), static, cfg["batch_size"], cfg["ema_decay"]
        )
        state = tr.init(params, train, jax.random.key(0))
        n = cfg["eval_every"]
        t = time.perf_counter()
        jax.block_until_ready(tr.run(state, train, jax.random.key(1), n))
        runs[name] = {"fn": (tr, state, n), "first_s": time.perf_counter() - t, "times": []}
    for _ in range(rounds):
        for name in names:
            tr, state, n = runs[name]["fn"]
            for _ in range(repeats):
                t = time.perf_counter()
                jax.block_until_ready(tr.run(state, train, jax.random.key(1), n))
                runs[name]["times"].append((time.perf_counter() - t) / n)
    out = {}
    for name in names:
        ms = 1e3 * float(np.median(runs[name]["times"]))
        out[name] = {"ms_per_step": ms, "first_chunk_s": runs[name]["first_s"]}
    ref = out.get("today", out[names[0]])["ms_per_step"]
    for name in names:
        out[name]["ratio_to_today"] = out[name]["ms_per_step"] / ref
    return out


def decompose(r: dict, repeats: int = 7) -> dict:
    """Where a run's clock went: its compiling, the steps at the scan's own ms/step
    (``Trainer.run`` of ``eval_every`` steps, median of ``repeats`` after compiling), the
    hold-out and training-subset losses fit computes after every chunk (median), and the
    rest, at each target reached."""
    cfg = r["settings"]
    train, holdout = split(r["dataset"])
    model = build("cnf_fm", cfg["width"], cfg["depth"], train, seed=r["seed"])
    params, static = eqx.partition(model, model.trainable())
    obj = objective(cfg)
    tr = flowlab.Trainer(obj, optimizer(cfg), static, cfg["batch_size"], cfg["ema_decay"])
    state = tr.init(params, train, jax.random.key(0))
    n = cfg["eval_every"]
    scan_s, _ = _timing.median_time(lambda: tr.run(state, train, jax.random.key(1), n), repeats)
    rep = jnp.tile(holdout, (obj.holdout_repeats, 1))
    loss = eqx.filter_jit(lambda m, x, k: obj(m, x, k))
    pair_s, _ = _timing.median_time(
        lambda: (loss(model, rep, jax.random.key(2)), loss(model, rep, jax.random.key(2))),
        repeats,
    )
    compile_s = r["compile_s"]["train_scan"] + r["compile_s"]["holdout_loss"]
    out = {"scan_ms_per_step": 1e3 * scan_s / n, "losses_per_chunk_ms": 1e3 * pair_s, "at": {}}
    for target, hit in r["hits"].items():
        steps_s = hit["step"] * scan_s / n
        losses_s = hit["step"] // n * pair_s
        out["at"][target] = {
            "train_s": hit["train_s"],
            "compile_s": compile_s,
            "steps_s": steps_s,
            "losses_s": losses_s,
            "rest_s": hit["train_s"] - compile_s - steps_s - losses_s,
        }
    return out


def print_decomposition(r):
    d = r["decomposition"]
    print(
        f"    scan {d['scan_ms_per_step']:.3f} ms/step (in fit {r['fit_ms_per_step']:.3f}); "
        f"hold-out + training-subset losses {d['losses_per_chunk_ms']:.1f} ms per chunk",
        flush=True,
    )
    for target, a in d["at"].items():
        print(
            f"    to {target}: {a['train_s']:.2f} s = compile {a['compile_s']:.2f} + steps "
            f"{a['steps_s']:.2f} + chunk losses {a['losses_s']:.2f} + rest {a['rest_s']:.2f}",
            flush=True,
        )


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt_hit(h):
    return "      -        " if h is None else f"{h['step']:6d} {h['train_s']:6.1f} s"


def print_run(r):
    c = r["compile_s"]
    print(
        f"{r['config']:28s} s{r['seed']}  "
        + "".join(f"{t:.3f}: {_fmt_hit(r['hits'].get(f'{t:.3f}'))}  " for t in r["targets"])
        + f"best {r['best_nll']:.3f} ({r['best_step']})  "
        f"last {r['last_nll']:.3f} ({r['last_step']}{'' if r['schedule_done'] else ', cut'})  "
        f"compile scan {c['train_scan']:.2f} + loss {c['holdout_loss']:.2f} s "
        f"(NLL check {c['nll_check']:.2f} s)  {r['fit_ms_per_step']:.3f} ms/step  "
        f"load {r['load_average'][0]:.1f}",
        flush=True,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=SHORTLIST, choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--stop-at-targets", action="store_true", help="end each run at its last target")
    p.add_argument("--cap", type=int, help="end each run after this many steps")
    p.add_argument("--eval-every", type=int, help="steps between NLL checks (default 250)")
    p.add_argument("--dataset", default="checkerboard", choices=datasets.COURSE_NAMES)
    p.add_argument("--step-cost", action="store_true", help="ms/step of the scans, interleaved")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--list", action="store_true", help="print the configurations' settings")
    p.add_argument(
        "--decompose", action="store_true", help="after each run, split its clock at the targets"
    )
    p.add_argument("--out", default=str(HERE / "time_to_quality_results.json"))
    args = p.parse_args(argv)
    if args.list:
        for name in CONFIGS:
            print(f"{name:28s} {CONFIGS[name]}")
        return
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results.setdefault("runs", {})
    results["machine"] = _timing.machine()
    if args.step_cost:
        costs = step_cost(args.configs, args.rounds, args.repeats)
        load = os.getloadavg()
        for name, c in costs.items():
            print(
                f"{name:28s} {c['ms_per_step']:.3f} ms/step  x{c['ratio_to_today']:.2f} of "
                f"today  (first chunk {c['first_chunk_s']:.2f} s)",
                flush=True,
            )
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        results["step_cost"] = {"load_average_at_end": load, "configs": costs}
        atomic_write_text(out, json.dumps(results, indent=1))
        return
    clock = CompileClock()
    for seed in args.seeds:
        for name in args.configs:
            r = run(
                name,
                seed,
                clock,
                args.dataset,
                args.stop_at_targets,
                cap=args.cap,
                eval_every=args.eval_every,
            )
            print_run(r)
            if args.decompose:
                r["decomposition"] = decompose(r)
                print_decomposition(r)
            where = "" if args.dataset == "checkerboard" else f"{args.dataset}/"
            results["runs"][f"{where}{name}/seed{seed}"] = r
            atomic_write_text(out, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
