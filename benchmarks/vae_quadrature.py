"""The VAE's exact likelihood by latent quadrature, before and after its kernel was rewritten
(issue 25: the largest single evaluation cost of ``compare.py --quick``).

    python benchmarks/vae_quadrature.py            # ~2 min on the 2-core CPU
    python benchmarks/vae_quadrature.py --smoke    # seconds

A VAE of the grid's shape (``registry.FAMILIES["vae"]``: 2-D latent, learned decoder
variance, 513 x 513 trapezoid nodes on [-7, 7]^2) with weights trained briefly on pinwheel,
scored on the 500 hold-out points and on the 60 x 60 density grid of ``compare.py --quick``.

- *before*: the kernel as it was, kept here as the reference: per (point, node) pair the
  Gaussian log-density with its ``log std`` terms, then a log-sum-exp over every node for
  the grid and a second one for the half grid (two ``exp`` per pair);
- *after*: ``flowlab.VAE.log_prob_with_error``: per node ``1/std`` and the normaliser
  folded into the weight once, one ``exp`` per pair, and the half grid summed over its own
  quarter of the nodes.

Both under ``jax.jit``; median wall time of ``--repeats`` calls after a compiling one; the
largest differences between the two in ``log p`` and in the error estimate are printed
beside. Writes ``benchmarks/vae_quadrature_results.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from _timing import machine, median_time  # noqa: E402
from lab import pipeline  # noqa: E402
from lab.registry import FAMILIES, build_model  # noqa: E402

import flowlab  # noqa: E402
from flowlab import plotting  # noqa: E402
from flowlab._checkpoint import atomic_write_text  # noqa: E402
from flowlab.vae import _LOG_2PI, Variance, _grid_weights, _normal_log_prob, _tail_mass  # noqa: E402

OUT = Path(__file__).resolve().parent / "vae_quadrature_results.json"


def before(model, x, size, bound, node_chunk=4096, point_chunk=128):
    """The kernel before the rewrite (``flowlab/vae.py`` at 1fd405e), verbatim in substance."""
    dtype = x.dtype
    u = model.standardizer().forward(x)
    k, d = model.latent_size, model.data_size
    nodes, log_w, log_wc = _grid_weights(size, bound, k)
    m_nodes = nodes.shape[0]
    node_chunk = min(node_chunk, m_nodes)
    pad = -m_nodes % node_chunk
    nodes = jnp.asarray(np.concatenate([nodes, np.zeros((pad, k))]), dtype)
    log_w = jnp.asarray(np.concatenate([log_w, np.full(pad, -np.inf)]), dtype)
    log_wc = jnp.asarray(np.concatenate([log_wc, np.full(pad, -np.inf)]), dtype)
    means, stds = jax.lax.map(model.likelihood, nodes, batch_size=node_chunk)
    n_chunks = nodes.shape[0] // node_chunk
    means = means.reshape(n_chunks, node_chunk, d)
    stds = stds.reshape(n_chunks, node_chunk, d)
    log_w = log_w.reshape(n_chunks, node_chunk)
    log_wc = log_wc.reshape(n_chunks, node_chunk)

    def one_point(ui):
        def body(carry, chunk):
            acc_f, acc_c = carry
            m, s, lw, lwc = chunk
            ll = _normal_log_prob(ui, m, s)
            return (
                jnp.logaddexp(acc_f, jax.nn.logsumexp(ll + lw)),
                jnp.logaddexp(acc_c, jax.nn.logsumexp(ll + lwc)),
            ), None

        init = (jnp.asarray(-jnp.inf, dtype), jnp.asarray(-jnp.inf, dtype))
        (fine, coarse), _ = jax.lax.scan(body, init, (means, stds, log_w, log_wc))
        return fine, coarse

    fine, coarse = jax.lax.map(one_point, u, batch_size=min(point_chunk, u.shape[0]))
    floor = model.min_std if model.variance is Variance.PER_LATENT else model.global_std()
    log_max = -jnp.sum(jnp.log(jnp.broadcast_to(floor, (d,)))) - 0.5 * d * _LOG_2PI
    tail = jnp.log(jnp.asarray(_tail_mass(bound, k), dtype)) + log_max
    error = jnp.abs(fine - coarse) + (jnp.logaddexp(fine, tail) - fine)
    return fine + model._log_det(), error


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a 65 x 65 grid of nodes, 1 repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    size = 64 if args.smoke else FAMILIES["vae"].defaults["quadrature_size"]
    hp = dict(FAMILIES["vae"].defaults, width=64, quadrature_size=size)  # --quick's VAE
    repeats = 1 if args.smoke else args.repeats
    train, holdout, _, hp = pipeline.prepare("vae", SimpleNamespace(seed=0, dataset="pinwheel"), hp)
    model, _ = flowlab.fit(
        build_model(hp), flowlab.NegativeELBO(), train, holdout, key=jax.random.key(2),
        steps=50 if args.smoke else 1000, batch_size=hp["batch_size"],
        optimizer=optax.adam(hp["lr"]), eval_every=10_000,
    )  # fmt: skip
    lo, hi = np.min(train, 0), np.max(train, 0)
    grid = np.asarray(plotting.grid(lo, hi, 60)[2], np.float32)
    old = jax.jit(lambda x: before(model, x, size, hp["quadrature_bound"]))
    new = jax.jit(lambda x: model.log_prob_with_error(x)[:2])
    rows = {}
    for name, pts in (("holdout_500", np.asarray(holdout)), ("grid_60x60", grid)):
        t_old, c_old = median_time(lambda pts=pts: old(pts), repeats)
        t_new, c_new = median_time(lambda pts=pts: new(pts), repeats)
        (lp_o, er_o), (lp_n, er_n) = old(pts), new(pts)
        rows[name] = dict(
            points=len(pts), before_s=t_old, after_s=t_new, speedup=t_old / t_new,
            first_call_s=dict(before=c_old, after=c_new),
            max_abs_diff_log_prob=float(jnp.max(jnp.abs(lp_o - lp_n))),
            max_abs_diff_error=float(jnp.max(jnp.abs(er_o - er_n))),
            max_rel_diff_log_prob=float(jnp.max(jnp.abs(lp_o - lp_n) / jnp.abs(lp_o))),
        )  # fmt: skip
        r = rows[name]
        print(
            f"{name}: before {t_old:.3f} s, after {t_new:.3f} s ({r['speedup']:.2f}x); "
            f"max |diff| log p {r['max_abs_diff_log_prob']:.2e} "
            f"(relative {r['max_rel_diff_log_prob']:.1e}), error estimate "
            f"{r['max_abs_diff_error']:.2e}",
            flush=True,
        )
    result = dict(
        machine=machine(), smoke=args.smoke, nodes=f"{size + 1} x {size + 1}",
        repeats=repeats, rows=rows,
    )  # fmt: skip
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
