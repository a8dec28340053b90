"""benchmarks/few_step.py: its W2^2 against a closed form, C2OT's network size, and a smoke
run that writes the JSON and the tables."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("few_step", ROOT / "benchmarks" / "few_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["few_step"] = module
    spec.loader.exec_module(module)
    return module


def test_w2_squared_of_a_translation_is_the_shift_squared():
    """W2^2(X, X + v) = |v|^2 exactly (the identity assignment is optimal for a shift)."""
    fs = _module()
    x = np.random.default_rng(0).standard_normal((300, 2))
    v = np.array([0.3, -1.2])
    assert abs(fs.w2_squared(x, x + v) - float(v @ v)) < 1e-10
    y = np.random.default_rng(1).standard_normal((300, 2))
    assert fs.w2_squared(x, y) > 0.0
    assert math.isclose(fs.w2_squared(x, y), fs.metrics.wasserstein2(x, y) ** 2, rel_tol=1e-12)


def test_simplenet_has_c2ots_parameter_count():
    """C2OT's SimpleNet(2, 128, 3): 2*128+128 + 128+128 + 3*(128*512+512 + 512*128+128)
    + 128*2+2 = 396,034 parameters."""
    import equinox as eqx

    fs = _module()
    net = fs.SimpleNet(key=jax.random.key(0))
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    assert sum(leaf.size for leaf in leaves) == 396_034
    assert net(0.5, np.zeros(2, np.float32)).shape == (2,)


@pytest.mark.slow  # about 40 s alone, 100 s on a shared CPU (mostly compilation)
def test_smoke_run_writes_json_and_tables(tmp_path, capsys):
    fs = _module()
    out = tmp_path / "few_step.json"
    assert fs.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    a = result["c2ot"]["summary"]
    for method in ("fm", "ot"):
        for solver in ("euler1", "adaptive"):
            assert a[method][solver]["w2sq_mean"] > 0
            assert a[method][solver]["published_w2sq"] == list(fs.C2OT_PUBLISHED[method][solver])
    assert a["fm"]["euler1"]["nfe_mean"] == 1
    study = result["nfe_study"]["datasets"]["gaussian_mixture"]
    assert study["ed_floor_rms"] > 0
    fm = study["methods"]["fm"]["summary"]
    assert fm["1"]["nfe"]["mean"] == 1 and fm["adaptive"]["nfe"]["mean"] > 6
    assert np.isfinite(fm["nll_gap"]["mean"]) and fm["nll_gap"]["mean"] > -0.05
    printed = capsys.readouterr().out
    assert "C2OT Figure 1" in printed and "Targets" in printed
