"""``benchmarks/ddpm_budget.py``: a smoke run (its JSON and printed rows), and the saved
results agree with the DDPM's defaults and with the table in ``benchmarks/README.md``."""

import json
import math
from pathlib import Path

import ddpm_budget
from lab.registry import FAMILIES

ROOT = Path(__file__).resolve().parent.parent


def test_ddpm_budget_smoke(tmp_path, capsys):
    out = tmp_path / "ddpm.json"
    saved = ddpm_budget.main(["--smoke", "--configs", "128x4 b512 8k", "--out", str(out)])
    run = saved["runs"]["128x4 b512 8k"]
    assert run["hyperparameters"]["steps"] == 20 and run["train_s_per_run"] > 0
    for ds in ddpm_budget.DATASETS:
        d = run["datasets"][ds]["ddpm"]
        assert math.isfinite(d["neg_bound"]) and d["neg_bound_se"] > 0
        assert math.isfinite(d["kde_nll"]) and d["bhattacharyya"] >= 0
    assert json.loads(out.read_text())["runs"].keys() == {"128x4 b512 8k"}
    assert capsys.readouterr().out.count("128x4 b512 8k") == 2


def test_saved_ddpm_budget_matches_defaults_and_readme():
    saved = json.loads((ROOT / "benchmarks" / "ddpm_budget_results.json").read_text())
    default = saved["runs"]["256x4 b1024 20k (default)"]
    assert default["hyperparameters"] == FAMILIES["ddpm"].defaults
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    for name, run in saved["runs"].items():
        row = f"| {name.replace('x', '×', 1).split(' (')[0]}"
        line = next(ln for ln in readme.splitlines() if ln.startswith(row))
        for ds in ddpm_budget.DATASETS:
            d = run["datasets"][ds]["ddpm"]
            assert f"{d['neg_bound']:.3f} ± {d['neg_bound_se']:.3f}" in line
            assert f"{d['bhattacharyya']:.4f}" in line
