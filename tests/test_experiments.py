"""Smoke runs of every experiment script: each output is written and sane."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["training", "samples", "density", "trajectories"]


def _run(script, *args, cwd=ROOT):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("objective", ["fm", "mle"])
def test_cnf_experiment_smoke(tmp_path, objective):
    out = tmp_path / "run"
    proc = _run(
        "cnf_pinwheel.py", "--smoke", "--objective", objective, "--out", str(out), "--no-progress"
    )
    assert str(out) in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for name in (
        "holdout_nll",
        "holdout_nll_se",
        "true_entropy",
        "kde_loglik",
        "log_prob_nfe",
        "train_time_s",
        "hyperparameters",
    ):
        assert name in metrics, name
    assert np.isfinite(metrics["holdout_nll"]) and metrics["holdout_nll_se"] > 0
    assert metrics["log_prob_nfe"] > 0
    samples = np.load(out / "samples.npz")["samples"]
    assert samples.shape == (2000, 2) and np.isfinite(samples).all()
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000
    if objective == "mle":
        return  # the resume check below does not depend on the objective: run it once
    # re-running with the same flags resumes from the finished checkpoint: no retraining
    again = _run(
        "cnf_pinwheel.py", "--smoke", "--objective", objective, "--out", str(out), "--no-progress"
    )
    metrics2 = json.loads((out / "metrics.json").read_text())
    assert metrics2["holdout_nll"] == pytest.approx(metrics["holdout_nll"], abs=1e-6)
    # no step was retrained: the history (and its wall time) came back from the checkpoint
    assert metrics2["train_time_s"] == metrics["train_time_s"]
    assert "trained" in again.stdout


@pytest.mark.slow
def test_main_job_defaults_reach_the_target(tmp_path):
    """`python experiments/cnf_pinwheel.py` with its defaults (about 20 s on two cores):
    within 0.15 nats of pinwheel's true density (issue 13's target), measured as KL(data ||
    model), the model's hold-out NLL minus the true density's on the same 500 points (its
    expectation is NLL minus the entropy, with a paired SE of 0.02 instead of the NLL's 0.06:
    seed 0's hold-out set alone sits 0.054 nats above the entropy). Never below zero (3 SE)."""
    out = tmp_path / "run"
    _run(
        "cnf_pinwheel.py", "--out", str(out), "--figures-dir", str(tmp_path / "f"), "--no-progress"
    )
    m = json.loads((out / "metrics.json").read_text())
    kl, se = m["kl_data_to_model"], m["kl_data_to_model_se"]
    assert kl == pytest.approx(m["holdout_nll"] - m["oracle_holdout_nll"], abs=1e-9)
    assert -3 * se < kl < 0.15, (kl, se)


def test_ddpm_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    _run("ddpm_pinwheel.py", "--smoke", "--out", str(out), "--no-progress")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["likelihood_kind"] == "bound" and metrics["holdout_nll"] is None
    assert np.isfinite(metrics["holdout_neg_bound"]) and metrics["holdout_neg_bound_se"] > 0
    assert "variational bound" in metrics["bound_name"]
    assert metrics["samplers"]["ancestral"]["nfe"] == 1000
    assert metrics["samplers"]["ddim_20"]["nfe"] == 20
    history = json.loads((out / "history.json").read_text())
    assert len(history["metrics"]["holdout_neg_bound"]) == len(history["step"]) == 2
    assert np.load(out / "samples.npz")["samples"].shape == (2000, 2)


def test_single_noise_dsm_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    _run("dsm_pinwheel.py", "--smoke", "--out", str(out), "--no-progress")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["likelihood_kind"] == "none" and metrics["holdout_nll"] is None
    assert metrics["sample_nfe"] == 50 and "Langevin" in metrics["sampler"]
    assert np.isfinite(metrics["kde_loglik"]["mean"]) and metrics["sample_diagnostic"] == "ok"


def test_experiment_rejects_unknown_dataset(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "cnf_pinwheel.py"),
            "--smoke",
            "--dataset",
            "nope",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "unknown dataset 'nope'" in proc.stderr and "pinwheel" in proc.stderr


def test_one_sampler_vocabulary_serves_every_script():
    """lab.samplers builds the objects the scripts used to build themselves; the diffusion
    script's ``em`` is the vocabulary's ``sde``, and the studies' labels are its labels."""
    from lab import samplers, studies
    from lab.registry import ROWS

    from flowlab.samplers import DDIM, Ancestral, EulerMaruyama, PredictorCorrector

    assert samplers.make("em", 10) == samplers.make("sde", 10) == EulerMaruyama(steps=10)
    assert samplers.make("pc", 7) == PredictorCorrector(steps=7)
    assert samplers.make("ddpm") == Ancestral() and samplers.make("ddim", 5) == DDIM(steps=5)
    assert ROWS["diffusion_sde"][1]({"sde_steps": 30}) == EulerMaruyama(steps=30)
    assert studies.SAMPLER_LABELS == {n: samplers.label(n) for n in studies.SAMPLER_LABELS}
    with pytest.raises(ValueError, match="unknown sampler"):
        samplers.make("rk4", 10)
