"""Source-to-target CNFs (``CNF(prior=...)``): the exact likelihood against closed forms, and
flow matching from a Gaussian source learning the known map to a Gaussian target."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowlab import CNF, Standardize, datasets, fit
from flowlab.cnf import Gaussian, GaussianMixture
from flowlab.couplings import ExactOT
from flowlab.nn import MLPVectorField
from flowlab.objectives import FlowMatching

A = np.array([[0.3, -0.4], [0.2, -0.1]])
SOURCE_MEAN = np.array([1.0, -2.0])
SOURCE_COV = np.array([[2.0, 0.6], [0.6, 0.5]])
STD = Standardize(jnp.array([0.5, -1.0]), jnp.array([2.0, 0.7]))


class Linear(eqx.Module):
    a: jax.Array

    def __call__(self, t, z):
        return self.a @ z


def linear_target():
    """f(t, z) = A z in standardised coordinates: z_1 = e^A z_0, so in data coordinates
    x_1 = mu + M (x_0 - mu) with M = S e^A S^-1: a Gaussian with a known mean and cov."""
    s = np.diag(np.asarray(STD.scale))
    mu = np.asarray(STD.loc)
    m = s @ _expm(A) @ np.linalg.inv(s)
    return mu + m @ (SOURCE_MEAN - mu), m @ SOURCE_COV @ m.T


def _expm(a):
    from scipy.linalg import expm

    return expm(a)


def test_gaussian_source_linear_field_gives_exact_gaussian_likelihood():
    model = CNF(Linear(jnp.asarray(A)), standardize=STD, prior=Gaussian(SOURCE_MEAN, SOURCE_COV))
    mean, cov = linear_target()
    x = np.random.default_rng(0).multivariate_normal(mean, cov, 64)
    expected = stats.multivariate_normal(mean, cov).logpdf(x)
    got = np.asarray(model.log_prob(jnp.asarray(x)))
    np.testing.assert_allclose(got, expected, atol=2e-4)
    # sampling: the same map; the samples' log-densities from one augmented solve agree
    xs, lp = model.sample_and_log_prob(jax.random.key(1), 4000)
    xs = np.asarray(xs, np.float64)
    np.testing.assert_allclose(lp, stats.multivariate_normal(mean, cov).logpdf(xs), atol=2e-4)
    se = np.sqrt(np.diag(cov) / len(xs))
    assert np.all(np.abs(xs.mean(0) - mean) < 4 * se), (xs.mean(0), mean)


def test_prior_log_prob_counts_the_standardisation_jacobian():
    """Zero field: the model's density is the prior's, whatever the standardisation."""
    prior = GaussianMixture.from_dataset("torchcfm_8gaussians")
    model = CNF(Linear(jnp.zeros((2, 2))), standardize=STD, prior=prior)
    x = np.asarray(datasets.sample("torchcfm_8gaussians", jax.random.key(2), 50), np.float64)
    expected = datasets.log_prob("torchcfm_8gaussians", x)
    np.testing.assert_allclose(model.log_prob(jnp.asarray(x)), expected, atol=1e-5)
    np.testing.assert_allclose(prior.log_prob(jnp.asarray(x)), expected, atol=1e-5)
    z = model.prior_sample(jax.random.key(3), 20_000)
    back = np.asarray(STD.inverse(z))
    mix_means, std, _ = datasets.gaussian_mixture_params("torchcfm_8gaussians")
    assert np.allclose(back.mean(0), mix_means.mean(0), atol=4 * 3.6 / math.sqrt(20_000))
    assert np.sqrt(np.mean(np.sum(back**2, 1))) == pytest.approx(
        math.sqrt(25 + 2 * std**2), rel=0.02
    )


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="expected prior to be None or an AbstractPrior"):
        CNF(Linear(jnp.zeros((2, 2))), data_size=2, prior="8gaussians")
    with pytest.raises(ValueError, match="expected a prior of data_size 3, got 2"):
        CNF(Linear(jnp.zeros((3, 3))), data_size=3, prior=Gaussian(np.zeros(2), np.eye(2)))
    with pytest.raises(ValueError, match="expected mean of shape"):
        Gaussian(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="expected std > 0"):
        GaussianMixture(np.zeros((2, 2)), 0.0)


def test_default_cnf_is_unchanged():
    """No prior: the standard normal, as before (the prior field is None, no new leaves)."""
    vf = MLPVectorField(2, width=8, depth=1, key=jax.random.key(0))
    model = CNF(vf)
    assert model.prior is None
    z = model.prior_sample(jax.random.key(4), 5)
    np.testing.assert_array_equal(z, jax.random.normal(jax.random.key(4), (5, 2)))


def test_flow_matching_gaussian_to_gaussian_learns_the_ot_map():
    """Source N(m0, s0^2 I), target N(m1, s1^2 I): minibatch-OT flow matching learns nearly
    straight paths, whose end map is the OT map x -> m1 + (s1 / s0)(x - m0); the exact
    likelihood of target points approaches the target's own."""
    m0, s0, m1, s1 = np.array([-2.0, 1.0]), 0.5, np.array([2.0, 0.0]), 1.0
    rng = np.random.default_rng(0)
    train = jnp.asarray(m1 + s1 * rng.standard_normal((2000, 2)), jnp.float32)
    holdout = jnp.asarray(m1 + s1 * rng.standard_normal((500, 2)), jnp.float32)
    vf = MLPVectorField(2, width=32, depth=2, key=jax.random.key(0))
    model = CNF(vf, prior=Gaussian(m0, s0**2 * np.eye(2)), rtol=1e-4, atol=1e-4)
    model, _ = fit(
        model,
        FlowMatching(coupling=ExactOT()),
        train,
        holdout,
        key=jax.random.key(1),
        steps=800,
        batch_size=256,
        progress=False,
    )
    x0 = jnp.asarray(m0 + s0 * rng.standard_normal((200, 2)) * 0.8, jnp.float32)
    _, xs = model.trajectories(z0=x0, num_times=2)
    pushed = np.asarray(xs[-1])
    expected = m1 + (s1 / s0) * (np.asarray(x0) - m0)
    err = np.sqrt(np.mean(np.sum((pushed - expected) ** 2, 1)))
    assert err < 0.15, err
    nll = -float(np.mean(model.log_prob(holdout)))
    true_nll = -float(np.mean(stats.multivariate_normal(m1, s1**2 * np.eye(2)).logpdf(holdout)))
    assert abs(nll - true_nll) < 0.05, (nll, true_nll)


@pytest.mark.parametrize("prior", [GaussianMixture.from_dataset("torchcfm_8gaussians"),
                                   Gaussian(SOURCE_MEAN, SOURCE_COV)])  # fmt: skip
@pytest.mark.parametrize("family", ["cnf_fm", "meanflow", "shortcut"])
def test_save_load_round_trips_a_prior_flow(family, prior, tmp_path):
    """build_model / load_model rebuild a flow with its prior from the hyperparameters alone:
    the loaded model's prior draws, samples and exact log-densities equal the saved one's."""
    import flowlab

    hp = {
        "family": family,
        "seed": 3,
        "width": 8,
        "depth": 1,
        "standardize_loc": [0.5, -1.0],
        "standardize_scale": [2.0, 0.7],
        "prior": prior.to_config(),
    }
    model = flowlab.build_model(hp)
    assert model.prior is not None
    flowlab.save_model(tmp_path / "m.eqx", model, hp)
    loaded, hp_back = flowlab.load_model(tmp_path / "m.eqx")
    assert hp_back["prior"] == prior.to_config()
    key = jax.random.key(5)
    np.testing.assert_array_equal(loaded.prior_sample(key, 16), model.prior_sample(key, 16))
    x = np.asarray(prior.sample(jax.random.key(6), 16))
    np.testing.assert_allclose(loaded.prior.log_prob(x), prior.log_prob(x), atol=1e-5)
    np.testing.assert_allclose(loaded.log_prob(x), model.log_prob(x), atol=1e-6)
    # the prior is in the hyperparameters, not a default: without it the density differs
    plain = flowlab.build_model({k: v for k, v in hp.items() if k != "prior"})
    assert plain.prior is None


def test_prior_config_round_trip_and_bad_config():
    from flowlab._prior import prior_from_config

    for prior in (Gaussian(SOURCE_MEAN, SOURCE_COV),
                  GaussianMixture(np.eye(2), 0.3, [1.0, 3.0])):  # fmt: skip
        back = prior_from_config(prior.to_config())
        x = np.asarray(prior.sample(jax.random.key(0), 32))
        np.testing.assert_allclose(back.log_prob(x), prior.log_prob(x), atol=1e-5)
    with pytest.raises(ValueError, match="expected a prior config with kind"):
        prior_from_config({"kind": "laplace"})
