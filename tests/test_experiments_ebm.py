"""Smoke run of the energy-based-model experiment script (in process)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

import ebm_pinwheel  # noqa: E402

FIGURES = ["training", "energies", "samples", "density"]


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_ebm_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    returned = ebm_pinwheel.main(["--smoke", "--out", str(out), "--no-progress"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == returned["steps"] == 40
    assert metrics["likelihood_kind"] == "exact"
    assert metrics["holdout_nll_estimator"].startswith("exact: log Z by")
    for name in (
        "holdout_nll",
        "holdout_nll_se",
        "holdout_nll_converged_log_z",
        "log_z",
        "log_z_quadrature_error",
        "log_z_converged",
        "log_z_converged_error",
        "log_z_outside_mass_bound",
        "model_entropy",
        "sample_self_nll",
        "energy_distance",
        "energy_distance_oracle",
        "energy_distance_to_true",
        "energy_noise_floor",
        "bhattacharyya",
        "bhattacharyya_oracle",
        "true_entropy",
        "nll_gap_to_entropy",
        "kl_data_to_model",
        "train_time_s",
        "sample_time_s",
        "log_prob_time_s",
    ):
        assert _finite(metrics[name]), name
    assert _finite(metrics["kde_loglik"]["mean"]) and _finite(metrics["kde_loglik_oracle"]["mean"])
    assert metrics["holdout_nll_se"] > 0 and metrics["log_prob_nfe"] > 500
    # the reported log Z and the refined one agree to the reported error
    assert abs(metrics["log_z"] - metrics["log_z_converged"]) <= max(
        metrics["log_z_quadrature_error"], 1e-5
    )
    assert metrics["log_z_outside_mass_bound"] < 1e-6
    assert metrics["sample_nfe"] == metrics["sample_steps"] == 50
    assert metrics["hyperparameters"]["family"] == "ebm_cd"
    history = json.loads((out / "history.json").read_text())
    assert len(history["metrics"]["holdout_nll"]) == 2
    assert all(math.isfinite(v) for v in history["metrics"]["holdout_nll"])
    assert sorted(history["step_aux"]) == ["energy_data", "energy_model"]
    assert len(history["step_losses"]) == 40
    samples = np.load(out / "samples.npz")["samples"]
    assert samples.shape == (2000, 2) and np.isfinite(samples).all()
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    assert (out / "checkpoint.eqx").exists() and (out / "model.eqx").exists()


def test_ebm_experiment_rejects_bad_flags(tmp_path):
    with pytest.raises(SystemExit):
        ebm_pinwheel.main(["--smoke", "--out", str(tmp_path), "--objective", "dsm", "--alpha", "1"])
    with pytest.raises(SystemExit):
        ebm_pinwheel.main(["--smoke", "--out", str(tmp_path), "--dataset", "nope"])
