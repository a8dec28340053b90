"""Samplers with exact scores: DDIM, ancestral and the PF-ODE on the course Gaussian mixture,
whose noisy marginals are Gaussian mixtures in closed form at every noise level."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowlab import DDPM, Diffusion, Standardize, datasets
from flowlab.metrics import energy_distance
from flowlab.samplers import DDIM, Ancestral, Langevin, langevin
from flowlab.sde import VPSDE

N = 2000


class ExactMixtureNoise(eqx.Module):
    """E[eps | z_t] for standardised data from an isotropic Gaussian mixture: under the
    kernel z_t = a z_0 + sigma eps the marginal is a mixture of N(a mu_k, (a^2 s^2 +
    sigma^2) I), and eps_hat = -sigma * score. ``marginal`` is the model's own (a, sigma)."""

    marginal: callable
    means: jax.Array
    std: float
    log_weights: jax.Array
    data_size: int = 2

    def __call__(self, t, z):
        a, s = self.marginal(t)
        var = a**2 * self.std**2 + s**2
        diff = z - a * self.means
        resp = jax.nn.softmax(self.log_weights - 0.5 * jnp.sum(diff**2, -1) / var)
        return s * jnp.sum(resp[:, None] * diff, axis=0) / var


def _mixture():
    means, std, weights = datasets.gaussian_mixture_params("gaussian_mixture")
    mix_mean = weights @ means
    scale = float(np.sqrt(np.mean(np.var(means, axis=0) + std**2)))
    standardize = Standardize(jnp.asarray(mix_mean, jnp.float32), jnp.full(2, scale, jnp.float32))
    args = (
        jnp.asarray((means - mix_mean) / scale, jnp.float32),
        std / scale,
        jnp.log(jnp.asarray(weights, jnp.float32)),
    )
    return standardize, args


def _vp_model():
    standardize, args = _mixture()
    sde = VPSDE()
    net = ExactMixtureNoise(lambda t: (sde.marginal_mean_coeff(t), sde.marginal_std(t)), *args)
    return Diffusion(net, sde, standardize=standardize)


def _ddpm_model(num_steps=1000):
    standardize, args = _mixture()
    shell = DDPM(lambda t, z: z, num_steps, data_size=2)
    net = ExactMixtureNoise(shell.marginal, *args)
    return DDPM(net, num_steps, standardize=standardize)


def _true(seed, n=N):
    return np.asarray(datasets.sample("gaussian_mixture", jax.random.key(seed), n))


def _noise_floor():
    """The energy distance between independent true sample sets of size N (largest of 3)."""
    return max(abs(energy_distance(_true(100 + i), _true(200 + i))) for i in range(3))


@pytest.fixture(scope="module")
def floor():
    return _noise_floor()


@pytest.mark.parametrize("steps", [50, 1000])
def test_ddim_eta0_with_the_exact_score_reaches_the_mixture(steps, floor):
    x, stats = _vp_model().sample_with_stats(jax.random.key(0), N, sampler=DDIM(steps=steps))
    assert int(stats.nfe) == steps
    assert energy_distance(np.asarray(x), _true(1)) < 3 * floor


def test_ddim_eta0_converges_to_the_pf_ode_sample_of_the_same_draw():
    model = _vp_model()
    key = jax.random.key(3)
    k_prior, _ = jax.random.split(key)  # DDIM draws its prior from the first half of the key
    z1 = model.prior_sample(k_prior, 500)
    _, paths = model.trajectories(z0=z1, ts=jnp.asarray([model.t_base, model.t_data]))
    ode = np.asarray(paths[-1])
    errors = []
    for steps in (25, 100, 400):
        ddim = np.asarray(model.sample(key, 500, sampler=DDIM(steps=steps)))
        errors.append(float(np.sqrt(np.mean(np.sum((ddim - ode) ** 2, -1)))))
    # first order in the step: the error shrinks by about 4x per 4x more steps
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[1] / errors[2] > 2.5, errors
    assert errors[2] < 0.02, errors


def test_ddim_eta1_matches_ancestral_in_distribution(floor):
    model = _vp_model()
    ddim = np.asarray(model.sample(jax.random.key(5), N, sampler=DDIM(steps=200, eta=1.0)))
    anc = np.asarray(model.sample(jax.random.key(6), N, sampler=Ancestral(steps=200)))
    assert energy_distance(ddim, anc) < 3 * floor
    assert energy_distance(anc, _true(7)) < 3 * floor
    # the posterior-variance ancestral step is DDIM with eta = 1, draw for draw
    same = model.sample(jax.random.key(5), 64, sampler=Ancestral(200, variance="posterior"))
    np.testing.assert_allclose(
        same, model.sample(jax.random.key(5), 64, sampler=DDIM(200, eta=1.0)), atol=1e-4
    )


@pytest.mark.parametrize("sampler", [Ancestral(), DDIM(steps=100), DDIM(steps=100, eta=1.0)])
def test_discrete_ddpm_samplers_with_the_exact_noise_reach_the_mixture(sampler, floor):
    model = _ddpm_model()
    x, stats = model.sample_with_stats(jax.random.key(8), N, sampler=sampler)
    assert int(stats.nfe) == (1000 if isinstance(sampler, Ancestral) else 100)
    assert energy_distance(np.asarray(x), _true(9)) < 3 * floor


def test_ddpm_schedule_is_ho_et_al():
    model = _ddpm_model()
    betas = model.betas()
    np.testing.assert_allclose([betas[0], betas[-1]], [1e-4, 0.02], rtol=1e-12)
    ab = model.alpha_bars()
    assert ab[0] == 1.0 and 3e-5 < ab[-1] < 5e-5
    a, s = model.marginal(0.5)
    np.testing.assert_allclose([float(a) ** 2, float(s) ** 2], [ab[500], 1 - ab[500]], rtol=1e-5)
    ts = np.asarray(model.sampling_times(10))
    np.testing.assert_allclose(ts, np.linspace(1, 0, 11), atol=1e-7)
    with pytest.raises(ValueError, match="at most 1000 steps, got steps=1001"):
        model.sampling_times(1001)


def test_langevin_function_samples_a_gaussian():
    # the one Langevin loop with the exact score of N(m, diag(v)): moments within 4 SE
    m, v = jnp.asarray([1.0, -0.5]), jnp.asarray([0.5, 2.0])
    z0 = jax.random.normal(jax.random.key(0), (20_000, 2))
    steps = Langevin(steps=2000, step_size=0.02, final_step_size=0.002).step_sizes()
    mean, _ = langevin(lambda z: -(z - m) / v, jax.random.key(1), z0, steps)
    x = np.asarray(mean)
    se = np.sqrt(np.asarray(v) / x.shape[0])
    np.testing.assert_array_less(np.abs(x.mean(0) - np.asarray(m)), 4 * se)
    # small-step bias of the variance: eta * v / 2 relative at most
    np.testing.assert_allclose(x.var(0), np.asarray(v), rtol=0.05)


def test_samplers_refuse_models_they_cannot_sample():
    from flowlab import CNF

    cnf = CNF(lambda t, z: -z, data_size=2)
    with pytest.raises(ValueError, match="DDIM sampler needs a Gaussian-kernel diffusion, got CNF"):
        cnf.sample(jax.random.key(0), 3, sampler=DDIM())
    with pytest.raises(ValueError, match="expected 0 <= eta <= 1"):
        DDIM(eta=1.5)
    with pytest.raises(ValueError, match="Euler-Maruyama sampler needs an SDE model"):
        from flowlab.samplers import EulerMaruyama

        _ddpm_model(100).sample(jax.random.key(0), 3, sampler=EulerMaruyama(5))
