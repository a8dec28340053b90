"""The typeset report: rendered from a small results fixture (no training), checked as typeset.

The fixture is built here from true samples with known blur (so every metric is a real
number), synthetic training histories and the closed-form half of the sampler study. The
tests read the document back through Typst itself: ``typst.query`` for the tables and the
layout in force, PNG pages for the margins, HTML export for the text.
"""

import json
import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

typst = pytest.importorskip("typst")

from lab import grid, report, results, studies, tables  # noqa: E402
from lab.registry import FAMILIES  # noqa: E402

import flowlab  # noqa: E402
from flowlab import datasets, evaluate  # noqa: E402
from flowlab.evaluate import sample_metrics  # noqa: E402

MODELS = ("cnf_fm", "ddpm")
DATASETS = ("pinwheel", "checkerboard")
BLUR = {"cnf_fm": 0.03, "ddpm": 0.25}  # std of the noise added to true samples
N = 400
LETTER = (612.0, 792.0)  # points
MARGIN = 72.0  # points


def _history(start, end, *, steps=200, every=40, rise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1)
    losses = end + (start - end) * np.exp(-t / 40) + 0.05 * rng.standard_normal(steps)
    evals = list(range(every, steps + 1, every))
    return flowlab.History(
        step=evals,
        train_loss=[float(np.mean(losses[s - every : s])) for s in evals],
        holdout_loss=[float(end + (start - end) * np.exp(-s / 40) + rise * s) for s in evals],
        wall_time=[0.05 * s for s in evals],
        metrics={"holdout_nll": [float(2.0 - s / 200) for s in evals]},
        step_losses=losses.tolist(),
    )


def build_fixture(path: Path, seeds=(0,)) -> Path:
    """A results folder as course_project.py writes it, from blurred true samples."""
    rows = []
    for name in DATASETS:
        for seed in seeds:
            key = jax.random.key(100 + seed)
            k_data, k_ref, k_fresh, *k_models = jax.random.split(key, 3 + len(MODELS))
            train, holdout = (np.asarray(a) for a in datasets.split(name, k_data))
            reference = np.asarray(datasets.sample(name, k_ref, N))
            true_lp = datasets.log_prob(name, holdout)
            true_nll, true_se = flowlab.metrics.mean_and_se(-true_lp)
            base = grid.cell_base(name, seed, train, holdout, N)
            samples = {}
            rng = np.random.default_rng(seed)
            for fam, k in zip(MODELS, k_models, strict=True):
                x = np.asarray(datasets.sample(name, k, N), np.float64)
                samples[fam] = x + BLUR[fam] * rng.standard_normal(x.shape)
                if fam == "cnf_fm":
                    lik = dict(
                        likelihood_kind="exact",
                        holdout_nll=true_nll + 0.1,
                        holdout_nll_se=true_se,
                        log_prob_nfe=130,
                        log_prob_time_s=0.4,
                    )
                else:
                    lik = dict(
                        likelihood_kind="bound",
                        holdout_neg_bound=true_nll + 0.7,
                        holdout_neg_bound_se=0.05,
                        bound_name="DDPM bound (Ho et al.)",
                    )
                sm = sample_metrics(samples[fam], holdout, reference, full=True)
                rows.append(grid.row_record(base, fam, lik, sm, 50, 0.2, 30.0, 200))
            samples["oracle"] = np.asarray(datasets.sample(name, k_fresh, N))
            row, sm = grid.oracle_record(base, true_lp, samples["oracle"], holdout, reference)
            rows.append(row)
            results.write_cell_arrays(
                path, name, seed, train=train, holdout=holdout, reference=reference, samples=samples
            )
            for i, fam in enumerate(MODELS):
                hist = _history(3.0, 1.0 + i, rise=0.004 * i, seed=seed)
                folder = path / "models" / name / f"seed{seed}" / fam
                folder.mkdir(parents=True, exist_ok=True)
                hist.save(folder / "history.json")
        lo, hi = np.percentile(train, 1, axis=0) - 0.5, np.percentile(train, 99, axis=0) + 0.5
        xs, ys, pts = flowlab.plotting.grid(lo, hi, 30)
        true_grid = datasets.log_prob(name, pts)
        blurred = np.maximum(true_grid, -8.0) - 0.1 * np.sum(pts**2, axis=1)
        results.write_density(path, name, xs, ys, {"cnf_fm": blurred, "true": true_grid})
    tables.write_csv(path / "results.csv", rows)
    budgets = {fam: dict(FAMILIES[fam].defaults, steps=200, eval_every=40) for fam in MODELS}
    config = dict(
        mode="fixture",
        datasets=list(DATASETS),
        models=list(MODELS),
        families={m: m for m in MODELS},
        labels={m: FAMILIES[m].label for m in MODELS},
        loss_labels={m: FAMILIES[m].loss_label for m in MODELS},
        seeds=list(seeds),
        budgets=budgets,
        evaluation=dict(n_samples=N, grid=30),
        machine=dict(cpu_count=2, platform="test", jax=jax.__version__, backend="cpu"),
    )
    (path / "config.json").write_text(json.dumps(config))
    results.write_kde_csv(path / "studies" / "kde.csv", studies.kde_study(results.load_cells(path)))
    settings = studies.SamplerStudySettings(steps=(10, 100), gaussian_steps=(10, 100, 1000))
    mixture = []
    for s, (score, scale) in enumerate((("exact", 1.0), ("learned", 3.0))):
        for name in studies.SAMPLERS:
            for steps in settings.steps:
                mixture.append(
                    dict(
                        sampler=name,
                        score=score,
                        steps=steps,
                        nfe=steps,
                        energy=scale * 0.05 / steps + 0.0005 * s,
                        seconds=0.1,
                        kl=scale / steps if name == "ddim" else math.nan,
                        kl_se=0.01 if name == "ddim" else math.nan,
                    )
                )
    study = dict(
        settings=dict(n=N),
        gaussian=studies.gaussian_rows(settings),
        mixture=mixture,
        energy_rms=0.001 / studies.FLOOR_RMS,
        energy_floor=0.001,
        learned_source="a fixture",
        learned_kind="Diffusion",
    )
    study["summary"] = studies.summarise_sampler_study(study)
    (path / "studies" / "samplers.json").write_text(json.dumps(study).replace("NaN", "null"))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = build_fixture(tmp_path_factory.mktemp("results"))
    pdf = report.render(path)
    return path, pdf, path / "report_build"


_QUERIES: dict = {}


def _query(build: Path, selector: str, **kwargs):
    """``typst.query`` of the document in ``build`` (each query compiles it: cached)."""
    key = (
        str(build),
        selector,
        tuple(sorted(kwargs.items())),
        (build / "body.typ").stat().st_mtime,
    )
    if key not in _QUERIES:
        out = typst.query(
            str(build / "main.typ"), selector, root=str(build), ignore_system_fonts=True, **kwargs
        )
        _QUERIES[key] = json.loads(out)
    return _QUERIES[key]


def _flatten(node) -> str:
    if isinstance(node, list):
        return "".join(_flatten(n) for n in node)
    if not isinstance(node, dict):
        return ""
    if node.get("func") == "space":
        return " "
    if "text" in node and isinstance(node["text"], str):
        return node["text"]
    return "".join(_flatten(node[k]) for k in ("body", "child", "children") if k in node)


def _find(node, func):
    if isinstance(node, list):
        for n in node:
            found = _find(n, func)
            if found is not None:
                return found
    elif isinstance(node, dict):
        if node.get("func") == func:
            return node
        for k in ("body", "child", "children"):
            if k in node:
                found = _find(node[k], func)
                if found is not None:
                    return found
    return None


def typeset_tables(build: Path) -> dict:
    """``label -> (header cells, body rows)`` of every table as Typst laid it out; group
    rows (a cell spanning the table) are returned as one-cell rows."""
    out = {}
    for fig in _query(build, "figure.where(kind: table)"):
        table = _find(fig["body"], "table")
        header = [_flatten(c) for c in _find(table["children"], "header")["children"]]
        rows, row = [], []
        for child in table["children"]:
            if child.get("func") != "cell":
                continue
            if child.get("colspan", 1) == len(header):
                rows.append([_flatten(child)])
                continue
            row.append(_flatten(child))
            if len(row) == len(header):
                rows.append(row)
                row = []
        out[fig["label"].strip("<>")] = (header, rows)
    return out


_SUP = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def parse_cell(cell: str):
    """``(value, standard error or None, digits of the value)`` of a printed cell, or
    ``None`` for ``n/a``/``–``."""
    cell = cell.replace("≤", "").strip()
    if cell in ("n/a", "–", ""):
        return None
    parts = [p.strip() for p in cell.split("±")]

    def one(p):
        p = p.replace("−", "-")
        m = re.fullmatch(r"(-?[\d.]+)×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", p)
        if m:
            mant, exp = m.group(1), int(m.group(2).translate(_SUP))
            digits = len(mant.split(".")[1]) if "." in mant else 0
            return float(mant) * 10.0**exp, digits - exp
        digits = len(p.split(".")[1]) if "." in p else 0
        return float(p), digits

    v, d = one(parts[0])
    se = one(parts[1])[0] if len(parts) > 1 else None
    return v, se, d


def _close(printed: float, digits: int, value: float, scale: float = 1.0) -> bool:
    return abs(printed - scale * value) <= 0.5 * 10.0**-digits * (1 + 1e-9) + 1e-12


# -- the document ---------------------------------------------------------------------------


def test_pdf_is_us_letter_with_embedded_fonts(rendered):
    _, pdf, build = rendered
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    main_pages = report.main_text_pages(build)
    assert 1 <= main_pages <= report.MAIN_TEXT_PAGE_LIMIT
    sizes = [(float(w), float(h)) for w, h in boxes]
    assert sizes.count(LETTER) >= main_pages  # portrait letter pages
    assert set(sizes) <= {LETTER, LETTER[::-1]}  # and landscape letter in the appendix
    # the fonts are embedded, named as the template names them
    assert data.count(b"/FontFile") >= 2
    assert b"LibertinusSerif" in data


def test_layout_in_force_is_11pt_with_1in_margins(rendered):
    _, _, build = rendered
    (layout,) = _query(build, "<layout>", field="value")
    assert layout["page-width-pt"] == pytest.approx(LETTER[0])
    assert layout["page-height-pt"] == pytest.approx(LETTER[1])
    assert layout["font-size-pt"] == 11.0
    assert layout["margin"].endswith("72pt")
    assert "libertinus serif" in layout["font"]


def test_margins_measured_on_the_pages(rendered):
    """Ink on the main-text pages stays inside the 1-inch margins (the page number sits in
    the bottom margin) and justified text reaches them."""
    from io import BytesIO

    from PIL import Image

    _, _, build = rendered
    pages = typst.compile(
        str(build / "main.typ"), root=str(build), ignore_system_fonts=True, format="png", ppi=72
    )
    n_main = report.main_text_pages(build)
    lefts, rights = [], []
    for png in pages[:n_main]:
        ink = np.asarray(Image.open(BytesIO(png)).convert("L")) < 200
        assert ink.shape == (792, 612)
        body = ink[: 792 - int(MARGIN)]  # above the footer
        rows, cols = np.nonzero(body)
        # a line's box starts at the cap height: ascenders may rise a few points above it
        assert rows.min() >= MARGIN - 4
        assert cols.min() >= MARGIN - 1 and cols.max() <= 612 - MARGIN + 1
        lefts.append(cols.min())
        rights.append(cols.max())
        footer_rows = np.nonzero(ink[792 - int(MARGIN) :])[0]
        assert footer_rows.size > 0  # the page number
    assert min(lefts) <= MARGIN + 2 and max(rights) >= 612 - MARGIN - 2


def test_text_names_every_model_and_dataset_and_section(rendered):
    path, _, build = rendered
    html = typst.compile(
        str(build / "main.typ"), root=str(build), ignore_system_fonts=True, format="html"
    ).decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("’", "'")
    for m in MODELS:
        assert FAMILIES[m].label in text, m
    for name in DATASETS:
        assert name in text
    headings = [_flatten(h["body"]) for h in _query(build, "heading")]
    for section in (
        "Models",
        "Datasets and evaluation",
        "Training",
        "Qualitative comparison",
        "Quantitative comparison",
        "References",
    ):
        assert section in headings, section
    # the text states the numbers: the fixture's blur makes cnf_fm closer on every dataset
    closer = (
        f"On pinwheel, {FAMILIES['cnf_fm'].label}'s samples have the lowest energy distance to "
        f"fresh true samples; the test resolves it from the runner-up "
        f"{report.text.words(FAMILIES['ddpm'].label)}"
    )
    assert closer in text  # blur 0.03 against 0.25: resolved at N = 400 (bootstrap SE)
    # every cited source is in the bibliography
    for key in (
        "ho2020",
        "song2021ddim",
        "song2021sde",
        "lipman2023",
        "grathwohl2019",
        "kingma2014",
        "goodfellow2014",
        "du2019",
        "song2021ebm",
        "singh2023",
    ):
        assert f"@{key}" in (build / "body.typ").read_text(), key


def test_results_table_has_the_csv_numbers(rendered):
    path, _, build = rendered
    typeset = typeset_tables(build)
    header, body = typeset["tab:results"]
    res = report.load(path)
    expected = report.quantitative_table(res)
    assert header == expected.header
    printed = [r for r in body if len(r) > 1]
    assert printed == [cells for _, _, cells in expected.rows]
    rows = {(r["dataset"], r["model"]): r for r in tables.read_csv(path / "results.csv")}
    n_checked = 0
    for (_, key, cells), cols in zip(expected.rows, expected.cell_columns, strict=True):
        csv_row = rows[key[:2]]
        assert cells[0] == res.label(key[1])
        for cell, col in zip(cells[1:], cols[1:], strict=True):
            parsed = parse_cell(cell)
            value = csv_row[col]
            if parsed is None:
                assert not math.isfinite(value), (key, col)
                continue
            v, se, digits = parsed
            scale = 1e3 if col == "energy" else 1.0
            assert _close(v, digits, value, scale), (key, col, cell, value)
            if se is not None:
                assert _close(se, digits, csv_row[col + "_se"], scale), (key, col, cell)
            n_checked += 1
    assert n_checked >= 6 * len(DATASETS) * 3 - 2 * len(DATASETS)  # kl_gap: n/a for the bound


def test_appendix_tables_have_every_csv_row_and_number(rendered):
    path, _, build = rendered
    typeset = typeset_tables(build)
    rows = tables.read_csv(path / "results.csv")
    res = report.load(path)
    for name in DATASETS:
        header, body = typeset[f"tab:all-{name}"]
        expected = report.full_table(res, name)
        assert len(body) == sum(r["dataset"] == name for r in rows)
        for printed, (_, (ds, model, seed), _) in zip(body, expected.rows, strict=True):
            csv_row = next(
                r for r in rows if (r["dataset"], r["model"], r["seed"]) == (ds, model, seed)
            )
            assert printed[0] == res.label(model) and printed[1] == str(seed)
            for cell, col in zip(printed[2:], expected.columns[2:], strict=True):
                parsed = parse_cell(cell)
                if parsed is None:
                    assert not math.isfinite(csv_row[col]), (model, col)
                    continue
                scale = 1e3 if col in ("energy", "mmd") else 1.0
                assert _close(parsed[0], parsed[2], csv_row[col], scale), (model, col, cell)


def test_kde_table_has_the_study_numbers(rendered):
    path, _, build = rendered
    header, body = typeset_tables(build)["tab:kde"]
    kde = results.read_kde_csv(path / "studies" / "kde.csv")
    res = report.load(path)
    labels = {res.label(m): m for m in [*MODELS, "oracle"]}
    dataset = None
    bandwidths = [b for b in studies.BANDWIDTHS]
    assert header[2:6] == [f"KDE, {studies.BANDWIDTH_LABELS[b]}" for b in bandwidths]
    for row in body:
        if len(row) == 1:
            dataset = row[0]
            continue
        model = labels[row[0]]
        for cell, bw in zip(row[2:6], bandwidths, strict=True):
            r = next(
                r for r in kde if (r["dataset"], r["model"], r["bandwidth"]) == (dataset, model, bw)
            )
            v, se, d = parse_cell(cell)
            assert _close(v, d, r["kde_nll"]) and _close(se, d, r["kde_nll_se"])


def test_rerender_reads_only_disk(rendered, tmp_path):
    """A second render of the same folder gives the same tables (nothing random, nothing
    retrained) and writes where it is told."""
    path, _, build = rendered
    pdf = report.render(path, tmp_path / "again.pdf", build=tmp_path / "build")
    assert pdf.exists()
    assert typeset_tables(tmp_path / "build") == typeset_tables(build)


# -- the analysis, on known numbers ---------------------------------------------------------


def test_several_seeds_give_mean_and_standard_error(tmp_path):
    """With three seeds, a results cell is the mean over seeds ± its standard error."""
    rows = []
    base = dict(
        dataset="pinwheel",
        true_entropy=-0.092,
        n_train=2000,
        n_holdout=500,
        n_samples=2000,
        likelihood_kind="exact",
        energy=0.001,
    )
    for seed, (nll, kde) in enumerate([(0.10, 0.70), (0.14, 0.66), (0.12, 0.71)]):
        rows.append(
            dict(
                base,
                seed=seed,
                model="cnf_fm",
                exact_nll=nll,
                exact_nll_se=0.01,
                kde_nll=kde,
                kde_nll_se=0.02,
            )
        )
        rows.append(
            dict(
                base,
                seed=seed,
                model="oracle",
                exact_nll=-0.1,
                exact_nll_se=0.01,
                kde_nll=0.6,
                kde_nll_se=0.02,
            )
        )
    tables.write_csv(tmp_path / "results.csv", rows)
    res = report.load(tmp_path)
    tab = report.quantitative_table(res)
    (_, _, cells), _ = tab.rows
    nll = np.array([0.10, 0.14, 0.12])
    se = nll.std(ddof=1) / np.sqrt(3)
    assert cells[1] == f"{nll.mean():.3f} ± {se:.3f}"
    assert res.stat("pinwheel", "cnf_fm", "kde_nll") == pytest.approx(
        (np.mean([0.70, 0.66, 0.71]), np.std([0.70, 0.66, 0.71], ddof=1) / np.sqrt(3))
    )


def test_sample_checks_on_true_and_broken_samples():
    key = jax.random.key(3)
    k1, k2, k3 = jax.random.split(key, 3)
    ref = np.asarray(datasets.sample("gaussian_mixture", k1, 3000))
    good = np.asarray(datasets.sample("gaussian_mixture", k2, 3000))
    chk = report.sample_checks(good, ref, "gaussian_mixture")
    assert 0.004 <= chk["off_support"] <= 0.02  # 1% by construction, binomial noise
    assert np.allclose(chk["spread"], 1.0, atol=0.05)
    assert chk["histogram_tv"] < 0.08
    assert chk["dropped_components"] == [] and report.abnormalities(chk) == []
    # blur: mass off the support and over-dispersion
    blurred = good + 0.3 * np.asarray(jax.random.normal(k3, good.shape))
    chk = report.sample_checks(blurred, ref, "gaussian_mixture")
    assert chk["off_support"] > 0.3 and np.mean(chk["spread"]) > 1.05
    assert any("low-density region" in a for a in report.abnormalities(chk))
    # dropped modes: remove the samples of components 2 and 5
    means, _, _ = datasets.gaussian_mixture_params("gaussian_mixture")
    nearest = np.argmin(np.linalg.norm(good[:, None] - means[None], axis=-1), axis=1)
    kept = good[(nearest != 2) & (nearest != 5)]
    chk = report.sample_checks(kept, ref, "gaussian_mixture")
    assert chk["dropped_components"] == [2, 5]
    # non-finite and collapsed samples are named, not scored
    broken = good.copy()
    broken[:7] = np.nan
    assert report.sample_checks(broken, ref, "gaussian_mixture")["non_finite"] == 7
    chk = report.sample_checks(np.zeros((50, 2)), ref, "gaussian_mixture")
    assert chk["degenerate"] and "collapsed" in report.abnormalities(chk)[0]


def test_sample_checks_are_flowlab_diagnostics():
    """The report's sample checks are :func:`flowlab.evaluate.diagnostics`, renamed."""
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    ref = np.asarray(datasets.sample("gaussian_mixture", k1, 2000))
    x = np.asarray(datasets.sample("gaussian_mixture", k2, 2000))
    x = x + 0.1 * np.asarray(jax.random.normal(k3, x.shape))
    x = x[x[:, 0] < 1.0]  # thin out the components on the right
    x[:3] = np.nan
    chk = report.sample_checks(x, ref, "gaussian_mixture")
    diag = evaluate.diagnostics(x, ref, dataset="gaussian_mixture")
    for k in ("n", "non_finite", "degenerate", "off_support", "outside_box", "histogram_tv"):
        assert chk[k] == diag[k], k
    assert chk["spread"] == diag["spread"]
    assert chk["component_occupancy"] == diag["mode_weights"]
    assert chk["dropped_components"] == diag["modes_dropped"] != []
    assert chk["non_finite"] == 3 and 0.05 < chk["off_support"] < 1.0
    assert 0.0 < chk["histogram_tv"] < 1.0
    # only the mixture has components in the report's vocabulary
    pin_ref, pin_x = (np.asarray(datasets.sample("pinwheel", k, 500)) for k in (k1, k2))
    pin = report.sample_checks(pin_x, pin_ref, "pinwheel")
    assert "component_occupancy" not in pin and "dropped_components" not in pin


def test_report_reads_the_noise_floor_the_grid_saves(tmp_path):
    """The grid computes the energy distance's noise floor once per cell and saves it with
    the oracle row; the report reads it (and falls back to the oracle's own energy
    distance for a results folder without it)."""
    name, seed, n = "gaussian_mixture", 0, 300
    rows, _, details = grid.evaluate_cell(name, seed, {}, {}, {"n_samples": n}, {})
    floor = evaluate.noise_floor(
        name,
        n,
        key=jax.random.fold_in(jax.random.key(seed), grid.FLOOR_KEY),
        pairs=grid.FLOOR_PAIRS,
    )
    saved = details["oracle"]["energy_noise_floor"]
    assert saved == floor["energy_distance"]["rms"] > 0
    tables.write_csv(tmp_path / "results.csv", rows)
    det = {f"{name}/seed{seed}/{m}": d for m, d in details.items()}
    (tmp_path / "details.json").write_text(json.dumps(det))
    res = results.load(tmp_path)
    assert report.analysis.energy_noise(res, name) == pytest.approx(saved)
    assert report.analysis.resolution(res, name, "energy", "oracle", "oracle") == (
        pytest.approx(3 * saved)
    )
    (tmp_path / "details.json").unlink()
    old = results.load(tmp_path)
    oracle_energy = abs(old.stat(name, "oracle", "energy")[0])
    assert report.analysis.energy_noise(old, name) == pytest.approx(oracle_energy)


def test_training_assessment_finds_overfitting():
    flat = report.training_assessment(_history(3.0, 1.0))
    assert flat["decreased"] and not flat["overfits"]
    assert flat["start"] > 2.0 and flat["end"] == pytest.approx(1.0, abs=0.05)
    rising = report.training_assessment(_history(3.0, 1.0, rise=0.01))
    assert rising["overfits"] and rising["holdout_min_step"] < 200


def test_text_says_where_kde_and_exact_disagree(tmp_path):
    """Model a has the lower exact NLL, model b the lower KDE NLL: the text names both."""
    base = dict(
        dataset="pinwheel",
        seed=0,
        true_entropy=-0.092,
        n_train=2000,
        n_holdout=500,
        n_samples=2000,
        likelihood_kind="exact",
    )
    rows = [
        dict(
            base,
            model="cnf_fm",
            exact_nll=0.10,
            exact_nll_se=0.01,
            kde_nll=0.95,
            kde_nll_se=0.02,
            energy=0.002,
            bhattacharyya=0.01,
            w2=0.1,
        ),
        dict(
            base,
            model="cnf_mle",
            exact_nll=0.30,
            exact_nll_se=0.01,
            kde_nll=0.75,
            kde_nll_se=0.02,
            energy=0.001,
            bhattacharyya=0.02,
            w2=0.2,
        ),
        dict(
            base,
            model="oracle",
            exact_nll=-0.10,
            exact_nll_se=0.01,
            kde_nll=0.85,
            kde_nll_se=0.02,
            energy=0.0005,
            bhattacharyya=0.005,
            w2=0.05,
        ),
    ]
    tables.write_csv(tmp_path / "results.csv", rows)
    res = report.load(tmp_path)
    text = report.plain_text(" ".join(report.quantitative_text(res)))
    a, b = FAMILIES["cnf_fm"].label, FAMILIES["cnf_mle"].label
    assert (
        f"among the models with an exact NLL, the lowest KDE NLL is {b}'s while the lowest "
        f"exact NLL is {a}'s, and the KDE test resolves that order" in text
    )
    assert "overstates their exact NLL by 0.950 nats" in text
    # exact NLL 0.10 against 0.30 (hold-out SEs 0.01 each): resolved, beyond two SEs
    assert f"{a} is best (0.100 ± 0.010 nats); the test resolves it ahead of" in text
    # KDE NLL 0.75 against 0.95, SE hypot(0.02, 0.02): resolved the other way
    assert f"by KDE NLL {b} is lower than {a} (difference −0.200 ± 0.028 SE: resolved)" in text
    # without saved samples the sample metrics have no standard error: neither a lead nor a
    # tie is claimed
    assert f"by energy distance {b} is lower than {a} (difference −1.00×10⁻³), untested" in text
    assert " tie" not in text
    # the Markdown digest names the misranked pair with both differences
    md = "\n".join(report.likelihood_markdown(res))
    assert "## Where the KDE misranks models" in md
    assert f"{a} beats {b} by 0.200 nats of exact NLL, but the KDE puts it 0.200 behind" in md
    assert "| oracle (true samples) | 0.950 |" in md  # the KDE's own bias: 0.85 - (-0.10)


def test_markdown_sets_every_bound_beside_the_exact_nll(tmp_path):
    """A model with an exact NLL and bounds (the VAE): ELBO and IWAE gaps to the exact NLL."""
    base = dict(dataset="pinwheel", seed=0, true_entropy=-0.092, n_train=2000, n_holdout=500,
                n_samples=2000, likelihood_kind="exact", model="vae", kde_nll=0.9,
                kde_nll_se=0.02)  # fmt: skip
    rows = [
        dict(
            base,
            exact_nll=0.30,
            exact_nll_se=0.04,
            neg_bound=0.55,
            neg_bound_se=0.05,
            bound_name="ELBO",
        ),  # fmt: skip
        dict(base, model="oracle", exact_nll=-0.1, exact_nll_se=0.01),
    ]
    tables.write_csv(tmp_path / "results.csv", rows)
    (tmp_path / "details.json").write_text(
        json.dumps(
            {
                "pinwheel/seed0/vae": {
                    "holdout_neg_iwae": 0.31,
                    "holdout_neg_iwae_se": 0.04,
                    "iwae_k": 1000,
                }
            }
        )  # fmt: skip
    )
    md = "\n".join(report.likelihood_markdown(report.load(tmp_path)))
    assert "IWAE, K = 1000" in md
    assert "| pinwheel | 0.300 ± 0.040 | 0.550 ± 0.050 | +0.250 | 0.310 ± 0.040 | +0.010 |" in md
    text = report.plain_text(" ".join(report.quantitative_text(report.load(tmp_path))))
    # -ELBO 0.550 ± 0.050 against -IWAE 0.310 ± 0.040: tighter beyond two combined SEs
    assert "tighter than its ELBO by 0.240 ± 0.064 nats (SE), beyond its Monte Carlo error" in text


def test_typst_escaping_round_trips():
    nasty = "a_b *c* #d $e$ @f <g> [h] `i` ~j = k // l /* m \\ n"
    src = "#set page(width: 8in, height: auto)\n" + report.esc(nasty)
    html = typst.compile(src.encode(), format="html").decode()
    text = re.sub(r"<[^>]+>", "", html.split("<body>")[1].split("</body>")[0]).strip()
    import html as _html

    assert _html.unescape(text) == nasty


def test_results_markdown_links_only_files_a_clone_has(rendered, tmp_path):
    """RESULTS.md's links (the PDF and the figures beside it) all resolve from where the file
    is written, and none points into a git-ignored folder such as results/: a figure the
    digest would link under an ignored folder is left out."""
    import subprocess

    path, _, _ = rendered
    figures = ROOT / "figures"
    md = report.write_markdown(path, tmp_path / "RESULTS.md", figures / "compare_report.pdf")
    links = re.findall(r"\]\(([^)]+)\)", md.read_text())
    assert links, "expected links to the PDF and the figures"
    for link in links:
        target = (md.parent / link).resolve()
        assert target.parent == figures, link
        ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=ROOT).returncode
        assert ignored == 1, f"{link} is git-ignored"
    ignored_fig = ROOT / "results" / "compare_fake.png"
    assert not report.markdown._committed(ignored_fig)
    assert report.markdown._committed(figures / "compare_samples.png")
    text = md.read_text()
    assert "± SE" in text or "SE over" in text
    assert "L_simple" not in text and "gaussian_mixture" not in text.split("## Figures")[0]
