"""The report's claims: every number in its prose is in one of its tables, every abnormality
of known-bad sample sets is named in its text, and a tie is claimed exactly where the test
does not resolve a difference.

A results folder is built once for the module from true samples broken in known ways (mass
in the checkerboard's empty squares, a streak across them, a dropped mixture component, a
set collapsed onto a point and one onto a line), with saved diagnostics and overfitting
tests as the grid writes them, and rendered through Typst; the tests read the document
back (``body.typ``'s paragraphs, the tables as Typst laid them out).
"""

import json
import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

typst = pytest.importorskip("typst")

from lab import grid, report, results, tables  # noqa: E402
from lab.registry import FAMILIES  # noqa: E402
from lab.report import analysis, prose  # noqa: E402
from lab.report.text import words  # noqa: E402
from test_report import typeset_tables  # noqa: E402

import flowlab  # noqa: E402
from flowlab import datasets, evaluate, metrics  # noqa: E402
from flowlab.evaluate import sample_metrics  # noqa: E402

N = 600
MODELS = ("cnf_fm", "ddpm", "gan")
DATASETS = ("checkerboard", "gaussian_mixture")


def _empty_squares(rng, n):
    """``n`` points uniform on the checkerboard's empty squares (cells with odd index sum)."""
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 1])
    pick = cells[rng.integers(0, len(cells), n)]
    return (pick + rng.uniform(0, 1, (n, 2))) * 2.0 - 4.0


def bad_samples(name: str, key, rng) -> dict:
    """Each model's samples on ``name``: true samples broken in a known way."""
    k = jax.random.split(key, len(MODELS))
    true = [np.asarray(datasets.sample(name, kk, N), np.float64) for kk in k]
    if name == "checkerboard":
        mass = true[1].copy()
        mass[: N // 5] = _empty_squares(rng, N // 5)  # 20% in the empty squares
        streak = true[2].copy()
        t = rng.uniform(-3.5, 3.5, N // 5)
        streak[: N // 5] = np.stack([t, -t], 1)  # the anti-diagonal crosses empty squares
        return {"cnf_fm": true[0], "ddpm": mass, "gan": streak}
    means, _, _ = datasets.gaussian_mixture_params(name)
    x = true[0]
    nearest = np.argmin(np.linalg.norm(x[:, None] - means[None], axis=-1), axis=1)
    dropped = x[nearest != 2]  # component 3 dropped
    point = np.zeros((N, 2))  # collapsed onto one point
    t = rng.uniform(-1.0, 1.0, N)
    line = np.stack([t, 0.5 * t], 1)  # all on one line segment
    return {"cnf_fm": dropped, "ddpm": point, "gan": line}


def _history(rng, start, end, steps=200, every=40, gan=False):
    t = np.arange(1, steps + 1)
    losses = end + (start - end) * np.exp(-t / 40) + 0.05 * rng.standard_normal(steps)
    evals = list(range(every, steps + 1, every))
    curve = [float(end + (start - end) * np.exp(-s / 40)) for s in evals]
    metrics_ = {"holdout_d_loss": [1.40, 1.39, 1.388, 1.387, 1.386]} if gan else {}
    h = flowlab.History(
        step=evals,
        train_loss=[float(np.mean(losses[s - every : s])) for s in evals],
        holdout_loss=curve,
        wall_time=[0.05 * s for s in evals],
        metrics=metrics_,
        step_losses=losses.tolist(),
    )
    h.train_eval_loss = [c - 0.01 for c in curve]
    return h


GAPS = {  # family -> (gap, SE): DDPM's is flagged (z = 8), the others are not
    "cnf_fm": (0.01, 0.02),
    "ddpm": (0.4, 0.05),
    "gan": (0.002, 0.003),
}


def build(path: Path) -> Path:
    rows, details = [], {}
    rng = np.random.default_rng(0)
    for name in DATASETS:
        seed = 0
        k_data, k_ref, k_fresh, k_models = jax.random.split(jax.random.key(7), 4)
        train, holdout = (np.asarray(a) for a in datasets.split(name, k_data))
        reference = np.asarray(datasets.sample(name, k_ref, N), np.float64)
        true_lp = datasets.log_prob(name, holdout)
        true_nll, true_se = flowlab.metrics.mean_and_se(-true_lp)
        base = grid.cell_base(name, seed, train, holdout, N)
        samples = bad_samples(name, k_models, rng)
        for fam in MODELS:
            if fam == "cnf_fm":
                lik = dict(
                    likelihood_kind="exact",
                    holdout_nll=true_nll + 0.1,
                    holdout_nll_se=true_se,
                    log_prob_nfe=130,
                    log_prob_time_s=0.4,
                )
            elif fam == "ddpm":
                lik = dict(
                    likelihood_kind="bound",
                    holdout_neg_bound=true_nll + 0.7,
                    holdout_neg_bound_se=0.05,
                    bound_name="DDPM bound",
                )
            else:
                lik = dict(likelihood_kind="none")
            sm = sample_metrics(samples[fam], holdout, reference, full=True)
            rows.append(grid.row_record(base, fam, lik, sm, 50, 0.2, 30.0, 200))
            gap, se = GAPS[fam]
            details[f"{name}/seed{seed}/{fam}"] = dict(
                diagnostics=evaluate.diagnostics(samples[fam], reference, dataset=name),
                generalisation_gap=dict(
                    train_loss=1.0,
                    holdout_loss=1.0 + gap,
                    gap=gap,
                    gap_se=se,
                    z=gap / se,
                    chunks=10,
                    n=500,
                ),
            )
        samples["oracle"] = np.asarray(datasets.sample(name, k_fresh, N), np.float64)
        row, sm = grid.oracle_record(base, true_lp, samples["oracle"], holdout, reference)
        rows.append(row)
        floor = evaluate.noise_floor(name, N, key=jax.random.key(3), pairs=8)
        details[f"{name}/seed{seed}/oracle"] = dict(
            diagnostics=evaluate.diagnostics(samples["oracle"], reference, dataset=name),
            energy_noise_floor=floor["energy_distance"]["rms"],
        )
        results.write_cell_arrays(
            path, name, seed, train=train, holdout=holdout, reference=reference, samples=samples
        )
        for i, fam in enumerate(MODELS):
            folder = path / "models" / name / f"seed{seed}" / fam
            folder.mkdir(parents=True, exist_ok=True)
            _history(rng, 3.0, 1.0 + i, gan=fam == "gan").save(folder / "history.json")
    tables.write_csv(path / "results.csv", rows)
    (path / "details.json").write_text(json.dumps(details))
    budgets = {f: dict(FAMILIES[f].defaults, steps=200, eval_every=40) for f in MODELS}
    config = dict(
        mode="fixture",
        datasets=list(DATASETS),
        models=list(MODELS),
        families={m: m for m in MODELS},
        seeds=[0],
        budgets=budgets,
        evaluation=dict(n_samples=N),
    )
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = build(tmp_path_factory.mktemp("claims"))
    report.render(path)
    build_dir = path / "report_build"
    return report.load(path), build_dir


# -- reading the document back ---------------------------------------------------------------

_SUP = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
_NUMBER = re.compile(r"[−-]?\d+(?:\.\d+)?(?:×10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?%?")


def numbers(text: str) -> list[tuple[float, float]]:
    """Every number printed in ``text``: ``(|value|, half a unit of its last digit)``
    (percentages as fractions, ``m×10ⁿ`` expanded)."""
    out = []
    for m in _NUMBER.finditer(text):
        s = m.group(0).replace("−", "-")
        pct = s.endswith("%")
        s = s.rstrip("%")
        mant, _, exp = s.partition("×10")
        e = int(exp.translate(_SUP)) if exp else 0
        digits = len(mant.split(".")[1]) if "." in mant else 0
        v, half = abs(float(mant)) * 10.0**e, 0.5 * 10.0 ** (e - digits)
        if pct:
            v, half = v / 100, half / 100
        out.append((v, half))
    return out


def table_numbers(build: Path) -> list[tuple[float, float]]:
    """Every number in every table of the document (a column marked ``×10³`` scaled back)."""
    out = []
    for header, rows in typeset_tables(build).values():
        scale = [1e-3 if "×10³" in h else 1.0 for h in header]
        for row in rows:
            for cell, sc in zip(row, scale if len(row) == len(header) else [1.0], strict=False):
                out += [(v * sc, h * sc) for v, h in numbers(cell)]
    return out


def paragraphs(build: Path, *, appendix: bool = False) -> list[str]:
    """The generated paragraphs of ``body.typ``'s main text (with ``appendix``, the
    appendix's too; not tables, figures, headings or list items), as plain text: escapes,
    references and subscripts removed."""
    paras, block = [], []
    depth = 0
    for line in (build / "body.typ").read_text().splitlines():
        if line.startswith("#bibliography") and not appendix:  # the main text ends here
            break
        if depth or line.startswith("#figure("):
            depth += line.count("(") - line.count(")")
            depth = max(depth, 0)
            continue
        if not line.strip():
            if block:
                paras.append(" ".join(block))
            block = []
            continue
        if line.startswith(("#", "=", "- ", ")", "]")):
            continue
        block.append(line)
    if block:
        paras.append(" ".join(block))
    text = [re.sub(r"#sub\[([^\]]*)\]", r"\1", p) for p in paras]
    text = [re.sub(r"@[\w:-]+", "", p).replace("\\", "") for p in text]
    return text


def allowed_constants(res) -> set[float]:
    """Numbers the text may state without a table: the method's constants (criteria,
    chunks, replicates, the GAN's equilibrium values) and the run's sizes and counts."""
    c = {
        analysis.Z_CRITICAL,
        analysis.OVERFIT_Z,
        analysis.FLOOR_RMS,
        analysis.ABNORMAL_RATIO,
        100 * analysis.ABNORMAL_POINTS,
        analysis.MODE_DROPPED,
        analysis.MODE_OVER,
        analysis.SPREAD_TOL,
        *analysis.BOOTSTRAP.values(),
        10,
        1,
        2,
        5,
        97.5,
        0.975,
        round(2 * math.log(2), 3),
        round(math.log(2), 3),
        round(3 * math.log(2), 3),
        len(res.seeds),
        len(res.models),
        len(res.families),
        len(res.datasets),
    }
    r0 = res.rows[0]
    c |= {r0["n_train"], r0["n_holdout"], r0["n_samples"]}
    return {float(x) for x in c}


# -- (a) every number of the prose is in a table ----------------------------------------------


def _same(v, half, t, th) -> bool:
    """A prose number (``v`` to ``half`` a unit) is the table's ``t`` (to ``th``): the table
    is at least as precise and both round the same value."""
    return th <= half * (1 + 1e-9) and abs(v - t) <= half + th + 1e-12


def test_every_number_in_the_prose_is_in_a_table(rendered):
    res, build = rendered
    in_tables = table_numbers(build)
    consts = allowed_constants(res)
    paras = paragraphs(build)
    results_paras = [p for p in paras if not p.startswith("Each model is trained on")]
    assert len(results_paras) >= 5
    missing, checked = [], 0
    for p in results_paras:
        for v, half in numbers(p):
            if any(abs(v - c) <= half for c in consts):
                continue
            checked += 1
            if not any(_same(v, half, t, th) for t, th in in_tables):
                missing.append((v, p[:80]))
    assert checked >= 20  # the prose does quote numbers
    assert not missing, missing


def test_a_number_absent_from_every_table_is_caught(rendered):
    """The check above can fail: a made-up number in a paragraph is not in any table."""
    _, build = rendered
    in_tables = table_numbers(build)
    for v, half in numbers("a gap of 0.777 ± 0.123 and 12.3%"):
        assert not any(_same(v, half, t, th) for t, th in in_tables)


# -- (b) known-bad sample sets are named -------------------------------------------------------


def test_each_abnormality_is_named_in_the_text(rendered):
    res, build = rendered
    text = " ".join(paragraphs(build))
    ddpm, gan, cnf = (words(res.label(m)) for m in ("ddpm", "gan", "cnf_fm"))
    # checkerboard: 20% of DDPM's samples and GAN's streak lie in the empty squares
    zero = "Mass where the true density is zero (in the empty squares or off the board): "
    assert zero in text
    after = text.split(zero, 1)[1].split("against", 1)[0]
    assert ddpm in after and gan in after and cnf not in after
    # mixture: a dropped component, a set collapsed onto a point and one onto a line
    assert f"Dropped modes: {cnf} (component 3)" in text
    assert f"Samples collapsed onto a point: {ddpm}" in text
    assert f"Samples collapsed onto a line: {gan}" in text
    # the numbers behind them are the diagnostics', beside the true samples'
    d = analysis.diagnostics(res, "checkerboard", "ddpm")
    assert 0.18 <= d["zero_density_fraction"] <= 0.22
    assert f"{ddpm} ({100 * d['zero_density_fraction']:.1f}%)" in text
    o = analysis.diagnostics(res, "checkerboard", "oracle")
    assert o["zero_density_fraction"] == 0.0 and "against 0.0% for true samples" in text
    # the good checkerboard set is not flagged
    assert f"They flag nothing for {cnf}" in text


def test_flags_follow_the_thresholds():
    """Relative to the oracle: beyond 3x its fraction and 2 percentage points above it."""
    oracle = dict(
        n=1000, zero_density_fraction=0.0, off_support=0.01, outside_box=0.0, std_ratio=1.0
    )
    row = dict(oracle, zero_density_fraction=0.019)
    assert analysis.flags(row, oracle, "checkerboard") == []  # under 2 points
    row = dict(oracle, zero_density_fraction=0.021)
    (f,) = analysis.flags(row, oracle, "checkerboard")
    assert f.kind == "zero_density" and f.value == 0.021
    # 3.5% below the 1st percentile against an oracle's 1.5%: 2 points up, but not 3x
    row = dict(oracle, off_support=0.035)
    assert analysis.flags(row, dict(oracle, off_support=0.015), "pinwheel") == []
    assert [f.kind for f in analysis.flags(row, oracle, "pinwheel")] == ["off_support"]
    row = dict(oracle, mode_weights=[0.55, 0.4, 0.05], mode_weights_true=[1 / 3] * 3)
    assert [f.kind for f in analysis.flags(row, oracle, "pinwheel")] == [
        "mode_over_0",
        "mode_dropped_2",
    ]


# -- (c) ties and resolved differences ------------------------------------------------------


def test_ties_and_resolved_differences_agree_with_the_tests(rendered):
    res, build = rendered
    text = " ".join(paragraphs(build, appendix=True))  # the other measures' tests: appendix
    header, rows = typeset_tables(build)["tab:differences"]
    assert header[-1] == "test"
    seen = 0
    for row in rows:
        if len(row) == 1:
            continue
        measure, a, b, _, _, outcome = row
        tie = f"by {measure} {a} and {b} tie"
        lead = f"by {measure} {a} is lower than {b}"
        if outcome == "resolved":
            assert tie not in text
            seen += lead in text
        elif outcome == "tie":
            assert lead not in text
            seen += tie in text or f"ties it with {b}" in text or f"from {b}: a tie" in text
    assert seen >= 3


def _seeds_results(tmp_path, values: dict) -> object:
    """Exact NLLs of three seeds per model (hold-out SE 0.01)."""
    base = dict(
        dataset="pinwheel",
        true_entropy=-0.092,
        n_train=2000,
        n_holdout=500,
        n_samples=2000,
        likelihood_kind="exact",
    )
    rows = [
        dict(base, seed=s, model=m, exact_nll=v, exact_nll_se=0.01)
        for m, vs in values.items()
        for s, v in enumerate(vs)
    ]
    tables.write_csv(tmp_path / "results.csv", rows)
    return report.load(tmp_path)


def test_seed_paired_difference_and_its_verdict(tmp_path):
    """Three seeds: the difference paired by seed, its SE over seeds, resolved beyond
    Student's t (2 degrees of freedom, 4.303) times it; the verdict names the tie."""
    a, b, c = [0.10, 0.11, 0.12], [0.30, 0.31, 0.29], [0.14, 0.08, 0.13]
    res = _seeds_results(tmp_path, {"cnf_fm": a, "cnf_mle": b, "vae": c})
    d = analysis.difference(res, "pinwheel", "exact_nll", "cnf_mle", "cnf_fm")
    diff = np.array(a) - np.array(b)
    assert (d.a, d.b) == ("cnf_fm", "cnf_mle")
    assert d.diff == pytest.approx(diff.mean())
    assert d.se == pytest.approx(diff.std(ddof=1) / math.sqrt(3))
    assert d.critical == pytest.approx(4.302652729911275)
    assert d.resolved and d.se_kind == "over 3 seeds, paired"
    e = analysis.difference(res, "pinwheel", "exact_nll", "cnf_fm", "vae")
    # 0.11 against 0.1167: SE of the paired differences 0.0251 >> 0.0067
    assert not e.resolved and e.tested and e.outcome == "tie"
    v = analysis.verdict(res, "pinwheel")
    assert v.best == "cnf_fm" and v.beats == ["cnf_mle"] and v.ties == ["vae"]
    text = prose.verdict_text(res, "pinwheel")
    fm, mle, vae = (words(res.label(m)) for m in ("cnf_fm", "cnf_mle", "vae"))
    assert f"the test resolves it ahead of {mle}, and ties it with {vae}" in text
    # tied with the VAE: the lowest, not the best
    assert f"{fm} has the lowest value (0.110 ± 0.006 nats)" in text


def test_energy_bootstrap_is_the_energy_distance_of_resampled_sets():
    """The weighted form of the bootstrap equals the energy distance of each resampled set
    (flowlab.metrics.energy_distance on the points repeated by their counts)."""
    rng = np.random.default_rng(1)
    x, ref = rng.normal(size=(80, 2)), rng.normal(0.3, 1.0, size=(90, 2))
    reps = analysis._energy_bootstrap(x, ref, 4, np.random.default_rng(2), np.random.default_rng(3))
    wx = np.random.default_rng(2).multinomial(80, np.full(80, 1 / 80), size=4)
    wr = np.random.default_rng(3).multinomial(90, np.full(90, 1 / 90), size=4)
    for r, cx, cr in zip(reps, wx, wr, strict=True):
        xs, rs = np.repeat(x, cx, axis=0), np.repeat(ref, cr, axis=0)
        assert r == pytest.approx(metrics.energy_distance(xs, rs), rel=1e-10)


def test_overfitting_call_comes_from_the_gap_test(rendered):
    res, build = rendered
    text = " ".join(paragraphs(build))
    ddpm = words(res.label("ddpm"))
    t = analysis.overfitting(res, "checkerboard", "ddpm")
    assert t["overfits"] and t["z"] == pytest.approx(8.0)
    assert not analysis.overfitting(res, "checkerboard", "gan")["overfits"]
    assert f"It flags {ddpm} on checkerboard (gap 0.400 ± 0.050 SE, gap/SE 8.0)" in text
    assert "for every other run it finds no evidence of overfitting" in text
    # the GAN: the course's value function and its equilibrium, not a sign of overfitting
    assert "−2 log 2 = −1.386" in text and "ends at −1.386 on checkerboard" in text


def test_no_code_names_or_underscores_in_the_prose(rendered):
    _, build = rendered
    for p in paragraphs(build):
        assert "_" not in p, p
        assert "L_simple" not in p


def test_one_seed_exact_nll_difference_is_paired_over_the_holdout_points():
    """With the per-point log-densities saved, the SE of an exact-NLL difference is that of
    the per-point differences (far below the two hold-out SEs combined when the models
    agree point by point); without them it falls back to the combined SEs."""
    from lab.report import analysis as an

    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 1.0, 500)
    la, lb = base + 0.05 + rng.normal(0, 0.01, 500), base  # a is 0.05 nats better per point

    class R:
        cells = {("pinwheel", 0): {"log_prob": {"a": la, "b": lb}}}

        def row(self, dataset, model, seed):
            lp = {"a": la, "b": lb}[model]
            return {"exact_nll": -lp.mean(), "exact_nll_se": lp.std(ddof=1) / np.sqrt(500)}

    se, how = an._se_one_seed(R(), "pinwheel", "exact_nll", "a", "b", 0)
    assert how == "paired over hold-out points"
    assert se == pytest.approx((lb - la).std(ddof=1) / np.sqrt(500), rel=1e-9)
    assert se < 0.001
    R.cells = {("pinwheel", 0): {"log_prob": {}}}
    se, how = an._se_one_seed(R(), "pinwheel", "exact_nll", "a", "b", 0)
    assert how == "hold-out SEs combined" and se == pytest.approx(
        np.sqrt(2) * 1 / np.sqrt(500), rel=0.1
    )
