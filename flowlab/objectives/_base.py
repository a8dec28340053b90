"""The objective protocol: ``objective(model, batch, key) -> loss``, stateless or stateful."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax

from .._typing import Array, Key, Points

__all__ = ["AbstractObjective", "AbstractStatefulObjective"]


def check_model(model: Any, expected: type, objective: str, what: str) -> None:
    """A trace-time ``ValueError`` unless ``model`` is an ``expected``: ``"<objective>
    trains <what>, got <type>"`` (instead of an ``AttributeError`` from deep inside the
    loss)."""
    if not isinstance(model, expected):
        raise ValueError(f"{objective} trains {what}, got {type(model).__name__}")


class AbstractObjective(eqx.Module):
    """A training loss ``objective(model, batch, key) -> loss`` or ``(loss, aux)``.

    Attributes:
        holdout_repeats: noise draws per hold-out point when ``fit`` evaluates the hold-out
            loss (reduces the variance of the curve; the key is fixed).
    """

    holdout_repeats: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, model: Any, x: Points, key: Key) -> Array | tuple[Array, dict]:
        """The loss on the batch ``x`` (data coordinates)."""


class AbstractStatefulObjective(AbstractObjective):
    """An objective with state carried from one training step to the next.

    ``fit`` calls ``init_state`` once, then ``step`` at every training step (threading the
    state through its fused scan and checkpoint); the hold-out loss uses ``__call__``.
    """

    @abc.abstractmethod
    def init_state(self, model: Any, data: Points, key: Key) -> Any:
        """The initial state (a pytree of arrays)."""

    @abc.abstractmethod
    def step(self, model: Any, x: Points, key: Key, state: Any) -> tuple[Array, dict, Any]:
        """``(loss, aux, new_state)`` for one training step; gradients flow through
        ``loss`` only."""


def base_draws(model: Any, key: Key, z1: Points) -> Points:
    """Base draws $z_0$ for a batch ``z1`` (standardised, shape ``(n, d)``): $N(0, I)$ for a
    model without a prior (bit for bit the draws of ``jax.random.normal(key, z1.shape)``),
    else ``model.prior_sample`` (source to target)."""
    if getattr(model, "prior", None) is None:
        return jax.random.normal(key, z1.shape, z1.dtype)
    return model.prior_sample(key, z1.shape[0]).astype(z1.dtype)
