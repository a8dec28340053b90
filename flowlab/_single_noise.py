r"""The simplest score model: one fixed noise level, sampled with Langevin dynamics.

A network $\hat\varepsilon_\theta(x)$ trained by denoising score matching at a single
$\sigma$ estimates the score of the *smoothed* data density
$p_\sigma = p_{\text{data}} * N(0, \sigma^2 I)$:
$s_\theta(x) = -\hat\varepsilon_\theta(x)/\sigma \approx \nabla \log p_\sigma(x)$
(Vincent 2011). Langevin dynamics $x \leftarrow x + \eta\, s_\theta(x) + \sqrt{2\eta}\,z$
then samples $p_\sigma$ (as $\eta \to 0$ and the number of steps grows). Small $\sigma$ gives
a sharp target but a score that is poorly learned away from the data, so mixing between
modes is slow — the problem that noise-conditional (annealed) models and the SDE family in
:mod:`flowlab.diffusion` solve. This model has no exact likelihood: score it with the
sample-based metrics of :mod:`flowlab.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_count
from ._standardize import Standardize
from ._typing import Array, Key, Point, Points

__all__ = ["SingleNoiseDSM", "SingleNoiseScore"]


class SingleNoiseScore(eqx.Module):
    r"""A score model at one noise level $\sigma$ (standardised coordinates).

    Arguments:
        network: noise predictor; called as ``network(0.0, z)`` so a
            :class:`~flowlab.nn.MLPVectorField` can be reused (its time input is constant).
        sigma: the noise level, in standardised units.
        standardize: the affine map to standardised coordinates.
    """

    network: Callable
    standardize: Standardize
    sigma: float = eqx.field(static=True)
    data_size: int = eqx.field(static=True)

    def __init__(self, network, sigma: float, *, standardize: Standardize, data_size=None):
        if not sigma > 0:
            raise ValueError(f"expected sigma > 0, got {sigma!r}")
        self.network = network
        self.sigma = float(sigma)
        self.standardize = standardize
        self.data_size = int(data_size or standardize.loc.shape[0])

    @property
    def vector_field(self) -> Callable:
        """The trained part (the name :func:`flowlab.train.trainable_filter` looks for)."""
        return self.network

    def score(self, z: Point) -> Point:
        r"""$s_\theta(z) \approx \nabla \log p_\sigma(z)$ at one standardised point."""
        return -self.network(jnp.zeros((), z.dtype), z) / self.sigma

    def sample_langevin(
        self,
        key: Key,
        n: int,
        *,
        steps: int = 1000,
        step_size: float | None = None,
        final_step_size: float | None = None,
    ) -> Points:
        r"""``n`` samples (data coordinates) from ``steps`` of Langevin dynamics started at
        $N(0, I)$ in standardised coordinates.

        The step size $\eta$ is annealed geometrically from ``step_size`` (default
        $\max(0.1\sigma^2, 10^{-3})$) to ``final_step_size`` (default
        ``step_size / 10``); the last step returns the noise-free mean.
        """
        n = check_count(n)
        steps = check_count(steps, "steps")
        eta0 = max(0.1 * self.sigma**2, 1e-3) if step_size is None else float(step_size)
        eta1 = eta0 / 10 if final_step_size is None else float(final_step_size)
        if not (eta0 > 0 and eta1 > 0):
            raise ValueError(f"expected positive step sizes, got {eta0} and {eta1}")
        return _langevin(self, key, n, steps, jnp.float32(eta0), jnp.float32(eta1))


@eqx.filter_jit
def _langevin(model: SingleNoiseScore, key, n, steps, eta0, eta1):
    k0, k_steps = jax.random.split(key)
    z = jax.random.normal(k0, (n, model.data_size))
    etas = jnp.exp(jnp.linspace(jnp.log(eta0), jnp.log(eta1), steps))
    score = jax.vmap(model.score)

    def body(carry, inputs):
        z, _ = carry
        eta, k = inputs
        mean = z + eta * score(z)
        return (mean + jnp.sqrt(2 * eta) * jax.random.normal(k, z.shape), mean), None

    (_, mean), _ = jax.lax.scan(body, (z, z), (etas, jax.random.split(k_steps, steps)))
    return model.standardize.inverse(mean)


class SingleNoiseDSM(eqx.Module):
    r"""Denoising score matching at the model's single $\sigma$, in residual form:
    $\sigma^2\|s_\theta(x + \sigma\varepsilon) + \varepsilon/\sigma\|^2 =
    \|\hat\varepsilon_\theta(x + \sigma\varepsilon) - \varepsilon\|^2$, averaged over the
    batch and ``k`` noise draws per point."""

    k: int = eqx.field(static=True, default=1)
    holdout_repeats: int = eqx.field(static=True, default=8)

    def __call__(self, model: SingleNoiseScore, x: Points, key: Key) -> Array:
        z = jnp.repeat(model.standardize.forward(x), self.k, axis=0)
        noise = jax.random.normal(key, z.shape, z.dtype)
        pred = jax.vmap(lambda zi: model.network(jnp.zeros((), zi.dtype), zi))(
            z + model.sigma * noise
        )
        return jnp.mean(jnp.sum((pred - noise) ** 2, axis=-1))
