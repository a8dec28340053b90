"""A smoke run of ``benchmarks/batched.py``: one family, R = 1 and 2, its rows and the JSON
it merges (another family's earlier rows kept)."""

import json
import math

import batched


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
