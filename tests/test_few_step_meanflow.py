"""Mean flows: the jvp target against an autodiff reference on a known network, the
regression residual on the closed-form Gaussian path against theory, and a short training
whose one-step samples have the data's mean and covariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from test_few_step_gaussian import PATH

import flowlab
from flowlab import MeanFlow, MLPFlowMapNet, Standardize
from flowlab.objectives import MeanFlowMatching
from flowlab.samplers import FlowMap


def _random_meanflow(key=0):
    return MeanFlow(MLPFlowMapNet(2, width=16, depth=2, key=jax.random.key(key)))


def test_jvp_target_equals_an_autodiff_reference():
    """target = v + (t - r) (J_z u v + d_r u), with J_z and d_r from jax.jacfwd."""
    model = _random_meanflow()
    k0, k1, kt = jax.random.split(jax.random.key(1), 3)
    z0 = jax.random.normal(k0, (8, 2))
    z1 = jax.random.normal(k1, (8, 2)) + 1.0
    r = jnp.linspace(0.05, 0.6, 8)
    t = r + jnp.linspace(0.0, 0.35, 8)
    _, target = MeanFlowMatching().regression(model, z0, z1, r, t)
    for i in range(8):
        zr = (1 - r[i]) * z0[i] + r[i] * z1[i]
        v = z1[i] - z0[i]
        jz = jax.jacfwd(lambda z, i=i: model.average_velocity(r[i], t[i], z))(zr)
        dr = jax.jacfwd(lambda rr, i=i, zr=zr: model.average_velocity(rr, t[i], zr))(r[i])
        ref = v + (t[i] - r[i]) * (jz @ v + dr)
        np.testing.assert_allclose(target[i], ref, rtol=1e-5, atol=1e-5)
    # and against a central finite difference along the conditional path, in float32
    h = 1e-2
    i = 3
    zr = lambda s: (1 - s) * z0[i] + s * z1[i]  # noqa: E731
    fd = (
        model.average_velocity(r[i] + h, t[i], zr(r[i] + h))
        - model.average_velocity(r[i] - h, t[i], zr(r[i] - h))
    ) / (2 * h)
    v = z1[i] - z0[i]
    np.testing.assert_allclose(target[i], v + (t[i] - r[i]) * fd, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("r", "t"), [(0.2, 0.7), (0.0, 1.0), (0.5, 0.5)])
def test_residual_of_the_exact_average_velocity_is_what_theory_says(r, t):
    """With the exact u, E[target | z_r] = u and target - u = (sigma_t / sigma_r)(v - v_marg):
    mean residual 0, mean square (sigma_t/sigma_r)^2 Var(v | z_r) per coordinate."""
    model = MeanFlow(PATH.network, data_size=2)
    n = 100_000
    k0, k1 = jax.random.split(jax.random.key(2))
    z0 = jax.random.normal(k0, (n, 2))
    z1 = PATH.m + PATH.s * jax.random.normal(k1, (n, 2))
    rr, tt = jnp.full((n,), r), jnp.full((n,), t)
    u, target = MeanFlowMatching().regression(model, z0, z1, rr, tt)
    res = np.asarray(target - u, np.float64)
    theory = (PATH.sigma(t) / PATH.sigma(r)) ** 2 * PATH.conditional_variance(r)
    se = np.sqrt(np.asarray(theory) / n)
    assert np.all(np.abs(res.mean(0)) < 5 * se)
    np.testing.assert_allclose(np.mean(res**2, 0), theory, rtol=0.03)
    # the one-step map of the exact u is the analytic map
    if (r, t) == (0.0, 1.0):
        x = model.sample(jax.random.key(3), 1000, sampler=FlowMap(steps=1))
        z = model.prior_sample(jax.random.split(jax.random.key(3))[0], 1000)
        np.testing.assert_allclose(x, PATH.m + PATH.s * z, rtol=1e-5, atol=1e-5)


def test_times_are_ordered_and_the_ratio_is_kept():
    r, t = MeanFlowMatching(flow_ratio=0.75, time_law="logit_normal").times(
        jax.random.key(0), 40_000
    )
    assert bool(jnp.all(r <= t)) and bool(jnp.all((r >= 0) & (t <= 1)))
    frac = float(jnp.mean(r == t))
    assert abs(frac - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 40_000)
    # t' = max of two logit-normal(-0.4, 1) draws (paper's time): P(t' <= x) = F(x)^2, so
    # the median of flowlab's start 1 - t' is 1 - sigmoid(-0.4 + Phi^-1(sqrt(1/2)))
    median = 1.0 - scipy.special.expit(-0.4 + scipy.stats.norm.ppf(np.sqrt(0.5)))
    assert abs(float(jnp.median(r)) - median) < 0.01
    with pytest.raises(ValueError, match="time_law"):
        MeanFlowMatching(time_law="beta")
    with pytest.raises(ValueError, match="MeanFlowMatching trains a MeanFlow"):
        MeanFlowMatching()(flowlab.CNF(lambda t, z: z, data_size=2), jnp.zeros((4, 2)),
                           jax.random.key(0))  # fmt: skip


def test_short_training_gives_one_step_samples_with_the_data_moments():
    mean = jnp.array([2.0, -1.0])
    chol = jnp.array([[1.0, 0.0], [0.6, 0.5]])
    cov = chol @ chol.T
    kd, kh, kf, ks = jax.random.split(jax.random.key(4), 4)
    data = mean + jax.random.normal(kd, (8192, 2)) @ chol.T
    holdout = mean + jax.random.normal(kh, (512, 2)) @ chol.T
    std = Standardize.fit(data) if hasattr(Standardize, "fit") else Standardize(
        jnp.mean(data, 0), jnp.std(data, 0))  # fmt: skip
    model = MeanFlow(MLPFlowMapNet(2, width=64, depth=2, key=kf), standardize=std)
    model, _ = flowlab.fit(model, MeanFlowMatching(), data, holdout, key=ks, steps=4000,
                           batch_size=256, eval_every=2000, progress=False)  # fmt: skip
    n = 4000
    x, stats = model.sample_with_stats(jax.random.key(5), n, sampler=FlowMap(steps=1))
    assert int(stats.nfe) == 1 and bool(stats.success)
    x = np.asarray(x, np.float64)
    # tolerances from the sample size: SE of a mean sqrt(var/n), of a covariance entry
    # about sqrt((S_ii S_jj + S_ij^2)/n); 5 SE plus a small bias allowance for the model
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean + 0.05), x.mean(0)
    c = np.asarray(cov)
    se_cov = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
    # one jump from a short training under-disperses a little (measured: variances 0.05-0.15
    # low after 4000-8000 steps); a collapsed map (1 Euler step of the d = 0 field) would
    # give a covariance near 0, so 20 % of each entry plus 5 SE still separates the two
    assert np.all(np.abs(np.cov(x.T) - c) < 5 * se_cov + 0.2 * np.abs(c)), np.cov(x.T)
    assert "instantaneous-velocity ODE" in model.likelihood_label()
    assert flowlab.likelihood_kind(model) == "exact"
