r"""Score-based diffusion models: a noise-prediction network, an SDE and its samplers.

A network $\hat\varepsilon_\theta(t, x)$ predicts the noise in
$x_t = a(t) x_0 + \sigma(t)\varepsilon$ (see :mod:`flowlab.sde`); the score is
$$s_\theta(t, x) = -\hat\varepsilon_\theta(t, x)/\sigma(t) \approx \nabla_x \log p_t(x).$$
The reverse-time SDE $dx = [f - g^2 s_\theta]\,dt + g\,d\bar w$ and the probability-flow ODE
$$\frac{dx}{dt} = f(t, x) - \tfrac12 g(t)^2 s_\theta(t, x)$$
share the marginals $p_t$ (Song et al. 2021). The probability flow is just another vector
field (:class:`ProbabilityFlow`), so the exact likelihood and the ODE sampler are the same
:func:`~flowlab.augmented_solve` and :func:`~flowlab.flow_solve` that a CNF uses.

The model works in standardised coordinates (:class:`~flowlab.Standardize`) and reports
samples and densities in data coordinates.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count, check_points
from ._ode import ODEStats, SolverOptions, augmented_solve, flow_solve
from ._standardize import Standardize
from ._typing import Array, Key, Point, Points, Time, Values
from .sde import VPSDE, AbstractSDE

__all__ = [
    "SAMPLERS",
    "DenoisingScoreMatching",
    "Diffusion",
    "ProbabilityFlow",
    "WEIGHTINGS",
]

SAMPLERS = ("ode", "em", "pc", "ddpm")
"""Sampler names of :meth:`Diffusion.sample`."""
WEIGHTINGS = ("std2", "likelihood")
"""Time weightings of :class:`DenoisingScoreMatching`."""
DEFAULT_STEPS = 1000


class ProbabilityFlow(eqx.Module):
    r"""The probability-flow ODE field $f(t, x) - \tfrac12 g(t)^2 s_\theta(t, x)$ on one
    example (standardised coordinates), with $s_\theta = -\hat\varepsilon_\theta/\sigma(t)$.

    Arguments:
        network: the noise predictor $\hat\varepsilon_\theta(t, x)$ on one example.
        sde: the forward SDE.
    """

    network: Callable
    sde: AbstractSDE

    def score(self, t: Time, x: Point) -> Point:
        r"""$s_\theta(t, x) = -\hat\varepsilon_\theta(t, x)/\sigma(t)$."""
        return -self.network(t, x) / self.sde.marginal_std(t)

    def __call__(self, t: Time, x: Point) -> Point:
        g = self.sde.diffusion(t)
        return self.sde.drift(t, x) - 0.5 * g**2 * self.score(t, x)


class Diffusion(eqx.Module):
    r"""A score-based diffusion model with exact probability-flow likelihoods.

    The density of the model is that of the probability-flow ODE at $t = \epsilon$ started
    from the SDE's prior at $t = 1$:
    $$\log p(x) = \log p_1(z_1) + \int_\epsilon^1 \nabla\cdot \tilde f(t, z_t)\,dt
      - \sum_i \log s_i, \qquad z_\epsilon = (x - \mu)/s,$$
    with $\tilde f$ the probability-flow field, integrated adaptively (Tsit5, PID,
    ``rtol = atol = 1e-5`` by default) with the exact Jacobian trace.

    Arguments:
        network: noise predictor $\hat\varepsilon_\theta(t, z)$ on one example of shape
            ``(d,)`` (e.g. :class:`~flowlab.nn.MLPVectorField`); the only trained part.
        sde: the forward SDE (default :class:`~flowlab.sde.VPSDE`).
        data_size: ``d``; read from ``network.data_size`` or ``standardize`` when omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        **solver_options: passed to :class:`~flowlab.SolverOptions`.

    ``vector_field`` is an alias of ``network`` (the name
    :func:`~flowlab.train.trainable_filter` looks for), so :func:`~flowlab.train.fit` trains
    the network and never the standardisation or the SDE.
    """

    network: Callable
    sde: AbstractSDE
    standardize: Standardize
    options: SolverOptions
    data_size: int = eqx.field(static=True)

    def __init__(
        self,
        network: Callable[[Time, Point], Point],
        sde: AbstractSDE | None = None,
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        **solver_options,
    ):
        if data_size is None:
            data_size = getattr(network, "data_size", None)
        if data_size is None and standardize is not None:
            data_size = standardize.loc.shape[0]
        if data_size is None:
            raise ValueError(
                "cannot infer the data dimension: pass data_size=d (the network has no "
                "`data_size` attribute and no `standardize` was given)"
            )
        sde = VPSDE() if sde is None else sde
        if not isinstance(sde, AbstractSDE):
            raise ValueError(f"expected sde to be an AbstractSDE, got {type(sde).__name__}")
        self.network = network
        self.sde = sde
        self.data_size = int(data_size)
        self.standardize = (
            Standardize.identity(self.data_size) if standardize is None else standardize
        )
        if self.standardize.loc.shape != (self.data_size,):
            raise ValueError(
                f"standardize acts on shape {self.standardize.loc.shape}, expected "
                f"({self.data_size},)"
            )
        self.options = SolverOptions(**solver_options)

    @property
    def vector_field(self) -> Callable:
        """The network, under the name :func:`flowlab.train.trainable_filter` looks for, so
        that training updates it and never the standardisation."""
        return self.network

    @property
    def probability_flow(self) -> ProbabilityFlow:
        """The probability-flow ODE field, ready for ``augmented_solve``/``flow_solve``."""
        return ProbabilityFlow(self.network, self.sde)

    def score(self, t: Time, x: Point) -> Point:
        r"""$s_\theta(t, z) \approx \nabla_z \log p_t(z)$ at one standardised point."""
        return self.probability_flow.score(t, x)

    def with_options(self, **solver_options) -> Diffusion:
        """The same model with other solver options (e.g. looser tolerances)."""
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

    def log_prob_with_stats(self, x: Points, *, throw: bool = True) -> tuple[Values, ODEStats]:
        """Exact probability-flow log-density (nats, data coordinates) of each row of ``x``
        (shape ``(n, d)``) and the solver's statistics."""
        x = check_points(x, self.data_size)
        return _log_prob(self, x, throw)

    def log_prob(self, x: Points, *, throw: bool = True) -> Values:
        """Exact probability-flow log-density of each row of ``x``; shape ``(n,)``."""
        return self.log_prob_with_stats(x, throw=throw)[0]

    # -- sampling ---------------------------------------------------------------------------

    def sample_with_stats(
        self,
        key: Key,
        n: int,
        *,
        sampler: str = "ode",
        steps: int = DEFAULT_STEPS,
        snr: float = 0.16,
        throw: bool = True,
    ) -> tuple[Points, dict]:
        r"""``n`` samples (shape ``(n, d)``, data coordinates) and how they were made.

        Samplers (all start from the prior at $t=1$ and end at $t=\epsilon$; the
        stochastic ones take ``steps`` uniform steps and return the noise-free mean of the
        last step):

        * ``"ode"``: the probability-flow ODE, adaptive Diffrax solve (``self.options``).
        * ``"em"``: Euler–Maruyama on the reverse SDE,
          $x \leftarrow x - h[f - g^2 s_\theta] + g\sqrt{h}\,z$.
        * ``"pc"``: predictor–corrector (Song et al. Algorithms 2–3): one Langevin
          corrector step $x \leftarrow x + \eta s_\theta + \sqrt{2\eta}\,z$ with
          $\eta = 2\alpha(r\,\overline{\|z\|}/\overline{\|s_\theta\|})^2$ (batch-mean norms,
          signal-to-noise ratio $r$ = ``snr``, $\alpha = a(t)^2/a(t-h)^2$, which is
          DDPM's $1-\beta_i$ for VP and 1 for VE), then the reverse-diffusion predictor.
        * ``"ddpm"``: ancestral sampling of the VP SDE (Ho et al. 2020), with
          $1 - \beta_i = a(t_i)^2/a(t_{i+1})^2$ matching the continuous marginals; VP only.

        Arguments:
            key: PRNG key (prior draw and all sampler noise).
            n: number of samples.
            sampler: one of :data:`SAMPLERS`.
            steps: steps of the stochastic samplers (ignored by ``"ode"``).
            snr: signal-to-noise ratio of the ``"pc"`` corrector.
            throw: for ``"ode"``: raise on solver failure, or return NaN.

        Returns:
            ``(samples, info)`` with ``info`` holding ``sampler``, ``steps`` and ``nfe``
            (network evaluations; for ``"ode"`` also the solver statistics).
        """
        n = check_count(n)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of: {', '.join(SAMPLERS)}")
        if sampler == "ode":
            z1 = self.sde.prior_sample(key, (n, self.data_size))
            x, stats = _sample_ode(self, z1, throw)
            return x, {"sampler": sampler, **stats.as_dict()}
        steps = check_count(steps, "steps")
        if sampler == "ddpm" and not isinstance(self.sde, VPSDE):
            raise ValueError(
                f"the ddpm sampler needs a VPSDE, got {type(self.sde).__name__}; "
                "use 'em', 'pc' or 'ode'"
            )
        if not snr > 0:
            raise ValueError(f"expected snr > 0, got {snr!r}")
        x = _sample_sde(self, key, n, steps, sampler, jnp.asarray(snr, jnp.float32))
        nfe = 2 * steps if sampler == "pc" else steps
        return x, {"sampler": sampler, "steps": steps, "nfe": nfe}

    def sample(
        self,
        key: Key,
        n: int,
        *,
        sampler: str = "ode",
        steps: int = DEFAULT_STEPS,
        snr: float = 0.16,
        throw: bool = True,
    ) -> Points:
        """``n`` samples, shape ``(n, d)``, data coordinates; see :meth:`sample_with_stats`."""
        return self.sample_with_stats(key, n, sampler=sampler, steps=steps, snr=snr, throw=throw)[0]

    def sample_and_log_prob(self, key: Key, n: int, *, throw: bool = True) -> tuple[Points, Values]:
        r"""``n`` probability-flow samples and their exact log-densities from one augmented
        solve from $t=1$ to $\epsilon$:
        $\log p(x) = \log p_1(z_1) - \int_1^\epsilon \nabla\cdot\tilde f\,dt - \sum_i \log s_i$.
        The samples equal ``sample(key, n, sampler="ode")`` up to the solver's tolerance.
        """
        n = check_count(n)
        z1 = self.sde.prior_sample(key, (n, self.data_size))
        return _sample_and_log_prob(self, z1, throw)

    def trajectories(
        self,
        key: Key,
        n: int,
        *,
        ts: Array | None = None,
        num_times: int = 50,
        throw: bool = True,
    ) -> tuple[Array, Array]:
        r"""Probability-flow paths from the prior ($t = 1$) to the data ($t = \epsilon$).

        The prior draws are those of ``sample(key, n, sampler="ode")``, so the end points
        equal those samples.

        Arguments:
            ts: decreasing times in $[\epsilon, 1]$; default ``num_times`` evenly spaced.

        Returns:
            ``(ts, xs)``: times ``(T,)`` and states in data coordinates ``(T, n, d)``.
        """
        n = check_count(n)
        if ts is None:
            ts = jnp.linspace(1.0, self.sde.eps, num_times)
        ts = jnp.asarray(ts, dtype=jnp.float32)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"expected ts of shape (T,), got {ts.shape}")
        z1 = self.sde.prior_sample(key, (n, self.data_size))
        return ts, _trajectories(self, z1, ts, throw)

    def sde_trajectories(
        self,
        key: Key,
        n: int,
        *,
        sampler: str = "em",
        steps: int = 500,
        snr: float = 0.16,
    ) -> tuple[Array, Array]:
        r"""Paths of a stochastic sampler from the prior ($t = 1$) to the data ($t = \epsilon$).

        Returns ``(ts, xs)``: the ``steps + 1`` times and the states in data coordinates,
        shape ``(steps + 1, n, d)`` (the prior draw, then the noise-free mean of each step;
        the last state equals ``sample(key, n, sampler=sampler, steps=steps)``).
        """
        n = check_count(n)
        steps = check_count(steps, "steps")
        if sampler not in SAMPLERS or sampler == "ode":
            raise ValueError(
                f"expected a stochastic sampler ({', '.join(s for s in SAMPLERS if s != 'ode')})"
                f", got {sampler!r}; for the probability-flow ODE use trajectories()"
            )
        if sampler == "ddpm" and not isinstance(self.sde, VPSDE):
            raise ValueError(f"the ddpm sampler needs a VPSDE, got {type(self.sde).__name__}")
        return _sde_trajectories(self, key, n, steps, sampler, jnp.asarray(snr, jnp.float32))


def _sde_trajectories(model, key, n, steps, sampler, snr):
    return _sample_sde(model, key, n, steps, sampler, snr, path=True)


@eqx.filter_jit
def _log_prob(model: Diffusion, x, throw):
    z = model.standardize.forward(x)
    z1, delta, stats = augmented_solve(
        model.probability_flow, z, model.sde.eps, 1.0, model.options, throw=throw
    )
    return model.sde.prior_log_prob(z1) + delta + model.standardize.log_det(), stats


@eqx.filter_jit
def _sample_ode(model: Diffusion, z1, throw):
    z, stats = flow_solve(
        model.probability_flow, z1, 1.0, model.sde.eps, model.options, throw=throw
    )
    return model.standardize.inverse(z), stats


@eqx.filter_jit
def _sample_and_log_prob(model: Diffusion, z1, throw):
    z, delta, _ = augmented_solve(
        model.probability_flow, z1, 1.0, model.sde.eps, model.options, throw=throw
    )
    logp = model.sde.prior_log_prob(z1) - delta + model.standardize.log_det()
    return model.standardize.inverse(z), logp


@eqx.filter_jit
def _trajectories(model: Diffusion, z1, ts, throw):
    zs, _ = flow_solve(model.probability_flow, z1, ts[0], ts[-1], model.options, ts=ts, throw=throw)
    return model.standardize.inverse(zs)


@eqx.filter_jit
def _sample_sde(model: Diffusion, key, n: int, steps: int, sampler: str, snr, path=False):
    sde = model.sde
    pf = model.probability_flow
    d = model.data_size
    k_prior, k_steps = jax.random.split(key)
    z = sde.prior_sample(k_prior, (n, d))
    ts = jnp.linspace(1.0, sde.eps, steps + 1)
    batch_score = jax.vmap(pf.score, in_axes=(None, 0))
    batch_drift = jax.vmap(sde.drift, in_axes=(None, 0))

    def reverse_diffusion(z, t, h, noise):
        # Reverse-SDE Euler-Maruyama step from t to t - h (= Song's reverse-diffusion
        # predictor with the Euler discretisation f h, g sqrt(h)).
        g = sde.diffusion(t)
        mean = z - h * (batch_drift(t, z) - g**2 * batch_score(t, z))
        return mean, mean + g * jnp.sqrt(h) * noise

    def ancestral(z, t, h, noise):
        alpha = (sde.marginal_mean_coeff(t) / sde.marginal_mean_coeff(t - h)) ** 2
        beta = 1.0 - alpha
        mean = (z + beta * batch_score(t, z)) / jnp.sqrt(alpha)
        return mean, mean + jnp.sqrt(beta) * noise

    def langevin(z, t, h, noise):
        grad = batch_score(t, z)
        alpha = (sde.marginal_mean_coeff(t) / sde.marginal_mean_coeff(t - h)) ** 2
        grad_norm = jnp.mean(jnp.linalg.norm(grad, axis=-1))
        noise_norm = jnp.mean(jnp.linalg.norm(noise, axis=-1))
        step = 2.0 * alpha * (snr * noise_norm / grad_norm) ** 2
        return z + step * grad + jnp.sqrt(2.0 * step) * noise

    def body(carry, inputs):
        z, _ = carry
        t, t_next, k = inputs
        h = t - t_next
        k_pred, k_corr = jax.random.split(k)
        noise = jax.random.normal(k_pred, z.shape, z.dtype)
        if sampler == "pc":
            z = langevin(z, t, h, jax.random.normal(k_corr, z.shape, z.dtype))
        if sampler == "ddpm":
            mean, z = ancestral(z, t, h, noise)
        else:
            mean, z = reverse_diffusion(z, t, h, noise)
        return (z, mean), (mean if path else None)

    keys = jax.random.split(k_steps, steps)
    z_prior = z
    (_, mean), means = jax.lax.scan(body, (z, z), (ts[:-1], ts[1:], keys))
    if path:
        # the noise-free mean of every step, after the prior draw: (steps + 1, n, d)
        return ts, model.standardize.inverse(jnp.concatenate([z_prior[None], means]))
    return model.standardize.inverse(mean)


class DenoisingScoreMatching(eqx.Module):
    r"""Denoising score matching (Vincent 2011; Song et al. 2021) for a :class:`Diffusion`.

    For a data point $x_0$ (standardised), $t \sim U(\epsilon, 1)$ and
    $x_t = a(t) x_0 + \sigma(t)\varepsilon$, the conditional score is
    $\nabla \log p(x_t \mid x_0) = -\varepsilon/\sigma(t)$, so with the weighting
    $\lambda(t) = \sigma(t)^2$ (``"std2"``)
    $$\lambda(t)\,\big\|s_\theta(t, x_t) - \nabla\log p(x_t\mid x_0)\big\|^2
      = \big\|\sigma(t) s_\theta(t, x_t) + \varepsilon\big\|^2
      = \big\|\hat\varepsilon_\theta(t, x_t) - \varepsilon\big\|^2,$$
    a residual of order one at every $t$ (well conditioned, DDPM's "simple" loss).
    ``"likelihood"`` uses $\lambda(t) = g(t)^2$ (Song et al. 2021b), which makes the loss
    a bound on the NLL but has high variance near $t = \epsilon$.

    The loss is summed over coordinates and averaged over the batch and ``k`` independent
    $(t, \varepsilon)$ draws per data point (an average, so the gradient's scale does not
    depend on ``k``).

    Arguments:
        k: noise draws per data point.
        weighting: ``"std2"`` or ``"likelihood"``.
        holdout_repeats: noise draws per hold-out point when :func:`~flowlab.train.fit`
            evaluates the hold-out loss (with a fixed key), to reduce its variance.
    """

    k: int = eqx.field(static=True, default=1)
    weighting: str = eqx.field(static=True, default="std2")
    holdout_repeats: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"expected k to be a positive integer, got {self.k!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"unknown weighting {self.weighting!r}; expected one of: {', '.join(WEIGHTINGS)}"
            )

    def __call__(self, model: Diffusion, x: Points, key: Key) -> Array:
        sde = model.sde
        z0 = jnp.repeat(model.standardize.forward(x), self.k, axis=0)
        k_t, k_noise = jax.random.split(key)
        t = jax.random.uniform(k_t, z0.shape[:1], z0.dtype, minval=sde.eps, maxval=1.0)
        noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
        a = jax.vmap(sde.marginal_mean_coeff)(t)[:, None]
        std = jax.vmap(sde.marginal_std)(t)
        zt = a * z0 + std[:, None] * noise
        pred = jax.vmap(model.network)(t, zt)
        residual = jnp.sum((pred - noise) ** 2, axis=-1)
        if self.weighting == "likelihood":
            residual = residual * jax.vmap(sde.diffusion)(t) ** 2 / std**2
        return jnp.mean(residual)
