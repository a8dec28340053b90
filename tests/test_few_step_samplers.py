"""Fixed-step ODE samplers (Euler, Heun) against the closed-form flow map of a linear field:
f(t, z) = A z from N(0, I) at t = 0 gives z_1 = expm(A) z_0, so the error of each sampler's
end point is known exactly, and must fall at order 1 (Euler) and 2 (Heun) as steps double."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from flowlab import CNF, Standardize
from flowlab.samplers import Euler, FlowMap, Heun, get_sampler

A = np.array([[-0.5, 1.0], [-1.0, -0.3]])
LOC = np.array([1.0, -2.0])
SCALE = np.array([2.0, 0.5])


def _linear_cnf():
    a = jnp.asarray(A, jnp.float32)
    std = Standardize(jnp.asarray(LOC, jnp.float32), jnp.asarray(SCALE, jnp.float32))
    return CNF(lambda t, z: a @ z, data_size=2, standardize=std)


def _exact_end(model, key, n):
    """The exact ODE end point of the same prior draws, in data coordinates (float64)."""
    z0 = np.asarray(model.prior_sample(jax.random.split(key)[0], n), np.float64)
    z1 = z0 @ scipy.linalg.expm(A).T
    return z1 * SCALE + LOC


def _errors(sampler_cls, steps_list, key, n=64):
    model = _linear_cnf()
    exact = _exact_end(model, key, n)
    out = []
    for steps in steps_list:
        x, stats = model.sample_with_stats(key, n, sampler=sampler_cls(steps=steps))
        assert bool(stats.success)
        assert int(stats.num_steps) == steps
        out.append(float(np.max(np.abs(np.asarray(x, np.float64) - exact))))
    return np.array(out)


@pytest.mark.parametrize(("cls", "order", "nfe_per_step"), [(Euler, 1, 1), (Heun, 2, 2)])
def test_fixed_step_error_falls_at_its_order(cls, order, nfe_per_step):
    key = jax.random.key(0)
    steps = [4, 8, 16, 32]
    err = _errors(cls, steps, key)
    ratios = err[:-1] / err[1:]
    # halving h divides the error by 2**order (asymptotically); float32 rounding is far below
    np.testing.assert_allclose(ratios, 2.0**order, rtol=0.15)
    _, stats = _linear_cnf().sample_with_stats(key, 8, sampler=cls(steps=5))
    assert int(stats.nfe) == 5 * nfe_per_step


def test_one_euler_step_is_the_tangent_map():
    """One step of size 1 from z0: z0 + A z0, in data coordinates."""
    model = _linear_cnf()
    key = jax.random.key(3)
    z0 = np.asarray(model.prior_sample(jax.random.split(key)[0], 16), np.float64)
    x = np.asarray(model.sample(key, 16, sampler=Euler(steps=1)), np.float64)
    np.testing.assert_allclose(x, (z0 + z0 @ A.T) * SCALE + LOC, rtol=1e-5, atol=1e-5)


def test_trajectories_end_at_the_samples_and_start_at_the_prior():
    model = _linear_cnf()
    key = jax.random.key(1)
    sampler = Heun(steps=6)
    ts, xs = sampler.trajectories(model, key, 10)
    assert xs.shape == (7, 10, 2)
    np.testing.assert_allclose(np.asarray(ts), np.linspace(0, 1, 7), atol=1e-7)
    np.testing.assert_allclose(np.asarray(xs[-1]), np.asarray(sampler(model, key, 10)[0]))
    z0 = model.prior_sample(jax.random.split(key)[0], 10)
    np.testing.assert_allclose(np.asarray(xs[0]), np.asarray(z0) * SCALE + LOC, rtol=1e-6)


def test_non_finite_samples_are_reported_not_hidden():
    model = CNF(lambda t, z: z * jnp.inf, data_size=2)
    x, stats = model.sample_with_stats(jax.random.key(0), 4, sampler=Euler(steps=2))
    assert not bool(stats.success)
    assert not np.all(np.isfinite(np.asarray(x)))


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="steps"):
        Euler(steps=0)
    with pytest.raises(ValueError, match="an ODE flow"):
        Heun(steps=2)(object(), jax.random.key(0), 4)
    with pytest.raises(ValueError, match="a flow map"):
        FlowMap(steps=1)(_linear_cnf(), jax.random.key(0), 4)
    assert isinstance(get_sampler("heun", steps=3), Heun)
    assert isinstance(get_sampler("euler", steps=3), Euler)
