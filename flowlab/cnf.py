r"""Continuous normalizing flow: a vector field, a base $N(0, I)$ and an exact likelihood."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax

from ._flow import AbstractFlow
from ._ode import SolverOptions, standard_normal_log_prob
from ._standardize import Standardize, resolve_data_size
from ._typing import Key, Point, Points, Time, Values

__all__ = ["CNF"]


class CNF(AbstractFlow):
    r"""A continuous normalizing flow $\dot z = f(t, z)$ from $N(0, I)$ at $t=0$ to data at
    $t=1$ (``t_base = 0``, ``t_data = 1``).

    The vector field acts on standardised coordinates $z = (x - \mu)/s$ (see
    :class:`~flowlab.Standardize`); every density is reported in the data's own coordinates:
    $$\log p(x) = \log N(z_0; 0, I) + \int_1^0 \nabla\cdot f(t, z_t)\,dt - \sum_i \log s_i,$$
    with $z_1 = (x - \mu)/s$ integrated backwards to $z_0$. The divergence is the exact
    Jacobian trace and the solve adaptive (Dopri5, PID, ``rtol = atol = 1e-5`` by default).
    Sampling integrates forwards. Trained: ``vector_field``.

    Arguments:
        vector_field: any Equinox module or plain callable ``f(t, z) -> dz/dt`` acting on one
            example of shape ``(d,)``.
        data_size: ``d``; read from ``vector_field.data_size`` or ``standardize`` when
            omitted; if neither has it, ``log_prob`` reads it from its points (sampling then
            needs it).
        standardize: the affine map to standardised coordinates (identity by default).
        **solver_options: fields of :class:`~flowlab.SolverOptions` (``solver``, ``rtol``,
            ``atol``, ``max_steps``, ``adjoint``, ``norm``, ``dt0``).
    """

    vector_field: Callable
    standardize: Standardize | None
    options: SolverOptions
    data_size: int | None = eqx.field(static=True)
    trainable_fields: ClassVar[tuple[str, ...]] = ("vector_field",)

    def __init__(
        self,
        vector_field: Callable[[Time, Point], Point],
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        **solver_options,
    ):
        self.vector_field = vector_field
        self.data_size, self.standardize = resolve_data_size(vector_field, data_size, standardize)
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
        return jax.random.normal(key, (n, self.require_data_size()))

    def prior_log_prob(self, z: Points) -> Values:
        return standard_normal_log_prob(z)
