"""CNF likelihoods and sampling against closed forms, autodiff and each other."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LOGPROB_ATOL, linear_flow_logpdf

import flowlab
from flowlab import CNF, FlowMatching, Standardize, datasets
from flowlab.nn import MLPVectorField

MATRICES = [
    [[0.0, 0.0], [0.0, 0.0]],
    [[0.5, 0.0], [0.0, -0.3]],
    [[0.3, -0.8], [0.5, -0.2]],
    [[-1.0, 2.0], [-0.5, 0.7]],
]


class Linear(eqx.Module):
    a: jax.Array
    data_size: int = 2

    def __call__(self, t, x):
        return self.a @ x


def _points(seed=0, n=300, scale=1.5):
    return scale * jax.random.normal(jax.random.key(seed), (n, 2))


@pytest.mark.parametrize("a", MATRICES)
def test_linear_field_log_prob_matches_closed_form(a):
    cnf = CNF(Linear(jnp.asarray(a)))
    x = _points()
    lp, stats = cnf.log_prob_with_stats(x)
    np.testing.assert_allclose(lp, linear_flow_logpdf(x, a), atol=LOGPROB_ATOL, rtol=0)
    assert bool(stats.success)
    assert int(stats.nfe) == 6 * int(stats.num_steps) + 1  # Dopri5: 6 per step + the FSAL start


def test_rms_norm_controller_matches_closed_form_with_fewer_steps():
    a = MATRICES[3]
    x = _points()
    lp_max, st_max = CNF(Linear(jnp.asarray(a))).log_prob_with_stats(x)
    lp_rms, st_rms = CNF(Linear(jnp.asarray(a)), norm="rms").log_prob_with_stats(x)
    # the RMS norm controls the batch's error as a whole: within the solve's rtol = 1e-5 of
    # the log-density (|log p| reaches 86 here; Dopri5's largest miss is 1.7e-4)
    np.testing.assert_allclose(lp_rms, linear_flow_logpdf(x, a), atol=LOGPROB_ATOL, rtol=1e-5)
    # the per-example max norm is the stricter control of the two
    assert int(st_rms.num_steps) <= int(st_max.num_steps)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.75])
def test_intermediate_time_density(t):
    a = MATRICES[2]
    cnf = CNF(Linear(jnp.asarray(a)))
    x = _points(1)
    np.testing.assert_allclose(
        cnf.log_prob(x, t=t), linear_flow_logpdf(x, a, t), atol=LOGPROB_ATOL, rtol=0
    )


def test_standardize_log_det_in_data_coordinates():
    a = np.asarray(MATRICES[3])
    loc, scale = jnp.array([2.0, -1.0]), jnp.array([3.0, 0.5])
    cnf = CNF(Linear(jnp.asarray(a)), standardize=Standardize(loc, scale))
    x = _points(2) * scale + loc
    z = (np.asarray(x) - np.asarray(loc)) / np.asarray(scale)
    expected = linear_flow_logpdf(z, a) - np.log(np.asarray(scale)).sum()
    np.testing.assert_allclose(cnf.log_prob(x), expected, atol=LOGPROB_ATOL, rtol=0)


def test_gradient_of_log_prob_matches_autodiff_of_closed_form():
    a0 = jnp.asarray(MATRICES[2])
    x = _points(3, n=64)

    def solver_nll(a):
        return -jnp.mean(CNF(Linear(a)).log_prob(x))

    def closed_nll(a):
        z = x @ jax.scipy.linalg.expm(-a).T
        return -jnp.mean(-0.5 * jnp.sum(z**2, -1) - jnp.log(2 * jnp.pi) - jnp.trace(a))

    np.testing.assert_allclose(jax.grad(solver_nll)(a0), jax.grad(closed_nll)(a0), atol=2e-3)


def _random_cnf(seed=0, **options):
    vf = MLPVectorField(2, width=32, depth=2, key=jax.random.key(seed))
    # scale up the random field so the flow is visibly non-Gaussian
    vf = jax.tree_util.tree_map(lambda p: 2.0 * p if eqx.is_inexact_array(p) else p, vf)
    return CNF(
        vf, standardize=Standardize(jnp.array([0.5, -0.5]), jnp.array([2.0, 1.0])), **options
    )


def test_sample_then_log_prob_round_trip():
    cnf = _random_cnf()
    key = jax.random.key(7)
    x, lp_forward = cnf.sample_and_log_prob(key, 200)
    np.testing.assert_allclose(x, cnf.sample(key, 200), atol=1e-4)
    np.testing.assert_allclose(cnf.log_prob(x), lp_forward, atol=5e-4)


def test_density_integrates_to_one_on_grid():
    cnf = _random_cnf()
    samples = np.asarray(cnf.sample(jax.random.key(0), 4000))
    lo, hi = samples.min(0) - 3.0, samples.max(0) + 3.0
    g0, g1 = np.linspace(lo[0], hi[0], 161), np.linspace(lo[1], hi[1], 161)
    xx, yy = np.meshgrid(g0, g1)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)
    p = np.exp(np.asarray(cnf.log_prob(grid)))
    total = p.sum() * (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert abs(total - 1.0) < 1e-2, total


def test_trajectory_ends_equal_samples():
    cnf = _random_cnf()
    key = jax.random.key(3)
    ts, xs = cnf.trajectories(key, 50, num_times=11)
    assert xs.shape == (11, 50, 2)
    np.testing.assert_allclose(xs[-1], cnf.sample(key, 50), atol=1e-4)
    z0 = jax.random.normal(key, (50, 2))
    np.testing.assert_allclose(xs[0], cnf.standardize.inverse(z0), atol=1e-6)


@pytest.mark.parametrize("d", [2, 3])
def test_batched_divergence_matches_the_jacobian_trace(d):
    vf = MLPVectorField(d, width=16, depth=2, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (7, d))
    t = 0.3
    fx, div = flowlab.batch_value_and_divergence(vf, t, x)
    jac = jax.vmap(jax.jacrev(lambda y: vf(t, y)))(x)  # reverse mode: an independent route
    np.testing.assert_allclose(fx, jax.vmap(lambda y: vf(t, y))(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(div, jnp.trace(jac, axis1=1, axis2=2), rtol=1e-5, atol=1e-5)
    probe = jax.random.rademacher(jax.random.key(2), x.shape, dtype=x.dtype)
    _, est = flowlab.batch_value_and_divergence(vf, t, x, probe)
    np.testing.assert_allclose(est, jnp.einsum("ni,nij,nj->n", probe, jac, probe), atol=1e-5)


def test_hutchinson_divergence_is_unbiased():
    vf = MLPVectorField(2, width=16, depth=2, key=jax.random.key(0))
    x, t = jnp.array([0.3, -1.2]), 0.4
    _, exact = flowlab.value_and_divergence(vf, t, x)
    probes = jax.random.rademacher(jax.random.key(1), (20000, 2), dtype=jnp.float32)
    est = jax.vmap(lambda e: flowlab.value_and_divergence(vf, t, x, e)[1])(probes)
    se = float(jnp.std(est)) / np.sqrt(len(est))
    assert se > 0  # the estimator is genuinely noisy
    assert abs(float(jnp.mean(est)) - float(exact)) < 4 * se
    # and through the whole solve: the average over keys approaches the exact log-density
    cnf = _random_cnf()
    pts = _points(4, n=4)
    exact_lp = cnf.log_prob(pts)
    keys = jax.random.split(jax.random.key(2), 64)
    hutch = jnp.stack([cnf.log_prob(pts, key=k) for k in keys])
    se = jnp.std(hutch, 0) / np.sqrt(len(keys))
    assert bool(jnp.all(jnp.abs(hutch.mean(0) - exact_lp) < 4 * se + 1e-4))


def test_solver_out_of_steps_raises_or_flags():
    cnf = _random_cnf(max_steps=2)
    x = _points(5, n=10)
    with pytest.raises(Exception, match="max_steps=2"):
        jax.block_until_ready(cnf.log_prob(x))
    lp, stats = cnf.log_prob_with_stats(x, throw=False)
    assert not bool(stats.success)
    assert bool(jnp.all(jnp.isnan(lp)))


def test_non_finite_field_raises():
    cnf = CNF(lambda t, x: x / 0.0 * 0.0, data_size=2)  # NaN everywhere
    with pytest.raises(Exception, match="non-finite"):
        jax.block_until_ready(cnf.sample(jax.random.key(0), 3))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((5, 3), np.float32), r"expected x of shape \(n, 2\).*got shape \(5, 3\)"),
        (np.zeros(4, np.float32), r"expected x of shape \(n, 2\)"),
        (np.array([[0.0, 1.0], [np.nan, 0.0]], np.float32), "non-finite"),
        (np.array([[np.inf, 1.0]], np.float32), "non-finite"),
    ],
)
def test_bad_input_gives_clear_error(x, match):
    cnf = CNF(Linear(jnp.eye(2)))
    with pytest.raises(ValueError, match=match):
        cnf.log_prob(x)


def test_plain_callable_learns_its_dimension_from_the_points():
    # A plain callable without data_size: log_prob reads d from the points (closed form of
    # f(x) = -x: log p_1(x) = log N(e^{t} x; 0, I) + 2 t over d = 3 coordinates); sampling
    # needs d and says so.
    cnf = CNF(lambda t, x: -x)
    x = 1.5 * jax.random.normal(jax.random.key(4), (50, 3))
    np.testing.assert_allclose(  # to the solve's rtol: |log p| reaches 72 here
        cnf.log_prob(jnp.asarray(x)),
        linear_flow_logpdf(x, -np.eye(3)),
        atol=LOGPROB_ATOL,
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="data_size"):
        cnf.sample(jax.random.key(0), 3)
    assert CNF(lambda t, x: -x, data_size=3).sample(jax.random.key(0), 3).shape == (3, 3)


def test_bad_construction():
    with pytest.raises(ValueError, match="adaptive"):
        CNF(Linear(jnp.eye(2)), solver=diffrax.Euler())
    with pytest.raises(ValueError, match="positive integer"):
        CNF(Linear(jnp.eye(2))).sample(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="one example of shape"):
        MLPVectorField(2, key=jax.random.key(0))(0.0, jnp.zeros((4, 2)))


def test_fixed_step_option_converges_to_adaptive():
    a = MATRICES[3]
    x = _points(6)
    ref = linear_flow_logpdf(x, a)
    errs = []
    for dt in (0.1, 0.05):
        cnf = CNF(Linear(jnp.asarray(a)), solver=diffrax.Heun(), dt0=dt)
        errs.append(float(np.max(np.abs(np.asarray(cnf.log_prob(x)) - ref))))
    # Heun is second order: halving the step divides the error by about 4
    assert 3.0 < errs[0] / errs[1] < 5.0, errs


def test_flow_matching_time_law_is_the_power_of_a_uniform():
    """``time_power=a``: t = u^(1/a) (density a t^(a-1)); the loss equals the hand-written
    regression with the same key splits, a = 1 is the uniform objective bit for bit, and a
    non-positive power is refused."""
    train, _ = datasets.split("pinwheel", jax.random.key(0))
    cnf = CNF(
        MLPVectorField(2, width=16, depth=2, key=jax.random.key(1)),
        standardize=Standardize.fit(train),
    )
    x, key = train[:256], jax.random.key(3)
    z1 = cnf.standardizer(2).forward(x)
    k0, kt, _, _ = jax.random.split(key, 4)
    z0 = jax.random.normal(k0, z1.shape, z1.dtype)
    t = jax.random.uniform(kt, (256,), z1.dtype) ** 0.5
    zt = t[:, None] * z1 + (1 - t[:, None]) * z0
    pred = jax.vmap(cnf.field)(t, zt)
    hand = jnp.mean(jnp.sum((pred - (z1 - z0)) ** 2, axis=-1))
    np.testing.assert_allclose(FlowMatching(time_power=2.0)(cnf, x, key), hand, rtol=1e-6)
    assert FlowMatching(time_power=1.0)(cnf, x, key) == FlowMatching()(cnf, x, key)
    with pytest.raises(ValueError, match="time_power > 0"):
        FlowMatching(time_power=0.0)
