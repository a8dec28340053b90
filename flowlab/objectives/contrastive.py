r"""Persistent contrastive divergence for an energy-based model (Du & Mordatch 2019) with
the stabilisers of Song & Kingma (2021, section 3)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_count
from .._typing import Array, Key, Points
from ..samplers import langevin
from ._base import AbstractStatefulObjective
from .score_matching import _check_energy_model

__all__ = ["ContrastiveDivergence"]


def _frozen(model):
    """``model`` with ``stop_gradient`` on every array (a Langevin chain on it is a
    constant for the parameter gradient and is not differentiated through)."""
    arrays, rest = eqx.partition(model, eqx.is_array)
    return eqx.combine(jax.lax.stop_gradient(arrays), rest)


class ContrastiveDivergence(AbstractStatefulObjective):
    r"""Persistent contrastive divergence for an :class:`~flowlab.EBM` (Du & Mordatch 2019),
    with the stabilisers of Song & Kingma (2021, section 3).

    The gradient of the NLL is $\mathbb{E}_{\text{data}}\nabla_\theta E -
    \mathbb{E}_{p_\theta}\nabla_\theta E$; the model expectation uses negatives $\tilde z$
    from ``langevin_steps`` steps of Langevin dynamics ($\eta$ = ``step_size``, noise
    $\sqrt{2\eta}$) started at a batch drawn from a persistent replay buffer, of which a
    fraction ``reinit_prob`` is redrawn uniformly on the data box. The loss is
    $$\overline{E(z)} - \overline{E(\tilde z)} + \alpha\big(\overline{E(z)^2} +
      \overline{E(\tilde z)^2}\big),$$
    with $\tilde z$ under ``stop_gradient``; the chains end back in the buffer.
    Auxiliary outputs: ``energy_data`` and ``energy_model`` (the two means).

    The hold-out value (``__call__``, stateless) is the same loss with negatives from
    ``holdout_steps`` Langevin steps started from uniform noise (a fixed key), so it is not
    on the training loss's scale when chains are short; the exact hold-out NLL is the
    curve to read.

    Arguments:
        langevin_steps: $K$, Langevin steps per training step.
        step_size: $\eta$ (standardised units$^2$).
        buffer_size: replay buffer size.
        reinit_prob: fraction of each batch restarted from noise.
        alpha: energy-magnitude penalty.
        holdout_steps: Langevin steps from noise for the hold-out loss.
        holdout_repeats: 1.
    """

    langevin_steps: int = eqx.field(static=True, default=20)
    step_size: float = eqx.field(static=True, default=5e-3)
    buffer_size: int = eqx.field(static=True, default=10_000)
    reinit_prob: float = eqx.field(static=True, default=0.05)
    alpha: float = eqx.field(static=True, default=0.1)
    holdout_steps: int = eqx.field(static=True, default=200)
    holdout_repeats: int = eqx.field(static=True, default=1, kw_only=True)

    def __check_init__(self):
        check_count(self.langevin_steps, "langevin_steps")
        check_count(self.buffer_size, "buffer_size")
        check_count(self.holdout_steps, "holdout_steps")
        if not self.step_size > 0:
            raise ValueError(f"expected step_size > 0, got {self.step_size!r}")
        if not 0.0 <= self.reinit_prob <= 1.0:
            raise ValueError(f"expected 0 <= reinit_prob <= 1, got {self.reinit_prob!r}")
        if not self.alpha >= 0:
            raise ValueError(f"expected alpha >= 0, got {self.alpha!r}")

    def init_state(self, model, data: Points, key: Key) -> Array:
        """The replay buffer: ``buffer_size`` points uniform on the data box (standardised)."""
        _check_energy_model(model, "ContrastiveDivergence")
        return model.initial_sample(key, self.buffer_size)

    def negatives(self, model, z0: Points, key: Key, steps: int) -> Points:
        """``steps`` Langevin steps from ``z0`` on the frozen model (no parameter gradient)."""
        frozen = _frozen(model)
        _, z = langevin(
            jax.vmap(frozen.score), key, z0, jnp.full((steps,), self.step_size, z0.dtype)
        )
        return jax.lax.stop_gradient(z)

    def _loss(self, model, z: Points, neg: Points) -> tuple[Array, dict]:
        e_data = jax.vmap(model.total_energy)(z)
        e_model = jax.vmap(model.total_energy)(neg)
        loss = jnp.mean(e_data) - jnp.mean(e_model)
        loss = loss + self.alpha * (jnp.mean(e_data**2) + jnp.mean(e_model**2))
        return loss, {"energy_data": jnp.mean(e_data), "energy_model": jnp.mean(e_model)}

    def step(self, model, x: Points, key: Key, state: Array) -> tuple[Array, dict, Array]:
        _check_energy_model(model, "ContrastiveDivergence")
        if state.shape != (self.buffer_size, x.shape[-1]):
            raise ValueError(
                f"expected a replay buffer of shape ({self.buffer_size}, {x.shape[-1]}), got "
                f"{state.shape}"
            )
        n = x.shape[0]
        if n > self.buffer_size:
            raise ValueError(f"expected a batch of at most buffer_size={self.buffer_size}, got {n}")
        k_idx, k_reinit, k_noise, k_chain = jax.random.split(key, 4)
        idx = jax.random.choice(k_idx, self.buffer_size, (n,), replace=False)
        start = state[idx]
        restart = jax.random.bernoulli(k_reinit, self.reinit_prob, (n, 1))
        start = jnp.where(restart, model.initial_sample(k_noise, n).astype(start.dtype), start)
        neg = self.negatives(model, start, k_chain, self.langevin_steps)
        z = model.standardizer(x.shape[-1]).forward(x)
        loss, aux = self._loss(model, z, neg)
        return loss, aux, state.at[idx].set(neg)

    def __call__(self, model, x: Points, key: Key) -> tuple[Array, dict]:
        _check_energy_model(model, "ContrastiveDivergence")
        k0, k_chain = jax.random.split(key)
        z0 = model.initial_sample(k0, x.shape[0]).astype(x.dtype)
        neg = self.negatives(model, z0, k_chain, self.holdout_steps)
        return self._loss(model, model.standardizer(x.shape[-1]).forward(x), neg)
