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
from lab.common import (
    apply_flags,
    base_parser,
    check_dataset,
    default_out,
    nonnegative_float,
    positive_float,
    positive_int,
    training_flags,
)

import flowlab
from flowlab import plotting
from flowlab.evaluate import Likelihood
from flowlab.metrics import mean_and_se
from flowlab.vae import VAE, VARIANCES

FLAGS = (
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
)


def parse_args(argv=None):
    p = base_parser(__doc__.splitlines()[0], "pinwheel")
    p.add_argument("--latent-size", type=positive_int, default=None, help="latent dimension k")
    p.add_argument("--variance", choices=VARIANCES, default=None, help="decoder variance")
    p.add_argument(
        "--decoder-std", type=positive_float, default=None, help="initial/fixed decoder std"
    )
    p.add_argument(
        "--min-std", type=nonnegative_float, default=None, help="floor of the decoder std"
    )
    training_flags(p)
    p.add_argument(
        "--quadrature-size", type=positive_int, default=None, help="intervals per latent axis"
    )
    args = p.parse_args(argv)
    check_dataset(p, args.dataset)
    hp = apply_flags(registry.script_defaults("vae", smoke=args.smoke), args, FLAGS)
    default_out(args, f"vae_{args.dataset}")
    return args, hp


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


def refined_likelihood(model: VAE, holdout, hp: dict) -> Likelihood:
    """The exact hold-out NLL by quadrature over the 2D latent, the grid doubled until the
    mean estimated error is below ``quadrature_tol`` (kind *bound*: no number here)."""
    lik: dict = {"likelihood_kind": flowlab.likelihood_kind(model), "holdout_nll": None}
    if flowlab.likelihood_kind(model) != "exact":
        return Likelihood(lik, None)
    size, refinement = hp["quadrature_size"], []
    while True:
        (lp, err, stats), lp_s = _seconds(model.log_prob_with_error, holdout, size=size)
        log_prob, err = np.asarray(lp, np.float64), np.asarray(err, np.float64)
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
    return Likelihood(lik, log_prob)


def _keyed(values: dict) -> dict:
    # keys as strings, as metrics.json has them, so main()'s return value reads the same
    return {str(k): v for k, v in values.items()}


def bound_metrics(model: VAE, holdout, key, hp: dict, log_prob, quadrature_error) -> dict:
    """-ELBO (``elbo_samples`` draws per point) and its terms, -IWAE(K) for every K of
    ``iwae_ks``, and their paired gaps to the exact log-density and to each other."""
    k_elbo, k_iwae = jax.random.split(key)
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
        ordered = ordered and g >= -3 * g_se - quadrature_error
    return {
        "bound_name": VAE.bound_name,
        "holdout_neg_bound": neg_elbo,
        "holdout_neg_bound_se": neg_elbo_se,
        "holdout_neg_elbo": neg_elbo,
        "holdout_neg_elbo_se": neg_elbo_se,
        "holdout_neg_elbo_estimator": f"ELBO: reconstruction by {hp['elbo_samples']} "
        "reparameterised draws per point, KL in closed form",
        "holdout_reconstruction": float(-np.mean(np.asarray(terms["reconstruction"]))),
        "holdout_kl": float(np.mean(np.asarray(terms["kl"]))),
        "holdout_neg_iwae": _keyed(neg_iwae),
        "holdout_neg_iwae_se": _keyed(neg_iwae_se),
        "bounds_ordered": bool(ordered),
        "bounds_ordered_note": f"-ELBO >= -IWAE({k_max}) >= exact NLL, within 3 SE and the "
        "quadrature error",
        "holdout_exact_minus_iwae": _keyed({k: v[0] for k, v in gap_exact.items()}) or None,
        "holdout_exact_minus_iwae_se": _keyed({k: v[1] for k, v in gap_exact.items()}) or None,
        "holdout_exact_minus_iwae_note": "mean over hold-out points of log p(x) - IWAE_K(x) "
        "(>= 0 in expectation), paired standard error",
        f"holdout_iwae{k_max}_minus_elbo": gap_elbo[0],
        f"holdout_iwae{k_max}_minus_elbo_se": gap_elbo[1],
        "elbo_time_s": elbo_s,
        "iwae_time_s": iwae_s,
    }


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


def add_figures(r: pipeline.Run, means) -> None:
    """The training curve, the bounds against K, samples, decoder means and the density."""
    m, hp, model = r.metrics, r.hp, r.model
    name, entropy = r.args.dataset.replace("_", " "), m.get("true_entropy")
    r.figures["training"] = figures.training(
        r.history,
        title=f"VAE (latent {hp['latent_size']}) on {name}: negative ELBO",
        loss_label="negative ELBO (nats)",
        reference=entropy,
        metric_label=f"exact hold-out NLL (quadrature, {hp['track_quadrature_size'] + 1}^2 nodes)",
    )
    ks, gaps = hp["iwae_ks"], m["holdout_exact_minus_iwae_se"]
    r.figures["bounds"] = bounds_figure(
        ks,
        [m["holdout_neg_iwae"][str(k)] for k in ks],
        [(gaps or m["holdout_neg_iwae_se"])[str(k)] for k in ks],
        bool(gaps),
        m["holdout_neg_elbo"],
        m["holdout_nll"],
        m.get("quadrature_error_mean"),
        entropy,
        title=f"VAE on {name}: hold-out bounds tighten towards the exact NLL",
    )
    r.figures["samples"] = figures.overlay(
        r.samples,
        r.oracle,
        r.train,
        title=f"VAE samples (with decoder noise) vs true {name} samples",
        label="VAE samples, x = m(z) + σε",
    )
    r.figures["decoder_means"] = figures.overlay(
        means,
        r.oracle,
        r.train,
        title=f"VAE decoder means m(z), z ~ N(0, I) (no decoder noise) vs true {name}",
        label="decoder means m(z)",
    )
    if flowlab.likelihood_kind(model) == "exact":
        size = hp["density_quadrature_size"]
        coarse = types.SimpleNamespace(log_prob=lambda pts: model.log_prob(pts, size=size))
        r.figures["density"] = figures.density(
            coarse,
            r.args.dataset,
            r.train,
            n_grid=hp["density_grid"],
            title=f"VAE ({size + 1}^2-node quadrature)",
            nll=m["holdout_nll"],
            entropy=entropy,
        )


def main(argv=None) -> dict:
    args, hp = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    r = pipeline.run(
        "vae", args, hp, training_metrics=training_metrics, likelihood=refined_likelihood
    )
    model, m = r.model, r.metrics
    m.update(
        bound_metrics(
            model, r.holdout, r.keys["bound"], r.hp, r.log_prob, m.get("quadrature_error_mean")
        )
    )
    sigma = np.asarray(model.global_std())
    scale = np.asarray(model.standardizer().scale)
    m.update(
        decoder_std_standardised=sigma.tolist(),
        decoder_std_data=(sigma * scale).tolist(),
        samples_note="samples with the decoder noise, x = m(z) + sigma * eps, z ~ N(0, I); "
        "the metrics are of these; decoder means m(z) in samples.npz['decoder_means']",
        sample_nfe_note="one batched decoder pass",
        objective_config=repr(registry.build_objective(r.hp)),
    )
    means = np.asarray(model.decoder_mean(r.keys["sample"], pipeline.N_SAMPLES))
    r.arrays["decoder_means"] = means
    add_figures(r, means)
    written = pipeline.write(r, f"vae_{args.dataset}")
    pipeline.report(r, written)
    iw = ", ".join(f"K={k}: {m['holdout_neg_iwae'][str(k)]:.4f}" for k in r.hp["iwae_ks"])
    print(f"[vae] hold-out -ELBO {m['holdout_neg_elbo']:.4f} ± {m['holdout_neg_elbo_se']:.4f}; "
          f"-IWAE {iw}")  # fmt: skip
    if m["holdout_nll"] is not None:
        print(
            f"[vae] exact NLL {m['holdout_nll']:.4f} (quadrature error mean "
            f"{m['quadrature_error_mean']:.1e}, max {m['quadrature_error_max']:.1e}); "
            f"-ELBO >= -IWAE({max(r.hp['iwae_ks'])}) >= NLL: {m['bounds_ordered']}"
        )
    print(
        f"[vae] decoder std (data units) {np.round(sigma * scale, 4).tolist()}; samples in "
        "the overlay and sample metrics include the decoder noise"
    )
    return m


if __name__ == "__main__":
    sys.exit(main() and 0)
