"""The results folder on disk: what ``compare.py`` and ``course_project.py`` write, what the
studies and the report read.

* ``results.csv`` (the schema of :mod:`lab.tables`), ``config.json`` (hyperparameters,
  evaluation settings, machine; optional ``families``/``labels`` maps from a table row to
  the family that trained it), ``details.json`` (optional estimator labels; the oracle
  row's ``energy_noise_floor``, from :func:`flowlab.evaluate.noise_floor`);
* ``models/<dataset>/seed<k>/<family>/history.json`` (training curves);
* ``arrays/<dataset>_seed<k>.npz`` (``train``, ``holdout``, ``reference`` and
  ``samples__<row>`` for every row, oracle included) and ``arrays/<dataset>_density.npz``
  (``xs``, ``ys``, ``logp__<row>``, ``logp__true``), written by :func:`write_cell_arrays`
  and :func:`write_density`;
* ``studies/kde.csv`` (:func:`write_kde_csv`) and ``studies/samplers.json``
  (:mod:`lab.studies`), when present.

:func:`load` reads all of it into one :class:`Results`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

import flowlab
from flowlab._checkpoint import atomic_write_bytes, atomic_write_text

from . import tables
from .registry import FAMILIES, LABELS

COMPACT_AFTER = 3  # table rows beyond which the text summarises instead of listing

# -- arrays -----------------------------------------------------------------------------------


def _arrays_dir(results: Path) -> Path:
    return Path(results) / "arrays"


def write_cell_arrays(
    results: Path,
    dataset: str,
    seed: int,
    *,
    train,
    holdout,
    reference,
    samples: dict,
    log_prob: dict | None = None,
) -> Path:
    """Save the arrays of one (dataset, seed) for the report: training and hold-out sets,
    the fresh true ``reference`` samples the sample metrics used, ``samples`` (row name
    -> ``(N, 2)`` samples; include ``"oracle"``, fresh true samples scored as a model) and
    ``log_prob`` (row name -> the exact log-density of every hold-out point, for the rows
    that have one: what a paired test of two models' NLLs needs)."""
    path = _arrays_dir(results) / f"{dataset}_seed{seed}.npz"
    arrays = dict(train=train, holdout=holdout, reference=reference)
    arrays.update({f"samples__{k}": v for k, v in samples.items()})
    arrays.update({f"logp__{k}": v for k, v in (log_prob or {}).items() if v is not None})
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
    ``reference``, ``samples`` (row -> array) and ``log_prob`` (row -> per-hold-out-point
    exact log-density; empty for a folder written before they were saved)."""
    cells = []
    for path in sorted(_arrays_dir(results).glob("*_seed*.npz")):
        m = re.fullmatch(r"(.+)_seed(\d+)\.npz", path.name)
        if m is None:
            continue
        with np.load(path) as z:
            cell = dict(dataset=m.group(1), seed=int(m.group(2)), samples={}, log_prob={})
            for k in z.files:
                if k.startswith("samples__"):
                    cell["samples"][k[len("samples__") :]] = z[k]
                elif k.startswith("logp__"):
                    cell["log_prob"][k[len("logp__") :]] = z[k]
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


# -- studies/kde.csv -------------------------------------------------------------------------

KDE_COLUMNS = (
    "dataset",
    "seed",
    "model",
    "bandwidth",
    "factor",
    "kde_nll",
    "kde_nll_se",
    "true_nll",
    "bias",
)


def write_kde_csv(path: Path, rows: list[dict]) -> None:
    """The KDE study's rows (:data:`KDE_COLUMNS`; non-finite numbers as empty cells)."""
    lines = [",".join(KDE_COLUMNS)]
    for r in rows:
        cells = []
        for c in KDE_COLUMNS:
            v = r.get(c)
            if isinstance(v, float):
                cells.append(f"{v:.6g}" if math.isfinite(v) else "")
            else:
                cells.append(str(v))
        lines.append(",".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_kde_csv(path: Path) -> list[dict]:
    """The rows :func:`write_kde_csv` wrote (empty cells back to NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"] = int(r["seed"])
        for c in ("factor", "kde_nll", "kde_nll_se", "true_nll", "bias"):
            r[c] = float(r[c]) if r[c] else math.nan
    return rows


# -- reading it all ---------------------------------------------------------------------------


@dataclasses.dataclass
class Results:
    """Everything the report reads from a results folder. A row's label is ``config.json``'s,
    else ``known_labels``' (the reader's choice, empty by default), else the registry's
    (:data:`lab.registry.LABELS`: rows, families and the oracle)."""

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
    known_labels: dict = dataclasses.field(default_factory=dict)

    def family(self, model: str) -> str:
        """The trained family behind a table row (``diffusion_sde`` -> ``diffusion``)."""
        fams = self.config.get("families", {})
        if model in fams:
            return fams[model]
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
        if model in self.known_labels:
            return self.known_labels[model]
        return LABELS.get(model, model)

    def family_text(self, family: str) -> str:
        """The report's sentence on a family: its registry entry's ``text``, else what it
        was trained on."""
        text = FAMILIES[family].text if family in FAMILIES else ""
        return text or f"trained on the {self.loss_label(family)}"

    def loss_label(self, family: str) -> str:
        labels = self.config.get("loss_labels", {})
        if family in labels:
            return labels[family]
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


def load(results: Path, *, labels: dict | None = None) -> Results:
    """Read everything the report needs from ``results`` (see the module docstring);
    ``labels`` (row -> label) are the :attr:`Results.known_labels`."""
    results = Path(results)
    rows = tables.read_csv(results / "results.csv")
    cfg_path, det_path = results / "config.json", results / "details.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    details = json.loads(det_path.read_text()) if det_path.exists() else {}
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    models = [m for m in dict.fromkeys(r["model"] for r in rows) if m != "oracle"]
    seeds = sorted({r["seed"] for r in rows})
    res = Results(
        results, rows, config, details, names, models, seeds, {}, {}, {}, None, None, labels or {}
    )
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
        res.kde = read_kde_csv(kde_path)
    if samplers_path.exists():
        res.samplers = nan_from_json(json.loads(samplers_path.read_text()))
    return res


def nan_from_json(obj):
    """JSON's ``null`` (how non-finite numbers are written) back to NaN."""
    if isinstance(obj, dict):
        return {k: nan_from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_from_json(v) for v in obj]
    return math.nan if obj is None else obj


# -- numbers into words -----------------------------------------------------------------------
