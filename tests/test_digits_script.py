"""CI smoke run of experiments/digits.py: every output written, numbers sane, resume exact."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent
ARGS = (
    "--smoke",
    "--no-progress",
    "--models",
    "gaussian,fm,fm_cond",
    "--guidance",
    "0,2",
    "--samples",
    "40",
)


def _run(out, *extra):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "digits.py"), *ARGS, *extra, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_digits_smoke(tmp_path):
    out = tmp_path / "digits"
    m = _run(out)
    g = m["models"]["gaussian"]
    # a Gaussian on the logit-transformed digits beats the uniform model's log2(17) = 4.087
    assert 1.5 < g["test_bpd"] < np.log2(17) and g["test_bpd_se"] > 0
    assert g["likelihood_kind"] == "exact" and g["estimator"].startswith("exact:")
    fm = m["models"]["fm"]
    assert fm["estimator"].startswith("exact:") and fm["log_prob_nfe"] > 0
    assert fm["hutchinson"]["estimator"].startswith("estimate:")
    assert np.isfinite(fm["test_bpd"]) and fm["nn_to_train"]["n"] == 40
    curve = m["models"]["fm_cond"]["guidance_curve"]
    assert [r["w"] for r in curve] == [0.0, 2.0] and all(0 <= r["accuracy"] <= 1 for r in curve)
    assert m["classifier"]["test_accuracy_on_real"] > 0.9
    assert m["split"] == {"train": 1257, "validation": 180, "test": 360}
    for name in ("samples_gaussian", "samples_fm", "samples_fm_cond", "guidance"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    # re-running resumes every trained model from its checkpoint: the same numbers
    again = _run(out, "--models", "fm")
    assert again["models"]["fm"]["test_bpd"] == pytest.approx(fm["test_bpd"], abs=1e-6)
    assert again["models"]["fm"]["train_time_s"] == fm["train_time_s"]
