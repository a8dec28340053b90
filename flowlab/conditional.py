r"""Conditional generation with classifier-free guidance: a conditional field is still a
vector field.

A conditional network $f_\theta(t, z, y)$ (e.g. :class:`~flowlab.nn.ConditionalMLPField`)
sees a label $y \in \{0, \dots, K-1\}$ or the *null* label $\varnothing = K$ ("no
condition"). Trained with the label replaced by $\varnothing$ with probability $p$
(:class:`ConditionalFlowMatching`, :class:`ConditionalDSM`), one network learns both the
conditional $f(t, z \mid y)$ and the unconditional $f(t, z)$. Classifier-free guidance
(Ho & Salimans 2022) mixes them with a weight $w \ge 0$:

$$f_w(t, z \mid y) = (1 + w)\, f(t, z \mid y) - w\, f(t, z).$$

:class:`Guided` is that mixture for one label and one $w$, a plain ``f(t, z)``: put it in a
:class:`~flowlab.CNF` (``f`` a velocity) or a :class:`~flowlab.Diffusion` (``f`` a noise
prediction; the score $-\hat\varepsilon/\sigma$ is linear in it, so the guided score is
the same mixture of scores) and every existing method works unchanged: the exact
likelihood ODE, ``sample``, the fixed-step samplers. :func:`condition` returns the same
model pointed at another label or weight (no retraining; the label is an array, so no
recompilation either).

**How the likelihood reads.** With a label $y$ and $w = 0$, ``log_prob(x)`` is the exact
$\log p_\theta(x \mid y)$ of the conditional flow (the usual adaptive solve with the exact
trace); with the null label it is the unconditional $\log p_\theta(x)$. With $w \ne 0$ it
is the exact log-density of the *guided* flow's samples, which is neither $p(x \mid y)$ nor
$p(x \mid y)^{1+w} p(x)^{-w}$ (guidance of the field does not sharpen the density in closed
form): report it as such, or not at all.

**Training** goes through :func:`fit_conditional`, which hands :func:`flowlab.fit` the
points with their labels as one extra column (exact for integers in float32) and trains
exactly what the model declares (``model.trainable()``); checkpoints and resumes work as
for any run.

**Minibatch OT with conditions.** Pairing noise with data by OT across the whole batch
ignores the labels: a noise point is sent to whatever data point is nearest, of any class,
so the conditional field learns to disregard $y$ (torchcfm #30, #100; Cheng & Schwing
2025). ``ConditionalFlowMatching(coupling=ExactOT(), class_cost=c)`` gives each noise row
a label (the batch's labels in random order) and adds $c\,[y_0 \ne y_1]$ to the squared
distance: with ``class_cost`` large, OT pairs within each class only (the large-penalty
limit of C2OT's conditional cost), with 0 it is plain OT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._checks import check_points
from ._typing import Array, Point, Points, Time

__all__ = [
    "ConditionalDSM",
    "ConditionalFlowMatching",
    "Guided",
    "LabelledTraining",
    "condition",
    "fit_conditional",
    "guided_field",
]


class Guided(eqx.Module):
    r"""The guided field $f_w(t, z) = (1 + w) f(t, z \mid y) - w f(t, z \mid \varnothing)$
    of a conditional network for one label $y$ (the null label: the unconditional field).

    Arguments:
        network: ``network(t, z, label)`` on one example, with ``num_classes`` (the null
            label is ``num_classes``) and ``data_size``.
        label: an int in ``0 .. num_classes`` (``num_classes``: no condition); default the
            null label.
        guidance: $w \ge 0$ (0: the plain conditional field, one network pass).
    """

    network: Callable
    label: Array
    guidance: float = eqx.field(static=True)

    def __init__(self, network: Callable, label: int | None = None, guidance: float = 0.0):
        k = network.num_classes
        label = k if label is None else label
        if is_int(label) and not 0 <= int(label) <= k:
            raise ValueError(
                f"expected label an int in 0..{k} ({k}: the null label), got {label!r}"
            )
        if not is_int(label) and jnp.ndim(label) != 0:
            raise ValueError(f"expected one integer label, got shape {jnp.shape(label)}")
        guidance = float(guidance)
        if not (np.isfinite(guidance) and guidance >= 0):
            raise ValueError(f"expected guidance w >= 0 and finite, got {guidance!r}")
        self.network = network
        self.label = jnp.asarray(label, jnp.int32)
        self.guidance = guidance

    @property
    def data_size(self) -> int:
        return self.network.data_size

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    def __call__(self, t: Time, z: Point) -> Point:
        cond = self.network(t, z, self.label)
        if self.guidance == 0.0:
            return cond
        uncond = self.network(t, z, self.num_classes)
        return (1.0 + self.guidance) * cond - self.guidance * uncond


def is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def guided_field(model) -> Guided:
    """The :class:`Guided` field inside ``model`` (a CNF's ``vector_field`` or a
    diffusion's ``network``), or a ``ValueError`` saying what was found."""
    for name in ("vector_field", "network"):
        part = getattr(model, name, None)
        if isinstance(part, Guided):
            return part
    raise ValueError(
        "expected a model built on a flowlab.conditional.Guided field (CNF(Guided(net)) or "
        f"Diffusion(Guided(net))), got {type(model).__name__}"
    )


def _replace_guided(model, new: Guided):
    name = "vector_field" if isinstance(getattr(model, "vector_field", None), Guided) else "network"
    return eqx.tree_at(lambda m: getattr(m, name), model, new)


def condition(model, label: int | None, guidance: float = 0.0):
    """The same model with its field guided towards ``label`` with weight ``guidance``
    (``label=None``: unconditional). Works for any model whose field or network is a
    :class:`Guided`."""
    g = guided_field(model)
    return _replace_guided(model, Guided(g.network, label, guidance))


class LabelledTraining(eqx.Module):
    """A model trained on labelled points: what :func:`fit_conditional` hands
    :func:`flowlab.fit` (the batch's last column is the label)."""

    model: Any


def _labelled_data(x, labels, d: int, num_classes: int, name: str) -> Points:
    x = check_points(x, d, name)
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"expected {name}'s labels as {x.shape[0]} integers, got shape {y.shape} and "
            f"dtype {y.dtype}"
        )
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"expected {name}'s labels in 0..{num_classes - 1}, got [{y.min()}, {y.max()}]"
        )
    return jnp.concatenate([x, jnp.asarray(y, x.dtype)[:, None]], axis=1)


def fit_conditional(model, objective, train_x, train_labels, holdout_x, holdout_labels, **kw):
    """Train a conditional model with :func:`flowlab.fit`: ``(model, history)``.

    Arguments:
        model: a :class:`~flowlab.CNF` or :class:`~flowlab.Diffusion` on a :class:`Guided`
            field.
        objective: :class:`ConditionalFlowMatching` or :class:`ConditionalDSM`.
        train_x, holdout_x: points, shape ``(n, d)``.
        train_labels, holdout_labels: integer labels in ``0 .. num_classes - 1``, shape
            ``(n,)``.
        **kw: every other argument of :func:`flowlab.fit` (``key``, ``steps``,
            ``batch_size``, ``checkpoint``, ...).
    """
    from ._fit import fit

    g = guided_field(model)
    d = model.require_data_size()
    train = _labelled_data(train_x, train_labels, d, g.num_classes, "train_x")
    holdout = _labelled_data(holdout_x, holdout_labels, d, g.num_classes, "holdout_x")
    spec = LabelledTraining(model.trainable())
    out, history = fit(LabelledTraining(model), objective, train, holdout, filter_spec=spec, **kw)
    return out.model, history


from .objectives.conditional import ConditionalDSM, ConditionalFlowMatching  # noqa: E402
