"""Diffusion models against closed forms: SDE marginals, exact Gaussian and mixture scores."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
from helpers import gaussian_logpdf

from flowlab import Standardize, datasets, fit
from flowlab.diffusion import Diffusion
from flowlab.nn import MLPVectorField
from flowlab.objectives import DenoisingScoreMatching
from flowlab.optim import default_optimizer
from flowlab.samplers import (
    ODE,
    EulerMaruyama,
    PredictorCorrector,
    get_sampler,
)
from flowlab.sde import SDES, VESDE, VPSDE, AbstractSDE, SubVPSDE, get_sde

SDE_NAMES = list(SDES)
TIMES = [1e-3, 0.05, 0.2, 0.5, 0.8, 1.0]
MEAN = np.array([0.5, -0.3])
COV = np.array([[1.0, 0.4], [0.4, 0.6]])
# Data coordinates = LOC + SCALE * standardised coordinates (exercises the log-det).
LOC = np.array([2.0, -1.0])
SCALE = np.array([3.0, 0.5])


def _standardize():
    return Standardize(jnp.asarray(LOC, jnp.float32), jnp.asarray(SCALE, jnp.float32))


def _closed_form(sde: AbstractSDE, t: float) -> tuple[float, float]:
    """(a(t), sigma(t)^2) from the textbook integrals, in float64."""
    if isinstance(sde, VESDE):
        sigma = sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t
        return 1.0, sigma**2 - sde.sigma_min**2
    big_b = sde.beta_min * t + 0.5 * (sde.beta_max - sde.beta_min) * t**2
    if isinstance(sde, VPSDE):
        return np.exp(-0.5 * big_b), 1.0 - np.exp(-big_b)
    return np.exp(-0.5 * big_b), (1.0 - np.exp(-big_b)) ** 2


def _moment_ode(sde: AbstractSDE, t: float) -> tuple[float, float]:
    """(a(t), sigma(t)^2) by integrating a' = c a, v' = 2 c v + g^2 from a=1, v=0 at 0,
    where f(t, x) = c(t) x."""

    def rhs(s, y):
        c = float(sde.drift(s, jnp.ones(1))[0])
        g = float(sde.diffusion(s))
        return [c * y[0], 2 * c * y[1] + g**2]

    sol = scipy.integrate.solve_ivp(rhs, (0.0, t), [1.0, 0.0], rtol=1e-10, atol=1e-12)
    return sol.y[0, -1], sol.y[1, -1]


@pytest.mark.parametrize("name", SDE_NAMES)
def test_marginals_match_closed_form_and_moment_ode(name):
    sde = get_sde(name)
    for t in TIMES:
        a, var = _closed_form(sde, t)
        a_ode, var_ode = _moment_ode(sde, t)
        np.testing.assert_allclose([a, var], [a_ode, var_ode], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(float(sde.marginal_mean_coeff(t)), a, rtol=1e-5)
        np.testing.assert_allclose(float(sde.marginal_std(t)) ** 2, var, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("name", SDE_NAMES)
def test_prior_is_the_marginal_at_one(name):
    sde = get_sde(name)
    x = jax.random.normal(jax.random.key(0), (50_000, 2))
    prior_std = sde.sigma_max if isinstance(sde, VESDE) else 1.0
    np.testing.assert_allclose(float(sde.marginal_std(1.0)), prior_std, rtol=1e-4)
    assert float(sde.marginal_mean_coeff(1.0)) < 0.01 or name == "ve"
    z = sde.prior_sample(jax.random.key(1), (50_000, 2))
    np.testing.assert_allclose(np.std(np.asarray(z), axis=0), prior_std, rtol=0.02)
    np.testing.assert_allclose(
        sde.prior_log_prob(x),
        gaussian_logpdf(x, np.zeros(2), prior_std**2 * np.eye(2)),
        rtol=1e-5,
    )


# -- exact scores ------------------------------------------------------------------------------


class GaussianNoise(eqx.Module):
    """Exact noise prediction for data N(mean, cov) (standardised coordinates):
    x_t ~ N(a m, a^2 S + sigma^2 I), so eps_hat = sigma (a^2 S + sigma^2 I)^{-1} (x - a m)."""

    sde: AbstractSDE
    mean: jax.Array
    cov: jax.Array
    scale: float = 1.0
    data_size: int = 2

    def __call__(self, t, x):
        a, s = self.sde.marginal_mean_coeff(t), self.sde.marginal_std(t)
        # closed-form 2x2 inverse (a batched LU solve is slow on CPU)
        c = a**2 * self.cov + s**2 * jnp.eye(2)
        inv = jnp.array([[c[1, 1], -c[0, 1]], [-c[1, 0], c[0, 0]]]) / jnp.linalg.det(c)
        return self.scale * s * inv @ (x - a * self.mean)


class MixtureNoise(eqx.Module):
    """Exact noise prediction for an isotropic Gaussian mixture, which stays one under the
    forward SDE: components N(a mu_k, (a^2 std^2 + sigma^2) I)."""

    sde: AbstractSDE
    means: jax.Array
    std: float
    log_weights: jax.Array
    data_size: int = 2

    def __call__(self, t, x):
        a, s = self.sde.marginal_mean_coeff(t), self.sde.marginal_std(t)
        var = a**2 * self.std**2 + s**2
        diff = x - a * self.means  # (K, d)
        resp = jax.nn.softmax(self.log_weights - 0.5 * jnp.sum(diff**2, -1) / var)
        score = -jnp.sum(resp[:, None] * diff, axis=0) / var
        return -s * score


def _gaussian_model(name, **kwargs):
    sde = get_sde(name)
    net = GaussianNoise(sde, jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    return Diffusion(net, sde, standardize=_standardize(), **kwargs)


def _pf_endpoint(sde, z):
    """The exact probability-flow map from t=eps to t=1 for Gaussian data: all covariances
    a^2 S + sigma^2 I commute, so z_1 = mu_1 + Sigma_1^{1/2} Sigma_eps^{-1/2} (z - mu_eps)."""
    lam, u = np.linalg.eigh(COV)

    def moments(t):
        a, s = float(sde.marginal_mean_coeff(t)), float(sde.marginal_std(t))
        return a * MEAN, a**2 * lam + s**2

    m_e, v_e = moments(sde.eps)
    m_1, v_1 = moments(1.0)
    z1 = m_1 + ((z - m_e) @ u) * np.sqrt(v_1 / v_e) @ u.T
    return z1, (m_e, u @ np.diag(v_e) @ u.T), (m_1, u @ np.diag(v_1) @ u.T)


@pytest.mark.parametrize("name", SDE_NAMES)
def test_probability_flow_log_prob_matches_gaussian(name):
    model = _gaussian_model(name)
    sde = model.sde
    z = np.asarray(jax.random.normal(jax.random.key(0), (200, 2))) * 1.5 + MEAN
    x = LOC + SCALE * z
    lp, stats = model.log_prob_with_stats(jnp.asarray(x, jnp.float32))
    assert bool(stats.success) and int(stats.nfe) > 0
    z1, (m_e, c_e), (m_1, c_1) = _pf_endpoint(sde, z)
    prior_var = sde.sigma_max**2 if isinstance(sde, VESDE) else 1.0
    # the model's density at eps, corrected for its prior not being exactly p_1
    prior_gap = gaussian_logpdf(z1, np.zeros(2), prior_var * np.eye(2)) - gaussian_logpdf(
        z1, m_1, c_1
    )
    expected = gaussian_logpdf(z, m_e, c_e) + prior_gap - np.sum(np.log(SCALE))
    np.testing.assert_allclose(lp, expected, atol=1e-3, rtol=0)
    # and the marginal at eps is the data distribution to within the cut-off
    assert np.max(np.abs(gaussian_logpdf(z, m_e, c_e) - gaussian_logpdf(z, MEAN, COV))) < 0.02


def _check_moments(samples, mean, cov, n_se=4.0):
    """Sample mean and covariance within n_se standard errors of (mean, cov)."""
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(samples.mean(0) - mean), n_se * se_mean)
    centred = samples - samples.mean(0)
    prods = centred[:, :, None] * centred[:, None, :]
    se_cov = prods.std(0) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(prods.mean(0) - cov), n_se * se_cov + 1e-3)


SDE_SAMPLERS = [(n, s) for n in SDE_NAMES for s in ("em", "pc", "ddpm")]


@pytest.mark.parametrize("name,sampler", SDE_SAMPLERS)
def test_sde_samplers_reproduce_gaussian(name, sampler):
    # ancestral sampling works for every Gaussian-kernel SDE (for VE it is SMLD's)
    model = _gaussian_model(name)
    x, stats = model.sample_with_stats(
        jax.random.key(3), 20_000, sampler=get_sampler(sampler, steps=1000)
    )
    assert int(stats.nfe) == (2000 if sampler == "pc" else 1000)
    assert int(stats.num_steps) == 1000
    z = (np.asarray(x) - LOC) / SCALE
    _check_moments(z, MEAN, COV)


def test_ode_sampler_and_trajectories_reproduce_gaussian():
    model = _gaussian_model("vp")
    x, stats = model.sample_with_stats(jax.random.key(4), 5000)
    assert bool(stats.success) and int(stats.nfe) > 0
    x_obj = model.sample(jax.random.key(4), 5000, sampler=ODE())
    np.testing.assert_array_equal(x, x_obj)
    _check_moments((np.asarray(x) - LOC) / SCALE, MEAN, COV)
    x2, lp = model.sample_and_log_prob(jax.random.key(4), 300)
    np.testing.assert_allclose(x2, x[:300], atol=1e-3)
    np.testing.assert_allclose(lp, model.log_prob(x2), atol=1e-3)
    ts, xs = model.trajectories(jax.random.key(4), 300, num_times=7)
    assert xs.shape == (7, 300, 2) and float(ts[0]) == model.t_base == 1.0
    assert model.t_data == model.sde.eps
    np.testing.assert_allclose(xs[-1], x[:300], atol=1e-4)
    with pytest.raises(ValueError, match="must start at the base time t_base=1.0"):
        model.trajectories(jax.random.key(4), 3, ts=jnp.linspace(model.sde.eps, 1.0, 5))


@pytest.mark.parametrize("name", SDE_NAMES)
def test_ode_sampler_reproduces_gaussian_mixture(name):
    means, std, weights = datasets.gaussian_mixture_params("gaussian_mixture")
    mix_mean = weights @ means
    mix_cov = (means - mix_mean).T @ np.diag(weights) @ (means - mix_mean) + std**2 * np.eye(2)
    # isotropic standardisation keeps the components isotropic
    scale = float(np.sqrt(np.mean(np.diag(mix_cov))))
    sde = get_sde(name)
    net = MixtureNoise(
        sde,
        jnp.asarray((means - mix_mean) / scale, jnp.float32),
        std / scale,
        jnp.log(jnp.asarray(weights, jnp.float32)),
    )
    std_map = Standardize(jnp.asarray(mix_mean, jnp.float32), jnp.full(2, scale, jnp.float32))
    model = Diffusion(net, sde, standardize=std_map)
    x, stats = model.sample_with_stats(jax.random.key(5), 4000)
    assert bool(stats.success)
    _check_moments(x, mix_mean, mix_cov)
    assert int(stats.nfe) < 2000


def test_dsm_loss_is_lowest_at_the_exact_score():
    x = jnp.asarray(LOC + SCALE * (np.random.default_rng(0).multivariate_normal(MEAN, COV, 4096)))
    for name in SDE_NAMES:
        model = _gaussian_model(name)
        key = jax.random.key(6)
        for k in (1, 4):
            loss = DenoisingScoreMatching(k=k)
            exact = float(loss(model, x, key))
            for scale in (0.8, 1.2):
                worse = eqx.tree_at(lambda m: m.network.scale, model, scale)
                assert float(loss(worse, x, key)) > exact
            shifted = eqx.tree_at(lambda m: m.network.mean, model, model.network.mean + 0.3)
            assert float(loss(shifted, x, key)) > exact
            # exact noise prediction: E||eps_hat - eps||^2 = d - E[sigma^2 tr Sigma_t^{-1}] < d
            assert 0.0 < exact < 2.0
        lik = float(DenoisingScoreMatching(weighting="likelihood")(model, x, key))
        assert np.isfinite(lik) and lik > 0


def test_likelihood_weighting_against_a_hand_computed_value():
    # One point, one (t, eps) draw reproduced by hand: the "likelihood" weighting is the
    # residual ||eps_hat - eps||^2 times g(t)^2 / sigma(t)^2, i.e. g^2 ||s - grad log p||^2.
    model = _gaussian_model("vp")
    x = jnp.asarray([[2.5, -0.8]], jnp.float32)
    key = jax.random.key(7)
    got = float(DenoisingScoreMatching(weighting="likelihood")(model, x, key))
    k_t, k_noise = jax.random.split(key)
    t = float(jax.random.uniform(k_t, (1,), minval=model.sde.eps, maxval=1.0)[0])
    eps = np.asarray(jax.random.normal(k_noise, (1, 2)))[0]
    z0 = (np.asarray(x[0]) - LOC) / SCALE
    b = 0.1 * t + 0.5 * 19.9 * t**2
    a, var = np.exp(-0.5 * b), 1 - np.exp(-b)
    zt = a * z0 + np.sqrt(var) * eps
    c = a**2 * COV + var * np.eye(2)
    eps_hat = np.sqrt(var) * np.linalg.solve(c, zt - a * MEAN)
    g2 = 0.1 + t * 19.9
    expected = np.sum((eps_hat - eps) ** 2) * g2 / var
    np.testing.assert_allclose(got, expected, rtol=2e-4)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown SDE 'foo'.*vp, subvp, ve"):
        get_sde("foo")
    for cls in (VPSDE, SubVPSDE, VESDE):
        for eps in (0.0, 1.0, -0.1):
            with pytest.raises(ValueError, match="expected 0 < eps < 1"):
                cls(eps=eps)
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        VPSDE(beta_min=5.0, beta_max=1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    model = _gaussian_model("ve")
    key = jax.random.key(0)
    with pytest.raises(
        ValueError, match="unknown sampler 'rk4'; expected one of: ode, euler, heun, flow_map, em"
    ):
        get_sampler("rk4")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(key, 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        model.sample(key, 5, sampler=EulerMaruyama(steps=0))
    with pytest.raises(ValueError, match="expected snr > 0"):
        PredictorCorrector(snr=0.0)
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 2\)"):
        model.log_prob(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown weighting 'mse'"):
        DenoisingScoreMatching(weighting="mse")
    with pytest.raises(ValueError, match="expected k to be a positive integer"):
        DenoisingScoreMatching(k=0)
    with pytest.raises(ValueError, match="expected sde to be an AbstractSDE"):
        Diffusion(model.network, "vp")


def test_training_reaches_gaussian_likelihood():
    """A few hundred DSM steps on Gaussian data: the exact PF-ODE hold-out NLL comes within
    0.1 nats of the true one, and training leaves the standardisation alone."""
    rng = np.random.default_rng(1)
    mean, cov = np.array([1.0, -2.0]), np.array([[2.0, 0.8], [0.8, 1.0]])
    data = rng.multivariate_normal(mean, cov, 2500).astype(np.float32)
    train, holdout = jnp.asarray(data[:2000]), jnp.asarray(data[2000:])
    std = Standardize.fit(train)
    net = MLPVectorField(2, width=32, depth=2, key=jax.random.key(0))
    model = Diffusion(net, VPSDE(), standardize=std)
    steps = 600
    model, history = fit(
        model,
        DenoisingScoreMatching(),
        train,
        holdout,
        key=jax.random.key(1),
        steps=steps,
        batch_size=256,
        optimizer=default_optimizer(steps, 3e-3),
        eval_every=300,
        ema_decay=0.99,
        progress=False,
    )
    np.testing.assert_array_equal(model.standardize.loc, std.loc)
    assert history.holdout_loss[-1] < history.holdout_loss[0]
    nll = -float(jnp.mean(model.log_prob(holdout)))
    true_nll = -float(np.mean(gaussian_logpdf(holdout, mean, cov)))
    assert abs(nll - true_nll) < 0.1, (nll, true_nll)


@pytest.mark.parametrize("sampler", ["em", "pc", "ddpm", "ddim"])
def test_sde_trajectories_end_at_the_samples(sampler):
    model = _gaussian_model("vp")
    key = jax.random.key(11)
    s = get_sampler(sampler, steps=50)
    ts, xs = model.sde_trajectories(key, 64, sampler=s)
    assert ts.shape == (51,) and xs.shape == (51, 64, 2)
    np.testing.assert_allclose(xs[-1], model.sample(key, 64, sampler=s), atol=1e-5)
    with pytest.raises(ValueError, match="fixed-step sampler"):
        model.sde_trajectories(key, 4, sampler=ODE())
