r"""Mean flows: one-step generation from a learned average velocity (Geng et al. 2025).

A :class:`MeanFlow` is a flow map (:class:`~flowlab.AbstractFlowMap`): one network
$u_\theta(z, r, t)$, the average velocity of the flow from $z$ at time $r$ to time $t$, in
flowlab's direction (base $N(0, I)$ at $t = 0$, data at $t = 1$, standardised
coordinates). One jump $z_1 = z_0 + u_\theta(z_0, 0, 1)$ is one-step generation
(:class:`~flowlab.samplers.FlowMap` with ``steps=1``, 1 NFE); $k$ jumps cost $k$ NFE.
Its instantaneous velocity $u_\theta(z, t, t)$ is an ODE field like any CNF's, so the
adaptive ODE sampler and the exact likelihood (adaptive solve, exact trace) apply: the
likelihood of the *instantaneous-velocity ODE*, which is not the density of the one-step
samples (``likelihood_label`` says so).

It is trained by :class:`~flowlab.objectives.MeanFlowMatching`, the MeanFlow identity
$u(z_r, r, t) = v(z_r, r) + (t - r)\,\tfrac{d}{dr} u(z_r, r, t)$ regressed with a
stop-gradient target computed by ``jax.jvp``.

**Sign convention.** The paper runs data at $t = 0$ and noise at $t = 1$, evaluates $u$ at
the later time $t$ and jumps back to $r < t$: $z_r = z_t - (t - r)\,u(z_t, r, t)$, with
$u_{\text{tgt}} = v - (t - r)(v\cdot\partial_z u + \partial_t u)$. Under $\tau = 1 - t$
(flowlab's time) the point's time becomes the *start* $r$ of the jump and every velocity
changes sign; the identity becomes the one above, with the derivative taken along the
flow in the start time. The network sees (start time, span, $z$) as the paper's sees
$(t, t - r, z)$.

Reference: Z. Geng, M. Deng, X. Bai, J. Z. Kolter, K. He, "Mean Flows for One-step
Generative Modeling", arXiv:2505.13447 (2025); official JAX code
github.com/Gsunshine/meanflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx

from ._flow_map import AbstractFlowMap, init_flow_map
from ._ode import SolverOptions
from ._prior import AbstractPrior
from ._standardize import Standardize
from ._typing import Point, Time

__all__ = ["MeanFlow"]


class MeanFlow(AbstractFlowMap):
    r"""A mean-flow model: average velocity $u(z, r, t)$ = ``network(r, t - r, z)``
    (module docstring). Trained: ``network``.

    Arguments:
        network: ``network(r, span, z) -> (d,)`` on one standardised point, e.g.
            :class:`~flowlab.MLPFlowMapNet`.
        data_size: ``d``; read from ``network.data_size`` or ``standardize`` if omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        prior: ``None`` for $N(0, I)$ in standardised coordinates, or an
            :class:`~flowlab.AbstractPrior` in data coordinates (source to target, as
            :class:`~flowlab.CNF`'s ``prior=``).
        **solver_options: :class:`~flowlab.SolverOptions` of the instantaneous-velocity
            ODE (adaptive Dopri5 by default: what ``log_prob`` and the ODE sampler use).
    """

    network: Callable
    standardize: Standardize | None
    options: SolverOptions
    data_size: int | None = eqx.field(static=True)
    prior: AbstractPrior | None = None
    trainable_fields: ClassVar[tuple[str, ...]] = ("network",)

    def __init__(
        self,
        network: Callable[[Time, Time, Point], Point],
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        prior: AbstractPrior | None = None,
        **solver_options,
    ):
        init_flow_map(self, network, data_size, standardize, prior, solver_options)
