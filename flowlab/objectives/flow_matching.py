r"""Conditional flow matching for a CNF, with optional minibatch couplings
(:mod:`flowlab.couplings`) and the Schrödinger-bridge path."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._typing import Array, Key, Points
from ..cnf import CNF
from ._base import AbstractObjective, base_draws, check_model

__all__ = ["FlowMatching"]


class FlowMatching(AbstractObjective):
    r"""Conditional flow matching for a :class:`~flowlab.CNF` (Lipman et al. 2023; Tong et
    al. 2024), in its standardised coordinates:
    $\mathbb{E}\,\| f(t, z_t) - (z_1 - (1-\sigma_{\min}) z_0)\|^2$ with
    $z_t = t z_1 + (1 - (1-\sigma_{\min}) t) z_0$, $z_0 \sim N(0, I)$, $t \sim U(0, 1)$.
    For a CNF with a ``prior`` (source to target), $z_0$ is drawn from ``model.prior_sample``
    instead: the same regression then learns a flow from that source to the data.

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
        time_power: $a$ of the time law: $t = u^{1/a}$, $u \sim U(0, 1)$, so $t$ has density
            $a t^{a-1}$ on $[0, 1]$; 1 is uniform, $a > 1$ weights the regression towards
            the data end ($t = 1$), where the field is hardest to learn. With $a = 2$ the
            default CNF reaches a given checkerboard NLL in about as many steps at a
            quarter of the batch (``benchmarks/TIME_TO_QUALITY.md``).
        holdout_repeats: noise draws per hold-out point in the hold-out loss.

    Raises:
        ValueError: (when called, at trace time) for a model that is not a
            :class:`~flowlab.CNF` (the path runs from its base at $t = 0$ to the data at
            $t = 1$).
    """

    sigma_min: float = eqx.field(static=True, default=0.0)
    coupling: Any = None
    bridge_sigma: float = eqx.field(static=True, default=0.0)
    time_power: float = eqx.field(static=True, default=1.0)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        if self.bridge_sigma < 0 or (self.bridge_sigma > 0 and self.sigma_min > 0):
            raise ValueError(
                f"expected bridge_sigma >= 0 and not both bridge_sigma and sigma_min, got "
                f"bridge_sigma={self.bridge_sigma}, sigma_min={self.sigma_min}"
            )
        if not self.time_power > 0:
            raise ValueError(f"expected time_power > 0, got {self.time_power!r}")

    def __call__(self, model, x: Points, key: Key) -> Array:
        check_model(model, CNF, "FlowMatching", "a CNF (base at t = 0, data at t = 1)")
        z1 = model.standardizer(x.shape[-1]).forward(x)
        k0, kt, kc, kb = jax.random.split(key, 4)
        z0 = base_draws(model, k0, z1)  # the CNF's prior (N(0, I) unless prior=)
        if self.coupling is not None:
            z0, z1 = self.coupling(z0, z1, kc)
        t = jax.random.uniform(kt, (z1.shape[0],), z1.dtype)
        if self.time_power != 1.0:
            t = t ** (1.0 / self.time_power)
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
