"""The equal-compute study: its stopping rule, a smoke run through the command line (two
families, one seed, 1.5 s each) that re-running reuses, and the report's tests and text on
a study with known numbers."""

import json
import math
import re
import shutil
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lab import registry, results, studies
from lab.report import equal_compute as section
from lab.report.text import Markup
from lab.studies import equal_compute

import flowlab
from flowlab import datasets


def test_stop_after_ends_at_the_first_check_at_or_past_the_budget():
    model = eqx.nn.Linear(2, 2, key=jax.random.key(0))
    data = jax.random.normal(jax.random.key(1), (64, 2))

    def loss(m, batch, key):
        return jnp.mean((jax.vmap(m)(batch) - batch) ** 2)

    def slow(m):  # every check takes at least 50 ms, so a 0.5 s budget spans several
        time.sleep(0.05)
        return 0.0

    kw = dict(key=jax.random.key(2), steps=10_000, batch_size=8, eval_every=5, progress=False)
    flowlab.fit(model, loss, data, data, **kw, callback=lambda s, h: True)  # compile first
    budget = 0.5
    _, hist = flowlab.fit(
        model, loss, data, data, **kw, metrics={"slow": slow},
        callback=equal_compute.stop_after(budget),
    )  # fmt: skip
    wall = hist.wall_time
    assert len(wall) >= 3
    assert wall[-1] >= budget > wall[-2]  # the first check at or past the budget
    assert hist.step == [5 * (i + 1) for i in range(len(wall))]


def test_study_keeps_every_default_but_the_check_interval():
    for fam in equal_compute.FAMILIES:
        hp, defaults = equal_compute.study_hp(fam), registry.FAMILIES[fam].defaults
        assert {k: v for k, v in hp.items() if k != "eval_every"} == {
            k: v for k, v in defaults.items() if k != "eval_every"
        }
        assert hp["eval_every"] == round(0.01 * defaults["steps"])  # 100 checks a default run
    smoke = equal_compute.study_hp("cnf_fm", smoke=True)
    assert smoke["steps"] == registry.FAMILIES["cnf_fm"].defaults["steps"]  # the clock stops it
    assert smoke["width"] == equal_compute.SMOKE_HP["width"]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("equal_compute")
    study = studies.main(["--equal-compute", "--smoke", "--results", str(out)])
    return out, study


def test_smoke_runs_stop_on_the_clock_and_are_evaluated_as_the_grid_does(smoke_study):
    out, study = smoke_study
    budget = equal_compute.SMOKE_SECONDS
    assert study["seconds"] == budget and study["seeds"] == [0]
    assert study["families"] == list(equal_compute.SMOKE_FAMILIES)
    root = out / "studies" / "equal_compute"
    for run in study["runs"]:
        folder = root / "models" / "pinwheel" / "seed0" / run["family"]
        hist = flowlab.History.load(folder / "history.json")
        wall = hist.wall_time
        # the recorded time lies in [T, T + the last check interval]
        assert run["train_seconds"] == wall[-1]
        assert run["last_interval_s"] == pytest.approx(
            wall[-1] - (wall[-2] if len(wall) > 1 else 0)
        )
        assert budget <= run["train_seconds"] <= budget + run["last_interval_s"]
        assert len(wall) == 1 or wall[-2] < budget
        assert run["steps"] == hist.step[-1] == run["eval_every"] * len(hist.step)
        assert not run["finished_schedule"] and run["steps"] < run["default_steps"]
    # evaluated by the grid: the saved CNF's exact NLL of the hold-out set is the table's
    rec = {r["model"]: r for r in study["records"]}
    assert set(rec) == {"cnf_fm", "gan", "oracle"}
    model, _ = flowlab.load_model(root / "models" / "pinwheel" / "seed0" / "cnf_fm" / "model.eqx")
    _, holdout = datasets.split("pinwheel", jax.random.split(jax.random.key(0), 5)[0])
    nll = -float(np.mean(np.asarray(model.log_prob(holdout), np.float64)))
    assert rec["cnf_fm"]["exact_nll"] == pytest.approx(nll, abs=1e-4)
    assert rec["gan"]["exact_nll"] is None and rec["gan"]["likelihood_kind"] == "none"
    assert rec["oracle"]["exact_nll"] == pytest.approx(
        -np.mean(datasets.log_prob("pinwheel", np.asarray(holdout))), abs=1e-6
    )
    for row in ("cnf_fm", "gan"):
        assert rec[row]["train_steps"] == next(
            r["steps"] for r in study["runs"] if r["family"] == row
        )
        assert math.isfinite(rec[row]["energy"]) and rec[row]["energy"] > 0
    assert study["details"]["seed0/oracle"]["energy_noise_floor"] > 0
    saved = json.loads((root / "equal_compute.json").read_text())
    assert saved["records"] == study["records"]


def test_rerunning_reuses_every_run_and_evaluation(smoke_study):
    out, study = smoke_study
    root = out / "studies" / "equal_compute"
    files = [
        *root.glob("models/**/*.eqx"),
        *root.glob("models/**/*.json"),
        *root.glob("evaluations/*"),
    ]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = equal_compute.run(out, smoke=True, log=lambda s: None)
    assert all(r["reused"] for r in again["runs"])
    assert again["records"] == study["records"]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing trained or rewritten


def test_a_new_budget_retrains(tmp_path, smoke_study):
    out, _ = smoke_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    study = equal_compute.run(copy, smoke=True, seconds=1.0, families=["gan"], log=lambda s: None)
    assert not study["runs"][0]["reused"] and study["runs"][0]["seconds"] == 1.0
    assert study["runs"][0]["train_seconds"] >= 1.0


# -- the report: tests and text on a study with known numbers ---------------------------------

ENERGY = {  # row -> energy distance per seed
    "cnf_fm": [1.0e-3, 2.0e-3, 3.0e-3],
    "gan": [1.5e-3, 2.1e-3, 3.6e-3],  # + [0.5, 0.1, 0.6]e-3: mean 0.4e-3, SE 0.1528e-3: worse
    "dsm": [1.2e-3, 1.8e-3, 3.1e-3],  # + [0.2, -0.2, 0.1]e-3: mean 0.0333e-3, SE 0.120e-3: tie
}
NLL = {"cnf_fm": [0.10, 0.20, 0.15], "vae": [0.40, 0.50, 0.45]}  # + 0.3, SE 0: worse
BOUND = {"ddpm": [0.05, 0.12, 0.06]}  # - [0.05, 0.08, 0.09]: below CNF's NLL


def fake_study(seeds=(0, 1, 2)) -> dict:
    rows = ["cnf_fm", "vae", "ddpm", "dsm", "gan"]
    records = []
    for s in seeds:
        for row in [*rows, "oracle"]:
            records.append(
                dict(
                    model=row,
                    seed=s,
                    exact_nll=NLL.get(row, [None] * 3)[s] if row != "oracle" else -0.09,
                    exact_nll_se=0.05,
                    neg_bound=BOUND.get(row, [None] * 3)[s],
                    neg_bound_se=0.06,
                    energy=ENERGY.get(row, [4e-3, 5e-3, 6e-3])[s] if row != "oracle" else 1e-4,
                )
            )
    runs = [
        dict(family=f, seed=s, train_seconds=20.3 + 0.1 * s, last_interval_s=0.4,
             first_check_s=3.0, steps=1000 * (s + 1), default_steps=10_000,
             finished_schedule=False, check_seconds=0.5, load_average=[1.0, 2.0])
        for s in seeds for f in rows
    ]  # fmt: skip
    return dict(
        dataset="pinwheel",
        seconds=20.0,
        seeds=list(seeds),
        families=rows,
        rows={r: r for r in rows},
        labels={r: registry.LABELS[r] for r in [*rows, "oracle"]},
        smoke=False,
        runs=runs,
        records=records,
        details={
            f"seed{s}/oracle": dict(energy_noise_floor=1e-3, energy_noise_floor_pairs=32)
            for s in seeds
        },
        machine=dict(cpu_count=2),
    )


def test_paired_difference_and_ranking_by_hand():
    study = fake_study()
    d, se, n = section.paired_difference(study, "energy", "gan", "cnf_fm")
    assert (d, se, n) == (pytest.approx(0.4e-3), pytest.approx(0.152753e-3, rel=1e-5), 3)
    rank = section.ranking(study, "energy", ["cnf_fm", "gan", "dsm", "vae"])
    assert rank["best"] == "cnf_fm"
    verdicts = {r: v for r, _, _, _, v in rank["others"]}
    assert verdicts == {"gan": "worse", "dsm": "tie", "vae": "worse"}
    one = fake_study(seeds=(0,))
    assert section.mean_se(one, "cnf_fm", "exact_nll") == (0.10, 0.05, 1)  # hold-out SE
    assert {v for *_, v in section.ranking(one, "energy", ["cnf_fm", "gan"])["others"]} == {
        "untested"
    }


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def test_text_names_each_verdict_with_numbers_found_in_the_table():
    study = fake_study()
    paras = section.equal_compute_text(study)
    text = " ".join(paras)
    assert "_" not in text  # no code names
    like, samples = paras[1], paras[2]
    assert "CNF (flow matching) has the lowest mean" in like
    assert "higher by more than 2 standard errors: VAE (decoder noise) by 0.300 ± 0.000" in like
    assert "DDPM (ancestral) has only a variational bound" in like and "lower too" in like
    assert (
        "single-noise DSM (Langevin) is higher by 0.03 ± 0.12, less than 2 standard errors: a tie"
        in samples
    )
    assert "GAN by 0.40 ± 0.15" in samples  # ×10³
    assert "1.0×10⁻³" in samples and "CNF (flow matching)" in samples.split("noise floor")[1]
    table = section.equal_compute_table(study)
    cells = " ".join(c for _, _, row in table.rows for c in row) + section._caption(study)
    missing = _numbers(text) - _numbers(cells) - {"2"}  # the rule: within 2 SE is a tie
    assert not missing, missing


def test_section_is_absent_without_the_study_and_compiles_with_it(tmp_path, smoke_study):
    out, _ = smoke_study
    res = results.Results(tmp_path, [], {}, {}, [], [], [0], {}, {}, {}, None, None)
    doc = Markup()
    section.equal_compute_section(doc, res)
    assert doc.lines == []
    res.path = out
    section.equal_compute_section(doc, res)
    body = "\n".join(doc.lines)
    assert "<tab:equal-compute>" in body and "smoke run" in body
    typst = pytest.importorskip("typst")
    from lab.report.document import TEMPLATE

    for name in ("main.typ", "style.typ", "refs.bib"):
        shutil.copyfile(TEMPLATE / name, tmp_path / name)
    (tmp_path / "body.typ").write_text('#import "style.typ": *\n' + body + "\n")
    meta = dict(title="t", subtitle="", author="", date="")
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    pdf = typst.compile(str(tmp_path / "main.typ"), root=str(tmp_path), ignore_system_fonts=True)
    assert pdf[:4] == b"%PDF"
