"""Source-to-target few-step models: MeanFlow and Shortcut with ``prior=`` (the CNF's
mechanism: prior in data coordinates, same standardisation and Jacobian), their exact
likelihoods against closed forms, their objectives drawing z0 from the prior, and reflow
of a teacher with a non-Gaussian prior."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

from flowlab import CNF, MeanFlow, Shortcut, Standardize, datasets
from flowlab.cnf import Gaussian, GaussianMixture
from flowlab.nn import MLPVectorField
from flowlab.objectives import MeanFlowMatching, ShortcutMatching
from flowlab.rectified import check_same_prior, reflow_pairs
from flowlab.samplers import FlowMap

A = np.array([[0.3, -0.4], [0.2, -0.1]])
SOURCE_MEAN = np.array([1.0, -2.0])
SOURCE_COV = np.array([[2.0, 0.6], [0.6, 0.5]])
STD = Standardize(jnp.array([0.5, -1.0]), jnp.array([2.0, 0.7]))
FAMILIES = [MeanFlow, Shortcut]


class LinearMap(eqx.Module):
    """network(r, span, z) = A z: the average velocity of nothing in particular, but its
    instantaneous field u(z, t, t) = A z is linear, so the ODE's end map is e^A."""

    a: jax.Array
    data_size: int = 2

    def __call__(self, r, span, z):
        return self.a @ z


class Constant(eqx.Module):
    c: jax.Array
    data_size: int = 2

    def __call__(self, r, span, z):
        return self.c


@pytest.mark.parametrize("family", FAMILIES)
def test_flow_map_with_gaussian_prior_has_the_closed_form_likelihood(family):
    """Gaussian source, linear instantaneous field: in data coordinates x_1 = mu + M (x_0 -
    mu), M = S e^A S^-1, a Gaussian; the exact log-density matches it (2e-4 nats)."""
    model = family(
        LinearMap(jnp.asarray(A)), standardize=STD, prior=Gaussian(SOURCE_MEAN, SOURCE_COV)
    )
    s, mu = np.diag(np.asarray(STD.scale)), np.asarray(STD.loc)
    m = s @ expm(A) @ np.linalg.inv(s)
    mean, cov = mu + m @ (SOURCE_MEAN - mu), m @ SOURCE_COV @ m.T
    x = np.random.default_rng(0).multivariate_normal(mean, cov, 64)
    np.testing.assert_allclose(
        model.log_prob(jnp.asarray(x)), stats.multivariate_normal(mean, cov).logpdf(x), atol=2e-4
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_flow_map_zero_field_density_is_the_prior_and_jumps_start_from_it(family):
    """Zero network: the model's exact density is the 8gaussians density (the prior, through a
    non-trivial standardisation), and a 1-jump sample is the prior draw itself."""
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    model = family(Constant(jnp.zeros(2)), standardize=STD, prior=prior)
    x = np.asarray(datasets.sample("torchcfm_8gaussians", jax.random.key(2), 50), np.float64)
    np.testing.assert_allclose(
        model.log_prob(jnp.asarray(x)), datasets.log_prob("torchcfm_8gaussians", x), atol=1e-5
    )
    jumped = np.asarray(model.sample(jax.random.key(3), 4000, sampler=FlowMap(steps=1)))
    _, std, _ = datasets.gaussian_mixture_params("torchcfm_8gaussians")
    rms = np.sqrt(np.mean(np.sum(jumped**2, 1)))  # 8 centres at radius 5: sqrt(25 + 2 s^2)
    assert rms == pytest.approx(math.sqrt(25 + 2 * std**2), rel=0.02)
    assert np.all(prior.log_prob(jnp.asarray(jumped)) > -12.0)  # every point near a centre


def _expected_sq(prior_mean_z, prior_cov_z, data_z, c):
    """E||c - (z1 - z0)||^2 for independent z0 (mean, cov given) and data rows z1."""
    d = data_z.mean(0) - prior_mean_z - c
    return float(np.trace(np.cov(data_z.T, bias=True)) + np.trace(prior_cov_z) + d @ d)


@pytest.mark.parametrize("objective", ["meanflow", "shortcut"])
def test_objectives_draw_z0_from_the_prior(objective):
    """A constant network u = c has a zero derivative along the flow and self-consistent
    jumps, so both losses reduce to E||c - (z1 - z0)||^2 (the shortcut's on its 3/4 of
    flow-matching rows): with a Gaussian prior whose standardised mean is far from 0 the
    loss equals the closed form with the prior's moments (3%), not N(0, I)'s."""
    prior = Gaussian(SOURCE_MEAN, SOURCE_COV)
    c = jnp.asarray([0.3, -0.2])
    family, loss = (
        (MeanFlow, MeanFlowMatching())
        if objective == "meanflow"
        else (Shortcut, ShortcutMatching())
    )
    model = family(Constant(c), standardize=STD, prior=prior)
    x = datasets.sample("gaussian_mixture", jax.random.key(0), 40_000)
    z1 = np.asarray(STD.forward(x), np.float64)
    scale = np.asarray(STD.scale)
    m0 = (SOURCE_MEAN - np.asarray(STD.loc)) / scale
    cov0 = SOURCE_COV / np.outer(scale, scale)
    expected = _expected_sq(m0, cov0, z1, np.asarray(c))
    frac = 1.0 if objective == "meanflow" else 1.0 - 1.0 / loss.bootstrap_every
    got = float(loss(model, x, jax.random.key(1))) / frac
    assert got == pytest.approx(expected, rel=0.03)
    standard = _expected_sq(np.zeros(2), np.eye(2), z1, np.asarray(c))
    assert abs(standard - expected) > 0.2 * expected  # the test can tell the two apart


def test_reflow_pairs_of_a_source_to_target_teacher():
    """A teacher with an 8gaussians prior gives pairs whose z0 are its prior draws and whose
    x1 its ODE end points; a student with the same prior passes the shared-prior check, a
    student with N(0, I) is refused with the reason."""
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    teacher = CNF(lambda t, z: jnp.asarray(A, z.dtype) @ z, standardize=STD, prior=prior)
    pairs = reflow_pairs(teacher, jax.random.key(0), 64)
    np.testing.assert_allclose(pairs.z0, teacher.prior_sample(jax.random.key(0), 64), atol=0)
    expected = np.asarray(STD.inverse(pairs.z0 @ jnp.asarray(expm(A).T, jnp.float32)))
    np.testing.assert_allclose(pairs.x1, expected, atol=1e-3)
    vf = MLPVectorField(2, width=8, depth=1, key=jax.random.key(1))
    check_same_prior(teacher, CNF(vf, standardize=STD, prior=prior), pairs.z0)
    with pytest.raises(ValueError, match="share the prior"):
        check_same_prior(teacher, CNF(vf, standardize=STD), pairs.z0)
    with pytest.raises(ValueError, match="share the prior"):  # same prior, other coordinates
        check_same_prior(teacher, CNF(vf, prior=prior), pairs.z0)
    assert math.isfinite(float(jnp.sum(pairs.x1)))
