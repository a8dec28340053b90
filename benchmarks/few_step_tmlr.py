r"""Few steps, measured (issue 23), part T: the published 2-D W2 rows of Tong et al. for
I-CFM, OT-CFM and rectified flow, re-run with flowlab on the published protocol.

Published figures. Tong, Malkin, Fatras, Atanackovic, Zhang, Huguet, Wolf & Bengio,
"Simulation-free Schrödinger bridges via score and flow matching" ([SF]2M, AISTATS 2024,
arXiv 2307.03672), Table 2, ODE block: W2 (not squared) for OT-CFM, I-CFM (both "Tong et
al., 2024", i.e. the TMLR paper arXiv 2302.00482), RF (Liu 2022) and FM (Lipman et al.
2023), mean +- std over five seeds (Sec. 6). The TMLR paper's own Table 2 was not
retrieved (see ``PUBLISHED_SOURCE``).

Their protocol, from [SF]2M Sec. F.1 and F.3 and the runner of github atong01/
conditional-flow-matching (``runner/configs/experiment/cfm.yaml``, ``model/cfm.yaml``,
``model/otcfm.yaml``, ``scripts/two-dim-cfm.sh``, ``datamodules/...``):

- network: MLP on ``[t, x]``, three hidden layers of width 64, SELU (``VelocityNet``);
- AdamW, lr 1e-3, weight decay 1e-5; batch 512; 1,000 epochs of a fixed 10,000-point
  training set (``drop_last``: 19 steps per epoch, 19,000 steps);
- I-CFM: $x_t = t x_1 + (1-t) x_0 + \sigma\varepsilon$, target $x_1 - x_0$, $\sigma = 0.1$,
  independent pairs; OT-CFM: the same on the exact minibatch OT pairing of each batch of
  512 (POT ``emd``; here flowlab's ``ExactOT``, the same optimum); the noise source is
  redrawn every step (``torch.randn_like``);
- sampling: 100 Euler steps from $t=0$ to $1$;
- metric: W2 (square root of the exact OT cost with squared-Euclidean ground cost) between
  10,000 forward samples and a 10,000-point test set ([SF]2M F.3, "following Shi et al.").

Data: the runner's generators (not ``torchcfm.utils``'s): N -> moons is
``make_moons(noise=0.05) * 2`` with ``x -= 1``; N -> scurve is ``make_s_curve(noise=0.05)``
``[:, [0, 2]] * 1.5`` (flowlab's ``torchcfm_scurve``); moons -> 8gaussians is the runner's
``TwoDimDataModule("moon-8gaussians")`` (``two_dim.py``, from DSB): source moons
``make_moons(noise=0.1)`` standardised by the scalar mean and std of all coordinates and
scaled by 7, target 8 Gaussians of std 1.5 at radius 12 (``(4 u_k + 0.5 eps) * 3``). The
runner's timepoint order is moons (t=0) -> 8gaussians (t=1); [SF]2M's column reads
"8gaussians -> moons". N -> 8gaussians (torchdyn's ``generate_gaussians`` through the
runner's ``TorchDynDataModule``) is not run: see ``NOT_RUN``. Angles are drawn i.i.d.
(sklearn uses a ``linspace``), so train and test are independent samples.

Departures (also in the JSON's ``settings.departures``): the final weights are scored (the
runner tests the checkpoint of lowest validation loss, checked every 10 epochs); no
validation set is drawn.

    python benchmarks/few_step_tmlr.py            # the published protocol (5 seeds)
    python benchmarks/few_step_tmlr.py --smoke    # seconds; what the CI test runs
    --datasets / --methods / --seeds / --epochs / --eval-n override

Every time printed is wall-clock on a CPU shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_step import _split_keys, mean_sd, same_protocol, w2_squared, write_json  # noqa: E402

from flowlab import datasets  # noqa: E402
from flowlab.couplings import ExactOT  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "few_step_tmlr_results.json"

PUBLISHED_SOURCE = (
    "Tong et al., [SF]2M, AISTATS 2024 (arXiv 2307.03672), Table 2, ODE methods: W2 "
    "(square root of the exact OT cost) between 10,000 generated and 10,000 test points, "
    "100 Euler steps, mean +- std over 5 seeds. The OT-CFM and I-CFM rows are cited there "
    "as Tong et al. 2024 (TMLR); the TMLR paper's own Table 2 was not retrieved."
)
# W2 (mean, sd) over 5 seeds; None where the table has a dash.
PUBLISHED = {
    "moons": {"ot": (0.130, 0.016), "icfm": (0.178, 0.014), "rf": (0.283, 0.045)},
    "scurve": {"ot": (0.144, 0.028), "icfm": (0.242, 0.141), "rf": (0.345, 0.079)},
    "moons_to_8gaussians": {"ot": (0.601, 0.027), "icfm": (1.557, 0.407), "rf": (1.525, 0.330)},
    "8gaussians": {"ot": (0.303, 0.043), "icfm": (0.373, 0.103), "rf": (0.421, 0.071)},
}
NOT_RUN = {
    "8gaussians": "the runner's N -> 8gaussians is torchdyn's generate_gaussians(n_gaussians=8, "
    "radius=5, std_gaussians=1, noise=1e-4) without a dim argument: as that code reads, "
    "its default dim=3 gives 3-D points, centres on the unit circle (the radius is "
    "overwritten inside its loop) with std 1; whether the published runs had that "
    "version is not established, so no flowlab number is set against 0.303",
    "rf": "[SF]2M does not state its rectified-flow protocol, and the runner does not fix "
    "it either: its RectifiedFlowLitModule (runner/src/models/cfm_module.py, at github "
    "atong01/conditional-flow-matching cacd4dc) reflows online, replacing each batch's x1 by "
    "a frozen copy's 100-step Euler image of x0 from the epochs listed in rectify_epochs, "
    "but no config under runner/configs sets rectify_epochs or selects that module, so "
    "when the copy is frozen (and how often) is not recoverable; not run",
}
DEFAULT = dict(
    datasets=("moons", "scurve", "moons_to_8gaussians"),
    methods=("icfm", "ot"),
    seeds=5,
    epochs=1000,
    n_train=10_000,
    eval_n=10_000,
    batch=512,
    euler_steps=100,
    sigma=0.1,
    lr=1e-3,
    weight_decay=1e-5,
    width=64,
)
SMOKE = {**DEFAULT, **dict(datasets=("moons_to_8gaussians",), seeds=2, epochs=2,
                          n_train=1024, eval_n=200, euler_steps=4)}  # fmt: skip
METHOD_NAMES = {"icfm": "I-CFM", "ot": "OT-CFM", "rf": "RF"}
# what rows merged into one JSON (--merge) must share
PROTOCOL = ("seeds", "epochs", "n_train", "eval_n", "batch", "euler_steps", "sigma", "lr",
            "weight_decay", "width", "mode")  # fmt: skip


# --- the runner's generators (JAX, key-based) ------------------------------------------------


def _make_moons(key, n, noise):
    """sklearn ``make_moons``: the two half circles with isotropic Gaussian noise; the angle
    is drawn i.i.d. instead of sklearn's ``linspace``."""
    ka, km, kn = jax.random.split(key, 3)
    a = jax.random.uniform(ka, (n,), minval=0.0, maxval=math.pi)
    inner = jax.random.bernoulli(km, 0.5, (n,))
    outer_pt = jnp.stack([jnp.cos(a), jnp.sin(a)], -1)
    inner_pt = jnp.stack([1.0 - jnp.cos(a), 0.5 - jnp.sin(a)], -1)
    x = jnp.where(inner[:, None], inner_pt, outer_pt)
    return x + noise * jax.random.normal(kn, (n, 2))


def runner_moons(key, n):
    """``SKLearnDataModule("moons")``: ``make_moons(noise=0.05) * 2``, then ``x -= 1``."""
    return 2.0 * _make_moons(key, n, 0.05) - jnp.asarray([1.0, 0.0])


def dsb_moons(key, n):
    """``two_dim.data_distrib(n, "moon")``: ``make_moons(noise=0.1)``, minus the scalar mean
    of all its coordinates, over their scalar std, times 7 (statistics of the drawn set)."""
    x = _make_moons(key, n, 0.1)
    return (x - x.mean()) / x.std() * 7.0


def dsb_8gaussians(key, n):
    """``two_dim.data_distrib(n, "8gaussians")``: ``(4 u_k + 0.5 eps) * 3``, ``u_k`` the
    eight unit directions, ``k`` uniform: radius 12, std 1.5."""
    kc, kn = jax.random.split(key)
    k = jax.random.randint(kc, (n,), 0, 8)
    # their centre list: (1,0), (-1,0), (0,1), (0,-1), then the four diagonals
    angles = jnp.asarray([0.0, 4.0, 2.0, 6.0, 1.0, 7.0, 3.0, 5.0]) * (math.pi / 4)
    u = jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)[k]
    return 3.0 * (4.0 * u + 0.5 * jax.random.normal(kn, (n, 2)))


def task(name: str, key, n_train: int, n_test: int):
    """``(source_train, target_train, source_test, target_test)``; a ``None`` source is
    N(0, I), redrawn at every step and at test time."""
    kt, ks = jax.random.split(key)
    n = n_train + n_test
    if name == "moons":
        x1 = runner_moons(kt, n)
        return None, x1[:n_train], None, x1[n_train:]
    if name == "scurve":
        x1 = datasets.sample("torchcfm_scurve", kt, n)
        return None, x1[:n_train], None, x1[n_train:]
    if name == "moons_to_8gaussians":
        x0, x1 = dsb_moons(ks, n), dsb_8gaussians(kt, n)
        return x0[:n_train], x1[:n_train], x0[n_train:], x1[n_train:]
    raise ValueError(f"expected one of {tuple(PUBLISHED)[:3]}, got {name!r}")


# --- the runner's network and training loop ---------------------------------------------------


class VelocityNet(eqx.Module):
    """The runner's ``VelocityNet(hidden_dims=[64, 64, 64], activation="selu")``: an MLP on
    ``[t, x]`` (no time embedding), three SELU hidden layers, linear output."""

    layers: list

    def __init__(self, width: int = 64, *, key):
        keys = jax.random.split(key, 4)
        sizes = [3, width, width, width, 2]
        pairs = zip(sizes[:-1], sizes[1:], keys, strict=True)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in pairs]

    def __call__(self, t, x):
        h = jnp.concatenate([jnp.reshape(t, (1,)).astype(x.dtype), x])
        for layer in self.layers[:-1]:
            h = jax.nn.selu(layer(h))
        return self.layers[-1](h)


def train(cfg: dict, name: str, method: str, seeds, log):
    """Train one (dataset, method) for every seed as one vmapped program: ``epochs`` passes
    over a fixed training set in shuffled batches of ``batch`` (last partial batch dropped),
    AdamW, CFM loss with ``sigma``; OT runs pair each batch by the exact assignment.
    Returns the trained nets (one per seed), the test data and the wall-clock seconds."""
    n_train, batch = cfg["n_train"], cfg["batch"]
    steps_per_epoch = n_train // batch
    data = [task(name, jax.random.key(100 + s), n_train, cfg["eval_n"]) for s in seeds]
    noise_source = data[0][0] is None
    x1_all = jnp.stack([d[1] for d in data])
    x0_all = None if noise_source else jnp.stack([d[0] for d in data])
    nets = [VelocityNet(cfg["width"], key=jax.random.key(s)) for s in seeds]
    parts = [eqx.partition(n, eqx.is_inexact_array) for n in nets]
    static = parts[0][1]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *[p for p, _ in parts])
    opt = optax.adamw(cfg["lr"], weight_decay=cfg["weight_decay"])
    state = jax.vmap(opt.init)(params)
    sigma, is_ot = cfg["sigma"], method == "ot"

    def epoch(params, state, x0_set, x1_set, key):
        kp0, kp1, ks = jax.random.split(key, 3)
        idx1 = jax.random.permutation(kp1, n_train)[: steps_per_epoch * batch]
        idx0 = jax.random.permutation(kp0, n_train)[: steps_per_epoch * batch]

        def step(carry, inp):
            p, s = carry
            i0, i1, k = inp
            kn, kt, ke = jax.random.split(k, 3)
            x1 = x1_set[i1]
            x0 = jax.random.normal(kn, x1.shape) if noise_source else x0_set[i0]
            if is_ot:
                x0 = x0[ExactOT().permutation(x0, x1)]
            t = jax.random.uniform(kt, (batch, 1))
            xt = t * x1 + (1 - t) * x0 + sigma * jax.random.normal(ke, x1.shape)

            def loss(p):
                net = eqx.combine(p, static)
                return jnp.mean((jax.vmap(net)(t[:, 0], xt) - (x1 - x0)) ** 2)

            value, grads = jax.value_and_grad(loss)(p)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        inputs = (idx0.reshape(steps_per_epoch, batch), idx1.reshape(steps_per_epoch, batch),
                  jax.random.split(ks, steps_per_epoch))  # fmt: skip
        (params, state), losses = jax.lax.scan(step, (params, state), inputs)
        return params, state, losses.mean()

    @jax.jit
    def epochs(params, state, keys):  # keys: (epochs in this chunk, R)
        def body(carry, k):
            p, s = carry
            x0 = x1_all if x0_all is None else x0_all  # unused for a noise source
            p, s, loss = jax.vmap(epoch)(p, s, x0, x1_all, k)
            return (p, s), loss

        (params, state), losses = jax.lax.scan(body, (params, state), keys)
        return params, state, losses[-1]

    run_keys = jnp.stack([jax.random.key_data(jax.random.key(7000 + s)) for s in seeds])
    start, done, chunk = time.perf_counter(), 0, 50
    while done < cfg["epochs"]:
        n = min(chunk, cfg["epochs"] - done)
        keys = jax.vmap(_split_keys, in_axes=(0, None, None))(run_keys, done, n)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int and float
            params, state, loss = epochs(params, state, jnp.swapaxes(keys, 0, 1))
        done += n
        losses = np.round(np.asarray(loss), 3).tolist()
        elapsed = time.perf_counter() - start
        log(f"  {name} {method} epoch {done}/{cfg['epochs']}: loss {losses} ({elapsed:.0f} s)")
    seconds = time.perf_counter() - start
    trained = [eqx.combine(jax.tree.map(lambda x, r=r: x[r], params), static)
               for r in range(len(seeds))]  # fmt: skip
    return trained, data, seconds


def euler(net, x0, steps: int):
    """``steps`` Euler steps of ``net`` from t = 0 to 1 (the runner's torchdyn ``euler`` on
    ``linspace(0, 1, steps + 1)``); NFE = ``steps``."""
    dt = 1.0 / steps

    def body(x, i):
        t = i * jnp.asarray(dt, x.dtype)
        return x + dt * jax.vmap(net, in_axes=(None, 0))(t, x), None

    x, _ = jax.lax.scan(body, x0, jnp.arange(steps, dtype=x0.dtype))
    return x


def score(cfg: dict, net, data, seed: int) -> dict:
    """W2 between ``eval_n`` forward samples (from fresh noise, or the test source) and the
    ``eval_n``-point test target: the square root of the exact OT cost, by POT's ``emd2``
    when installed (``few_step.w2_squared``: about 20 s at 10,000 points, where SciPy's
    assignment can take many minutes), else SciPy's assignment; the same optimum."""
    _, _, x0_test, x1_test = data
    n = x1_test.shape[0]
    if x0_test is None:
        x0_test = jax.random.normal(jax.random.key(9000 + seed), (n, 2))
    x = np.asarray(jax.jit(euler, static_argnums=2)(net, x0_test, cfg["euler_steps"]))
    if not np.isfinite(x).all():
        return {"w2": None, "nfe": cfg["euler_steps"]}
    return {"w2": math.sqrt(w2_squared(x, np.asarray(x1_test))), "nfe": cfg["euler_steps"]}


def floor(cfg: dict, name: str) -> float:
    """W2 between two independent ``eval_n``-point target samples: the metric's own floor."""
    a = task(name, jax.random.key(55), cfg["eval_n"], cfg["eval_n"])
    b = task(name, jax.random.key(56), cfg["eval_n"], cfg["eval_n"])
    return math.sqrt(w2_squared(np.asarray(a[3]), np.asarray(b[3])))


def run(cfg: dict, log, partial=None) -> dict:
    out = {"settings": {**cfg, "departures": [
        "final weights scored (the runner tests its lowest-validation-loss checkpoint, "
        "checked every 10 epochs); no validation set drawn",
        "moons angles i.i.d. (sklearn uses a linspace); a fresh data set per seed (the "
        "runner's SKLearnDataModule reuses seed 42 for the data of every run)",
    ]}, "published_source": PUBLISHED_SOURCE, "not_run": NOT_RUN, "datasets": {}}  # fmt: skip
    seeds = list(range(cfg["seeds"]))
    for name in cfg["datasets"]:
        entry = {"w2_floor": floor(cfg, name), "methods": {}}
        out["datasets"][name] = entry
        log(f"T {name}: W2 floor (two {cfg['eval_n']}-point target samples) "
            f"{entry['w2_floor']:.4f}")  # fmt: skip
        for method in cfg["methods"]:
            nets, data, seconds = train(cfg, name, method, seeds, log)
            runs = [{"seed": s, **score(cfg, net, d, s)}
                    for s, net, d in zip(seeds, nets, data, strict=True)]  # fmt: skip
            summary = mean_sd(r["w2"] for r in runs)
            pub = PUBLISHED[name].get(method)
            within = None
            if pub is not None and summary["mean"] is not None:
                within = bool(abs(summary["mean"] - pub[0]) <= 2 * pub[1])
            entry["methods"][method] = {
                "runs": runs, "w2": summary, "published_w2": pub, "within_2sd": within,
                "train_seconds_all_seeds": seconds,
            }  # fmt: skip
            log(f"T {name} {method}: W2 {summary['mean']:.4f} +- {summary['sd'] or 0:.4f} "
                f"(SD over {summary['n']} seeds), published {pub}, within 2 sd: {within}; "
                f"{seconds:.0f} s for {len(seeds)} seeds (shared CPU)")  # fmt: skip
            if partial is not None:
                partial(out)
    return out


def table(result: dict) -> str:
    cfg = result["settings"]
    lines = [
        f"Tong et al. W2 rows ([SF]2M Table 2): W2 on {cfg['eval_n']} samples vs "
        f"{cfg['eval_n']} test points (sample metric), {cfg['euler_steps']} Euler steps "
        f"(NFE {cfg['euler_steps']}); published mean +- sd over 5 seeds | flowlab mean +- SD "
        f"over {cfg['seeds']} seeds",
        "| dataset (W2 floor) | method | published W2 | flowlab W2 | within 2 sd | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in result["datasets"].items():
        for method, m in entry["methods"].items():
            pub = m["published_w2"]
            w = m["w2"]
            flow = "—" if w["mean"] is None else f"{w['mean']:.3f} ± {w['sd'] or 0:.3f}"
            lines.append(
                f"| {name} ({entry['w2_floor']:.3f}) | {METHOD_NAMES[method]} | "
                f"{'—' if pub is None else f'{pub[0]:.3f} ± {pub[1]:.3f}'} | {flow} | "
                f"{'—' if m['within_2sd'] is None else 'yes' if m['within_2sd'] else 'no'} | "
                f"{m['train_seconds_all_seeds']:.0f} |"
            )
    below = [
        f"{name} {METHOD_NAMES[method]} (published {m['published_w2'][0]:.3f}, floor "
        f"{entry['w2_floor']:.3f})"
        for name, entry in result["datasets"].items()
        for method, m in entry["methods"].items()
        if m["published_w2"] is not None and m["published_w2"][0] < entry["w2_floor"]
    ]
    if below:
        lines.append(
            "Published mean below the floor (W2 between two independent target samples of "
            "this size): exact samples would score worse than the published figure under the "
            "protocol reconstructed here, so the published run likely used another (sample "
            "size or scaling; not established): " + "; ".join(below)
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds; what CI runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON path")
    parser.add_argument("--datasets", nargs="+", choices=("moons", "scurve",
                        "moons_to_8gaussians"))  # fmt: skip
    parser.add_argument("--methods", nargs="+", choices=("icfm", "ot"))
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--eval-n", type=int)
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the rows already in --out and replace only the (dataset, method) rows run now",
    )  # fmt: skip
    args = parser.parse_args(argv)
    cfg = dict(SMOKE if args.smoke else DEFAULT)
    for key in ("datasets", "methods", "seeds", "epochs", "eval_n"):
        if getattr(args, key) is not None:
            cfg[key] = tuple(getattr(args, key)) if key in ("datasets", "methods") else getattr(
                args, key)  # fmt: skip
    cfg["mode"] = "smoke" if args.smoke else "protocol"
    start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    old = json.loads(args.out.read_text()) if args.merge and args.out.exists() else None
    if old is not None:  # before any training: rows of another protocol are never mixed
        same_protocol(cfg, old["settings"], PROTOCOL, f"rows of {args.out.name}")

    def merged(part: dict) -> dict:
        """``part``'s rows over those of ``old`` (the JSON being merged into), if any."""
        if old is None:
            return part
        rows = {name: {**e, "methods": dict(e["methods"])} for name, e in old["datasets"].items()}
        for name, entry in part.get("datasets", {}).items():
            rows.setdefault(name, {**entry, "methods": {}})
            rows[name]["w2_floor"] = entry["w2_floor"]
            rows[name]["methods"].update(entry["methods"])
        runs = [*old.get("runs_merged", [old["settings"]]), part["settings"]]
        settings = {
            **part["settings"],
            "datasets": list(rows),  # every row the JSON holds
            "methods": sorted({m for e in rows.values() for m in e["methods"]}),
        }
        return {**old, **part, "settings": settings, "datasets": rows, "runs_merged": runs}

    result = {"jax": jax.__version__, "cpu_note": "timings on a CPU shared with other jobs"}
    result.update(run(cfg, log, lambda part: write_json(args.out, merged({**result, **part}))))
    result["wall_seconds"] = time.perf_counter() - start
    result = merged(result)
    write_json(args.out, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
