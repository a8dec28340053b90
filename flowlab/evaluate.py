r"""Scoring any flowlab model through the protocol: one place every script, grid and test asks.

* :func:`likelihood`: the best likelihood the model declares (exact NLL with its standard
  error, estimator label and cost; or minus a named bound with its Monte Carlo error, and
  the IWAE bound where the model offers one; or nothing);
* :func:`sample_metrics`: KDE log-likelihood of hold-out points under the samples' KDE,
  Bhattacharyya and energy distances (and W2 and MMD) to a reference sample set; a
  non-finite or collapsed sample set gets a diagnostic instead of numbers;
* :func:`noise_floor`: what a perfect model scores on those distances: the same metrics
  between independent true sample sets, with their spread;
* :func:`reference`: the dataset's true entropy, the true density's hold-out NLL and the
  paired KL(data || model);
* :func:`diagnostics`: what looks wrong in a sample set: non-finite points, collapse, mass
  far out or where the true density vanishes, mode coverage and per-mode weight;
* :func:`generalisation_gap`: hold-out minus training loss of a trained model, with the
  same weights and keys, and its standard error (the overfitting test);
* :func:`evaluate`: all of the above for one model on one dataset.

Every function returns JSON-ready dicts of plain Python numbers (``None`` where a number
would mislead); arrays (samples, per-point log-densities) are returned beside them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import datasets
from ._checks import check_count, check_key
from ._model import AbstractBoundLikelihood, AbstractModel, likelihood_kind
from .datasets import _params as P
from .metrics import (
    DegenerateSamplesError,
    bhattacharyya_distance,
    check_samples,
    energy_distance,
    kde_log_likelihood,
    mean_and_se,
    mmd,
    wasserstein2,
)
from .vae import AbstractVAE

__all__ = [
    "Evaluation",
    "Likelihood",
    "diagnostics",
    "evaluate",
    "generalisation_gap",
    "likelihood",
    "mode_assignment",
    "noise_floor",
    "reference",
    "sample_metrics",
    "timed",
]

W2_POINTS = 1000
"""W2 is computed on at most this many points of each set (an exact assignment, O(n^3))."""
FLOOR_PAIRS = 8
"""Independent pairs of true sample sets behind a noise floor by default."""


def timed(fn: Callable, *args, repeats: int = 3, **kwargs):
    """Run ``fn`` once to compile, then ``repeats`` times; returns (result, median seconds)."""
    jax.block_until_ready(fn(*args, **kwargs))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args, **kwargs))
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


# -- likelihood ------------------------------------------------------------------------------


class Likelihood(NamedTuple):
    """What :func:`likelihood` returns: JSON-ready ``metrics`` and the per-point
    log-densities ``log_prob`` (shape ``(n,)``, ``float64``; ``None`` unless kind exact)."""

    metrics: dict[str, Any]
    log_prob: np.ndarray | None


def likelihood(
    model: AbstractModel, x, *, key, iwae_k: int | None = None, timing_repeats: int = 1
) -> Likelihood:
    r"""The model's likelihood of the points ``x`` (shape ``(n, d)``) by its declared kind.

    ``metrics`` holds ``likelihood_kind``, ``holdout_nll`` and ``holdout_nll_se`` (``None``
    unless the kind is *exact*) and:

    * kind *exact*: ``holdout_nll_estimator`` (``model.likelihood_label()``),
      ``log_prob_nfe``, ``log_prob_steps`` and ``log_prob_time_s`` (median of
      ``timing_repeats`` calls after a compiling one);
    * a bound (kind *bound*, or a model with both): ``holdout_neg_bound`` $=
      -\overline{\mathcal{B}(x)}$ with its standard error (one Monte Carlo draw per point,
      ``key``), ``bound_name`` and ``holdout_neg_bound_estimator``;
    * with ``iwae_k`` and a model that has an importance-weighted bound (the VAE):
      ``holdout_neg_iwae``, ``holdout_neg_iwae_se`` and ``iwae_k``.

    ``key`` may be ``None`` for a model with only an exact likelihood; otherwise a
    ``key`` that is not one PRNG key (e.g. an int seed) raises ``ValueError``.
    """
    kind = likelihood_kind(model)
    if isinstance(model, AbstractBoundLikelihood) or iwae_k is not None:
        check_key(key)
    out: dict[str, Any] = {"likelihood_kind": kind, "holdout_nll": None, "holdout_nll_se": None}
    log_prob = None
    if kind == "exact":
        (lp, stats), seconds = timed(model.log_prob_with_stats, x, repeats=timing_repeats)
        log_prob = np.asarray(lp, np.float64)
        mean, se = mean_and_se(-log_prob)
        out.update(
            holdout_nll=mean,
            holdout_nll_se=se,
            holdout_nll_estimator=model.likelihood_label(),
            log_prob_nfe=int(stats.nfe),
            log_prob_steps=int(stats.num_steps),
            log_prob_time_s=seconds,
        )
    if isinstance(model, AbstractBoundLikelihood):
        bound = np.asarray(model.log_prob_bound(x, key=key), np.float64)
        mean, se = mean_and_se(-bound)
        out.update(
            holdout_neg_bound=mean,
            holdout_neg_bound_se=se,
            bound_name=model.bound_name,
            holdout_neg_bound_estimator=f"{model.bound_name}: Monte Carlo estimate, one draw "
            "per point (a bound, not a likelihood)",
        )
    if iwae_k is not None and isinstance(model, AbstractVAE):
        iw = model.iwae(x, key=jax.random.fold_in(key, 1), k=iwae_k)
        mean, se = mean_and_se(-np.asarray(iw, np.float64))
        out.update(holdout_neg_iwae=mean, holdout_neg_iwae_se=se, iwae_k=int(iwae_k))
    return Likelihood(out, log_prob)


# -- sample metrics and their noise floors ---------------------------------------------------


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).all(axis=1)


def sample_metrics(samples, holdout, reference, *, full: bool = False) -> dict[str, Any]:
    """Sample-based scores of ``samples`` (shape ``(N, 2)``).

    ``kde_loglik``: the mean log-density of the ``holdout`` points under a Gaussian KDE
    (Scott) of the samples, with its standard error and bandwidth
    (:func:`flowlab.metrics.kde_log_likelihood`); ``bhattacharyya`` and
    ``energy_distance`` to ``reference`` (fresh true samples, or the training set); with
    ``full``, ``w2`` (on at most :data:`W2_POINTS` points each) and ``mmd`` too. Their
    noise is given by :func:`noise_floor`. A non-finite or degenerate sample set gives
    ``sample_diagnostic`` saying so and ``None`` for the scores it makes meaningless.
    """
    samples = np.asarray(samples, np.float64)
    reference = np.asarray(reference, np.float64)
    out: dict[str, Any] = {"sample_diagnostic": "ok"}
    if not _finite_rows(samples).all():
        bad = int((~_finite_rows(samples)).sum())
        out.update(sample_diagnostic=f"non-finite: {bad} of {len(samples)} samples")
        return {**out, "kde_loglik": None, "bhattacharyya": None, "energy_distance": None}
    try:
        out["kde_loglik"] = kde_log_likelihood(samples, holdout).as_dict()
        out["bhattacharyya"] = bhattacharyya_distance(samples, reference)
    except DegenerateSamplesError as err:
        out.update(sample_diagnostic=f"degenerate: {err}", kde_loglik=None, bhattacharyya=None)
    out["energy_distance"] = energy_distance(samples, reference)
    if full:
        out.update(_w2_and_mmd(samples, reference))
    return out


def _w2_and_mmd(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """W2 on at most :data:`W2_POINTS` points of each set, and the squared MMD."""
    m = min(W2_POINTS, len(a), len(b))
    return {"w2": wasserstein2(a[:m], b[:m]), "mmd": mmd(a, b)}


def _distances(a: np.ndarray, b: np.ndarray, full: bool) -> dict[str, float]:
    out = {"energy_distance": energy_distance(a, b)}
    if full:
        out.update(bhattacharyya=bhattacharyya_distance(a, b), **_w2_and_mmd(a, b))
    return out


def noise_floor(
    dataset: str, n: int, *, key, pairs: int = FLOOR_PAIRS, full: bool = False
) -> dict[str, Any]:
    r"""What a perfect model scores: the sample distances between independent true sample
    sets of size ``n``, over ``pairs`` pairs (pair $i$ drawn from ``fold_in(key, i)``).

    For ``energy_distance`` (and with ``full``, ``bhattacharyya``, ``w2`` and ``mmd``):
    ``{"rms", "mean", "std", "first_pair"}``: the root mean square over the pairs (the scale
    of a perfect model's score; one pair alone is as noisy as the number it calibrates), the
    mean, the standard deviation and the first pair's absolute value. Plus ``pairs`` and
    ``n``. A model's distance within a few RMS of the floor is indistinguishable from the
    data at this sample size. A ``key`` that is not one PRNG key raises ``ValueError``.
    """
    if pairs < 1:
        raise ValueError(f"expected pairs >= 1, got {pairs}")
    check_key(key)
    values: dict[str, list[float]] = {}
    for i in range(pairs):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        a = np.asarray(datasets.sample(dataset, k1, n), np.float64)
        b = np.asarray(datasets.sample(dataset, k2, n), np.float64)
        for name, v in _distances(a, b, full).items():
            values.setdefault(name, []).append(v)
    out: dict[str, Any] = {}
    for name, vals in values.items():
        v = np.asarray(vals)
        out[name] = {
            "rms": float(np.sqrt(np.mean(v**2))),
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "first_pair": float(abs(v[0])),
        }
    return {**out, "pairs": int(pairs), "n": int(n)}


# -- reference numbers -----------------------------------------------------------------------


def reference(dataset: str, holdout, log_prob=None) -> dict[str, Any]:
    """The dataset's numbers a model is measured against.

    ``true_entropy`` and ``true_entropy_se`` (its quadrature error) where the dataset has an
    entropy; ``oracle_holdout_nll``, the true density's NLL of ``holdout``, where it has a
    density; and given a model's per-point exact ``log_prob`` of ``holdout``, the paired
    Monte Carlo estimate ``kl_data_to_model`` of KL(data || model) with its standard error
    (the same gap as NLL minus entropy, without the sampling noise of the hold-out set).
    """
    out: dict[str, Any] = {}
    if datasets.has_entropy(dataset):
        h, h_se = datasets.entropy_with_error(dataset)
        out.update(true_entropy=h, true_entropy_se=h_se)
    if datasets.has_log_prob(dataset):
        true_lp = datasets.log_prob(dataset, np.asarray(holdout))
        out["oracle_holdout_nll"] = float(-np.mean(true_lp))
        if log_prob is not None:
            kl, kl_se = mean_and_se(true_lp - np.asarray(log_prob, np.float64))
            out.update(kl_data_to_model=kl, kl_data_to_model_se=kl_se)
    return out


# -- sample diagnostics ----------------------------------------------------------------------


def _checkerboard_square(x: np.ndarray) -> np.ndarray:
    """Index 0-7 of the occupied square of the 4x4 board on [-4, 4)^2 (-1 elsewhere)."""
    inside = np.all((x >= -4.0) & (x < 4.0), axis=1)
    cells = np.floor(np.where(inside[:, None], x, 0.0) / 2.0).astype(int) + 2  # 0..3
    black = (cells[:, 0] + cells[:, 1]) % 2 == 0
    index = cells[:, 0] * 2 + cells[:, 1] // 2  # two occupied squares per column
    return np.where(inside & black, index, -1)


def _pinwheel_arm(x: np.ndarray) -> np.ndarray:
    """The nearest arm of the pinwheel in the angle psi = atan2(x1, x2) - 4r (-1 for r >= 1)."""
    r = np.hypot(x[:, 0], x[:, 1])
    psi = np.arctan2(x[:, 0], x[:, 1]) - P.PINWHEEL_RATE * r
    d = psi[:, None] - P.PINWHEEL_RATE * np.arange(P.PINWHEEL_ARMS)
    d = np.abs(np.mod(d + math.pi, P.TWO_PI) - math.pi)
    return np.where(r < 1.0, np.argmin(d, axis=1), -1)


def mode_assignment(dataset: str, x) -> tuple[np.ndarray, np.ndarray] | None:
    """The mode each point of ``x`` (shape ``(n, 2)``, finite) belongs to, and the modes' true
    weights: the nearest component mean of a Gaussian mixture (``gaussian_mixture``,
    ``ffjord_8gaussians``), the nearest arm of ``pinwheel``, the occupied square of a
    checkerboard (-1 off the board's occupied squares or outside the pinwheel). ``None``
    for a dataset without modes."""
    x = np.asarray(x, np.float64)
    if dataset in ("gaussian_mixture", "ffjord_8gaussians"):
        means, _, weights = datasets.gaussian_mixture_params(dataset)
        d = np.linalg.norm(x[:, None, :] - means[None], axis=-1)
        return np.argmin(d, axis=1), weights
    if dataset == "pinwheel":
        return _pinwheel_arm(x), np.full(P.PINWHEEL_ARMS, 1.0 / P.PINWHEEL_ARMS)
    if dataset in ("checkerboard", "ffjord_checkerboard"):
        return _checkerboard_square(x), np.full(8, 1.0 / 8)
    return None


def _collapse(raw: np.ndarray, finite: np.ndarray, d: int) -> tuple[dict, str | None]:
    x = raw[finite].astype(np.float64)
    out = {
        "n_distinct": int(len(np.unique(x, axis=0))) if len(x) else 0,
        "degenerate": True,
        "rank": 0,
    }
    if len(x) < 2:
        return out, f"collapsed: only {len(x)} finite sample(s) of {len(raw)}"
    try:
        # in the samples' own dtype: its precision sets what counts as a zero direction
        check_samples(raw[finite])
        out.update(degenerate=False, rank=d)
    except DegenerateSamplesError as err:
        out["rank"] = err.rank
        return out, (
            f"collapsed: {err.n_distinct} distinct point(s) among {len(x)} samples, "
            f"covariance rank {err.rank} of {d}; KDE metrics are meaningless"
        )
    return out, None


def _spread(x: np.ndarray, ref: np.ndarray, degenerate: bool) -> dict:
    d = ref.shape[1]
    if len(x) < 2:
        return {"std_ratio": 0.0, "volume_ratio": 0.0, "spread": None}
    cov_r, cov_s = np.atleast_2d(np.cov(ref.T)), np.atleast_2d(np.cov(x.T))
    det_ratio = max(np.linalg.det(cov_s), 0.0) / np.linalg.det(cov_r)
    return {
        "std_ratio": float(np.sqrt(np.trace(cov_s) / np.trace(cov_r))),
        "volume_ratio": 0.0 if degenerate else float(det_ratio ** (1 / (2 * d))),
        "spread": (np.std(x, axis=0) / np.std(ref, axis=0)).tolist(),
    }


def _histograms(x: np.ndarray, ref: np.ndarray, bins: int, threshold: float) -> dict:
    """Coverage, precision and overlap on a ``bins``^d grid over the reference's bounding
    box; far-out fraction and the total variation of 16^d histograms on a padded box."""
    d = ref.shape[1]
    lo, hi = ref.min(0), ref.max(0)
    pad = 1e-9 * np.maximum(hi - lo, 1.0)
    edges = [np.linspace(lo[i] - pad[i], hi[i] + pad[i], bins + 1) for i in range(d)]
    p = np.histogramdd(ref, bins=edges)[0].ravel() / len(ref)
    q = np.histogramdd(x, bins=edges)[0].ravel() / len(x) if len(x) else np.zeros_like(p)
    out = {
        "coverage": float(np.sum(p[q >= threshold * p])),
        "precision": float(np.sum(q[p >= threshold * q])),
        "overlap": float(np.sum(np.minimum(p, q))),
        "outside_fraction": float(1.0 - q.sum()) if len(x) else 1.0,
    }
    lo = np.percentile(ref, 0.5, axis=0) - 0.25 * np.ptp(ref, axis=0)
    hi = np.percentile(ref, 99.5, axis=0) + 0.25 * np.ptp(ref, axis=0)
    out["outside_box"] = float(np.mean(np.any((x < lo) | (x > hi), axis=1))) if len(x) else 1.0
    edges = [np.linspace(lo[i], hi[i], 17) for i in range(d)]
    hx, hr = np.histogramdd(x, bins=edges)[0], np.histogramdd(ref, bins=edges)[0]
    px, pr = hx / max(hx.sum(), 1), hr / max(hr.sum(), 1)
    out["histogram_tv"] = float(0.5 * np.abs(px - pr).sum())
    return out


def _support(x: np.ndarray, ref: np.ndarray, dataset: str) -> dict:
    """Mass where the true density vanishes, and below the 1st percentile of the true
    log-density of the reference points (1% for a perfect sampler)."""
    lp_ref = datasets.log_prob(dataset, ref)
    tau = float(np.percentile(lp_ref, 1.0))
    lp = datasets.log_prob(dataset, x)
    return {
        "zero_density_fraction": float(np.mean(np.isneginf(lp))),
        "off_support": float(np.mean(~(lp >= tau))),
        "off_support_threshold": tau,
    }


def _modes(x: np.ndarray, dataset: str, min_weight: float) -> dict | None:
    assigned = mode_assignment(dataset, x)
    if assigned is None:
        return None
    index, weights = assigned
    counts = np.bincount(index[index >= 0], minlength=len(weights))
    occupancy = counts / max(len(x), 1)
    dropped = [int(k) for k in np.flatnonzero(occupancy < min_weight * weights)]
    return {
        "mode_weights": occupancy.tolist(),
        "mode_weights_true": weights.tolist(),
        "modes_dropped": dropped,
        "mode_coverage": 1.0 - len(dropped) / len(weights),
        "mode_unassigned": float(np.mean(index < 0)) if len(x) else 0.0,
    }


def diagnostics(
    samples,
    reference,
    *,
    dataset: str | None = None,
    bins: int = 20,
    threshold: float = 0.1,
    min_coverage: float = 0.5,
    min_mode_weight: float = 0.25,
) -> dict[str, Any]:
    r"""What looks wrong in a sample set, against true ``reference`` samples (and, given
    ``dataset``, its true density and modes). Cheap and bandwidth-free: meant to be reported
    next to (or, for collapsed samples, instead of) the KDE metrics.

    * ``n``, ``n_finite``, ``non_finite``; ``n_distinct``, ``degenerate`` and ``rank``: the
      samples' covariance is singular (all points identical or on a line), so a KDE score
      would be meaningless (:func:`flowlab.metrics.check_samples`);
    * spread: ``std_ratio`` $= \sqrt{\operatorname{tr}\Sigma_s / \operatorname{tr}\Sigma_r}$,
      ``volume_ratio`` $= (\det\Sigma_s / \det\Sigma_r)^{1/(2d)}$ (0 for a collapse onto a
      line) and ``spread`` (per-axis std ratios): near 1 for a good sampler;
    * on a ``bins``$^d$ grid over the reference's bounding box, with $p_c, q_c$ the
      fractions of reference and sample points in cell $c$: ``coverage`` $= \sum_c p_c
      [q_c \ge \tau p_c]$ (mode dropping loses mass here), ``precision`` $= \sum_c q_c
      [p_c \ge \tau q_c]$, ``overlap`` $= \sum_c \min(p_c, q_c)$, ``outside_fraction``
      (samples outside the box); ``outside_box`` (far out: beyond the reference's 0.5 /
      99.5 percentiles plus a quarter of its range) and ``histogram_tv`` (total variation
      between 16$^d$ histograms on that padded box);
    * with a ``dataset`` that has a density: ``zero_density_fraction`` (true density zero:
      a checkerboard's empty squares, outside the pinwheel's disc) and ``off_support``
      (true log-density below the 1st percentile of the reference's: 1% for a perfect
      sampler);
    * with a ``dataset`` that has modes (:func:`mode_assignment`): ``mode_weights`` (the
      fraction of samples in each), ``mode_weights_true``, ``modes_dropped`` (those
      holding less than ``min_mode_weight`` of their true weight), ``mode_coverage`` and
      ``mode_unassigned``;
    * ``status``: ``"non-finite: ..."`` (the other numbers use the finite samples),
      ``"collapsed: ..."``, ``"low coverage: ..."`` (``coverage < min_coverage``),
      ``"dropped modes: ..."`` or ``"ok"``.

    Compare with the same diagnostics of fresh true samples (the noise floor: coverage and
    overlap are below 1 by sampling noise).

    Arguments:
        samples: shape ``(N, d)``, e.g. model samples (data coordinates).
        reference: shape ``(M, d)``, e.g. fresh true samples or the training data.
        dataset: the dataset's name, for its density and modes (2D only).
        bins: grid cells per axis; threshold: $\tau$ above.
    """
    raw = np.asarray(samples)
    ref = np.asarray(reference, np.float64)
    if raw.ndim != 2 or ref.ndim != 2 or raw.shape[1] != ref.shape[1]:
        raise ValueError(
            f"expected samples (N, d) and reference (M, d) with the same d, got shapes "
            f"{raw.shape} and {ref.shape}"
        )
    if ref.shape[0] < 2 or not np.isfinite(ref).all():
        raise ValueError(f"expected at least 2 finite reference points, got shape {ref.shape}")
    check_count(bins, "bins")
    n, d = raw.shape
    finite = _finite_rows(raw.astype(np.float64))
    x = raw[finite].astype(np.float64)
    n_finite = int(finite.sum())
    out: dict[str, Any] = {"n": int(n), "n_finite": n_finite, "non_finite": int(n) - n_finite}
    collapse, status = _collapse(raw, finite, d)
    out.update(collapse)
    out.update(_spread(x, ref, out["degenerate"]))
    out.update(_histograms(x, ref, bins, threshold))
    out.update(bins=int(bins), threshold=float(threshold))
    if dataset is not None and d == 2 and datasets.has_log_prob(dataset) and len(x):
        out.update(_support(x, ref, dataset))
    modes = _modes(x, dataset, min_mode_weight) if dataset is not None and d == 2 else None
    if modes is not None:
        out.update(modes)
    if not finite.all():
        status = f"non-finite: {n - int(finite.sum())} of {n} samples are NaN or inf" + (
            f"; {status}" if status else ""
        )
    if status is None and out["coverage"] < min_coverage:
        status = (
            f"low coverage: the samples reach {out['coverage']:.0%} of the reference's mass "
            f"on a {bins}^{d} grid (mode dropping; spread ratio {out['std_ratio']:.2f})"
        )
    if status is None and modes is not None and modes["modes_dropped"]:
        status = (
            f"dropped modes: {modes['modes_dropped']} hold less than {min_mode_weight:g} of "
            "their true weight"
        )
    out["status"] = status or "ok"
    return out


# -- everything, for one model on one dataset ------------------------------------------------

_likelihood = likelihood  # evaluate() takes a precomputed one under the same name


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` returns: JSON-ready ``metrics``, the model's ``samples`` and
    the ``oracle`` (fresh true samples, scored as the model's are) as ``(N, d)`` arrays,
    the per-point exact ``log_prob`` of the hold-out set (``None`` unless kind exact) and
    the samples' cost ``stats``."""

    metrics: dict[str, Any]
    samples: np.ndarray
    oracle: np.ndarray
    log_prob: np.ndarray | None
    stats: Any


GAP_CHUNKS = 10
"""Chunks of the hold-out set behind :func:`generalisation_gap`'s standard error."""


def generalisation_gap(model, objective, train, holdout, *, key, chunks: int = GAP_CHUNKS):
    r"""The overfitting test: the training objective of ``model`` on the hold-out set minus
    that on as many training points, each split into ``chunks`` equal chunks scored with
    the same weights and, chunk by chunk, the same key (so the objective's Monte Carlo
    noise cancels in the paired difference). Returns ``train_loss``, ``holdout_loss`` (means
    over the chunks), ``gap`` $= \bar d$ with $d_c$ the chunk differences, ``gap_se``
    $= \mathrm{sd}(d_c)/\sqrt{C}$ (the points' sampling noise), ``z`` $=$ gap / SE,
    ``chunks`` and ``n`` (points per set). A gap many SE above zero says the model fits its
    training points better than new ones. A ``key`` that is not one PRNG key raises
    ``ValueError``.
    """
    from ._fit import _holdout_repeats, _split_loss

    check_key(key)
    train, holdout = np.asarray(train), np.asarray(holdout)
    chunks = check_count(chunks, "chunks")
    n = (holdout.shape[0] // chunks) * chunks
    if n < 2 * chunks or train.shape[0] < n:
        raise ValueError(
            f"expected at least {2 * chunks} hold-out points and as many training points, got "
            f"{holdout.shape[0]} hold-out and {train.shape[0]} training points"
        )
    reps = _holdout_repeats(objective)
    scored = eqx.filter_jit(lambda m, x, k: _split_loss(objective(m, x, k))[0])

    def loss(points, k):
        return float(scored(model, jnp.tile(jnp.asarray(points, jnp.float32), (reps, 1)), k))

    tr, ho = [], []
    for c, (a, b) in enumerate(
        zip(np.split(train[:n], chunks), np.split(holdout[:n], chunks), strict=True)
    ):
        k = jax.random.fold_in(key, c)
        tr.append(loss(a, k))
        ho.append(loss(b, k))
    d = np.asarray(ho) - np.asarray(tr)
    se = float(d.std(ddof=1) / math.sqrt(chunks))
    gap = float(d.mean())
    return dict(
        train_loss=float(np.mean(tr)),
        holdout_loss=float(np.mean(ho)),
        gap=gap,
        gap_se=se,
        z=gap / se if se > 0 else None,
        chunks=chunks,
        n=n,
    )


def _named_keys(key) -> dict:
    if isinstance(key, Mapping):
        missing = {"sample", "oracle", "bound"} - set(key)
        if missing:
            raise ValueError(f"expected keys 'sample', 'oracle' and 'bound', missing {missing}")
        for name in ("sample", "oracle", "bound"):
            check_key(key[name], f"key[{name!r}]")
        return dict(key)
    check_key(key)
    k_bound, k_sample, k_oracle = jax.random.split(key, 3)
    return {"bound": k_bound, "sample": k_sample, "oracle": k_oracle}


def _oracle_scores(om: dict) -> dict:
    names = ("kde_loglik", "bhattacharyya", "energy_distance", "w2", "mmd")
    return {f"{name}_oracle": om[name] for name in names if name in om}


def evaluate(
    model: AbstractModel,
    dataset: str,
    train,
    holdout,
    *,
    key,
    n_samples: int = 2000,
    sampler=None,
    full: bool = False,
    iwae_k: int | None = None,
    floor_pairs: int = FLOOR_PAIRS,
    timing_repeats: int = 1,
    likelihood: Likelihood | None = None,
) -> Evaluation:
    """Score ``model`` on ``dataset``: its likelihood of ``holdout`` (:func:`likelihood`),
    ``n_samples`` samples (drawn by ``sampler``, or the model's own) with their cost, their
    :func:`sample_metrics` against ``train`` beside those of fresh true samples (the
    oracle, keys ``*_oracle``), the energy distance to the oracle (``energy_distance_to_true``)
    beside its :func:`noise_floor` (``energy_noise_floor``: RMS over ``floor_pairs`` pairs),
    the :func:`reference` numbers and ``nll_gap_to_entropy``, and the :func:`diagnostics` of
    the samples and of a second true sample set against the oracle.

    ``key`` is one PRNG key, or a mapping with the keys ``"sample"``, ``"oracle"`` and
    ``"bound"`` (the noise floor and the second true set use ``fold_in(oracle, 1)`` and
    ``fold_in(oracle, 2)``). ``likelihood``: the hold-out likelihood computed otherwise
    (e.g. a quadrature refined to a tolerance), used instead of :func:`likelihood`'s.
    A key that is not one PRNG key (e.g. an int seed; in a mapping, each of the three)
    raises ``ValueError``.
    """
    keys = _named_keys(key)
    train, holdout = np.asarray(train), np.asarray(holdout)
    lik = likelihood or _likelihood(
        model, holdout, key=keys["bound"], iwae_k=iwae_k, timing_repeats=timing_repeats
    )
    kwargs = {} if sampler is None else {"sampler": sampler}
    (samples, stats), sample_s = timed(
        model.sample_with_stats, keys["sample"], n_samples, repeats=1, **kwargs
    )
    samples = np.asarray(samples)
    oracle = np.asarray(datasets.sample(dataset, keys["oracle"], n_samples))
    fresh = np.asarray(datasets.sample(dataset, jax.random.fold_in(keys["oracle"], 2), n_samples))
    floor = noise_floor(
        dataset, n_samples, key=jax.random.fold_in(keys["oracle"], 1), pairs=floor_pairs, full=full
    )
    finite = _finite_rows(samples.astype(np.float64))
    ed = energy_distance(samples[finite], oracle) if finite.sum() >= 2 else None
    ref = reference(dataset, holdout, lik.log_prob)
    metrics = {
        **lik.metrics,
        "sample_nfe": int(stats.nfe),
        "sample_time_s": sample_s,
        "n_samples": int(n_samples),
        **sample_metrics(samples, holdout, train, full=full),
        **_oracle_scores(sample_metrics(oracle, holdout, train, full=full)),
        "energy_distance_to_true": ed,
        "energy_noise_floor": floor["energy_distance"]["rms"],
        "energy_noise_floor_single_pair": floor["energy_distance"]["first_pair"],
        "energy_noise_floor_pairs": floor["pairs"],
        "energy_distance_over_floor": None if ed is None else ed / floor["energy_distance"]["rms"],
        "noise_floor": floor,
        "diagnostics": diagnostics(samples, oracle, dataset=dataset),
        "diagnostics_oracle": diagnostics(fresh, oracle, dataset=dataset),
        **ref,
    }
    if "true_entropy" in ref and lik.metrics["holdout_nll"] is not None:
        metrics["nll_gap_to_entropy"] = lik.metrics["holdout_nll"] - ref["true_entropy"]
    return Evaluation(metrics, samples, oracle, lik.log_prob, stats)
