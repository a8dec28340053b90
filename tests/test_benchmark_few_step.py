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


def test_smoke_study_writes_json_and_tables(tmp_path, capsys):
    """The CI smoke of the NFE study (about 18 s of CPU): a mean flow from the 8gaussians
    source to the moons, through flowlab.fit and the FlowMap sampler, scored with its
    sample metrics and its exact likelihood."""
    fs = _module()
    out = tmp_path / "few_step.json"
    assert fs.main(["--smoke", "--skip-a", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    study = result["nfe_study"]["datasets"]["8gaussians_to_moons"]
    assert study["ed_floor_rms"] > 0
    mf = study["methods"]["meanflow"]["summary"]
    assert mf["1"]["nfe"]["mean"] == 1 and mf["adaptive"]["nfe"]["mean"] > 6
    assert np.isfinite(mf["nll_gap"]["mean"])  # KL(data || model) estimate, finite
    printed = capsys.readouterr().out
    assert "8gaussians_to_moons | meanflow" in printed and "Targets" in printed


@pytest.mark.slow  # part A: C2OT's loop (vmapped runs, OT on 1024 cut into 4 batches) + reflow
def test_smoke_c2ot_writes_json_and_tables(tmp_path, capsys):
    fs = _module()
    out = tmp_path / "few_step.json"
    assert fs.main(["--smoke", "--skip-b", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    a = result["c2ot"]["summary"]
    for method in ("fm", "ot"):
        for solver in ("euler1", "adaptive"):
            assert a[method][solver]["w2sq_mean"] > 0
            assert a[method][solver]["published_w2sq"] == list(fs.C2OT_PUBLISHED[method][solver])
    assert a["fm"]["euler1"]["nfe_mean"] == 1
    t5 = result["one_nfe_target"]
    assert t5["runs"][0]["euler1"]["nfe"] == 1 and t5["runs"][0]["2"]["nfe"] == 2
    printed = capsys.readouterr().out
    assert "C2OT Figure 1" in printed and "1-NFE target" in printed


def test_c2ot_loop_pairs_by_exact_ot_only_for_ot_runs():
    """One outer iteration of C2OT's loop for an FM and an OT run: both take four Adam
    steps (their parameters move), and the OT run's coupling is the exact assignment:
    its pairs' total squared distance is below the FM run's independent pairing."""
    fs = _module()
    models, _ = fs.c2ot_train([("fm", 0), ("ot", 0)], 4, lambda msg: None)
    assert len(models) == 2
    import equinox as eqx

    before = fs.SimpleNet(key=jax.random.key(1000))
    p0 = jax.tree_util.tree_leaves(eqx.filter(before, eqx.is_inexact_array))
    for m in models:
        p1 = jax.tree_util.tree_leaves(eqx.filter(m.vector_field, eqx.is_inexact_array))
        assert any(float(abs(a - b).max()) > 0 for a, b in zip(p0, p1, strict=True))
    prior = fs.GaussianMixture.from_dataset("torchcfm_8gaussians")
    x0 = prior.sample(jax.random.key(0), 1024)
    x1 = fs.datasets.sample("torchcfm_moons", jax.random.key(1), 1024)
    perm = fs.ExactOT().permutation(x0, x1)
    ot_cost = float(((x0[perm] - x1) ** 2).sum(-1).mean())
    assert ot_cost == pytest.approx(fs.w2_squared(x0, x1), rel=1e-5)
    assert ot_cost < 0.5 * float(((x0 - x1) ** 2).sum(-1).mean())


def _tmlr_module():
    spec = importlib.util.spec_from_file_location(
        "few_step_tmlr", ROOT / "benchmarks" / "few_step_tmlr.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["few_step_tmlr"] = module
    spec.loader.exec_module(module)
    return module


def test_tmlr_generators_have_the_runners_scales():
    """The runner's data, on 20,000 draws: moons x in [-3, 3] (2 cos a - 1, noise 0.1) and
    mean y = 2 * 0.25 = 0.5; the DSB moons standardised to scalar mean 0 and std 7; the DSB
    8gaussians at radius 12 with per-coordinate std 1.5 about each centre."""
    tm = _tmlr_module()
    m = np.asarray(tm.runner_moons(jax.random.key(0), 20_000))
    assert abs(m[:, 1].mean() - 0.5) < 0.02 and abs(m[:, 0].mean() - 0.0) < 0.03
    d = np.asarray(tm.dsb_moons(jax.random.key(1), 20_000))
    assert abs(d.mean()) < 1e-4 and abs(d.std() - 7.0) < 1e-3
    g = np.asarray(tm.dsb_8gaussians(jax.random.key(2), 20_000))
    r = np.linalg.norm(g, axis=1)
    assert abs(np.median(r) - 12.0) < 0.1
    angle = np.round(np.arctan2(g[:, 1], g[:, 0]) / (np.pi / 4)) * (np.pi / 4)
    centres = 12.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
    assert abs((g - centres).std() - 1.5) < 0.05


def test_tmlr_euler_is_exact_for_a_constant_field():
    """100 Euler steps of v = (1, -2) move every point by exactly (1, -2)."""
    tm = _tmlr_module()
    x0 = jax.random.normal(jax.random.key(0), (50, 2))
    x = tm.euler(lambda t, x: jax.numpy.asarray([1.0, -2.0]) + 0 * x, x0, 100)
    assert np.allclose(np.asarray(x - x0), [1.0, -2.0], atol=1e-5)


def test_tmlr_smoke_writes_json_and_table(tmp_path, capsys):
    """The CI smoke of part T (a few seconds): I-CFM and OT-CFM on moons -> 8gaussians, two
    seeds trained as one program, scored by W2 against the quoted [SF]2M rows."""
    tm = _tmlr_module()
    out = tmp_path / "tmlr.json"
    assert tm.main(["--smoke", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"]["moons_to_8gaussians"]
    assert entry["w2_floor"] > 0
    for method, published in (("icfm", [1.557, 0.407]), ("ot", [0.601, 0.027])):
        m = entry["methods"][method]
        assert m["published_w2"] == published and m["w2"]["n"] == 2
        assert all(np.isfinite(r["w2"]) and r["nfe"] == 4 for r in m["runs"])
    assert "| moons_to_8gaussians" in capsys.readouterr().out


def test_merge_c2ot_adds_runs_recomputes_the_summary_and_refuses_another_protocol():
    fs = _module()
    settings = dict(iterations=100, batch_size=256, w2_samples=50, lr=3e-4, runs=[])

    def run(seed, one, adaptive):
        return {"seed": seed, "train_seconds": 1.0, "euler1": {"w2sq": one, "nfe": 1},
                "adaptive": {"w2sq": adaptive, "nfe": 40}}  # fmt: skip

    base = {"settings": {**settings, "runs": ["ot seed 0"]}, "train_seconds_all_runs": 1.0,
            "runs": {"ot": [run(0, 0.06, 0.04)], "fm": []}}  # fmt: skip
    other = {"settings": {**settings, "runs": ["ot seed 1", "ot seed 2"]},
             "train_seconds_all_runs": 2.0,
             "runs": {"ot": [run(2, 0.10, 0.08), run(1, 0.08, 0.03)], "fm": []}}  # fmt: skip
    merged = fs.merge_c2ot(base, [other])
    assert [r["seed"] for r in merged["runs"]["ot"]] == [0, 1, 2]
    assert merged["settings"]["runs"] == ["ot seed 0", "ot seed 1", "ot seed 2"]
    one = merged["summary"]["ot"]["euler1"]
    assert one["runs"] == 3 and math.isclose(one["w2sq_mean"], 0.08)
    assert math.isclose(one["w2sq_sd_population"], float(np.std([0.06, 0.08, 0.10])))
    assert merged["merged"][0]["runs"] == ["ot seed 1", "ot seed 2"]
    with pytest.raises(ValueError, match="iterations"):
        fs.merge_c2ot(base, [{**other, "settings": {**other["settings"], "iterations": 8}}])


@pytest.mark.slow  # about a minute: two trainings compiled (4 steps each) and scored
def test_smoke_course_target_scores_against_the_floor_and_joins_the_targets(tmp_path):
    """``--course-target`` (part C) trains OT-FM and its reflow by part A''s recipe on a
    course dataset, scores them at 1 NFE against the noise floor, and its best joins the
    course target."""
    fs = _module()
    out = tmp_path / "few_step.json"
    assert fs.main(["--smoke", "--course-target", "--b-datasets", "pinwheel", "--out",
                    str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    entry = result["one_nfe_course"]["datasets"]["pinwheel"]
    assert entry["ed_floor_rms"] > 0 and set(entry["methods"]) == {"ot", "reflow1"}
    for m in entry["methods"].values():
        one = m["summary"]["1"]
        assert one["nfe"]["mean"] == 1 and np.isfinite(one["ed_over_floor"]["mean"])
    target = result["targets"]["course_1nfe_ed_within_3x_floor"]["pinwheel"]
    assert target["best_method"].endswith("(part C recipe)")


def test_merge_study_joins_datasets_in_study_order_and_refuses_another_protocol():
    fs = _module()
    settings = dict(seeds=3, steps=2500, batch_size=256, network="n", n_train=2000,
                    n_holdout=2000, nfes=[1, 2], reflow_pairs=8000)  # fmt: skip
    base = {"settings": settings, "not_run": {}, "datasets": {"spiral": {"a": 1},
            "pinwheel": {"a": 2}}}  # fmt: skip
    other = {"settings": dict(settings), "not_run": {"x": "why"},
             "datasets": {"checkerboard": {"a": 3}, "8gaussians_to_moons": {"a": 4},
                          "pinwheel": {"a": 5}}}  # fmt: skip
    merged = fs.merge_study(base, [other])
    assert list(merged["datasets"]) == ["8gaussians_to_moons", "spiral", "pinwheel", "checkerboard"]
    assert merged["datasets"]["pinwheel"] == {"a": 5} and merged["not_run"] == {"x": "why"}
    assert base["datasets"]["pinwheel"] == {"a": 2}  # the base is not modified
    with pytest.raises(ValueError, match="steps"):
        fs.merge_study(base, [{**other, "settings": {**settings, "steps": 1000}}])


def test_tmlr_table_names_a_published_mean_below_the_two_sample_floor():
    tm = _tmlr_module()

    def row(pub, mean):
        return {"published_w2": pub, "w2": {"mean": mean, "sd": 0.01},
                "within_2sd": abs(mean - pub[0]) <= 2 * pub[1],
                "train_seconds_all_seeds": 1.0}  # fmt: skip

    result = {"settings": {"eval_n": 100, "euler_steps": 100, "seeds": 5}, "datasets": {
        "a": {"w2_floor": 0.5, "methods": {"ot": row((0.4, 0.01), 0.6)}},
        "b": {"w2_floor": 0.1, "methods": {"icfm": row((0.2, 0.01), 0.21)}},
    }}  # fmt: skip
    text = tm.table(result)
    assert "| a (0.500) | OT-CFM | 0.400 ± 0.010 | 0.600 ± 0.010 | no |" in text
    assert "below the floor" in text and "a OT-CFM (published 0.400, floor 0.500)" in text
    assert "b I-CFM" not in text


def test_tmlr_merge_refuses_rows_of_another_protocol_before_training(tmp_path):
    tm = _tmlr_module()
    out = tmp_path / "tmlr.json"
    saved = json.loads((ROOT / "benchmarks" / "few_step_tmlr_results.json").read_text())
    out.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="seeds=2 into runs with seeds=5"):
        tm.main(["--smoke", "--merge", "--out", str(out)])
    assert json.loads(out.read_text()) == saved  # untouched


@pytest.mark.slow  # about a minute: three trainings compiled (4 steps each) and scored
def test_smoke_target_only_keeps_other_parts(tmp_path, capsys):
    """``--target-only`` trains flowlab's three 1-NFE candidates (OT-FM, its reflow, an OT
    mean flow), scores each at 1 NFE on C2OT's metric, and keeps the parts already in the
    JSON instead of overwriting them."""
    fs = _module()
    out = tmp_path / "few_step.json"
    kept = {"datasets": {}, "kept": True}
    out.write_text(json.dumps({"nfe_study": kept}))
    assert fs.main(["--smoke", "--target-only", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["nfe_study"] == kept
    fl = result["one_nfe_flowlab"]
    assert set(fl["methods"]) == {"ot_fm", "reflow1_ot_fm", "meanflow_ot"}
    for m in fl["methods"].values():
        assert m["runs"][0]["euler1"]["nfe"] == 1 and m["w2sq_1nfe_mean"] > 0
    assert fl["methods"]["ot_fm"]["w2sq_adaptive_mean"] > 0
    assert fl["best"] in fl["methods"] and fl["seeds_run"] == 1
    assert result["targets"]["flowlab_best_1nfe_w2sq_le_0.072"]["model"] == fl["best"]
