r"""Every training objective, one module each: ``objective(model, batch, key) -> loss``.

An objective is an Equinox module (its fields are its configuration, recorded in
checkpoints) that maps a model, a batch of data points (data coordinates) and a key to a
scalar loss, or to ``(loss, aux)`` with ``aux`` a dict of scalars that
:func:`~flowlab.fit` records every step (e.g. each player's loss of a GAN). Every
objective declares ``holdout_repeats``: how many noise draws per hold-out point ``fit``
averages when it evaluates the hold-out loss with a fixed key.

An objective that carries state from step to step (e.g. the replay buffer of contrastive
divergence) subclasses :class:`AbstractStatefulObjective`; ``fit`` threads its state
through the fused training scan and checkpoints it.

* :class:`FlowMatching`: conditional flow matching for a :class:`~flowlab.CNF`.
* :class:`MaximumLikelihood`: $-\mathbb{E}\log p(x)$ through the augmented ODE, for any
  ODE flow (a CNF or a diffusion model's probability flow).
* :class:`DenoisingScoreMatching`: DSM for a :class:`~flowlab.Diffusion` (continuous
  time) or a :class:`~flowlab.DDPM` (discrete time; with the default weighting this is
  Ho et al.'s $L_\text{simple}$), in the course's residual form with ``k`` noise draws.
* :class:`SingleNoiseDSM`: DSM at one noise level for a
  :class:`~flowlab.SingleNoiseScore`.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._flow import AbstractFlow
from ._model import AbstractExactLikelihood, AbstractModel
from ._typing import Array, Key, Points

__all__ = [
    "AbstractObjective",
    "AbstractStatefulObjective",
    "DenoisingScoreMatching",
    "FlowMatching",
    "MaximumLikelihood",
    "SingleNoiseDSM",
    "WEIGHTINGS",
]

WEIGHTINGS = ("std2", "likelihood")
"""Time weightings of :class:`DenoisingScoreMatching`."""


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive integer, got {value!r}")


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


class FlowMatching(AbstractObjective):
    r"""Conditional flow matching for a :class:`~flowlab.CNF` (Lipman et al. 2023; Tong et
    al. 2024), in its standardised coordinates:
    $\mathbb{E}\,\| f(t, z_t) - (z_1 - (1-\sigma_{\min}) z_0)\|^2$ with
    $z_t = t z_1 + (1 - (1-\sigma_{\min}) t) z_0$, $z_0 \sim N(0, I)$, $t \sim U(0, 1)$.

    With ``bridge_sigma`` $= \sigma > 0$ the path is the Brownian bridge of the
    Schrödinger-bridge variant (SB-CFM, Tong et al. 2024): $z_t = \mu_t +
    \sigma\sqrt{t(1-t)}\,\xi$, $\mu_t = t z_1 + (1-t) z_0$, target
    $\frac{1-2t}{2t(1-t)}(z_t - \mu_t) + z_1 - z_0$; pair it with an entropic coupling
    (:func:`flowlab.couplings.schrodinger_bridge`, $\epsilon = 2\sigma^2$).

    Arguments:
        sigma_min: width of the conditional path at $t=1$ (0 gives the straight line).
        coupling: how base draws are paired with the batch: ``None`` for independent
            pairs, or a coupling from :mod:`flowlab.couplings` (minibatch optimal
            transport: ``ExactOT()``, ``Sinkhorn()``), applied inside the jitted step.
        bridge_sigma: $\sigma$ of the Schrödinger-bridge path (0: the straight path).
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    sigma_min: float = eqx.field(static=True, default=0.0)
    coupling: Any = None
    bridge_sigma: float = eqx.field(static=True, default=0.0)
    holdout_repeats: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if self.bridge_sigma < 0 or (self.bridge_sigma > 0 and self.sigma_min > 0):
            raise ValueError(
                f"expected bridge_sigma >= 0 and not both bridge_sigma and sigma_min, got "
                f"bridge_sigma={self.bridge_sigma}, sigma_min={self.sigma_min}"
            )

    def __call__(self, model, x: Points, key: Key) -> Array:
        z1 = model.standardizer(x.shape[-1]).forward(x)
        k0, kt, kc, kb = jax.random.split(key, 4)
        z0 = jax.random.normal(k0, z1.shape, z1.dtype)
        if self.coupling is not None:
            z0, z1 = self.coupling(z0, z1, kc)
        t = jax.random.uniform(kt, (z1.shape[0],), z1.dtype)
        if self.bridge_sigma > 0:
            t = jnp.clip(t, 1e-5, 1.0 - 1e-5)[:, None]
            xi = jax.random.normal(kb, z1.shape, z1.dtype)
            root = jnp.sqrt(t * (1.0 - t))
            zt = t * z1 + (1.0 - t) * z0 + self.bridge_sigma * root * xi
            # (1 - 2t) / (2 t (1 - t)) (z_t - mu_t), written without the cancelling root
            target = (1.0 - 2.0 * t) * self.bridge_sigma * xi / (2.0 * root) + z1 - z0
            t = t[:, 0]
        else:
            c = 1.0 - self.sigma_min
            zt = t[:, None] * z1 + (1.0 - c * t[:, None]) * z0
            target = z1 - c * z0
        pred = jax.vmap(model.field)(t, zt)
        return jnp.mean(jnp.sum((pred - target) ** 2, axis=-1))


class MaximumLikelihood(AbstractObjective):
    r"""Negative log-likelihood (nats, data coordinates) of any exact-likelihood model; for
    an ODE flow (a CNF, or a diffusion model through its probability flow) back-propagated
    through the solver of the augmented ODE (FFJORD).

    Arguments:
        rtol, atol: tolerances of the training solve (looser than the reporting default;
            reported numbers always come from ``model.log_prob`` with its own options).
        max_steps: step budget of the training solve.
        hutchinson: one Rademacher probe per point (fixed over the solve) instead of the
            exact trace: an unbiased estimate of the gradient, cheaper in high dimension.
        norm: error norm of the training solve: ``"rms"`` (default) controls the batch's
            RMS error, all a gradient needs, and takes ~40% fewer steps than ``"max"``.
        holdout_repeats: 1 (the hold-out NLL has no noise to average unless ``hutchinson``).
    """

    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-3)
    max_steps: int = eqx.field(static=True, default=1024)
    hutchinson: bool = eqx.field(static=True, default=False)
    holdout_repeats: int = eqx.field(static=True, default=1)
    norm: str = eqx.field(static=True, default="rms")

    def __call__(self, model, x: Points, key: Key) -> Array:
        if isinstance(model, AbstractFlow):
            train_model = model.with_options(
                rtol=self.rtol, atol=self.atol, max_steps=self.max_steps, norm=self.norm
            )
            probe_key = key if self.hutchinson else None
            # Solver failures in training give NaN (a visible NaN loss), not an exception
            # from deep inside a scan.
            return -jnp.mean(train_model.log_prob(x, key=probe_key, throw=False))
        if isinstance(model, AbstractExactLikelihood):
            return -jnp.mean(model.log_prob(x))
        raise TypeError(
            f"MaximumLikelihood needs a model with an exact likelihood, got "
            f"{type(model).__name__}"
            + (
                f" (likelihood kind {model.likelihood_kind!r})"
                if isinstance(model, AbstractModel)
                else ""
            )
        )


class DenoisingScoreMatching(AbstractObjective):
    r"""Denoising score matching (Vincent 2011; Song et al. 2021; Ho et al. 2020) for a
    Gaussian-kernel diffusion model: a :class:`~flowlab.Diffusion` or a
    :class:`~flowlab.DDPM`.

    For a standardised data point $z_0$, a training time $t$ drawn by the model
    ($U(\epsilon, 1)$ for an SDE, a uniform step index for DDPM) and
    $z_t = a(t) z_0 + \sigma(t)\varepsilon$, the conditional score is
    $\nabla \log p(z_t \mid z_0) = -\varepsilon/\sigma(t)$, so with the weighting
    $\lambda(t) = \sigma(t)^2$ (``"std2"``, the course's residual form)
    $$\lambda(t)\,\big\|s_\theta(t, z_t) - \nabla\log p(z_t\mid z_0)\big\|^2
      = \big\|\hat\varepsilon_\theta(t, z_t) - \varepsilon\big\|^2,$$
    a residual of order one at every $t$; for DDPM this is $L_\text{simple}$.
    ``"likelihood"`` (SDE models only) uses $\lambda(t) = g(t)^2$ (Song et al. 2021b):
    then $\tfrac12\int_\epsilon^1 \mathbb{E}\,g^2\|s_\theta - \nabla\log p(z_t|z_0)\|^2 dt$
    (this loss times $(1-\epsilon)/2$, plus terms free of $\theta$) bounds the NLL of the
    model's *reverse SDE* (not of its PF-ODE) from above, in standardised coordinates
    (Song et al. 2021b, Theorem 1); the weight has high variance near $t = \epsilon$.

    The loss is summed over coordinates and averaged over the batch and the ``k``
    independent $(t, \varepsilon)$ draws per data point.

    Arguments:
        k: noise draws per data point.
        weighting: ``"std2"`` or ``"likelihood"``.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    k: int = eqx.field(static=True, default=1)
    weighting: str = eqx.field(static=True, default="std2")
    holdout_repeats: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        _check_positive_int(self.k, "k")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"unknown weighting {self.weighting!r}; expected one of: {', '.join(WEIGHTINGS)}"
            )

    def __call__(self, model, x: Points, key: Key) -> Array:
        z0 = jnp.repeat(model.standardizer(x.shape[-1]).forward(x), self.k, axis=0)
        k_t, k_noise = jax.random.split(key)
        t = model.training_times(k_t, z0.shape[0])
        noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
        a, std = jax.vmap(model.marginal)(t)
        zt = a[:, None] * z0 + std[:, None] * noise
        pred = jax.vmap(model.predict_noise)(t, zt)
        residual = jnp.sum((pred - noise) ** 2, axis=-1)
        if self.weighting == "likelihood":
            sde = getattr(model, "sde", None)
            if sde is None:
                raise ValueError(
                    f"the 'likelihood' weighting needs an SDE model (g(t)), got "
                    f"{type(model).__name__}; use weighting='std2'"
                )
            residual = residual * jax.vmap(sde.diffusion)(t) ** 2 / std**2
        return jnp.mean(residual)


class SingleNoiseDSM(AbstractObjective):
    r"""Denoising score matching at a :class:`~flowlab.SingleNoiseScore`'s one $\sigma$, in
    residual form: $\sigma^2\|s_\theta(z + \sigma\varepsilon) + \varepsilon/\sigma\|^2 =
    \|\hat\varepsilon_\theta(z + \sigma\varepsilon) - \varepsilon\|^2$, averaged over the
    batch and ``k`` noise draws per point.

    Arguments:
        k: noise draws per data point.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    k: int = eqx.field(static=True, default=1)
    holdout_repeats: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        _check_positive_int(self.k, "k")

    def __call__(self, model, x: Points, key: Key) -> Array:
        z = jnp.repeat(model.standardizer(x.shape[-1]).forward(x), self.k, axis=0)
        noise = jax.random.normal(key, z.shape, z.dtype)
        pred = jax.vmap(model.predict_noise)(z + model.sigma * noise)
        return jnp.mean(jnp.sum((pred - noise) ** 2, axis=-1))
