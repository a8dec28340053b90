"""Smoke run of the diffusion experiment script: each output is written and sane."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "diffusion_pinwheel.py"
FIGURES = ["training", "samples", "density", "trajectories"]


def _run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_diffusion_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    args = ("--smoke", "--out", str(out), "--no-progress")
    proc = _run(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(out) in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for name in (
        "holdout_nll",
        "holdout_nll_se",
        "true_entropy",
        "nll_gap_to_entropy",
        "kde_loglik",
        "log_prob_nfe",
        "samplers",
        "train_time_s",
        "hyperparameters",
    ):
        assert name in metrics, name
    assert np.isfinite(metrics["holdout_nll"]) and metrics["holdout_nll_se"] > 0
    assert metrics["log_prob_nfe"] > 0
    labels = ["ode", "em_5", "pc_5", "ddpm_5", "ddim_10"]
    assert sorted(metrics["samplers"]) == sorted(labels)
    for label in labels:
        sm = metrics["samplers"][label]
        assert sm["nfe"] > 0 and sm["time_s"] > 0 and sm["finite"], label
    assert metrics["samplers"]["pc_5"]["nfe"] == 10  # a predictor and a corrector step each
    assert metrics["samplers"]["ddim_10"]["nfe"] == 10
    assert "DDIM" in metrics["samplers"]["ddim_10"]["sampler_object"]
    assert metrics["holdout_nll_estimator"].startswith("exact: adaptive Dopri5")
    samples = np.load(out / "samples.npz")
    assert sorted(samples.files) == sorted(["samples", *labels[1:]])
    for name in samples.files:
        assert samples[name].shape == (2000, 2) and np.isfinite(samples[name]).all(), name
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000
    # re-running resumes from the finished checkpoint: no retraining (one sampler this time)
    again = _run(*args, "--sampler", "ddim")
    assert again.returncode == 0, again.stderr[-3000:]
    metrics2 = json.loads((out / "metrics.json").read_text())
    assert metrics2["holdout_nll"] == pytest.approx(metrics["holdout_nll"], abs=1e-6)
    assert metrics2["hyperparameters"] == metrics["hyperparameters"]
    # no step was retrained: the training history (and its wall time) came back unchanged
    assert metrics2["train_time_s"] == metrics["train_time_s"]


@pytest.mark.parametrize(
    "args,message",
    [
        (("--dataset", "nope"), "unknown dataset 'nope'"),
        (("--sampler", "euler"), "invalid choice: 'euler'"),
        (("--sde", "xx"), "invalid choice: 'xx'"),
    ],
)
def test_diffusion_experiment_rejects_bad_flags(tmp_path, args, message):
    proc = _run("--smoke", "--out", str(tmp_path), *args)
    assert proc.returncode != 0
    assert message in proc.stderr
