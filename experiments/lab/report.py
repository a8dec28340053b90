"""The typeset report (Typst, US Letter, 11 pt, 1-inch margins) from results on disk.

    python experiments/report.py --results results/course_project
    python experiments/report.py --results results/compare --pdf figures/report.pdf

Reads, and never trains or re-evaluates a model:

* ``results.csv`` (the schema of ``tables.py``), ``config.json`` (hyperparameters,
  evaluation settings, machine; optional ``families``/``labels`` maps from a table row to
  the family that trained it), ``details.json`` (optional estimator labels);
* ``models/<dataset>/seed<k>/<family>/history.json`` (training curves);
* ``arrays/<dataset>_seed<k>.npz`` (``train``, ``holdout``, ``reference`` and
  ``samples__<row>`` for every row, oracle included) and ``arrays/<dataset>_density.npz``
  (``xs``, ``ys``, ``logp__<row>``, ``logp__true``), written by :func:`write_cell_arrays`
  and :func:`write_density`;
* ``studies/kde.csv`` and ``studies/samplers.json`` (``studies.py``), when present.

Writes ``report.pdf`` (``--pdf``) and the Typst sources it was compiled from
(``report_build/``: ``main.typ`` and ``style.typ`` from ``report_template/``, the generated
``body.typ`` and ``meta.json``, and the figures, drawn at the size they are printed). The
text is generated from the numbers: which model wins by which measure, where the KDE and
the exact likelihood disagree, what looks wrong in the samples. The main text follows the
course's list (models, datasets, training curves with hyperparameters, qualitative and
quantitative comparison); the appendix holds every dataset, seed, hyperparameter and solver
setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))

import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

import flowlab  # noqa: E402
from flowlab import datasets, plotting  # noqa: E402
from flowlab._checkpoint import atomic_write_bytes, atomic_write_text  # noqa: E402

from . import tables  # noqa: E402
from .common import ROOT  # noqa: E402

TEMPLATE = Path(__file__).resolve().parent / "report_template"
COMPACT_AFTER = 3  # table rows beyond which the text summarises instead of listing
TEXT_WIDTH_IN = 6.5  # US Letter minus two 1-inch margins
FIG_DPI = 220
MAIN_TEXT_PAGE_LIMIT = 6

# -- the on-disk layout of a results folder ---------------------------------------------------


def _arrays_dir(results: Path) -> Path:
    return Path(results) / "arrays"


def write_cell_arrays(
    results: Path, dataset: str, seed: int, *, train, holdout, reference, samples: dict
) -> Path:
    """Save the arrays of one (dataset, seed) for the report: training and hold-out sets,
    the fresh true ``reference`` samples the sample metrics used, and ``samples`` (row name
    -> ``(N, 2)`` samples; include ``"oracle"``, fresh true samples scored as a model)."""
    path = _arrays_dir(results) / f"{dataset}_seed{seed}.npz"
    arrays = dict(train=train, holdout=holdout, reference=reference)
    arrays.update({f"samples__{k}": v for k, v in samples.items()})
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: np.savez_compressed(f, **arrays))
    return path


def write_density(results: Path, dataset: str, xs, ys, grids: dict) -> Path:
    """Save log-densities on a grid (``grids``: row name or ``"true"`` -> values of shape
    ``(len(ys) * len(xs),)`` or ``(len(ys), len(xs))``)."""
    path = _arrays_dir(results) / f"{dataset}_density.npz"
    arrays = dict(xs=np.asarray(xs), ys=np.asarray(ys))
    arrays.update({f"logp__{k}": np.asarray(v) for k, v in grids.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: np.savez_compressed(f, **arrays))
    return path


def load_cells(results: Path) -> list[dict]:
    """Every saved (dataset, seed): dicts with ``dataset``, ``seed``, ``train``, ``holdout``,
    ``reference`` and ``samples`` (row -> array)."""
    cells = []
    for path in sorted(_arrays_dir(results).glob("*_seed*.npz")):
        m = re.fullmatch(r"(.+)_seed(\d+)\.npz", path.name)
        if m is None:
            continue
        with np.load(path) as z:
            cell = dict(dataset=m.group(1), seed=int(m.group(2)), samples={})
            for k in z.files:
                if k.startswith("samples__"):
                    cell["samples"][k[len("samples__") :]] = z[k]
                else:
                    cell[k] = z[k]
        cells.append(cell)
    return cells


def load_density(results: Path, dataset: str):
    """``(xs, ys, grids)`` saved by :func:`write_density`, or ``None``."""
    path = _arrays_dir(results) / f"{dataset}_density.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        grids = {k[len("logp__") :]: z[k] for k in z.files if k.startswith("logp__")}
        return z["xs"], z["ys"], grids


# -- loading ----------------------------------------------------------------------------------

KNOWN_LABELS = {
    "cnf_mle": "CNF (max. likelihood)",
    "cnf_fm": "CNF (flow matching)",
    "diffusion": "VP diffusion (DSM)",
    "diffusion_sde": "VP diffusion, reverse SDE",
    "diffusion_ode": "VP diffusion, PF-ODE",
    "ddpm": "DDPM (L_simple)",
    "dsm": "single-noise DSM",
    "vae": "VAE",
    "ebm": "EBM",
    "gan": "GAN",
    "oracle": "oracle (true samples)",
}


@dataclasses.dataclass
class Results:
    """Everything the report reads from a results folder."""

    path: Path
    rows: list[dict]
    config: dict
    details: dict
    datasets: list[str]
    models: list[str]
    seeds: list[int]
    histories: dict
    cells: dict
    density: dict
    kde: list[dict] | None
    samplers: dict | None

    def family(self, model: str) -> str:
        """The trained family behind a table row (``diffusion_sde`` -> ``diffusion``)."""
        fams = self.config.get("families", {})
        if model in fams:
            return fams[model]
        from .registry import FAMILIES

        if model in FAMILIES:
            return model
        for fam in sorted(FAMILIES, key=len, reverse=True):
            if model.startswith(fam + "_"):
                return fam
        return model

    def label(self, model: str) -> str:
        labels = self.config.get("labels", {})
        if model in labels:
            return labels[model]
        if model in KNOWN_LABELS:
            return KNOWN_LABELS[model]
        from .registry import FAMILIES

        return FAMILIES[model].label if model in FAMILIES else model

    def loss_label(self, family: str) -> str:
        labels = self.config.get("loss_labels", {})
        if family in labels:
            return labels[family]
        from .registry import FAMILIES

        return FAMILIES[family].loss_label if family in FAMILIES else "training loss"

    @property
    def compact(self) -> bool:
        """More table rows than the text can name one by one (the full comparison): the
        text then names winners and exceptions, and leaves per-model numbers to the tables."""
        return len(self.models) > COMPACT_AFTER

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(self.family(m) for m in self.models))

    def hp(self, family: str) -> dict:
        return self.config.get("budgets", {}).get(family, {})

    def row(self, dataset: str, model: str, seed: int | None = None) -> dict | None:
        seed = self.seeds[0] if seed is None else seed
        for r in self.rows:
            if r["dataset"] == dataset and r["model"] == model and r["seed"] == seed:
                return r
        return None

    def stat(self, dataset: str, model: str, col: str) -> tuple[float, float]:
        """``(value, standard error)``: for one seed the value and, for likelihoods, its
        hold-out standard error; for several seeds the mean over seeds and the standard
        error of that mean."""
        rs = [r for r in self.rows if r["dataset"] == dataset and r["model"] == model]
        vals = np.asarray([r.get(col, math.nan) for r in rs], np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return math.nan, math.nan
        if vals.size == 1:
            se_col = {
                "exact_nll": "exact_nll_se",
                "neg_bound": "neg_bound_se",
                "kde_nll": "kde_nll_se",
            }.get(col)
            se = rs[0].get(se_col, math.nan) if se_col else math.nan
            return float(vals[0]), float(se) if se is not None else math.nan
        return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(vals.size))

    def detail(self, dataset: str, model: str, seed: int | None = None) -> dict | None:
        """The ``details.json`` entry of one row (estimator labels, extra bounds)."""
        seed = self.seeds[0] if seed is None else seed
        return self.details.get(f"{dataset}/seed{seed}/{model}")

    def detail_stat(self, dataset: str, model: str, key: str) -> tuple[float, float]:
        """Like :meth:`stat` for a number kept in ``details.json`` (``key`` and ``key_se``)."""
        vals, ses = [], []
        for seed in self.seeds:
            d = self.detail(dataset, model, seed) or {}
            v = d.get(key)
            if v is not None and math.isfinite(v):
                vals.append(v)
                ses.append(d.get(key + "_se", math.nan))
        if not vals:
            return math.nan, math.nan
        if len(vals) == 1:
            return float(vals[0]), float(ses[0] if ses[0] is not None else math.nan)
        a = np.asarray(vals, np.float64)
        return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


def _history(path: Path):
    return flowlab.History.load(path) if path.exists() else None


def load(results: Path) -> Results:
    """Read everything the report needs from ``results`` (see the module docstring)."""
    results = Path(results)
    rows = tables.read_csv(results / "results.csv")
    cfg_path, det_path = results / "config.json", results / "details.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    details = json.loads(det_path.read_text()) if det_path.exists() else {}
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    models = [m for m in dict.fromkeys(r["model"] for r in rows) if m != "oracle"]
    seeds = sorted({r["seed"] for r in rows})
    res = Results(results, rows, config, details, names, models, seeds, {}, {}, {}, None, None)
    for name in names:
        for fam in res.families:
            h = _history(results / "models" / name / f"seed{seeds[0]}" / fam / "history.json")
            if h is not None:
                res.histories[(name, fam)] = h
        d = load_density(results, name)
        if d is not None:
            res.density[name] = d
    for cell in load_cells(results):
        res.cells[(cell["dataset"], cell["seed"])] = cell
    kde_path, samplers_path = results / "studies" / "kde.csv", results / "studies" / "samplers.json"
    if kde_path.exists():
        from . import studies

        res.kde = studies.read_kde_csv(kde_path)
    if samplers_path.exists():
        res.samplers = _nan(json.loads(samplers_path.read_text()))
    return res


def _nan(obj):
    """JSON's ``null`` (how non-finite numbers are written) back to NaN."""
    if isinstance(obj, dict):
        return {k: _nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan(v) for v in obj]
    return math.nan if obj is None else obj


# -- numbers into words -----------------------------------------------------------------------


def num(v: float, digits: int = 3, *, sign: bool = False) -> str:
    """A number with a typographic minus (``n/a`` when not finite; scientific notation from
    10⁴ on)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) >= 1e4:
        return ("+" if sign and v > 0 else "") + sci(v, 2)
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return s.replace("-", "−")


def pm(v: float, se: float, digits: int = 3) -> str:
    """``value ± se`` (just the value when the error is unknown)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if se is None or not math.isfinite(se):
        return num(v, digits)
    if 0 < max(abs(v), abs(se)) < 10.0 ** -(digits - 1) / 2:  # would print as 0.00x ± 0.000
        return f"{sci(v)} ± {sci(se)}"
    return f"{num(v, digits)} ± {num(se, digits)}"


def sci(v: float, digits: int = 1) -> str:
    """A small positive number in scientific notation with a Unicode exponent."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    e = int(math.floor(math.log10(abs(v))))
    m = v / 10**e
    if round(abs(m), digits) >= 10:
        e, m = e + 1, m / 10
    sup = str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{m:.{digits}f}×10{sup}".replace("-", "−")


def join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def pct(v: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(v) else f"{100 * v:.{digits}f}%"


DATASET_TEXT = {
    "spiral": "a one-armed spiral (three turns) blurred by Gaussian noise of std 0.04",
    "pinwheel": "three curved arms of a pinwheel (angular noise 0.2, radius below 1)",
    "checkerboard": "uniform density on the 8 black squares of a 4×4 checkerboard "
    "(density 1/32 on its support, zero elsewhere: sharp edges)",
    "gaussian_mixture": "7 isotropic Gaussians of std 0.12 on a circle of radius 1.2",
}

FAMILY_TEXT = {
    "cnf_fm": "a continuous normalising flow (CNF) [@grathwohl2019]: an MLP vector field "
    "transports N(0, I) to the data along an ODE; it is trained by conditional flow matching "
    "[@lipman2023], a simulation-free regression of the field onto the velocity of straight "
    "paths from noise to data. Its exact log-density follows from the instantaneous change "
    "of variables, integrated with an adaptive solver and the exact Jacobian trace; sampling "
    "solves the same ODE",
    "cnf_mle": "a continuous normalising flow [@grathwohl2019] trained by maximum likelihood: "
    "the exact log-density of each training point (adaptive ODE solve with the exact trace) "
    "is maximised by back-propagating through the solver; sampling solves the same ODE",
    "diffusion": "a variance-preserving diffusion model [@song2021sde]: an MLP predicts the "
    "noise of the forward SDE at every noise level (denoising score matching); samples and the "
    "exact log-density come from the probability-flow ODE, solved adaptively",
    "ddpm": "a discrete-time DDPM [@ho2020] with T = 1000 linear β steps (10⁻⁴ to 0.02): an MLP "
    "ε-predictor trained with L_simple, sampled ancestrally through all T steps. Its "
    "likelihood is the variational bound of Ho et al. (eq. 5), evaluated by Monte Carlo: an "
    "upper bound on the NLL, not the NLL",
    "dsm": "a single-noise-level denoising score-matching model: an MLP score at one noise "
    "level σ, sampled with annealed Langevin dynamics; it has no likelihood, so it is judged "
    "by its samples only",
    "vae": "a variational autoencoder [@kingma2014] with Gaussian encoder and decoder, trained "
    "on the negative ELBO; its bound is reported with the importance-weighted bound "
    "[@burda2016], and for a latent of dimension at most two its exact marginal likelihood is "
    "computed by quadrature",
    "ebm": "an energy-based model [@du2019] trained by persistent contrastive divergence with "
    "Langevin negatives and the stabilisers of Song and Kingma [@song2021ebm]; in two "
    "dimensions its normalising constant is computed by quadrature, so its likelihood is "
    "exact",
    "gan": "a generative adversarial network [@goodfellow2014] with the non-saturating "
    "generator loss; it has no likelihood, so it is judged by its samples only",
}

CITE_TEXT = {
    "ho2020": "Ho et al. 2020",
    "song2021ddim": "Song et al. 2021a",
    "song2021sde": "Song et al. 2021b",
    "lipman2023": "Lipman et al. 2023",
    "grathwohl2019": "Grathwohl et al. 2019",
    "kingma2014": "Kingma & Welling 2014",
    "burda2016": "Burda et al. 2016",
    "goodfellow2014": "Goodfellow et al. 2014",
    "du2019": "Du & Mordatch 2019",
    "song2021ebm": "Song & Kingma 2021",
    "singh2023": "Singh et al. 2023",
    "scott1992": "Scott 1992",
    "silverman1986": "Silverman 1986",
    "szekely2013": "Székely & Rizzo 2013",
}

_REF = re.compile(r"\[@([\w:-]+)\]")
_TYPST_SPECIAL = re.compile(r"([\\#$*_@<>`\[\]~=])")


def esc(s: str) -> str:
    """Plain text as Typst markup: special characters escaped, ``//`` kept literal, and
    ``'`` set as an apostrophe (Typst's smart quotes would open a quote after ``)``)."""
    s = _TYPST_SPECIAL.sub(r"\\\1", str(s).replace("'", "’"))
    return s.replace("//", "/\\/").replace("/*", "/\\*")


def typst_text(s: str) -> str:
    """Generated prose to Typst: escaped, with ``[@key]`` turned into a citation or a
    reference (``fig:``/``tab:``/``sec:`` labels)."""
    out, pos = [], 0
    for m in _REF.finditer(s):
        out.append(esc(s[pos : m.start()]))
        out.append(f"@{m.group(1)}")
        pos = m.end()
    out.append(esc(s[pos:]))
    return "".join(out)


def plain_text(s: str) -> str:
    """Generated prose as plain text (citations as author and year)."""

    def repl(m):
        key = m.group(1)
        if ":" in key:
            return {"fig": "the figure", "tab": "the table", "sec": "the section"}[
                key.split(":")[0]
            ]
        return f"({CITE_TEXT.get(key, key)})"

    return _REF.sub(repl, s)


# -- analysis: training -----------------------------------------------------------------------


def training_assessment(hist) -> dict:
    """Trend of the training loss and the hold-out loss of one run, from its history:
    start and end of the per-step loss (means over the first 5% and last 10% of steps), the
    per-step noise, the hold-out loss at its minimum and at the end, and the final gap."""
    raw = np.asarray(hist.step_losses, np.float64)
    n = raw.size
    head, tail = raw[: max(1, n // 20)], raw[-max(1, n // 10) :]
    hold = np.asarray(hist.holdout_loss, np.float64)
    train = np.asarray(hist.train_loss, np.float64)
    best = int(np.nanargmin(hold)) if hold.size else 0
    out = dict(
        steps=int(hist.step[-1]) if hist.step else n,
        start=float(np.mean(head)),
        end=float(np.mean(tail)),
        noise=float(np.std(tail)),
        holdout_first=float(hold[0]) if hold.size else math.nan,
        holdout_end=float(hold[-1]) if hold.size else math.nan,
        holdout_min=float(hold[best]) if hold.size else math.nan,
        holdout_min_step=int(hist.step[best]) if hold.size else 0,
        train_end=float(train[-1]) if train.size else math.nan,
    )
    out["decreased"] = out["end"] < out["start"] - 2 * out["noise"] / math.sqrt(max(1, tail.size))
    span = out["holdout_first"] - out["holdout_min"]
    rise = out["holdout_end"] - out["holdout_min"]
    out["overfits"] = bool(
        hold.size > 2 and best < hold.size - 1 and rise > max(0.1 * abs(span), 1e-12)
    )
    out["gap"] = out["holdout_end"] - out["train_end"]
    for metric in ("holdout_nll", "holdout_neg_bound"):
        vals = hist.metrics.get(metric)
        if vals:
            out[metric] = (float(vals[0]), float(vals[-1]))
    return out


def training_text(res: Results) -> list[str]:
    """One sentence per family on its training curves, and a verdict."""
    sentences, flat, overfit = [], [], []
    runs = []
    if res.compact:
        sentences.append(
            "Every run's losses and hold-out likelihood against steps are in the appendix "
            "figures, one per dataset."
        )
    for fam in res.families:
        ass = {}
        for name in res.datasets:
            h = res.histories.get((name, fam))
            if h is not None and h.step_losses:
                ass[name] = training_assessment(h)
                runs.append((fam, name))
        if not ass:
            continue
        names = list(ass)
        s = (
            f"{res.label(fam)}: training loss "
            + join([f"{num(a['start'])} → {num(a['end'])} ({n})" for n, a in ass.items()])
            + "; final hold-out loss "
            + join([f"{num(ass[n]['gap'], sign=True)}" for n in names])
            + " from the training loss"
        )
        for metric, words in (
            ("holdout_nll", "exact hold-out NLL"),
            ("holdout_neg_bound", "hold-out −bound"),
        ):
            pairs = [(n, ass[n][metric]) for n in names if metric in ass[n]]
            if pairs:
                s += f"; {words} " + join([f"{num(a)} → {num(b)}" for _, (a, b) in pairs]) + " nats"
        if not res.compact:
            sentences.append(s + ".")
        flat += [(fam, n) for n in names if not ass[n]["decreased"]]
        overfit += [(fam, n, ass[n]) for n in names if ass[n]["overfits"]]
    if runs:
        verdict = (
            "Every run decreases its training loss with a clear trend"
            if not flat
            else "The training loss shows no clear decrease for "
            + join([f"{res.label(f)} on {n}" for f, n in flat])
        )
        if overfit:
            verdict += (
                "; the hold-out loss turns up before the end for "
                + join(
                    [
                        f"{res.label(f)} on {n} (minimum {num(a['holdout_min'])} at step "
                        f"{a['holdout_min_step']}, final {num(a['holdout_end'])})"
                        for f, n, a in overfit
                    ]
                )
                + ", a sign of overfitting"
            )
        else:
            verdict += (
                ", and none overfits: every hold-out curve ends at or near its minimum, close "
                "to the training curve"
            )
        sentences.append(verdict + ".")
    return sentences


# -- analysis: samples ------------------------------------------------------------------------


def sample_checks(samples, reference, dataset: str) -> dict:
    """What looks wrong in a sample set, measured against fresh true ``reference`` samples
    and the true density: non-finite samples, mass off the support (below the 1st
    percentile of the true log-density of true samples: 1% for a perfect sampler), far
    outliers, spread, total variation between 16×16 histograms and, for the Gaussian
    mixture, the occupancy of each component."""
    from flowlab.metrics import DegenerateSamplesError, check_samples

    x = np.asarray(samples, np.float64)
    ref = np.asarray(reference, np.float64)
    finite = np.isfinite(x).all(axis=1)
    out: dict = dict(n=len(x), non_finite=int((~finite).sum()))
    x = x[finite]
    if len(x) < 3:
        out["degenerate"] = True
        return out
    try:
        check_samples(x)
        out["degenerate"] = False
    except DegenerateSamplesError:
        out["degenerate"] = True
    lp_ref = datasets.log_prob(dataset, ref)
    tau = float(np.percentile(lp_ref, 1.0))
    lp = datasets.log_prob(dataset, x)
    out["off_support"] = float(np.mean(~(lp >= tau)))
    lo = np.percentile(ref, 0.5, axis=0) - 0.25 * np.ptp(ref, axis=0)
    hi = np.percentile(ref, 99.5, axis=0) + 0.25 * np.ptp(ref, axis=0)
    out["outside_box"] = float(np.mean(np.any((x < lo) | (x > hi), axis=1)))
    out["spread"] = (np.std(x, axis=0) / np.std(ref, axis=0)).tolist()
    edges = [np.linspace(lo[i], hi[i], 17) for i in range(2)]
    hx = np.histogram2d(x[:, 0], x[:, 1], bins=edges)[0]
    hr = np.histogram2d(ref[:, 0], ref[:, 1], bins=edges)[0]
    px, pr = hx / max(hx.sum(), 1), hr / max(hr.sum(), 1)
    out["histogram_tv"] = float(0.5 * np.abs(px - pr).sum())
    if dataset == "gaussian_mixture":
        means, _, weights = datasets.gaussian_mixture_params(dataset)
        d = np.linalg.norm(x[:, None, :] - np.asarray(means)[None], axis=-1)
        occ = np.bincount(np.argmin(d, axis=1), minlength=len(weights)) / len(x)
        out["component_occupancy"] = occ.tolist()
        out["dropped_components"] = [
            int(k) for k in np.flatnonzero(occ < 0.25 * np.asarray(weights))
        ]
    return out


def abnormalities(chk: dict, *, off_support: bool = True) -> list[str]:
    """Phrases for what a :func:`sample_checks` result shows to be abnormal (without the
    mass off the support when ``off_support`` is false: said elsewhere)."""
    out = []
    if chk.get("non_finite"):
        out.append(f"{chk['non_finite']} of {chk['n']} samples are not finite")
    if chk.get("degenerate"):
        out.append("the samples have collapsed onto a point or a line")
        return out
    off = chk.get("off_support", 0.0) if off_support else 0.0
    if off > 0.05:
        out.append(
            f"{pct(off)} of the samples fall where the data has almost no mass (true samples: 1%)"
        )
    elif off > 0.02:
        out.append(f"a thin haze of {pct(off)} of the samples lies off the support (true: 1%)")
    if chk.get("outside_box", 0.0) > 0.005:
        out.append(f"{pct(chk['outside_box'])} are far outside the data's range")
    spread = chk.get("spread")
    if spread is not None:
        s = float(np.mean(spread))
        if s > 1.1:
            out.append(f"the samples are over-dispersed ({pct(s - 1, 0)} wider than the data)")
        elif s < 0.9:
            out.append(f"the samples are under-dispersed ({pct(1 - s, 0)} narrower than the data)")
    dropped = chk.get("dropped_components")
    if dropped:
        out.append(
            f"mixture component{'s' * (len(dropped) > 1)} {join([str(k) for k in dropped])} "
            "hold less than a quarter of their mass (dropped modes)"
        )
    return out


def _checks(res: Results) -> dict:
    out = {}
    for name in res.datasets:
        cell = res.cells.get((name, res.seeds[0]))
        if cell is None:
            continue
        for model, x in cell["samples"].items():
            out[(name, model)] = sample_checks(x, cell["reference"], name)
    return out


def energy_noise(res: Results, dataset: str) -> float:
    """The RMS of the energy distance between two independent true sample sets of the run's
    size, from the saved true samples (reference and oracle pooled, four random halvings):
    the noise of an energy distance when model and data agree."""
    cache = res.__dict__.setdefault("_energy_noise", {})
    if dataset in cache:
        return cache[dataset]
    from flowlab.metrics import energy_distance

    cell = res.cells.get((dataset, res.seeds[0]))
    value = abs(res.stat(dataset, "oracle", "energy")[0])
    if cell is not None and "oracle" in cell["samples"]:
        pool = np.concatenate([cell["reference"], cell["samples"]["oracle"]]).astype(np.float64)
        n = len(pool) // 2
        rng = np.random.default_rng(0)
        vals = []
        for _ in range(4):
            p = rng.permutation(len(pool))
            vals.append(energy_distance(pool[p[:n]], pool[p[n : 2 * n]]))
        value = float(np.sqrt(np.mean(np.square(vals))))
    cache[dataset] = value
    return value


MEASURES = (  # column, words; lower is better for all
    ("exact_nll", "exact NLL"),
    ("kde_nll", "KDE NLL"),
    ("bhattacharyya", "Bhattacharyya distance"),
    ("energy", "energy distance"),
    ("w2", "W2"),
)


def resolution(res: Results, dataset: str, col: str, a: str, b: str) -> float:
    """The smallest difference of ``col`` between models ``a`` and ``b`` that this run
    resolves: two combined standard errors for likelihoods; three noise RMS for the energy
    distance; the oracle's own value (its finite-sample floor) for Bhattacharyya and W2."""
    if col in ("exact_nll", "kde_nll", "neg_bound"):
        se = [res.stat(dataset, m, col)[1] for m in (a, b)]
        se = [x if math.isfinite(x) else 0.0 for x in se]
        return 2.0 * math.hypot(*se)
    if col == "energy":
        return 3.0 * energy_noise(res, dataset)
    oracle = res.stat(dataset, "oracle", col)[0]
    return abs(oracle) if math.isfinite(oracle) else 0.0


def winners(res: Results, dataset: str) -> dict:
    """``measure -> (best, runner-up, difference, resolution, decisive)`` for every measure
    that at least two models of ``dataset`` have; ``decisive`` when the difference exceeds
    the resolution (:func:`resolution`)."""
    out = {}
    for col, _ in MEASURES:
        vals = [(res.stat(dataset, m, col)[0], m) for m in res.models]
        vals = sorted((v, m) for v, m in vals if math.isfinite(v))
        if len(vals) < 2:
            continue
        (v0, best), (v1, second) = vals[0], vals[1]
        r = resolution(res, dataset, col, best, second)
        out[col] = (best, second, v1 - v0, r, v1 - v0 > r)
    return out


def _off_support_comparison(res: Results, dataset: str, checks: dict) -> str:
    fr = {
        m: (checks[(dataset, m)].get("off_support"), checks[(dataset, m)].get("n", 0))
        for m in res.models
        if (dataset, m) in checks and checks[(dataset, m)].get("off_support") is not None
    }
    if len(fr) < 2:
        return ""
    (a, (pa, na)), (b, (pb, nb)) = sorted(fr.items(), key=lambda t: t[1][0])[:2]
    se = math.sqrt(pa * (1 - pa) / max(na, 1) + pb * (1 - pb) / max(nb, 1))
    if pb - pa > 2 * se:
        return (
            f"{res.label(a)} leaves less mass off the support ({pct(pa)} of its samples "
            f"against {pct(pb)}; true samples: 1%)"
        )
    return (
        f"both leave about the same mass off the support ({pct(pa)} and {pct(pb)}, within "
        f"binomial noise; true samples: 1%)"
    )


def qualitative_text(res: Results, checks: dict) -> list[str]:
    """The assessment of the overlays: which model's samples are closer to the data by the
    sample metrics that summarise the plots (only where the difference exceeds their noise),
    the mass off the support, and any abnormality."""
    paras = []
    for name in res.datasets:
        models = [m for m in res.models if res.row(name, m) is not None]
        if not models:
            continue
        w = winners(res, name)
        noise = energy_noise(res, name)
        s = f"On {name}, "
        decisive = {c: w[c] for c in ("energy", "bhattacharyya") if c in w and w[c][4]}
        if decisive:
            parts = []
            for col, (best, second, _, r, _) in decisive.items():
                v = [res.stat(name, m, col)[0] for m in (best, second)]
                f = sci if col == "energy" else (lambda x: num(x, 4))
                parts.append(
                    f"{res.label(best)}'s samples are closer to the data by "
                    f"{dict(MEASURES)[col]} ({f(v[0])} against {f(v[1])}, a difference above "
                    f"its resolution {f(r)})"
                )
            s += "; ".join(parts) + "."
        elif len(models) >= 2:
            vals = {m: res.stat(name, m, "energy")[0] for m in models}
            vals = {m: v for m, v in vals.items() if math.isfinite(v)}
            best = min(vals, key=vals.get)
            tied = [m for m in vals if vals[m] - vals[best] <= 3 * noise]
            far = sorted((m for m in vals if m not in tied), key=vals.get)
            s += (
                "the sample metrics do not single out one model: by energy distance "
                + join([f"{res.label(m)} ({sci(vals[m])})" for m in tied])
                + f" are within three times the noise of two true sample sets (RMS "
                f"{sci(noise)}) of each other"
                + (
                    ", while "
                    + join([f"{res.label(m)} ({sci(vals[m])})" for m in far])
                    + f" {'is' if len(far) == 1 else 'are'} clearly further from the data"
                    if far
                    else ""
                )
                + "."
            )
        else:
            ed = sci(res.stat(name, models[0], "energy")[0])
            s += f"{res.label(models[0])} has energy distance {ed}."
        comp = _off_support_comparison(res, name, checks)
        if comp:
            s += f" By eye and by count, {comp}."
        issues = []
        for m in models:
            chk = checks.get((name, m))
            if chk is None:
                continue
            ab = abnormalities(chk, off_support=not comp)
            if ab:
                issues.append(f"for {res.label(m)}, {join(ab)}")
        if issues:
            s += " Abnormalities: " + "; ".join(issues) + "."
        else:
            s += " No abnormality (non-finite, collapsed or far-out samples, dropped modes) shows."
        paras.append(s)
    return paras


def _nll_phrase(res: Results, name: str, m: str) -> str:
    e, b = res.stat(name, m, "exact_nll"), res.stat(name, m, "neg_bound")
    if math.isfinite(e[0]):
        return f"exact NLL {pm(*e)}"
    if math.isfinite(b[0]):
        return f"−bound {pm(*b)}"
    return "no likelihood"


def quantitative_text(res: Results) -> list[str]:
    """Which model wins by which measure (only where the difference exceeds the measure's
    resolution), and how the likelihoods compare."""
    paras = []
    for name in res.datasets:
        w = winners(res, name)
        h = datasets.entropy(name)
        s = f"On {name} (true entropy {num(h)} nats), "
        by_model: dict[str, list[str]] = {}
        ties = []
        for col, words in MEASURES:
            if col not in w:
                continue
            best, _, _, _, decisive = w[col]
            if decisive:
                by_model.setdefault(best, []).append(words)
            else:
                ties.append(words)
        if by_model:
            s += "; ".join(f"{res.label(m)} is better by {join(ws)}" for m, ws in by_model.items())
            if ties:
                s += f", while the models tie by {join(ties)} (differences within the noise)"
            s += "."
        elif ties:
            s += (
                f"the models tie by every measure they share ({join(ties)}): no difference "
                "exceeds its noise."
            )
        if "exact_nll" in w:
            best, second, diff, r, decisive = w["exact_nll"]
            s += (
                f" Exact NLL: {pm(*res.stat(name, best, 'exact_nll'))} ({res.label(best)}) "
                f"against {pm(*res.stat(name, second, 'exact_nll'))} ({res.label(second)})"
                + (f", {num(diff)} nats apart" if decisive else ", a tie")
                + "."
            )
        exact = [m for m in res.models if math.isfinite(res.stat(name, m, "exact_nll")[0])]
        for m in [] if res.compact else exact:  # compact: the table's KL-gap column says it
            kl = res.stat(name, m, "kl_gap")[0]
            if math.isfinite(kl):
                s += (
                    f" {res.label(m)} is {num(kl)} nats above the true entropy (its "
                    "KL(data ‖ model), up to hold-out noise)."
                )
        for m in res.models:
            nb = res.stat(name, m, "neg_bound")
            if not math.isfinite(nb[0]):
                continue
            r = res.row(name, m) or {}
            bname = (r.get("bound_name") or "its bound").split(" (")[0]
            e = res.stat(name, m, "exact_nll")
            if math.isfinite(e[0]):
                gap = nb[0] - e[0]
                s += (
                    f" {res.label(m)}'s −{bname} is {pm(*nb)} nats, {num(gap)} above "
                    "its exact NLL (the gap of the bound)"
                    if gap >= 0
                    else f" {res.label(m)}'s −{bname} is {pm(*nb)} nats, {num(-gap)} below its "
                    "exact NLL, which a bound cannot be in expectation: the Monte Carlo noise of "
                    "the one-draw estimate, around a gap near zero"
                )
                iw = res.detail_stat(name, m, "holdout_neg_iwae")
                if math.isfinite(iw[0]):
                    k = (res.detail(name, m) or {}).get("iwae_k")
                    s += (
                        f"; the importance-weighted bound [@burda2016] with K = {k} closes it "
                        f"to {num(iw[0] - e[0])} (−IWAE {pm(*iw)})"
                    )
                s += "."
                continue
            s += f" {res.label(m)} has only a bound ({bname}): −bound {pm(*nb)} nats"
            s += ", an upper bound on its NLL"
            if exact:
                o = min(exact, key=lambda o: res.stat(name, o, "exact_nll")[0])
                eo = res.stat(name, o, "exact_nll")[0]
                s += (
                    f"; {res.label(o)}'s exact NLL {num(eo)} is lower, which does not rank "
                    f"them: {res.label(m)}'s NLL may lie anywhere below {num(nb[0])}"
                    if eo < nb[0]
                    else f"; {res.label(o)}'s exact NLL {num(eo)} is higher even than that "
                    f"bound, so {res.label(m)} is the better model by likelihood"
                )
            s += "."
        paras.append(s)
    paras.append(kde_vs_exact_text(res))
    return [p for p in paras if p]


def kde_vs_exact_text(res: Results) -> str:
    """Where the KDE likelihood and the exact likelihood disagree."""
    parts = []
    for name in res.datasets:
        o_kde, o_se = res.stat(name, "oracle", "kde_nll")
        o_exact = res.stat(name, "oracle", "exact_nll")[0]
        bias = o_kde - o_exact
        exact = {m: res.stat(name, m, "exact_nll")[0] for m in res.models}
        kde = {m: res.stat(name, m, "kde_nll") for m in res.models}
        both = [m for m in res.models if math.isfinite(exact[m]) and math.isfinite(kde[m][0])]
        s = f"on {name} the KDE of fresh true samples overstates the true NLL by {num(bias)} nats"
        if both and not res.compact:  # compact: the per-model gaps are in the tables
            s += ", and for the models the KDE NLL exceeds the exact NLL by " + join(
                [f"{num(kde[m][0] - exact[m])} ({res.label(m)})" for m in both]
            )
        if len(both) >= 2:
            r_exact = sorted(both, key=lambda m: exact[m])
            r_kde = sorted(both, key=lambda m: kde[m][0])
            if r_exact[0] != r_kde[0]:
                s += (
                    f"; they disagree on the best model: the exact NLL prefers "
                    f"{res.label(r_exact[0])}, the KDE {res.label(r_kde[0])}"
                )
            elif r_exact != r_kde:
                s += f"; both put {res.label(r_exact[0])} first but order the others differently"
            else:
                s += "; both rank the models the same way"
        below = [
            m
            for m in res.models
            if math.isfinite(kde[m][0])
            and o_kde - kde[m][0]
            > 2
            * math.hypot(
                kde[m][1] if math.isfinite(kde[m][1]) else 0, o_se if math.isfinite(o_se) else 0
            )
        ]
        if below:
            s += (
                f"; {join([res.label(m) for m in below])} score{'s' * (len(below) == 1)} a "
                "better KDE NLL than the true samples themselves, which only a sample set "
                "smoother than the data can do: the KDE rewards blur"
            )
        parts.append(s)
    if not parts:
        return ""
    small, large = [], []
    for name in res.datasets:
        bias = res.stat(name, "oracle", "kde_nll")[0] - res.stat(name, "oracle", "exact_nll")[0]
        vals = [res.stat(name, m, "kde_nll")[0] for m in res.models]
        vals = [v for v in vals if math.isfinite(v)]
        if len(vals) >= 2 and math.isfinite(bias):
            (small if max(vals) - min(vals) < abs(bias) else large).append(name)
    end = ""
    if small:
        end += (
            f" On {join(small)} the KDE's bias is larger than the spread of the models' KDE "
            "NLLs, so a KDE comparison says little there."
        )
    if large:
        end += (
            f" On {join(large)} the models' KDE NLLs differ by more than the KDE's bias, so "
            "there the KDE separates them, though not by how much."
        )
    return (
        "Exact against KDE likelihood: "
        + "; ".join(parts)
        + "."
        + (end + " The exact NLL (and the KL gap) has no such floor." if end else "")
    )


# -- studies: text ----------------------------------------------------------------------------


def kde_study_text(res: Results) -> list[str]:
    from . import studies

    rows = res.kde or []
    if not rows:
        return []
    seed = res.seeds[0]
    paras = []
    bias = {}
    for r in rows:
        if r["model"] == "oracle" and r["seed"] == seed:
            bias[(r["dataset"], r["bandwidth"])] = (r["bias"], r["factor"])
    scott_eq = all(
        math.isclose(
            bias.get((n, "scott"), (0, 0))[1], bias.get((n, "silverman"), (0, 0))[1], rel_tol=1e-9
        )
        for n in res.datasets
    )
    parts = []
    for n in res.datasets:
        if (n, "scott") not in bias:
            continue
        cv = bias.get((n, "cv"), (math.nan, math.nan))
        half = bias.get((n, "half_scott"), (math.nan, math.nan))
        parts.append(
            f"{num(bias[(n, 'scott')][0])} nats on {n} with Scott's bandwidth (factor "
            f"{num(bias[(n, 'scott')][1], 3)}), {num(half[0])} with half of it and "
            f"{num(cv[0])} with the cross-validated factor {num(cv[1], 3)}"
        )
    paras.append(
        "The oracle rows measure the KDE itself ([@tab:kde] has every "
        "number): scored by the same KDE, fresh true samples overstate the true hold-out NLL by "
        + join(parts)
        + ". "
        + (
            "Silverman's rule gives exactly Scott's factor in two dimensions (both are "
            "n^(−1/6)) [@scott1992] [@silverman1986], so its column repeats Scott's. "
            if scott_eq
            else ""
        )
        + "The cross-validated factor maximises the leave-one-out likelihood of the samples "
        "themselves, never touching the hold-out set."
    )
    ranks = studies.rankings(rows)
    moved = []
    for n in res.datasets:
        base = ranks.get((n, seed, "scott"))
        if not base or len(base) < 2:
            continue
        for bw in ("half_scott", "cv"):
            other = ranks.get((n, seed, bw))
            if other and other != base:
                moved.append(
                    f"on {n} the {studies.BANDWIDTH_LABELS[bw]} bandwidth ranks "
                    f"{res.label(other[0])} first where Scott's ranks {res.label(base[0])} first"
                )
    if any(len(v) >= 2 for v in ranks.values()):
        paras.append(
            "The ranking of the models moves with the bandwidth: " + "; ".join(moved) + "."
            if moved
            else "The ranking of the models does not move with the bandwidth: every "
            "bandwidth orders them as Scott's does on every dataset."
        )
    return paras


STOCHASTIC = ("ddpm", "sde")
DETERMINISTIC = ("ddim", "ode_euler", "ode_adaptive")


def sampler_text(res: Results) -> list[str]:
    """The sampler study in words: closed-form convergence, the NFE each sampler needs with
    the exact score, and what the trained score adds."""
    from . import studies

    st = res.samplers
    if not st:
        return []
    s = st["summary"]
    sm = s["samplers"]
    lab = studies.SAMPLER_LABELS
    paras = []
    g_parts = []
    for name in studies.SAMPLERS:
        d = sm.get(name, {})
        if "gaussian_kl_min_nfe" not in d:
            continue
        g_parts.append(
            f"{lab[name]} {sci(d['gaussian_kl_min_nfe'])} at {d['gaussian_min_nfe']} steps, "
            f"{sci(d['gaussian_kl_max_nfe'])} at {d['gaussian_max_nfe']} (log–log slope "
            f"{num(d['gaussian_slope'], 1)})"
        )
    lim = s.get("gaussian_limits", {})
    paras.append(
        "Closed form, one Gaussian component as the target: with the exact score every "
        "sampler is an affine map plus Gaussian noise, so its output is Gaussian and its KL "
        "is exact. KL(q ‖ p): " + "; ".join(g_parts) + ". A slope of −2 is first order in "
        "the step (KL is quadratic in the error of the moments). "
        f"The stochastic samplers converge to {sci(lim.get('limit_sde', math.nan))}, the cost "
        "of stopping at t = ε; DDIM and the Euler PF-ODE to "
        f"{sci(lim.get('limit_ode', math.nan))}, "
        "as a deterministic map also carries the mismatch between the N(0, I) prior and p₁ "
        "to the data, which the SDE forgets [@song2021sde] [@song2021ddim]."
    )
    floor = s["energy_floor"]
    reach, never = [], []
    for name in [*studies.SAMPLERS, "ode_adaptive"]:
        d = sm.get(name, {})
        if "exact_max_nfe" not in d:
            continue
        nfe = d.get("exact_nfe_to_floor")
        if nfe is not None and math.isfinite(nfe):
            reach.append(f"{lab[name]} from {nfe:.0f} NFE on")
        else:
            never.append(lab[name])
    para = (
        "On the Gaussian mixture with the exact score, the energy distance to fresh true "
        f"samples is within the noise floor ({sci(floor)}: three RMS of the distance between "
        "independent true sample sets of the same size) for " + (join(reach) or "no sampler")
    )
    if never:
        para += f", and not within the NFE tried for {join(never)}"
    para += "; below that NFE the error is discretisation error."
    ddim = sm.get("ddim", {})
    if "exact_kl_max_nfe" in ddim:
        para += (
            " DDIM's output density follows from the change of variables through its steps, "
            "so its KL to the mixture is measured exactly (up to Monte Carlo error): "
            f"{pm(ddim['exact_kl_max_nfe'], ddim['exact_kl_se_max_nfe'])} nats at "
            f"{ddim['exact_max_nfe']} steps with the exact score"
        )
        if "learned_kl_max_nfe" in ddim:
            para += (
                f", against {pm(ddim['learned_kl_max_nfe'], ddim['learned_kl_se_max_nfe'])} "
                "with the trained score"
            )
        para += "."
    paras.append(para)
    learned = [n for n in [*studies.SAMPLERS, "ode_adaptive"] if "learned_max_nfe" in sm.get(n, {})]
    if not learned:
        paras.append(
            "This run has no trained score on the Gaussian mixture (a smoke run trains none), "
            "so the study has the exact score only."
        )
        return paras
    at_floor = [n for n in learned if sm[n]["learned_energy_max_nfe"] <= floor]
    above = [n for n in learned if n not in at_floor]
    para = (
        f"With the trained score — {st.get('learned_source') or 'a trained model'} — at the "
        "largest NFE "
    )
    if above:
        para += (
            join([f"{lab[n]} plateaus at {sci(sm[n]['learned_energy_max_nfe'])}" for n in above])
            + (
                f", while {join([lab[n] for n in at_floor])} stay{'s' * (len(at_floor) == 1)} "
                "within the noise floor"
                if at_floor
                else ""
            )
            + ". A plateau that more steps do not lower is learning error."
        )
        if set(above) <= set(DETERMINISTIC) and set(at_floor) & set(STOCHASTIC):
            para += (
                " Here it shows in the deterministic samplers only: the noise the stochastic "
                "samplers inject lets them correct part of the trained score's error, whereas "
                "a deterministic map carries it to the samples."
            )
    else:
        para += (
            "every sampler stays within the noise floor: at this sample size the energy "
            "distance does not resolve the learning error"
            + (", which DDIM's exact KL does" if "learned_kl_max_nfe" in ddim else "")
            + "."
        )
    missing = [
        n
        for n in studies.SAMPLERS
        if n not in learned and n in st["settings"].get("samplers", studies.SAMPLERS)
    ]
    if missing:
        para += (
            f" The trained model ({st.get('learned_kind', '')}) cannot run "
            + join([lab[n] for n in missing])
            + ", so those have the exact score only."
        )
    paras.append(para)
    return paras


# -- figures, drawn at the size they are printed ----------------------------------------------

RC = {
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "savefig.dpi": FIG_DPI,
}


def _box(train):
    tr = np.asarray(train)
    lo = np.percentile(tr, 0.5, axis=0) - 0.2 * np.ptp(tr, axis=0)
    hi = np.percentile(tr, 99.5, axis=0) + 0.2 * np.ptp(tr, axis=0)
    return lo, hi


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return path


def _panels(names, items, *, max_cols: int, panel_w: float, panel_h: float, extra_h: float):
    """One panel per (name, item): each name starts a new row, rows hold at most
    ``max_cols`` panels. Returns ``(figure, {(name, item): axis}, panels per name-row)``."""
    cols = min(len(items), max_cols)
    rows_per = math.ceil(len(items) / cols)
    nrows = rows_per * len(names)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(panel_w * cols, panel_h * nrows + extra_h),
        squeeze=False,
        layout="constrained",
    )
    mapping = {}
    for i, name in enumerate(names):
        for k, item in enumerate(items):
            mapping[(name, item)] = axes[i * rows_per + k // cols, k % cols]
    used = {id(ax) for ax in mapping.values()}
    for ax in axes.flat:
        if id(ax) not in used:
            ax.set_axis_off()
    return fig, mapping, rows_per


def training_layout(res: Results) -> tuple[int, float]:
    """Columns and panel height of the training figure."""
    cols = min(len(res.families), 3)
    w = min(3.25, TEXT_WIDTH_IN / max(cols, 1))
    return cols, 0.5 * w


def overlay_layout(res: Results, oracle: bool = True) -> tuple[int, float]:
    """Columns and panel size of the overlay figure."""
    cols = min(len(res.models) + oracle, 4)
    return cols, min(1.85, TEXT_WIDTH_IN / max(cols, 1))


def main_datasets(res: Results, rows_per: int, panel_h: float, budget_in: float = 4.8):
    """The datasets a main-text figure shows: as many as fit in ``budget_in`` inches."""
    k = max(1, int(budget_in // (rows_per * panel_h + 1e-9)))
    return res.datasets[:k]


def figure_training(res: Results, path: Path, names=None, *, with_metric: bool = False):
    """One panel per (dataset, trained family): per-step training loss (faint), its EMA and
    the hold-out loss, on one axis; with ``with_metric``, the exact hold-out NLL (or minus
    the bound) on a second axis with the true entropy."""
    names = res.datasets if names is None else names
    fams = [f for f in res.families if any((n, f) in res.histories for n in names)]
    if not fams:
        return None
    cols, panel_h = training_layout(res)
    with plt.rc_context(RC):
        fig, axes, _ = _panels(
            names,
            fams,
            max_cols=cols,
            panel_w=TEXT_WIDTH_IN / cols,
            panel_h=panel_h,
            extra_h=0.3,
        )
        legend: dict = {}
        for (name, fam), ax in axes.items():
            h = res.histories.get((name, fam))
            if h is None or not h.step_losses:
                ax.set_axis_off()
                continue
            raw = np.asarray(h.step_losses)
            steps = np.arange(1, raw.size + 1)
            ax.plot(
                steps, raw, color=plotting.DATA_COLOUR, alpha=0.18, lw=0.4, label="train (per step)"
            )
            ax.plot(
                steps,
                plotting.ema(raw, 0.98),
                color=plotting.DATA_COLOUR,
                lw=1.1,
                label="train (EMA 0.98)",
            )
            ax.plot(
                h.step,
                h.holdout_loss,
                "o-",
                color=plotting.HOLDOUT_COLOUR,
                ms=2.5,
                lw=1.0,
                label="hold-out",
            )
            lo, hi = np.percentile(np.r_[raw, h.holdout_loss], [0.5, 98])
            ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.15 * (hi - lo))
            ax.set_title(f"{name}: {res.label(fam)}")
            ax.set_xlabel("gradient step")
            ax.set_ylabel(_short_loss(res.loss_label(fam)))
            ax.grid(alpha=0.25, lw=0.4)
            handles, labels = ax.get_legend_handles_labels()
            if with_metric:
                for metric, label in (
                    ("holdout_nll", "exact hold-out NLL (right)"),
                    ("holdout_neg_bound", "hold-out −bound (right)"),
                ):
                    vals = h.metrics.get(metric)
                    if vals:
                        ax2 = ax.twinx()
                        ax2.plot(
                            h.step,
                            vals,
                            "s--",
                            ms=2.2,
                            lw=0.9,
                            color=plotting.MODEL_COLOUR,
                            label=label,
                        )
                        ax2.axhline(
                            datasets.entropy(name),
                            color="k",
                            lw=0.7,
                            ls=":",
                            label="true entropy (right)",
                        )
                        ax2.set_ylabel("nats")
                        h2, l2 = ax2.get_legend_handles_labels()
                        handles, labels = handles + h2, labels + l2
                        break
            legend.update(zip(labels, handles, strict=True))
        fig.legend(
            list(legend.values()),
            list(legend.keys()),
            loc="outside lower center",
            ncol=len(legend) if len(legend) <= 4 else 3,
            frameon=False,
        )
        return _save(fig, path)


def _short_loss(label: str) -> str:
    """An axis label from a loss description: the part before any parenthesis."""
    short = label.split(" (")[0]
    lines = textwrap.wrap(short, 16)  # at most two lines: the panels are small
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def figure_overlays(res: Results, path: Path, names=None, *, oracle: bool = True):
    """One panel per (dataset, model), the oracle last: model samples (red) over fresh true
    samples (blue), equal aspect, one box per dataset."""
    names = res.datasets if names is None else names
    cols = [*res.models, *(["oracle"] if oracle else [])]
    names = [n for n in names if (n, res.seeds[0]) in res.cells]
    if not names:
        return None
    ncol, w = overlay_layout(res, oracle)
    with plt.rc_context(RC):
        fig, axes, _ = _panels(names, cols, max_cols=ncol, panel_w=w, panel_h=w, extra_h=0.3)
        n = 0
        for (name, m), ax in axes.items():
            cell = res.cells[(name, res.seeds[0])]
            lo, hi = _box(cell["train"])
            ref = cell["reference"]
            n = len(ref)
            ax.scatter(
                ref[:, 0],
                ref[:, 1],
                s=0.6,
                color=plotting.DATA_COLOUR,
                alpha=0.45,
                lw=0,
                rasterized=True,
            )
            x = cell["samples"].get(m)
            if x is not None:
                x = np.where(np.isfinite(x), x, np.nan)
                ax.scatter(
                    x[:, 0],
                    x[:, 1],
                    s=0.6,
                    color=plotting.MODEL_COLOUR,
                    alpha=0.45,
                    lw=0,
                    rasterized=True,
                )
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            label = res.label(m) if m != "oracle" else "oracle (true vs true)"
            ax.set_title(f"{name}: {label}" if len(names) > 1 and ncol < len(cols) else label)
            if cols.index(m) % ncol == 0:
                ax.set_ylabel(name)
        fig.legend(
            handles=[
                plt.Line2D(
                    [],
                    [],
                    marker="o",
                    ls="",
                    color=plotting.MODEL_COLOUR,
                    ms=3,
                    label=f"model samples (N = {n})",
                ),
                plt.Line2D(
                    [],
                    [],
                    marker="o",
                    ls="",
                    color=plotting.DATA_COLOUR,
                    ms=3,
                    label=f"fresh true samples (N = {n})",
                ),
            ],
            loc="outside lower center",
            ncol=2,
            frameon=False,
        )
        return _save(fig, path)


def figure_density(res: Results, path: Path):
    """Rows: datasets; columns: exact-likelihood models and the truth; one colour scale per
    row (log-density over 8 nats below the true maximum)."""
    names = [n for n in res.datasets if n in res.density]
    if not names:
        return None
    cols = []
    for n in names:
        for c in res.density[n][2]:
            if c != "true" and c not in cols:
                cols.append(c)
    cols.append("true")
    if len(cols) < 2:
        return None
    w = min(2.0, (TEXT_WIDTH_IN - 0.5) / len(cols))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            len(names),
            len(cols),
            figsize=(w * len(cols) + 0.5, w * len(names) + 0.2),
            squeeze=False,
            layout="constrained",
        )
        for i, name in enumerate(names):
            xs, ys, grids = res.density[name]
            top = float(np.max(grids["true"]))
            im = None
            for j, c in enumerate(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if c not in grids:
                    ax.set_axis_off()
                    continue
                lp = np.asarray(grids[c], np.float64).reshape(len(ys), len(xs))
                im = ax.imshow(
                    np.clip(lp, top - 8.0, top),
                    vmin=top - 8.0,
                    vmax=top,
                    origin="lower",
                    extent=(xs[0], xs[-1], ys[0], ys[-1]),
                    cmap="magma",
                    interpolation="nearest",
                )
                if i == 0:
                    ax.set_title("true density" if c == "true" else res.label(c))
                if j == 0:
                    ax.set_ylabel(name)
            if im is not None:
                fig.colorbar(im, ax=list(axes[i]), shrink=0.9, label="log p(x)", pad=0.01)
        return _save(fig, path)


def figure_samplers(res: Results, path: Path):
    """The sampler study, 2 × 2: (a) closed-form KL against NFE for a Gaussian target;
    energy distance against NFE on the mixture with (b) the exact and (c) the trained score,
    with the noise floor; (d) DDIM's exact KL against NFE, exact and trained score."""
    from . import studies

    st = res.samplers
    if not st:
        return None
    names = [*studies.SAMPLERS, "ode_adaptive"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = dict(zip(names, palette, strict=False))
    lab = studies.SAMPLER_LABELS
    floor = st["energy_floor"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(TEXT_WIDTH_IN, 4.0), layout="constrained")
        ax = axes[0, 0]
        for name in studies.SAMPLERS:
            g = sorted((r for r in st["gaussian"] if r["sampler"] == name), key=lambda r: r["nfe"])
            ax.loglog(
                [r["nfe"] for r in g], [r["kl"] for r in g], "o-", ms=2.5, color=colours[name]
            )
        for r in st["gaussian"]:
            if r["sampler"].startswith("limit"):
                ls = ":" if r["sampler"] == "limit_sde" else "--"
                ax.axhline(r["kl"], color="0.35", lw=0.8, ls=ls)
        ax.set_ylabel("KL(q ‖ p) (nats)")
        ax.set_title("(a) one Gaussian, exact score: closed form")
        for k, score in enumerate(("exact", "learned")):
            ax = axes[0, 1] if k == 0 else axes[1, 0]
            shown = False
            for name in names:
                rs = sorted(
                    (r for r in st["mixture"] if r["sampler"] == name and r["score"] == score),
                    key=lambda r: r["nfe"],
                )
                rs = [r for r in rs if math.isfinite(r["energy"])]
                if not rs:
                    continue
                shown = True
                y = [max(r["energy"], floor / 10) for r in rs]
                ax.loglog([r["nfe"] for r in rs], y, "o-", ms=2.5, color=colours[name])
            ax.axhspan(floor / 10, floor, color="0.88", lw=0)
            ax.set_ylabel("energy distance")
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(f"({'bc'[k]}) mixture, {score} score" + ("" if shown else ": none"))
        ax = axes[1, 1]
        for score, marker in (("exact", "o"), ("learned", "s")):
            rs = sorted(
                (
                    r
                    for r in st["mixture"]
                    if r["sampler"] == "ddim" and r["score"] == score and math.isfinite(r["kl"])
                ),
                key=lambda r: r["nfe"],
            )
            if not rs:
                continue
            ax.errorbar(
                [r["nfe"] for r in rs],
                [max(r["kl"], 1e-5) for r in rs],
                yerr=[r["kl_se"] for r in rs],
                fmt="-",
                marker=marker,
                ms=2.8,
                color=colours["ddim"],
                mfc="white" if score == "learned" else None,
                capsize=1.5,
                lw=0.9,
                label=f"{score} score",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("KL(q ‖ p) (nats)")
        ax.set_title("(d) mixture, DDIM: exact KL of its samples")
        ax.legend(loc="upper right")
        for ax in axes.flat:
            ax.set_xlabel("NFE")
            ax.grid(alpha=0.25, lw=0.4, which="major")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        handles = [
            plt.Line2D([], [], color=colours[n], marker="o", ms=3, label=lab[n]) for n in names
        ]
        handles += [
            plt.Line2D([], [], color="0.35", ls=":", label="stochastic limit (a)"),
            plt.Line2D([], [], color="0.35", ls="--", label="deterministic limit (a)"),
            matplotlib.patches.Patch(color="0.88", label="energy noise floor (b, c)"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
        return _save(fig, path)


# -- tables -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """A table as typeset: header cells, and body rows of ``(group, key, cells)`` where
    ``key`` is ``(dataset, model, seed)`` (seed ``None`` for a mean over seeds) and
    ``cells`` are the strings printed, in column order; ``columns`` names the CSV column
    behind each cell (``None`` for a label)."""

    header: list[str]
    columns: list[str | None]
    rows: list[tuple[str, tuple, list[str]]]
    align: list[str]
    widths: list[str] | None = None
    cell_columns: list[list[str]] | None = None


QUANT_COLUMNS = (
    ("nll", "NLL"),
    ("kde_nll", "KDE NLL"),
    ("kl_gap", "KL gap"),
    ("bhattacharyya", "Bhatt."),
    ("energy", "energy ×10³"),
    ("w2", "W2"),
    ("sample_nfe", "NFE"),
)


def _cell(res: Results, dataset, model, col, seed=None) -> str:
    if seed is None and len(res.seeds) > 1:
        v, se = res.stat(dataset, model, col)
    else:
        r = res.row(dataset, model, seed) or {}
        v = r.get(col, math.nan)
        se = r.get(
            {"exact_nll": "exact_nll_se", "neg_bound": "neg_bound_se", "kde_nll": "kde_nll_se"}.get(
                col, ""
            ),
            math.nan,
        )
    if col in ("exact_nll", "neg_bound", "kde_nll"):
        return pm(v, se, 3)
    if col == "energy":
        return pm(1e3 * v, 1e3 * se if math.isfinite(se) else se, 2)
    if col == "sample_nfe":
        return "n/a" if not math.isfinite(v) else f"{v:.0f}"
    if col == "bhattacharyya":
        return pm(v, se, 4)
    if col.endswith("_s"):
        return pm(v, se, 1)
    return pm(v, se, 3)


def quantitative_table(res: Results, seed=None) -> Table:
    """Table 2 (one seed, or the mean ± standard error over seeds): the likelihood each
    model declares (exact NLL, or minus the bound marked ≤), sample metrics and NFE."""
    header = ["model", *[lbl for _, lbl in QUANT_COLUMNS]]
    columns: list[str | None] = [None]
    rows = []
    for name in res.datasets:
        for m in [*res.models, "oracle"]:
            r = res.row(name, m, seed if seed is not None else res.seeds[0])
            if r is None:
                continue
            cells = [res.label(m)]
            cols = []
            for col, _ in QUANT_COLUMNS:
                if col == "nll":
                    if math.isfinite(r.get("exact_nll", math.nan)):
                        cells.append(_cell(res, name, m, "exact_nll", seed))
                        cols.append("exact_nll")
                    elif math.isfinite(r.get("neg_bound", math.nan)):
                        cells.append("≤ " + _cell(res, name, m, "neg_bound", seed))
                        cols.append("neg_bound")
                    else:
                        cells.append("n/a")
                        cols.append("exact_nll")
                else:
                    cells.append(_cell(res, name, m, col, seed))
                    cols.append(col)
            rows.append((name, (name, m, seed), cells, cols))
    columns += [c for c, _ in QUANT_COLUMNS]
    return Table(
        header,
        columns,
        [(g, k, c) for g, k, c, _ in rows],
        ["left"] + ["right"] * len(QUANT_COLUMNS),
        cell_columns=[[None, *c] for *_, c in rows],  # the CSV column of each cell
    )


def hyperparameter_table(res: Results) -> Table:
    header = ["model", "network", "steps", "batch", "peak lr", "EMA", "other", "train time (s)"]
    rows = []
    std_keys = {
        "steps",
        "width",
        "depth",
        "batch_size",
        "lr",
        "ema_decay",
        "eval_every",
        "activation",
        "family",
        "dataset",
        "seed",
        "n_train",
        "n_holdout",
        "standardize_loc",
        "standardize_scale",
    }
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        extra = [f"{k} = {v}" for k, v in hp.items() if k not in std_keys]
        other = ", ".join(extra[:3]) + (
            f", … (+{len(extra) - 3}, appendix)" if len(extra) > 3 else ""
        )
        times = [
            r["train_time_s"]
            for r in res.rows
            if res.family(r["model"]) == fam and math.isfinite(r["train_time_s"])
        ]
        t = f"{np.mean(times):.0f}" if times else "n/a"
        rows.append(
            (
                "",
                (None, fam, None),
                [
                    res.label(fam),
                    f"MLP {hp.get('width', '?')}×{hp.get('depth', '?')}, "
                    f"{hp.get('activation', 'silu')}",
                    f"{hp.get('steps', '?')}",
                    f"{hp.get('batch_size', '?')}",
                    f"{hp.get('lr', float('nan')):g}",
                    "none" if hp.get("ema_decay") is None else f"{hp['ema_decay']:g}",
                    other or "–",
                    t,
                ],
            )
        )
    return Table(
        header,
        [None] * len(header),
        rows,
        ["left", "left", "right", "right", "right", "right", "left", "right"],
        ["auto", "auto", "auto", "auto", "auto", "auto", "1fr", "auto"],
    )


def kde_table(res: Results) -> Table | None:
    from . import studies

    if not res.kde:
        return None
    seed = res.seeds[0]
    bws = [b for b in studies.BANDWIDTHS if any(r["bandwidth"] == b for r in res.kde)]
    header = [
        "model",
        "NLL (nats)",
        *[f"KDE, {studies.BANDWIDTH_LABELS[b]}" for b in bws],
        "CV factor",
    ]
    rows = []
    by = {(r["dataset"], r["model"], r["bandwidth"]): r for r in res.kde if r["seed"] == seed}
    for name in res.datasets:
        for m in [*res.models, "oracle"]:
            if (name, m, bws[0]) not in by:
                continue
            r = res.row(name, m) or {}
            nll = r.get("exact_nll", math.nan)
            nll_txt = (
                pm(nll, r.get("exact_nll_se"))
                if math.isfinite(nll)
                else "≤ " + pm(r.get("neg_bound"), r.get("neg_bound_se"))
                if math.isfinite(r.get("neg_bound", math.nan))
                else "n/a"
            )
            cells = [res.label(m), nll_txt]
            cells += [pm(by[(name, m, b)]["kde_nll"], by[(name, m, b)]["kde_nll_se"]) for b in bws]
            cv = by.get((name, m, "cv"))
            cells.append(num(cv["factor"], 3) if cv else "n/a")
            rows.append((name, (name, m, seed), cells))
    return Table(header, [None] * len(header), rows, ["left"] + ["right"] * (len(header) - 1))


def full_table(res: Results, name: str) -> Table:
    """Appendix: every seed and column of one dataset."""
    cols = [
        ("exact_nll", "exact NLL"),
        ("neg_bound", "−bound"),
        ("kde_nll", "KDE NLL"),
        ("bhattacharyya", "Bhatt."),
        ("energy", "energy ×10³"),
        ("w2", "W2"),
        ("mmd", "MMD² ×10³"),
        ("sample_nfe", "NFE"),
        ("log_prob_nfe", "NFE (log p)"),
        ("train_time_s", "train (s)"),
        ("sample_time_s", "sample (s)"),
    ]
    header = ["model", "seed", *[c[1] for c in cols]]
    rows = []
    for r in res.rows:
        if r["dataset"] != name:
            continue
        cells = [res.label(r["model"]), str(r["seed"])]
        for c, _ in cols:
            v = r.get(c, math.nan)
            if not math.isfinite(v):
                cells.append("–")
            elif c in ("exact_nll", "neg_bound", "kde_nll"):
                cells.append(pm(v, r.get(c + "_se"), 3))
            elif c in ("energy", "mmd"):
                cells.append(num(1e3 * v, 2))
            elif c.endswith("nfe"):
                cells.append(f"{v:.0f}")
            elif c.endswith("_s"):
                cells.append(num(v, 2))
            elif c == "bhattacharyya":
                cells.append(num(v, 4))
            else:
                cells.append(num(v, 3))
        rows.append(("", (name, r["model"], r["seed"]), cells))
    return Table(
        header, [None, None, *[c for c, _ in cols]], rows, ["left"] + ["right"] * (len(header) - 1)
    )


def sampler_table(res: Results) -> Table | None:
    from . import studies

    st = res.samplers
    if not st:
        return None
    header = ["sampler", "score", "steps", "NFE", "energy ×10³", "KL (nats)"]
    rows = []
    for r in st["mixture"]:
        kl = pm(r["kl"], r["kl_se"], 4) if math.isfinite(r.get("kl", math.nan)) else "–"
        steps = f"tol {r['tol']:g}" if "tol" in r else str(r["steps"])
        rows.append(
            (
                "",
                (None, r["sampler"], None),
                [
                    studies.SAMPLER_LABELS.get(r["sampler"], r["sampler"]),
                    r["score"],
                    steps,
                    str(r["nfe"]),
                    num(1e3 * r["energy"], 3),
                    kl,
                ],
            )
        )
    return Table(header, [None] * 6, rows, ["left", "left", "right", "right", "right", "right"])


def typst_table(
    tab: Table, *, caption: str, label: str, size: str | None = None, float_: bool = False
) -> str:
    """A booktabs table in a numbered figure with its caption above."""
    ncol = len(tab.header)
    cols = "(" + ", ".join(tab.widths or ["auto"] * ncol) + ",)"
    align = "(" + ", ".join(tab.align) + ",)"
    lines = ["#figure(", f"  {'text(size: ' + size + ')[' if size else '['}"]
    lines.append(f"#booktab(columns: {cols}, align: {align},")
    lines.append("  header: (" + ", ".join(f"[*{esc(h)}*]" for h in tab.header) + ",),")
    group = None
    for g, _, cells in tab.rows:
        if g and g != group:
            if group is not None:
                lines.append("  midrule(),")
            lines.append(f"  group({ncol})[{esc(g)}],")
            group = g
        first, rest = cells[0], cells[1:]
        lines.append("  " + ", ".join([f"box[{esc(first)}]", *(f"[{esc(c)}]" for c in rest)]) + ",")
    lines.append(")")
    lines.append("  ],")
    lines.append(f"  caption: [{typst_text(caption)}],")
    if float_:
        lines.append("  placement: auto,")
    lines.append(f") <{label}>")
    return "\n".join(lines)


def typst_figure(
    path: Path, build: Path, *, caption: str, label: str, width_in: float, float_: bool = False
) -> str:
    """An image in a numbered figure; ``float_`` lets Typst place it at the top or bottom
    of a page (main text), otherwise it stays where it is (appendix)."""
    rel = path.relative_to(build).as_posix()
    return (
        f'#figure(image("{rel}", width: {min(width_in, TEXT_WIDTH_IN):.2f}in),\n'
        f"  caption: [{typst_text(caption)}],\n"
        + ("  placement: auto,\n" if float_ else "")
        + f") <{label}>"
    )


# -- the document -----------------------------------------------------------------------------


def _figure_width(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0] / FIG_DPI


def headline(res: Results) -> str:
    """The summary paragraph at the top of the report."""
    parts = []
    for name in res.datasets:
        w = winners(res, name)
        h = datasets.entropy(name)
        bits = []
        for m in res.models:
            e = res.stat(name, m, "exact_nll")
            b = res.stat(name, m, "neg_bound")
            if math.isfinite(e[0]):
                bits.append((e[0], f"{res.label(m)} NLL {pm(*e)}"))
            elif math.isfinite(b[0]):
                bits.append((math.inf, f"{res.label(m)} −bound {pm(*b)}"))
        if res.compact:  # the lowest exact NLL and the second, for each dataset
            ranked = sorted((v, t) for v, t in bits if math.isfinite(v))
            bits = [t for _, t in ranked[:2]]
            if bits:
                bits[0] = "best " + bits[0]
                if len(bits) > 1:
                    bits[1] = "next " + bits[1]
        else:
            bits = [t for _, t in bits]
        s = f"on {name} (true entropy {num(h)} nats) " + join(bits)
        if "energy" in w:
            best, _, _, _, decisive = w["energy"]
            s += (
                f", and {res.label(best)} has the closer samples by energy distance"
                if decisive
                else ", and the energy distance does not separate the samples"
            )
        parts.append(s)
    models = join([res.label(m) for m in res.models])
    text = (
        f"We train {models} on {join(res.datasets)} (n = 2000 training points, 500 hold-out "
        f"points) and compare them by the best likelihood each has and by sample-based "
        f"metrics. In nats per point: " + "; ".join(parts) + "."
    )
    bias = [
        res.stat(n, "oracle", "kde_nll")[0] - res.stat(n, "oracle", "exact_nll")[0]
        for n in res.datasets
    ]
    bias = [b for b in bias if math.isfinite(b)]
    if bias:
        text += (
            f" The KDE likelihood the course suggests is biased by {num(min(bias))} to "
            f"{num(max(bias))} nats even for true samples, more than most differences between "
            "the models; where a model has an exact likelihood, that is the number to compare."
        )
    return text


def studies_summary(res: Results) -> str:
    """The two studies in a few sentences for the main text (the appendix has them whole):
    the KDE's own bias and whether the ranking moves with its bandwidth; the NFE at which
    each sampler reaches the noise floor with the exact score, and what the trained score
    adds."""
    from . import studies

    parts = []
    if res.kde:
        seed = res.seeds[0]
        bias = {
            r["dataset"]: r["bias"]
            for r in res.kde
            if r["model"] == "oracle" and r["seed"] == seed and r["bandwidth"] == "scott"
        }
        if bias:
            lo, hi = min(bias.values()), max(bias.values())
            ranks = studies.rankings(res.kde)
            moved = [
                n
                for n in res.datasets
                if any(
                    ranks.get((n, seed, bw)) not in (None, ranks.get((n, seed, "scott")))
                    for bw in ("half_scott", "cv")
                )
                and len(ranks.get((n, seed, "scott")) or []) >= 2
            ]
            parts.append(
                "The KDE is biased by itself: fresh true samples scored by the same KDE "
                f"overstate the true NLL by {num(lo)}"
                + (f" to {num(hi)}" if not math.isclose(lo, hi, abs_tol=5e-4) else "")
                + " nats with Scott's bandwidth"
                + (
                    f", and on {join(moved)} the ranking of the models changes with the bandwidth"
                    if moved
                    else ", and no other bandwidth tried changes the ranking of the models"
                )
                + " ([@sec:kde])."
            )
    if res.samplers:
        sm = res.samplers["summary"]["samplers"]
        lab = studies.SAMPLER_LABELS
        reach = [
            f"{lab[n]} from {sm[n]['exact_nfe_to_floor']:.0f}"
            for n in [*studies.SAMPLERS, "ode_adaptive"]
            if sm.get(n, {}).get("exact_nfe_to_floor") is not None
            and math.isfinite(sm[n]["exact_nfe_to_floor"])
        ]
        floor = res.samplers["summary"]["energy_floor"]
        plateau = [
            n
            for n in [*studies.SAMPLERS, "ode_adaptive"]
            if "learned_energy_max_nfe" in sm.get(n, {}) and sm[n]["learned_energy_max_nfe"] > floor
        ]
        if reach:
            s = (
                "With the exact score of the course Gaussian mixture, the samplers' energy "
                "distance to true samples reaches the noise floor for "
                + join(reach)
                + " network evaluations"
            )
            if plateau:
                s += (
                    "; with a trained score "
                    + join([lab[n] for n in plateau])
                    + " plateau above it (learning error, not discretisation)"
                )
            parts.append(s + " ([@sec:samplers]).")
    return " ".join(parts)


def body(res: Results, build: Path) -> tuple[str, dict]:
    """The Typst body of the report and the figure paths it uses."""
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
    more_t = (
        ""
        if len(names_t) == len(res.datasets)
        else (f" Shown: {join(names_t)}; every dataset is in the appendix.")
    )
    more_o = (
        ""
        if len(names_o) == len(res.datasets)
        else (f" Shown: {join(names_o)}; the other datasets are in the appendix.")
    )
    checks = _checks(res)
    out: list[str] = ['#import "style.typ": *', ""]

    def para(text: str, lead: str | None = None):
        out.append((f"*{esc(lead)}* " if lead else "") + typst_text(text))
        out.append("")

    def heading(text: str, level: int = 1, label: str | None = None):
        out.append("=" * level + " " + esc(text) + (f" <{label}>" if label else ""))
        out.append("")

    para(headline(res), "Summary.")
    n_seeds = len(res.seeds)
    seeds_txt = (
        "one seed"
        if n_seeds == 1
        else f"{n_seeds} seeds (tables: mean ± standard error over seeds)"
    )

    heading("Models", label="sec:models")
    para(
        "The course lists six model families: energy-based models [@du2019] [@song2021ebm], "
        "denoising score matching, variational autoencoders [@kingma2014], DDPMs [@ho2020], "
        "continuous normalising flows [@grathwohl2019] and GANs [@goodfellow2014]. All are "
        "implemented in flowlab (JAX, Equinox, Diffrax, Optax) behind one protocol: a model "
        "declares whether its likelihood is exact, a bound or absent, and is evaluated "
        f"accordingly. This report compares {len(res.families)} of them (networks and "
        "training budgets in [@tab:hp]):"
    )
    for fam in res.families:
        text = FAMILY_TEXT.get(fam, f"trained on the {res.loss_label(fam)}")
        rows_of = [m for m in res.models if res.family(m) == fam and m != fam]
        extra = f" (table rows: {join([res.label(m) for m in rows_of])})" if rows_of else ""
        out.append(
            f"- *{esc(res.label(fam))}*{esc(extra)}: "
            + typst_text(text[0].upper() + text[1:] + ".")
        )
    out.append("")

    heading("Datasets and evaluation", label="sec:data")
    ds = [
        f"{n}: {DATASET_TEXT.get(n, n)} (true entropy {num(datasets.entropy(n))} nats)"
        for n in res.datasets
    ]
    r0 = res.rows[0]
    para(
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

    heading("Training", label="sec:training")
    hp_tab = hyperparameter_table(res)
    out.append(
        typst_table(
            hp_tab,
            label="tab:hp",
            float_=True,
            caption="Hyperparameters of the runs shown (the best found; see the appendix for "
            "what else was tried and every setting). Adam with linear warm-up, cosine decay to "
            "1% and global-norm clipping at 1; MLP = width × depth. Train time: wall-clock "
            "seconds including compilation and hold-out evaluations, on the machine in the "
            "appendix.",
        )
    )
    out.append("")
    if figs["training"]:
        out.append(
            typst_figure(
                figs["training"],
                build,
                label="fig:training",
                float_=True,
                width_in=_figure_width(figs["training"]),
                caption="Training curves: per-step training loss (faint), its exponential moving "
                "average (blue) and the loss on all hold-out points (orange; evaluated with the "
                "EMA weights where the run keeps one), against gradient steps. The loss is each "
                "model's own objective, so values are not comparable across models." + more_t,
            )
        )
        out.append("")
    para(
        "[@tab:hp] lists the hyperparameters"
        + (" and [@fig:training] the training curves. " if figs["training"] else ". ")
        + " ".join(training_text(res))
    )

    heading("Qualitative comparison", label="sec:qualitative")
    if figs["overlays"]:
        n = int(r0["n_samples"])
        out.append(
            typst_figure(
                figs["overlays"],
                build,
                label="fig:overlays",
                float_=True,
                width_in=_figure_width(figs["overlays"]),
                caption=f"{n} model samples (red) over {n} fresh true samples (blue), per dataset "
                "(rows) and model (columns); the last column draws two independent true sample "
                "sets, what a perfect model would look like at this N." + more_o,
            )
        )
        out.append("")
    para(
        ("[@fig:overlays] overlays model and true samples. " if figs["overlays"] else "")
        + " ".join(qualitative_text(res, checks))
        + (
            " The exact log-densities of the exact-likelihood models are in [@fig:density] "
            "(appendix)."
            if figs["density"]
            else ""
        )
    )

    heading("Quantitative comparison", label="sec:quantitative")
    qt = quantitative_table(res)
    out.append(
        typst_table(
            qt,
            label="tab:results",
            float_=True,
            size="8.5pt",
            caption="Hold-out results"
            + (
                " (seed 0; ± is the standard error over the hold-out points)"
                if n_seeds == 1
                else " (mean ± standard error over seeds)"
            )
            + ". NLL: exact, or ≤ minus the variational bound for bound models; KDE NLL: "
            "Gaussian KDE (Scott) of the samples; KL gap: NLL − true entropy; Bhattacharyya, "
            "energy distance and W2 against fresh true samples; NFE: network evaluations per "
            "sample. Lower is better everywhere. The oracle is fresh true samples with the true "
            "density.",
        )
    )
    out.append("")
    para("[@tab:results] gives the numbers. " + " ".join(quantitative_text(res)))

    summary = studies_summary(res)
    if summary:
        heading("What the numbers can resolve", level=2, label="sec:studies")
        para(summary)

    out.append("#context [#metadata(here().page()) <references-start>]")
    out.append('#bibliography("refs.bib", style: "ieee", title: "References")')
    out.append("")
    out.append("#show: appendix")
    out.append("")
    out += appendix(res, figs, build)
    return "\n".join(out) + "\n", figs


def appendix(res: Results, figs: dict, build: Path) -> list[str]:
    out: list[str] = []

    def para(text: str):
        out.append(typst_text(text))
        out.append("")

    out.append("#wide[")
    out.append("= All results <sec:all>")
    out.append("")
    para(
        "Every dataset and every seed, every column of results.csv except the reference "
        "values (true entropy, sizes). KDE NLL with Scott's bandwidth; energy and MMD² "
        "(Gaussian kernel, median-distance bandwidth) ×10³; times in seconds on "
        + _machine(res)
        + ". Timings on a machine shared with other jobs are longer than on a quiet one."
    )
    for name in res.datasets:
        out.append(
            typst_table(
                full_table(res, name),
                label=f"tab:all-{name}",
                size="8pt",
                caption=f"All results on {name}.",
            )
        )
        out.append("")
    out.append("]")
    out.append("= Hyperparameters, solvers and evaluation <sec:settings>")
    out.append("")
    for fam in res.families:
        hp = res.hp(fam)
        if not hp:
            continue
        items = ", ".join(f"{k} = {v}" for k, v in hp.items())
        out.append(f"- *{esc(res.label(fam))}* ({esc(fam)}): {esc(items)}.")
    out.append("")
    ev = res.config.get("evaluation", {})
    if ev:
        para("Evaluation settings: " + ", ".join(f"{k} = {v}" for k, v in ev.items()) + ".")
    est = sorted(
        {
            f"{k}: {v}"
            for d in res.details.values()
            for k, v in d.items()
            if k.endswith("estimator") and v
        }
    )
    para(
        "Solvers. Exact likelihoods of ODE models: adaptive Dopri5 with a PID controller, "
        "rtol = atol = 10⁻⁵, the exact Jacobian trace, each example's error controlled "
        "separately; samples of ODE models: the same solver; the NFE columns count network "
        "evaluations (the adaptive solver's, or one per step of a fixed-step sampler). "
        + ("Estimators as recorded: " + "; ".join(est) + ". " if est else "")
        + "What was tried: "
        + (
            "; ".join(
                f"{res.label(f)}: {src}" for f, src in res.config.get("budget_source", {}).items()
            )
            + ". "
            if res.config.get("budget_source")
            else ""
        )
        + "The budgets tuned on pinwheel compared learning rates and step counts by the exact "
        "hold-out NLL: lower learning rates plateaued near the Gaussian fit for these step "
        "counts, so the runs here use the best setting found; no wider sweep was run."
    )
    timings = res.config.get("timings", {})
    if timings.get("total_before_report_s"):
        para(
            f"The run took {timings['total_before_report_s'] / 60:.1f} minutes before the "
            "report (training, evaluation"
            + (f", studies {timings['studies_s']:.0f} s" if timings.get("studies_s") else "")
            + ")."
        )
    for name in res.datasets:
        path = figs.get(f"training_nll_{name}")
        if path:
            out.append(
                typst_figure(
                    path,
                    build,
                    label=f"fig:training-nll-{name}",
                    width_in=_figure_width(path),
                    caption=f"Training curves on {name} with the hold-out likelihood each model "
                    "has (exact NLL, or minus the bound; red, right axis) and the true entropy "
                    "(dotted, right axis).",
                )
            )
            out.append("")
        path = figs.get(f"overlays_{name}")
        if path:
            out.append(
                typst_figure(
                    path,
                    build,
                    label=f"fig:overlays-{name}",
                    width_in=_figure_width(path),
                    caption=f"Model samples (red) over fresh true samples (blue) on {name}.",
                )
            )
            out.append("")
    if figs.get("density"):
        out.append(
            typst_figure(
                figs["density"],
                build,
                label="fig:density",
                width_in=_figure_width(figs["density"]),
                caption="Exact log-densities of the exact-likelihood models beside the true one, "
                "on one colour scale per dataset (8 nats below the true maximum).",
            )
        )
        out.append("")
    if res.kde:
        out.append("= What the KDE measures <sec:kde>")
        out.append("")
        for p in kde_study_text(res):
            para(p)
        out.append(
            typst_table(
                kde_table(res),
                label="tab:kde",
                size="8.5pt",
                caption="KDE hold-out NLL (nats) of each sample set under four bandwidths "
                "(SciPy factors; Silverman = Scott in 2D; CV: leave-one-out likelihood on the "
                "samples). For the oracle, KDE NLL minus its exact NLL is the KDE's own bias.",
            )
        )
        out.append("")
    if res.samplers:
        out.append("= Samplers: discretisation against learning error <sec:samplers>")
        out.append("")
        if figs.get("samplers"):
            out.append(
                typst_figure(
                    figs["samplers"],
                    build,
                    label="fig:samplers",
                    width_in=TEXT_WIDTH_IN,
                    caption="DDPM (ancestral), DDIM (η = 0), the reverse SDE (Euler–Maruyama) and "
                    "the probability-flow ODE (fixed-step Euler; adaptive Dopri5 at several "
                    "tolerances) on a VP diffusion. (a) One Gaussian component of the course "
                    "mixture as target, exact score: closed-form KL. (b, c) The mixture: energy "
                    "distance of the samples to fresh true samples with the exact and the trained "
                    "score; grey: noise floor (values below it are drawn inside the band). (d) "
                    "DDIM's KL from its exact output density, with standard errors.",
                )
            )
            out.append("")
        para(
            "The course's theory item asks for a comparison of DDPM [@ho2020], DDIM "
            "[@song2021ddim] and the SDE [@song2021sde] on simple Gaussian distributions. "
            "The course Gaussian mixture has a closed-form score at every noise level, so "
            "each sampler can be run with the exact score (discretisation error only) and "
            "with a trained one (plus learning error)"
            + ("; [@fig:samplers] shows both." if figs.get("samplers") else ".")
        )
        for p in sampler_text(res):
            para(p)
        st = sampler_table(res)
        if st is not None:
            s = res.samplers
            para(
                f"Every run ([@tab:samplers]): Gaussian mixture, {s['settings']['n']} samples "
                f"per run; energy noise floor {sci(s['energy_floor'])}; trained score: "
                f"{s.get('learned_source') or 'none'}; the study took "
                f"{s.get('total_seconds', s.get('seconds', 0)):.0f} s."
            )
            out.append(
                typst_table(
                    st, label="tab:samplers", size="8pt", caption="Every sampler run of the study."
                )
            )
            out.append("")
    return out


def _machine(res: Results) -> str:
    m = res.config.get("machine", {})
    if not m:
        return "the machine that ran the experiment"
    return (
        f"{m.get('cpu_count', '?')} CPU core(s), {m.get('platform', '?')}, JAX "
        f"{m.get('jax', '?')} ({m.get('backend', '?')})"
    )


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


def likelihood_markdown(res: Results) -> list[str]:
    """Markdown sections on what each likelihood says: every bound beside the exact NLL of
    the same model (the VAE's ELBO and IWAE), exact against KDE NLL for every
    exact-likelihood model, and each pair of models the KDE ranks the other way round from
    the exact NLL (mean ± standard error over seeds)."""
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
    exact = [
        m
        for m in res.models
        if all(math.isfinite(res.stat(n, m, "exact_nll")[0]) for n in res.datasets)
    ]
    if exact:
        out += [
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
            head = (
                f"* **{n}**: best by exact NLL {res.label(r_e[0])}, by KDE NLL {res.label(r_k[0])}"
            )
            lines.append(
                head + (": " + "; ".join(flips) + "." if flips else "; no pair is misranked.")
            )
        out += [
            "## Where the KDE misranks models",
            "",
            "Pairs of exact-likelihood models whose exact NLLs differ by more than two "
            "standard errors and whose KDE NLLs order them the other way:",
            "",
            *lines,
            "",
        ]
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


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--results", type=Path, default=ROOT / "results" / "course_project")
    p.add_argument("--pdf", type=Path, default=None, help="default: RESULTS/report.pdf")
    p.add_argument("--build", type=Path, default=None, help="default: RESULTS/report_build")
    p.add_argument(
        "--results-md", type=Path, default=None, help="also write a Markdown digest here"
    )
    args = p.parse_args(argv)
    if not (args.results / "results.csv").exists():
        p.error(f"no results.csv in {args.results}; run course_project.py or compare.py first")
    pdf = render(args.results, args.pdf, build=args.build)
    if args.results_md is not None:
        write_markdown(args.results, args.results_md, pdf)
        print(f"[report] wrote {args.results_md}")
    return pdf


if __name__ == "__main__":
    sys.exit(main() and 0)
