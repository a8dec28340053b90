"""Section ``fastpaths``: each fast path of flowlab against the slower way it replaced.

python benchmarks/fastpaths.py --x64-probe [--quick]   # float32 vs float64, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _models import (
    bench_log_prob,
    build,
    cast,
    checkerboard_split,
    trained_or_untrained,
    trainer,
)
from _timing import median_time, run_child

import flowlab

FLOWLAB_DIV = "flowlab: batched linearize, d batched JVPs"


# -- training steps: dispatched one at a time vs fused ----------------------------------------


def _dispatch_one(train, width, depth, batch, n):
    tr, state = trainer(build("cnf_fm", width, depth, train), flowlab.FlowMatching(), train, batch)
    one_step = eqx.filter_jit(tr.step)  # the very step that Trainer.run scans over
    keys = jax.random.split(jax.random.key(0), n)

    def loop(state=state):
        for k in keys:
            state, value, _ = one_step(state, train, k)
        return value

    t_loop, _ = median_time(loop, 3)
    t_scan, _ = median_time(lambda: tr.run(state, train, jax.random.key(0), n)[1], 3)
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


# -- the divergence ---------------------------------------------------------------------------


def _divergence(quick, dtype=jnp.float32, model=None, only=None):
    """One batched evaluation of (f, div f) on 10,000 points, by each way of computing div f
    (or only the methods named in ``only``)."""
    if model is None:
        model = trained_or_untrained("cnf_fm", checkerboard_split()[0])
    field = cast(model.vector_field, dtype)
    x = jax.random.normal(jax.random.key(0), (10_000, 2), dtype)
    t = jnp.asarray(0.5, dtype)
    eye = jnp.eye(2, dtype=dtype)

    def per_example(fn):
        return lambda f, x: jax.vmap(lambda xi: fn(f, xi))(x)

    def per_example_forward(f, xi):  # flowlab before: d JVPs vmapped in one linearisation
        return flowlab.value_and_divergence(f, t, xi)

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
        (FLOWLAB_DIV, lambda f, x: flowlab.batch_value_and_divergence(f, t, x)),
        ("before: per-example linearize, vmapped JVPs", per_example(per_example_forward)),
        ("per-example jax.jacfwd", per_example(jacfwd_full)),
        ("per-example jax.jacrev", per_example(jacrev_full)),
        ("per-example VJP loop (FFJORD-style)", per_example(reverse_loop)),
        ("batched VJPs", batched_vjp),
        (
            "Hutchinson, one batched JVP (estimate)",
            lambda f, x: flowlab.batch_value_and_divergence(f, t, x, jnp.ones_like(x)),
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


# -- adjoints of the maximum-likelihood gradient ----------------------------------------------


def _mle_grad(model, loss, x):
    """Compiled temp memory, time and flat gradient of one maximum-likelihood gradient."""
    params, static = eqx.partition(model, model.trainable())

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
            model = build(
                "cnf_mle", 64, 3, train, dt0=1.0 / n_steps, max_steps=n_steps, adjoint=adjoint
            )
            try:
                temp, ms, flat = _mle_grad(model, flowlab.MaximumLikelihood(max_steps=n_steps), x)
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
        model = build("cnf_mle", 64, 3, train)
        temp, ms, _ = _mle_grad(model, flowlab.MaximumLikelihood(max_steps=max_steps), x)
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


# -- several seeds: one after another vs vmapped ----------------------------------------------


def _vmapped_one(train, width, depth, batch, n, seeds):
    models = [build("cnf_fm", width, depth, train, seed=s) for s in range(seeds)]
    tr, _ = trainer(models[0], flowlab.FlowMatching(), train, batch)
    states = [tr.init(eqx.filter(m, m.trainable()), train, jax.random.key(0)) for m in models]
    keys = jax.random.split(jax.random.key(0), seeds)

    def chunk(state, k):
        return tr.run(state, train, k, n)[1]

    def sequential():
        return [chunk(s, k) for s, k in zip(states, keys, strict=True)]

    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)
    vmapped = eqx.filter_jit(eqx.filter_vmap(chunk))

    t_seq, _ = median_time(sequential, 3)
    t_vmap, _ = median_time(lambda: vmapped(stacked, keys), 3)
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


# -- float32 vs float64 (in its own process: float64 is switched on globally) -----------------


def x64_probe(quick):
    """float32 vs float64: one batched field+divergence evaluation and a full log_prob."""
    train, holdout = checkerboard_split()
    model = trained_or_untrained("cnf_fm", train)  # as saved (float32), then float64 on
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


def _x64_subprocess(quick):
    try:
        return run_child(Path(__file__), "--x64-probe", *(["--quick"] if quick else []))
    except RuntimeError as e:
        return {"error": str(e)[-1000:]}


# -- the section ------------------------------------------------------------------------------


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--x64-probe", action="store_true", required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(x64_probe(args.quick)))


if __name__ == "__main__":
    main()
