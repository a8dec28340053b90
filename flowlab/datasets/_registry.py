"""The table of datasets and the by-name API."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np
from jaxtyping import ArrayLike, Float

from .._checks import check_count, check_key
from .._typing import Key, Points
from . import _densities as D
from . import _entropy as E
from ._generators import SAMPLERS
from ._params import NAMES, check_name


@dataclasses.dataclass(frozen=True)
class _Dataset:
    sampler: Callable[[Key, int], Points]
    log_prob: Callable[[np.ndarray], np.ndarray] | None
    entropy: Callable[[], tuple[float, float]] | None


def _gaussian_sum_entry(name: str) -> _Dataset:
    return _Dataset(
        SAMPLERS[name],
        lambda x: D.gaussian_sum(name).log_prob(x),
        lambda: E.gaussian_sum_entropy(name),
    )


def _ring_entry(name: str) -> _Dataset:
    return _Dataset(
        SAMPLERS[name],
        lambda x: D.ring_log_density(name, np.hypot(x[:, 0], x[:, 1])),
        lambda: E.ring_entropy(name),
    )


def _checkerboard_entry(name: str) -> _Dataset:
    return _Dataset(SAMPLERS[name], D.checkerboard_log_prob, E.checkerboard_entropy)


_DATASETS: dict[str, _Dataset] = {
    "spiral": _gaussian_sum_entry("spiral"),
    "pinwheel": _Dataset(SAMPLERS["pinwheel"], D.pinwheel_log_prob, E.pinwheel_entropy),
    "checkerboard": _checkerboard_entry("checkerboard"),
    "gaussian_mixture": _gaussian_sum_entry("gaussian_mixture"),
    "ffjord_8gaussians": _gaussian_sum_entry("ffjord_8gaussians"),
    "ffjord_pinwheel": _Dataset(SAMPLERS["ffjord_pinwheel"], None, None),
    "ffjord_2spirals": _Dataset(SAMPLERS["ffjord_2spirals"], None, None),
    "ffjord_moons": _gaussian_sum_entry("ffjord_moons"),
    "ffjord_circles": _ring_entry("ffjord_circles"),
    "ffjord_rings": _ring_entry("ffjord_rings"),
    "ffjord_swissroll": _gaussian_sum_entry("ffjord_swissroll"),
    "ffjord_checkerboard": _checkerboard_entry("ffjord_checkerboard"),
    "torchcfm_8gaussians": _gaussian_sum_entry("torchcfm_8gaussians"),
    "torchcfm_moons": _Dataset(SAMPLERS["torchcfm_moons"], D.torchcfm_moons_log_prob, None),
    "torchcfm_scurve": _gaussian_sum_entry("torchcfm_scurve"),
}
assert tuple(_DATASETS) == NAMES


def _dataset(name: str) -> _Dataset:
    check_name(name)
    return _DATASETS[name]


def _names_with(attribute: str, available: bool) -> str:
    return ", ".join(
        n for n in NAMES if (getattr(_DATASETS[n], attribute) is not None) == available
    )


def _unavailable(what: str, name: str, attribute: str) -> ValueError:
    return ValueError(
        f"no {what} for {name!r}; {attribute} is available for: "
        f"{_names_with(attribute, True)} (not for: {_names_with(attribute, False)})"
    )


def sample(name: str, key: Key, n: int) -> Points:
    """``n`` i.i.d. points of shape ``(n, 2)`` from the dataset ``name`` (one of ``NAMES``),
    in JAX's default float dtype (``float32``, or ``float64`` under ``jax_enable_x64``: the
    same values widened); the same JAX PRNG ``key`` gives the same points.

    Raises ``ValueError`` for an unknown name, a ``key`` that is not one PRNG key (e.g. an
    int seed) or an ``n`` that is not a positive integer."""
    return _dataset(name).sampler(key, n)


def split(name: str, key: Key, n_train: int = 2000, n_holdout: int = 500) -> tuple[Points, Points]:
    """A training set and a hold-out set of ``name``, drawn from independent keys.

    ``k_train, k_holdout = jax.random.split(key)``, then ``sample(name, k_train, n_train)``
    and ``sample(name, k_holdout, n_holdout)``; returns ``(train, holdout)`` in JAX's
    default float dtype (see :func:`sample`).

    Raises ``ValueError`` for an unknown name, a ``key`` that is not one PRNG key or sizes
    that are not positive integers.
    """
    dataset = _dataset(name)
    check_key(key)
    check_count(n_train, "n_train")
    check_count(n_holdout, "n_holdout")
    k_train, k_holdout = jax.random.split(key)
    return dataset.sampler(k_train, n_train), dataset.sampler(k_holdout, n_holdout)


def has_log_prob(name: str) -> bool:
    """Whether ``log_prob(name, x)`` is available."""
    return _dataset(name).log_prob is not None


def has_entropy(name: str) -> bool:
    """Whether ``entropy(name)`` is available."""
    return _dataset(name).entropy is not None


def log_prob(name: str, x: ArrayLike) -> Float[np.ndarray, " n"]:
    r"""The exact log-density $\log p(x)$ of the dataset ``name`` at the rows of ``x``.

    ``x`` is array-like of shape ``(n, 2)``, converted to ``float64``; returns a ``float64``
    array of shape ``(n,)``, ``-inf`` outside the support. Closed form, or 1-D quadrature with
    about 10-digit accuracy (see the table in ``flowlab.datasets``).
    """
    dataset = _dataset(name)
    if dataset.log_prob is None:
        raise _unavailable("exact log-density", name, "log_prob")
    shape = np.shape(x)
    if len(shape) != 2 or shape[1] != 2:
        raise ValueError(f"expected x of shape (n, 2), got shape {shape}")
    return dataset.log_prob(np.asarray(x, dtype=np.float64))


@functools.cache
def entropy_with_error(name: str) -> tuple[float, float]:
    r"""``(value, error)``: the differential entropy $H = -\int p \log p$ of ``name`` in nats
    and an estimate of its quadrature error (the change under a coarser rule; ``0.0`` where
    exact). Methods: see the table in ``flowlab.datasets``. Cached; each takes well under a
    second."""
    dataset = _dataset(name)
    if dataset.entropy is None:
        raise _unavailable("entropy", name, "entropy")
    value, error = dataset.entropy()
    return float(value), float(error)


def entropy(name: str) -> float:
    """The differential entropy of the dataset ``name`` in nats (see ``entropy_with_error``)."""
    return entropy_with_error(name)[0]
