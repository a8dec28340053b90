"""What every experiment measures, for any flowlab model, through the model protocol only.

* :func:`likelihood_metrics`: the best likelihood the model declares: the exact hold-out
  NLL with its estimator label and NFE (kind *exact*), or the negative bound (kind
  *bound*), or nothing (kind *none*);
* :func:`sample_metrics`: KDE log-likelihood of model samples on the hold-out set,
  Bhattacharyya and energy distances (and optionally W2 and MMD) to fresh true samples; a
  degenerate (collapsed) sample set gets an explicit diagnostic instead of a number;
* :func:`reference_metrics`: the dataset's true entropy, the true density's hold-out NLL
  and the paired KL(data || model) where both densities are known.
"""

from __future__ import annotations

import jax
import numpy as np

import flowlab
from flowlab import datasets
from flowlab.metrics import (
    DegenerateSamplesError,
    bhattacharyya_distance,
    energy_distance,
    kde_log_likelihood,
    mean_and_se,
    mmd,
    wasserstein2,
)

from .common import timed


def likelihood_metrics(model, holdout, *, key, timing_repeats: int = 3) -> dict:
    """The model's hold-out likelihood by its declared kind (nats, data coordinates).

    Returns ``likelihood_kind`` and, for *exact*: ``holdout_nll``, ``holdout_nll_se``,
    ``holdout_nll_estimator``, ``log_prob_nfe``, ``log_prob_steps``, ``log_prob_time_s``
    and the per-point log-densities under ``"_log_prob"``; for *bound*: ``holdout_neg_bound``
    (mean of minus the bound) with its standard error and ``bound_name``; ``holdout_nll`` is
    then ``None``.
    """
    kind = flowlab.likelihood_kind(model)
    out: dict = {"likelihood_kind": kind, "holdout_nll": None, "holdout_nll_se": None}
    if kind == "exact":
        (lp, stats), seconds = timed(model.log_prob_with_stats, holdout, repeats=timing_repeats)
        lp = np.asarray(lp, np.float64)
        mean, se = mean_and_se(-lp)
        out.update(
            holdout_nll=mean,
            holdout_nll_se=se,
            holdout_nll_estimator=model.likelihood_label(),
            log_prob_nfe=int(stats.nfe),
            log_prob_steps=int(stats.num_steps),
            log_prob_time_s=seconds,
            _log_prob=lp,
        )
    if isinstance(model, flowlab.AbstractBoundLikelihood):
        bound = np.asarray(model.log_prob_bound(holdout, key=key), np.float64)
        mean, se = mean_and_se(-bound)
        out.update(
            holdout_neg_bound=mean,
            holdout_neg_bound_se=se,
            bound_name=model.bound_name,
            holdout_neg_bound_estimator=f"{model.bound_name}: Monte Carlo estimate, one draw "
            "per point (a bound, not a likelihood)",
        )
    return out


def sample_metrics(samples, holdout, reference, *, full: bool = False) -> dict:
    """Sample-based scores of ``samples`` (shape ``(N, 2)``): KDE log-likelihood of the
    hold-out points (Scott bandwidth), Bhattacharyya distance and energy distance to
    ``reference`` (fresh true samples, or the training set); with ``full``, W2 (on at most
    1000 points each) and MMD too. A non-finite or degenerate sample set gives
    ``sample_diagnostic`` and ``None`` scores instead of a misleading number."""
    samples = np.asarray(samples, np.float64)
    reference = np.asarray(reference, np.float64)
    out: dict = {"sample_diagnostic": "ok"}
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples).all(axis=1)).sum())
        out.update(sample_diagnostic=f"non-finite: {bad} of {len(samples)} samples")
        return {**out, "kde_loglik": None, "bhattacharyya": None, "energy_distance": None}
    try:
        out["kde_loglik"] = kde_log_likelihood(samples, holdout).as_dict()
        out["bhattacharyya"] = bhattacharyya_distance(samples, reference)
    except DegenerateSamplesError as err:
        out.update(sample_diagnostic=f"degenerate: {err}", kde_loglik=None, bhattacharyya=None)
    out["energy_distance"] = energy_distance(samples, reference)
    if full:
        m = min(1000, len(samples), len(reference))
        out["w2"] = wasserstein2(samples[:m], reference[:m])
        out["mmd"] = mmd(samples, reference)
    return out


def reference_metrics(dataset: str, holdout, log_prob=None) -> dict:
    """True entropy (with its quadrature error), the true density's hold-out NLL and, given
    the model's per-point exact ``log_prob``, the paired KL(data || model) estimate."""
    out: dict = {}
    if datasets.has_entropy(dataset):
        h, h_se = datasets.entropy_with_error(dataset)
        out.update(true_entropy=h, true_entropy_se=h_se)
    if datasets.has_log_prob(dataset):
        true_lp = datasets.log_prob(dataset, np.asarray(holdout))
        out["oracle_holdout_nll"] = float(-np.mean(true_lp))
        if log_prob is not None:
            # Paired Monte Carlo estimate of KL(p_data || p_model) on the hold-out points:
            # the same gap as NLL - entropy, without the sampling noise of the hold-out set.
            kl, kl_se = mean_and_se(true_lp - np.asarray(log_prob, np.float64))
            out.update(kl_data_to_model=kl, kl_data_to_model_se=kl_se)
    return out


def noise_floor(dataset: str, n: int, *, key) -> float:
    """The energy distance between two independent true sample sets of size ``n``: what a
    perfect model would score against fresh true samples."""
    k1, k2 = jax.random.split(key)
    a = np.asarray(datasets.sample(dataset, k1, n))
    b = np.asarray(datasets.sample(dataset, k2, n))
    return abs(energy_distance(a, b))
