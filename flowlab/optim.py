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
from typing import Any

import equinox as eqx
import jax
import optax

from ._checks import check_count

__all__ = ["Adam", "TwoPlayerAdam", "default_optimizer", "player_labels"]


class Adam(eqx.Module):
    """Adam with linear warm-up, cosine decay to 1% and global-norm clipping, described by
    its numbers (so a checkpoint can record and compare them). Usable wherever an Optax
    ``GradientTransformation`` is (``init``/``update``).

    Arguments:
        steps: length of the schedule.
        learning_rate: peak learning rate.
        warmup: warm-up steps (default ``min(500, steps // 20)``).
        clip: global gradient-norm clip.
        b1, b2: Adam's moment decays.
    """

    steps: int = eqx.field(static=True)
    learning_rate: float = eqx.field(static=True, default=2e-3)
    warmup: int | None = eqx.field(static=True, default=None)
    clip: float = eqx.field(static=True, default=1.0)
    b1: float = eqx.field(static=True, default=0.9)
    b2: float = eqx.field(static=True, default=0.999)

    def __check_init__(self):
        check_count(self.steps, "steps")
        if not self.learning_rate > 0:
            raise ValueError(f"expected learning_rate > 0, got {self.learning_rate!r}")

    def transformation(self) -> optax.GradientTransformation:
        """The Optax transformation."""
        warmup = min(500, self.steps // 20) if self.warmup is None else self.warmup
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
    """Adam with linear warm-up, cosine decay to 1% and global-norm clipping."""
    return Adam(steps=steps, learning_rate=learning_rate, warmup=warmup, clip=clip)


def _describe_optimizer(optimizer) -> Any:
    if isinstance(optimizer, Adam):
        return optimizer.describe()
    return f"custom optax transformation {type(optimizer).__name__} (not compared)"


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
        steps: length of the schedule.
        generator_lr, discriminator_lr: peak learning rates.
        b1, b2: Adam's moment decays (``b1 = 0.5`` is the usual GAN choice).
        warmup: warm-up steps (default ``min(500, steps // 20)``).
        clip: global gradient-norm clip of each player.
    """

    steps: int = eqx.field(static=True)
    generator_lr: float = eqx.field(static=True, default=1e-3)
    discriminator_lr: float = eqx.field(static=True, default=1e-3)
    b1: float = eqx.field(static=True, default=0.5)
    b2: float = eqx.field(static=True, default=0.999)
    warmup: int | None = eqx.field(static=True, default=None)
    clip: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        check_count(self.steps, "steps")
        for name in ("generator_lr", "discriminator_lr"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)!r}")

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
