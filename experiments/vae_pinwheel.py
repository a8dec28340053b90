"""Train a VAE on a 2D dataset (pinwheel by default): ELBO, IWAE and the exact likelihood.

    python experiments/vae_pinwheel.py                      # pinwheel, 2D latent
    python experiments/vae_pinwheel.py --dataset checkerboard
    python experiments/vae_pinwheel.py --latent-size 4      # bounds only (no quadrature)
    python experiments/vae_pinwheel.py --smoke              # a few seconds, for CI

Gaussian encoder q(z|x) and decoder p(x|z) = N(m(z), diag sigma^2) (MLPs, SiLU), prior
N(0, I) on a latent of dimension --latent-size (default 2); the decoder standard deviation
is one learned number per coordinate (--variance learned; or per_latent: output by the
decoder; or fixed), floored at --min-std (standardised units) so the likelihood cannot
collapse onto a curve. Trained on the negative ELBO (reparameterised, closed-form KL) by
flowlab.fit; the training curve is the course's: -ELBO on the training batches and on the
hold-out set (8 draws per point), with the exact hold-out NLL on a coarser grid beside it.

Hold-out likelihood, side by side (nats, data coordinates):

* -ELBO (100 draws per point), and its reconstruction and KL terms;
* -IWAE(K) for K = 1, 10, 100, 1000, 5000 (the bound tightening towards log p);
* the exact NLL, -log p(x) = -log of the integral of p(x|z) p(z) dz, by trapezoid
  quadrature over the 2D latent on [-7, 7]^2 (513 x 513 nodes, doubled up to 2049 x 2049
  until the mean estimated error is below 5e-3), with an error estimate per point
  (|grid - half grid| + a rigorous bound on the prior mass outside the box);
  it must satisfy -ELBO >= -IWAE(K) >= NLL, and IWAE(5000) ~ exact checks the quadrature.

Samples: the overlay and the KDE / Bhattacharyya / energy metrics use full samples WITH the
decoder noise (x = m(z) + sigma * eps); the decoder means m(z) are plotted separately and
saved as ``decoder_means`` in samples.npz.

Writes to --out (default results/vae_<dataset>/): metrics.json, samples.npz, history.json,
model.eqx, checkpoint.eqx (re-running resumes from it) and figures (training curves, the
bounds against K, samples with noise, decoder means, exact log-density vs the true one),
which full runs also copy to figures/.
"""

from __future__ import annotations

import sys
import time
import types

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from lab import figures, pipeline, registry
from lab.common import apply_flags, base_parser, check_dataset, default_out, machine
from lab.evaluate import reference_metrics, sample_metrics

import flowlab
from flowlab import datasets, plotting
from flowlab.metrics import mean_and_se
from flowlab.objectives import NegativeELBO
from flowlab.vae import VAE, VARIANCES

# Measured on pinwheel, seed 0: exact hold-out NLL 0.301 (true entropy -0.092), -IWAE(5000)
# 0.303, -ELBO 0.535; 233 s of CPU time on two (heavily shared) cores, compile included.
DEFAULTS = dict(
    steps=15_000,
    latent_size=2,
    width=128,
    depth=3,
    activation="silu",
    variance="learned",
    decoder_std=0.05,  # initial decoder std (standardised units): small, so the latent is used
    min_std=0.01,
    batch_size=512,
    lr=3e-3,
    ema_decay=None,
    eval_every=1000,
    num_samples=1,
    quadrature_size=512,
    quadrature_bound=7.0,
    quadrature_tol=5e-3,  # double the grid until the mean estimated error is below this
    quadrature_max_size=2048,
    track_quadrature_size=256,  # the exact NLL tracked during training (coarser grid)
    elbo_samples=100,
    iwae_ks=[1, 10, 100, 1000, 5000],
    density_quadrature_size=256,
    density_grid=120,
)
SMOKE = dict(
    steps=40,
    width=32,
    depth=2,
    batch_size=128,
    eval_every=20,
    quadrature_size=64,
    quadrature_max_size=128,
    track_quadrature_size=32,
    elbo_samples=10,
    iwae_ks=[1, 10, 100],
    density_quadrature_size=32,
    density_grid=30,
)


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument("--latent-size", type=int, default=None, help="latent dimension k")
    p.add_argument("--variance", choices=VARIANCES, default=None, help="decoder variance")
    p.add_argument("--decoder-std", type=float, default=None, help="initial/fixed decoder std")
    p.add_argument("--min-std", type=float, default=None, help="floor of the decoder std")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--quadrature-size", type=int, default=None, help="intervals per latent axis")
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = dict(DEFAULTS)
    if args.smoke:
        hp.update(SMOKE)
    apply_flags(
        hp,
        args,
        (
            "steps",
            "latent_size",
            "variance",
            "decoder_std",
            "min_std",
            "width",
            "depth",
            "batch_size",
            "lr",
            "eval_every",
            "quadrature_size",
        ),
    )
    default_out(args, f"vae_{args.dataset}")
    return args, hp


def build_model(hp: dict) -> VAE:
    """The VAE of a run from its hyperparameters (weights from the seed): the factory's
    ``vae`` family; what ``flowlab.load_model(path, build_model)`` needs."""
    return registry.build_model({**hp, "family": "vae"})


def training_metrics(model: VAE, holdout, hp: dict) -> dict:
    """The exact hold-out NLL on the coarser tracking grid at every evaluation (2D latent)."""
    if flowlab.likelihood_kind(model) != "exact":
        return {}
    size = hp["track_quadrature_size"]
    return {"holdout_nll": lambda m: -float(jnp.mean(m.log_prob(holdout, size=size)))}


def _seconds(fn, *args, **kwargs):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t


def bounds_figure(ks, neg_iwae, neg_iwae_se, paired, neg_elbo, nll, nll_err, entropy, *, title):
    """-ELBO and -IWAE(K) against K (log axis), the exact NLL and the true entropy as lines;
    the error bars are the paired standard errors of -IWAE(K) - NLL when ``paired``."""
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
    ks = np.asarray(ks, float)
    ax.errorbar(
        ks, neg_iwae, yerr=neg_iwae_se, fmt="o-", color=plotting.MODEL_COLOUR, ms=5, capsize=3,
        label="-IWAE(K), hold-out mean ± " + ("paired SE vs exact" if paired else "SE"),
    )  # fmt: skip
    ax.axhline(neg_elbo, color=plotting.HOLDOUT_COLOUR, ls="-.", lw=1.5,
               label=f"-ELBO = {neg_elbo:.3f}")  # fmt: skip
    if nll is not None:
        label = f"exact NLL (quadrature) = {nll:.4f}, est. error {nll_err:.1e}"
        ax.axhline(nll, color=plotting.DATA_COLOUR, lw=1.8, label=label)
    if entropy is not None:
        ax.axhline(entropy, color="k", ls="--", lw=1.2, label=f"true entropy = {entropy:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("importance samples K")
    ax.set_ylabel("hold-out nats (NLL scale: lower is tighter)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    family = "vae"
    train, holdout, keys, hp = pipeline.prepare(family, args, hp)
    model = build_model(hp)
    objective = NegativeELBO(num_samples=hp["num_samples"])
    ckpt = out / "checkpoint.eqx"
    if args.fresh:
        ckpt.unlink(missing_ok=True)
    n_params = flowlab.nn.num_parameters(pipeline.eqx_filter_trainable(model))
    print(
        f"[{family}] {args.dataset}: {hp['n_train']} train / {hp['n_holdout']} hold-out points; "
        f"VAE, latent {hp['latent_size']}, MLPs width {hp['width']} depth {hp['depth']}, "
        f"decoder std {hp['variance']} (floor {hp['min_std']}); {hp['steps']} steps of batch "
        f"{hp['batch_size']}; {n_params} trained parameters; likelihood: "
        f"{flowlab.likelihood_kind(model)}"
    )
    t0 = time.perf_counter()
    model, history = flowlab.fit(
        model,
        objective,
        train,
        holdout,
        key=keys["train"],
        steps=hp["steps"],
        batch_size=hp["batch_size"],
        optimizer=flowlab.default_optimizer(hp["steps"], hp["lr"]),
        eval_every=hp["eval_every"],
        ema_decay=hp["ema_decay"],
        metrics=training_metrics(model, holdout, hp),
        checkpoint=ckpt,
        hyperparameters=hp,
        progress=not args.no_progress,
    )
    fit_call_s = time.perf_counter() - t0
    history.save(out / "history.json")
    flowlab.save_model(out / "model.eqx", model, hp)
    holdout_np, train_np = np.asarray(holdout), np.asarray(train)
    k_elbo, k_iwae = jax.random.split(keys["bound"])

    # -- the exact likelihood by quadrature (2D latent) -------------------------------------
    lik: dict = {"likelihood_kind": flowlab.likelihood_kind(model), "holdout_nll": None}
    log_prob = None
    if flowlab.likelihood_kind(model) == "exact":
        # refine: double the grid until the mean estimated error is below the tolerance
        size, refinement = hp["quadrature_size"], []
        while True:
            (lp, err, stats), lp_s = _seconds(model.log_prob_with_error, holdout, size=size)
            log_prob = np.asarray(lp, np.float64)
            err = np.asarray(err, np.float64)
            refinement.append(
                {"size": size, "nll": float(-log_prob.mean()), "error_mean": float(err.mean())}
            )
            if err.mean() <= hp["quadrature_tol"] or 2 * size > hp["quadrature_max_size"]:
                break
            size *= 2
        nll, nll_se = mean_and_se(-log_prob)
        lik.update(
            holdout_nll=nll,
            holdout_nll_se=nll_se,
            holdout_nll_estimator=model.likelihood_label(size=size),
            quadrature_error_mean=float(err.mean()),
            quadrature_error_max=float(err.max()),
            quadrature_error_note="per-point estimate |grid - half grid| + prior tail bound; "
            "the error of the mean NLL is at most the mean error",
            quadrature_converged=bool(err.mean() <= hp["quadrature_tol"]),
            quadrature_refinement=refinement,
            quadrature_size=size,
            quadrature_bound=hp["quadrature_bound"],
            log_prob_nfe=int(stats.nfe),
            log_prob_steps=int(stats.num_steps),
            log_prob_time_s=lp_s,
            log_prob_time_note="one call at the final grid, compile included; nfe = latent "
            "nodes decoded",
        )

    # -- the bounds: ELBO and IWAE(K) --------------------------------------------------------
    terms, elbo_s = _seconds(model.elbo_terms, holdout, key=k_elbo, num_samples=hp["elbo_samples"])
    elbo = np.asarray(terms["reconstruction"] - terms["kl"], np.float64)
    neg_elbo, neg_elbo_se = mean_and_se(-elbo)
    neg_iwae, neg_iwae_se, iwae_s, iwae = {}, {}, {}, {}
    for k in hp["iwae_ks"]:
        iw, iwae_s[k] = _seconds(model.iwae, holdout, key=jax.random.fold_in(k_iwae, k), k=k)
        iwae[k] = np.asarray(iw, np.float64)
        neg_iwae[k], neg_iwae_se[k] = mean_and_se(-iwae[k])
    k_max = max(hp["iwae_ks"])
    # the gaps on the same points (paired: their standard errors exclude the spread of the
    # hold-out points' densities): log p - IWAE(K) and IWAE(K) - ELBO, in nats
    gap_exact = {}
    if log_prob is not None:
        gap_exact = {k: mean_and_se(log_prob - iwae[k]) for k in hp["iwae_ks"]}
    gap_elbo = mean_and_se(iwae[k_max] - elbo)
    # in NLL terms -ELBO >= -IWAE(K_max) >= NLL, each to within 3 paired standard errors
    # (and the quadrature's mean error)
    ordered = gap_elbo[0] >= -3 * gap_elbo[1]
    if gap_exact:
        g, g_se = gap_exact[k_max]
        ordered = ordered and g >= -3 * g_se - lik["quadrature_error_mean"]
    sigma = np.asarray(model.global_std())
    scale = np.asarray(model.standardizer().scale)

    # -- samples (with the decoder noise) and decoder means -----------------------------------
    (samples, sstats), sample_s = _seconds(
        model.sample_with_stats, keys["sample"], pipeline.N_SAMPLES
    )
    samples = np.asarray(samples)
    means = np.asarray(model.decoder_mean(keys["sample"], pipeline.N_SAMPLES))
    oracle = np.asarray(datasets.sample(args.dataset, keys["oracle"], pipeline.N_SAMPLES))
    sm = sample_metrics(samples, holdout_np, train_np)
    om = sample_metrics(oracle, holdout_np, train_np)
    ref = reference_metrics(args.dataset, holdout_np, log_prob)

    metrics = {
        "family": family,
        "dataset": args.dataset,
        "seed": args.seed,
        "steps": hp["steps"],
        **lik,
        "bound_name": VAE.bound_name,
        "holdout_neg_bound": neg_elbo,
        "holdout_neg_bound_se": neg_elbo_se,
        "holdout_neg_elbo": neg_elbo,
        "holdout_neg_elbo_se": neg_elbo_se,
        "holdout_neg_elbo_estimator": f"ELBO: reconstruction by {hp['elbo_samples']} "
        "reparameterised draws per point, KL in closed form",
        "holdout_reconstruction": float(-np.mean(np.asarray(terms["reconstruction"]))),
        "holdout_kl": float(np.mean(np.asarray(terms["kl"]))),
        # keys as strings, as metrics.json has them, so main()'s return value reads the same
        "holdout_neg_iwae": {str(k): v for k, v in neg_iwae.items()},
        "holdout_neg_iwae_se": {str(k): v for k, v in neg_iwae_se.items()},
        "bounds_ordered": bool(ordered),
        "bounds_ordered_note": f"-ELBO >= -IWAE({k_max}) >= exact NLL, within 3 SE and the "
        "quadrature error",
        "holdout_exact_minus_iwae": {str(k): v[0] for k, v in gap_exact.items()} or None,
        "holdout_exact_minus_iwae_se": {str(k): v[1] for k, v in gap_exact.items()} or None,
        "holdout_exact_minus_iwae_note": "mean over hold-out points of log p(x) - IWAE_K(x) "
        "(>= 0 in expectation), paired standard error",
        f"holdout_iwae{k_max}_minus_elbo": gap_elbo[0],
        f"holdout_iwae{k_max}_minus_elbo_se": gap_elbo[1],
        "decoder_std_standardised": sigma.tolist(),
        "decoder_std_data": (sigma * scale).tolist(),
        "elbo_time_s": elbo_s,
        "iwae_time_s": iwae_s,
        "samples_note": "samples with the decoder noise, x = m(z) + sigma * eps, z ~ N(0, I); "
        "the metrics below are of these; decoder means m(z) in samples.npz['decoder_means']",
        "sample_nfe": int(sstats.nfe),
        "sample_nfe_note": "one batched decoder pass",
        "sample_time_s": sample_s,
        "n_samples": pipeline.N_SAMPLES,
        "train_time_s": history.wall_time[-1],
        "train_steps_per_s": hp["steps"] / history.wall_time[-1],
        "fit_call_s": fit_call_s,
        **sm,
        "kde_loglik_oracle": om["kde_loglik"],
        "bhattacharyya_oracle": om["bhattacharyya"],
        "energy_distance_oracle": om["energy_distance"],
        "final_holdout": {k: v[-1] for k, v in history.metrics.items() if v},
        **ref,
        "hyperparameters": hp,
        "objective_config": repr(objective),
        "machine": machine(),
    }
    if "true_entropy" in ref and lik["holdout_nll"] is not None:
        metrics["nll_gap_to_entropy"] = lik["holdout_nll"] - ref["true_entropy"]

    # -- figures -----------------------------------------------------------------------------
    r = pipeline.Run(
        family, args, hp, model, history, train_np, holdout_np, oracle, samples, keys, metrics
    )
    r.arrays["decoder_means"] = means
    name = args.dataset.replace("_", " ")
    entropy = ref.get("true_entropy")
    r.figures["training"] = figures.training(
        history,
        title=f"VAE (latent {hp['latent_size']}) on {name}: negative ELBO",
        loss_label="negative ELBO (nats)",
        reference=entropy,
        metric_label=f"exact hold-out NLL (quadrature, {hp['track_quadrature_size'] + 1}^2 nodes)",
    )
    r.figures["bounds"] = bounds_figure(
        hp["iwae_ks"],
        [neg_iwae[k] for k in hp["iwae_ks"]],
        [gap_exact[k][1] if gap_exact else neg_iwae_se[k] for k in hp["iwae_ks"]],
        bool(gap_exact),
        neg_elbo,
        lik["holdout_nll"],
        lik.get("quadrature_error_mean"),
        entropy,
        title=f"VAE on {name}: hold-out bounds tighten towards the exact NLL",
    )
    r.figures["samples"] = figures.overlay(
        samples,
        oracle,
        train_np,
        title=f"VAE samples (with decoder noise) vs true {name} samples",
        label="VAE samples, x = m(z) + σε",
    )
    r.figures["decoder_means"] = figures.overlay(
        means,
        oracle,
        train_np,
        title=f"VAE decoder means m(z), z ~ N(0, I) (no decoder noise) vs true {name}",
        label="decoder means m(z)",
    )
    if flowlab.likelihood_kind(model) == "exact":
        size = hp["density_quadrature_size"]
        coarse = types.SimpleNamespace(log_prob=lambda pts: model.log_prob(pts, size=size))
        r.figures["density"] = figures.density(
            coarse,
            args.dataset,
            train_np,
            n_grid=hp["density_grid"],
            title=f"VAE ({size + 1}^2-node quadrature)",
            nll=lik["holdout_nll"],
            entropy=entropy,
        )
    written = pipeline.write(r, f"vae_{args.dataset}")
    pipeline.report(r, written)
    iw = ", ".join(f"K={k}: {neg_iwae[k]:.4f}" for k in hp["iwae_ks"])
    print(f"[{family}] hold-out -ELBO {neg_elbo:.4f} ± {neg_elbo_se:.4f}; -IWAE {iw}")
    if lik["holdout_nll"] is not None:
        print(
            f"[{family}] exact NLL {lik['holdout_nll']:.4f} (quadrature error mean "
            f"{lik['quadrature_error_mean']:.1e}, max {lik['quadrature_error_max']:.1e}); "
            f"-ELBO >= -IWAE({k_max}) >= NLL: {bool(ordered)}"
        )
    print(
        f"[{family}] decoder std (data units) {np.round(sigma * scale, 4).tolist()}; samples "
        "in the overlay and sample metrics include the decoder noise"
    )
    return metrics


if __name__ == "__main__":
    sys.exit(main() and 0)
