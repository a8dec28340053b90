"""Smoke run of the comparison experiment and of the report written from its output."""

import csv
import math
import re
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
MODELS = {"cnf_mle", "cnf_fm", "diffusion_sde", "diffusion_ode", "oracle"}
FIGURES = ("training", "samples", "density", "nll")
REPORT_PAGES = 4


def _run(script, *args):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _count_pages(path: Path) -> int:
    try:
        import pypdf
    except ImportError:
        return len(re.findall(rb"/Type\s*/Page(?![s\w])", path.read_bytes()))
    return len(pypdf.PdfReader(path).pages)


def test_compare_smoke_and_report(tmp_path):
    out = tmp_path / "compare"
    _run("compare.py", "--smoke", "--datasets", "pinwheel", "--out", str(out), "--no-progress")

    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert COLUMNS <= set(reader.fieldnames)
    assert {r["model"] for r in rows} == MODELS
    assert {r["dataset"] for r in rows} == {"pinwheel"}
    for r in rows:
        assert math.isfinite(float(r["exact_nll"])), r
        gap = float(r["kde_nll"]) - float(r["exact_nll"])
        assert math.isclose(float(r["kde_gap"]), gap, rel_tol=1e-4, abs_tol=1e-4)
    by_model = {r["model"]: r for r in rows}
    # one diffusion checkpoint, two samplers: the same exact likelihood, different NFE
    assert by_model["diffusion_sde"]["exact_nll"] == by_model["diffusion_ode"]["exact_nll"]
    assert by_model["diffusion_sde"]["sample_nfe"] != by_model["diffusion_ode"]["sample_nfe"]
    assert (out / "summary.md").read_text().count("| oracle |") == 1
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    assert (out / "models" / "pinwheel" / "seed0" / "diffusion" / "model.eqx").exists()
    assert not (out / "models" / "pinwheel" / "seed0" / "diffusion_ode").exists()

    # re-running reuses the saved models: same exact NLLs, nothing retrained
    model_file = out / "models" / "pinwheel" / "seed0" / "cnf_fm" / "model.eqx"
    mtime = model_file.stat().st_mtime_ns
    _run("compare.py", "--smoke", "--datasets", "pinwheel", "--out", str(out), "--no-progress")
    assert model_file.stat().st_mtime_ns == mtime
    with open(out / "results.csv", newline="") as f:
        again = {r["model"]: r for r in csv.DictReader(f)}
    for m in MODELS:
        assert again[m]["exact_nll"] == by_model[m]["exact_nll"], m

    pdf, md = tmp_path / "report.pdf", tmp_path / "RESULTS.md"
    _run("report.py", "--results", str(out), "--pdf", str(pdf), "--results-md", str(md))
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _count_pages(pdf) == REPORT_PAGES
    text = md.read_text()
    assert "| cnf_fm |" in text and "Exact vs KDE" in text
    for name in FIGURES:
        assert f"{name}.png)" in text
