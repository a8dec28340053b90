"""Shortcut models: the self-consistency target against a hand-built reference on a known
network and against the exact flow map of the Gaussian path (where two half jumps are one
jump, so the residual vanishes), the flow-matching residual against theory, and a short
training whose one-step samples have the data's mean and covariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_few_step_gaussian import PATH

import flowlab
from flowlab import MLPFlowMapNet, Shortcut, Standardize
from flowlab.objectives import ShortcutMatching
from flowlab.samplers import FlowMap


def _draws(n, key=0):
    k0, k1 = jax.random.split(jax.random.key(key))
    return jax.random.normal(k0, (n, 2)), PATH.m + PATH.s * jax.random.normal(k1, (n, 2))


def test_target_equals_two_half_jumps_of_the_network():
    model = Shortcut(MLPFlowMapNet(2, width=16, depth=2, key=jax.random.key(1)))
    obj = ShortcutMatching(max_steps=8)
    z0, z1 = _draws(4)
    t = jnp.array([0.0, 0.5, 0.25, 0.875])
    jump = jnp.array([1.0, 0.5, 0.25, 0.125])  # the last is the smallest: inner d = 0
    pred, target = obj.bootstrap(model, z0, z1, t, jump)
    for i in range(4):
        zt = (1 - t[i]) * z0[i] + t[i] * z1[i]
        h = jump[i] / 2
        inner = 0.0 if i == 3 else h
        s1 = model.network(t[i], inner, zt)
        s2 = model.network(t[i] + h, inner, zt + h * s1)
        np.testing.assert_allclose(target[i], (s1 + s2) / 2, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(pred[i], model.network(t[i], jump[i], zt), rtol=1e-6)


def test_exact_flow_map_is_self_consistent():
    """s = the Gaussian path's average velocity: two jumps of d compose to one of 2d exactly;
    at the smallest jump D the target is two Euler steps of D/2 of the field (the paper's base
    case), a first-order average velocity: off by O(D), and by half as much at D/2."""
    model = Shortcut(PATH.network, data_size=2)
    obj = ShortcutMatching(max_steps=128)
    n = 512
    z0, z1 = _draws(n, key=2)
    t = jnp.tile(jnp.array([0.0, 0.25, 0.5]), n // 3 + 1)[:n]
    jump = jnp.full((n,), 0.5)
    pred, target = obj.bootstrap(model, z0, z1, t, jump)
    assert float(jnp.max(jnp.abs(pred - target))) < 2e-5
    errs = []
    for m in (64, 128):
        jump = jnp.full((n,), 1.0 / m)
        pred, target = ShortcutMatching(max_steps=m).bootstrap(model, z0, z1, t, jump)
        errs.append(float(jnp.mean(jnp.abs(pred - target))))
    assert errs[1] < 0.01
    np.testing.assert_allclose(errs[0] / errs[1], 2.0, rtol=0.1)


@pytest.mark.parametrize("t", [0.1, 0.6])
def test_flow_matching_residual_is_the_conditional_variance(t):
    model = Shortcut(PATH.network, data_size=2)
    n = 100_000
    z0, z1 = _draws(n, key=3)
    pred, target = ShortcutMatching().flow_matching(model, z0, z1, jnp.full((n,), t))
    res = np.asarray(target - pred, np.float64)
    np.testing.assert_allclose(np.mean(res**2, 0), PATH.conditional_variance(t), rtol=0.03)


def test_loss_mixes_both_parts_and_refuses_bad_settings():
    model = Shortcut(PATH.network, data_size=2)
    _, z1 = _draws(4096, key=4)
    # exact s: flow-matching rows give the conditional variance, bootstrap rows about 0
    loss = float(ShortcutMatching(bootstrap_every=4)(model, z1, jax.random.key(5)))
    ts = jnp.linspace(0.0, 1.0, 2001)
    floor = float(jnp.mean(jax.vmap(lambda t: jnp.sum(PATH.conditional_variance(t)))(ts)))
    np.testing.assert_allclose(loss, 0.75 * floor, rtol=0.05)
    with pytest.raises(ValueError, match="power of two"):
        ShortcutMatching(max_steps=100)
    with pytest.raises(ValueError, match="ShortcutMatching trains a Shortcut"):
        ShortcutMatching()(flowlab.CNF(lambda t, z: z, data_size=2), z1, jax.random.key(0))


def test_short_training_gives_one_step_samples_with_the_data_moments():
    mean = jnp.array([2.0, -1.0])
    chol = jnp.array([[1.0, 0.0], [0.6, 0.5]])
    cov = np.asarray(chol @ chol.T)
    kd, kh, kf, ks = jax.random.split(jax.random.key(6), 4)
    data = mean + jax.random.normal(kd, (8192, 2)) @ chol.T
    holdout = mean + jax.random.normal(kh, (512, 2)) @ chol.T
    net = MLPFlowMapNet(2, width=64, depth=2, key=kf)
    model = Shortcut(net, standardize=Standardize.fit(data))
    model, _ = flowlab.fit(model, ShortcutMatching(), data, holdout, key=ks, steps=4000,
                           batch_size=256, eval_every=2000, progress=False)  # fmt: skip
    n = 4000
    for steps in (1, 4):
        x, stats = model.sample_with_stats(jax.random.key(7), n, sampler=FlowMap(steps=steps))
        assert int(stats.nfe) == steps and bool(stats.success)
        x = np.asarray(x, np.float64)
        se_mean = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(x.mean(0) - np.asarray(mean)) < 5 * se_mean + 0.05), x.mean(0)
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
        assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov + 0.2 * np.abs(cov)), np.cov(x.T)
    assert "instantaneous-velocity ODE" in model.likelihood_label()
