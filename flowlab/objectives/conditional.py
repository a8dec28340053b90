r"""Conditional objectives for classifier-free guidance: flow matching and DSM with the label
dropped to the null label with probability $p$ (see :mod:`flowlab.conditional`).

Both take the batch with the label as its last column (what
:func:`flowlab.conditional.fit_conditional` passes) and a
:class:`~flowlab.conditional.LabelledTraining` around a model on a
:class:`~flowlab.conditional.Guided` field.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._typing import Array, Key, Points
from ..cnf import CNF
from ..couplings import ExactOT
from ..diffusion import Diffusion
from ._base import AbstractObjective

__all__ = ["ConditionalDSM", "ConditionalFlowMatching"]


def _unpack(wrapped, batch: Points, expected: type, objective: str):
    from ..conditional import LabelledTraining, guided_field

    if not isinstance(wrapped, LabelledTraining) or not isinstance(wrapped.model, expected):
        got = type(getattr(wrapped, "model", wrapped)).__name__
        raise ValueError(
            f"{objective} trains a {expected.__name__} on a Guided field through "
            f"flowlab.conditional.fit_conditional, got {got}"
        )
    model = wrapped.model
    net = guided_field(model).network
    x = batch[:, :-1]
    labels = jnp.round(batch[:, -1]).astype(jnp.int32)
    return model, net, x, labels


def _drop(labels: Array, p: float, null: int, key: Key) -> Array:
    if p == 0.0:
        return labels
    return jnp.where(jax.random.uniform(key, labels.shape) < p, null, labels)


def _check_p(p: float, holdout_repeats) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"expected drop_probability in [0, 1), got {p!r}")
    if (
        isinstance(holdout_repeats, bool)
        or not isinstance(holdout_repeats, int)
        or holdout_repeats < 1
    ):
        raise ValueError(f"expected holdout_repeats a positive integer, got {holdout_repeats!r}")


class ConditionalFlowMatching(AbstractObjective):
    r"""Flow matching for a conditional CNF with label dropout (classifier-free guidance):
    $\mathbb{E}\,\lVert f(t, z_t, \tilde y) - (z_1 - z_0)\rVert^2$, $z_t = t z_1 + (1-t) z_0$,
    $\tilde y = \varnothing$ with probability ``drop_probability``, else the point's label.

    Arguments:
        drop_probability: $p$, the chance a label is replaced by the null label.
        coupling: ``None`` (independent noise) or :class:`~flowlab.couplings.ExactOT`
            (minibatch OT).
        class_cost: with a coupling, the cost added for pairing noise of one label with
            data of another; each noise row gets one of the batch's labels (a random
            permutation of them). 0: plain OT, blind to labels; large (e.g. 1e4 in
            standardised units): OT within each class (C2OT's large-penalty limit).
        time_power: $t = u^{1/a}$ (density $a t^{a-1}$), as :class:`~flowlab.FlowMatching`.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    drop_probability: float = eqx.field(static=True, default=0.1)
    coupling: Any = None
    class_cost: float = eqx.field(static=True, default=0.0)
    time_power: float = eqx.field(static=True, default=1.0)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        _check_p(self.drop_probability, self.holdout_repeats)
        if self.coupling is not None and not isinstance(self.coupling, ExactOT):
            raise ValueError(
                f"expected coupling None or flowlab.couplings.ExactOT, got "
                f"{type(self.coupling).__name__}"
            )
        if not self.class_cost >= 0:
            raise ValueError(f"expected class_cost >= 0, got {self.class_cost!r}")
        if not self.time_power > 0:
            raise ValueError(f"expected time_power > 0, got {self.time_power!r}")

    def __call__(self, model, batch: Points, key: Key) -> Array:
        model, net, x, labels = _unpack(model, batch, CNF, "ConditionalFlowMatching")
        z1 = model.standardizer(x.shape[-1]).forward(x)
        k0, kt, kc, kd = jax.random.split(key, 4)
        z0 = jax.random.normal(k0, z1.shape, z1.dtype)
        if self.coupling is not None:
            z0 = z0[self.permutation(z0, z1, labels, net.num_classes, kc)]
        t = jax.random.uniform(kt, (z1.shape[0],), z1.dtype)
        if self.time_power != 1.0:
            t = t ** (1.0 / self.time_power)
        zt = t[:, None] * z1 + (1.0 - t[:, None]) * z0
        cond = _drop(labels, self.drop_probability, net.num_classes, kd)
        pred = jax.vmap(net)(t, zt, cond)
        return jnp.mean(jnp.sum((pred - (z1 - z0)) ** 2, axis=-1))

    def permutation(self, z0: Points, z1: Points, labels: Array, num_classes: int, key: Key):
        """The rows of ``z0`` paired with ``z1``'s rows: ``perm`` such that ``z0[perm][j]``
        goes to ``z1[j]``; with ``class_cost > 0`` noise row ``i`` carries the label
        ``labels[sigma(i)]`` for a random permutation ``sigma``."""
        if self.class_cost == 0.0:
            return self.coupling.permutation(z0, z1)
        noise_labels = labels[jax.random.permutation(key, labels.shape[0])]
        scale = jnp.sqrt(self.class_cost / 2.0).astype(z0.dtype)
        a0 = jnp.concatenate(
            [z0, scale * jax.nn.one_hot(noise_labels, num_classes, dtype=z0.dtype)], 1
        )
        a1 = jnp.concatenate([z1, scale * jax.nn.one_hot(labels, num_classes, dtype=z0.dtype)], 1)
        return self.coupling.permutation(a0, a1)


class ConditionalDSM(AbstractObjective):
    r"""Denoising score matching for a conditional :class:`~flowlab.Diffusion` with label
    dropout: $\mathbb{E}\,\lVert\hat\varepsilon_\theta(t, z_t, \tilde y) - \varepsilon
    \rVert^2$, $z_t = a(t) z_0 + \sigma(t)\varepsilon$ (the ``"std2"`` weighting of
    :class:`~flowlab.DenoisingScoreMatching`), $\tilde y$ as in
    :class:`ConditionalFlowMatching`.

    Arguments:
        drop_probability: $p$, the chance a label is replaced by the null label.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    drop_probability: float = eqx.field(static=True, default=0.1)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        _check_p(self.drop_probability, self.holdout_repeats)

    def __call__(self, model, batch: Points, key: Key) -> Array:
        model, net, x, labels = _unpack(model, batch, Diffusion, "ConditionalDSM")
        z0 = model.standardizer(x.shape[-1]).forward(x)
        k_t, k_noise, kd = jax.random.split(key, 3)
        t = model.training_times(k_t, z0.shape[0])
        noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
        a, std = jax.vmap(model.marginal)(t)
        zt = a[:, None] * z0 + std[:, None] * noise
        cond = _drop(labels, self.drop_probability, net.num_classes, kd)
        pred = jax.vmap(net)(t, zt, cond)
        return jnp.mean(jnp.sum((pred - noise) ** 2, axis=-1))
