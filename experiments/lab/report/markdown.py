"""The Markdown digest of the report (for a README or ``RESULTS.md``): the headline, the
tables, the likelihood comparisons and the studies, in plain text."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from flowlab._checkpoint import atomic_write_text

from ..results import Results
from .document import load, title
from .prose import headline, quantitative_text
from .studies_prose import kde_study_text, sampler_text
from .text import num, plain_text, pm


def _bounds_markdown(res: Results) -> list[str]:
    """For every model with both: its bounds (ELBO, IWAE) beside its exact NLL."""
    out = []
    bound_models = [
        m
        for m in res.models
        if any(math.isfinite(res.stat(n, m, "neg_bound")[0]) for n in res.datasets)
        and any(math.isfinite(res.stat(n, m, "exact_nll")[0]) for n in res.datasets)
    ]
    for m in bound_models:
        k = next(
            (d.get("iwae_k") for d in res.details.values() if d.get("iwae_k") is not None), None
        )
        out += [
            f"## {res.label(m)}: exact likelihood against its bounds",
            "",
            "Hold-out NLL in nats. The ELBO and the importance-weighted bound (IWAE"
            + (f", K = {k}" if k else "")
            + ") are lower bounds on the log-likelihood, so minus each is an upper bound on the "
            "exact NLL (quadrature over the latent); the gap is what a comparison by the bound "
            "alone would charge the model.",
            "",
            "| dataset | exact NLL | −ELBO | gap | −IWAE | gap |",
            "|---|---|---|---|---|---|",
        ]
        for n in res.datasets:
            e, b = res.stat(n, m, "exact_nll"), res.stat(n, m, "neg_bound")
            iw = res.detail_stat(n, m, "holdout_neg_iwae")
            out.append(
                f"| {n} | {pm(*e)} | {pm(*b)} | {num(b[0] - e[0], sign=True)} | {pm(*iw)} | "
                f"{num(iw[0] - e[0], sign=True)} |"
            )
        out.append("")
    return out


def _kde_gap_markdown(res: Results, exact: list[str]) -> list[str]:
    """KDE NLL minus exact NLL for every model in ``exact`` and the oracle."""
    out = [
        "## Exact against KDE likelihood, model by model",
        "",
        f"KDE NLL (Scott's bandwidth, {int(res.rows[0]['n_samples'])} samples) minus exact "
        "NLL, in nats; the oracle "
        "row is the KDE's own bias on fresh true samples. A model whose gap is well "
        "below the oracle's has samples smoother than the data, which the KDE rewards.",
        "",
        "| model | " + " | ".join(res.datasets) + " |",
        "|---|" + "---|" * len(res.datasets),
    ]
    for m in [*exact, "oracle"]:
        cells = []
        for n in res.datasets:
            gaps = [
                r["kde_nll"] - r["exact_nll"]
                for r in res.rows
                if r["dataset"] == n
                and r["model"] == m
                and r.get("kde_nll") is not None
                and r.get("exact_nll") is not None
            ]
            gaps = np.asarray([g for g in gaps if math.isfinite(g)], np.float64)
            se = gaps.std(ddof=1) / math.sqrt(gaps.size) if gaps.size > 1 else math.nan
            cells.append(pm(float(gaps.mean()), se) if gaps.size else "n/a")
        out.append(f"| {res.label(m)} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _misranking_markdown(res: Results, exact: list[str]) -> list[str]:
    """Each pair of models in ``exact`` that the KDE ranks the other way round."""
    lines = []
    for n in res.datasets:
        ex = {m: res.stat(n, m, "exact_nll") for m in exact}
        kd = {m: res.stat(n, m, "kde_nll") for m in exact}
        flips = []
        for i, a in enumerate(exact):
            for b in exact[i + 1 :]:
                de, dk = ex[a][0] - ex[b][0], kd[a][0] - kd[b][0]
                se_e = math.hypot(ex[a][1], ex[b][1])
                if de * dk < 0 and abs(de) > 2 * se_e:
                    better, worse = (a, b) if de < 0 else (b, a)
                    flips.append(
                        f"{res.label(better)} beats {res.label(worse)} by "
                        f"{num(abs(de))} nats of exact NLL, but the KDE puts it "
                        f"{num(abs(dk))} behind"
                    )
        r_e = sorted(exact, key=lambda m: ex[m][0])
        r_k = sorted(exact, key=lambda m: kd[m][0])
        head = f"* **{n}**: best by exact NLL {res.label(r_e[0])}, by KDE NLL {res.label(r_k[0])}"
        lines.append(head + (": " + "; ".join(flips) + "." if flips else "; no pair is misranked."))
    return [
        "## Where the KDE misranks models",
        "",
        "Pairs of exact-likelihood models whose exact NLLs differ by more than two "
        "standard errors and whose KDE NLLs order them the other way:",
        "",
        *lines,
        "",
    ]


def likelihood_markdown(res: Results) -> list[str]:
    """Markdown sections on what each likelihood says: every bound beside the exact NLL of
    the same model (the VAE's ELBO and IWAE), exact against KDE NLL for every
    exact-likelihood model, and each pair of models the KDE ranks the other way round from
    the exact NLL (mean ± standard error over seeds)."""
    out = _bounds_markdown(res)
    exact = [
        m
        for m in res.models
        if all(math.isfinite(res.stat(n, m, "exact_nll")[0]) for n in res.datasets)
    ]
    if exact:
        out += _kde_gap_markdown(res, exact) + _misranking_markdown(res, exact)
    return out


MARKDOWN_REFS = {
    "tab:results": "the results table",
    "tab:verdict": "the verdict table",
    "tab:differences": "the tests table",
    "tab:abnormal": "the sample-diagnostics table",
    "tab:training": "the training table",
    "tab:bounds": "the bounds table",
    "tab:kde-check": "the KDE-against-exact table",
    "tab:hp": "the settings in the PDF",
    "fig:training": "the training figure",
    "fig:overlays": "the samples figure",
    "sec:equal-compute": "the PDF's equal-compute appendix",
}
"""What each of the report's cross-references reads as in the Markdown digest (the section
headings below carry these names)."""


def md_text(s: str) -> str:
    """Generated prose as Markdown: cross-references named as :data:`MARKDOWN_REFS`
    (anything else as plain text does it)."""
    for label, name in MARKDOWN_REFS.items():
        s = s.replace(f"[@{label}]", name)
    return plain_text(s)


def markdown_table(tab, *, group_header: str = "dataset") -> list[str]:
    """A report :class:`~lab.report.tables.Table` as a Markdown table (its groups as a first
    column) with its notes below."""
    grouped = any(g for g, _, _ in tab.rows)
    header = ([group_header] if grouped else []) + list(tab.header)
    cell = lambda c: plain_text(str(c)).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g, _, cells in tab.rows:
        lines.append("| " + " | ".join(([g] if grouped else []) + [cell(c) for c in cells]) + " |")
    lines.append("")
    lines += [md_text(n) + "\n" for n in tab.notes or []]
    return lines


def _committed(path: Path) -> bool:
    """Whether ``path`` is tracked by git or a file ``git`` would add (not ignored)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=path.parent, capture_output=True
        )
    except OSError:
        return False
    return out.returncode == 1  # 1: not ignored; 0: ignored; 128: not a repository


def write_markdown(results: Path, path: Path, pdf: Path) -> Path:
    """A Markdown digest of the report for RESULTS.md: the headline, the verdict, results,
    tests, diagnostics and training tables (each ± labelled as the report labels it), the
    quantitative analysis and the studies in plain text, and links to the typeset PDF and
    to the comparison's figures beside it (only files outside git-ignored folders, so every
    link works in a clone)."""
    from ..studies import equal_compute
    from . import evidence
    from .equal_compute import equal_compute_table
    from .tables import quantitative_table

    res = load(results)
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    figs = sorted(Path(pdf).parent.glob(f"{Path(pdf).stem.removesuffix('_report')}_*.png"))
    figs = [f for f in figs if _committed(f)]
    one = len(res.seeds) == 1
    spread = (
        f"seed {res.seeds[0]}: likelihoods ± SE over the hold-out points"
        if one
        else f"mean ± SE over {len(res.seeds)} seeds"
    )
    text = [
        f"# {title(res)[0]}",
        "",
        f"Written by `experiments/report.py` from the run's `results.csv` (in the git-ignored "
        f"`{rel(Path(results))}/`; `python {res.config.get('script', 'experiments/compare.py')}` "
        f"writes it); the typeset report is [{rel(pdf)}]({rel(pdf)}).",
        "",
        md_text(headline(res)),
        "",
        "## The verdict table",
        "",
        *markdown_table(evidence.verdict_table(res)),
        "## The results table",
        "",
        f"Hold-out results ({spread}). NLL: exact, or ≤ minus the variational bound; lower is "
        "better everywhere; energy distance in units of 10⁻³.",
        "",
        *markdown_table(quantitative_table(res)),
        "## What the tables say",
        "",
        *[md_text(p) + "\n" for p in quantitative_text(res)],
        "## The tests table",
        "",
        "Every difference the text states, with its standard error and how it was computed.",
        "",
        *markdown_table(evidence.difference_table(res)),
        "## The sample-diagnostics table",
        "",
        *markdown_table(evidence.abnormality_table(res)),
        "## The training table",
        "",
        *markdown_table(evidence.training_table(res)),
    ]
    for name, make in (
        ("bounds", evidence.bound_table),
        ("KDE-against-exact", evidence.kde_check_table),
    ):
        tab = make(res)
        if tab is not None:
            text += [f"## The {name} table", "", *markdown_table(tab)]
    study = equal_compute.load(res.path)
    if study is not None:
        text += [
            "## Equal compute",
            "",
            "Every family trained for the same wall-clock seconds (the PDF's appendix has the "
            "text and the tests).",
            "",
            *markdown_table(equal_compute_table(study), group_header="group"),
        ]
    if res.kde:
        text += ["## What the KDE measures", "", *[md_text(p) + "\n" for p in kde_study_text(res)]]
    if res.samplers:
        text += ["## Samplers", "", *[md_text(p) + "\n" for p in sampler_text(res)]]
    if figs:
        text += ["## Figures", "", *[f"![{f.stem}]({rel(f)})" for f in figs], ""]
    atomic_write_text(path, "\n".join(text))
    return path
