"""A smoke run of ``benchmarks/batched.py``: one family, R = 1 and 2, its rows and the JSON
it merges (another family's earlier rows kept)."""

import json
import math
from pathlib import Path

import batched

ROOT = Path(__file__).resolve().parent.parent


def test_batched_benchmark_smoke(tmp_path, capsys):
    out = tmp_path / "batched.json"
    out.write_text(json.dumps({"rows": [{"family": "gan", "runs": 1, "speedup": 1.0}]}))
    result = batched.main(
        ["--quick", "--families", "cnf_fm", "--runs", "1", "2", "--steps-scale", "0.1",
         "--out", str(out)]
    )  # fmt: skip
    rows = result["rows"]
    assert [r["runs"] for r in rows] == [1, 2] and {r["family"] for r in rows} == {"cnf_fm"}
    for r in rows:
        assert r["steps"] == 13
        assert math.isfinite(r["speedup"]) and r["speedup"] > 0
        assert r["batched_ms_per_step_per_run"] > 0 and r["batched_compile_s"] >= 0
    saved = json.loads(out.read_text())
    assert {r["family"] for r in saved["rows"]} == {"gan", "cnf_fm"}
    assert "| cnf_fm | 2 |" in capsys.readouterr().out


def test_grid_batches_on_cpu_only_where_the_saved_measurement_says_it_pays():
    """``grid.batch_family``: on an accelerator every family that can batch does; on a CPU at
    the default network and batch exactly those whose batched per-run step was measured at
    least as fast as one run after another at R = 3 and R = 12 (``batched_results.json``), so
    the flag follows the figures."""
    from lab import grid
    from lab.registry import FAMILIES

    rows = json.loads((ROOT / "benchmarks" / "batched_results.json").read_text())["rows"]
    speedup = {(r["family"], r["runs"]): r["speedup"] for r in rows}
    for fam, spec in FAMILIES.items():
        assert grid.batch_family(fam, "gpu") == spec.batched
        if (fam, 3) not in speedup:
            continue
        pays = speedup[fam, 3] >= 1.0 and speedup[fam, 12] >= 1.0
        assert grid.batch_family(fam, "cpu") == (spec.batched and pays), (fam, speedup[fam, 3])
    assert grid.batch_family("cnf_fm", "cpu") and not grid.batch_family("ddpm", "cpu")
    assert not grid.batch_family("cnf_mle", "gpu")
    # the measurement holds at the defaults' network and batch; --quick's smaller ones batch
    small = {**FAMILIES["ddpm"].defaults, "width": 64, "depth": 3, "batch_size": 512}
    assert grid.batch_family("ddpm", "cpu", small)
    assert not grid.batch_family("cnf_mle", "cpu", {**FAMILIES["cnf_mle"].defaults, "width": 32})
