r"""Score-based diffusion models: a noise-prediction network, an SDE and its samplers.

A network $\hat\varepsilon_\theta(t, x)$ predicts the noise in
$x_t = a(t) x_0 + \sigma(t)\varepsilon$ (see :mod:`flowlab.sde`); the score is
$$s_\theta(t, x) = -\hat\varepsilon_\theta(t, x)/\sigma(t) \approx \nabla_x \log p_t(x).$$
The reverse-time SDE $dx = [f - g^2 s_\theta]\,dt + g\,d\bar w$ and the probability-flow ODE
$$\frac{dx}{dt} = f(t, x) - \tfrac12 g(t)^2 s_\theta(t, x)$$
share the marginals $p_t$ (Song et al. 2021). The probability flow is just another vector
field (:class:`ProbabilityFlow`), so the exact likelihood and the ODE sampler are the same
:func:`~flowlab.augmented_solve` and :func:`~flowlab.flow_solve` that a CNF uses.

Samplers are objects (:mod:`flowlab.samplers`): the PF-ODE (default), Euler–Maruyama,
predictor–corrector, ancestral and DDIM; DSM lives in :mod:`flowlab.objectives`.

The model works in standardised coordinates (:class:`~flowlab.Standardize`) and reports
samples and densities in data coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count
from ._flow import AbstractFlow
from ._ode import SolverOptions
from ._protocols import AbstractSDEModel
from ._standardize import Standardize, resolve_data_size
from ._typing import Array, Key, Point, Points, Time, Values
from .samplers import AbstractStepSampler, EulerMaruyama
from .sde import VPSDE, AbstractSDE

__all__ = ["Diffusion", "ProbabilityFlow"]

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


class Diffusion(AbstractFlow, AbstractSDEModel):
    r"""A score-based diffusion model with exact probability-flow likelihoods.

    An ODE flow whose field is the probability flow, with ``t_base = 1`` (the SDE's prior)
    and ``t_data = eps``:
    $$\log p(x) = \log p_1(z_1) + \int_\epsilon^1 \nabla\cdot \tilde f(t, z_t)\,dt
      - \sum_i \log s_i, \qquad z_\epsilon = (x - \mu)/s,$$
    integrated adaptively (Dopri5, PID, ``rtol = atol = 1e-5`` by default) with the exact
    Jacobian trace. ``sample`` solves the same ODE; pass ``sampler=`` (e.g.
    :class:`~flowlab.samplers.EulerMaruyama`, :class:`~flowlab.samplers.DDIM`) for the
    others. Trained: ``network`` (never the SDE or the standardisation).

    Arguments:
        network: noise predictor $\hat\varepsilon_\theta(t, z)$ on one example of shape
            ``(d,)`` (e.g. :class:`~flowlab.nn.MLPVectorField`).
        sde: the forward SDE (default :class:`~flowlab.sde.VPSDE`).
        data_size: ``d``; read from ``network.data_size`` or ``standardize`` when omitted.
        standardize: the affine map to standardised coordinates (identity by default).
        **solver_options: fields of :class:`~flowlab.SolverOptions`.
    """

    network: Callable
    sde: AbstractSDE
    standardize: Standardize | None
    options: SolverOptions
    data_size: int | None = eqx.field(static=True)
    trainable_fields: ClassVar[tuple[str, ...]] = ("network",)

    def __init__(
        self,
        network: Callable[[Time, Point], Point],
        sde: AbstractSDE | None = None,
        *,
        data_size: int | None = None,
        standardize: Standardize | None = None,
        **solver_options,
    ):
        sde = VPSDE() if sde is None else sde
        if not isinstance(sde, AbstractSDE):
            raise ValueError(f"expected sde to be an AbstractSDE, got {type(sde).__name__}")
        self.network = network
        self.sde = sde
        self.data_size, self.standardize = resolve_data_size(network, data_size, standardize)
        self.options = SolverOptions(**solver_options)

    # -- the ODE flow ----------------------------------------------------------------------

    @property
    def probability_flow(self) -> ProbabilityFlow:
        """The probability-flow ODE field as a module (the same as :meth:`field`)."""
        return ProbabilityFlow(self.network, self.sde)

    def field(self, t: Time, z: Point) -> Point:
        return self.probability_flow(t, z)

    @property
    def t_base(self) -> float:
        return 1.0

    @property
    def t_data(self) -> float:
        return self.sde.eps

    def prior_sample(self, key: Key, n: int) -> Points:
        return self.sde.prior_sample(key, (n, self.require_data_size()))

    def prior_log_prob(self, z: Points) -> Values:
        return self.sde.prior_log_prob(z)

    # -- the Gaussian kernel (DSM, ancestral, DDIM) ------------------------------------------

    def score(self, t: Time, z: Point) -> Point:
        r"""$s_\theta(t, z) \approx \nabla_z \log p_t(z)$ at one standardised point."""
        return self.probability_flow.score(t, z)

    def predict_noise(self, t: Time, z: Point) -> Point:
        return self.network(t, z)

    def marginal(self, t: Time) -> tuple[Array, Array]:
        return self.sde.marginal_mean_coeff(t), self.sde.marginal_std(t)

    def sampling_times(self, steps: int) -> Array:
        return jnp.linspace(1.0, self.sde.eps, check_count(steps, "steps") + 1)

    @property
    def default_steps(self) -> int:
        return DEFAULT_STEPS

    def training_times(self, key: Key, n: int) -> Array:
        return jax.random.uniform(key, (n,), minval=self.sde.eps, maxval=1.0)

    def sde_trajectories(self, key: Key, n: int, *, sampler=None) -> tuple[Array, Array]:
        r"""Paths of a fixed-step sampler from the prior ($t = 1$) to the data
        ($t = \epsilon$): ``(ts, xs)`` with ``xs`` of shape ``(steps + 1, n, d)`` (the prior
        draw, then the noise-free mean of each step; the last state equals
        ``sample(key, n, sampler=sampler)``). Default: Euler–Maruyama with 500 steps."""
        sampler = EulerMaruyama(steps=500) if sampler is None else sampler
        if not isinstance(sampler, AbstractStepSampler):
            raise ValueError(
                f"expected a fixed-step sampler (EulerMaruyama, PredictorCorrector, "
                f"Ancestral, DDIM), got {type(sampler).__name__}; for the probability-flow "
                "ODE use trajectories()"
            )
        return sampler.trajectories(self, key, n)
