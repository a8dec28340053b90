r"""Continuous normalizing flow: a vector field, a base distribution (the standard normal, or
any :class:`AbstractPrior` with samples and an exact log-density, so that a flow can carry
one distribution onto another) and an exact likelihood."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx

from ._flow import AbstractFlow
from ._ode import SolverOptions
from ._prior import (
    AbstractPrior,
    Gaussian,
    GaussianMixture,
    check_prior,
    prior_from_config,
    prior_log_prob,
    prior_sample,
)
from ._standardize import Standardize
from ._typing import Key, Point, Points, Time, Values

__all__ = ["CNF", "AbstractPrior", "Gaussian", "GaussianMixture", "prior_from_config"]


class CNF(AbstractFlow):
    r"""A continuous normalizing flow $\dot z = f(t, z)$ from $N(0, I)$ at $t=0$ to data at
    $t=1$ (``t_base = 0``, ``t_data = 1``).

    The vector field acts on standardised coordinates $z = (x - \mu)/s$ (see
    :class:`~flowlab.Standardize`); every density is reported in the data's own coordinates:
    $$\log p(x) = \log N(z_0; 0, I) + \int_1^0 \nabla\cdot f(t, z_t)\,dt - \sum_i \log s_i,$$
    with $z_1 = (x - \mu)/s$ integrated backwards to $z_0$. The divergence is the exact
    Jacobian trace and the solve adaptive (Dopri5, PID, ``rtol = atol = 1e-5`` by default).
    Sampling integrates forwards. Trained: ``vector_field``.

    **Source to target.** With ``prior=`` an :class:`AbstractPrior` $q$ (given in data
    coordinates) the flow starts from $x_0 \sim q$ instead of $N(0, I)$, and the likelihood
    stays exact: $\log p(x) = \log q(x_0) + \int_1^0 \nabla\cdot f\,dt$. In standardised
    coordinates the prior is $z_0 = (x_0 - \mu)/s$, with density
    $q(\mu + s z_0)\prod_i s_i$ (``prior_log_prob``), so the same standardisation serves
    source and target. :class:`~flowlab.objectives.FlowMatching` draws its $z_0$ from
    ``prior_sample``, so it trains source to target unchanged (independent or minibatch-OT
    pairs).

    Arguments:
        vector_field: any Equinox module or plain callable ``f(t, z) -> dz/dt`` acting on one
            example of shape ``(d,)``.
        data_size: ``d``; read from ``vector_field.data_size`` or ``standardize`` when
            omitted; if neither has it, ``log_prob`` reads it from its points (sampling then
            needs it).
        standardize: the affine map to standardised coordinates (identity by default).
        prior: ``None`` for $N(0, I)$ in standardised coordinates, or an
            :class:`AbstractPrior` in data coordinates (its ``data_size`` must match).
        **solver_options: fields of :class:`~flowlab.SolverOptions` (``solver``, ``rtol``,
            ``atol``, ``max_steps``, ``adjoint``, ``norm``, ``dt0``).
    """

    vector_field: Callable
    standardize: Standardize | None
    options: SolverOptions
    data_size: int | None = eqx.field(static=True)
    prior: AbstractPrior | None = None
    trainable_fields: ClassVar[tuple[str, ...]] = ("vector_field",)

    def __init__(
        self,
        vector_field: Callable[[Time, Point], Point],
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        prior: AbstractPrior | None = None,
        **solver_options,
    ):
        self.vector_field = vector_field
        self.data_size, self.standardize, self.prior = check_prior(
            prior, vector_field, data_size, standardize
        )
        self.options = SolverOptions(**solver_options)

    def field(self, t: Time, z: Point) -> Point:
        return self.vector_field(t, z)

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
