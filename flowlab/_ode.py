r"""The one likelihood ODE and the one sampler that every flowlab model uses.

A model is a vector field $f(t, x)$ on one example. Along $\dot x = f(t, x)$ the density
obeys the instantaneous change of variables
$$\frac{d}{dt} \log p_t(x_t) = -\nabla\cdot f(t, x_t),$$
so, with the base distribution at time $t_b$ and the data at time $t_d$,
$$\log p_{t_d}(x) = \log p_{t_b}(x_{t_b}) + \int_{t_d}^{t_b} \nabla\cdot f(t, x_t)\,dt .$$
:func:`augmented_solve` integrates $(x, \delta)$ with $\dot\delta = \nabla\cdot f$ from any
start time to any end time (forwards or backwards) with Diffrax. The divergence is exact
(trace of the Jacobian, from ``d`` forward-mode products, cheap in 2D) unless a Hutchinson
probe is passed, which is fixed for the whole solve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import fail_unless
from ._typing import Array, Point, Points, Time, Values

__all__ = [
    "SolverOptions",
    "Stats",
    "augmented_solve",
    "batch_value_and_divergence",
    "flow_solve",
    "value_and_divergence",
    "stages_per_step",
    "nfe_of",
]

# Vector-field evaluations per attempted step of each explicit solver, and whether it is
# first-same-as-last (FSAL: its last stage is the next step's first, so a solve costs one
# evaluation more than stages x steps, the initial one). Checked in the tests by counting
# real calls of the field (tests/test_protocol.py,
# test_nfe_counts_every_real_call_of_the_field).
_STAGES = {
    diffrax.Tsit5: (6, True),
    diffrax.Dopri5: (6, True),
    diffrax.Dopri8: (13, True),
    diffrax.Bosh3: (3, True),
    diffrax.Heun: (2, False),
    diffrax.Midpoint: (2, False),
    diffrax.Ralston: (2, False),
    diffrax.Euler: (1, False),
}


def stages_per_step(solver: diffrax.AbstractSolver) -> tuple[int, bool]:
    """``(evaluations per step, first-same-as-last)`` of ``solver``."""
    for cls, n in _STAGES.items():
        if type(solver) is cls:
            return n
    raise ValueError(
        f"unknown stage count for solver {type(solver).__name__}; "
        f"supported: {', '.join(c.__name__ for c in _STAGES)}"
    )


def nfe_of(solver: diffrax.AbstractSolver, num_steps: Array) -> Array:
    """Field evaluations of a solve of ``num_steps`` attempted steps with ``solver``."""
    stages, fsal = stages_per_step(solver)
    return stages * num_steps + (1 if fsal else 0)


def max_norm(tree: Any) -> Array:
    """Infinity norm of a pytree: every component of every example meets the tolerance."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))


def _positive_real(v: Any) -> bool:
    """A real number (not a bool), positive and finite."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return False
    return bool(np.isfinite(v) and v > 0)


class SolverOptions(eqx.Module):
    r"""How to solve an ODE: the solver, step-size control and differentiation.

    Arguments:
        solver: a Diffrax solver; an adaptive one (``Dopri5``, ``Tsit5``) for any number
            reported as a likelihood. ``Dopri5`` by default: on the trained course-dataset
            flows it needs 16-28% fewer field evaluations than ``Tsit5`` at the same
            tolerances, with a log-density error under 3e-4 nats against Dopri8 at 1e-8
            (``benchmarks/defaults.py``).
        rtol, atol: relative and absolute tolerances of the PID controller (positive,
            finite).
        dt0: ``None`` for adaptive steps with an automatically chosen first step; a
            positive finite number gives fixed steps of that size (for training only; never
            reported as exact). The sign of the step follows the direction of the solve.
        max_steps: the most steps the solver may take before it fails loudly (a positive
            integer).
        adjoint: how to differentiate through the solve (Diffrax adjoint object).
        norm: ``"max"`` controls the error of every example separately (the solve is
            batched, so an RMS norm would let one example's error hide among many);
            ``"rms"`` is Diffrax's default.

    Raises:
        ValueError: ``dt0=None`` with a solver that is not adaptive; ``rtol`` or ``atol``
            not a positive finite number; ``dt0`` neither ``None`` nor a positive finite
            number; ``max_steps`` not a positive integer; ``norm`` not ``"max"`` or
            ``"rms"``.
    """

    solver: diffrax.AbstractSolver = diffrax.Dopri5()
    rtol: float = eqx.field(static=True, default=1e-5)
    atol: float = eqx.field(static=True, default=1e-5)
    dt0: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=4096)
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
    norm: str = eqx.field(static=True, default="max")

    def __check_init__(self):
        if self.dt0 is None and not isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                f"adaptive steps (dt0=None) need an adaptive solver, got "
                f"{type(self.solver).__name__}; pass dt0 for fixed steps"
            )
        if not (_positive_real(self.rtol) and _positive_real(self.atol)):
            raise ValueError(
                f"rtol and atol must be positive finite numbers, got {self.rtol!r}, {self.atol!r}"
            )
        if self.dt0 is not None and not _positive_real(self.dt0):
            raise ValueError(
                f"dt0 must be None (adaptive steps) or a positive finite step size, got "
                f"{self.dt0!r}"
            )
        if (
            isinstance(self.max_steps, bool)
            or not isinstance(self.max_steps, int | np.integer)
            or self.max_steps < 1
        ):
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if self.norm not in ("max", "rms"):
            raise ValueError(f"norm must be 'max' or 'rms', got {self.norm!r}")

    @property
    def adaptive(self) -> bool:
        return self.dt0 is None

    def replace(self, **changes) -> SolverOptions:
        """These options with some fields changed (any field of this class; an unknown name
        raises ``TypeError`` listing the valid ones)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - valid
        if unknown:
            raise TypeError(
                f"unknown solver option(s) {sorted(unknown)}; expected some of {sorted(valid)}"
            )
        return dataclasses.replace(self, **changes)

    def describe(self, *, hutchinson: bool = False) -> str:
        """What a log-density computed with these options is, in words, for outputs: *exact*
        only for an adaptive solve with the exact trace; otherwise an estimate."""
        name = type(self.solver).__name__
        trace = "Hutchinson trace estimate" if hutchinson else "exact Jacobian trace"
        if self.adaptive:
            solve = f"adaptive {name} (rtol={self.rtol:g}, atol={self.atol:g}, {self.norm} norm)"
        else:
            solve = f"fixed-step {name} (dt={self.dt0:g})"
        kind = "exact" if self.adaptive and not hutchinson else "estimate"
        return f"{kind}: {solve}, {trace}"

    def controller(self) -> diffrax.AbstractStepSizeController:
        if not self.adaptive:
            return diffrax.ConstantStepSize()
        if self.norm == "max":
            return diffrax.PIDController(rtol=self.rtol, atol=self.atol, norm=max_norm)
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)  # Diffrax's RMS norm

    def dt(self, t0: Time, t1: Time) -> Array | None:
        if self.adaptive:
            return None
        return self.dt0 * jnp.where(jnp.asarray(t1) >= jnp.asarray(t0), 1.0, -1.0)


class Stats(eqx.Module):
    """What drawing samples or evaluating a likelihood cost: one type for every model.

    Attributes:
        num_steps: solver or sampler steps taken (attempted steps for an adaptive solve).
        num_accepted_steps, num_rejected_steps: as the step-size controller decided
            (every step is accepted for a fixed-step sampler).
        nfe: evaluations of the network (vector field, score, energy gradient, decoder or
            generator); for a likelihood solve each includes its divergence.
        success: ``False`` if a solve stopped early (e.g. ran out of ``max_steps``) or
            produced non-finite values, or a sampler returned any NaN or inf sample (for
            a likelihood: any NaN log-density or a non-finite normaliser).
    """

    num_steps: Array
    num_accepted_steps: Array
    num_rejected_steps: Array
    nfe: Array
    success: Array

    @classmethod
    def fixed(cls, steps: int, nfe: int, success=True) -> Stats:
        """The statistics of a fixed-step sampler (or a single network pass: ``steps=1``)."""
        return cls(
            num_steps=jnp.asarray(steps),
            num_accepted_steps=jnp.asarray(steps),
            num_rejected_steps=jnp.asarray(0),
            nfe=jnp.asarray(nfe),
            success=jnp.asarray(success),
        )

    def as_dict(self) -> dict[str, int | bool]:
        """Plain Python numbers, e.g. for ``metrics.json``."""
        return {
            "num_steps": int(self.num_steps),
            "num_accepted_steps": int(self.num_accepted_steps),
            "num_rejected_steps": int(self.num_rejected_steps),
            "nfe": int(self.nfe),
            "success": bool(self.success),
        }


"""The former name of :class:`Stats` (kept so older code keeps working)."""


def _stats(sol: diffrax.Solution, options: SolverOptions, finite: Array) -> Stats:
    steps = sol.stats["num_steps"]
    return Stats(
        num_steps=steps,
        num_accepted_steps=sol.stats["num_accepted_steps"],
        num_rejected_steps=sol.stats["num_rejected_steps"],
        nfe=nfe_of(options.solver, steps),
        success=(sol.result == diffrax.RESULTS.successful) & finite,
    )


def value_and_divergence(
    field: Callable[[Time, Point], Point], t: Time, x: Point, probe: Point | None = None
) -> tuple[Point, Array]:
    r"""$f(t, x)$ and its divergence $\nabla\cdot f = \operatorname{tr} \partial f/\partial x$.

    Exact (``probe=None``): the trace of the Jacobian from ``d`` forward-mode
    Jacobian-vector products sharing one linearisation. With a ``probe`` $\varepsilon$
    (Rademacher or Gaussian): Hutchinson's unbiased estimate $\varepsilon^\top J \varepsilon$
    from one product.
    """
    fx, jvp = jax.linearize(lambda y: field(t, y), x)
    if probe is None:
        basis = jnp.eye(x.shape[0], dtype=x.dtype)
        jac_cols = jax.vmap(jvp)(basis)  # row i = J e_i
        return fx, jnp.trace(jac_cols)
    return fx, jnp.vdot(probe, jvp(probe))


def batch_value_and_divergence(
    field: Callable[[Time, Point], Point], t: Time, x: Points, probe: Points | None = None
) -> tuple[Points, Values]:
    r"""$f(t, x_i)$ and $\nabla\cdot f(t, x_i)$ for a batch ``x`` of shape ``(n, d)``.

    The same numbers as ``vmap(value_and_divergence)``, computed faster: the *batched*
    field is linearised once and its linear map applied to the ``d`` batched basis tangents
    $e_j$ (one ``(n, w) @ (w, w)`` product per layer and tangent), rather than ``d`` tangents
    vmapped inside a per-example linearisation. ``benchmarks/run.py`` measures both (about
    1.45x for the value, 1.4x for gradients through it, on a width-128 depth-4 field).
    """
    fx, jvp = jax.linearize(lambda y: jax.vmap(lambda yi: field(t, yi))(y), x)
    if probe is not None:
        return fx, jnp.sum(probe * jvp(probe), axis=-1)
    d = x.shape[-1]
    div = jnp.zeros(x.shape[:1], fx.dtype)
    for j in range(d):  # d is small (2 here); each term is one batched tangent pass
        basis = jnp.zeros_like(x).at[:, j].set(1)
        div = div + jvp(basis)[:, j]
    return fx, div


class _Augmented(eqx.Module):
    """The augmented field $(x, \\delta) \\mapsto (f(t, x), \\nabla\\cdot f(t, x))$ on a batch."""

    field: Callable

    def __call__(self, t, state, probe):
        x, _ = state
        return batch_value_and_divergence(self.field, t, x, probe)


class _Plain(eqx.Module):
    field: Callable

    def __call__(self, t, x, args):
        return jax.vmap(lambda xi: self.field(t, xi))(x)


def _solve(term, y0, t0, t1, options: SolverOptions, args, saveat) -> diffrax.Solution:
    return diffrax.diffeqsolve(
        diffrax.ODETerm(term),
        options.solver,
        t0=t0,
        t1=t1,
        dt0=options.dt(t0, t1),
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=options.controller(),
        adjoint=options.adjoint,
        max_steps=options.max_steps,
        throw=False,
    )


def _failure_message(options: SolverOptions) -> str:
    return (
        f"ODE solve failed: the solver either ran out of max_steps={options.max_steps} or "
        f"produced non-finite values (rtol={options.rtol}, atol={options.atol}). Increase "
        "max_steps, loosen the tolerances, or check the vector field and the input for "
        "NaN/inf; pass throw=False to get NaN results and stats.success=False instead."
    )


def augmented_solve(
    field: Callable[[Time, Point], Point],
    x0: Points,
    t0: Time,
    t1: Time,
    options: SolverOptions = SolverOptions(),
    *,
    probe: Points | None = None,
    throw: bool = True,
) -> tuple[Points, Values, Stats]:
    r"""Solve $\dot x = f(t, x)$, $\dot\delta = \nabla\cdot f(t, x)$ from ``t0`` to ``t1``.

    Arguments:
        field: vector field on one example, ``field(t, x) -> dx/dt``.
        x0: starting points, shape ``(n, d)``.
        t0, t1: start and end times (``t1 < t0`` integrates backwards).
        options: solver, tolerances, adjoint.
        probe: ``None`` for the exact divergence; an ``(n, d)`` Hutchinson probe otherwise.
        throw: raise (also under ``jit``) if the solve fails; otherwise return NaN for the
            failed solve and ``stats.success = False``.

    Returns:
        ``(x1, delta, stats)`` with ``x1`` of shape ``(n, d)`` and
        $\delta = \int_{t_0}^{t_1} \nabla\cdot f\,dt$ of shape ``(n,)``.
    """
    y0 = (x0, jnp.zeros(x0.shape[:1], x0.dtype))
    sol = _solve(_Augmented(field), y0, t0, t1, options, probe, diffrax.SaveAt(t1=True))
    x1, delta = sol.ys[0][-1], sol.ys[1][-1]
    finite = jnp.all(jnp.isfinite(x1)) & jnp.all(jnp.isfinite(delta))
    stats = _stats(sol, options, finite)
    x1, delta = _check(x1, delta, success=stats.success, options=options, throw=throw)
    return x1, delta, stats


def flow_solve(
    field: Callable[[Time, Point], Point],
    x0: Points,
    t0: Time,
    t1: Time,
    options: SolverOptions = SolverOptions(),
    *,
    ts: Array | None = None,
    throw: bool = True,
) -> tuple[Array, Stats]:
    r"""Solve $\dot x = f(t, x)$ from ``t0`` to ``t1`` for a batch ``x0`` of shape ``(n, d)``.

    Returns the end points ``(n, d)`` or, when ``ts`` is given, the states at those times,
    shape ``(len(ts), n, d)``; and the solver statistics.
    """
    # States at ``ts`` are read off the dense output after the solve where its buffer (one
    # slot per allowed step) is small, rather than saved with SaveAt(ts=...): Diffrax checks
    # a traced ``ts`` with eqx.error_if, whose host callback keeps the program out of JAX's
    # persistent cache (callers validate ``ts``). Both interpolate the same steps.
    dense = ts is not None and _dense_bytes(x0, options) <= DENSE_OUTPUT_BYTES
    if dense:
        saveat = diffrax.SaveAt(dense=True)
    else:
        saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
    sol = _solve(_Plain(field), x0, t0, t1, options, None, saveat)
    if dense:
        ys = jax.vmap(sol.evaluate)(ts)
    else:
        ys = sol.ys[-1] if ts is None else sol.ys
    stats = _stats(sol, options, jnp.all(jnp.isfinite(ys)))
    (ys,) = _check(ys, success=stats.success, options=options, throw=throw)
    return ys, stats


DENSE_OUTPUT_BYTES = 256 * 2**20
"""The largest dense-output buffer :func:`flow_solve` allocates to read states at ``ts``
(beyond it, e.g. the 50,000 paths of a reflow, it saves at ``ts`` directly)."""


def _dense_bytes(x0, options: SolverOptions) -> int:
    """An upper estimate of Diffrax's dense buffer: per allowed step, the step's ends and
    up to eight stages of a state."""
    return options.max_steps * 10 * x0.size * x0.dtype.itemsize


def _check(*arrays, success, options, throw):
    if throw:
        return fail_unless(success, _failure_message(options), *arrays)
    return tuple(jnp.where(success, a, jnp.nan) for a in arrays)


def check_solve(throw: bool, stats: Stats, options: SolverOptions, *arrays) -> tuple:
    """After a compiled program that solved with ``throw=False`` (NaN on failure): raise
    when ``throw`` and the solve failed (on the host, see :func:`~flowlab._checks.fail_unless`,
    so the program itself stays free of host callbacks and is cached); ``arrays`` otherwise."""
    return fail_unless(stats.success, _failure_message(options), *arrays) if throw else arrays


def standard_normal_log_prob(z: Points) -> Values:
    """Log-density of $N(0, I)$ at each row of ``z``."""
    d = z.shape[-1]
    return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * d * np.log(2 * np.pi)
