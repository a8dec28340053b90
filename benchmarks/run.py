"""flowlab's speed on this machine: throughput, likelihood and sampling times, time to quality,
scaling, and each fast path measured against the slower way it replaced.

    python benchmarks/run.py                        # everything (~25 min on 2 cores)
    python benchmarks/run.py --sections families fastpaths   # some sections
    python benchmarks/run.py --quick                # small repeats and budgets (~3 min)

Prints one table per section and merges the figures into ``benchmarks/results.json``
(written atomically, with the machine's description); the scaling and time-to-quality
plots go to ``figures/benchmark_*.png``. Timings are medians of repeats after compilation;
compile times are reported separately. Trained models come from ``experiments/compare.py``
(checkerboard, seed 0) when its outputs exist, otherwise the section says so and uses
untrained networks (whose NFE is lower than a trained model's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flowlab
from flowlab import CNF, Diffusion, Standardize, datasets
from flowlab._checkpoint import atomic_write_text
from flowlab._ode import batch_value_and_divergence
from flowlab.diffusion import DenoisingScoreMatching
from flowlab.nn import MLPVectorField
from flowlab.train import (
    FlowMatching,
    MaximumLikelihood,
    _train_chunk,
    _train_step,
    default_optimizer,
    fit,
    trainable_filter,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
FIGURES = ROOT / "figures"
COMPARE_MODELS = ROOT / "results" / "compare" / "models" / "checkerboard" / "seed0"
SECTIONS = ("families", "fastpaths", "scaling", "quality")

# Reference figures measured on this machine (issue 6): the Diffrax documentation's CNF
# example and torchcfm (PyTorch CPU, 2 threads). See benchmarks/torchcfm_side_by_side.py for
# a side-by-side run of torchcfm.
DIFFRAX_EXAMPLE = {"points_per_s": 1000 / 1.9, "compile_s": 30.0, "log_prob_500_s": 0.09}
TORCHCFM_ICFM_MS = 2.7


# -- timing helpers ---------------------------------------------------------------------------


def median_time(fn, repeats: int) -> tuple[float, float]:
    """``(median seconds of repeats, seconds of the first call incl. compilation)``."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), first


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "equinox": eqx.__version__,
        "diffrax": diffrax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": os.getloadavg()[0],
    }


def matmul_gflops() -> float:
    """Measured float32 matmul rate of this machine (an upper bound on useful FLOP/s)."""
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    f = jax.jit(lambda a: a @ a)
    t, _ = median_time(lambda: f(a), 10)
    return 2 * 1024**3 / t / 1e9


def field_flops(width: int, depth: int, d: int = 2, n_time: int = 7) -> float:
    """FLOPs of one evaluation of an MLPVectorField (multiply-adds counted as 2)."""
    sizes = [d + n_time] + [width] * depth + [d]
    return 2.0 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def flops_floor_s(width, depth, n_points, nfe, gflops, exact_div=True) -> float:
    """Seconds that the field's FLOPs alone take at the measured matmul rate: the value and
    ``d = 2`` tangents (forward-mode, each about one more forward pass) per evaluation."""
    per_eval = field_flops(width, depth) * (3 if exact_div else 1)
    return per_eval * n_points * nfe / (gflops * 1e9)


# -- models -----------------------------------------------------------------------------------


def cast(tree, dtype):
    """``tree`` with every floating-point array in ``dtype``."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def checkerboard_split():
    return datasets.split("checkerboard", jax.random.key(0))


def make_cnf(width, depth, train, seed=0, **options):
    vf = MLPVectorField(2, width=width, depth=depth, key=jax.random.key(seed))
    return CNF(vf, standardize=Standardize.fit(train), **options)


def make_diffusion(width, depth, train, seed=0):
    net = MLPVectorField(2, width=width, depth=depth, key=jax.random.key(seed))
    return Diffusion(net, flowlab.VPSDE(), standardize=Standardize.fit(train))


def trained(family: str):
    """The checkerboard seed-0 model of ``experiments/compare.py`` (or ``None``)."""
    path = COMPARE_MODELS / family / "model.eqx"
    if not path.exists():
        return None, None
    sys.path.insert(0, str(ROOT / "experiments"))
    from compare import build_model

    return flowlab.load_model(path, build_model)


def bench_train(model, loss, data, batch, chunk, repeats, lr=2e-3):
    """Steady-state training throughput of ``chunk`` steps fused in one scan."""
    params, static = eqx.partition(model, trainable_filter(model))
    opt = default_optimizer(10_000, learning_rate=lr)
    state = opt.init(params)

    def run():
        out = _train_chunk(
            params, None, state, static, loss, opt, data, jax.random.key(0), chunk, batch, None
        )
        return out[3]

    t, first = median_time(run, repeats)
    return {
        "batch": batch,
        "step_ms": 1e3 * t / chunk,
        "steps_per_s": chunk / t,
        "points_per_s": chunk * batch / t,
        "compile_s": max(first - t, 0.0),
    }


def bench_log_prob(model, x, repeats):
    _, stats = model.log_prob_with_stats(x)
    t, first = median_time(lambda: model.log_prob(x), repeats)
    return {
        "n": int(x.shape[0]),
        "time_s": t,
        "compile_s": max(first - t, 0.0),
        "nfe": int(stats.nfe),
    }


def bench_sample(model, n, repeats, **kw):
    key = jax.random.key(3)
    _, info = model.sample_with_stats(key, n, **kw)
    nfe = int(info.nfe) if hasattr(info, "nfe") else int(info["nfe"])
    t, first = median_time(lambda: model.sample(key, n, **kw), repeats)
    return {"n": n, "time_s": t, "compile_s": max(first - t, 0.0), "nfe": nfe}


# -- section: families --------------------------------------------------------------------------

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
    "cnf_mle": MaximumLikelihood,
    "cnf_fm": FlowMatching,
    "diffusion": DenoisingScoreMatching,
}


def family_figures(family: str, quick: bool) -> dict:
    """Everything measured for one model family (run in its own process for its peak RSS)."""
    repeats = 3 if quick else 7
    train, holdout = checkerboard_split()
    out = {"family": family, "train": []}
    for width, depth, batch, options, label in FAMILY_CONFIGS[family]:
        if family == "diffusion":
            model = make_diffusion(width, depth, train)
        else:
            model = make_cnf(width, depth, train, **options)
        loss = LOSSES[family]()
        if "max_steps" in options:
            loss = MaximumLikelihood(max_steps=options["max_steps"])
        mle = family == "cnf_mle"
        chunk = (3 if quick else 5) if mle else (100 if quick else 200)
        r = bench_train(model, loss, train, batch, chunk, max(1, repeats // 2 if mle else repeats))
        out["train"].append({"width": width, "depth": depth, "solver": label, **r})
    model, hp = trained(family)
    if family == "cnf_mle" and model is not None:
        # Maximum-likelihood steps get dearer as the flow learns (more solver steps): one
        # step from the trained weights, with each training norm.
        for norm in ("rms", "max"):
            r = bench_train(model, MaximumLikelihood(norm=norm), train, 1000, 3, 1)
            label = f"trained weights, adaptive rtol=atol=1e-3, {norm} norm"
            out["train"].append({"width": hp["width"], "depth": hp["depth"], "solver": label, **r})
    if model is None:
        out["trained_model"] = None
        model = (make_diffusion if family == "diffusion" else make_cnf)(128, 4, train)
    else:
        out["trained_model"] = {k: hp[k] for k in ("width", "depth", "steps", "dataset")}
    big = datasets.sample("checkerboard", jax.random.key(7), 10_000)
    out["log_prob_500"] = bench_log_prob(model, holdout, repeats)
    out["log_prob_10k"] = bench_log_prob(model, big, max(1, repeats // 3))
    out["sample_10k"] = {}
    if family == "diffusion":
        runs = [
            ("ode", 0),
            ("em", 100),
            ("pc", 100),
            ("ddpm", 100),
            ("em", 1000),
            ("pc", 1000),
            ("ddpm", 1000),
        ]
        if quick:
            runs = runs[:4]
        for sampler, steps in runs:
            kw = {"sampler": sampler} | ({"steps": steps} if steps else {})
            out["sample_10k"][f"{sampler}{steps or ''}"] = bench_sample(
                model, 10_000, max(1, repeats // 3) if steps >= 1000 else repeats, **kw
            )
    else:
        out["sample_10k"]["ode"] = bench_sample(model, 10_000, repeats)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run_family_subprocess(family: str, quick: bool) -> dict:
    cmd = [sys.executable, __file__, "--family", family] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {family} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section_families(quick: bool) -> dict:
    print(
        "\n== model families (checkerboard; training throughput on untrained nets, "
        "likelihood and sampling with the trained models of experiments/compare.py) =="
    )
    out = {}
    for family in ("cnf_mle", "cnf_fm", "diffusion"):
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


# -- section: fast paths ------------------------------------------------------------------------


def _dispatch_one(train, width, depth, batch, n):
    model = make_cnf(width, depth, train)
    loss, opt = FlowMatching(), default_optimizer(10_000)
    params, static = eqx.partition(model, trainable_filter(model))
    state = opt.init(params)

    # the very step that _train_chunk scans over, dispatched from Python one at a time
    one_step = eqx.filter_jit(_train_step)

    keys = jax.random.split(jax.random.key(0), n)

    def loop(params=params, state=state):
        for k in keys:
            (params, _, state), value = one_step(
                params, None, state, static, loss, opt, train, k, batch, None
            )
        return value

    def fused():
        return _train_chunk(
            params, None, state, static, loss, opt, train, jax.random.key(0), n, batch, None
        )[3]

    t_loop, _ = median_time(loop, 3)
    t_scan, _ = median_time(fused, 3)
    return {
        "width": width,
        "depth": depth,
        "batch": batch,
        "per_step_dispatch_ms": 1e3 * t_loop / n,
        "scan_fused_ms": 1e3 * t_scan / n,
        "speedup": t_loop / t_scan,
    }


def _dispatch(quick):
    """Steps fused in one lax.scan under one jit vs one jitted step per Python iteration."""
    train, _ = checkerboard_split()
    n = 100 if quick else 300
    return [_dispatch_one(train, w, d, b, n) for w, d, b in [(64, 3, 256), (256, 4, 1024)]]


FLOWLAB_DIV = "flowlab: batched linearize, d batched JVPs"


def _divergence(quick, dtype=jnp.float32, model=None, only=None):
    """One batched evaluation of (f, div f) on 10,000 points, by each way of computing div f
    (or only the methods named in ``only``)."""
    if model is None:
        model, _ = trained("cnf_fm")
    if model is None:
        model = make_cnf(128, 4, checkerboard_split()[0])
    field = cast(model.vector_field, dtype)
    x = jax.random.normal(jax.random.key(0), (10_000, 2), dtype)
    t = jnp.asarray(0.5, dtype)
    eye = jnp.eye(2, dtype=dtype)

    def per_example(fn):
        return lambda f, x: jax.vmap(lambda xi: fn(f, xi))(x)

    def per_example_forward(f, xi):  # flowlab before: d JVPs vmapped in one linearisation
        fx, jvp = jax.linearize(lambda y: f(t, y), xi)
        return fx, jnp.trace(jax.vmap(jvp)(eye))

    def jacfwd_full(f, xi):
        return f(t, xi), jnp.trace(jax.jacfwd(lambda y: f(t, y))(xi))

    def jacrev_full(f, xi):
        return f(t, xi), jnp.trace(jax.jacrev(lambda y: f(t, y))(xi))

    def reverse_loop(f, xi):  # FFJORD-style: one VJP per output dimension
        fx, vjp = jax.vjp(lambda y: f(t, y), xi)
        return fx, sum(vjp(eye[i])[0][i] for i in range(xi.shape[0]))

    def batched_vjp(f, x):
        fx, vjp = jax.vjp(lambda y: jax.vmap(lambda yi: f(t, yi))(y), x)
        basis = [jnp.zeros_like(x).at[:, j].set(1) for j in range(x.shape[1])]
        return fx, sum(vjp(e)[0][:, j] for j, e in enumerate(basis))

    def value_only(f, x):
        return jax.vmap(lambda xi: f(t, xi))(x), jnp.zeros(x.shape[:1], x.dtype)

    methods = [
        ("value only (no divergence)", value_only),
        (
            "flowlab: batched linearize, d batched JVPs",
            lambda f, x: batch_value_and_divergence(f, t, x),
        ),
        ("before: per-example linearize, vmapped JVPs", per_example(per_example_forward)),
        ("per-example jax.jacfwd", per_example(jacfwd_full)),
        ("per-example jax.jacrev", per_example(jacrev_full)),
        ("per-example VJP loop (FFJORD-style)", per_example(reverse_loop)),
        ("batched VJPs", batched_vjp),
        (
            "Hutchinson, one batched JVP (estimate)",
            lambda f, x: batch_value_and_divergence(f, t, x, jnp.ones_like(x)),
        ),
    ]
    out = {}
    exact = None
    for name, fn in methods:
        if only is not None and name not in only:
            continue
        f = jax.jit(lambda x, fn=fn: fn(field, x))
        tm, _ = median_time(lambda f=f: f(x), 5 if quick else 15)
        div = np.asarray(f(x)[1])
        exact = div if name.startswith("flowlab") else exact
        err = None
        if exact is not None and "estimate" not in name and "value only" not in name:
            err = float(np.max(np.abs(div - exact)))

        def loss(fld, x, fn=fn):  # a gradient through the divergence, as in MLE training
            fx, div = fn(fld, x)
            return jnp.mean(div) + jnp.mean(fx**2)

        g = eqx.filter_jit(eqx.filter_grad(loss))
        tg, _ = median_time(lambda g=g: g(field, x[:2000]), 3 if quick else 7)
        out[name] = {"ms": tm * 1e3, "grad_2000_ms": tg * 1e3, "max_abs_diff_vs_flowlab": err}
    return out


def _mle_grad(model, loss, x):
    """Compiled temp memory, time and flat gradient of one maximum-likelihood gradient."""
    params, static = eqx.partition(model, trainable_filter(model))

    def value_and_grad(p):
        return eqx.filter_value_and_grad(
            lambda p: loss(eqx.combine(p, static), x, jax.random.key(0))
        )(p)

    compiled = jax.jit(value_and_grad).lower(params).compile()
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    tm, _ = median_time(lambda: compiled(params), 3)
    _, grads = compiled(params)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))
    flat = np.concatenate([np.ravel(g) for g in leaves])
    return (None if temp is None else temp / 2**20), tm * 1e3, flat


def _adjoints(quick):
    """Memory and time of one maximum-likelihood gradient for each Diffrax adjoint."""
    train, _ = checkerboard_split()
    x = train[:512]
    rows = []
    step_counts = [8, 32] if quick else [8, 32, 128]
    adjoints = {
        "RecursiveCheckpointAdjoint (default)": diffrax.RecursiveCheckpointAdjoint(),
        "DirectAdjoint": diffrax.DirectAdjoint(),
        "BacksolveAdjoint": diffrax.BacksolveAdjoint(),
    }
    for n_steps in step_counts:
        reference = None
        for name, adjoint in adjoints.items():
            model = make_cnf(64, 3, train, dt0=1.0 / n_steps, max_steps=n_steps, adjoint=adjoint)
            try:
                temp, ms, flat = _mle_grad(model, MaximumLikelihood(max_steps=n_steps), x)
            except Exception as e:  # report, don't hide, an adjoint that cannot do this solve
                rows.append({"adjoint": name, "solver_steps": n_steps, "error": str(e)[:200]})
                continue
            reference = flat if reference is None else reference
            rel = float(np.linalg.norm(flat - reference) / np.linalg.norm(reference))
            rows.append(
                {
                    "adjoint": name,
                    "solver_steps": n_steps,
                    "temp_mib": temp,
                    "grad_ms": ms,
                    "grad_rel_diff_vs_default": rel,
                }
            )
    # The training default: adaptive steps, RecursiveCheckpointAdjoint sized by max_steps.
    for max_steps in [256, 1024] if quick else [256, 1024, 4096]:
        model = make_cnf(64, 3, train)
        temp, ms, _ = _mle_grad(model, MaximumLikelihood(max_steps=max_steps), x)
        rows.append(
            {
                "adjoint": "RecursiveCheckpointAdjoint, adaptive rtol=atol=1e-3",
                "solver_steps": f"max_steps={max_steps}",
                "temp_mib": temp,
                "grad_ms": ms,
                "grad_rel_diff_vs_default": 0.0,
            }
        )
    return rows


def _vmapped_one(train, width, depth, batch, n, seeds):
    loss, opt = FlowMatching(), default_optimizer(10_000)
    models = [make_cnf(width, depth, train, seed=s) for s in range(seeds)]
    parts = [eqx.partition(m, trainable_filter(m)) for m in models]
    static = parts[0][1]
    states = [opt.init(p) for p, _ in parts]
    keys = jax.random.split(jax.random.key(0), seeds)

    def chunk(p, s, k):
        return _train_chunk(p, None, s, static, loss, opt, train, k, n, batch, None)[3]

    def sequential():
        return [chunk(p, s, k) for (p, _), s, k in zip(parts, states, keys, strict=True)]

    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[p for p, _ in parts])
    stacked_state = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)
    vmapped = eqx.filter_jit(eqx.filter_vmap(chunk))

    t_seq, _ = median_time(sequential, 3)
    t_vmap, _ = median_time(lambda: vmapped(stacked, stacked_state, keys), 3)
    return {
        "width": width,
        "depth": depth,
        "batch": batch,
        "seeds": seeds,
        "sequential_ms_per_step_per_seed": 1e3 * t_seq / (n * seeds),
        "vmapped_ms_per_step_per_seed": 1e3 * t_vmap / (n * seeds),
        "speedup": t_seq / t_vmap,
    }


def _vmapped_seeds(quick):
    """Training S seeds one after another vs all at once under vmap."""
    train, _ = checkerboard_split()
    n, seeds = (100, 4) if quick else (200, 4)
    configs = [(64, 3, 256), (128, 3, 512), (256, 4, 1024)]
    return [_vmapped_one(train, w, d, b, n, seeds) for w, d, b in configs]


def _x64_subprocess(quick):
    cmd = [sys.executable, __file__, "--x64-probe"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr[-1000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def x64_probe(quick):
    """float32 vs float64: one batched field+divergence evaluation and a full log_prob."""
    model, _ = trained("cnf_fm")  # loaded as saved (float32), then float64 switched on
    train, holdout = checkerboard_split()
    if model is None:
        model = make_cnf(128, 4, train)
    jax.config.update("jax_enable_x64", True)
    div32 = _divergence(quick, jnp.float32, model, [FLOWLAB_DIV])[FLOWLAB_DIV]["ms"]
    div64 = _divergence(quick, jnp.float64, model, [FLOWLAB_DIV])[FLOWLAB_DIV]["ms"]
    model, m64 = cast(model, jnp.float32), cast(model, jnp.float64)
    r32 = bench_log_prob(model, holdout.astype(jnp.float32), 3 if quick else 7)
    r64 = bench_log_prob(m64, holdout.astype(jnp.float64), 3 if quick else 7)
    nll32 = -float(jnp.mean(model.log_prob(holdout.astype(jnp.float32))))
    nll64 = -float(jnp.mean(m64.log_prob(holdout.astype(jnp.float64))))
    return {
        "field_and_div_10k_ms": {"float32": div32, "float64": div64},
        "log_prob_500": {"float32": r32, "float64": r64},
        "holdout_nll": {"float32": nll32, "float64": nll64},
    }


def section_fastpaths(quick: bool) -> dict:
    print("\n== fast paths: each against the slower way it replaced ==")
    out = {"dispatch": _dispatch(quick)}
    print("-- training steps: one jitted step per Python iteration vs a chunk fused in lax.scan")
    for r in out["dispatch"]:
        print(
            f"   FM width {r['width']:3d} depth {r['depth']} batch {r['batch']:4d}: "
            f"{r['per_step_dispatch_ms']:.3f} -> {r['scan_fused_ms']:.3f} ms/step "
            f"(x{r['speedup']:.2f})"
        )
    out["divergence_10k"] = _divergence(quick)
    print(
        "-- (f, div f) on 10,000 points, and a parameter gradient through it on 2,000 points "
        "(trained FM field)"
    )
    for name, r in out["divergence_10k"].items():
        err = r["max_abs_diff_vs_flowlab"]
        err = "" if err is None else f"  max |diff| {err:.1e}"
        print(f"   {name:45s} {r['ms']:8.2f} ms   grad {r['grad_2000_ms']:8.2f} ms{err}")
    out["adjoint_mle_grad"] = _adjoints(quick)
    print("-- one maximum-likelihood gradient (width 64, depth 3, 512 points, fixed-step Tsit5)")
    for r in out["adjoint_mle_grad"]:
        if "error" in r:
            print(
                f"   {r['adjoint']:38s} {r['solver_steps']!s:>4} steps: failed: {r['error'][:80]}"
            )
            continue
        mem = "n/a" if r["temp_mib"] is None else f"{r['temp_mib']:7.1f} MiB"
        print(
            f"   {r['adjoint']:38s} {r['solver_steps']!s:>4} steps: temp {mem}  "
            f"{r['grad_ms']:8.1f} ms  grad rel. diff {r['grad_rel_diff_vs_default']:.1e}"
        )
    out["vmapped_seeds"] = _vmapped_seeds(quick)
    print("-- flow matching, several seeds: one after another vs vmapped (ms per step per seed)")
    for r in out["vmapped_seeds"]:
        print(
            f"   width {r['width']:3d} depth {r['depth']} batch {r['batch']:4d}, "
            f"{r['seeds']} seeds: {r['sequential_ms_per_step_per_seed']:.3f} -> "
            f"{r['vmapped_ms_per_step_per_seed']:.3f} "
            f"(x{r['speedup']:.2f})"
        )
    out["float32_vs_float64"] = _x64_subprocess(quick)
    r = out["float32_vs_float64"]
    if "error" not in r:
        print("-- float32 (default) vs float64 (for reference tests)")
        print(
            f"   (f, div f) on 10k points: {r['field_and_div_10k_ms']['float32']:.2f} ms vs "
            f"{r['field_and_div_10k_ms']['float64']:.2f} ms"
        )
        print(
            f"   log_prob 500 points: {r['log_prob_500']['float32']['time_s'] * 1e3:.1f} ms "
            f"({r['log_prob_500']['float32']['nfe']} NFE) vs "
            f"{r['log_prob_500']['float64']['time_s'] * 1e3:.1f} ms "
            f"({r['log_prob_500']['float64']['nfe']} NFE); hold-out NLL "
            f"{r['holdout_nll']['float32']:.5f} vs {r['holdout_nll']['float64']:.5f}"
        )
    else:
        print(f"   float64 probe failed: {r['error']}")
    return out


# -- section: scaling ---------------------------------------------------------------------------


def section_scaling(quick: bool) -> dict:
    print("\n== scaling (log-log plot in figures/benchmark_scaling.png) ==")
    train, holdout = checkerboard_split()
    repeats = 3 if quick else 5
    out = {"fm_batch": [], "mle_batch": [], "fm_width": [], "log_prob_width": [], "log_prob_n": []}
    batches = [256, 1024, 4096] if quick else [256, 512, 1024, 2048, 4096, 8192]
    widths = [64, 128, 256] if quick else [64, 128, 256, 512]
    for b in batches:
        r = bench_train(make_cnf(128, 3, train), FlowMatching(), train, b, 50, repeats)
        out["fm_batch"].append(r)
        print(f"   FM train, width 128 depth 3, batch {b:5d}: {r['step_ms']:8.2f} ms/step")
    for b in batches[: 3 if quick else 5]:
        model = make_cnf(64, 3, train, dt0=0.05, max_steps=20)
        r = bench_train(model, MaximumLikelihood(max_steps=20), train, b, 3, max(1, repeats - 2))
        out["mle_batch"].append(r)
        print(
            f"   MLE train, width 64 depth 3, 20 Tsit5 steps, batch {b:5d}: "
            f"{r['step_ms']:8.1f} ms/step"
        )
    for w in widths:
        r = bench_train(make_cnf(w, 3, train), FlowMatching(), train, 1024, 50, repeats)
        out["fm_width"].append({"width": w, **r})
        m = make_cnf(w, 3, train, dt0=0.05, max_steps=20)
        lp = bench_log_prob(m, holdout, repeats)
        out["log_prob_width"].append({"width": w, **lp})
        print(
            f"   width {w:3d} depth 3: FM train batch 1024 {r['step_ms']:8.2f} ms/step; "
            f"log_prob 500 pts, 20 fixed Tsit5 steps ({lp['nfe']} NFE) "
            f"{lp['time_s'] * 1e3:8.1f} ms"
        )
    model, _ = trained("cnf_fm")
    if model is None:
        model = make_cnf(128, 4, train)
    for n in [100, 500, 2000, 10_000] + ([] if quick else [50_000]):
        x = datasets.sample("checkerboard", jax.random.key(11), n)
        lp = bench_log_prob(model, x, max(1, repeats - 2) if n >= 10_000 else repeats)
        out["log_prob_n"].append(lp)
        print(
            f"   log_prob (trained FM CNF, adaptive rtol=atol=1e-5), {n:6d} points: "
            f"{lp['time_s'] * 1e3:9.1f} ms  ({lp['nfe']} NFE, "
            f"{lp['time_s'] / n / lp['nfe'] * 1e9:.0f} ns per point per NFE)"
        )
    plot_scaling(out)
    return out


def plot_scaling(out):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    ax = axes[0]
    ax.loglog(
        [r["batch"] for r in out["fm_batch"]],
        [r["step_ms"] for r in out["fm_batch"]],
        "o-",
        label="flow matching (width 128, depth 3)",
    )
    ax.loglog(
        [r["batch"] for r in out["mle_batch"]],
        [r["step_ms"] for r in out["mle_batch"]],
        "s-",
        label="max. likelihood (width 64, depth 3, 20 steps)",
    )
    ax.set(
        xlabel="batch size (points per step)",
        ylabel="time per training step (ms)",
        title="training step time vs batch size",
    )
    ax.legend()
    ax = axes[1]
    ax.loglog(
        [r["width"] for r in out["fm_width"]],
        [r["step_ms"] for r in out["fm_width"]],
        "o-",
        label="FM training step (batch 1024), ms",
    )
    ax.loglog(
        [r["width"] for r in out["log_prob_width"]],
        [r["time_s"] * 1e3 for r in out["log_prob_width"]],
        "s-",
        label="exact log_prob of 500 points (121 NFE), ms",
    )
    ax.set(xlabel="network width (depth 3)", ylabel="time (ms)", title="time vs network width")
    ax.legend()
    ax = axes[2]
    ns = [r["n"] for r in out["log_prob_n"]]
    ax.loglog(ns, [r["time_s"] for r in out["log_prob_n"]], "o-", label="trained FM CNF")
    ax.loglog(
        ns,
        [out["log_prob_n"][0]["time_s"] * n / ns[0] for n in ns],
        "k:",
        label="linear in n (from the first point)",
    )
    ax.set(
        xlabel="points evaluated",
        ylabel="time (s)",
        title="exact log_prob time vs number of points",
    )
    ax.legend()
    ticks = [[r["batch"] for r in out["fm_batch"]], [r["width"] for r in out["fm_width"]], ns]
    for a, xt in zip(axes, ticks, strict=True):
        a.set_xticks(xt)
        a.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(True, which="both", alpha=0.3)
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "benchmark_scaling.png", dpi=120)
    plt.close(fig)


# -- section: time to quality -------------------------------------------------------------------

QUALITY_RUNS = {
    # name: (objective, dataset, training data, hyperparameters, eval_every, time cap in s)
    "fm/checkerboard": (
        "fm",
        "checkerboard",
        "split",
        dict(steps=20_000, width=256, depth=4, batch_size=1024, lr=2e-3, ema_decay=0.999),
        500,
        300,
    ),
    "fm/checkerboard/fresh-data": (
        "fm",
        "checkerboard",
        "fresh",
        dict(steps=20_000, width=256, depth=4, batch_size=1024, lr=2e-3, ema_decay=0.999),
        500,
        300,
    ),
    "fm/gaussian_mixture": (
        "fm",
        "gaussian_mixture",
        "split",
        dict(steps=20_000, width=256, depth=4, batch_size=1024, lr=2e-3, ema_decay=0.999),
        500,
        300,
    ),
    "mle/checkerboard": (
        "mle",
        "checkerboard",
        "split",
        dict(steps=3000, width=64, depth=3, batch_size=512, lr=1e-2, ema_decay=0.99),
        100,
        300,
    ),
    "mle/gaussian_mixture": (
        "mle",
        "gaussian_mixture",
        "split",
        dict(steps=3000, width=64, depth=3, batch_size=512, lr=1e-2, ema_decay=0.99),
        100,
        300,
    ),
}


def quality_targets(dataset: str) -> float:
    if dataset == "checkerboard":
        return 3.60
    return datasets.entropy(dataset) + 0.10


def time_to_quality(name, quick):
    objective, dataset, regime, hp, eval_every, cap = QUALITY_RUNS[name]
    hp = dict(hp)
    if quick:
        hp["steps"] = 2000 if objective == "fm" else 200
        eval_every = max(eval_every // 2, 50)
        cap = 60
    key = jax.random.key(0)
    k_data, k_model, k_fit = jax.random.split(key, 3)
    train, holdout = datasets.split(dataset, k_data)
    if regime == "fresh":  # a fresh draw for (nearly) every point the run sees
        train = datasets.sample(dataset, jax.random.fold_in(k_data, 1), 1_000_000)
    target = quality_targets(dataset)
    model = CNF(
        MLPVectorField(2, width=hp["width"], depth=hp["depth"], key=k_model),
        standardize=Standardize.fit(train),
    )
    loss = FlowMatching() if objective == "fm" else MaximumLikelihood()
    eval_s = [0.0]
    nll_curve = []

    def holdout_nll(m):
        t = time.perf_counter()
        v = -float(jnp.mean(m.log_prob(holdout)))
        eval_s[0] += time.perf_counter() - t
        return v

    def stop(step, history):
        nll = history.metrics["holdout_nll"][-1]
        nll_curve.append((step, history.wall_time[-1], history.wall_time[-1] - eval_s[0], nll))
        return nll <= target or history.wall_time[-1] > cap

    t0 = time.perf_counter()
    _, history = fit(
        model,
        loss,
        train,
        holdout,
        key=k_fit,
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=default_optimizer(hp["steps"], hp["lr"]),
        eval_every=eval_every,
        ema_decay=hp["ema_decay"],
        metrics={"holdout_nll": holdout_nll},
        progress=False,
        callback=stop,
    )
    total = time.perf_counter() - t0
    best = min(nll_curve, key=lambda r: r[3])
    reached = nll_curve[-1][3] <= target
    return {
        "objective": objective,
        "dataset": dataset,
        "training_data": regime,
        "target_nll": target,
        "true_entropy": datasets.entropy(dataset),
        "hyperparameters": hp,
        "eval_every": eval_every,
        "time_cap_s": cap,
        "reached": reached,
        "steps": nll_curve[-1][0] if reached else None,
        "wall_s": nll_curve[-1][1] if reached else None,
        "wall_s_without_nll_evals": nll_curve[-1][2] if reached else None,
        "best_nll": best[3],
        "best_at_step": best[0],
        "steps_run": nll_curve[-1][0],
        "total_s": total,
        "curve": [
            {"step": s, "wall_s": w, "train_s": tr, "holdout_nll": v} for s, w, tr, v in nll_curve
        ],
    }


def section_quality(quick: bool) -> dict:
    print("\n== time to quality: exact hold-out NLL (500 points) checked every K steps ==")
    out = {}
    for name in QUALITY_RUNS:
        r = time_to_quality(name, quick)
        out[name] = r
        if r["reached"]:
            msg = (
                f"reached {r['target_nll']:.3f} at step {r['steps']}: {r['wall_s']:.0f} s "
                f"({r['wall_s_without_nll_evals']:.0f} s without the NLL evaluations)"
            )
        else:
            msg = (
                f"NOT reached {r['target_nll']:.3f} in {r['steps_run']} steps / "
                f"{r['total_s']:.0f} s; best {r['best_nll']:.3f} at step {r['best_at_step']}"
            )
        print(f"   {name:28s} {msg}", flush=True)
    plot_quality(out)
    return out


def plot_quality(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dsets = sorted({r["dataset"] for r in out.values()})
    fig, axes = plt.subplots(
        1, len(dsets), figsize=(6.5 * len(dsets), 4.4), constrained_layout=True, squeeze=False
    )
    for ax, ds in zip(axes[0], dsets, strict=True):
        target = None
        for r in out.values():
            if r["dataset"] != ds:
                continue
            target = r["target_nll"]
            ax.plot(
                [c["wall_s"] for c in r["curve"]],
                [c["holdout_nll"] for c in r["curve"]],
                "o-",
                ms=3,
                label=f"{r['objective'].upper()}, "
                + ("fresh samples" if r["training_data"] == "fresh" else "2000 training points"),
            )
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.3f} nats")
        ax.axhline(datasets.entropy(ds), color="grey", ls=":", lw=1, label="true entropy")
        ax.set(
            xlabel="wall-clock time since start of training (s)",
            ylabel="exact hold-out NLL (nats)",
            title=f"time to quality: {ds}",
        )
        lo = datasets.entropy(ds) - 0.05
        ax.set_ylim(lo, lo + (0.8 if ds == "checkerboard" else 1.0))
        ax.legend()
        ax.grid(True, alpha=0.3)
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "benchmark_time_to_quality.png", dpi=120)
    plt.close(fig)


# -- targets ----------------------------------------------------------------------------------


def print_targets(results: dict) -> None:
    fam = results.get("families")
    if not fam:
        return
    gflops = results.get("matmul_gflops")
    print("\n== targets (issue 6) ==")
    for mle in fam["cnf_mle"]["train"]:
        ratio = mle["points_per_s"] / DIFFRAX_EXAMPLE["points_per_s"]
        print(
            f"   MLE training, width 64 depth 3, {mle['solver']}: {mle['points_per_s']:.0f} "
            f"points/s = x{ratio:.1f} the Diffrax CNF example (target x3): "
            f"{'MET' if ratio >= 3 else 'MISSED'}; compile {mle['compile_s']:.1f} s "
            f"(target < 15 s): {'MET' if mle['compile_s'] < 15 else 'MISSED'}"
        )
    fm = fam["cnf_fm"]["train"][0]
    ratio = TORCHCFM_ICFM_MS / fm["step_ms"]
    print(
        f"   FM training, batch 256 width 64 depth 3: {fm['step_ms']:.2f} ms/step = "
        f"x{ratio:.1f} torchcfm I-CFM's {TORCHCFM_ICFM_MS} ms (target x2): "
        f"{'MET' if ratio >= 2 else 'MISSED'}"
    )
    for f in ("cnf_mle", "cnf_fm", "diffusion"):
        lp = fam[f]["log_prob_500"]
        tm = fam[f].get("trained_model") or {"width": 128, "depth": 4}
        floor = (
            flops_floor_s(tm["width"], tm["depth"], 500, lp["nfe"], gflops)
            if gflops
            else float("nan")
        )
        print(
            f"   exact log_prob 500 points, {f} ({tm['width']}x{tm['depth']}): "
            f"{lp['time_s'] * 1e3:.0f} ms, {lp['nfe']} NFE (target < 100 ms): "
            f"{'MET' if lp['time_s'] < 0.1 else 'MISSED'}; FLOP floor at {gflops:.0f} GFLOP/s: "
            f"{floor * 1e3:.0f} ms"
        )
    ode = fam["diffusion"]["sample_10k"]["ode"]
    print(
        f"   PF-ODE 10,000 samples: {ode['time_s']:.2f} s, {ode['nfe']} NFE (target < 2 s): "
        f"{'MET' if ode['time_s'] < 2 else 'MISSED'}"
    )
    q = results.get("quality", {}).get("fm/checkerboard")
    if q:
        ok = q["reached"] and q["wall_s"] < 120
        reached = (
            f"{q['wall_s']:.0f} s" if q["reached"] else f"not reached (best {q['best_nll']:.3f})"
        )
        print(
            f"   FM time to 3.60 nats on checkerboard (2000 points): "
            f"{reached}"
            f" (target < 120 s): {'MET' if ok else 'MISSED'}"
        )


# -- main -----------------------------------------------------------------------------------


def merge_results(new: dict) -> dict:
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old.update(new)
    atomic_write_text(RESULTS, json.dumps(old, indent=2) + "\n")
    return old


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--quick", action="store_true", help="small repeats and budgets")
    p.add_argument(
        "--replot", action="store_true", help="redraw the figures from results.json only"
    )
    p.add_argument("--family", help=argparse.SUPPRESS)
    p.add_argument("--x64-probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.family:  # child process: one family, JSON on the last line of stdout
        print(json.dumps(family_figures(args.family, args.quick)))
        return 0
    if args.replot:
        saved = json.loads(RESULTS.read_text())
        if "scaling" in saved:
            plot_scaling(saved["scaling"])
        if "quality" in saved:
            plot_quality(saved["quality"])
        return 0
    if args.x64_probe:
        print(json.dumps(x64_probe(args.quick)))
        return 0
    info = machine()
    print(
        f"machine: {info['cpu_count']} CPUs, {info['platform']}, jax {info['jax']}, "
        f"diffrax {info['diffrax']}, load average {info['load_average_at_start']:.2f}"
    )
    gflops = matmul_gflops()
    print(f"float32 matmul (1024 x 1024): {gflops:.0f} GFLOP/s")
    results = {"machine": info, "matmul_gflops": gflops, "quick": args.quick}
    runners = {
        "families": section_families,
        "fastpaths": section_fastpaths,
        "scaling": section_scaling,
        "quality": section_quality,
    }
    for name in args.sections:
        t = time.perf_counter()
        results[name] = runners[name](args.quick)
        results.setdefault("section_seconds", {})[name] = time.perf_counter() - t
        merged = merge_results(results)
    print_targets(merged)
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
