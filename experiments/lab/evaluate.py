"""The scripts' names for :mod:`flowlab.evaluate` (until every caller uses it directly)."""

from __future__ import annotations

from flowlab import evaluate as _ev

reference_metrics = _ev.reference
sample_metrics = _ev.sample_metrics


def likelihood_metrics(model, holdout, *, key, timing_repeats: int = 3) -> dict:
    """:func:`flowlab.evaluate.likelihood`, its per-point log-densities under ``_log_prob``."""
    lik = _ev.likelihood(model, holdout, key=key, timing_repeats=timing_repeats)
    return {**lik.metrics, "_log_prob": lik.log_prob}


def noise_floor(dataset: str, n: int, *, key) -> float:
    """The energy distance between two independent true sample sets (one pair)."""
    return _ev.noise_floor(dataset, n, key=key, pairs=1)["energy_distance"]["first_pair"]
