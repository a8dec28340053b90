r"""The shortcut-model objective (Frans et al. 2025) for a :class:`~flowlab.Shortcut`."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._typing import Array, Key, Points
from ..shortcut import Shortcut
from ._base import AbstractObjective, base_draws, check_model

__all__ = ["ShortcutMatching"]


class ShortcutMatching(AbstractObjective):
    r"""Flow matching at $d = 0$ plus self-consistency of jumps (Frans et al. 2025).

    Of a batch of $n$ rows, $n - \lfloor n/k\rfloor$ (``bootstrap_every`` $= k$, the paper's
    4) train the $d = 0$ field by flow matching, $\|s(z_t, t, 0) - (z_1 - z_0)\|^2$ with
    $t \sim U(0, 1)$; the other $\lfloor n/k\rfloor$ train a jump of size
    $D = 2^{-j}$, $j$ uniform on $\{0, \ldots, \log_2 M\}$, from $t$ on the grid of $D$
    ($t = iD$, $i$ uniform on $0, \ldots, 1/D - 1$):

    $$\|s(z_t, t, D) - \operatorname{sg}[\tfrac12(s_1 + s_2)]\|^2,\quad
      s_1 = s(z_t, t, \delta),\ s_2 = s(z_t + \tfrac D2 s_1, t + \tfrac D2, \delta),$$

    with $\delta = D/2$, except at the smallest jump $D = 1/M$, where $\delta = 0$ (the
    field itself, the paper's base case). $z_t = (1 - t) z_0 + t z_1$. The loss is the
    mean over the batch (the paper's; its flow-matching times lie on the grid of $1/M$,
    here they are continuous so that the $d = 0$ field, whose ODE gives the likelihood, is
    trained at every time).

    Arguments:
        max_steps: $M$, a power of two: the smallest jump is $1/M$.
        bootstrap_every: $k$: one row in $k$ is a self-consistency row.
        coupling: ``None`` for independent pairs $(z_0, z_1)$, or a coupling from
            :mod:`flowlab.couplings` (e.g. ``ExactOT()``: minibatch optimal transport, as
            OT flow matching) pairing the base draws with the batch before the times are
            drawn.
        holdout_repeats: draws per hold-out point in the hold-out loss.

    **Source to target.** For a model with a ``prior`` (``MeanFlow(prior=...)``,
    ``Shortcut(prior=...)``) $z_0$ is drawn from ``model.prior_sample`` instead of
    $N(0, I)$, as :class:`FlowMatching` does for a CNF.
    """

    max_steps: int = eqx.field(static=True, default=128)
    bootstrap_every: int = eqx.field(static=True, default=4)
    coupling: Any = None
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        m = self.max_steps
        if isinstance(m, bool) or not isinstance(m, int) or m < 2 or m & (m - 1):
            raise ValueError(f"expected max_steps a power of two >= 2, got {m!r}")
        if isinstance(self.bootstrap_every, bool) or not self.bootstrap_every >= 1:
            raise ValueError(f"expected bootstrap_every >= 1, got {self.bootstrap_every!r}")

    @property
    def levels(self) -> int:
        """$\\log_2 M$: jumps $2^{-j}$ for $j = 0, \\ldots, \\log_2 M$."""
        return int(math.log2(self.max_steps))

    def bootstrap(
        self, model: Shortcut, z0: Points, z1: Points, t: Array, jump: Array
    ) -> tuple[Points, Points]:
        """``(prediction, stop-gradient target)`` of the self-consistency rows: jumps of size
        ``jump`` (shape ``(n,)``, each a power of two in $[1/M, 1]$) from times ``t``."""
        zt = (1.0 - t[:, None]) * z0 + t[:, None] * z1
        half = 0.5 * jump
        inner = jnp.where(jump <= 1.0 / self.max_steps, jnp.zeros_like(half), half)
        s_fn = jax.vmap(model.shortcut)
        s1 = s_fn(zt, t, inner)
        s2 = s_fn(zt + half[:, None] * s1, t + half, inner)
        target = jax.lax.stop_gradient(0.5 * (s1 + s2))
        return s_fn(zt, t, jump), target

    def flow_matching(self, model: Shortcut, z0: Points, z1: Points, t: Array):
        """``(prediction, target)`` of the flow-matching rows: $s(z_t, t, 0)$, $z_1 - z_0$."""
        zt = (1.0 - t[:, None]) * z0 + t[:, None] * z1
        return jax.vmap(model.shortcut)(zt, t, jnp.zeros_like(t)), z1 - z0

    def __call__(self, model, x: Points, key: Key) -> Array:
        check_model(model, Shortcut, "ShortcutMatching", "a Shortcut")
        z1 = model.standardizer(x.shape[-1]).forward(x)
        n = z1.shape[0]
        nb = n // self.bootstrap_every
        k0, kt, kj, ki, kc = jax.random.split(key, 5)
        z0 = base_draws(model, k0, z1)
        if self.coupling is not None:
            z0, z1 = self.coupling(z0, z1, kc)
        t_fm = jax.random.uniform(kt, (n - nb,), z1.dtype)
        pred, target = self.flow_matching(model, z0[nb:], z1[nb:], t_fm)
        sq = jnp.sum((pred - target) ** 2, axis=-1)
        if nb > 0:
            j = jax.random.randint(kj, (nb,), 0, self.levels + 1)
            jump = jnp.exp2(-j.astype(z1.dtype))
            i = jax.random.randint(ki, (nb,), 0, jnp.left_shift(1, j))
            t_b = i.astype(z1.dtype) * jump
            pred_b, target_b = self.bootstrap(model, z0[:nb], z1[:nb], t_b, jump)
            sq = jnp.concatenate([jnp.sum((pred_b - target_b) ** 2, axis=-1), sq])
        return jnp.mean(sq)
