r"""The non-saturating GAN game (Goodfellow et al. 2014) as one loss for the one training
loop, and the two players' losses from logits."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_count
from .._typing import Array, Key, Points, Values
from ..gan import GAN
from ._base import AbstractObjective

__all__ = [
    "EQUILIBRIUM_D_LOSS",
    "EQUILIBRIUM_G_LOSS",
    "NonSaturatingGAN",
    "discriminator_loss",
    "generator_loss",
]

EQUILIBRIUM_D_LOSS = 2 * math.log(2)
r"""$L_D = 2\log 2$ when $D \equiv \tfrac12$ (the generator matches the data): the course's
"$-2\log 2$" is the value $V(D, G) = -L_D$ of the minimax game."""

EQUILIBRIUM_G_LOSS = math.log(2)
r"""The non-saturating generator loss $-\mathbb{E}\log D(G(u))$ at $D \equiv \tfrac12$:
$\log 2$."""


def _frozen(module: Any) -> Any:
    """``module`` with ``stop_gradient`` on every array: gradients flow through its inputs
    only, never into its parameters."""
    return jax.tree_util.tree_map(
        lambda leaf: jax.lax.stop_gradient(leaf) if eqx.is_array(leaf) else leaf, module
    )


def discriminator_loss(real_logits: Values, fake_logits: Values) -> Array:
    r"""$L_D = -\mathbb{E}\log\sigma(D(z)) - \mathbb{E}\log(1 - \sigma(D(G(u))))$ from logits
    (binary cross-entropy, computed stably with softplus); $2\log 2$ at $D \equiv 0$."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits: Values) -> Array:
    r"""Non-saturating $L_G = -\mathbb{E}\log\sigma(D(G(u)))$ from logits; $\log 2$ at
    $D \equiv 0$."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


class NonSaturatingGAN(AbstractObjective):
    r"""The non-saturating GAN game (Goodfellow et al. 2014) as one loss for one loop.

    With $z = (x - \mu)/s$ a batch of standardised data and $u \sim N(0, I_k)$ one latent
    per data point,
    $$L_D = -\mathbb{E}\log\sigma(D(z)) - \mathbb{E}\log\big(1 - \sigma(D(G(u)))\big)
      + \frac{\gamma}{2}\mathbb{E}\,\|\nabla_z D(z)\|^2, \qquad
      L_G = -\mathbb{E}\log\sigma(D(G(u))),$$
    the last term of $L_D$ being the optional R1 penalty on real data (Mescheder et al.
    2018; in standardised coordinates). The returned loss is
    $$L = L_D(D, \operatorname{sg}(G)) + L_G(\operatorname{sg}(D), G)$$
    with $\operatorname{sg}$ = ``stop_gradient``: its gradient with respect to the
    discriminator's parameters is $\nabla_\phi L_D$ and with respect to the generator's
    $\nabla_\theta L_G$, so one optimiser step on $L$ is a simultaneous step of both
    players. The value of $L$ itself has no game meaning; the players' losses are returned
    as auxiliary outputs, which :func:`~flowlab.fit` records per step (``history.step_aux``)
    and on the hold-out (``history.metrics["holdout_d_loss"]`` etc.):

    * ``d_loss``: $L_D$ without the penalty (binary cross-entropy). At the equilibrium
      ($D \equiv \tfrac12$) it is $2\log 2$; the course's "$-2\log 2$" is the value
      $V(D, G) = \mathbb{E}\log D + \mathbb{E}\log(1 - D\circ G) = -L_D$.
    * ``g_loss``: $L_G$, $\log 2$ at the equilibrium.
    * ``d_real``, ``d_fake``: mean $\sigma(D)$ on real and generated points (both
      $\tfrac12$ at the equilibrium).
    * ``r1_penalty``: $\frac{\gamma}{2}\mathbb{E}\|\nabla D\|^2$ (only when ``r1 > 0``).

    Arguments:
        r1: $\gamma \ge 0$, weight of the R1 gradient penalty (0 turns it off).
        holdout_repeats: latent draws per hold-out point in the hold-out losses.
    """

    r1: float = eqx.field(static=True, default=0.0)
    holdout_repeats: int = eqx.field(static=True, default=4, kw_only=True)

    def __check_init__(self):
        if not (isinstance(self.r1, int | float) and self.r1 >= 0):
            raise ValueError(f"expected r1 >= 0, got {self.r1!r}")
        check_count(self.holdout_repeats, "holdout_repeats")

    def __call__(self, model, x: Points, key: Key) -> tuple[Array, dict[str, Array]]:
        if not isinstance(model, GAN):
            raise TypeError(f"NonSaturatingGAN trains a GAN, got {type(model).__name__}")
        real = model.standardizer(x.shape[-1]).forward(x)
        fake = model.generate(model.latent_sample(key, x.shape[0]))
        disc = model.discriminator
        if self.r1 > 0:
            real_logits, real_grads = jax.vmap(jax.value_and_grad(disc))(real)
            penalty = 0.5 * self.r1 * jnp.mean(jnp.sum(real_grads**2, axis=-1))
        else:
            real_logits, penalty = model.logits(real), None
        # the discriminator's loss sees fixed samples; the generator's a fixed discriminator
        fake_logits_d = model.logits(jax.lax.stop_gradient(fake))
        fake_logits_g = jax.vmap(_frozen(disc))(fake)
        d_loss = discriminator_loss(real_logits, fake_logits_d)
        g_loss = generator_loss(fake_logits_g)
        aux = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits_d)),
        }
        loss = d_loss + g_loss
        if penalty is not None:
            aux["r1_penalty"] = penalty
            loss = loss + penalty
        return loss, aux
