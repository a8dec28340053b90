"""Write the comparison report (figures/report.pdf) and RESULTS.md from a compare.py run.

    python experiments/compare.py && python experiments/report.py
    python experiments/report.py --results results/compare_quick --pdf /tmp/report.pdf

Reads ``results.csv``, ``config.json`` and the figures of ``--results`` (nothing is
retrained or re-evaluated) and writes a four-page PDF with matplotlib's ``PdfPages`` (no
LaTeX): (1) setup, hyperparameters and the exact-vs-KDE analysis, (2) the tables
and the exact-vs-KDE NLL figure, (3) training curves, (4) samples and densities. Also writes a
Markdown summary (default ``RESULTS.md`` at the project root) with the same tables, analysis and
links to the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import ROOT  # noqa: E402
from compare import (  # noqa: E402
    LABELS,
    MODELS,
    SUMMARY_METRICS,
    _fmt,
    read_csv,
    summarise,
    summary_markdown,
)
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from flowlab._checkpoint import atomic_write_text  # noqa: E402

NUM_PAGES = 4
PAGE = (11.69, 8.27)  # A4 landscape, inches
FIGURES = ("training", "samples", "density", "nll")
MODEL_TEXT = {
    "cnf_mle": "CNF trained by maximum likelihood (FFJORD objective: exact Jacobian trace, "
    "back-propagation through an adaptive Tsit5 solve at rtol = atol = 1e-3).",
    "cnf_fm": "CNF trained by conditional flow matching on straight paths from N(0, I) "
    "(simulation-free).",
    "diffusion_sde": "VP-SDE diffusion model trained by denoising score matching, sampled "
    "with Euler-Maruyama on the reverse SDE.",
    "diffusion_ode": "The same diffusion checkpoint sampled with the probability-flow ODE "
    "(adaptive Tsit5). Its density, for both diffusion rows, is the exact PF-ODE density.",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--results", type=Path, default=ROOT / "results" / "compare")
    p.add_argument("--pdf", type=Path, default=ROOT / "figures" / "report.pdf")
    p.add_argument("--results-md", type=Path, default=ROOT / "RESULTS.md")
    args = p.parse_args(argv)
    if not (args.results / "results.csv").exists():
        p.error(f"no results.csv in {args.results}; run experiments/compare.py first")
    return args


# -- the analysis, computed from the numbers ------------------------------------------------


def _mean(summ, names, model, col) -> float:
    vals = [summ[(n, model)][col][0] for n in names if (n, model) in summ]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def analysis(rows: list[dict]) -> list[str]:
    """Paragraphs on exact vs KDE likelihoods, every number read from ``rows``."""
    summ = summarise(rows)
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    models = [m for m in MODELS if any((n, m) in summ for n in names)]
    paras = []

    floor = _mean(summ, names, "oracle", "kde_gap")
    model_gaps = {m: _mean(summ, names, m, "kde_gap") for m in models}
    gap_txt = ", ".join(f"{m} {g:+.3f}" for m, g in model_gaps.items() if math.isfinite(g))
    paras.append(
        "KDE bias. Averaged over the datasets, the KDE NLL of fresh true samples exceeds the "
        f"true hold-out NLL by {floor:+.3f} nats: this is the bias of the kernel density "
        "estimate itself (Scott's bandwidth smooths thin structures), the floor below which no "
        f"KDE comparison can resolve anything. For the models, KDE NLL - exact NLL is {gap_txt} "
        "nats on average. A gap well below the oracle's means the model density is itself "
        "smooth (blurred) at the KDE's scale, so the KDE loses little more; a gap near the "
        "oracle's means the model is sharp and the KDE hides part of its fit."
    )

    # ranking agreement per dataset
    agree, total, lines = 0, 0, []
    for n in names:
        ms = [
            m
            for m in models
            if (n, m) in summ
            and math.isfinite(summ[(n, m)]["exact_nll"][0])
            and math.isfinite(summ[(n, m)]["kde_nll"][0])
        ]
        if len(ms) < 2:
            continue
        best_exact = min(ms, key=lambda m: summ[(n, m)]["exact_nll"][0])
        best_kde = min(ms, key=lambda m: summ[(n, m)]["kde_nll"][0])
        total += 1
        agree += best_exact == best_kde
        lines.append(f"{n}: {best_exact} by exact NLL, {best_kde} by KDE NLL")
    if total:
        paras.append(
            f"Model selection. The best model by exact NLL and by KDE NLL agree on {agree} of "
            f"{total} datasets ({'; '.join(lines)})."
        )

    # diffusion's KDE estimate vs the CNF's exact NLL
    if "cnf_fm" in models and "diffusion_sde" in models:
        parts = []
        for n in names:
            if (n, "cnf_fm") not in summ or (n, "diffusion_sde") not in summ:
                continue
            cnf = summ[(n, "cnf_fm")]["exact_nll"][0]
            d_kde = summ[(n, "diffusion_sde")]["kde_nll"][0]
            d_exact = summ[(n, "diffusion_sde")]["exact_nll"][0]
            parts.append(
                f"{n}: diffusion KDE {d_kde:.3f} vs its exact {d_exact:.3f} vs CNF (FM) "
                f"exact {cnf:.3f}"
            )
        diff = _mean(summ, names, "diffusion_sde", "kde_nll") - _mean(
            summ, names, "cnf_fm", "exact_nll"
        )
        if parts:
            verdict = (
                "smaller than the KDE's own bias, so the KDE cannot tell these models apart"
                if abs(diff) <= abs(floor)
                else "larger than the KDE's own bias, so part of it reflects the models"
            )
            parts.append(
                f"on average the diffusion model's KDE NLL is {diff:+.3f} nats from the CNF's "
                f"exact NLL, against a KDE bias of {floor:+.3f} nats on true samples: {verdict}"
            )
            paras.append(
                "Diffusion vs CNF. Comparing a diffusion model's KDE estimate with a CNF's "
                "exact NLL mixes two estimators: " + "; ".join(parts) + ". The like-for-like "
                "comparison is exact vs exact (the PF-ODE density), which every model here has."
            )
    if "diffusion_sde" in models and "diffusion_ode" in models:
        d = _mean(summ, names, "diffusion_sde", "kde_nll") - _mean(
            summ, names, "diffusion_ode", "kde_nll"
        )
        b = _mean(summ, names, "diffusion_sde", "bhattacharyya") - _mean(
            summ, names, "diffusion_ode", "bhattacharyya"
        )
        paras.append(
            "Samplers. On the same checkpoint, the reverse SDE's samples score "
            f"{d:+.3f} nats KDE NLL and {b:+.4f} Bhattacharyya distance relative to the "
            "PF-ODE's (positive: the SDE is worse), although both rows share one exact "
            "likelihood: sample-based metrics measure the sampler as well as the model."
        )
    kl = {m: _mean(summ, names, m, "kl_gap") for m in models}
    paras.append(
        "Fit. KL gap (exact NLL - true entropy, an estimate of KL(data || model) up to "
        "hold-out noise), mean over datasets: "
        + ", ".join(f"{m} {v:.3f}" for m, v in kl.items() if math.isfinite(v))
        + f"; oracle {_mean(summ, names, 'oracle', 'kl_gap'):+.3f} (hold-out sampling noise)."
    )
    return paras


def hyperparameter_lines(config: dict) -> list[str]:
    lines = []
    for fam, hp in config.get("budgets", {}).items():
        lines.append(
            f"{LABELS.get(fam, fam)}: MLP width {hp['width']}, depth {hp['depth']}, SiLU; "
            f"{hp['steps']} Adam steps, batch {hp['batch_size']}, peak lr {hp['lr']:g} "
            f"(warm-up, cosine decay), EMA {hp['ema_decay']}"
        )
    ev = config.get("evaluation", {})
    if ev:
        lines.append(
            f"Evaluation: N = {ev['n_samples']} samples per model; reverse SDE "
            f"{ev['sde_steps']} Euler-Maruyama steps; density grid {ev['grid']}x{ev['grid']}; "
            "exact NLLs with adaptive Tsit5, rtol = atol = 1e-5, exact trace."
        )
    return lines


# -- the PDF --------------------------------------------------------------------------------


def _text_page(pdf, title: str, blocks: list[tuple[str, list[str]]], width: int = 150):
    fig = plt.figure(figsize=PAGE)
    fig.text(0.05, 0.95, title, fontsize=16, weight="bold", va="top")
    y = 0.9
    for heading, paras in blocks:
        fig.text(0.05, y, heading, fontsize=11.5, weight="bold", va="top")
        y -= 0.035
        for para in paras:
            wrapped = textwrap.wrap(para, width) or [""]
            fig.text(0.06, y, "\n".join(wrapped), fontsize=8.6, va="top", linespacing=1.35)
            y -= 0.0215 * len(wrapped) + 0.008
        y -= 0.012
    pdf.savefig(fig)
    plt.close(fig)


def _table_text(rows: list[dict]) -> str:
    summ = summarise(rows)
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    cols = [("model", 14)] + [(lbl, 17 if c != "sample_nfe" else 6) for c, lbl in SUMMARY_METRICS]
    out = []
    for n in names:
        h = summ[next(k for k in summ if k[0] == n)]["true_entropy"][0]
        out.append(f"{n}   (true entropy {h:.3f} nats)")
        out.append(" ".join(f"{lbl:<{w}}" for lbl, w in cols))
        for m in [*MODELS, "oracle"]:
            if (n, m) not in summ:
                continue
            cells = [f"{m:<14}"]
            for (c, _), (_, w) in zip(SUMMARY_METRICS, cols[1:], strict=True):
                cells.append(f"{_fmt(*summ[(n, m)][c], c):<{w}}")
            out.append(" ".join(cells))
        out.append("")
    return "\n".join(out)


def _show_image(fig, rect, path: Path) -> None:
    """Draw the PNG at ``path`` into ``rect`` (figure fractions), aspect preserved."""
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    if path.exists():
        ax.imshow(plt.imread(path))
    else:
        ax.text(0.5, 0.5, f"missing: {path.name}", ha="center", va="center")


def _image_page(pdf, title: str, images: list[Path]):
    """One landscape page with the images side by side (each as large as fits)."""
    fig = plt.figure(figsize=PAGE)
    fig.suptitle(title, fontsize=14, weight="bold")
    width = 0.96 / len(images)
    for i, path in enumerate(images):
        _show_image(fig, (0.02 + i * width, 0.02, width, 0.9), path)
    pdf.savefig(fig)
    plt.close(fig)


def write_pdf(path: Path, rows: list[dict], config: dict, results: Path) -> None:
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows if r["model"] != "oracle"))
    seeds = sorted({r["seed"] for r in rows})
    first = next(r for r in rows)
    setup = [
        f"Datasets: {', '.join(names)} (the course's 2D datasets), n = {int(first['n_train'])} "
        f"training and {int(first['n_holdout'])} hold-out points from independent keys; "
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}), reported as mean ± std.",
        *[f"{m}: {MODEL_TEXT[m]}" for m in models if m in MODEL_TEXT],
        "oracle: fresh true samples scored exactly like model samples; its exact NLL is "
        "-mean log p_data(hold-out), so every metric has a scale.",
    ]
    metrics_txt = [
        "exact NLL: -mean log p(hold-out) from the model's exact density; KDE NLL: "
        "-mean log of a Gaussian KDE (Scott) of N model samples at the hold-out points; "
        "KL gap: exact NLL - true entropy; Bhattacharyya (KDE, 200x200 grid), W2 (exact "
        "assignment), energy distance and MMD² (Gaussian kernel, median bandwidth) against "
        "N fresh true samples; NFE of the sampler; times in seconds on "
        f"{config.get('machine', {}).get('cpu_count', '?')} CPU core(s).",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path) as pdf:
        _text_page(
            pdf,
            "Continuous-time generative models on 2D data: exact vs sample-based evaluation",
            [
                ("Models and data", setup),
                ("Hyperparameters", hyperparameter_lines(config)),
                ("Metrics", metrics_txt),
                ("Exact vs KDE likelihood: analysis", analysis(rows)),
            ],
        )
        fig = plt.figure(figsize=PAGE)
        fig.text(0.03, 0.96, "Results (mean ± std over seeds)", fontsize=14, weight="bold",
                 va="top")  # fmt: skip
        table = _table_text(rows)
        longest = max(len(line) for line in table.splitlines())
        # monospace glyphs are ~0.6 em wide; fit the table to the page in both directions
        size = min(
            7.5, 540 / max(1, len(table.splitlines())), 0.94 * PAGE[0] * 72 / (0.6 * longest)
        )
        fig.text(0.03, 0.91, table, family="monospace", fontsize=size, va="top")
        _show_image(fig, (0.02, 0.01, 0.96, 0.36), results / "nll.png")
        pdf.savefig(fig)
        plt.close(fig)
        _image_page(pdf, "Training curves (train and hold-out)", [results / "training.png"])
        _image_page(
            pdf,
            "Samples and exact log-densities",
            [results / "samples.png", results / "density.png"],
        )
        info = pdf.infodict()
        info["Title"] = "flowlab comparison report"


def write_results_md(path: Path, rows: list[dict], config: dict, results: Path, pdf: Path) -> None:
    pdf_link = os.path.relpath(pdf, path.parent)

    def link(name: str) -> str:
        fig = path.parent / "figures" / f"compare_{name}.png"
        target = fig if fig.exists() else results / f"{name}.png"
        return os.path.relpath(target, path.parent)

    seeds = sorted({r["seed"] for r in rows})
    text = [
        "# Results: CNFs vs diffusion on the course datasets",
        "",
        f"Written by `experiments/report.py` from `{os.path.relpath(results, path.parent)}/"
        f"results.csv` (mode `{config.get('mode', '?')}`, {len(seeds)} seed(s); mean ± std "
        "over seeds). Regenerate with `python experiments/compare.py && python "
        f"experiments/report.py`; the PDF report is [{pdf_link}]({pdf_link}).",
        "",
        "Columns: exact NLL and KDE NLL on the hold-out set (nats), their difference, KL gap = "
        "exact NLL − true entropy, sample metrics against fresh true samples (Bhattacharyya, "
        "W2, energy distance, MMD²), sampler NFE, training and sampling time (s). The oracle "
        "row scores fresh true samples the same way. Times are wall-clock seconds on the "
        "machine that ran `compare.py` (see `config.json`); runs that share the cores with "
        "other jobs take longer, so compare times within one table, and see "
        "[benchmarks/README.md](benchmarks/README.md) for quiet-machine speed figures.",
        "",
        "## Hyperparameters",
        "",
        *[f"* {line}" for line in hyperparameter_lines(config)],
        "",
        "## Tables",
        "",
        summary_markdown(rows),
        "## Exact vs KDE likelihood",
        "",
        *[p + "\n" for p in analysis(rows)],
        "## Figures",
        "",
        *[f"![{name}]({link(name)})" for name in FIGURES],
        "",
    ]
    atomic_write_text(path, "\n".join(text))


def main(argv=None) -> Path:
    args = parse_args(argv)
    rows = read_csv(args.results / "results.csv")
    config_path = args.results / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    write_pdf(args.pdf, rows, config, args.results)
    write_results_md(args.results_md, rows, config, args.results, args.pdf)
    print(f"[report] wrote {args.pdf} ({NUM_PAGES} pages) and {args.results_md}")
    return args.pdf


if __name__ == "__main__":
    sys.exit(main() and 0)
