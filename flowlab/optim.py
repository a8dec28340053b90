"""Optimisers described by their numbers, usable wherever an Optax
``GradientTransformation`` is (``init``/``update``), kept apart from the training loop.

* :class:`Adam` / :func:`default_optimizer`: Adam with linear warm-up, cosine decay to 1%
  and global-norm clipping (the default of :func:`~flowlab.fit`).
* :class:`TwoPlayerAdam` with :func:`player_labels`: one such Adam per player of a
  :class:`~flowlab.GAN` (two time-scale update rule).

Each has ``describe()``: its configuration as plain numbers, recorded in checkpoints so
that a resumed run is refused when the optimiser differs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from ._checks import check_count

__all__ = ["Adam", "TwoPlayerAdam", "default_optimizer", "player_labels"]


def _is_real(x) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _check_rate(value, name: str, *, zero: bool) -> None:
    """A finite learning rate, > 0 (or >= 0 when ``zero``)."""
    ok = _is_real(value) and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        raise ValueError(f"expected a finite {name} {'>= 0' if zero else '> 0'}, got {value!r}")


def _check_schedule(steps, warmup, clip, b1, b2) -> None:
    """The numbers an :class:`Adam` schedule shares with :class:`TwoPlayerAdam`: a positive
    step count, a warm-up in ``[0, steps)`` (or ``None``), a clip ``> 0`` (``inf``: no
    clipping) and moment decays in ``[0, 1)``; a ``ValueError`` naming the value otherwise."""
    steps = check_count(steps, "steps")
    if warmup is not None and (
        isinstance(warmup, bool)
        or not isinstance(warmup, int | np.integer)
        or not 0 <= warmup < steps
    ):
        raise ValueError(
            f"expected warmup to be None or an integer in [0, steps) = [0, {steps}), got {warmup!r}"
        )
    if not (_is_real(clip) and clip > 0):
        raise ValueError(
            f"expected clip > 0 (the global gradient-norm bound; float('inf') for none), got "
            f"{clip!r}: a clip of 0 scales every update to zero and nothing trains"
        )
    for name, value in (("b1", b1), ("b2", b2)):
        if not (_is_real(value) and 0 <= value < 1):
            raise ValueError(f"expected {name} in [0, 1), got {value!r}")


class Adam(eqx.Module):
    """Adam with linear warm-up, cosine decay to 1% and global-norm clipping, described by
    its numbers (so a checkpoint can record and compare them). Usable wherever an Optax
    ``GradientTransformation`` is (``init``/``update``).

    Arguments:
        steps: length of the schedule (a positive integer; with 1 the step is taken at
            ``learning_rate``, there being nothing to warm up or decay).
        learning_rate: peak learning rate (finite, > 0).
        warmup: warm-up steps in ``[0, steps)`` (default ``min(500, steps // 20)``).
        clip: global gradient-norm clip (> 0; ``float("inf")`` for none).
        b1, b2: Adam's moment decays, in ``[0, 1)``.

    Raises:
        ValueError: at construction, when a value is out of its range (the message names it).
    """

    steps: int = eqx.field(static=True)
    learning_rate: float = eqx.field(static=True, default=2e-3)
    warmup: int | None = eqx.field(static=True, default=None)
    clip: float = eqx.field(static=True, default=1.0)
    b1: float = eqx.field(static=True, default=0.9)
    b2: float = eqx.field(static=True, default=0.999)

    def __check_init__(self):
        _check_schedule(self.steps, self.warmup, self.clip, self.b1, self.b2)
        _check_rate(self.learning_rate, "learning_rate", zero=False)

    def transformation(self) -> optax.GradientTransformation:
        """The Optax transformation."""
        warmup = min(500, self.steps // 20) if self.warmup is None else self.warmup
        if self.steps == 1:
            # one step: nothing to warm up or decay (Optax's cosine decay needs at least
            # one decay step); the step is taken at the peak rate
            schedule = optax.constant_schedule(self.learning_rate)
        else:
            schedule = optax.warmup_cosine_decay_schedule(
                init_value=0.0,
                peak_value=self.learning_rate,
                warmup_steps=max(warmup, 1),
                decay_steps=max(self.steps, warmup + 1),
                end_value=self.learning_rate * 1e-2,
            )
        return optax.chain(
            optax.clip_by_global_norm(self.clip), optax.adam(schedule, b1=self.b1, b2=self.b2)
        )

    def init(self, params):
        return self.transformation().init(params)

    def update(self, grads, state, params=None):
        return self.transformation().update(grads, state, params)

    def describe(self) -> dict[str, Any]:
        """The configuration as plain numbers."""
        return {
            "optimizer": "adam",
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        }


def default_optimizer(
    steps: int, learning_rate: float = 2e-3, warmup: int | None = None, clip: float = 1.0
) -> Adam:
    """Adam with linear warm-up, cosine decay to 1% and global-norm clipping (a constant
    rate for a single step).

    Arguments:
        steps: length of the schedule (a positive integer).
        learning_rate: peak learning rate (finite, > 0).
        warmup: warm-up steps in ``[0, steps)`` (default ``min(500, steps // 20)``).
        clip: global gradient-norm clip (> 0; ``float("inf")`` for none).

    Raises:
        ValueError: when a value is out of its range (the message names it).
    """
    return Adam(steps=steps, learning_rate=learning_rate, warmup=warmup, clip=clip)


def player_labels(tree: Any) -> Any:
    """``"generator"`` on every leaf of ``tree.generator``, ``"discriminator"`` elsewhere: the
    labels of ``optax.multi_transform`` for a :class:`GAN` (or its trained part), to give
    each player its own optimiser."""
    labels = jax.tree_util.tree_map(lambda _: "discriminator", tree)
    return eqx.tree_at(
        lambda m: m.generator,
        labels,
        replace=jax.tree_util.tree_map(lambda _: "generator", tree.generator),
        is_leaf=lambda v: v is None,
    )


class TwoPlayerAdam(eqx.Module):
    """Adam with a learning rate per player (two time-scale update rule, Heusel et al. 2017):
    each player gets :class:`Adam`'s warm-up, cosine decay to 1% and gradient
    clipping (its own global norm), via ``optax.multi_transform``. Usable wherever an Optax
    ``GradientTransformation`` is, on the trained part of a :class:`GAN`.

    Arguments:
        steps: length of the schedule (a positive integer).
        generator_lr, discriminator_lr: peak learning rates (finite, >= 0; 0 freezes that
            player).
        b1, b2: Adam's moment decays in ``[0, 1)`` (``b1 = 0.5`` is the usual GAN choice).
        warmup: warm-up steps in ``[0, steps)`` (default ``min(500, steps // 20)``).
        clip: global gradient-norm clip of each player (> 0; ``float("inf")`` for none).

    Raises:
        ValueError: at construction, when a value is out of its range (the message names it).
    """

    steps: int = eqx.field(static=True)
    generator_lr: float = eqx.field(static=True, default=1e-3)
    discriminator_lr: float = eqx.field(static=True, default=1e-3)
    b1: float = eqx.field(static=True, default=0.5)
    b2: float = eqx.field(static=True, default=0.999)
    warmup: int | None = eqx.field(static=True, default=None)
    clip: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        _check_schedule(self.steps, self.warmup, self.clip, self.b1, self.b2)
        for name in ("generator_lr", "discriminator_lr"):
            _check_rate(getattr(self, name), name, zero=True)

    def _adam(self, lr: float) -> optax.GradientTransformation:
        if lr == 0:
            return optax.set_to_zero()
        return Adam(
            steps=self.steps,
            learning_rate=lr,
            warmup=self.warmup,
            clip=self.clip,
            b1=self.b1,
            b2=self.b2,
        ).transformation()

    def transformation(self) -> optax.GradientTransformation:
        """The Optax transformation."""
        return optax.multi_transform(
            {
                "generator": self._adam(self.generator_lr),
                "discriminator": self._adam(self.discriminator_lr),
            },
            player_labels,
        )

    def init(self, params):
        return self.transformation().init(params)

    def update(self, grads, state, params=None):
        return self.transformation().update(grads, state, params)

    def describe(self) -> dict[str, Any]:
        """The configuration as plain numbers."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"optimizer": "two-player adam", **fields}
