r"""Rectified flow: reflow a trained ODE flow into a straighter one (Liu, Gong & Liu 2023).

A teacher flow (any :class:`~flowlab.AbstractFlow`, e.g. a :class:`~flowlab.CNF` trained by
flow matching from $N(0, I)$ or from any other prior (``CNF(prior=...)``, source to target),
or a diffusion's probability-flow ODE) defines a deterministic coupling of its prior and the
data: $z_0$ from the prior and $x_1$ the end point of its ODE from $z_0$ (an adaptive
solve). *Reflow* trains a
new :class:`~flowlab.CNF` by flow matching on these fixed pairs, along the straight line
between them:

$$\min_\theta\ \mathbb{E}_{t, (z_0, x_1)}\,
  \big\| f_\theta(t, z_t) - (z_1 - z_0)\big\|^2,\qquad
  z_1 = (x_1 - \mu)/s,\quad z_t = (1 - t) z_0 + t z_1,$$

in the student's standardised coordinates ($z_0$ is the teacher's prior draw, which must be
a draw of the student's prior too: :func:`reflow` checks that student and teacher share the
prior, e.g. by building the student with the teacher's ``prior=`` and standardisation, or
by passing the teacher itself as the student). The rectified flow has the same marginal
at $t = 1$ as the teacher's samples, transports with no larger convex cost, and its paths are
straighter: round $k + 1$ reflows round $k$ (the "$k$-rectified flow"), and a straight
flow is integrated exactly by one Euler step (:class:`~flowlab.samplers.Euler`).

The student stays a plain :class:`~flowlab.CNF`: its exact likelihood (adaptive solve,
exact trace), every ODE sampler and :func:`flowlab.evaluate` apply to it unchanged. It is
trained by :func:`flowlab.fit`, with

* :func:`reflow_pairs` drawing the pairs once (:class:`ReflowPairs`);
* :class:`Reflow`, the objective: flow matching on the fixed pairs. ``fit`` hands an
  objective batches of *rows of the training data*, so the training data are the pairs'
  end points ``pairs.x1`` (data coordinates, as for any model) and :class:`Reflow` finds
  each row's partner $z_0$ by an exact look-up in the pairs it holds (sorted on the first
  coordinate: a binary search, then an exact comparison of the next few rows; a row that
  is not an end point of the pairs is an error). This keeps the pairs fixed, as the method requires,
  without a teacher solve inside the training step (the alternative, a coupling that
  integrates the teacher for each batch, costs the teacher's adaptive NFE at every
  step);
* :func:`reflow`, which does both for one round, and :func:`reflow_rounds` for $k$.

References: X. Liu, C. Gong, Q. Liu, "Flow Straight and Fast: Learning to Generate and
Transfer Data with Rectified Flow", ICLR 2023 (arXiv:2209.03003); the authors' code,
github.com/gnobitab/RectifiedFlow.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_key
from ._fit import History, fit
from ._flow import AbstractFlow
from ._typing import Array, Key, Points
from .cnf import CNF
from .objectives._base import AbstractObjective, check_model

__all__ = [
    "Reflow",
    "ReflowPairs",
    "check_same_prior",
    "reflow",
    "reflow_pairs",
    "reflow_rounds",
]


class ReflowPairs(eqx.Module):
    """Pairs of a teacher's coupling: prior draws and the teacher's ODE end points.

    Attributes:
        z0: the teacher's prior draws, shape ``(n, d)``, in its standardised coordinates.
        x1: the teacher's ODE solution from each ``z0``, shape ``(n, d)``, data
            coordinates.
    """

    z0: Points
    x1: Points

    def __check_init__(self):
        if self.z0.ndim != 2 or self.z0.shape != self.x1.shape:
            raise ValueError(
                f"expected z0 and x1 of the same shape (n, d), got {self.z0.shape} and "
                f"{self.x1.shape}"
            )

    def __len__(self) -> int:
        return self.z0.shape[0]

    def split(self, n_holdout: int) -> tuple[ReflowPairs, ReflowPairs]:
        """The first ``len - n_holdout`` pairs and the last ``n_holdout`` (the draws are
        i.i.d., so the split is random)."""
        n_holdout = check_count(n_holdout, "n_holdout")
        if n_holdout >= len(self):
            raise ValueError(f"expected n_holdout < {len(self)} pairs, got {n_holdout}")
        k = len(self) - n_holdout
        return ReflowPairs(self.z0[:k], self.x1[:k]), ReflowPairs(self.z0[k:], self.x1[k:])


def reflow_pairs(teacher: AbstractFlow, key: Key, n: int) -> ReflowPairs:
    r"""``n`` pairs $(z_0, x_1)$ of ``teacher``'s coupling: $z_0$ from its prior and
    $x_1$ its ODE solution from $t_b$ to $t_d$ with its own solver options (adaptive by
    default), in data coordinates.

    Raises:
        ValueError: ``teacher`` is not an :class:`~flowlab.AbstractFlow`, ``key`` is not
            one PRNG key or ``n`` not a positive integer. (Any prior is accepted; the
            student trained on the pairs must share it: :func:`check_same_prior`.)
        EquinoxRuntimeError: the teacher's solve fails.
    """
    if not isinstance(teacher, AbstractFlow):
        raise ValueError(
            f"reflow needs a teacher ODE flow (an AbstractFlow), got {type(teacher).__name__}"
        )
    check_key(key)
    n = check_count(n)
    z0 = teacher.prior_sample(key, n)
    ts = jnp.asarray([teacher.t_base, teacher.t_data], z0.dtype)
    _, xs = teacher.trajectories(z0=z0, ts=ts)
    return ReflowPairs(z0, xs[-1])


def check_same_prior(teacher: AbstractFlow, student: AbstractFlow, z0: Points) -> None:
    r"""Raise unless ``student`` has the teacher's prior in standardised coordinates: their
    ``prior_log_prob`` agree (within 1e-3 nats) on the teacher's prior draws ``z0``. Reflow
    pairs a student's $z_0$ with the teacher's end point, so the student must start where
    the teacher did. (Two $N(0, I)$-prior flows always agree, whatever their
    standardisations; a prior given in data coordinates, ``CNF(prior=...)``, agrees when the
    student has the teacher's prior and standardisation.)

    Raises:
        ValueError: naming the largest log-density difference found.
    """
    gap = float(jnp.max(jnp.abs(teacher.prior_log_prob(z0) - student.prior_log_prob(z0))))
    if not gap < 1e-3:
        raise ValueError(
            "reflow pairs the student's z0 with the teacher's end point, so student and "
            "teacher must share the prior (build the student with the teacher's prior= and "
            f"standardize=); the {type(student).__name__} student's prior log-density "
            f"differs from the {type(teacher).__name__} teacher's by up to {gap:.3g} nats "
            "on the teacher's draws"
        )


_WINDOW = 8  # rows compared per look-up: more than 8 equal first coordinates is an error


class Reflow(AbstractObjective):
    r"""Flow matching of a :class:`~flowlab.CNF` on fixed pairs (module docstring):
    $\mathbb{E}\,\|f(t, z_t) - (z_1 - z_0)\|^2$, $z_t = (1 - t) z_0 + t z_1$, with $z_1$ a
    batch row in the student's standardised coordinates and $z_0$ its partner in
    ``pairs``; $t$ has density $a t^{a-1}$ (``time_power`` $= a$, uniform by default).

    Train with ``fit(student, Reflow(pairs), train.x1, holdout.x1, ...)``, where ``train``
    and ``holdout`` are parts of ``pairs`` (:meth:`ReflowPairs.split`; :func:`reflow` does
    this).

    Arguments:
        pairs: every pair the training and hold-out rows come from.
        time_power: $a > 0$ of the time law.
        holdout_repeats: time draws per hold-out point in the hold-out loss.

    Raises:
        ValueError: (when called, at trace time) for a model that is not a CNF.
        EquinoxRuntimeError: (when called) for a batch row that is not an end point of
            ``pairs``.
    """

    pairs: ReflowPairs
    time_power: float = eqx.field(static=True, default=1.0)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __init__(self, pairs: ReflowPairs, time_power: float = 1.0, holdout_repeats: int = 8):
        if not isinstance(pairs, ReflowPairs):
            raise ValueError(f"expected ReflowPairs, got {type(pairs).__name__}")
        if not time_power > 0:
            raise ValueError(f"expected time_power > 0, got {time_power!r}")
        order = jnp.argsort(pairs.x1[:, 0])
        self.pairs = ReflowPairs(pairs.z0[order], pairs.x1[order])
        self.time_power = float(time_power)
        self.holdout_repeats = check_count(holdout_repeats, "holdout_repeats")

    def partners(self, x: Points) -> Points:
        """The $z_0$ paired with each row of ``x`` (end points of ``pairs``), shape
        ``(n, d)``; an error (also under ``jit``) for a row that is not an end point."""
        keys = self.pairs.x1[:, 0]
        # float32 first coordinates tie often enough (thousands of pairs): look at the
        # _WINDOW sorted rows from the first candidate on and take the one equal to x
        first = jnp.searchsorted(keys, x[:, 0], side="left")
        cand = jnp.clip(first[:, None] + jnp.arange(_WINDOW), 0, keys.shape[0] - 1)
        match = jnp.all(self.pairs.x1[cand] == x[:, None, :], axis=-1)
        idx = jnp.take_along_axis(cand, jnp.argmax(match, axis=1)[:, None], axis=1)[:, 0]
        found = jnp.all(jnp.any(match, axis=1))
        z0 = eqx.error_if(
            self.pairs.z0[idx],
            jnp.logical_not(found),
            "Reflow trains on the pairs it holds: the training and hold-out data must be "
            "end points of those pairs (pairs.x1, or parts of it), but a row is not",
        )
        return z0

    def __call__(self, model, x: Points, key: Key) -> Array:
        check_model(model, CNF, "Reflow", "a CNF (base at t = 0, data at t = 1)")
        z0 = jax.lax.stop_gradient(self.partners(x))
        z1 = model.standardizer(x.shape[-1]).forward(x)
        t = jax.random.uniform(key, (x.shape[0],), x.dtype)
        if self.time_power != 1.0:
            t = t ** (1.0 / self.time_power)
        zt = (1.0 - t[:, None]) * z0 + t[:, None] * z1
        pred = jax.vmap(model.field)(t, zt)
        return jnp.mean(jnp.sum((pred - (z1 - z0)) ** 2, axis=-1))


def reflow(
    teacher: AbstractFlow,
    student: CNF,
    *,
    key: Key,
    n_pairs: int,
    steps: int,
    n_holdout: int | None = None,
    time_power: float = 1.0,
    **fit_kwargs: Any,
) -> tuple[CNF, History, ReflowPairs]:
    """One round of reflow: ``n_pairs`` pairs of ``teacher`` (:func:`reflow_pairs`), of
    which ``n_holdout`` (default a tenth) are held out, and ``steps`` steps of
    :func:`flowlab.fit` of ``student`` with :class:`Reflow` on them.

    Arguments:
        teacher: the flow whose coupling is straightened.
        student: the CNF trained (its initial weights; Liu et al. start the student from
            the teacher's weights when it is a CNF of the same architecture: pass the
            teacher itself).
        key: PRNG key; the pairs and the training are functions of it.
        n_pairs, steps: pairs drawn, optimiser steps.
        time_power: :class:`Reflow`'s time law.
        **fit_kwargs: passed to :func:`flowlab.fit` (``batch_size``, ``optimizer``,
            ``eval_every``, ``ema_decay``, ``checkpoint``, ``progress``, ...).

    Returns:
        ``(student, history, pairs)``: the trained CNF, its history, and every pair drawn.
    """
    if not isinstance(student, CNF):
        raise ValueError(f"reflow trains a CNF student, got {type(student).__name__}")
    check_key(key)
    k_pairs, k_fit = jax.random.split(key)
    pairs = reflow_pairs(teacher, k_pairs, n_pairs)
    check_same_prior(teacher, student, pairs.z0)
    n_holdout = max(1, n_pairs // 10) if n_holdout is None else n_holdout
    train, holdout = pairs.split(n_holdout)
    objective = Reflow(pairs, time_power=time_power)
    model, history = fit(
        student, objective, train.x1, holdout.x1, key=k_fit, steps=steps, **fit_kwargs
    )
    return model, history, pairs


def reflow_rounds(
    teacher: AbstractFlow,
    student: CNF,
    *,
    key: Key,
    rounds: int,
    n_pairs: int,
    steps: int,
    **kwargs: Any,
) -> list[tuple[CNF, History]]:
    """``rounds`` rounds of :func:`reflow`: round 1 reflows ``teacher`` into ``student``;
    round $k + 1$ reflows round $k$'s model, starting from its weights. Round $k$ uses
    ``fold_in(key, k)``; ``kwargs`` go to :func:`reflow` (a ``checkpoint`` path would be
    shared by the rounds: pass none).

    Returns:
        ``[(model_1, history_1), ..., (model_k, history_k)]``: the $k$-rectified flows.
    """
    rounds = check_count(rounds, "rounds")
    if "checkpoint" in kwargs:
        raise ValueError("reflow_rounds trains several models: call reflow per round to checkpoint")
    out = []
    for k in range(1, rounds + 1):
        k_round = jax.random.fold_in(key, k)
        model, history, _ = reflow(
            teacher, student, key=k_round, n_pairs=n_pairs, steps=steps, **kwargs
        )
        out.append((model, history))
        teacher, student = model, model
    return out
