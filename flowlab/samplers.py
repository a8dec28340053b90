r"""Samplers as objects: ``sampler(model, key, n) -> (samples, stats)``.

Like Diffrax's solvers, a sampler is a small Equinox module holding its parameters (steps,
$\eta$, snr); it is passed to a model's ``sample`` / ``sample_with_stats``
(``model.sample(key, n, sampler=DDIM(steps=50))``) or called directly, and reports its
cost in the one :class:`~flowlab.Stats` type (``nfe``: network evaluations). Strings
appear only at the command-line edge (:data:`SAMPLER_NAMES` / :func:`get_sampler`).

| sampler | models | NFE |
|---|---|---|
| :class:`ODE` | any ODE flow (CNF, diffusion PF-ODE) | adaptive, counted |
| :class:`Euler` | any ODE flow (``AbstractFlow``) | ``steps`` |
| :class:`Heun` | any ODE flow (``AbstractFlow``) | ``2 * steps`` |
| :class:`FlowMap` | flow maps (``AbstractFlowMap``): ``MeanFlow``, ``Shortcut`` | ``steps`` |
| :class:`EulerMaruyama` | SDE models (``AbstractSDEModel``): ``Diffusion`` | ``steps`` |
| :class:`PredictorCorrector` | SDE models: ``Diffusion`` | ``2 * steps`` |
| :class:`Ancestral` | Gaussian-kernel diffusions: ``Diffusion``, ``DDPM`` | ``steps`` |
| :class:`DDIM` | Gaussian-kernel diffusions: ``Diffusion``, ``DDPM`` | ``steps`` |
| :class:`Langevin` | score models: ``SingleNoiseScore``, energy models | ``steps`` |
| :class:`Decoder` | latent-variable models: ``VAE`` | 1 |

Fixed-step samplers work in the model's standardised coordinates, start from its prior
and return the noise-free mean of their last step in data coordinates; their
``trajectories`` method returns every step. Each sampler asks for a protocol
(:mod:`flowlab._protocols`), never for a concrete family. :func:`langevin` is the one
Langevin-dynamics loop, shared by the :class:`Langevin` sampler and every model that needs one.
"""

from __future__ import annotations

import abc
import enum

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_key, fail_unless
from ._flow import AbstractFlow
from ._flow_map import AbstractFlowMap
from ._ode import SolverOptions, Stats
from ._protocols import (
    AbstractGaussianDiffusion,
    AbstractLatentModel,
    AbstractScoreModel,
    AbstractSDEModel,
)
from ._typing import Array, Key, Points

__all__ = [
    "DDIM",
    "ODE",
    "AncestralVariance",
    "Decoder",
    "Euler",
    "FlowMap",
    "Heun",
    "SAMPLER_NAMES",
    "AbstractSampler",
    "AbstractStepSampler",
    "Ancestral",
    "EulerMaruyama",
    "Langevin",
    "PredictorCorrector",
    "get_sampler",
    "langevin",
]


class AbstractSampler(eqx.Module):
    """Draws samples from a model: ``sampler(model, key, n) -> (samples, stats)``."""

    @abc.abstractmethod
    def __call__(self, model, key: Key, n: int) -> tuple[Points, Stats]:
        """``n`` samples (shape ``(n, d)``, data coordinates) and what they cost."""


def _require(model, cls, sampler: str, what: str) -> None:
    if not isinstance(model, cls):
        raise ValueError(f"the {sampler} sampler needs {what}, got {type(model).__name__}")


class ODE(AbstractSampler):
    """The model's ODE from its base time to its data time, solved adaptively.

    Arguments:
        options: solver options for this solve (default: the model's own).
        throw: raise on solver failure, or return NaN with ``stats.success = False``.
    """

    options: SolverOptions | None = None
    throw: bool = eqx.field(static=True, default=True)

    def __call__(self, model, key: Key, n: int) -> tuple[Points, Stats]:
        _require(model, AbstractFlow, "ODE", "an ODE flow (CNF, Diffusion)")
        if self.options is not None:
            model = eqx.tree_at(lambda m: m.options, model, self.options)
        return model.ode_sample_with_stats(key, n, throw=self.throw)


class AbstractStepSampler(AbstractSampler):
    """A fixed-step sampler: ``steps`` updates from the prior to the data."""

    steps: eqx.AbstractVar[int | None]

    def num_steps(self, model) -> int:
        """The number of steps this sampler takes on ``model`` (``steps``, or the model's
        ``default_steps`` when ``steps`` is ``None``)."""
        if self.steps is None:
            return model.default_steps
        return check_count(self.steps, "steps")

    @abc.abstractmethod
    def check(self, model) -> None:
        """Raise ``ValueError`` if this sampler cannot sample ``model``."""

    def times(self, model) -> Array:
        """The ``steps + 1`` times of the sampler, from the prior's to the data's."""
        return model.sampling_times(self.num_steps(model))

    def initial(self, model, key: Key, n: int) -> Points:
        """The starting points: draws from the model's prior (standardised)."""
        return model.prior_sample(key, n)

    @abc.abstractmethod
    def update(self, model, z: Points, t, s, key: Key) -> tuple[Points, Points]:
        """One step from time ``t`` to ``s``: ``(noise-free mean, next state)``."""

    @property
    @abc.abstractmethod
    def nfe_per_step(self) -> int:
        """Network evaluations per step."""

    def __call__(self, model, key: Key, n: int) -> tuple[Points, Stats]:
        """``n`` samples and their cost; ``stats.success`` is ``False`` when any sample is
        NaN or inf (the samples are returned as they are)."""
        n = check_count(n)
        check_key(key)
        self.check(model)
        steps = self.num_steps(model)
        x, finite = _run(self, model, key, n, False)
        return x, Stats.fixed(steps, steps * self.nfe_per_step, success=finite)

    def trajectories(self, model, key: Key, n: int) -> tuple[Array, Array]:
        """Paths of this sampler: ``(ts, xs)`` with ``xs`` of shape ``(steps + 1, n, d)``
        in data coordinates (the prior draw, then the noise-free mean of each step; the last
        equals ``sampler(model, key, n)[0]``)."""
        n = check_count(n)
        check_key(key)
        self.check(model)
        return _run(self, model, key, n, True)


@eqx.filter_jit
def _run(sampler: AbstractStepSampler, model, key, n: int, path: bool):
    k_prior, k_steps = jax.random.split(key)
    z = sampler.initial(model, k_prior, n)
    ts = sampler.times(model)

    def body(carry, inputs):
        z, _ = carry
        t, s, k = inputs
        mean, z = sampler.update(model, z, t, s, k)
        return (z, mean), (mean if path else None)

    keys = jax.random.split(k_steps, ts.shape[0] - 1)
    (_, mean), means = jax.lax.scan(body, (z, z), (ts[:-1], ts[1:], keys))
    std = model.standardizer(z.shape[-1])
    if path:
        return ts, std.inverse(jnp.concatenate([z[None], means]))
    x = std.inverse(mean)
    return x, jnp.all(jnp.isfinite(x))


def _batch(fn):
    return jax.vmap(fn, in_axes=(None, 0))


# -- fixed-step ODE solvers (any ODE flow) and jumps of a flow map ---------------------------


class _AbstractFlowStepSampler(AbstractStepSampler):
    """A fixed-step sampler of a flow's ODE or flow map: ``steps`` (checked when built)
    uniform steps from the model's ``t_base`` to its ``t_data``."""

    def __check_init__(self):
        check_count(self.steps, "steps")

    def times(self, model) -> Array:
        """``steps + 1`` evenly spaced times from ``t_base`` to ``t_data``."""
        return jnp.linspace(model.t_base, model.t_data, self.num_steps(model) + 1)


class Euler(_AbstractFlowStepSampler):
    r"""Euler's method on the ODE of any flow (:class:`~flowlab.AbstractFlow`), ``steps``
    uniform steps from ``t_base`` to ``t_data`` in standardised coordinates:
    $z \leftarrow z + h\, f(t, z)$, $h = (t_d - t_b)/\text{steps}$. First order: the
    error of the end point falls as $h$. One network evaluation per step.

    A *fixed-step* solve: its samples carry a discretisation error, and no likelihood
    computed with fixed steps is exact (``log_prob`` keeps its adaptive solve).

    Arguments:
        steps: number of steps (a positive integer).
    """

    steps: int = eqx.field(static=True, default=16)

    @property
    def nfe_per_step(self) -> int:
        return 1

    def check(self, model) -> None:
        _require(model, AbstractFlow, "Euler", "an ODE flow (an AbstractFlow: CNF, Diffusion)")

    def update(self, model, z, t, s, key):
        z = z + (s - t) * _batch(model.field)(t, z)
        return z, z


class Heun(_AbstractFlowStepSampler):
    r"""Heun's method (the explicit trapezoid rule) on the ODE of any flow, ``steps``
    uniform steps from ``t_base`` to ``t_data``: $k_1 = f(t, z)$,
    $k_2 = f(t + h, z + h k_1)$, $z \leftarrow z + \tfrac{h}{2}(k_1 + k_2)$. Second
    order: the error of the end point falls as $h^2$. Two network evaluations per step.

    Arguments:
        steps: number of steps (a positive integer); the NFE is ``2 * steps``.
    """

    steps: int = eqx.field(static=True, default=8)

    @property
    def nfe_per_step(self) -> int:
        return 2

    def check(self, model) -> None:
        _require(model, AbstractFlow, "Heun", "an ODE flow (an AbstractFlow: CNF, Diffusion)")

    def update(self, model, z, t, s, key):
        h = s - t
        k1 = _batch(model.field)(t, z)
        k2 = _batch(model.field)(s, z + h * k1)
        z = z + 0.5 * h * (k1 + k2)
        return z, z


class FlowMap(_AbstractFlowStepSampler):
    r"""Jumps of a learned flow map (:class:`~flowlab.AbstractFlowMap`: mean flows,
    shortcut models): ``steps`` uniform jumps from ``t_base`` to ``t_data``,
    $z \leftarrow z + (s - t)\, u(z, t, s)$ with $u$ the model's average velocity over
    $[t, s]$. One network evaluation per jump; ``steps=1`` is one-step generation.

    Arguments:
        steps: number of jumps (a positive integer). A shortcut model is trained on jumps
            of size $2^{-j}$: powers of two up to its ``max_steps`` are on its training
            distribution, other counts are not.
    """

    steps: int = eqx.field(static=True, default=1)

    @property
    def nfe_per_step(self) -> int:
        return 1

    def check(self, model) -> None:
        _require(
            model, AbstractFlowMap, "flow-map", "a flow map (AbstractFlowMap: MeanFlow, Shortcut)"
        )

    def update(self, model, z, t, s, key):
        u = jax.vmap(model.average_velocity, in_axes=(None, None, 0))(t, s, z)
        z = z + (s - t) * u
        return z, z


# -- reverse-SDE samplers (continuous-time diffusion) ---------------------------------------


def _check_sde_model(model, name: str) -> None:
    _require(model, AbstractSDEModel, name, "an SDE model (AbstractSDEModel, e.g. a Diffusion)")


def _diffusion_score(model, t, z):
    a, std = model.marginal(t)
    return -_batch(model.predict_noise)(t, z) / std


class EulerMaruyama(AbstractStepSampler):
    r"""Euler–Maruyama on the reverse SDE over ``steps`` uniform steps:
    $z \leftarrow z - h[f(t, z) - g(t)^2 s_\theta(t, z)] + g(t)\sqrt{h}\,\xi$."""

    steps: int = eqx.field(static=True, default=1000)

    @property
    def nfe_per_step(self) -> int:
        return 1

    def check(self, model) -> None:
        _check_sde_model(model, "Euler-Maruyama")

    def update(self, model, z, t, s, key):
        sde = model.sde
        h = t - s
        g = sde.diffusion(t)
        drift = _batch(sde.drift)(t, z)
        mean = z - h * (drift - g**2 * _diffusion_score(model, t, z))
        return mean, mean + g * jnp.sqrt(h) * jax.random.normal(key, z.shape, z.dtype)


class PredictorCorrector(AbstractStepSampler):
    r"""Predictor–corrector (Song et al. 2021, Algorithms 2–3): one Langevin corrector step
    $z \leftarrow z + \eta s_\theta + \sqrt{2\eta}\,\xi$ with
    $\eta = 2\alpha(r\,\overline{\|\xi\|}/\overline{\|s_\theta\|})^2$ (batch-mean norms,
    signal-to-noise ratio $r$ = ``snr``, $\alpha = a(t)^2/a(s)^2$: DDPM's $1-\beta_i$ for VP,
    1 for VE), then the Euler–Maruyama predictor."""

    steps: int = eqx.field(static=True, default=1000)
    snr: float = eqx.field(static=True, default=0.16)

    def __check_init__(self):
        if not self.snr > 0:
            raise ValueError(f"expected snr > 0, got {self.snr!r}")

    @property
    def nfe_per_step(self) -> int:
        return 2

    def check(self, model) -> None:
        _check_sde_model(model, "predictor-corrector")

    def update(self, model, z, t, s, key):
        k_corr, k_pred = jax.random.split(key)
        sde = model.sde
        grad = _diffusion_score(model, t, z)
        noise = jax.random.normal(k_corr, z.shape, z.dtype)
        alpha = (sde.marginal_mean_coeff(t) / sde.marginal_mean_coeff(s)) ** 2
        grad_norm = jnp.mean(jnp.linalg.norm(grad, axis=-1))
        noise_norm = jnp.mean(jnp.linalg.norm(noise, axis=-1))
        eta = 2.0 * alpha * (self.snr * noise_norm / grad_norm) ** 2
        z = z + eta * grad + jnp.sqrt(2.0 * eta) * noise
        return EulerMaruyama(self.steps).update(model, z, t, s, k_pred)


# -- Gaussian-kernel samplers (DDPM and DDIM, any Gaussian-kernel diffusion) ----------------


def _x0_and_noise(model, z, t):
    a_t, s_t = model.marginal(t)
    eps = _batch(model.predict_noise)(t, z)
    return (z - s_t * eps) / a_t, eps


class AncestralVariance(enum.StrEnum):
    """The noise variance of an :class:`Ancestral` step: ``BETA`` (the forward variance,
    Ho et al.'s $\\sigma_t^2 = \beta_t$) or ``POSTERIOR`` ($\tilde\beta$)."""

    BETA = "beta"
    POSTERIOR = "posterior"


def _ancestral_variance(value) -> AncestralVariance:
    try:
        return AncestralVariance(value)
    except ValueError:
        raise ValueError(f"expected variance 'beta' or 'posterior', got {value!r}") from None


class Ancestral(AbstractStepSampler):
    r"""Ancestral sampling (Ho et al. 2020, Algorithm 2) of any Gaussian-kernel diffusion.

    From $t$ to $s < t$ with $r = a(t)/a(s)$ and forward variance
    $v = \sigma(t)^2 - r^2\sigma(s)^2$ (DDPM's $\beta_t$; $1 - \alpha_t$ for VP), the
    posterior mean given the predicted $\hat z_0 = (z - \sigma(t)\hat\varepsilon)/a(t)$ is
    $\tilde\mu = (r\,\sigma(s)^2 z + a(s)\, v\, \hat z_0)/\sigma(t)^2$
    ($= (z - v\hat\varepsilon/\sigma(t))/r$ for VP), and the step adds noise of variance
    $v$ (``variance="beta"``, Ho et al.'s $\sigma_t^2 = \beta_t$) or the posterior variance
    $\tilde\beta = \sigma(s)^2 v/\sigma(t)^2$ (``"posterior"``, which makes this DDIM with
    $\eta = 1$). The last step returns the mean.

    Arguments:
        steps: number of steps (``None``: the model's ``default_steps``, every step of a
            DDPM's schedule or 1000 for a continuous-time model).
        variance: an :class:`AncestralVariance` or its name, ``"beta"`` or ``"posterior"``.
    """

    steps: int | None = eqx.field(static=True, default=None)
    variance: AncestralVariance = eqx.field(
        static=True, default=AncestralVariance.BETA, converter=_ancestral_variance
    )

    @property
    def nfe_per_step(self) -> int:
        return 1

    def check(self, model) -> None:
        _require(model, AbstractGaussianDiffusion, "ancestral", "a Gaussian-kernel diffusion")

    def update(self, model, z, t, s, key):
        a_t, s_t = model.marginal(t)
        a_s, s_s = model.marginal(s)
        x0, _ = _x0_and_noise(model, z, t)
        r = a_t / a_s
        v = jnp.maximum(s_t**2 - r**2 * s_s**2, 0.0)
        mean = (r * s_s**2 * z + a_s * v * x0) / s_t**2
        var = v if self.variance is AncestralVariance.BETA else s_s**2 * v / s_t**2
        return mean, mean + jnp.sqrt(var) * jax.random.normal(key, z.shape, z.dtype)


class DDIM(AbstractStepSampler):
    r"""DDIM (Song, Meng & Ermon 2021) for any Gaussian-kernel diffusion, any number of
    steps, $\eta \in [0, 1]$.

    From $t$ to $s$: $\hat z_0 = (z - \sigma_t\hat\varepsilon)/a_t$,
    $c = \eta\,\frac{\sigma_s}{\sigma_t}\sqrt{\sigma_t^2 - (a_t/a_s)^2\sigma_s^2}$ and
    $z_s = a_s \hat z_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c\,\xi$ (for VP,
    $a^2 = \bar\alpha$, $\sigma^2 = 1 - \bar\alpha$: the paper's eq. 12 and 16).
    $\eta = 0$ is deterministic, a first-order discretisation of the probability-flow ODE;
    $\eta = 1$ is ancestral sampling with the posterior variance.

    Arguments:
        steps: number of steps (a DDPM's are a subsequence of its $T$).
        eta: stochasticity $\eta \in [0, 1]$.
    """

    steps: int = eqx.field(static=True, default=50)
    eta: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"expected 0 <= eta <= 1, got eta={self.eta!r}")

    @property
    def nfe_per_step(self) -> int:
        return 1

    def check(self, model) -> None:
        _require(model, AbstractGaussianDiffusion, "DDIM", "a Gaussian-kernel diffusion")

    def update(self, model, z, t, s, key):
        a_t, s_t = model.marginal(t)
        a_s, s_s = model.marginal(s)
        x0, eps = _x0_and_noise(model, z, t)
        r = a_t / a_s
        c = self.eta * s_s / s_t * jnp.sqrt(jnp.maximum(s_t**2 - r**2 * s_s**2, 0.0))
        mean = a_s * x0 + jnp.sqrt(jnp.maximum(s_s**2 - c**2, 0.0)) * eps
        return mean, mean + c * jax.random.normal(key, z.shape, z.dtype)


# -- Langevin dynamics ------------------------------------------------------------------------


def langevin(score, key: Key, z0: Points, step_sizes: Array) -> tuple[Points, Points]:
    r"""Langevin dynamics $z \leftarrow z + \eta_k s(z) + \sqrt{2\eta_k}\,\xi_k$, one step
    per entry of ``step_sizes``.

    The one Langevin loop of flowlab (single-noise DSM, energy-based models, their replay
    buffers). Works under ``jit``.

    Arguments:
        score: batched score, ``score(z) -> (n, d)`` for ``z`` of shape ``(n, d)``.
        key: PRNG key of the noise.
        z0: starting points, shape ``(n, d)``.
        step_sizes: $\eta_k$, shape ``(K,)``.

    Returns:
        ``(mean, z)``: the noise-free mean of the last step and the last state.
    """

    def body(carry, inputs):
        z, _ = carry
        eta, k = inputs
        mean = z + eta * score(z)
        return (mean + jnp.sqrt(2.0 * eta) * jax.random.normal(k, z.shape, z.dtype), mean), None

    keys = jax.random.split(key, step_sizes.shape[0])
    (z, mean), _ = jax.lax.scan(body, (z0, z0), (step_sizes, keys))
    return mean, z


class Langevin(AbstractSampler):
    r"""Langevin dynamics (:func:`langevin`) with the model's score, from its initial
    distribution, the step size annealed geometrically from ``step_size`` to
    ``final_step_size`` (default ``step_size / 10``); returns the noise-free mean of the
    last step.

    Like :class:`ODE`, it fails loudly by default: a NaN or inf sample (an exploding or
    NaN score or energy, a step too large) raises, also under ``jit``; with
    ``throw=False`` the samples come back as they are with ``stats.success = False``.

    Arguments:
        steps: number of steps (one score evaluation each).
        step_size: the first $\eta$, in standardised units squared.
        final_step_size: the last $\eta$.
        throw: raise when any sample is non-finite, or report it in ``stats.success``.
    """

    steps: int = eqx.field(static=True, default=1000)
    step_size: float = eqx.field(static=True, default=1e-3)
    final_step_size: float | None = eqx.field(static=True, default=None)
    throw: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_count(self.steps, "steps")
        if not (self.step_size > 0 and self._last > 0):
            raise ValueError(
                f"expected positive step sizes, got {self.step_size} and {self.final_step_size}"
            )

    @property
    def _last(self) -> float:
        return self.step_size / 10 if self.final_step_size is None else self.final_step_size

    def step_sizes(self) -> Array:
        r"""The ``steps`` step sizes $\eta_k$, shape ``(steps,)``."""
        return jnp.exp(jnp.linspace(jnp.log(self.step_size), jnp.log(self._last), self.steps))

    def __call__(self, model, key: Key, n: int) -> tuple[Points, Stats]:
        """``n`` samples and their cost.

        Raises:
            ValueError: ``model`` is not a score model, ``key`` is not one PRNG key or
                ``n`` is not a positive integer.
            EquinoxRuntimeError: with ``throw=True``, when any sample is NaN or inf.
        """
        _require(model, AbstractScoreModel, "Langevin", "a score model")
        check_key(key)
        x, finite = _langevin_sample(self, model, key, check_count(n))
        if self.throw:  # on the host: the compiled program stays cacheable (see fail_unless)
            (x,) = fail_unless(finite, _LANGEVIN_FAILURE, x)
        return x, Stats.fixed(self.steps, self.steps, success=finite)


_LANGEVIN_FAILURE = (
    "Langevin sampling produced non-finite samples (NaN or inf): the model's score or "
    "energy is NaN or explodes, or the step size is too large. Check the network and its "
    "input, or lower step_size; pass Langevin(throw=False) to get the samples with "
    "stats.success=False instead."
)


@eqx.filter_jit
def _langevin_sample(sampler: Langevin, model, key, n: int):
    k0, k_steps = jax.random.split(key)
    z0 = model.initial_sample(k0, n)
    mean, _ = langevin(jax.vmap(model.score), k_steps, z0, sampler.step_sizes())
    x = model.standardizer(z0.shape[-1]).inverse(mean)
    return x, jnp.all(jnp.isfinite(x))


# -- one decoder pass (latent-variable models) ---------------------------------------------


class Decoder(AbstractSampler):
    r"""One pass of a latent-variable model's decoder: $z \sim N(0, I_k)$, then
    $u = m(z) + \sigma(z)\odot\varepsilon$ (``noise=True``: samples of the model) or the
    decoder means $u = m(z)$ (``noise=False``: not samples of the model's density), mapped
    to data coordinates. One step, one (batched) decoder evaluation.

    Arguments:
        noise: add the decoder noise.
    """

    noise: bool = eqx.field(static=True, default=True)

    def __call__(self, model, key: Key, n: int) -> tuple[Points, Stats]:
        """``n`` samples and their cost; ``stats.success`` is ``False`` when any sample is
        NaN or inf."""
        _require(model, AbstractLatentModel, "decoder", "a latent-variable model (a VAE)")
        check_key(key)
        x, finite = _decode(model, key, check_count(n), bool(self.noise))
        return x, Stats.fixed(1, 1, success=finite)


@eqx.filter_jit
def _decode(model, key, n: int, noise: bool):
    k_z, k_eps = jax.random.split(key)
    z = jax.random.normal(k_z, (n, model.latent_size))
    mean, std = jax.vmap(model.likelihood)(z)
    u = mean + std * jax.random.normal(k_eps, mean.shape, mean.dtype) if noise else mean
    x = model.standardizer().inverse(u)
    return x, jnp.all(jnp.isfinite(x))


SAMPLER_NAMES: tuple[str, ...] = (
    "ode",
    "euler",
    "heun",
    "flow_map",
    "em",
    "pc",
    "ddpm",
    "ddim",
    "langevin",
    "decoder",
)
"""Names accepted by :func:`get_sampler` (for command-line flags)."""


def get_sampler(name: str, **kwargs) -> AbstractSampler:
    """The sampler called ``name`` (one of :data:`SAMPLER_NAMES`), built with ``kwargs``."""
    classes = {
        "ode": ODE,
        "euler": Euler,
        "heun": Heun,
        "flow_map": FlowMap,
        "em": EulerMaruyama,
        "pc": PredictorCorrector,
        "ddpm": Ancestral,
        "ddim": DDIM,
        "langevin": Langevin,
        "decoder": Decoder,
    }
    if name not in classes:
        raise ValueError(f"unknown sampler {name!r}; expected one of: {', '.join(classes)}")
    return classes[name](**kwargs)
