"""Why does VP diffusion's PF-ODE likelihood lag flow matching's on the digits? Short
screening runs of experiments/digits.py's diffusion, one change at a time, scored by the
exact-trace PF-ODE bits/dim on the 180 validation images (never the test set).

    python benchmarks/digits_diffusion_screen.py [--steps 3000] [--only a,b]
    # writes benchmarks/digits_diffusion_screen_results.json (merged with earlier runs)
    python benchmarks/digits_diffusion_screen.py --tails A/metrics.json B/metrics.json
    # per test image: each run's diffusion against its GMM (paired), median and tail

Every variant uses the script's defaults (width 256, depth 3, batch 256, lr 1e-3, 8
dequantisation copies, seed 0) except the one named change. Times are on a shared, loaded
2-core CPU: inflated, compare them with each other only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import digits as X  # noqa: E402

import flowlab  # noqa: E402
from flowlab.datasets import digits as D  # noqa: E402
from flowlab.metrics import mean_and_se  # noqa: E402
from flowlab.nn import MLPVectorField  # noqa: E402

OUT = Path(__file__).with_name("digits_diffusion_screen_results.json")


class LogUniformTimes(flowlab.Diffusion):
    """Screening only: t drawn log-uniformly on [eps, 1] (more weight near the data)."""

    def training_times(self, key, n):
        lo = jnp.log(self.sde.eps)
        return jnp.exp(jax.random.uniform(key, (n,), minval=lo, maxval=0.0))


class SigmaTime(eqx.Module):
    """Screening only: the network sees c(t) = log(sigma(t)) / 5 + 1 instead of t."""

    net: MLPVectorField
    sde: flowlab.VPSDE = eqx.field(static=True)

    def __call__(self, t, x):
        c = jnp.log(self.sde.marginal_std(t)) / 5.0 + 1.0
        return self.net(c, x)


VARIANTS = {
    # name: (description, overrides)
    "base": ("the script's default diffusion", {}),
    "fm": ("flow matching, same network and budget (reference)", {"fm": True}),
    "ema": ("EMA of the weights, decay 0.999", {"ema": 0.999}),
    "eps1e-2": ("train and evaluate with eps = 1e-2 (VPSDE(eps=1e-2))", {"eps": 1e-2}),
    "eps1e-4": ("train and evaluate with eps = 1e-4", {"eps": 1e-4}),
    "logtime": ("t ~ log-uniform on [eps, 1]", {"logtime": True}),
    "sigmatime": ("network conditioned on log sigma(t), not t", {"sigmatime": True}),
    "lr3e-3": ("peak learning rate 3e-3", {"lr": 3e-3}),
    "width512": ("width 512", {"width": 512}),
    "lw_ema": ("likelihood weighting + EMA 0.999", {"lw": True, "ema": 0.999}),
    "sig_ema": ("log sigma(t) input + EMA 0.999", {"sigmatime": True, "ema": 0.999}),
    "sig_ema_lw": (
        "log sigma(t) input + EMA 0.999 + likelihood weighting",
        {"sigmatime": True, "ema": 0.999, "lw": True},
    ),
    "sig_copies32": (
        "log sigma(t) input, 32 dequantisation draws per training image instead of 8",
        {"sigmatime": True, "copies": 32},
    ),
    "sig_ema_eps1e-2": (
        "log sigma(t) input + EMA 0.999, eps = 1e-2",
        {"sigmatime": True, "ema": 0.999, "eps": 1e-2},
    ),
}


def run(name, o, data, hp, steps):
    key = jax.random.key(0)
    k_net, k_fit = jax.random.split(key)
    width = o.get("width", hp["width"])
    net = MLPVectorField(64, width, hp["depth"], time_frequencies=X.TIME_FREQUENCIES, key=k_net)
    sde = flowlab.VPSDE(eps=o.get("eps", 1e-3))
    if o.get("fm"):
        model, obj = flowlab.CNF(net, standardize=data.std), flowlab.FlowMatching()
    else:
        if o.get("sigmatime"):
            net = SigmaTime(net, sde)
        cls = LogUniformTimes if o.get("logtime") else flowlab.Diffusion
        model = cls(net, sde, data_size=64, standardize=data.std)
        obj = flowlab.DenoisingScoreMatching(weighting="likelihood" if o.get("lw") else "std2")
    t0 = time.perf_counter()
    model, hist = flowlab.fit(
        model,
        obj,
        data.y_train,
        data.y_val,
        key=k_fit,
        steps=steps,
        batch_size=hp["batch_size"],
        eval_every=steps,
        optimizer=flowlab.default_optimizer(steps, o.get("lr", hp["lr"])),
        ema_decay=o.get("ema"),
        progress=False,
    )
    train_s = time.perf_counter() - t0
    res = {"description": VARIANTS[name][0], "steps": steps, "train_time_s": train_s}
    evals = {"": model}
    if name == "base" and not o.get("fm"):  # the same weights, other data times
        for e in (1e-2, 1e-4):
            evals[f"eval_eps{e:g}"] = flowlab.Diffusion(
                model.network, flowlab.VPSDE(eps=e), data_size=64, standardize=data.std
            )
    for tag, m in evals.items():
        t0 = time.perf_counter()
        lp, stats = m.log_prob_with_stats(data.y_val)
        bpd = D.bits_per_dim(np.asarray(lp, np.float64), data.ld_val)
        mean, se = mean_and_se(bpd)
        r = {
            "val_bpd": mean,
            "val_bpd_se": se,
            "nfe": int(stats.nfe),
            "eval_time_s": time.perf_counter() - t0,
        }
        if tag:
            res[tag] = r
        else:
            res.update(r)
        print(
            f"{name}{' ' + tag if tag else ''}: val {mean:.4f} +- {se:.4f} (SE, "
            f"{bpd.size} images), nfe {int(stats.nfe)}, train {train_s:.0f} s",
            flush=True,
        )
    return res


def tails(paths, name="diffusion"):
    """Test bits/dim of ``name`` in experiments/digits.py's metrics.json files: mean, the
    paired difference with the run's GMM, median, 95th percentile and maximum over images."""
    for path in paths:
        ms = json.loads(Path(path).read_text())["models"]
        x = np.asarray(ms[name]["test_bpd_per_image"])
        pd = X.paired_difference(ms[name], ms["gmm"])
        print(
            f"{path}: {name}, {ms[name]['steps']} steps: test {x.mean():.4f} +- "
            f"{ms[name]['test_bpd_se']:.4f} (SE, {x.size} images); minus GMM "
            f"{pd['mean']:+.4f} +- {pd['se']:.4f} (SE), z = {pd['z']:.2f}; median "
            f"{np.median(x):.4f}, 95th percentile {np.percentile(x, 95):.4f}, max {x.max():.4f}"
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--only", default=",".join(VARIANTS))
    p.add_argument("--tails", nargs="+", default=None, help="metrics.json files to summarise")
    p.add_argument("--model", default="diffusion", help="the model --tails summarises")
    args = p.parse_args()
    if args.tails:
        return tails(args.tails, args.model)
    hp = dict(X.DEFAULTS, seed=0, smoke=False)
    data = X.Data(hp)
    out = (
        json.loads(OUT.read_text())
        if OUT.exists()
        else {
            "note": "validation bits/dim (exact trace, PF-ODE / CNF, adaptive Dopri5 "
            "rtol=atol=1e-5), "
            "mean +- SE over the 180 validation images; times on a shared loaded 2-core CPU",
            "runs": {},
        }
    )
    for name in args.only.split(","):
        o = VARIANTS[name][1]
        d = X.Data(dict(hp, copies=o["copies"])) if "copies" in o else data
        r = run(name, o, d, hp, args.steps)
        out["runs"][f"{name}@{args.steps}"] = r
        OUT.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
