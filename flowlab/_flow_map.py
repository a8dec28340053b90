r"""Flow maps: ODE flows that also know their average velocity over a time interval.

A flow map model holds one network $u_\theta(z, r, t)$, the *average velocity* of its flow
from the point $z$ at time $r$ to time $t$ (flowlab's direction: base $N(0, I)$ at
$t = 0$, data at $t = 1$):

$$u(z_r, r, t) = \frac{1}{t - r}\int_r^t v(z_\tau, \tau)\,d\tau,\qquad
  z_t = z_r + (t - r)\,u(z_r, r, t),$$

and $u(z, t, t) = v(t, z)$, the instantaneous velocity. A flow map is therefore an
:class:`~flowlab.AbstractFlow` whose ``field(t, z)`` is $u(z, t, t)$: its ODE, its
adaptive sampler and its exact likelihood come from the one ODE code of flowlab. Its
likelihood is that of the *instantaneous-velocity ODE* (``likelihood_label`` says so),
which is not the density of its one-step or few-step samples (those have none in closed
form). The jumps $z \leftarrow z + (t - r)\,u(z, r, t)$ are the
:class:`~flowlab.samplers.FlowMap` sampler (one network evaluation per jump).

Two families share this: :class:`~flowlab.MeanFlow` (Geng et al. 2025, trained by the
MeanFlow identity) and :class:`~flowlab.Shortcut` (Frans et al. 2025, trained by
self-consistency of jumps of size $d = t - r$).

:class:`MLPFlowMapNet` is the standard network: an MLP of $z$ and Fourier features of the
start time $r$ and the span $t - r$.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from ._checks import check_example
from ._flow import AbstractFlow
from ._ode import SolverOptions
from ._prior import AbstractPrior, check_prior, prior_log_prob, prior_sample
from ._typing import Key, Point, Points, Time, Values
from .nn import FourierTimeEmbedding, get_activation, mlp

__all__ = ["AbstractFlowMap", "MLPFlowMapNet"]


class MLPFlowMapNet(eqx.Module):
    r"""An MLP $g_\theta(r, d, z)$ of one point $z$ (shape ``(d,)``), a start time $r$ and a
    span $d$ (Fourier features of each, as :class:`~flowlab.nn.MLPVectorField`).

    A flow-map model reads it as the average velocity from $r$ over $[r, r + d]$.

    Arguments:
        data_size: dimension of $z$.
        width: hidden width.
        depth: number of hidden layers.
        activation: a name from :data:`flowlab.nn.ACTIVATIONS` or a callable.
        time_frequencies: frequencies $k$ of $\sin(\pi k\,\cdot), \cos(\pi k\,\cdot)$.
        key: PRNG key for the initial weights (keyword-only).
    """

    mlp: eqx.nn.MLP
    time_embedding: FourierTimeEmbedding
    data_size: int = eqx.field(static=True)

    def __init__(
        self,
        data_size: int,
        width: int = 128,
        depth: int = 3,
        activation: str | Callable = "silu",
        time_frequencies: tuple[float, ...] = (1.0, 2.0, 4.0),
        *,
        key: Key,
    ):
        if data_size < 1 or width < 1 or depth < 1:
            raise ValueError(
                f"data_size, width and depth must be positive, got {data_size}, {width}, {depth}"
            )
        self.data_size = data_size
        self.time_embedding = FourierTimeEmbedding(time_frequencies)
        self.mlp = mlp(
            in_size=data_size + 2 * self.time_embedding.size,
            out_size=data_size,
            width_size=width,
            depth=depth,
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, r: Time, span: Time, z: Point) -> Point:
        check_example("MLPFlowMapNet", z, self.data_size)
        r = jnp.asarray(r, dtype=z.dtype)
        span = jnp.asarray(span, dtype=z.dtype)
        features = [z, self.time_embedding(r), self.time_embedding(span)]
        return self.mlp(jnp.concatenate(features))


class AbstractFlowMap(AbstractFlow):
    r"""An ODE flow from $N(0, I)$ at $t = 0$ to data at $t = 1$ given by a network
    ``network(r, span, z)``: the average velocity from $z$ at time $r$ over
    $[r, r + \text{span}]$ (module docstring). ``field(t, z) = network(t, 0, z)``.

    Subclasses (final: :class:`~flowlab.MeanFlow`, :class:`~flowlab.Shortcut`) hold
    ``network``, ``standardize``, ``options``, ``data_size`` and ``prior``.

    **Source to target.** As for :class:`~flowlab.CNF`, ``prior=`` an
    :class:`~flowlab.AbstractPrior` (data coordinates) replaces $N(0, I)$: the jumps start
    from its draws (``prior_sample``, standardised), the objectives draw $z_0$ from it, and
    the likelihood of the instantaneous-velocity ODE stays exact with the prior's exact
    log-density and the standardisation's Jacobian (``prior_log_prob``).
    """

    network: eqx.AbstractVar[Callable]
    prior: eqx.AbstractVar[AbstractPrior | None]

    def average_velocity(self, r: Time, t: Time, z: Point) -> Point:
        r"""$u(z, r, t)$: the average velocity from the standardised point ``z`` (shape
        ``(d,)``) at time ``r`` to time ``t``; $z + (t - r)\,u$ is the model's point at
        ``t``."""
        return self.network(r, t - r, z)

    def field(self, t: Time, z: Point) -> Point:
        """The instantaneous velocity $u(z, t, t)$."""
        return self.network(t, jnp.zeros_like(jnp.asarray(t)), z)

    @property
    def t_base(self) -> float:
        return 0.0

    @property
    def t_data(self) -> float:
        return 1.0

    def prior_sample(self, key: Key, n: int) -> Points:
        return prior_sample(self, key, n)

    def prior_log_prob(self, z: Points) -> Values:
        return prior_log_prob(self, z)

    def likelihood_label(self, *, hutchinson: bool = False) -> str:
        return (
            f"{self.options.describe(hutchinson=hutchinson)}; the density of the "
            "instantaneous-velocity ODE u(z, t, t), not of the few-step samples"
        )


def init_flow_map(self, network, data_size, standardize, prior, solver_options) -> None:
    """Shared constructor body of the final flow-map families."""
    self.network = network
    self.data_size, self.standardize, self.prior = check_prior(
        prior, network, data_size, standardize
    )
    self.options = SolverOptions(**solver_options)
