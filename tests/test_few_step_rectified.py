"""Rectified flow against the closed-form Gaussian path (test_few_step_gaussian): the
teacher is the exact flow-matching field between N(0, I) and N(m, diag(s^2)), whose ODE maps
z_0 to m + s z_0, so the reflow pairs are known exactly, and one reflow must straighten the
flow (its paths are straight lines z_0 -> m + s z_0): one Euler step goes from collapsing
every point onto the mean (the teacher's tangent at t = 0) to near the analytic map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_few_step_gaussian import PATH

import flowlab
from flowlab import CNF, Standardize
from flowlab.nn import MLPVectorField
from flowlab.rectified import Reflow, ReflowPairs, check_same_prior, reflow, reflow_pairs
from flowlab.samplers import Euler

LOC = jnp.array([0.5, 2.0])
SCALE = jnp.array([2.0, 0.5])


def _teacher():
    std = Standardize(LOC, SCALE)
    return CNF(PATH.velocity, data_size=2, standardize=std)


def _analytic(z0):
    """The teacher's exact ODE map, data coordinates."""
    return LOC + SCALE * (PATH.m + PATH.s * z0)


def test_pairs_are_the_analytic_map():
    pairs = reflow_pairs(_teacher(), jax.random.key(0), 256)
    assert pairs.z0.shape == (256, 2)
    np.testing.assert_allclose(pairs.x1, _analytic(pairs.z0), atol=2e-4)
    # the same draws as the teacher's own samples of the same key
    np.testing.assert_allclose(pairs.x1, _teacher().sample(jax.random.key(0), 256), atol=1e-4)


def test_reflow_objective_finds_partners_and_refuses_strangers():
    pairs = reflow_pairs(_teacher(), jax.random.key(1), 64)
    obj = Reflow(pairs)
    perm = jax.random.permutation(jax.random.key(2), 64)
    np.testing.assert_array_equal(obj.partners(pairs.x1[perm]), pairs.z0[perm])
    # the exact straight field of the pairs has loss zero
    z1 = (pairs.x1 - LOC) / SCALE  # student standardised like the teacher
    a = PATH.s  # z1 = m + s z0: z_t = (1 - t + t s) z0 + t m, velocity (s - 1) z0 + m
    field = lambda t, z: (a - 1.0) * (z - t * PATH.m) / (1.0 - t + t * a) + PATH.m  # noqa: E731
    exact = CNF(field, data_size=2, standardize=Standardize(LOC, SCALE))
    assert float(obj(exact, pairs.x1, jax.random.key(3))) < 1e-9
    assert float(obj(_teacher(), pairs.x1, jax.random.key(3))) > 0.1
    np.testing.assert_allclose(z1, PATH.m + PATH.s * pairs.z0, atol=2e-4)
    with pytest.raises(Exception, match="end points of those pairs"):
        obj.partners(pairs.x1 + 1e-3)
    ve = flowlab.Diffusion(lambda t, z: z, flowlab.VESDE(), data_size=2)  # prior N(0, s^2 I)
    z0 = reflow_pairs(ve, jax.random.key(0), 4).z0  # any teacher prior is accepted
    with pytest.raises(ValueError, match="share the prior"):
        check_same_prior(ve, _teacher(), z0)
    check_same_prior(_teacher(), exact, z0)  # two N(0, I) priors, different standardisations


def test_one_reflow_straightens_the_gaussian_flow():
    teacher = _teacher()
    student = CNF(MLPVectorField(2, width=64, depth=2, key=jax.random.key(5)))  # identity std
    student, history, pairs = reflow(
        teacher, student, key=jax.random.key(6), n_pairs=4096, steps=1500, batch_size=256,
        eval_every=500, progress=False,
    )  # fmt: skip
    assert isinstance(student, CNF) and isinstance(pairs, ReflowPairs)
    assert history.holdout_loss[-1] < 1e-2  # the straight field of the pairs has loss 0
    key = jax.random.key(7)
    z0 = student.prior_sample(jax.random.split(key)[0], 2000)
    target = _analytic(z0)
    err = {}
    for name, model in (("teacher", teacher), ("student", student)):
        x = model.sample(key, 2000, sampler=Euler(steps=1))
        err[name] = float(jnp.mean(jnp.linalg.norm(x - target, axis=-1)))
    # teacher: one Euler step lands on the mean, error E|scale * s * z0| (about 1.4)
    assert err["teacher"] > 1.0
    assert err["student"] < 0.1 * err["teacher"], err
    # the student is still a CNF with an exact likelihood: the analytic density, roughly
    x = _analytic(z0[:200])
    std = SCALE * PATH.s
    true = jnp.sum(-0.5 * ((x - LOC - SCALE * PATH.m) / std) ** 2 - jnp.log(std), -1)
    true = true - jnp.log(2 * jnp.pi)
    assert abs(float(jnp.mean(student.log_prob(x) - true))) < 0.1
