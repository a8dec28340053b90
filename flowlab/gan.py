r"""Generative adversarial network: a generator from $N(0, I)$ and a discriminator, one loop.

A generator $G_\theta: \mathbb{R}^k \to \mathbb{R}^d$ pushes a latent $u \sim N(0, I_k)$
to a sample; a discriminator $D_\phi: \mathbb{R}^d \to \mathbb{R}$ returns a logit, and
$\sigma(D_\phi(z))$ is its probability that $z$ is real (Goodfellow et al. 2014). Both act
on standardised coordinates $z = (x - \mu)/s$; samples are reported in data coordinates.

Training is the two-player game of :class:`NonSaturatingGAN`, run by the one
:func:`~flowlab.fit` loop: its loss is a single scalar whose gradient with respect to the
discriminator is that of the discriminator's loss and with respect to the generator that of
the generator's (non-saturating) loss, so one optimiser step is a simultaneous step of both
players (as the Diffrax neural-SDE GAN example holds both players in one pytree).
:class:`TwoPlayerAdam` gives each player its own learning rate.

Likelihood kind *none*: a GAN has no density. Compare it by the sample-based metrics of
:mod:`flowlab.metrics` through :mod:`flowlab.evaluate`, whose
:func:`~flowlab.evaluate.diagnostics` says whether the samples have collapsed (a KDE of
collapsed samples is meaningless) and how much of the data's support they cover.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._checks import check_count
from ._model import AbstractModel
from ._ode import Stats
from ._standardize import Standardize, resolve_data_size
from ._typing import Array, Key, Point, Points, Values
from .fit import Adam
from .nn import ACTIVATIONS
from .objectives import AbstractObjective

__all__ = [
    "GAN",
    "EQUILIBRIUM_D_LOSS",
    "EQUILIBRIUM_G_LOSS",
    "NonSaturatingGAN",
    "TwoPlayerAdam",
    "discriminator_loss",
    "generator_loss",
    "player_labels",
]

EQUILIBRIUM_D_LOSS = 2 * math.log(2)
r"""$L_D = 2\log 2$ when $D \equiv \tfrac12$ (the generator matches the data): the course's
"$-2\log 2$" is the value $V(D, G) = -L_D$ of the minimax game."""

EQUILIBRIUM_G_LOSS = math.log(2)
r"""The non-saturating generator loss $-\mathbb{E}\log D(G(u))$ at $D \equiv \tfrac12$:
$\log 2$."""

_GAN_ACTIVATIONS: dict[str, Callable] = {
    **ACTIVATIONS,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
}


def _activation(name: str | Callable) -> Callable:
    if callable(name):
        return name
    try:
        return _GAN_ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of: {', '.join(_GAN_ACTIVATIONS)}"
        ) from None


def _frozen(module: Any) -> Any:
    """``module`` with ``stop_gradient`` on every array: gradients flow through its inputs
    only, never into its parameters."""
    return jax.tree_util.tree_map(
        lambda leaf: jax.lax.stop_gradient(leaf) if eqx.is_array(leaf) else leaf, module
    )


class GAN(AbstractModel):
    r"""A generator $G: \mathbb{R}^k \to \mathbb{R}^d$ from $N(0, I_k)$ and a discriminator
    $D: \mathbb{R}^d \to \mathbb{R}$ (a logit), both on standardised coordinates.

    Samples are $x = \mu + s \odot G(u)$, $u \sim N(0, I_k)$: one generator pass. Trained:
    ``generator`` and ``discriminator`` (by :class:`NonSaturatingGAN`). Likelihood kind
    ``"none"``.

    Arguments:
        generator: callable on one latent of shape ``(k,)`` returning a point ``(d,)``.
        discriminator: callable on one point ``(d,)`` returning a scalar logit.
        latent_size: $k$.
        data_size: ``d``; read from ``generator.data_size`` or ``standardize`` when omitted.
        standardize: the affine map to standardised coordinates (identity by default).
    """

    generator: Callable[[Point], Point]
    discriminator: Callable[[Point], Array]
    standardize: Standardize | None
    data_size: int | None = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    trainable_fields: ClassVar[tuple[str, ...]] = ("generator", "discriminator")

    def __init__(
        self,
        generator: Callable[[Point], Point],
        discriminator: Callable[[Point], Array],
        latent_size: int,
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
    ):
        self.generator = generator
        self.discriminator = discriminator
        self.latent_size = check_count(latent_size, "latent_size")
        self.data_size, self.standardize = resolve_data_size(generator, data_size, standardize)

    @classmethod
    def mlp(
        cls,
        data_size: int,
        *,
        latent_size: int = 8,
        width: int = 128,
        depth: int = 3,
        generator_activation: str | Callable = "leaky_relu",
        discriminator_activation: str | Callable = "leaky_relu",
        standardize: Standardize | None = None,
        key: Key,
    ) -> GAN:
        """A GAN whose players are ``eqx.nn.MLP`` s with ``depth`` hidden layers of ``width``
        units (activations by name: those of :data:`flowlab.nn.ACTIVATIONS`, ``"relu"`` or
        ``"leaky_relu"`` (slope 0.2), or callables)."""
        data_size = check_count(data_size, "data_size")
        check_count(width, "width")
        check_count(depth, "depth")
        k_gen, k_disc = jax.random.split(key)
        generator = eqx.nn.MLP(
            latent_size, data_size, width, depth, _activation(generator_activation), key=k_gen
        )
        discriminator = eqx.nn.MLP(
            data_size, "scalar", width, depth, _activation(discriminator_activation), key=k_disc
        )
        return cls(
            generator, discriminator, latent_size, data_size=data_size, standardize=standardize
        )

    @property
    def likelihood_kind(self) -> str:
        return "none"

    def latent_sample(self, key: Key, n: int) -> Points:
        """``n`` latents $u \\sim N(0, I_k)$, shape ``(n, k)``."""
        return jax.random.normal(key, (n, self.latent_size))

    def generate(self, u: Points) -> Points:
        """$G(u)$ for latents ``u`` of shape ``(n, k)``: standardised points ``(n, d)``."""
        if u.ndim != 2 or u.shape[1] != self.latent_size:
            raise ValueError(
                f"expected latents of shape (n, {self.latent_size}), got shape {u.shape}"
            )
        z = jax.vmap(self.generator)(u)
        d = self.data_size
        if d is not None and z.shape != (u.shape[0], d):
            raise ValueError(
                f"the generator must map a latent of shape ({self.latent_size},) to a point "
                f"of shape ({d},), got shape {z.shape[1:]}"
            )
        return z

    def logits(self, z: Points) -> Values:
        """Discriminator logits $D(z)$ of standardised points ``z`` (``(n, d)``), shape
        ``(n,)``."""
        out = jax.vmap(self.discriminator)(z)
        if out.shape != (z.shape[0],):
            raise ValueError(
                f"the discriminator must return one scalar logit per point, got shape "
                f"{out.shape[1:]} per point"
            )
        return out

    def discriminate(self, x: Points) -> Values:
        """$\\sigma(D(z))$: the discriminator's probability that each row of ``x`` (data
        coordinates) is real, shape ``(n,)``."""
        x = self.check_points(x)
        return jax.nn.sigmoid(self.logits(self.standardizer(x.shape[-1]).forward(x)))

    def sample_with_stats(self, key: Key, n: int, *, sampler=None) -> tuple[Points, Stats]:
        """``n`` samples $\\mu + s \\odot G(u)$ (data coordinates) and their cost: one step,
        one (batched) generator evaluation. ``sampler`` is accepted for the protocol's
        sake (callers pass ``sampler=None`` to every family) and must be ``None``: a GAN
        has one sampler, its generator."""
        if sampler is not None:
            raise ValueError(
                f"a GAN samples with one pass of its generator: expected sampler=None, got "
                f"{sampler!r}"
            )
        n = check_count(n)
        d = self.require_data_size()
        z = self.generate(self.latent_sample(key, n))
        return self.standardizer(d).inverse(z), Stats.fixed(1, 1)


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
    holdout_repeats: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        if not (isinstance(self.r1, int | float) and self.r1 >= 0):
            raise ValueError(f"expected r1 >= 0, got {self.r1!r}")
        check_count(self.holdout_repeats, "holdout_repeats")

    def __call__(self, model: GAN, x: Points, key: Key) -> tuple[Array, dict[str, Array]]:
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
    each player gets :class:`~flowlab.fit.Adam`'s warm-up, cosine decay to 1% and gradient
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
