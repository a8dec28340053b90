r"""The protocol every flowlab model meets, whatever its family.

A model is an Equinox module that

* knows its data dimension (``data_size``) and the affine map to the standardised
  coordinates it works in (``standardize``: every model is trained and sampled in
  $z = (x - \mu)/s$ and reports samples and densities in the data's own coordinates);
* draws samples: ``sample(key, n)`` and ``sample_with_stats(key, n)``, the latter with one
  :class:`~flowlab.Stats` for every family (steps, network evaluations, success);
* says what it trains: ``trainable_fields`` names the sub-modules whose inexact arrays the
  optimiser updates (the standardisation, an SDE or a noise schedule never are);
* declares its likelihood kind (:data:`LIKELIHOOD_KINDS`) by its type alone:

  - ``"exact"`` (an :class:`AbstractExactLikelihood`): ``log_prob(x)`` is $\log p(x)$ up
    to a stated numerical error (an adaptive ODE solve with the exact trace, or a
    quadrature with its error estimate);
  - ``"bound"`` (an :class:`AbstractBoundLikelihood` and no exact one):
    ``log_prob_bound(x, key=...)`` is a named lower bound on $\log p(x)$
    (``bound_name``, e.g. the ELBO), and no exact value is available;
  - ``"none"`` (neither): only samples; compare by the sample-based metrics of
    :mod:`flowlab.metrics`.

  Asking a model for a method its kind lacks (``log_prob`` of a DDPM, ``log_prob_bound`` of
  a GAN) raises an ``AttributeError`` that names the kind and what to use instead; it stays
  an ``AttributeError``, so ``hasattr(model, "log_prob")`` still answers ``False``.

Families mix in :class:`AbstractExactLikelihood` and/or :class:`AbstractBoundLikelihood`;
a model may have both (a :class:`~flowlab.VAE`, with a latent of dimension one or two, has
an exact marginal by quadrature and its ELBO; a :class:`~flowlab.vae.BoundVAE` only the
ELBO). :func:`likelihood_kind` is the one place the kind is read, from the mixins; there is
no second statement of it to disagree with the type.

Following Equinox's abstract-or-final pattern, every class here is abstract; the families
(:class:`~flowlab.CNF`, :class:`~flowlab.Diffusion`, :class:`~flowlab.DDPM`,
:class:`~flowlab.SingleNoiseScore`, ...) are final.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import equinox as eqx
import jax

from ._checks import check_points
from ._ode import Stats
from ._standardize import Standardize
from ._typing import Key, Points, Values

__all__ = [
    "LIKELIHOOD_KINDS",
    "AbstractBoundLikelihood",
    "AbstractExactLikelihood",
    "AbstractModel",
    "likelihood_kind",
    "trainable_filter",
]

LIKELIHOOD_KINDS: tuple[str, ...] = ("exact", "bound", "none")
"""The likelihood kinds a model can declare."""

LikelihoodKind = Literal["exact", "bound", "none"]


class AbstractModel(eqx.Module):
    """A generative model on $\\mathbb{R}^d$: samples, what it trains, its likelihood kind.

    Attributes:
        data_size: the data dimension ``d`` (``None`` only for a model built on a plain
            callable without ``data_size``: it learns ``d`` from the points it is given).
        standardize: the affine map to the coordinates the model works in (``None`` for
            the identity in an unknown dimension).
        trainable_fields: names of the fields holding what the optimiser updates
            (class-level).
    """

    data_size: eqx.AbstractVar[int | None]
    standardize: eqx.AbstractVar[Standardize | None]
    trainable_fields: eqx.AbstractClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def sample_with_stats(self, key: Key, n: int, *, sampler: Any = None) -> tuple[Points, Stats]:
        """``n`` samples, shape ``(n, d)`` in data coordinates, and what they cost.

        Arguments:
            key: PRNG key.
            n: number of samples.
            sampler: a sampler object from :mod:`flowlab.samplers` that supports the model
                (``None``: the family's default sampler).
        """

    def sample(self, key: Key, n: int, *, sampler: Any = None) -> Points:
        """``n`` samples, shape ``(n, d)``, in data coordinates; see ``sample_with_stats``."""
        return self.sample_with_stats(key, n, sampler=sampler)[0]

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a model without ``log_prob`` (or
        # ``log_prob_bound``) says why and what to use instead. It stays an AttributeError,
        # so ``hasattr(model, "log_prob")`` keeps answering False for such a model.
        if name in ("log_prob", "log_prob_with_stats", "log_prob_bound"):
            raise AttributeError(_no_likelihood_message(type(self), name))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def trainable(self) -> Any:
        """The Equinox filter spec of what training updates: the inexact arrays of the
        fields named in ``trainable_fields``, nothing else."""
        spec = jax.tree_util.tree_map(lambda _: False, self)
        for name in self.trainable_fields:
            part = getattr(self, name)
            spec = eqx.tree_at(
                lambda m, name=name: getattr(m, name),
                spec,
                replace=jax.tree_util.tree_map(eqx.is_inexact_array, part),
            )
        return spec

    def check_points(self, x, name: str = "x") -> Points:
        """``x`` as an ``(n, d)`` float array, or a ``ValueError`` naming the model's ``d``."""
        if self.data_size is None:
            d = x.shape[-1] if hasattr(x, "shape") and len(x.shape) == 2 else -1
            return check_points(x, d, name)
        return check_points(x, self.data_size, name)

    def standardizer(self, d: int | None = None) -> Standardize:
        """The standardisation (the identity in ``d`` dimensions when the model has none)."""
        if self.standardize is not None:
            return self.standardize
        d = self.data_size if d is None else d
        if d is None:
            raise ValueError("the model's data dimension is unknown: pass data_size=d")
        return Standardize.identity(d)

    def require_data_size(self) -> int:
        """``data_size``, or a clear error when the model was built without one."""
        if self.data_size is None:
            raise ValueError(
                f"{type(self).__name__} was built on a network with no `data_size` and no "
                "`standardize`, so it cannot draw samples: pass data_size=d"
            )
        return self.data_size


class AbstractExactLikelihood(AbstractModel):
    """A model with an exact log-density (to a stated numerical error)."""

    @abc.abstractmethod
    def log_prob_with_stats(self, x: Points, **kwargs: Any) -> tuple[Values, Stats]:
        """$\\log p(x)$ of each row of ``x`` (nats, data coordinates) and its cost."""

    def log_prob(self, x: Points, **kwargs: Any) -> Values:
        """$\\log p(x)$ of each row of ``x``, shape ``(n,)``; see ``log_prob_with_stats``."""
        return self.log_prob_with_stats(x, **kwargs)[0]

    @abc.abstractmethod
    def likelihood_label(self) -> str:
        """How ``log_prob`` is computed, in words, built from the model's own options (for
        ``metrics.json`` and tables): starts with ``"exact:"``, or ``"estimate:"`` when the
        options make it one (fixed steps, a Hutchinson trace)."""


class AbstractBoundLikelihood(AbstractModel):
    """A model with a lower bound on its log-likelihood (e.g. the ELBO)."""

    bound_name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def log_prob_bound(self, x: Points, *, key: Key, **kwargs: Any) -> Values:
        """A lower bound on $\\log p(x)$ for each row of ``x`` (nats, data coordinates);
        ``bound_name`` says which."""


def _no_likelihood_message(cls: type, name: str) -> str:
    """Why a model of type ``cls`` has no method ``name``, and what to use instead."""
    family = cls.__name__
    if issubclass(cls, AbstractBoundLikelihood):
        return (
            f"{family} has no exact likelihood (likelihood kind 'bound'), so no {name}: use "
            f"log_prob_bound(x, key=...), a lower bound on log p(x) ({cls.bound_name}), or "
            "flowlab.evaluate.likelihood, which scores any model by its likelihood kind"
        )
    return (
        f"{family} has no likelihood (likelihood kind 'none'), so no {name}: neither an "
        "exact log_prob nor a log_prob_bound; compare its samples with flowlab.metrics "
        "(flowlab.evaluate.evaluate scores any model by its likelihood kind)"
    )


def likelihood_kind(model: AbstractModel) -> LikelihoodKind:
    """The likelihood kind of ``model``, read from its type: ``"exact"`` for an
    :class:`AbstractExactLikelihood`, else ``"bound"`` for an
    :class:`AbstractBoundLikelihood`, else ``"none"``."""
    if not isinstance(model, AbstractModel):
        raise TypeError(f"expected a flowlab model (an AbstractModel), got {type(model).__name__}")
    if isinstance(model, AbstractExactLikelihood):
        return "exact"
    if isinstance(model, AbstractBoundLikelihood):
        return "bound"
    return "none"


def trainable_filter(model: Any) -> Any:
    """What :func:`~flowlab.fit` trains in ``model``: ``model.trainable()`` for a flowlab
    model; every inexact array of any other Equinox module."""
    if isinstance(model, AbstractModel):
        return model.trainable()
    return jax.tree_util.tree_map(eqx.is_inexact_array, model)
