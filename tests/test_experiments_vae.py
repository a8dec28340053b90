"""Smoke run of the VAE experiment script (in process)."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

import vae_pinwheel  # noqa: E402

import flowlab  # noqa: E402

FIGURES = ["training", "bounds", "samples", "decoder_means", "density"]


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_vae_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    figures_dir = tmp_path / "figures"
    returned = vae_pinwheel.main(
        ["--smoke", "--out", str(out), "--no-progress", "--figures-dir", str(figures_dir)]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == returned["steps"] == 40
    assert metrics["likelihood_kind"] == "exact" and metrics["bound_name"] == "ELBO"
    assert metrics["holdout_nll_estimator"].startswith("exact: trapezoid quadrature")
    for name in (
        "holdout_nll",
        "holdout_nll_se",
        "quadrature_error_mean",
        "quadrature_error_max",
        "holdout_neg_elbo",
        "holdout_neg_elbo_se",
        "holdout_reconstruction",
        "holdout_kl",
        "energy_distance",
        "energy_distance_oracle",
        "bhattacharyya",
        "bhattacharyya_oracle",
        "true_entropy",
        "nll_gap_to_entropy",
        "kl_data_to_model",
        "holdout_iwae100_minus_elbo",
        "train_time_s",
        "sample_time_s",
        "log_prob_time_s",
    ):
        assert _finite(metrics[name]), name
    for name in ("holdout_neg_iwae", "holdout_exact_minus_iwae", "holdout_exact_minus_iwae_se"):
        assert set(metrics[name]) == {"1", "10", "100"}, name
        assert all(_finite(v) for v in metrics[name].values()), name
    assert _finite(metrics["kde_loglik"]["mean"]) and _finite(metrics["kde_loglik_oracle"]["mean"])
    # the untrained smoke model's integrand is not resolved on 65^2 nodes: one refinement
    assert [r["size"] for r in metrics["quadrature_refinement"]] == [64, 128]
    assert metrics["quadrature_size"] == 128 and metrics["log_prob_nfe"] == 129**2
    assert metrics["sample_nfe"] == 1
    # the numbers are each other's: -ELBO = reconstruction + KL, bounds above the exact NLL
    assert math.isclose(
        metrics["holdout_neg_elbo"],
        metrics["holdout_reconstruction"] + metrics["holdout_kl"],
        rel_tol=1e-5,
    )
    assert metrics["holdout_neg_elbo"] > metrics["holdout_nll"]
    assert isinstance(metrics["bounds_ordered"], bool)
    samples = np.load(out / "samples.npz")
    assert samples["samples"].shape == (2000, 2) and samples["decoder_means"].shape == (2000, 2)
    assert np.isfinite(samples["samples"]).all()
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [20, 40] and set(history["step_aux"]) == {"reconstruction", "kl"}
    assert len(history["metrics"]["holdout_nll"]) == 2
    for fig in FIGURES:
        assert (out / f"{fig}.png").stat().st_size > 1000, fig
    assert not figures_dir.exists()  # smoke runs do not copy figures
    # the saved model reloads and gives the same exact likelihood
    model, hp = flowlab.load_model(out / "model.eqx")
    holdout = flowlab.datasets.split(hp["dataset"], _data_key(hp["seed"]))[1]
    np.testing.assert_allclose(
        -float(np.mean(np.asarray(model.log_prob(holdout, size=metrics["quadrature_size"])))),
        metrics["holdout_nll"],
        rtol=1e-5,
    )
    # the checkpoint holds the finished run (a re-run resumes from it instead of training)
    header = flowlab.read_header(out / "checkpoint.eqx")
    assert header["step"] == 40 and header["hyperparameters"]["family"] == "vae"


@pytest.mark.slow
def test_vae_default_run_reaches_the_target(tmp_path):
    """The default pinwheel run (about 4 minutes on two cores): exact hold-out NLL within 0.6
    nats of the true entropy and never below it (3 SE), with -ELBO >= -IWAE(5000) >= NLL."""
    m = vae_pinwheel.main(
        ["--out", str(tmp_path / "run"), "--figures-dir", str(tmp_path / "figs"), "--no-progress"]
    )
    h, nll, se = m["true_entropy"], m["holdout_nll"], m["holdout_nll_se"]
    assert h - 3 * se < nll < h + 0.6, (nll, se, h)
    assert m["quadrature_error_mean"] < 1e-3 and m["quadrature_size"] == 512
    assert m["holdout_neg_elbo"] > m["holdout_neg_iwae"]["5000"] and m["bounds_ordered"]
    gap, gap_se = m["holdout_exact_minus_iwae"]["5000"], m["holdout_exact_minus_iwae_se"]["5000"]
    assert -3 * gap_se - m["quadrature_error_mean"] < gap < 0.05
    assert m["holdout_exact_minus_iwae"]["1"] > 5 * gap  # the bound tightens with K


def _data_key(seed):
    import jax

    return jax.random.split(jax.random.key(seed), 5)[0]


@pytest.mark.parametrize("smoke", [False, True])
def test_grid_tracks_and_draws_the_vae_on_the_scripts_coarser_grid(smoke):
    """The grid's tracked hold-out NLL and density figure use the quadrature the VAE script
    uses for them (half the grid per axis), so a family's curves agree across the two."""
    from lab import registry

    hp = registry.script_defaults("vae", smoke=smoke)
    model = SimpleNamespace(quadrature_size=hp["quadrature_size"])  # all the rule reads
    kw = registry.coarse_log_prob("vae", model)
    assert kw == {"size": hp["track_quadrature_size"]} == {"size": hp["density_quadrature_size"]}
    assert kw["size"] < hp["quadrature_size"]
    assert registry.coarse_log_prob("cnf_fm", model) == {}
