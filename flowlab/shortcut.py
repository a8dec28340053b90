r"""Shortcut models: one network for every step size (Frans, Hafner, Levine & Abbeel 2025).

A :class:`Shortcut` holds a network $s_\theta(z, t, d)$: the jump direction from $z$ at
time $t$ over a step of size $d$, so that $z_{t+d} \approx z_t + d\,s_\theta(z_t, t, d)$
(base $N(0, I)$ at $t = 0$, data at $t = 1$: the paper's direction is flowlab's). At
$d = 0$ it is the flow-matching velocity. It is trained
(:class:`~flowlab.objectives.ShortcutMatching`) by flow matching at $d = 0$ and by
*self-consistency*: one jump of $2d$ equals two jumps of $d$,

$$s(z_t, t, 2d) = \operatorname{sg}\Big[\tfrac12\big(s(z_t, t, d)
  + s(z_t + d\,s(z_t, t, d),\ t + d,\ d)\big)\Big],$$

for $d$ among powers of two from $1/M$ to $1/2$ (``max_steps`` $= M$).

**Why shortcut models, and not consistency training.** Both give one-step samplers. A
shortcut model fits flowlab's protocol without a second object: $s(z, t, d)$ *is* the
average velocity $u(z, t, t + d)$ of a flow map (:class:`~flowlab.AbstractFlowMap`), and
$s(z, t, 0)$ is an ODE field, so the model is an :class:`~flowlab.AbstractFlow` with the
exact likelihood of that ODE, the adaptive ODE sampler, and $k$-jump samplers for
$k = 1, 2, 4, \ldots$ (:class:`~flowlab.samplers.FlowMap`), the same sampler as mean flows.
A consistency model $f(z, t) \mapsto$ data has no velocity field (no likelihood, no ODE)
and needs a noise schedule, a distance and an EMA target network tuned together (Song et
al. 2023); its multistep sampler re-noises. Shortcut training needs no EMA target and no
schedule beyond the step sizes.

Like a mean flow, its likelihood is that of the *instantaneous-velocity ODE*
$s(z, t, 0)$, not of its few-step samples (``likelihood_label`` says so).

Reference: K. Frans, D. Hafner, S. Levine, P. Abbeel, "One Step Diffusion via Shortcut
Models", ICLR 2025 (arXiv:2410.12557); official code github.com/kvfrans/shortcut-models.
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

__all__ = ["Shortcut"]


class Shortcut(AbstractFlowMap):
    r"""A shortcut model: $s(z, t, d)$ = ``network(t, d, z)``, the average velocity from
    $t$ over $[t, t + d]$ (module docstring). Trained: ``network``.

    Arguments:
        network: ``network(t, d, z) -> (d,)`` on one standardised point, e.g.
            :class:`~flowlab.MLPFlowMapNet`.
        data_size: ``d``; read from ``network.data_size`` or ``standardize`` if omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        prior: ``None`` for $N(0, I)$ in standardised coordinates, or an
            :class:`~flowlab.AbstractPrior` in data coordinates (source to target, as
            :class:`~flowlab.CNF`'s ``prior=``).
        **solver_options: :class:`~flowlab.SolverOptions` of the $d = 0$ ODE.
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

    def shortcut(self, z: Point, t: Time, d: Time) -> Point:
        """$s(z, t, d)$, the paper's notation for ``average_velocity(t, t + d, z)``."""
        return self.network(t, d, z)
