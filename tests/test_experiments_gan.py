"""Smoke run of the GAN experiment script (in process), and its collapse diagnostic."""

import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

import gan_pinwheel  # noqa: E402

from flowlab import evaluate as ev  # noqa: E402
from flowlab.metrics import energy_distance  # noqa: E402

FIGURES = ["training", "samples", "discriminator"]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_gan_experiment_smoke(tmp_path):
    out = tmp_path / "run"
    args = ["--smoke", "--out", str(out), "--no-progress"]
    returned = gan_pinwheel.main(args)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == returned["steps"] == 40
    assert metrics["likelihood_kind"] == "none"
    assert metrics["holdout_nll"] is None and metrics["holdout_nll_se"] is None
    for name in (
        "energy_distance",
        "energy_distance_oracle",
        "energy_distance_to_true",
        "energy_noise_floor",
        "energy_distance_over_floor",
        "w2",
        "w2_oracle",
        "mmd",
        "mmd_oracle",
        "bhattacharyya_oracle",
        "train_time_s",
        "sample_time_s",
        "true_entropy",
    ):
        assert _finite(metrics[name]), name
    assert metrics["energy_noise_floor"] > 0 and metrics["w2"] > 0
    assert metrics["sample_nfe"] == 1
    # KDE scores: numbers when the samples span the plane, else an explicit diagnostic
    if metrics["kde_loglik"] is not None:
        assert _finite(metrics["kde_loglik"]["mean"]) and _finite(metrics["bhattacharyya"])
    else:
        assert metrics["sample_diagnostic"].startswith(("collapsed", "degenerate"))
    assert _finite(metrics["kde_loglik_oracle"]["mean"])
    diag, diag_o = metrics["mode_diagnostics"], metrics["mode_diagnostics_oracle"]
    for d in (diag, diag_o):
        assert 0.0 <= d["coverage"] <= 1.0 and 0.0 <= d["precision"] <= 1.0
    assert diag_o["status"] == "ok" and diag_o["coverage"] > 0.9
    assert metrics["final_holdout"]["holdout_d_loss"] > 0
    assert metrics["hyperparameters"]["family"] == "gan"
    assert metrics["optimizer"]["optimizer"] == "two-player adam"
    assert "cpu_count" in metrics["machine"]

    samples = np.load(out / "samples.npz")["samples"]
    assert samples.shape == (2000, 2) and np.isfinite(samples).all()
    history = json.loads((out / "history.json").read_text())
    for name in ("d_loss", "g_loss", "d_real", "d_fake", "r1_penalty"):
        assert len(history["step_aux"][name]) == 40, name
    assert len(history["metrics"]["holdout_d_loss"]) == 2
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    assert (out / "checkpoint.eqx").exists() and (out / "model.eqx").exists()

    # the saved model rebuilds from its hyperparameters and draws the same samples (the
    # checkpoint's resume is tested in tests/test_gan.py; a second run here would double
    # the time)
    import jax

    import flowlab

    model, hp = flowlab.load_model(out / "model.eqx")
    key = jax.random.split(jax.random.key(hp["seed"]), 5)[3]  # pipeline.prepare's sample key
    np.testing.assert_array_equal(np.asarray(model.sample(key, 2000)), samples)


def test_collapsed_samples_get_a_flag_not_a_kde_number():
    rng = np.random.default_rng(0)
    true, fresh = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    holdout, train = rng.normal(size=(100, 2)), rng.normal(size=(400, 2))
    collapsed = np.tile(np.array([[0.3, -0.2]], np.float32), (400, 1))
    m = ev.sample_metrics(collapsed, holdout, train, full=True)
    # scored as flowlab.evaluate.evaluate scores them, then read as the GAN script does
    m["w2_oracle"] = ev.sample_metrics(true, holdout, train, full=True)["w2"]
    m["energy_distance_to_true"] = energy_distance(collapsed, true)
    m["diagnostics"] = ev.diagnostics(collapsed, true)
    m["diagnostics_oracle"] = ev.diagnostics(fresh, true)
    m.update(gan_pinwheel.collapse_flags(m))
    assert m["sample_diagnostic"].startswith("collapsed: 1 distinct point")
    assert m["kde_loglik"] is None and m["bhattacharyya"] is None
    assert m["mode_diagnostics"]["degenerate"] and m["mode_diagnostics"]["coverage"] < 0.1
    # distances that need no KDE are still numbers, and far above the oracle's
    assert m["energy_distance_to_true"] > 0.5 and m["w2"] > 5 * m["w2_oracle"]
    assert json.dumps(m, allow_nan=False)  # JSON-ready: no NaN or -9e30 stand-ins
