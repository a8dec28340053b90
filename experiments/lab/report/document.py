"""The Typst document: the figures drawn, the main text's sections assembled from the prose,
tables and figures (the appendix is :mod:`~lab.report.appendix`), the title, and the PDF
compiled from ``lab/report_template/``."""

from __future__ import annotations

import datetime
import json
import math
import shutil
import time
from pathlib import Path

from flowlab import datasets
from flowlab._checkpoint import atomic_write_bytes, atomic_write_text

from .. import results as schema
from ..results import Results
from .analysis import all_sample_checks
from .appendix import appendix
from .figures import (
    figure_density,
    figure_overlays,
    figure_samplers,
    figure_training,
    figure_width,
    main_datasets,
    overlay_layout,
    training_layout,
    typst_figure,
)
from .prose import headline, qualitative_text, quantitative_text, training_text
from .studies_prose import studies_summary
from .tables import hyperparameter_table, quantitative_table, typst_table
from .text import (
    DATASET_TEXT,
    Markup,
    esc,
    join,
    num,
    typst_text,
)

TEMPLATE = Path(__file__).resolve().parent.parent / "report_template"  # lab/report_template
MAIN_TEXT_PAGE_LIMIT = 6


def load(results: Path) -> Results:
    """The results folder as the report reads it (:func:`lab.results.load`; row labels from
    ``config.json`` or the family registry)."""
    return schema.load(results)


def draw_figures(res: Results, build: Path) -> tuple[dict, list[str], list[str]]:
    """Every figure of the report, drawn into ``build/figures``: ``(figure paths, datasets in
    the main text's training figure, datasets in its overlay figure)``; the appendix has
    every dataset's training curves with the likelihood, and the overlays the main text
    leaves out."""
    fig_dir = build / "figures"
    cols_t, h_t = training_layout(res)
    names_t = main_datasets(res, math.ceil(len(res.families) / max(cols_t, 1)), h_t)
    cols_o, w_o = overlay_layout(res)
    names_o = main_datasets(res, math.ceil((len(res.models) + 1) / max(cols_o, 1)), w_o)
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
    doc.heading("Models", label="sec:models")
    doc.para(
        "The course lists six model families: energy-based models [@du2019] [@song2021ebm], "
        "denoising score matching, variational autoencoders [@kingma2014], DDPMs [@ho2020], "
        "continuous normalising flows [@grathwohl2019] and GANs [@goodfellow2014]. All are "
        "implemented in flowlab (JAX, Equinox, Diffrax, Optax) behind one protocol: a model "
        "declares whether its likelihood is exact, a bound or absent, and is evaluated "
        f"accordingly. This report compares {len(res.families)} of them (networks and "
        "training budgets in [@tab:hp]):"
    )
    for fam in res.families:
        text = res.family_text(fam)
        rows_of = [m for m in res.models if res.family(m) == fam and m != fam]
        extra = f" (table rows: {join([res.label(m) for m in rows_of])})" if rows_of else ""
        doc.lines.append(
            f"- *{esc(res.label(fam))}*{esc(extra)}: "
            + typst_text(text[0].upper() + text[1:] + ".")
        )
    doc.lines.append("")


def data_section(doc: Markup, res: Results) -> None:
    """The datasets, the sizes and every measure of the evaluation."""
    n_seeds = len(res.seeds)
    seeds_txt = (
        "one seed"
        if n_seeds == 1
        else f"{n_seeds} seeds (tables: mean ± standard error over seeds)"
    )
    doc.heading("Datasets and evaluation", label="sec:data")
    ds = [
        f"{n}: {DATASET_TEXT.get(n, n)} (true entropy {num(datasets.entropy(n))} nats)"
        for n in res.datasets
    ]
    r0 = res.rows[0]
    doc.para(
        f"Each model is trained on {int(r0['n_train'])} points of "
        + ("each of " if len(ds) > 1 else "")
        + "the course datasets "
        + "; ".join(ds)
        + f", and evaluated on {int(r0['n_holdout'])} hold-out points drawn with an independent "
        f"key ({seeds_txt}). Likelihoods are in nats per point: the exact hold-out NLL where a "
        "model has one (adaptive solver, exact Jacobian trace), minus a variational bound (an "
        "upper bound on the NLL, marked ≤) where it has only that, and the KL gap, NLL minus "
        "the true entropy, an estimate of KL(data ‖ model). Every model is also scored by its "
        f"{int(r0['n_samples'])} samples, as the course suggests [@singh2023]: the hold-out "
        "NLL under a Gaussian KDE of the samples (Scott's bandwidth), the Bhattacharyya "
        "distance between KDEs of model and fresh true samples, the energy distance "
        "[@szekely2013] and the exact 2-Wasserstein distance W2. The oracle row scores fresh "
        "true samples exactly as model samples are scored, which sets the scale of every column."
    )


def training_section(doc: Markup, res: Results, figs: dict, build: Path, shown: list[str]) -> None:
    """The hyperparameter table, the training figure (datasets ``shown``) and the training
    curves in words."""
    more = (
        ""
        if len(shown) == len(res.datasets)
        else (f" Shown: {join(shown)}; every dataset is in the appendix.")
    )
    doc.heading("Training", label="sec:training")
    doc.block(
        typst_table(
            hyperparameter_table(res),
            label="tab:hp",
            float_=True,
            caption="Hyperparameters of the runs shown (the best found; see the appendix for "
            "what else was tried and every setting). Adam with linear warm-up, cosine decay to "
            "1% and global-norm clipping at 1; MLP = width × depth. Train time: wall-clock "
            "seconds including compilation and hold-out evaluations, on the machine in the "
            "appendix.",
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
                caption="Training curves: per-step training loss (faint), its exponential moving "
                "average (blue) and the loss on all hold-out points (orange; evaluated with the "
                "EMA weights where the run keeps one), against gradient steps. The loss is each "
                "model's own objective, so values are not comparable across models." + more,
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
    """The overlay figure (datasets ``shown``) and what it and the sample checks show."""
    more = (
        ""
        if len(shown) == len(res.datasets)
        else (f" Shown: {join(shown)}; the other datasets are in the appendix.")
    )
    checks = all_sample_checks(res)
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
        + " ".join(qualitative_text(res, checks))
        + (
            " The exact log-densities of the exact-likelihood models are in [@fig:density] "
            "(appendix)."
            if figs["density"]
            else ""
        )
    )


def quantitative_section(doc: Markup, res: Results) -> None:
    """The results table and who wins by which measure; the studies in brief."""
    doc.heading("Quantitative comparison", label="sec:quantitative")
    doc.block(
        typst_table(
            quantitative_table(res),
            label="tab:results",
            float_=True,
            size="8.5pt",
            caption="Hold-out results"
            + (
                " (seed 0; ± is the standard error over the hold-out points)"
                if len(res.seeds) == 1
                else " (mean ± standard error over seeds)"
            )
            + ". NLL: exact, or ≤ minus the variational bound for bound models; KDE NLL: "
            "Gaussian KDE (Scott) of the samples; KL gap: NLL − true entropy; Bhattacharyya, "
            "energy distance and W2 against fresh true samples; NFE: network evaluations per "
            "sample. Lower is better everywhere. The oracle is fresh true samples with the true "
            "density.",
        )
    )
    doc.para("[@tab:results] gives the numbers. " + " ".join(quantitative_text(res)))
    summary = studies_summary(res)
    if summary:
        doc.heading("What the numbers can resolve", level=2, label="sec:studies")
        doc.para(summary)


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
    doc.lines.append("#context [#metadata(here().page()) <references-start>]")
    doc.lines.append('#bibliography("refs.bib", style: "ieee", title: "References")')
    doc.lines.append("")
    doc.lines.append("#show: appendix")
    doc.lines.append("")
    appendix(doc, res, figs, build)
    return "\n".join(doc.lines) + "\n", figs


def title(res: Results) -> tuple[str, str]:
    models = [res.label(m) for m in res.models]
    if len(models) <= 3:
        t = " vs ".join(models) + " on " + join(res.datasets)
    else:
        t = f"{len(models)} generative models on {join(res.datasets)}"
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


def main_text_pages(build: Path, *, references: bool = True) -> int:
    """Pages before the appendix, with the references (or, ``references=False``, up to the
    page on which they start)."""
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
    return int(pages[0]) - 1 if references else int(pages[0])


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
        f"(course limit {MAIN_TEXT_PAGE_LIMIT}), in {time.perf_counter() - t0:.1f} s; "
        f"sources in {build}"
    )
    return pdf
