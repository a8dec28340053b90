r"""Generative adversarial network: a generator from $N(0, I)$ and a discriminator, one loop.

A generator $G_\theta: \mathbb{R}^k \to \mathbb{R}^d$ pushes a latent $u \sim N(0, I_k)$
to a sample; a discriminator $D_\phi: \mathbb{R}^d \to \mathbb{R}$ returns a logit, and
$\sigma(D_\phi(z))$ is its probability that $z$ is real (Goodfellow et al. 2014). Both act
on standardised coordinates $z = (x - \mu)/s$; samples are reported in data coordinates.

Training is the two-player game of :class:`~flowlab.objectives.NonSaturatingGAN`, run by the one
:func:`~flowlab.fit` loop: its loss is a single scalar whose gradient with respect to the
discriminator is that of the discriminator's loss and with respect to the generator that of
the generator's (non-saturating) loss, so one optimiser step is a simultaneous step of both
players (as the Diffrax neural-SDE GAN example holds both players in one pytree).
:class:`~flowlab.optim.TwoPlayerAdam` gives each player its own learning rate.

Likelihood kind *none*: a GAN has no density. Compare it by the sample-based metrics of
:mod:`flowlab.metrics` through :mod:`flowlab.evaluate`, whose
:func:`~flowlab.evaluate.diagnostics` says whether the samples have collapsed (a KDE of
collapsed samples is meaningless) and how much of the data's support they cover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_key
from ._model import AbstractModel
from ._ode import Stats
from ._standardize import Standardize, resolve_data_size
from ._typing import Array, Key, Point, Points, Values
from .nn import ACTIVATIONS, mlp

__all__ = [
    "GAN",
]

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


class GAN(AbstractModel):
    r"""A generator $G: \mathbb{R}^k \to \mathbb{R}^d$ from $N(0, I_k)$ and a discriminator
    $D: \mathbb{R}^d \to \mathbb{R}$ (a logit), both on standardised coordinates.

    Samples are $x = \mu + s \odot G(u)$, $u \sim N(0, I_k)$: one generator pass. Trained:
    ``generator`` and ``discriminator`` (by :class:`~flowlab.objectives.NonSaturatingGAN`).
    Likelihood kind ``"none"``.

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
        generator = mlp(
            latent_size, data_size, width, depth, _activation(generator_activation), key=k_gen
        )
        discriminator = mlp(
            data_size, "scalar", width, depth, _activation(discriminator_activation), key=k_disc
        )
        return cls(
            generator, discriminator, latent_size, data_size=data_size, standardize=standardize
        )

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
        one (batched) generator evaluation; ``stats.success`` is ``False`` when any sample is
        NaN or inf. ``sampler`` is accepted for the protocol's
        sake (callers pass ``sampler=None`` to every family) and must be ``None``: a GAN
        has one sampler, its generator.

        Raises ``ValueError`` for a ``sampler``, a ``key`` that is not one PRNG key (e.g.
        an int seed) or an ``n`` that is not a positive integer."""
        if sampler is not None:
            raise ValueError(
                f"a GAN samples with one pass of its generator: expected sampler=None, got "
                f"{sampler!r}"
            )
        n = check_count(n)
        check_key(key)
        d = self.require_data_size()
        z = self.generate(self.latent_sample(key, n))
        x = self.standardizer(d).inverse(z)
        return x, Stats.fixed(1, 1, success=jnp.all(jnp.isfinite(x)))
