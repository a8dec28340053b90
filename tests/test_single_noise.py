"""Single-noise-level score model: exact smoothed Gaussian score, Langevin moments, DSM."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowlab import SingleNoiseDSM, SingleNoiseScore, Standardize, fit
from flowlab.nn import MLPVectorField

M = jnp.array([0.5, -1.0])
S = jnp.array([1.2, 0.4])  # per-coordinate variances of the data N(M, diag(S))
SIGMA = 0.3


class ExactNoise(eqx.Module):
    """eps_hat = -sigma * score of p_sigma = N(M, S + sigma^2)."""

    data_size: int = 2

    def __call__(self, t, z):
        return SIGMA * (z - M) / (S + SIGMA**2)


def _model(network=None):
    return SingleNoiseScore(
        ExactNoise() if network is None else network, SIGMA, standardize=Standardize.identity(2)
    )


def test_langevin_with_exact_score_samples_the_smoothed_gaussian():
    x = np.asarray(
        _model().sample_langevin(
            jax.random.key(0), 20000, steps=2000, step_size=0.02, final_step_size=0.002
        )
    )
    var = np.asarray(S + SIGMA**2)
    se_mean = np.sqrt(var / len(x))
    assert np.all(np.abs(x.mean(0) - np.asarray(M)) < 4 * se_mean + 0.01)
    np.testing.assert_allclose(x.var(0), var, rtol=0.05)


def test_dsm_loss_lowest_at_exact_score():
    x = M + jnp.sqrt(S) * jax.random.normal(jax.random.key(1), (100_000, 2))
    loss, key = SingleNoiseDSM(), jax.random.key(2)
    best = float(loss(_model(), x, key))
    for scale in (0.8, 1.2):
        worse = _model(lambda t, z, s=scale: s * ExactNoise()(t, z))
        assert float(loss(worse, x, key)) > best + 1e-3


def test_training_learns_the_smoothed_score():
    x = M + jnp.sqrt(S) * jax.random.normal(jax.random.key(3), (2000, 2))
    model = _model(MLPVectorField(2, width=32, depth=2, key=jax.random.key(4)))
    model, _ = fit(
        model,
        SingleNoiseDSM(),
        x,
        x[:500],
        key=jax.random.key(5),
        steps=1500,
        batch_size=256,
        eval_every=500,
        progress=False,
    )
    pts = M + jnp.sqrt(S) * jax.random.normal(jax.random.key(6), (200, 2))
    learned = jax.vmap(model.score)(pts)
    exact = -(pts - M) / (S + SIGMA**2)
    assert float(jnp.mean(jnp.sum((learned - exact) ** 2, -1))) < 0.15 * float(
        jnp.mean(jnp.sum(exact**2, -1))
    )


def test_bad_input():
    with pytest.raises(ValueError, match="sigma > 0"):
        SingleNoiseScore(ExactNoise(), 0.0, standardize=Standardize.identity(2))
    with pytest.raises(ValueError, match="positive integer"):
        _model().sample_langevin(jax.random.key(0), 0)
