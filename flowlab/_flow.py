r"""The abstract ODE-flow model: every model whose samples come from an ODE.

A flow is a vector field $f(t, z)$ in standardised coordinates, a *base time* $t_b$ where
its prior lives and a *data time* $t_d$ where its samples live. Along $\dot z = f(t, z)$
the density obeys $\frac{d}{dt}\log p_t(z_t) = -\nabla\cdot f(t, z_t)$, so

$$\log p(x) = \log p_{\text{prior}}(z_{t_b}) + \int_{t_d}^{t_b} \nabla\cdot f(t, z_t)\,dt
  - \sum_i \log s_i, \qquad z_{t_d} = (x - \mu)/s .$$

**One time convention.** Times are the model's own, and every method goes *from the base
time towards the data time*: sampling solves from $t_b$ to $t_d$, ``trajectories`` takes
times that start at $t_b$, ``log_prob`` solves back from $t_d$ (or from the ``t`` it is
given) to $t_b$. A :class:`~flowlab.CNF` has $t_b = 0$, $t_d = 1$; a
:class:`~flowlab.Diffusion` has $t_b = 1$ (the SDE's prior) and $t_d = \epsilon$; both
expose ``t_base`` and ``t_data``.

Subclasses provide the field, the two times, the prior and the solver options; this module
gives them the rest, written once: ``log_prob(_with_stats)``, ``sample(_with_stats)`` (the
ODE by default, or any sampler object that supports the model), ``sample_and_log_prob``,
``trajectories``, ``with_options`` and ``likelihood_label``.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_key, is_concrete
from ._model import AbstractExactLikelihood
from ._ode import SolverOptions, Stats, augmented_solve, check_solve, flow_solve
from ._typing import Array, Key, Point, Points, Time, Values

__all__ = ["AbstractFlow"]


class AbstractFlow(AbstractExactLikelihood):
    """An ODE flow from a prior at ``t_base`` to the data at ``t_data`` (abstract).

    Subclasses define ``field``, ``t_base``, ``t_data``, ``prior_sample``,
    ``prior_log_prob`` and hold ``options`` (:class:`~flowlab.SolverOptions`).
    """

    options: eqx.AbstractVar[SolverOptions]

    @abc.abstractmethod
    def field(self, t: Time, z: Point) -> Point:
        """The vector field $dz/dt$ at one standardised point ``z`` of shape ``(d,)``."""

    @property
    @abc.abstractmethod
    def t_base(self) -> float:
        """The time of the prior."""

    @property
    @abc.abstractmethod
    def t_data(self) -> float:
        """The time of the data."""

    @abc.abstractmethod
    def prior_sample(self, key: Key, n: int) -> Points:
        """``n`` draws from the prior, shape ``(n, d)`` (standardised coordinates)."""

    @abc.abstractmethod
    def prior_log_prob(self, z: Points) -> Values:
        """Log-density of the prior at each row of ``z``."""

    # -- options -------------------------------------------------------------------------

    def with_options(self, **solver_options: Any):
        """The same model with some :class:`~flowlab.SolverOptions` fields changed (any
        field; an unknown name raises)."""
        return eqx.tree_at(lambda m: m.options, self, self.options.replace(**solver_options))

    def likelihood_label(self, *, hutchinson: bool = False) -> str:
        return self.options.describe(hutchinson=hutchinson)

    def velocity(self, t: Time, x: Point) -> Point:
        """The flow's velocity $dx/dt$ at one point ``x`` in data coordinates."""
        std = self.standardizer(x.shape[-1])
        return std.scale * self.field(t, std.forward(x))

    # -- likelihood ----------------------------------------------------------------------

    def log_prob_with_stats(
        self, x: Points, *, t: Time | None = None, key: Key | None = None, throw: bool = True
    ) -> tuple[Values, Stats]:
        r"""Log-density of each row of ``x`` (shape ``(n, d)``) and the solver's statistics.

        Arguments:
            x: points in data coordinates.
            t: the time whose marginal density is evaluated (default ``t_data``: the
                model's density); any time between ``t_base`` and ``t_data`` gives the
                intermediate density, e.g. for plots.
            key: ``None`` for the exact divergence (what to report). A key draws one
                Rademacher Hutchinson probe per point, fixed over the solve: an unbiased
                *estimate* of the log-density, for training only; never report it as exact.
            throw: raise on solver failure, or return NaN with ``stats.success = False``.

        Returns:
            ``(log_prob, stats)``: shape ``(n,)`` in nats, data coordinates.

        Raises:
            ValueError: ``x`` is not of shape ``(n, d)`` or holds NaN/inf; ``key`` is
                neither ``None`` nor one PRNG key; ``t`` is not a scalar, or (a concrete
                ``t``) not finite or outside the interval between ``t_base`` and
                ``t_data`` (a traced ``t`` outside it fails through ``eqx.error_if`` with
                the same message).
            EquinoxRuntimeError: with ``throw=True``, when the solve fails.
        """
        x = self.check_points(x)
        t = self.t_data if t is None else self._check_time(t)
        probe = None
        if key is not None:
            check_key(key)
            probe = jax.random.rademacher(key, x.shape, dtype=x.dtype)
        logp, stats = _log_prob(self, x, jnp.asarray(t, x.dtype), probe)
        (logp,) = check_solve(throw, stats, self.options, logp)
        return logp, stats

    def _check_time(self, t: Time) -> Array:
        """``t`` as a scalar inside the closed interval between ``t_base`` and ``t_data``."""
        lo, hi = sorted((float(self.t_base), float(self.t_data)))
        if jnp.ndim(t) != 0:
            raise ValueError(f"expected t to be a scalar time, got shape {jnp.shape(t)}")
        message = f"expected t finite and inside the model's time interval [{lo:g}, {hi:g}]"
        if is_concrete(t):
            value = float(t)
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{message}, got t={value!r}")
            return t
        t = jnp.asarray(t)
        return eqx.error_if(t, ~(jnp.isfinite(t) & (t >= lo) & (t <= hi)), message)

    # -- sampling ------------------------------------------------------------------------

    def sample_with_stats(self, key: Key, n: int, *, sampler: Any = None) -> tuple[Points, Stats]:
        """``n`` samples (shape ``(n, d)``, data coordinates) and what they cost.

        Arguments:
            key: PRNG key (the prior draw and any sampler noise).
            n: number of samples.
            sampler: a sampler object from :mod:`flowlab.samplers` that supports this
                model; default: the ODE from ``t_base`` to ``t_data`` with the model's
                own solver options (:meth:`ode_sample_with_stats`; pass
                ``samplers.ODE(throw=False)`` for NaN instead of an error on failure).

        Raises:
            ValueError: ``key`` is not one PRNG key (e.g. an int seed) or ``n`` is not a
                positive integer.
        """
        n = check_count(n)
        check_key(key)
        if sampler is None:
            return self.ode_sample_with_stats(key, n)
        return sampler(self, key, n)

    def ode_sample_with_stats(
        self, key: Key, n: int, *, throw: bool = True
    ) -> tuple[Points, Stats]:
        """``n`` samples from the ODE from ``t_base`` to ``t_data`` with the model's own
        solver options, and the solver's statistics (what :class:`~flowlab.samplers.ODE`
        runs).

        Arguments:
            throw: raise on solver failure, or return NaN with ``stats.success = False``.
        """
        n = check_count(n)
        check_key(key)
        x, stats = _sample(self, self.prior_sample(key, n))
        (x,) = check_solve(throw, stats, self.options, x)
        return x, stats

    def sample_and_log_prob(self, key: Key, n: int, *, throw: bool = True) -> tuple[Points, Values]:
        r"""``n`` ODE samples and their exact log-densities from one augmented solve from
        ``t_base`` to ``t_data``:
        $\log p(x) = \log p_{\text{prior}}(z_b) - \int_{t_b}^{t_d}\nabla\cdot f\,dt
        - \sum_i \log s_i$. The samples equal ``sample(key, n)`` up to the tolerance."""
        n = check_count(n)
        check_key(key)
        x, logp, stats = _sample_and_log_prob(self, self.prior_sample(key, n))
        return check_solve(throw, stats, self.options, x, logp)

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
        r"""ODE paths from the prior (``t_base``) towards the data (``t_data``).

        Either ``key`` and ``n`` (prior draws made exactly as :meth:`sample` makes them, so
        the end points equal ``sample(key, n)``) or ``z0`` (standardised prior points,
        shape ``(n, d)``).

        Arguments:
            ts: times from ``t_base`` towards ``t_data`` (monotone; the first must equal
                ``t_base``); default ``num_times`` evenly spaced from ``t_base`` to
                ``t_data``.

        Returns:
            ``(ts, xs)``: times of shape ``(T,)`` and states in data coordinates of shape
            ``(T, n, d)``.
        """
        if z0 is None:
            if key is None or n is None:
                raise ValueError("pass either key and n, or z0")
            check_key(key)
            z0 = self.prior_sample(key, check_count(n))
        else:
            z0 = self.check_points(z0, "z0")
        if ts is None:
            ts = jnp.linspace(self.t_base, self.t_data, num_times)
        ts = jnp.asarray(ts, dtype=z0.dtype)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"expected ts of shape (T,), got {ts.shape}")
        if abs(float(ts[0]) - self.t_base) > 1e-6:
            raise ValueError(
                f"ts must start at the base time t_base={self.t_base} (where z0 lives), "
                f"got ts[0]={float(ts[0])}"
            )
        steps = jnp.diff(ts) * (self.t_data - self.t_base)
        if ts.shape[0] > 1 and not bool(jnp.all(steps > 0)):
            raise ValueError(
                f"ts must run monotonically from t_base={self.t_base} towards "
                f"t_data={self.t_data}, got {ts.tolist()}"
            )
        xs, stats = _trajectories(self, z0, ts)
        (xs,) = check_solve(throw, stats, self.options, xs)
        return ts, xs


# The compiled programs below solve with throw=False (NaN and stats.success = False on
# failure) and their callers raise on the host (check_solve): a program with eqx.error_if
# holds a host callback on the CPU, and JAX's persistent cache never stores those.


@eqx.filter_jit
def _log_prob(flow: AbstractFlow, x, t, probe):
    std = flow.standardizer(x.shape[-1])
    zb, delta, stats = augmented_solve(
        flow.field, std.forward(x), t, flow.t_base, flow.options, probe=probe, throw=False
    )
    logp = flow.prior_log_prob(zb) + delta + std.log_det()
    return logp, stats


@eqx.filter_jit
def _sample(flow: AbstractFlow, zb):
    z, stats = flow_solve(flow.field, zb, flow.t_base, flow.t_data, flow.options, throw=False)
    return flow.standardizer(zb.shape[-1]).inverse(z), stats


@eqx.filter_jit
def _sample_and_log_prob(flow: AbstractFlow, zb):
    z, delta, stats = augmented_solve(
        flow.field, zb, flow.t_base, flow.t_data, flow.options, throw=False
    )
    std = flow.standardizer(zb.shape[-1])
    return std.inverse(z), flow.prior_log_prob(zb) - delta + std.log_det(), stats


@eqx.filter_jit
def _trajectories(flow: AbstractFlow, z0, ts):
    zs, stats = flow_solve(flow.field, z0, ts[0], ts[-1], flow.options, ts=ts, throw=False)
    return flow.standardizer(z0.shape[-1]).inverse(zs), stats
