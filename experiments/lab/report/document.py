"""The Typst document: the figures drawn, the main text's sections assembled from the prose,
tables and figures (the appendix is :mod:`~lab.report.appendix`), the title, and the PDF
compiled from ``lab/report_template/``."""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

from flowlab._checkpoint import atomic_write_bytes, atomic_write_text

from .. import results as schema
from ..results import Results
from ..studies import equal_compute
from . import evidence
from .analysis import (
    ABNORMAL_POINTS,
    ABNORMAL_RATIO,
    BOOTSTRAP,
    FLOOR_RMS,
    MODE_DROPPED,
    MODE_OVER,
    OVERFIT_Z,
    SPREAD_TOL,
    Z_CRITICAL,
)
from .appendix import appendix
from .figures import (
    figure_density,
    figure_overlays,
    figure_samplers,
    figure_training,
    figure_width,
    main_datasets,
    typst_figure,
)
from .prose import (
    TABLES,
    bounds_text,
    headline,
    kde_vs_exact_text,
    other_measures_text,
    qualitative_text,
    quantitative_text,
    training_text,
)
from .studies_prose import studies_summary
from .tables import hyperparameter_table, quantitative_table, typst_table
from .text import (
    DATASET_TEXT,
    Markup,
    esc,
    join,
    typst_text,
    words,
)

TEMPLATE = Path(__file__).resolve().parent.parent / "report_template"  # lab/report_template
MAIN_TEXT_PAGE_LIMIT = 6
"""Main-text pages of the full comparison (the course project's: :data:`COURSE_PAGE_LIMIT`)."""
COURSE_PAGE_LIMIT = 3


def page_limit(res: Results) -> int:
    """The main text's page limit: 3 pages for the course project (at most 2 models on at
    most 2 datasets), 6 for the full comparison."""
    small = len(res.models) <= 2 and len(res.datasets) <= 2
    return COURSE_PAGE_LIMIT if small else MAIN_TEXT_PAGE_LIMIT


def load(results: Path) -> Results:
    """The results folder as the report reads it (:func:`lab.results.load`; row labels from
    ``config.json`` or the family registry)."""
    return schema.load(results)


def main_dataset(res: Results) -> list[str]:
    """The one dataset whose training curves and overlays the main text shows large (the
    figures' preference, :func:`~lab.report.figures.main_datasets`, among those with saved
    samples); the appendix has every dataset."""
    with_cells = [n for n in res.datasets if (n, res.seeds[0]) in res.cells]
    preferred = [n for n in main_datasets(res) if n in with_cells]
    return preferred or (with_cells or res.datasets)[:1]


def draw_figures(res: Results, build: Path) -> tuple[dict, list[str], list[str]]:
    """Every figure of the report, drawn into ``build/figures``: ``(figure paths, datasets in
    the main text's training figure, datasets in its overlay figure)``; the appendix has
    every dataset's training curves with the likelihood, and the overlays the main text
    leaves out."""
    fig_dir = build / "figures"
    names_t = names_o = main_dataset(res)
    figs = {
        "training": figure_training(res, fig_dir / "training.png", names_t),
        "overlays": figure_overlays(res, fig_dir / "overlays.png", names_o),
        "density": figure_density(res, fig_dir / "density.png"),
        "samplers": figure_samplers(res, fig_dir / "samplers.png"),
    }
    for name in res.datasets:  # the appendix: every dataset, with the likelihood curves
        figs[f"training_nll_{name}"] = figure_training(
            res, fig_dir / f"training_nll_{name}.png", [name], with_metric=True
        )
        if name not in names_o:
            figs[f"overlays_{name}"] = figure_overlays(
                res, fig_dir / f"overlays_{name}.png", [name]
            )
    return figs, names_t, names_o


def models_section(doc: Markup, res: Results) -> None:
    """The families compared, one item each."""
    n_fam, n_rows = len(res.families), len(res.models)
    rows = (
        f", sampled as {n_rows} table rows (a family sampled two ways gives two rows)"
        if n_rows != n_fam
        else ""
    )
    doc.heading("Models", label="sec:models")
    doc.para(
        "The course lists six model families: energy-based models [@du2019] [@song2021ebm], "
        "denoising score matching, variational autoencoders [@kingma2014], DDPMs [@ho2020], "
        "continuous normalising flows [@grathwohl2019] and GANs [@goodfellow2014]. All are "
        "implemented in flowlab (JAX, Equinox, Diffrax, Optax) behind one protocol: a model "
        "declares whether its likelihood is exact, a bound or absent, and is evaluated "
        f"accordingly. This report trains {n_fam} model families{rows}; networks and "
        "training budgets are in [@tab:hp]:"
    )
    for fam in res.families:
        text = words(res.family_text(fam))
        rows_of = [m for m in res.models if res.family(m) == fam and m != fam]
        extra = f" (table rows: {join([words(res.label(m)) for m in rows_of])})" if rows_of else ""
        doc.lines.append(
            f"- *{esc(words(res.label(fam)))}*{esc(extra)}: "
            + typst_text(text[0].upper() + text[1:] + ".")
        )
    doc.lines.append("")


def _uncertainty_words(res: Results) -> str:
    k = len(res.seeds)
    if k > 1:
        return (
            f"{k} seeds; a table entry is the mean over seeds ± its standard error (SE over "
            f"{k} seeds), and a difference between two models is paired by seed, its SE over "
            f"the {k} seeds, resolved beyond Student's t quantile (97.5%, {k - 1} degrees of "
            "freedom) times that SE"
        )
    return (
        "one seed; a likelihood is ± its standard error over the hold-out points (SE), a "
        "difference of exact NLLs or bounds carries the two SEs combined, a difference of "
        "KDE NLLs the SE of the per-point differences, and a difference of sample metrics a "
        "bootstrap SE (samples and reference resampled with a generator seeded from the run's "
        f"seed; {BOOTSTRAP['energy']} replicates for the energy distance, "
        f"{BOOTSTRAP['w2']} for Bhattacharyya and W2); a difference is resolved beyond "
        f"{Z_CRITICAL:g} SE"
    )


def data_section(doc: Markup, res: Results) -> None:
    """The datasets, the sizes and every measure of the evaluation (the tests' criteria are
    in the appendix, :func:`tests_section`)."""
    doc.heading("Datasets and evaluation", label="sec:data")
    ds = [f"{words(n)}: {DATASET_TEXT.get(n, n)}" for n in res.datasets]
    r0 = res.rows[0]
    k = len(res.seeds)
    seeds = "one seed" if k == 1 else f"{k} seeds; tables give the mean ± SE over seeds"
    doc.para(
        f"Each model is trained on {int(r0['n_train'])} points of "
        + ("each of " if len(ds) > 1 else "")
        + "the course datasets "
        + "; ".join(ds)
        + f", and evaluated on {int(r0['n_holdout'])} hold-out points drawn with an independent "
        f"key ({seeds}). Likelihoods are in nats per point: the exact hold-out NLL where a "
        "model has one (adaptive solver, exact Jacobian trace), else minus a variational bound "
        "(an upper bound on the NLL, marked ≤). Every model is also scored by its "
        f"{int(r0['n_samples'])} samples [@singh2023]: the hold-out NLL under a Gaussian KDE of "
        "the samples (Scott's bandwidth), the Bhattacharyya distance between KDEs of model and "
        "fresh true samples, the exact 2-Wasserstein distance W2, and the energy distance "
        "[@szekely2013] 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ with unbiased U-statistics for the "
        "within-set terms, zero in expectation when model and data agree (so a small negative "
        "value means indistinguishable at this size). The oracle row scores fresh true samples "
        "as model samples are scored. Every comparison in the text is a test with its "
        "standard error (SE), and every abnormality a measurement against true samples; "
        "criteria and tables in [@sec:tests]."
    )


def _checks_in_main(res: Results) -> bool:
    """Whether the main text carries the KDE-against-exact, bounds and studies paragraphs:
    only when there is no KDE-against-exact table to point to. Otherwise they go to the
    tests appendix, beside their tables, which keeps the main text within its page limit
    (3 pages for a course project, 6 for the full comparison)."""
    return evidence.kde_check_table(res) is None


def tests_section(doc: Markup, res: Results) -> None:
    """The appendix's tests: how differences are resolved, what the diagnostics flag, and
    the tables behind every comparing or judging sentence."""
    doc.heading("Tests and diagnostics", label="sec:tests")
    doc.para(
        f"Uncertainty ({_uncertainty_words(res)}). A sample-metric difference counts only "
        f"beyond the noise floor of true samples as well: {FLOOR_RMS:g} RMS of the energy "
        "distance between independent true sample sets of the run's size, and the oracle's "
        "own Bhattacharyya distance and W2. A difference the test does not resolve is called "
        "a tie, naming the models; [@tab:differences] lists every test the text quotes."
    )
    doc.para(
        "Abnormalities are read from the samples' diagnostics beside those of the true "
        "samples ([@tab:abnormal]): the fraction where the true density is zero, below its "
        "1st percentile (the low-density region) or far outside the data's range, flagged "
        f"beyond {ABNORMAL_RATIO:g} times the true samples' fraction and at least "
        f"{100 * ABNORMAL_POINTS:g} percentage points above it; each mode's weight, dropped "
        f"below {MODE_DROPPED:g} of its true weight and over-weighted above {MODE_OVER:g} "
        "times it; non-finite samples; a collapse onto a point or a line; and the spread "
        f"(standard deviation ratio), flagged when off 1 by more than {SPREAD_TOL:g}. The "
        "overfitting test and the training curves' start and end are in [@tab:training]."
    )
    doc.block(difference_block(res))
    for text in other_measures_text(res):
        doc.para(text)
    doc.block(abnormality_block(res))
    doc.block(
        typst_table(
            evidence.training_table(res),
            label=TABLES["training"],
            size="8pt",
            caption="Training: the per-step loss at the start and the end (means of the first "
            "5% and the last 10% of steps); the overfitting test's training and hold-out "
            "losses (same weights and key), their gap ± SE over paired chunks, gap/SE and the "
            f"call (overfitting beyond {OVERFIT_Z:g} SE)"
            + ("; V(D, G): the GAN's hold-out game value." if "gan" in res.families else "."),
        )
    )
    bt = evidence.bound_table(res)
    if bt is not None:
        doc.block(
            typst_table(
                bt,
                label=TABLES["bounds"],
                size="8.5pt",
                caption="Bounds beside the exact NLL (nats; ± SE, the Monte Carlo and hold-out "
                "error of each estimate). ELBO − IWAE gap: how much tighter the "
                "importance-weighted bound is; tighter: beyond "
                f"{Z_CRITICAL:g} SE.",
            )
        )
    kt = evidence.kde_check_table(res)
    if kt is not None:
        doc.block(
            typst_table(
                kt,
                label=TABLES["kde"],
                size="8.5pt",
                caption="The KDE against the exact likelihood: its bias on fresh true samples "
                "(KDE NLL minus exact NLL, nats), the spread of the models' KDE NLLs, and the "
                "model with the lowest exact NLL and with the lowest KDE NLL among the models "
                "that have both.",
            )
        )
        if not _checks_in_main(res):
            doc.para(kde_vs_exact_text(res))
    if not _checks_in_main(res):  # what the main text of a large grid leaves here
        for text in (bounds_text(res), studies_summary(res)):
            if text:
                doc.para(text)


def training_section(doc: Markup, res: Results, figs: dict, build: Path, shown: list[str]) -> None:
    """The hyperparameter table, the training figure (datasets ``shown``), the training
    table and the training curves in words."""
    more = (
        ""
        if len(shown) == len(res.datasets)
        else (f" Shown: {join([words(n) for n in shown])}; every dataset is in the appendix.")
    )
    doc.heading("Training", label="sec:training")
    doc.block(
        typst_table(
            hyperparameter_table(res),
            label="tab:hp",
            float_=True,
            caption="Hyperparameters of the runs: each family's default, the one its own "
            "script uses (the appendix lists every setting). Adam with linear warm-up, cosine "
            "decay to 1% and global-norm clipping at 1; MLP = width × depth. Train time: "
            "wall-clock seconds including compilation and hold-out evaluations, on the machine "
            "in the appendix. A family's runs (every dataset and seed) train together as one "
            "batched program and each run is given an equal share of its time; maximum "
            "likelihood and the EBM train one run at a time (a batch would wait on its slowest "
            "adaptive solve; each EBM's quadrature box depends on its data).",
        )
    )
    if figs["training"]:
        doc.block(
            typst_figure(
                figs["training"],
                build,
                label="fig:training",
                float_=True,
                width_in=figure_width(figs["training"]),
                caption="Training curves against gradient steps: the loss on 500 training "
                "points and on the 500 hold-out points, both from the same weights (named above "
                "each panel: the EMA where the run keeps one) and the same key; grey, behind: "
                "the minibatch loss of every step (live weights). The loss is each model's own "
                "objective, so values are not comparable across models. A GAN panel shows the "
                "value V(D, G) = E log D(x) + E log(1 − D(G(z))) (the course's sign "
                "convention) with its equilibrium −2 log 2 drawn. A y-axis marked symlog is "
                "linear near zero and logarithmic beyond, so the first evaluations stay in "
                "view." + more,
            )
        )
    doc.para(
        "[@tab:hp] lists the hyperparameters"
        + (" and [@fig:training] the training curves. " if figs["training"] else ". ")
        + " ".join(training_text(res))
    )


def qualitative_section(
    doc: Markup, res: Results, figs: dict, build: Path, shown: list[str]
) -> None:
    """The overlay figure (datasets ``shown``), the diagnostics table and what they show."""
    more = (
        ""
        if len(shown) == len(res.datasets)
        else (f" Shown: {join([words(n) for n in shown])}; the other datasets are in the appendix.")
    )
    doc.heading("Qualitative comparison", label="sec:qualitative")
    if figs["overlays"]:
        n = int(res.rows[0]["n_samples"])
        doc.block(
            typst_figure(
                figs["overlays"],
                build,
                label="fig:overlays",
                float_=True,
                width_in=figure_width(figs["overlays"]),
                caption=f"{n} model samples (red) over {n} fresh true samples (blue), per dataset "
                "(rows) and model (columns); the last column draws two independent true sample "
                "sets, what a perfect model would look like at this N." + more,
            )
        )
    doc.para(
        ("[@fig:overlays] overlays model and true samples. " if figs["overlays"] else "")
        + " ".join(qualitative_text(res))
        + (
            " The exact log-densities of the exact-likelihood models are in [@fig:density] "
            "(appendix)."
            if figs["density"]
            else ""
        )
    )


def abnormality_block(res: Results) -> str:
    return typst_table(
        evidence.abnormality_table(res),
        label=TABLES["abnormal"],
        size="8pt",
        caption="Sample diagnostics (seed "
        f"{res.seeds[0]}) beside the true samples' (oracle): the fraction of samples where "
        "the true density is zero, below its 1st percentile (low density) and far out; "
        "non-finite samples; each mode's weight over its true weight (smallest to largest); "
        "the spread (standard deviation ratio); and what is flagged (criteria in "
        "[@sec:data]).",
    )


def difference_block(res: Results) -> str:
    return typst_table(
        evidence.difference_table(res),
        label=TABLES["differences"],
        size="8pt",
        caption="The tests behind every comparison in the text: the lower (better) model "
        "minus the other, ± its standard error (SE; where it comes from in the next column); "
        "resolved, or a tie by this test (criteria in [@sec:data]). Energy distances in "
        "scientific notation.",
    )


def verdict_block(res: Results) -> str:
    return typst_table(
        evidence.verdict_table(res),
        label=TABLES["verdict"],
        float_=True,
        size="8.5pt",
        caption="Verdict per dataset: the model with the lowest exact NLL where two or more "
        "models have one, else the lowest energy distance; its value ± SE; how many of the "
        "other models the test resolves it ahead of ([@tab:differences]; it is the best model "
        "only when ahead of every other); its cost: network evaluations per sample, seconds to "
        "draw the samples and to train.",
    )


def quantitative_section(doc: Markup, res: Results) -> None:
    """The results table, the verdict and the tests in words; the studies in brief."""
    doc.heading("Quantitative comparison", label="sec:quantitative")
    doc.block(
        typst_table(
            quantitative_table(res),
            label="tab:results",
            float_=True,
            size="8.5pt",
            caption="Hold-out results"
            + (
                f" (seed {res.seeds[0]}; likelihoods ± SE over the hold-out points; sample "
                "metrics without an SE here, their differences' bootstrap SE in "
                "[@tab:differences])"
                if len(res.seeds) == 1
                else f" (mean ± SE over {len(res.seeds)} seeds)"
            )
            + ". NLL: exact, or ≤ minus the variational bound for bound models; KDE NLL: "
            "Gaussian KDE (Scott) of the samples; KL gap: NLL − true entropy; Bhattacharyya, "
            "energy distance and W2 against fresh true samples; NFE: network evaluations per "
            "sample. Lower is better everywhere. The oracle is fresh true samples with the true "
            "density.",
        )
    )
    doc.block(verdict_block(res))
    doc.para(
        "[@tab:results] gives the numbers and [@tab:verdict] the verdicts; every other "
        "measure's test (KDE NLL, Bhattacharyya distance, energy distance, W2) is in "
        "[@tab:differences]. "
        + " ".join(
            quantitative_text(
                res, other_measures=False, kde=_checks_in_main(res), bounds=_checks_in_main(res)
            )
        )
        + (
            ""
            if _checks_in_main(res)
            else " The bounds' checks and where the KDE and the exact likelihood disagree are "
            "in [@sec:tests]."
        )
    )
    if equal_compute.load(res.path) is not None:
        doc.para(
            "These are the models at convergence: each family trained as its own script "
            "trains it. Which is best per second of training is a different question; "
            "[@sec:equal-compute] answers it by giving every family the same training time."
        )
    summary = studies_summary(res) if _checks_in_main(res) else ""
    if summary:
        doc.para("What the numbers can resolve (the studies in the appendix). " + summary)


def body(res: Results, build: Path) -> tuple[str, dict]:
    """The Typst body of the report (main text, references, appendix) and the figure paths
    it uses."""
    figs, names_t, names_o = draw_figures(res, build)
    doc = Markup('#import "style.typ": *', "")
    doc.para(headline(res), "Summary.")
    models_section(doc, res)
    data_section(doc, res)
    training_section(doc, res, figs, build, names_t)
    qualitative_section(doc, res, figs, build, names_o)
    quantitative_section(doc, res)
    # the main text's floating tables and figures before the references, never among them
    doc.lines.append("#place.flush()")
    doc.lines.append("#pagebreak(weak: true)")
    doc.lines.append("#context [#metadata(here().position()) <references-start>]")
    doc.lines.append('#bibliography("refs.bib", style: "ieee", title: "References")')
    doc.lines.append("")
    doc.lines.append("#show: appendix")
    doc.lines.append("")
    tests_section(doc, res)
    appendix(doc, res, figs, build)
    return "\n".join(doc.lines) + "\n", figs


def title(res: Results) -> tuple[str, str]:
    models = [words(res.label(m)) for m in res.models]
    names = join([words(n) for n in res.datasets])
    if len(models) <= 3:
        t = " vs ".join(models) + " on " + names
    else:
        t = f"{len(res.families)} generative model families ({len(models)} table rows) on {names}"
    sub = (
        "EE660 generative-modelling project — written by experiments/report.py from "
        f"{res.path.name}/results.csv"
    )
    return t, sub


def compile_typst(build: Path, pdf: Path) -> None:
    import typst

    data = typst.compile(
        str(build / "main.typ"), root=str(build), ignore_system_fonts=True, format="pdf"
    )
    pdf.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(pdf, lambda f: f.write(data))


TOP_OF_PAGE_PT = 80.0
"""References starting this close to the top of a page (1-inch margin: 72 pt) start a
new page: the main text ended on the page before."""


def main_text_pages(build: Path, *, references: bool = True) -> int:
    """Pages before the appendix, with the references (or, ``references=False``, the pages
    the main text fills: up to the page on which the references start, that page excluded
    when they start at its top)."""
    import typst

    label = "<appendix-start>" if references else "<references-start>"
    pages = json.loads(
        typst.query(
            str(build / "main.typ"),
            label,
            field="value",
            root=str(build),
            ignore_system_fonts=True,
        )
    )
    if not pages:
        return -1
    if references:
        return int(pages[0]) - 1
    pos = pages[0]  # {"page": k, "x": ..., "y": "72pt"}: where the references start
    y = float(str(pos["y"]).removesuffix("pt"))
    return int(pos["page"]) - (1 if y <= TOP_OF_PAGE_PT else 0)


def render(results: Path, pdf: Path | None = None, *, build: Path | None = None) -> Path:
    """Write the report of ``results`` to ``pdf`` (default ``results/report.pdf``); the Typst
    sources and figures go to ``build`` (default ``results/report_build``)."""
    t0 = time.perf_counter()
    results = Path(results)
    pdf = results / "report.pdf" if pdf is None else Path(pdf)
    build = results / "report_build" if build is None else Path(build)
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    for name in ("main.typ", "style.typ", "refs.bib"):
        shutil.copyfile(TEMPLATE / name, build / name)
    res = load(results)
    text, _ = body(res, build)
    atomic_write_text(build / "body.typ", text)
    t, sub = title(res)
    meta = dict(title=t, subtitle=sub, author="flowlab", date=datetime.date.today().isoformat())
    atomic_write_text(build / "meta.json", json.dumps(meta, indent=2))
    compile_typst(build, pdf)
    pages, text_pages = main_text_pages(build), main_text_pages(build, references=False)
    print(
        f"[report] wrote {pdf}: main text {text_pages} page(s), {pages} with the references "
        f"(limit {page_limit(res)}), in {time.perf_counter() - t0:.1f} s; "
        f"sources in {build}"
    )
    return pdf
