"""Smoke run of the comparison experiment: every family, each by its declared likelihood."""

import csv
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = {
    "dataset",
    "model",
    "seed",
    "exact_nll",
    "kde_nll",
    "kde_gap",
    "true_entropy",
    "kl_gap",
    "bhattacharyya",
    "w2",
    "energy",
    "mmd",
    "sample_nfe",
    "train_time_s",
    "sample_time_s",
}
MODELS = {
    "cnf_mle", "cnf_fm", "diffusion_sde", "diffusion_ode", "ddpm", "dsm", "vae", "ebm", "gan",
    "oracle",
}  # fmt: skip
KINDS = {"ddpm": "bound", "dsm": "none", "gan": "none"}  # the rest: exact
FIGURES = ("training", "samples", "density", "nll")


def _run(script, *args):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_compare_smoke_and_report(tmp_path):
    out = tmp_path / "compare"
    args = ("--smoke", "--datasets", "pinwheel", "--out", str(out), "--no-progress")
    _run("compare.py", *args, "--no-studies")  # course_project's smoke run covers the studies

    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert COLUMNS <= set(reader.fieldnames)
    assert {r["model"] for r in rows} == MODELS
    assert {r["dataset"] for r in rows} == {"pinwheel"}
    for r in rows:
        kind = KINDS.get(r["model"], "exact")
        assert r["likelihood_kind"] == kind, r
        assert math.isfinite(float(r["kde_nll"])), r
        if kind == "exact":
            assert math.isfinite(float(r["exact_nll"])), r
            gap = float(r["kde_nll"]) - float(r["exact_nll"])
            assert math.isclose(float(r["kde_gap"]), gap, rel_tol=1e-4, abs_tol=1e-4)
        else:
            assert r["exact_nll"] == "" and r["kl_gap"] == "", r
        # a bound where the model has one: DDPM (its only likelihood) and the VAE (its ELBO,
        # beside the exact quadrature marginal)
        assert (r["neg_bound"] != "") == (r["model"] in ("ddpm", "vae")), r
    assert "variational bound" in {r["model"]: r for r in rows}["ddpm"]["bound_name"]
    by_model = {r["model"]: r for r in rows}
    # one diffusion checkpoint, two samplers: the same exact likelihood, different NFE
    assert by_model["diffusion_sde"]["exact_nll"] == by_model["diffusion_ode"]["exact_nll"]
    assert by_model["diffusion_sde"]["sample_nfe"] != by_model["diffusion_ode"]["sample_nfe"]
    assert (out / "summary.md").read_text().count("| oracle |") == 1
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    assert (out / "models" / "pinwheel" / "seed0" / "diffusion" / "model.eqx").exists()
    assert not (out / "models" / "pinwheel" / "seed0" / "diffusion_ode").exists()
    # the typeset report of the whole grid, from the arrays the run saved
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "arrays" / "pinwheel_seed0.npz").exists()
    body = (out / "report_build" / "body.typ").read_text()
    for label in ("VAE", "EBM", "GAN", "DDPM"):
        assert label in body, label

    # re-running reuses the saved models: same exact NLLs, nothing retrained
    model_file = out / "models" / "pinwheel" / "seed0" / "cnf_fm" / "model.eqx"
    mtime = model_file.stat().st_mtime_ns
    rerun = ("cnf_fm", "diffusion_ode", "vae")
    _run("compare.py", *args, "--models", *rerun, "--no-studies", "--no-report")
    assert model_file.stat().st_mtime_ns == mtime
    with open(out / "results.csv", newline="") as f:
        again = {r["model"]: r for r in csv.DictReader(f)}
    assert set(again) == {*rerun, "oracle"}
    for m in again:
        assert again[m]["exact_nll"] == by_model[m]["exact_nll"], m
