"""CI smoke run of experiments/digits.py: every output written, numbers sane, resume exact,
and the paired test against the GMM computed from the per-image bits/dim.

The script runs in this process (its main), so the second, resuming run reuses the first's
compiled programs."""

import importlib
import json
import math

import numpy as np
import pytest

pytest.importorskip("sklearn")

ARGS = (
    "--smoke",
    "--no-progress",
    "--models",
    "gaussian,gmm,fm_cond",
    "--guidance",
    "0,2",
    "--samples",
    "40",
)


def _run(out, *extra):
    digits = importlib.import_module("digits")
    returned = digits.main([*ARGS, *extra, "--out", str(out)])
    m = json.loads((out / "metrics.json").read_text())
    assert m["models"].keys() == returned["models"].keys()
    return m


def test_digits_smoke(tmp_path):
    out = tmp_path / "digits"
    m = _run(out)
    g = m["models"]["gaussian"]
    # a Gaussian on the logit-transformed digits beats the uniform model's log2(17) = 4.087
    assert 1.5 < g["test_bpd"] < np.log2(17) and g["test_bpd_se"] > 0
    assert g["likelihood_kind"] == "exact" and g["estimator"].startswith("exact:")
    fm = m["models"]["fm_cond"]  # the CNF path: exact trace and Hutchinson both
    assert fm["estimator"].startswith("exact:") and fm["log_prob_nfe"] > 0
    assert fm["hutchinson"]["estimator"].startswith("estimate:")
    assert np.isfinite(fm["test_bpd"]) and fm["nn_to_train"]["n"] == 40
    assert fm["likelihood_note"].startswith("unconditional")
    curve = fm["guidance_curve"]
    assert [r["w"] for r in curve] == [0.0, 2.0] and all(0 <= r["accuracy"] <= 1 for r in curve)
    assert all(r["samples"] == 40 and r["finite"] == 40 for r in curve)
    assert m["classifier"]["test_accuracy_on_real"] > 0.9
    assert m["split"] == {"train": 1257, "validation": 180, "test": 360}
    for name in ("samples_gaussian", "samples_gmm", "samples_fm_cond", "guidance"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    # the paired test: recomputed here from the per-image bits/dim the script wrote
    ref = np.asarray(m["models"]["gmm"]["test_bpd_per_image"])
    assert "paired_vs_gmm" not in m["models"]["gmm"]
    for name in ("gaussian", "fm_cond"):
        mine = np.asarray(m["models"][name]["test_bpd_per_image"])
        assert mine.shape == ref.shape == (m["models"][name]["test_images"],)
        assert mine.mean() == pytest.approx(m["models"][name]["test_bpd"], abs=1e-5)
        d = mine - ref
        se = d.std(ddof=1) / math.sqrt(d.size)
        pd = m["models"][name]["paired_vs_gmm"]
        assert pd["mean"] == pytest.approx(d.mean(), abs=1e-5)
        assert pd["se"] == pytest.approx(se, rel=1e-3)
        assert pd["z"] == pytest.approx(d.mean() / se, rel=1e-3)
        assert pd["beats"] == (pd["z"] < -2.576)
        assert pd["p_one_sided"] == pytest.approx(0.5 * math.erfc(-pd["z"] / math.sqrt(2)))
    # re-running resumes every trained model from its checkpoint: the same numbers, and the
    # models not rerun (the GMM) are kept, so the paired test is recomputed against it
    again = _run(out, "--models", "fm_cond")
    fm2 = again["models"]["fm_cond"]
    assert fm2["test_bpd"] == pytest.approx(fm["test_bpd"], abs=1e-6)
    assert fm2["train_time_s"] == fm["train_time_s"]
    assert fm2["guidance_curve"] == curve
    assert fm2["paired_vs_gmm"]["mean"] == pytest.approx(fm["paired_vs_gmm"]["mean"], abs=1e-6)


def test_paired_difference_is_the_one_sample_test_of_the_differences():
    digits = importlib.import_module("digits")
    ref = {"test_bpd_per_image": [2.0, 2.5, 3.0, 2.2]}
    m = {"test_bpd_per_image": [1.9, 2.3, 2.95, 2.0]}  # differences -0.1 -0.2 -0.05 -0.2
    pd = digits.paired_difference(m, ref)
    d = np.array([-0.1, -0.2, -0.05, -0.2])
    assert pd["mean"] == pytest.approx(-0.1375)
    assert pd["se"] == pytest.approx(d.std(ddof=1) / 2)  # 0.0375
    assert pd["z"] == pytest.approx(-0.1375 / 0.0375) and pd["beats"]
    assert pd["p_one_sided"] == pytest.approx(0.000123, rel=0.01)  # Phi(-3.667)
    with pytest.raises(ValueError, match="same images"):
        digits.paired_difference({"test_bpd_per_image": [1.0, 2.0]}, ref)
