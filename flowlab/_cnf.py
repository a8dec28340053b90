r"""Continuous normalizing flow: a vector field, a base $N(0, I)$ and an exact likelihood."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_points
from ._ode import (
    ODEStats,
    SolverOptions,
    augmented_solve,
    flow_solve,
    standard_normal_log_prob,
)
from ._standardize import Standardize
from ._typing import Array, Key, Point, Points, Time, Values

__all__ = ["CNF"]

T_BASE = 0.0
T_DATA = 1.0


class CNF(eqx.Module):
    r"""A continuous normalizing flow $\dot z = f(t, z)$ from $N(0, I)$ at $t=0$ to data at $t=1$.

    The vector field acts on standardised coordinates $z = (x - \mu)/s$ (see
    :class:`Standardize`); every density is reported in the data's own coordinates:
    $$\log p(x) = \log N(z_0; 0, I) + \int_1^0 \nabla\cdot f(t, z_t)\,dt - \sum_i \log s_i,$$
    with $z_1 = (x - \mu)/s$ integrated backwards to $z_0$. The divergence is the exact
    Jacobian trace and the solve adaptive (Tsit5, PID, ``rtol = atol = 1e-5`` by default).
    Sampling integrates forwards.

    Arguments:
        vector_field: any Equinox module or plain callable ``f(t, z) -> dz/dt`` acting on one
            example of shape ``(d,)``.
        data_size: ``d``; read from ``vector_field.data_size`` when it has one.
        standardize: the affine map to standardised coordinates (identity by default).
        **solver_options: passed to :class:`SolverOptions` (``solver``, ``rtol``, ``atol``,
            ``max_steps``, ``adjoint``, ``norm``, ``dt0``).
    """

    vector_field: Callable
    standardize: Standardize
    options: SolverOptions
    data_size: int = eqx.field(static=True)

    def __init__(
        self,
        vector_field: Callable[[Time, Point], Point],
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        **solver_options,
    ):
        if data_size is None:
            data_size = getattr(vector_field, "data_size", None)
        if data_size is None and standardize is not None:
            data_size = standardize.loc.shape[0]
        if data_size is None:
            raise ValueError(
                "cannot infer the data dimension: pass data_size=d (the vector field has no "
                "`data_size` attribute and no `standardize` was given)"
            )
        self.vector_field = vector_field
        self.data_size = int(data_size)
        self.standardize = (
            Standardize.identity(self.data_size) if standardize is None else (standardize)
        )
        if self.standardize.loc.shape != (self.data_size,):
            raise ValueError(
                f"standardize acts on shape {self.standardize.loc.shape}, expected "
                f"({self.data_size},)"
            )
        self.options = SolverOptions(**solver_options)

    # -- the field in data coordinates ---------------------------------------------------

    def velocity(self, t: Time, x: Point) -> Point:
        r"""The flow's velocity $dx/dt$ at one point ``x`` in data coordinates."""
        z = self.standardize.forward(x)
        return self.standardize.scale * self.vector_field(t, z)

    def with_options(self, **solver_options) -> CNF:
        """The same flow with other solver options (e.g. looser tolerances for training)."""
        fields = {
            "solver": self.options.solver,
            "rtol": self.options.rtol,
            "atol": self.options.atol,
            "dt0": self.options.dt0,
            "max_steps": self.options.max_steps,
            "adjoint": self.options.adjoint,
            "norm": self.options.norm,
        }
        fields.update(solver_options)
        return eqx.tree_at(lambda m: m.options, self, SolverOptions(**fields))

    # -- likelihood ------------------------------------------------------------------------

    def log_prob_with_stats(
        self, x: Points, *, t: Time = T_DATA, key: Key | None = None, throw: bool = True
    ) -> tuple[Values, ODEStats]:
        r"""Log-density of each row of ``x`` (shape ``(n, d)``) and the solver's statistics.

        Arguments:
            x: points in data coordinates.
            t: the time whose marginal density is evaluated ($t=1$: the model's density;
                $0 < t < 1$: the intermediate densities, e.g. for plots).
            key: ``None`` for the exact divergence (what to report); a key draws one
                Rademacher Hutchinson probe per point, fixed over the solve (an unbiased,
                noisy estimate, for training only).
            throw: raise on solver failure, or return NaN with ``stats.success = False``.

        Returns:
            ``(log_prob, stats)``: shape ``(n,)`` in nats, data coordinates.
        """
        x = check_points(x, self.data_size)
        probe = None
        if key is not None:
            probe = jax.random.rademacher(key, x.shape, dtype=x.dtype)
        return _log_prob(self, x, jnp.asarray(t, x.dtype), probe, throw)

    def log_prob(
        self, x: Points, *, t: Time = T_DATA, key: Key | None = None, throw: bool = True
    ) -> Values:
        """Exact log-density of each row of ``x``; see :meth:`log_prob_with_stats`."""
        return self.log_prob_with_stats(x, t=t, key=key, throw=throw)[0]

    # -- sampling ---------------------------------------------------------------------------

    def sample_with_stats(self, key: Key, n: int, *, throw: bool = True) -> tuple[Points, ODEStats]:
        """``n`` samples (shape ``(n, d)``, data coordinates) and the solver's statistics."""
        n = check_count(n)
        z0 = jax.random.normal(key, (n, self.data_size))
        return _sample(self, z0, throw)

    def sample(self, key: Key, n: int, *, throw: bool = True) -> Points:
        """``n`` samples, shape ``(n, d)``, in data coordinates."""
        return self.sample_with_stats(key, n, throw=throw)[0]

    def sample_and_log_prob(self, key: Key, n: int, *, throw: bool = True) -> tuple[Points, Values]:
        r"""``n`` samples and their exact log-densities from one forward augmented solve.

        $\log p(x_1) = \log N(z_0) - \int_0^1 \nabla\cdot f\,dt - \sum_i \log s_i$.
        """
        n = check_count(n)
        z0 = jax.random.normal(key, (n, self.data_size))
        x, logp, _ = _sample_and_log_prob(self, z0, throw)
        return x, logp

    def trajectories(
        self,
        key: Key | None = None,
        n: int | None = None,
        *,
        z0: Points | None = None,
        ts: Array | None = None,
        num_times: int = 50,
        throw: bool = True,
    ) -> tuple[Array, Array]:
        r"""States of the flow at chosen times, from base points to data.

        Either ``key`` and ``n`` (base points $z_0 \sim N(0, I)$ drawn exactly as
        :meth:`sample` draws them, so the end points equal ``sample(key, n)``) or ``z0``
        (standardised base points, shape ``(n, d)``).

        Arguments:
            ts: increasing times in $[0, 1]$; default ``num_times`` evenly spaced.

        Returns:
            ``(ts, xs)``: times of shape ``(T,)`` and states in data coordinates of shape
            ``(T, n, d)``.
        """
        if z0 is None:
            if key is None or n is None:
                raise ValueError("pass either key and n, or z0")
            z0 = jax.random.normal(key, (check_count(n), self.data_size))
        else:
            z0 = check_points(z0, self.data_size, "z0")
        if ts is None:
            ts = jnp.linspace(T_BASE, T_DATA, num_times)
        ts = jnp.asarray(ts, dtype=z0.dtype)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"expected ts of shape (T,), got {ts.shape}")
        xs = _trajectories(self, z0, ts, throw)
        return ts, xs


@eqx.filter_jit
def _log_prob(cnf: CNF, x, t, probe, throw):
    z = cnf.standardize.forward(x)
    z0, delta, stats = augmented_solve(
        cnf.vector_field, z, t, T_BASE, cnf.options, probe=probe, throw=throw
    )
    logp = standard_normal_log_prob(z0) + delta + cnf.standardize.log_det()
    return logp, stats


@eqx.filter_jit
def _sample(cnf: CNF, z0, throw):
    z1, stats = flow_solve(cnf.vector_field, z0, T_BASE, T_DATA, cnf.options, throw=throw)
    return cnf.standardize.inverse(z1), stats


@eqx.filter_jit
def _sample_and_log_prob(cnf: CNF, z0, throw):
    z1, delta, stats = augmented_solve(
        cnf.vector_field, z0, T_BASE, T_DATA, cnf.options, throw=throw
    )
    logp = standard_normal_log_prob(z0) - delta + cnf.standardize.log_det()
    return cnf.standardize.inverse(z1), logp, stats


@eqx.filter_jit
def _trajectories(cnf: CNF, z0, ts, throw):
    zs, _ = flow_solve(cnf.vector_field, z0, ts[0], ts[-1], cnf.options, ts=ts, throw=throw)
    return cnf.standardize.inverse(zs)


_ = diffrax  # re-exported solver classes live in diffrax; keep the import for type hints
