"""flowlab.evaluate against trusted references: closed-form densities, true samples scored
inside their own noise floor, sample diagnostics of samples moved where the data is not."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LOGPROB_ATOL, linear_flow_logpdf

import flowlab
from flowlab import CNF, Stats, datasets
from flowlab import evaluate as ev
from flowlab.vae import VAE

A = [[0.3, -0.8], [0.5, -0.2]]


class Linear(eqx.Module):
    a: jax.Array
    data_size: int = 2

    def __call__(self, t, x):
        return self.a @ x


class TrueSampler(flowlab.AbstractExactLikelihood):
    """A "model" that is the dataset itself: true samples, the true log-density."""

    dataset: str = eqx.field(static=True, default="gaussian_mixture")
    data_size: int = 2
    standardize: None = None
    trainable_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def likelihood_kind(self):
        return "exact"

    def sample_with_stats(self, key, n, *, sampler=None):
        return datasets.sample(self.dataset, key, n), Stats.fixed(1, 1)

    def log_prob_with_stats(self, x):
        return jnp.asarray(datasets.log_prob(self.dataset, np.asarray(x))), Stats.fixed(0, 0)

    def likelihood_label(self):
        return "exact: the true density"


def _true(name, seed, n):
    return np.asarray(datasets.sample(name, jax.random.key(seed), n), np.float64)


def test_exact_likelihood_of_a_linear_cnf_is_its_closed_form():
    x = 1.5 * np.asarray(jax.random.normal(jax.random.key(0), (300, 2)))
    lik = ev.likelihood(CNF(Linear(jnp.asarray(A))), x, key=jax.random.key(1))
    expected = -linear_flow_logpdf(x, A)
    m = lik.metrics
    assert m["likelihood_kind"] == "exact"
    assert m["holdout_nll"] == pytest.approx(expected.mean(), abs=LOGPROB_ATOL)
    assert m["holdout_nll_se"] == pytest.approx(expected.std(ddof=1) / np.sqrt(300), rel=1e-3)
    np.testing.assert_allclose(-lik.log_prob, expected, atol=LOGPROB_ATOL, rtol=0)
    assert m["holdout_nll_estimator"].startswith("exact")
    assert m["log_prob_nfe"] == 6 * m["log_prob_steps"] + 1 and m["log_prob_time_s"] > 0
    assert "_log_prob" not in m and "holdout_neg_bound" not in m


def test_vae_bounds_lie_above_its_exact_nll():
    train, holdout = datasets.split("pinwheel", jax.random.key(0), 500, 300)
    vae = VAE.from_mlps(
        2, 2, width=16, depth=2, standardize=flowlab.Standardize.fit(train),
        quadrature_size=128, key=jax.random.key(1),
    )  # fmt: skip
    m = ev.likelihood(vae, holdout, key=jax.random.key(2), iwae_k=64).metrics
    assert m["likelihood_kind"] == "exact" and m["bound_name"] == VAE.bound_name
    se = np.hypot(m["holdout_nll_se"], m["holdout_neg_bound_se"])
    # -ELBO >= -IWAE(64) >= NLL (each a Monte Carlo estimate: to within 3 standard errors)
    assert m["holdout_neg_bound"] >= m["holdout_neg_iwae"] - 3 * se
    assert m["holdout_neg_iwae"] >= m["holdout_nll"] - 3 * m["holdout_neg_iwae_se"]
    assert m["holdout_neg_bound"] > m["holdout_nll"]
    assert m["iwae_k"] == 64


def test_true_samples_score_inside_the_noise_floor():
    name = "gaussian_mixture"
    train, holdout = datasets.split(name, jax.random.key(0))
    model = TrueSampler(name)
    e = ev.evaluate(model, name, train, holdout, key=jax.random.key(3), n_samples=2000)
    m = e.metrics
    # the exact NLL is the true density's, and the paired KL is exactly zero
    assert m["holdout_nll"] == pytest.approx(m["oracle_holdout_nll"], abs=1e-6)
    assert m["kl_data_to_model"] == pytest.approx(0.0, abs=1e-6)  # float32 log_prob
    assert abs(m["nll_gap_to_entropy"]) < 3 * m["holdout_nll_se"]
    # the energy distance to fresh true samples is within the floor's own spread
    floor = m["noise_floor"]["energy_distance"]
    assert floor["rms"] > 0 and m["noise_floor"]["pairs"] == ev.FLOOR_PAIRS
    assert abs(m["energy_distance_to_true"]) < 3 * floor["rms"]
    # model and oracle are the same distribution: their KDE scores agree within their SE
    kde, kde_o = m["kde_loglik"], m["kde_loglik_oracle"]
    assert abs(kde["mean"] - kde_o["mean"]) < 3 * np.hypot(kde["se"], kde_o["se"])
    assert m["diagnostics"]["status"] == "ok" and m["diagnostics"]["modes_dropped"] == []
    assert m["diagnostics"]["off_support"] < 0.03
    assert m["sample_diagnostic"] == "ok" and m["sample_nfe"] == 1


def test_noise_floor_is_the_rms_over_pairs_and_shrinks_with_n():
    small = ev.noise_floor("pinwheel", 200, key=jax.random.key(0), pairs=6, full=True)
    large = ev.noise_floor("pinwheel", 2000, key=jax.random.key(0), pairs=6)
    k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(0), 0))
    first = flowlab.metrics.energy_distance(
        datasets.sample("pinwheel", k1, 200), datasets.sample("pinwheel", k2, 200)
    )
    assert small["energy_distance"]["first_pair"] == pytest.approx(abs(first))
    e = small["energy_distance"]
    assert e["rms"] ** 2 == pytest.approx(e["mean"] ** 2 + e["std"] ** 2 * 5 / 6, rel=1e-9)
    # the energy distance's noise falls like 1/n
    assert large["energy_distance"]["rms"] < 0.3 * e["rms"]
    assert set(small) >= {"energy_distance", "bhattacharyya", "w2", "mmd", "pairs", "n"}


def test_sample_metrics_flag_non_finite_and_collapsed_samples():
    ref, holdout = _true("pinwheel", 0, 500), _true("pinwheel", 1, 200)
    bad = ref.copy()
    bad[:7] = np.nan
    m = ev.sample_metrics(bad, holdout, ref)
    assert m["sample_diagnostic"] == "non-finite: 7 of 500 samples"
    assert m["kde_loglik"] is None and m["energy_distance"] is None
    collapsed = np.repeat(ref[:1], 500, axis=0)
    m = ev.sample_metrics(collapsed, holdout, ref, full=True)
    assert m["sample_diagnostic"].startswith("degenerate") and m["kde_loglik"] is None
    assert m["energy_distance"] > 0.1 and m["w2"] > 0.1
    d = ev.diagnostics(collapsed, ref, dataset="pinwheel")
    assert d["status"].startswith("collapsed:") and d["degenerate"] and d["n_distinct"] == 1


def test_checkerboard_samples_in_the_empty_squares_are_all_off_support():
    ref = _true("checkerboard", 0, 2000)
    good = ev.diagnostics(_true("checkerboard", 1, 2000), ref, dataset="checkerboard")
    assert good["zero_density_fraction"] == 0.0 and good["off_support"] < 0.03
    assert good["mode_unassigned"] == 0.0 and good["modes_dropped"] == []
    np.testing.assert_allclose(good["mode_weights"], 1 / 8, atol=0.03)
    shifted = ref.copy()
    shifted[:, 0] = np.where(shifted[:, 0] < 2.0, shifted[:, 0] + 2.0, shifted[:, 0] - 6.0)
    bad = ev.diagnostics(shifted, ref, dataset="checkerboard")
    assert bad["zero_density_fraction"] == 1.0 and bad["off_support"] == 1.0
    assert bad["mode_unassigned"] == 1.0 and bad["mode_coverage"] == 0.0


def test_a_dropped_mixture_component_has_weight_zero():
    name = "gaussian_mixture"
    means, _, weights = datasets.gaussian_mixture_params(name)
    ref = _true(name, 0, 3000)
    x = _true(name, 1, 3000)
    nearest = np.argmin(np.linalg.norm(x[:, None] - means[None], axis=-1), axis=1)
    d = ev.diagnostics(x[nearest != 3], ref, dataset=name)
    assert d["mode_weights"][3] == 0.0 and d["modes_dropped"] == [3]
    assert d["mode_coverage"] == pytest.approx(1 - 1 / 7)
    assert d["status"].startswith("dropped modes") or d["status"].startswith("low coverage")
    others = np.delete(np.asarray(d["mode_weights"]), 3)
    np.testing.assert_allclose(others, 1 / 6, atol=0.03)
    np.testing.assert_allclose(d["mode_weights_true"], weights)


def test_pinwheel_arms_are_the_modes():
    ref = _true("pinwheel", 0, 3000)
    x = _true("pinwheel", 1, 3000)
    arm, weights = ev.mode_assignment("pinwheel", x)
    np.testing.assert_allclose(np.bincount(arm, minlength=3) / len(x), weights, atol=0.03)
    d = ev.diagnostics(x[arm != 0], ref, dataset="pinwheel")
    assert d["modes_dropped"] == [0] and d["mode_weights"][0] == 0.0
    assert ev.mode_assignment("spiral", x) is None


def test_far_out_samples_are_counted():
    ref = _true("pinwheel", 0, 2000)
    x = ref.copy()
    x[:100] += 50.0
    d = ev.diagnostics(x, ref, dataset="pinwheel")
    assert d["outside_box"] == pytest.approx(0.05) and d["outside_fraction"] == pytest.approx(0.05)
    assert d["zero_density_fraction"] == pytest.approx(0.05)


def test_generalisation_gap_is_the_paired_chunk_difference_with_its_standard_error():
    """With a loss whose value is known (the mean squared norm of the points, the model
    ignored), the gap, its SE and the two losses equal the numpy computation; the same
    points in both roles give a gap of exactly zero."""
    train = np.asarray(jax.random.normal(jax.random.key(0), (700, 2)))
    holdout = 1.5 * np.asarray(jax.random.normal(jax.random.key(1), (500, 2)))

    def loss(model, x, key):
        return jnp.mean(jnp.sum(x**2, axis=-1))

    got = flowlab.evaluate.generalisation_gap(None, loss, train, holdout, key=jax.random.key(2))
    sq = lambda a: (a**2).sum(-1).reshape(10, 50).mean(1)  # noqa: E731
    d = sq(holdout) - sq(train[:500])
    assert got["gap"] == pytest.approx(d.mean(), rel=1e-5)
    assert got["gap_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(10), rel=1e-4)
    assert got["train_loss"] == pytest.approx(2.0, abs=0.2)  # E|x|^2 = 2
    assert got["holdout_loss"] == pytest.approx(4.5, abs=0.5)  # 1.5^2 * 2
    assert got["z"] > 10
    same = flowlab.evaluate.generalisation_gap(None, loss, holdout, holdout, key=jax.random.key(2))
    assert same["gap"] == 0.0 and same["z"] is None
    with pytest.raises(ValueError, match="at least 20 hold-out points"):
        flowlab.evaluate.generalisation_gap(None, loss, train, holdout[:10], key=jax.random.key(2))
