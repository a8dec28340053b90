r"""Variational autoencoder (Kingma & Welling 2014): a Gaussian encoder and decoder, trained
on the negative ELBO, with its importance-weighted bound and, for a latent of dimension one
or two, the exact marginal likelihood by quadrature.

The model works in standardised coordinates $u = (x - \mu)/s$ (see
:class:`~flowlab.Standardize`) with a latent $z \in \mathbb{R}^k$:

* prior $p(z) = \mathcal{N}(0, I_k)$;
* decoder $p_\theta(u \mid z) = \mathcal{N}(m_\theta(z), \operatorname{diag}\sigma^2)$;
* encoder $q_\phi(z \mid u) = \mathcal{N}(\mu_\phi(u), \operatorname{diag} s_\phi(u)^2)$.

**Decoder variance** (``variance``, a :class:`Variance`; its string value is accepted):

* ``"learned"`` (default): one learned standard deviation per data coordinate,
  $\sigma_i = \sigma_{\min} + \operatorname{softplus}(\rho_i)$;
* ``"per_latent"``: the decoder outputs $2d$ numbers, the mean and $\rho(z)$, and
  $\sigma_i(z) = \sigma_{\min} + \operatorname{softplus}(\rho_i(z))$;
* ``"fixed"``: $\sigma_i$ = ``decoder_std``, never trained.

The floor $\sigma_{\min}$ (``min_std``, standardised units) stops the likelihood from
collapsing onto a curve (a decoder variance driven to zero gives an unbounded density) and
keeps the latent integrand wide enough for the quadrature to resolve.

**Likelihoods**, all in nats in data coordinates (the standardisation's log-determinant
$-\sum_i \log s_i$ added):

**Two final classes**, by what the likelihood is (the type says it, see
:func:`~flowlab.likelihood_kind`): :class:`VAE` (latent dimension one or two) has the exact
marginal by quadrature and the bounds, likelihood kind *exact*; :class:`BoundVAE` (any
latent dimension) has the bounds only, likelihood kind *bound*. Both share
:class:`AbstractVAE`; :meth:`AbstractVAE.from_mlps` picks the class from the latent size.

* :meth:`AbstractVAE.log_prob_bound`: the ELBO
  $\mathbb{E}_q \log p(u \mid z) - \mathrm{KL}(q(z\mid u)\,\|\,p(z))$ (reparameterised Monte
  Carlo for the first term, the KL in closed form);
* :meth:`AbstractVAE.iwae`: the importance-weighted bound (Burda et al. 2016)
  $\mathbb{E}\log \frac1K \sum_{k} p(u, z_k)/q(z_k \mid u)$, $z_k \sim q$, which tightens
  to $\log p$ as $K$ grows;
* :meth:`VAE.log_prob` (a :class:`VAE`: latent dimension at most two): the exact marginal
  $\log p(u) = \log \int p(u \mid z) p(z)\,dz$ by the trapezoid rule on a uniform grid over
  $[-L, L]^k$ (the trapezoid rule of ``flowlab._quadrature``;
  :meth:`VAE.log_prob_with_error` returns the error estimate). The rule
  converges geometrically for a smooth integrand once the grid resolves it; its error is
  estimated by the difference with the grid of half the resolution (every other node, so
  free), and the prior mass outside the box adds at most
  $P(\|z\|_\infty > L)\max_z p(u \mid z) \le P(\|z\|_\infty > L)
  \prod_i (2\pi\sigma_{\min,i}^2)^{-1/2}$, a rigorous bound that is added too.

Train with :class:`~flowlab.objectives.NegativeELBO` through :func:`~flowlab.fit`; sample
with :class:`~flowlab.samplers.Decoder` (the default; ``Decoder(noise=False)`` gives the
decoder means).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from ._checks import check_count, check_key
from ._model import AbstractBoundLikelihood, AbstractExactLikelihood
from ._ode import Stats
from ._protocols import AbstractLatentModel
from ._quadrature import tensor_product, trapezoid_rule
from ._standardize import Standardize, resolve_data_size
from ._typing import Array, Key, Point, Points, Values
from .nn import get_activation, mlp
from .samplers import Decoder

__all__ = ["VARIANCES", "AbstractVAE", "BoundVAE", "VAE", "Variance"]


class Variance(enum.StrEnum):
    """How a VAE's decoder variance is set (see the module docstring)."""

    LEARNED = "learned"
    PER_LATENT = "per_latent"
    FIXED = "fixed"

    @classmethod
    def of(cls, value: str | Variance) -> Variance:
        """``value`` as a :class:`Variance`; ``ValueError`` naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown variance {value!r}; expected one of: {', '.join(VARIANCES)}"
            ) from None


VARIANCES: tuple[str, ...] = tuple(v.value for v in Variance)
"""The names of :class:`Variance` (for command-line flags)."""

MAX_QUADRATURE_LATENT = 2
"""The largest latent dimension whose marginal :class:`VAE` computes by quadrature."""


_LOG_2PI = math.log(2.0 * math.pi)


def _normal_log_prob(x, mean, std):
    """Sum over the last axis of $\\log N(x; \\text{mean}, \\text{std}^2)$."""
    return jnp.sum(-0.5 * ((x - mean) / std) ** 2 - jnp.log(std) - 0.5 * _LOG_2PI, axis=-1)


def _inverse_softplus(y: float) -> float:
    return float(y + math.log(-math.expm1(-y)))


def _output_shape(fn, size: int, name: str, role: str) -> tuple[int, ...]:
    try:
        out = eqx.filter_eval_shape(fn, jax.ShapeDtypeStruct((size,), jnp.result_type(float)))
    except Exception as err:  # noqa: BLE001 - re-raised with what was expected
        raise ValueError(
            f"expected the {name} to map one {role} of shape ({size},) to an array; calling "
            f"it on that shape failed: {type(err).__name__}: {err}"
        ) from err
    return tuple(getattr(out, "shape", ()))


def _vae_fields(
    encoder, decoder, latent_size, data_size, standardize, variance, decoder_std, min_std
) -> dict[str, Any]:
    """The checked fields every VAE holds (shared by the final classes' constructors)."""
    latent_size = check_count(latent_size, "latent_size")
    if data_size is None and isinstance(getattr(encoder, "in_size", None), int):
        data_size = encoder.in_size
    data_size, standardize = resolve_data_size(None, data_size, standardize)
    if data_size is None:
        raise ValueError("the VAE's data dimension is unknown: pass data_size=d")
    variance = Variance.of(variance)
    min_std = float(min_std)
    if not min_std >= 0 or (variance is Variance.PER_LATENT and min_std == 0):
        raise ValueError(
            f"expected min_std > 0 (>= 0 unless variance='per_latent'), got {min_std!r}"
        )
    if not decoder_std > (min_std if variance is Variance.LEARNED else 0.0):
        raise ValueError(
            f"expected decoder_std > min_std = {min_std} (or > 0 for a fixed "
            f"variance), got {decoder_std!r}"
        )
    if variance is Variance.FIXED:
        param = float(decoder_std)
    else:
        param = _inverse_softplus(float(decoder_std) - min_std)
    k, d = latent_size, data_size
    got = _output_shape(encoder, d, "encoder", "standardised point")
    if got != (2 * k,):
        raise ValueError(
            f"expected the encoder to map shape ({d},) to (2 * latent_size,) = ({2 * k},) "
            f"(posterior mean and log-std), got {got}"
        )
    want = (2 * d,) if variance is Variance.PER_LATENT else (d,)
    got = _output_shape(decoder, k, "decoder", "latent")
    if got != want:
        raise ValueError(
            f"expected the decoder to map shape ({k},) to {want} for variance="
            f"{variance.value!r}, got {got}"
        )
    return {
        "encoder": encoder,
        "decoder": decoder,
        "decoder_std_param": jnp.full((d,), param, jnp.result_type(float)),
        "standardize": standardize,
        "data_size": d,
        "latent_size": k,
        "variance": variance,
        "min_std": min_std,
    }


class AbstractVAE(AbstractLatentModel, AbstractBoundLikelihood):
    r"""A Gaussian VAE: encoder $q(z \mid u)$, decoder $p(u \mid z)$, prior $N(0, I_k)$, with
    the ELBO and the IWAE bound (abstract; final: :class:`VAE`, :class:`BoundVAE`).

    Trained: ``encoder``, ``decoder`` and ``decoder_std_param`` (the last only when
    ``variance`` is ``"learned"``: it gets no gradient otherwise).

    Attributes:
        encoder: maps one standardised point, shape ``(d,)``, to ``(2k,)``: the mean of
            $q(z \mid u)$ and the log of its standard deviation.
        decoder: maps one latent, shape ``(k,)``, to the decoder mean, shape ``(d,)``, or
            for ``variance="per_latent"`` to ``(2d,)``: the mean and $\rho(z)$.
        decoder_std_param: $\rho$ of the decoder's standard deviation (``"learned"``), or
            the standard deviation itself (``"fixed"``).
        variance: a :class:`Variance`.
        min_std: $\sigma_{\min}$.
    """

    encoder: eqx.AbstractVar[Callable]
    decoder: eqx.AbstractVar[Callable]
    decoder_std_param: eqx.AbstractVar[Array]
    variance: eqx.AbstractVar[Variance]
    min_std: eqx.AbstractVar[float]
    trainable_fields: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "decoder_std_param")
    bound_name: ClassVar[str] = "ELBO"

    @classmethod
    def from_mlps(
        cls,
        data_size: int = 2,
        latent_size: int = 2,
        *,
        width: int = 128,
        depth: int = 3,
        activation: str | Callable = "silu",
        variance: str | Variance = "learned",
        standardize: Standardize | None = None,
        key: Key,
        **options,
    ) -> AbstractVAE:
        """A VAE whose encoder and decoder are ``eqx.nn.MLP``s of the given width and depth.

        The class follows the latent size: a :class:`VAE` (exact marginal by quadrature)
        for ``latent_size <= 2``, a :class:`BoundVAE` beyond (or when called as
        ``BoundVAE.from_mlps``). ``options`` go to the constructor (``decoder_std``,
        ``min_std``, and for a :class:`VAE` the quadrature; ignored by a
        :class:`BoundVAE`)."""
        k_enc, k_dec = jax.random.split(key)
        act = get_activation(activation)
        variance = Variance.of(variance)
        out = 2 * data_size if variance is Variance.PER_LATENT else data_size
        encoder = mlp(data_size, 2 * latent_size, width, depth, act, key=k_enc)
        decoder = mlp(latent_size, out, width, depth, act, key=k_dec)
        kwargs = dict(latent_size=latent_size, data_size=data_size, standardize=standardize)
        if cls is BoundVAE or latent_size > MAX_QUADRATURE_LATENT:
            for name in ("quadrature_size", "quadrature_bound"):
                options.pop(name, None)
            return BoundVAE(encoder, decoder, variance=variance, **kwargs, **options)
        return VAE(encoder, decoder, variance=variance, **kwargs, **options)

    # -- the two Gaussians, on one example ------------------------------------------------------

    def posterior(self, u: Point) -> tuple[Array, Array]:
        r"""Mean and standard deviation of $q(z \mid u)$ at one standardised point."""
        out = self.encoder(u)
        k = self.latent_size
        return out[:k], jnp.exp(out[k:])

    def likelihood(self, z: Array) -> tuple[Point, Point]:
        r"""Mean and standard deviation of $p(u \mid z)$ (standardised coordinates) at one
        latent."""
        out = self.decoder(z)
        d = self.data_size
        if self.variance is Variance.PER_LATENT:
            return out[:d], self.min_std + jax.nn.softplus(out[d:])
        return out, self.global_std()

    def global_std(self) -> Array:
        r"""The decoder's $\sigma$, shape ``(d,)`` (``"learned"`` and ``"fixed"``; for
        ``"per_latent"`` the floor $\sigma_{\min}$)."""
        if self.variance is Variance.FIXED:
            return jax.lax.stop_gradient(self.decoder_std_param)
        if self.variance is Variance.LEARNED:
            return self.min_std + jax.nn.softplus(self.decoder_std_param)
        return jnp.full((self.data_size,), self.min_std)

    def _log_det(self) -> Array:
        return self.standardizer().log_det()

    # -- sampling -------------------------------------------------------------------------------

    def sample_with_stats(self, key: Key, n: int, *, sampler=None) -> tuple[Points, Stats]:
        r"""``n`` samples in data coordinates and their cost (one batched decoder pass).

        ``sampler``: default :class:`~flowlab.samplers.Decoder` (``noise=True``: draws from
        the model, $u = m(z) + \sigma \odot \varepsilon$); ``Decoder(noise=False)`` returns
        the decoder means $m(z)$, $z \sim N(0, I)$ (not samples of the model's density: see
        :meth:`decoder_mean`)."""
        sampler = Decoder() if sampler is None else sampler
        return sampler(self, key, check_count(n))

    def decoder_mean(self, key: Key, n: int) -> Points:
        r"""``n`` decoder means $m(z)$, $z \sim N(0, I)$, in data coordinates (the model's
        samples without the decoder noise)."""
        return self.sample(key, n, sampler=Decoder(noise=False))

    # -- bounds ---------------------------------------------------------------------------------

    def log_prob_bound(self, x: Points, *, key: Key, num_samples: int = 1) -> Values:
        r"""The ELBO of each row of ``x`` (nats, data coordinates), shape ``(n,)``: the
        reconstruction term averaged over ``num_samples`` reparameterised draws, minus the
        closed-form KL. Raises ``ValueError`` for ``x`` not of shape ``(n, d)`` or
        non-finite, a ``key`` that is not one PRNG key (e.g. an int seed) or a bad
        ``num_samples``."""
        x = self.check_points(x)
        check_key(key)
        recon, kl = _elbo_terms(self, x, key, check_count(num_samples, "num_samples"))
        return recon - kl

    def elbo_terms(self, x: Points, *, key: Key, num_samples: int = 1) -> dict[str, Values]:
        r"""The ELBO's terms per point: ``reconstruction``
        $\mathbb{E}_q \log p(x \mid z)$ (data coordinates, log-determinant included) and
        ``kl`` $\mathrm{KL}(q(z\mid u)\,\|\,p(z))$; ``ELBO = reconstruction - kl``."""
        x = self.check_points(x)
        check_key(key)
        recon, kl = _elbo_terms(self, x, key, check_count(num_samples, "num_samples"))
        return {"reconstruction": recon, "kl": kl}

    def iwae(self, x: Points, *, key: Key, k: int, chunk_size: int = 256) -> Values:
        r"""The importance-weighted bound with ``k`` samples of $q(z \mid u)$ per point
        (nats, data coordinates), shape ``(n,)``; ``k = 1`` is a single-sample ELBO.
        The samples are drawn ``chunk_size`` at a time with a running log-sum-exp, so memory
        does not grow with ``k``."""
        x = self.check_points(x)
        check_key(key)
        k = check_count(k, "k")
        # the chunk: chunk_size, or the power of two above k when k is smaller
        chunk = min(check_count(chunk_size, "chunk_size"), 1 << (k - 1).bit_length())
        return _iwae(self, x, key, jnp.asarray(k, jnp.int32), chunk)


class VAE(AbstractVAE, AbstractExactLikelihood):
    r"""A Gaussian VAE with a latent of dimension one or two (default 2) and its exact
    marginal likelihood by quadrature over the latent: likelihood kind ``"exact"``, with the
    ELBO and IWAE bounds too. For a larger latent use :class:`BoundVAE`
    (:meth:`~AbstractVAE.from_mlps` picks it).

    Arguments:
        encoder: maps one standardised point, shape ``(d,)``, to ``(2k,)``: the mean of
            $q(z \mid u)$ and the log of its standard deviation.
        decoder: maps one latent, shape ``(k,)``, to the decoder mean, shape ``(d,)``, or
            for ``variance="per_latent"`` to ``(2d,)``: the mean and $\rho(z)$.
        latent_size: $k$.
        data_size: $d$; read from ``standardize`` when omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        variance: a :class:`Variance` or its name, ``"learned"``, ``"per_latent"`` or
            ``"fixed"`` (see the module).
        decoder_std: the initial decoder standard deviation (``"learned"``), or the fixed
            one (``"fixed"``), standardised units.
        min_std: $\sigma_{\min}$ for ``"learned"`` and ``"per_latent"`` (must be positive
            for ``"per_latent"``: it bounds the quadrature's tail error).
        quadrature_size: intervals per latent axis of the quadrature grid (even; the error
            estimate uses the grid of half as many); ``(size + 1)^k`` decoder evaluations.
        quadrature_bound: $L$, the grid covers $[-L, L]^k$.
    """

    encoder: Callable
    decoder: Callable
    decoder_std_param: Array
    standardize: Standardize | None
    data_size: int = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    variance: Variance = eqx.field(static=True)
    min_std: float = eqx.field(static=True)
    quadrature_size: int = eqx.field(static=True)
    quadrature_bound: float = eqx.field(static=True)

    def __init__(
        self,
        encoder: Callable[[Point], Array],
        decoder: Callable[[Array], Array],
        *,
        latent_size: int = 2,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        variance: str | Variance = "learned",
        decoder_std: float = 1.0,
        min_std: float = 0.01,
        quadrature_size: int = 512,
        quadrature_bound: float = 7.0,
    ):
        if check_count(latent_size, "latent_size") > MAX_QUADRATURE_LATENT:
            raise ValueError(
                f"the exact marginal by quadrature needs latent_size <= "
                f"{MAX_QUADRATURE_LATENT}, got latent_size={latent_size}; use BoundVAE (the "
                f"ELBO and IWAE bounds), or VAE.from_mlps, which picks it"
            )
        fields = _vae_fields(
            encoder, decoder, latent_size, data_size, standardize, variance, decoder_std, min_std
        )
        for name, value in fields.items():
            setattr(self, name, value)
        self.quadrature_size = _check_grid(quadrature_size)
        if not quadrature_bound > 0:
            raise ValueError(f"expected quadrature_bound > 0, got {quadrature_bound!r}")
        self.quadrature_bound = float(quadrature_bound)

    # -- the exact marginal by quadrature ---------------------------------------------------------

    def _grid(self, size, bound) -> tuple[int, float]:
        size = self.quadrature_size if size is None else _check_grid(size)
        bound = self.quadrature_bound if bound is None else float(bound)
        if not bound > 0:
            raise ValueError(f"expected bound > 0, got {bound!r}")
        return size, bound

    def log_prob_with_error(
        self,
        x: Points,
        *,
        size: int | None = None,
        bound: float | None = None,
        node_chunk: int = 4096,
        point_chunk: int = 128,
    ) -> tuple[Values, Values, Stats]:
        r"""$\log p(x)$ of each row of ``x`` by quadrature over the latent (nats, data
        coordinates), its estimated absolute error, and the cost.

        The error is $|\hat\ell_{N} - \hat\ell_{N/2}|$ (the trapezoid rule on the grid and on
        every other node) plus $\log(1 + \varepsilon_\text{tail}/\hat p)$, with
        $\varepsilon_\text{tail}$ the bound on the prior mass outside the box times the
        largest value $p(u \mid z)$ can take.

        Arguments:
            x: points, shape ``(n, d)``.
            size: intervals per latent axis (default ``quadrature_size``).
            bound: $L$ (default ``quadrature_bound``).
            node_chunk, point_chunk: how many grid nodes and points are combined at a time
                (memory ``node_chunk * point_chunk`` floats).

        Returns:
            ``(log_prob, error, stats)``: shapes ``(n,)``, ``(n,)``; ``stats.nfe`` is the
            number of latent nodes the decoder is evaluated at (once for the batch).
        """
        x = self.check_points(x)
        size, bound = self._grid(size, bound)
        fine, coarse, tail = _marginal_by_quadrature(
            self,
            x,
            size,
            bound,
            check_count(node_chunk, "node_chunk"),
            check_count(point_chunk, "point_chunk"),
        )
        error = jnp.abs(fine - coarse) + (jnp.logaddexp(fine, tail) - fine)
        log_det = self._log_det()
        values = fine + log_det
        nodes = (size + 1) ** self.latent_size
        stats = Stats.fixed(1, nodes, success=jnp.all(jnp.isfinite(values)))
        return values, error, stats

    def log_prob_with_stats(
        self, x: Points, *, size: int | None = None, bound: float | None = None, **kwargs
    ) -> tuple[Values, Stats]:
        r"""$\log p(x)$ of each row of ``x`` by quadrature over the latent (nats, data
        coordinates) and its cost; see :meth:`log_prob_with_error` for the error estimate
        and the arguments."""
        values, _, stats = self.log_prob_with_error(x, size=size, bound=bound, **kwargs)
        return values, stats

    def likelihood_label(self, size: int | None = None, bound: float | None = None) -> str:
        size, bound = self._grid(size, bound)
        k = self.latent_size
        nodes = " x ".join([str(size + 1)] * k)
        return (
            f"exact: trapezoid quadrature over the {k}D latent ({nodes} grid on "
            f"[-{bound:g}, {bound:g}]^{k}, spacing {2 * bound / size:.3g}); estimated error = "
            f"|grid - half grid| + prior tail bound {_tail_mass(bound, k):.1e} x max p(x|z) "
            f"(log_prob_with_error)"
        )


class BoundVAE(AbstractVAE):
    r"""A Gaussian VAE with a latent of any dimension whose likelihood is a bound only: the
    ELBO (``log_prob_bound``) and the IWAE bound (``iwae``); likelihood kind ``"bound"``.
    With a latent of dimension one or two, :class:`VAE` also has the exact marginal.

    Arguments:
        encoder: maps one standardised point, shape ``(d,)``, to ``(2k,)``: the mean of
            $q(z \mid u)$ and the log of its standard deviation.
        decoder: maps one latent, shape ``(k,)``, to the decoder mean, shape ``(d,)``, or
            for ``variance="per_latent"`` to ``(2d,)``: the mean and $\rho(z)$.
        latent_size: $k$.
        data_size: $d$; read from ``standardize`` when omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        variance: a :class:`Variance` or its name, ``"learned"``, ``"per_latent"`` or
            ``"fixed"`` (see the module).
        decoder_std: the initial decoder standard deviation (``"learned"``), or the fixed
            one (``"fixed"``), standardised units.
        min_std: $\sigma_{\min}$ for ``"learned"`` and ``"per_latent"`` (must be positive
            for ``"per_latent"``: it bounds the quadrature's tail error).
    """

    encoder: Callable
    decoder: Callable
    decoder_std_param: Array
    standardize: Standardize | None
    data_size: int = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    variance: Variance = eqx.field(static=True)
    min_std: float = eqx.field(static=True)

    def __init__(
        self,
        encoder: Callable[[Point], Array],
        decoder: Callable[[Array], Array],
        *,
        latent_size: int = 2,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        variance: str | Variance = "learned",
        decoder_std: float = 1.0,
        min_std: float = 0.01,
    ):
        fields = _vae_fields(
            encoder, decoder, latent_size, data_size, standardize, variance, decoder_std, min_std
        )
        for name, value in fields.items():
            setattr(self, name, value)


def _check_grid(size) -> int:
    size = check_count(size, "quadrature size")
    if size % 2:
        raise ValueError(f"expected an even quadrature size (intervals per axis), got {size}")
    return size


def _tail_mass(bound: float, k: int) -> float:
    """$P(\\|z\\|_\\infty > L)$ for $z \\sim N(0, I_k)$."""
    outside = float(scipy.special.erfc(bound / math.sqrt(2.0)))  # P(|z_i| > L)
    return float(-math.expm1(k * math.log1p(-outside)))


def _kl_to_prior(mean, std):
    return 0.5 * jnp.sum(mean**2 + std**2 - 1.0 - 2.0 * jnp.log(std), axis=-1)


@eqx.filter_jit
def _elbo_terms(model: AbstractVAE, x, key, num_samples: int):
    u = model.standardizer().forward(x)
    mean, std = jax.vmap(model.posterior)(u)
    eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
    z = mean + std * eps
    m, s = jax.vmap(jax.vmap(model.likelihood))(z)
    recon = jnp.mean(_normal_log_prob(u, m, s), axis=0) + model._log_det()
    return recon, _kl_to_prior(mean, std)


@eqx.filter_jit
def _iwae(model: AbstractVAE, x, key, k, chunk: int):
    # k is traced (one compilation per chunk size): a fori_loop over ceil(k / chunk) chunks
    u = model.standardizer().forward(x)
    mean, std = jax.vmap(model.posterior)(u)
    log_det_q = jnp.sum(jnp.log(std), axis=-1)

    def body(i, acc):
        eps = jax.random.normal(jax.random.fold_in(key, i), (chunk,) + mean.shape, mean.dtype)
        z = mean + std * eps
        log_q = _normal_log_prob(eps, 0.0, 1.0) - log_det_q
        m, s = jax.vmap(jax.vmap(model.likelihood))(z)
        log_w = _normal_log_prob(u, m, s) + _normal_log_prob(z, 0.0, 1.0) - log_q
        valid = i * chunk + jnp.arange(chunk) < k
        log_w = jnp.where(valid[:, None], log_w, -jnp.inf)
        return jnp.logaddexp(acc, jax.nn.logsumexp(log_w, axis=0))

    init = jnp.full(u.shape[:1], -jnp.inf, u.dtype)
    acc = jax.lax.fori_loop(0, (k + chunk - 1) // chunk, body, init)
    return acc - jnp.log(jnp.asarray(k, u.dtype)) + model._log_det()


def _grid_weights(size: int, bound: float, k: int):
    """Nodes (M, k) and log-weights (prior density times trapezoid weight) of the grid and
    of its every-other-node half (``-inf`` off it), in float64 then cast."""
    t, w_fine = trapezoid_rule(-bound, bound, size)
    _, w_half = trapezoid_rule(-bound, bound, size // 2)
    w_coarse = np.zeros_like(w_fine)
    w_coarse[::2] = w_half
    log_prior = -0.5 * t**2 - 0.5 * _LOG_2PI
    with np.errstate(divide="ignore"):
        lf = np.log(w_fine) + log_prior
        lc = np.log(w_coarse) + log_prior
    nodes, log_w = tensor_product([t] * k, [lf] * k)
    _, log_wc = tensor_product([t] * k, [lc] * k)
    return nodes, log_w, log_wc


@eqx.filter_jit
def _marginal_by_quadrature(
    model: VAE, x, size: int, bound: float, node_chunk: int, point_chunk: int
):
    """Log-marginal of the standardised points on the grid and on its half, and the log of
    the tail bound (standardised coordinates).

    Per node everything that does not depend on the point is computed once: the decoder's
    mean, ``1/std`` and ``log w - sum log std - d/2 log 2 pi``, so a (point, node) pair costs
    a scaled squared distance and one ``exp``. The half grid's sum runs over its own nodes
    (a quarter of them in 2-D) instead of a second pass over every node."""
    dtype = x.dtype
    u = model.standardizer().forward(x)
    k = model.latent_size
    nodes, log_w, log_wc = _grid_weights(size, bound, k)
    on_half = np.isfinite(log_wc)
    # the decoder once on every node, a chunk at a time
    means, stds = jax.lax.map(
        model.likelihood, jnp.asarray(nodes, dtype), batch_size=min(node_chunk, len(nodes))
    )
    inv_std = 1.0 / stds
    log_norm = -jnp.sum(jnp.log(stds), axis=-1) - 0.5 * model.data_size * _LOG_2PI
    log_c = log_norm + jnp.asarray(log_w, dtype)
    log_cc = log_norm[on_half] + jnp.asarray(log_wc[on_half], dtype)
    fine = _log_sum_over_nodes(u, means, inv_std, log_c, node_chunk, point_chunk)
    coarse = _log_sum_over_nodes(
        u, means[on_half], inv_std[on_half], log_cc, node_chunk, point_chunk
    )
    # max_z p(u | z) <= prod_i (2 pi sigma_min_i^2)^(-1/2)
    d = model.data_size
    floor = model.min_std if model.variance is Variance.PER_LATENT else model.global_std()
    log_max = -jnp.sum(jnp.log(jnp.broadcast_to(floor, (d,)))) - 0.5 * d * _LOG_2PI
    tail = jnp.log(jnp.asarray(_tail_mass(bound, k), dtype)) + log_max
    return fine, coarse, jnp.broadcast_to(tail, fine.shape)


def _log_sum_over_nodes(u, means, inv_std, log_c, node_chunk: int, point_chunk: int):
    r"""$\log \sum_j \exp(c_j - \tfrac12 \lVert (u_i - m_j) / s_j \rVert^2)$ for each row
    $u_i$: a running log-sum-exp over chunks of ``node_chunk`` nodes, ``point_chunk`` points
    at a time (memory ``node_chunk * point_chunk`` floats)."""
    m = means.shape[0]
    node_chunk = min(node_chunk, m)
    pad = -m % node_chunk
    if pad:  # padded nodes get weight zero (log_c = -inf)
        means = jnp.concatenate([means, jnp.zeros((pad, means.shape[1]), means.dtype)])
        inv_std = jnp.concatenate([inv_std, jnp.ones((pad, inv_std.shape[1]), inv_std.dtype)])
        log_c = jnp.concatenate([log_c, jnp.full((pad,), -jnp.inf, log_c.dtype)])
    chunks = (means.shape[0] // node_chunk, node_chunk)
    xs = (
        means.reshape(*chunks, -1),
        inv_std.reshape(*chunks, -1),
        log_c.reshape(chunks),
    )

    def one_point(ui):
        def body(acc, chunk):
            mj, sj, cj = chunk
            ll = cj - 0.5 * jnp.sum(((ui - mj) * sj) ** 2, axis=-1)
            return jnp.logaddexp(acc, jax.nn.logsumexp(ll)), None

        acc, _ = jax.lax.scan(body, jnp.asarray(-jnp.inf, u.dtype), xs)
        return acc

    return jax.lax.map(one_point, u, batch_size=min(point_chunk, u.shape[0]))
