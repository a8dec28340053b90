"""The Markdown digest of the report (for a README or ``RESULTS.md``): the headline, the
tables, the likelihood comparisons and the studies, in plain text."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from flowlab._checkpoint import atomic_write_text

from .. import tables
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


def write_markdown(results: Path, path: Path, pdf: Path) -> Path:
    """A Markdown digest of the report (headline, tables, the quantitative analysis and the
    studies, in plain text) for a README or RESULTS.md, with links to the PDF and figures."""
    res = load(results)
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    figs = sorted((Path(results) / "report_build" / "figures").glob("*.png"))
    order = [*res.models, "oracle"]
    text = [
        f"# {title(res)[0]}",
        "",
        f"Written by `experiments/report.py` from `{rel(Path(results) / 'results.csv')}`; the "
        f"typeset report is [{rel(pdf)}]({rel(pdf)}).",
        "",
        plain_text(headline(res)),
        "",
        "## Tables",
        "",
        tables.summary_markdown(res.rows, order),
        "## Exact vs KDE likelihood, and who wins",
        "",
        *[plain_text(p) + "\n" for p in quantitative_text(res)],
        *likelihood_markdown(res),
    ]
    if res.kde:
        text += [
            "## What the KDE measures",
            "",
            *[plain_text(p) + "\n" for p in kde_study_text(res)],
        ]
    if res.samplers:
        text += ["## Samplers", "", *[plain_text(p) + "\n" for p in sampler_text(res)]]
    if figs:
        text += ["## Figures", "", *[f"![{f.stem}]({rel(f)})" for f in figs], ""]
    atomic_write_text(path, "\n".join(text))
    return path
