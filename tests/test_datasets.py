"""Datasets: samplers against independent numpy references, densities and entropies against
quadrature, closed forms and Monte Carlo."""

import functools
import math
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from flowlab import datasets

# Tolerances (one place).
MC_SIGMAS = 4.0  # Monte Carlo checks: agreement within this many standard errors
NORMALISATION_ATOL = 1e-6  # grid / polar integrals of exp(log_prob) on steps <= std / 2
BRUTE_FORCE_ATOL = 1e-8  # log_prob against a brute-force 1-D rule (log p > -300)
N_MC = 200_000

KEY = jax.random.key(0)
DENSITY_NAMES = [n for n in datasets.NAMES if datasets.has_log_prob(n)]
ENTROPY_NAMES = [n for n in datasets.NAMES if datasets.has_entropy(n)]
SMOOTH_NAMES = [
    n
    for n in DENSITY_NAMES
    if n not in ("pinwheel", "checkerboard", "ffjord_checkerboard", "torchcfm_moons")
]
MIXTURES = ["gaussian_mixture", "ffjord_8gaussians", "torchcfm_8gaussians"]


@functools.cache
def big_sample(name):
    return np.asarray(datasets.sample(name, jax.random.key(1), N_MC), dtype=np.float64)


@functools.cache
def big_log_prob(name):
    return datasets.log_prob(name, big_sample(name))


def mean_and_se(v):
    return float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v)))


# --- independent numpy references of the definitions (FFJORD's code, i.i.d. where it was not)


def ref_spiral(rng, n):
    theta = rng.uniform(0, 6 * np.pi, n)
    r = 0.05 * theta
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1) + 0.04 * rng.standard_normal((n, 2))


def ref_pinwheel(rng, n):
    j = rng.integers(0, 3, n)
    r = rng.uniform(0, 1, n)
    t = 4 * j + 4 * r + 0.2 * rng.standard_normal(n)
    return np.stack([r * np.sin(t), r * np.cos(t)], 1)


def ref_checkerboard(rng, n):
    x1 = rng.random(n) * 4 - 2
    x2_ = rng.random(n) - rng.integers(0, 2, n) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    return np.concatenate([x1[:, None], x2[:, None]], 1) * 2


def ref_gaussian_mixture(rng, n):
    k = rng.integers(0, 7, n)
    a = 2 * np.pi * k / 7
    return 1.2 * np.stack([np.cos(a), np.sin(a)], 1) + 0.12 * rng.standard_normal((n, 2))


def ref_8gaussians(rng, n):
    s = 1 / np.sqrt(2)
    centers = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    point = rng.standard_normal((n, 2)) * 0.5 + centers[rng.integers(0, 8, n)]
    return point / 1.414


def ref_ffjord_pinwheel(rng, n):  # FFJORD's code verbatim, numpy RNG
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    num_per_class = n // 5
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.standard_normal((num_classes * num_per_class, 2)) * np.array(
        [radial_std, tangential_std]
    )
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), num_per_class)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = np.reshape(rotations.T, (-1, 2, 2))
    return 2 * rng.permutation(np.einsum("ti,tij->tj", features, rotations))


def ref_2spirals(rng, n):  # FFJORD's code verbatim
    m = np.sqrt(rng.random((n // 2, 1))) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(m) * m + rng.random((n // 2, 1)) * 0.5
    d1y = np.sin(m) * m + rng.random((n // 2, 1)) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    return x + rng.standard_normal(x.shape) * 0.1


def ref_moons(rng, n):  # sklearn.datasets.make_moons(noise=0.1) with its linspace, then FFJORD's
    n_out = n // 2
    a_out = np.linspace(0, np.pi, n_out)
    a_in = np.linspace(0, np.pi, n - n_out)
    x = np.vstack(
        [
            np.stack([np.cos(a_out), np.sin(a_out)], 1),
            np.stack([1 - np.cos(a_in), 1 - np.sin(a_in) - 0.5], 1),
        ]
    )
    x = x + 0.1 * rng.standard_normal(x.shape)
    return x * 2 + np.array([-1, -0.2])


def ref_circles(rng, n):  # sklearn.datasets.make_circles(factor=.5, noise=0.08), then * 3
    n_out = n // 2
    a_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    a_in = np.linspace(0, 2 * np.pi, n - n_out, endpoint=False)
    x = np.vstack(
        [
            np.stack([np.cos(a_out), np.sin(a_out)], 1),
            0.5 * np.stack([np.cos(a_in), np.sin(a_in)], 1),
        ]
    )
    return 3 * (x + 0.08 * rng.standard_normal(x.shape))


def ref_rings(rng, n):  # FFJORD's code, linspace rings
    parts = []
    for i, radius in enumerate([1.0, 0.75, 0.5, 0.25]):
        m = n // 4 if i < 3 else n - 3 * (n // 4)
        a = np.linspace(0, 2 * np.pi, m, endpoint=False)
        parts.append(radius * np.stack([np.cos(a), np.sin(a)], 1))
    x = np.vstack(parts) * 3.0
    return x + rng.normal(scale=0.08, size=x.shape)


def ref_swissroll(rng, n):  # sklearn.datasets.make_swiss_roll(noise=1.0)[:, [0, 2]] / 5
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.standard_normal((n, 2))
    return x / 5


def ref_torchcfm_8gaussians(rng, n):  # torchcfm eight_normal_sample(n, 2, scale=5, var=0.1)
    s = 1 / np.sqrt(2)
    centers = 5 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    cov = np.sqrt(0.1) * np.eye(2)  # passed to MultivariateNormal as the covariance
    noise = rng.multivariate_normal(np.zeros(2), cov, n)
    return centers[rng.integers(0, 8, n)] + noise


def ref_torchcfm_moons(rng, n):  # torchdyn generate_moons(n, noise=0.2) * 3 - 1, verbatim
    n_out = n // 2
    n_in = n - n_out
    x = np.vstack(
        [
            np.append(
                np.cos(np.linspace(0, np.pi, n_out)), 1 - np.cos(np.linspace(0, np.pi, n_in))
            ),
            np.append(
                np.sin(np.linspace(0, np.pi, n_out)), 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
            ),
        ]
    ).T
    x += rng.random((n, 1)) * 0.2
    return x * 3 - 1


def ref_torchcfm_scurve(rng, n):  # sklearn make_s_curve(noise=0.05)[:, [0, 2]] * 1.5
    t = 3 * np.pi * (rng.random(n) - 0.5)
    x = np.stack([np.sin(t), 2.0 * rng.random(n), np.sign(t) * (np.cos(t) - 1)], 1)
    x += 0.05 * rng.standard_normal((n, 3))
    return x[:, [0, 2]] * 1.5


REFERENCES = {
    "spiral": ref_spiral,
    "pinwheel": ref_pinwheel,
    "checkerboard": ref_checkerboard,
    "gaussian_mixture": ref_gaussian_mixture,
    "ffjord_8gaussians": ref_8gaussians,
    "ffjord_pinwheel": ref_ffjord_pinwheel,
    "ffjord_2spirals": ref_2spirals,
    "ffjord_moons": ref_moons,
    "ffjord_circles": ref_circles,
    "ffjord_rings": ref_rings,
    "ffjord_swissroll": ref_swissroll,
    "ffjord_checkerboard": ref_checkerboard,
    "torchcfm_8gaussians": ref_torchcfm_8gaussians,
    "torchcfm_moons": ref_torchcfm_moons,
    "torchcfm_scurve": ref_torchcfm_scurve,
}


# --- names and the sampler contract -----------------------------------------------------------


def test_names():
    assert datasets.COURSE_NAMES == ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
    assert set(datasets.NAMES) == set(REFERENCES)
    assert len(set(datasets.NAMES)) == len(datasets.NAMES)
    assert all(n.startswith("ffjord_") for n in datasets.FFJORD_NAMES)
    assert datasets.TORCHCFM_NAMES == ("torchcfm_8gaussians", "torchcfm_moons", "torchcfm_scurve")
    assert set(datasets.NAMES) - set(DENSITY_NAMES) == {"ffjord_pinwheel", "ffjord_2spirals"}
    assert set(DENSITY_NAMES) - set(ENTROPY_NAMES) == {"torchcfm_moons"}
    for name in datasets.NAMES:
        assert callable(getattr(datasets, name))
        assert name in datasets.__all__


@pytest.mark.parametrize("name", datasets.NAMES)
def test_sampler_is_deterministic_per_key(name):
    n = 500  # the hold-out size: one compilation shared with test_split_uses_independent_keys
    x = datasets.sample(name, KEY, n)
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    assert np.isfinite(np.asarray(x)).all()
    np.testing.assert_array_equal(x, datasets.sample(name, KEY, n))
    np.testing.assert_array_equal(x, getattr(datasets, name)(KEY, n))
    other = np.asarray(datasets.sample(name, jax.random.key(7), n))
    assert not np.any(np.all(other == np.asarray(x), axis=1))  # no point repeats across keys
    assert np.ptp(np.asarray(x), axis=0).min() > 0.5  # a real spread, not a constant


@pytest.mark.parametrize("name", datasets.NAMES)
def test_split_uses_independent_keys(name):
    key = jax.random.key(3)
    train, holdout = datasets.split(name, key)
    assert train.shape == (2000, 2) and holdout.shape == (500, 2)
    k_train, k_holdout = jax.random.split(key)
    np.testing.assert_array_equal(train, datasets.sample(name, k_train, 2000))
    np.testing.assert_array_equal(holdout, datasets.sample(name, k_holdout, 500))
    assert not np.any(np.all(np.asarray(train[:500]) == np.asarray(holdout), axis=1))


@pytest.mark.parametrize("name", datasets.NAMES)
def test_sampler_matches_numpy_reference(name):
    """Two-sample chi-square on a 6 x 6 grid of pooled-quantile cells, 200k points each."""
    ours = big_sample(name)
    ref = REFERENCES[name](np.random.default_rng(2), N_MC)
    pooled = np.vstack([ours, ref])
    edges = [np.quantile(pooled[:, i], np.linspace(0, 1, 7)) for i in range(2)]
    for e in edges:
        e[0], e[-1] = -np.inf, np.inf
    a, _, _ = np.histogram2d(ours[:, 0], ours[:, 1], bins=edges)
    b, _, _ = np.histogram2d(ref[:, 0], ref[:, 1], bins=edges)
    used = (a + b) > 0
    chi2 = np.sum((a - b)[used] ** 2 / (a + b)[used])
    assert stats.chi2.sf(chi2, used.sum() - 1) > 1e-4, (name, chi2, used.sum())


# --- errors -----------------------------------------------------------------------------------


def test_unknown_name_raises_with_valid_names():
    msg = r"unknown dataset 'foo'; expected one of: spiral, pinwheel, checkerboard"
    for call in (
        lambda: datasets.sample("foo", KEY, 10),
        lambda: datasets.split("foo", KEY),
        lambda: datasets.log_prob("foo", np.zeros((3, 2))),
        lambda: datasets.entropy("foo"),
        lambda: datasets.entropy_with_error("foo"),
        lambda: datasets.has_log_prob("foo"),
        lambda: datasets.has_entropy("foo"),
        lambda: datasets.gaussian_mixture_params("foo"),
    ):
        with pytest.raises(ValueError, match=msg):
            call()


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_bad_n_raises(n):
    msg = re.escape(f"n must be a positive integer, got {n!r}")
    with pytest.raises(ValueError, match=msg):
        datasets.sample("spiral", KEY, n)
    with pytest.raises(ValueError, match=msg):
        datasets.spiral(KEY, n)
    with pytest.raises(ValueError, match=msg.replace("n", "n_train", 1)):
        datasets.split("spiral", KEY, n_train=n)


def test_legacy_key_and_numpy_int_n_are_accepted():
    np.testing.assert_array_equal(
        datasets.sample("spiral", jax.random.PRNGKey(0), 500), datasets.sample("spiral", KEY, 500)
    )
    np.testing.assert_array_equal(
        datasets.sample("spiral", KEY, np.int64(5)), datasets.sample("spiral", KEY, 5)
    )


def test_bad_key_raises():
    with pytest.raises(ValueError, match="key must be one JAX PRNG key"):
        datasets.sample("spiral", 0, 10)
    with pytest.raises(ValueError, match="key must be one JAX PRNG key"):
        datasets.sample("spiral", jax.random.split(KEY, 2), 10)


@pytest.mark.parametrize("shape", [(3,), (3, 3), (2, 3, 2), ()])
def test_log_prob_wrong_shape_raises(shape):
    with pytest.raises(
        ValueError, match=re.escape(f"expected x of shape (n, 2), got shape {shape}")
    ):
        datasets.log_prob("gaussian_mixture", np.zeros(shape))


@pytest.mark.parametrize("name", ["ffjord_pinwheel", "ffjord_2spirals"])
def test_unavailable_density_and_entropy_raise(name):
    assert not datasets.has_log_prob(name) and not datasets.has_entropy(name)
    with pytest.raises(
        ValueError,
        match=f"no exact log-density for '{name}'; log_prob is available for: spiral, pinwheel",
    ):
        datasets.log_prob(name, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=f"no entropy for '{name}'.*not for: ffjord_pinwheel"):
        datasets.entropy(name)
    with pytest.raises(ValueError, match="gaussian_mixture_params expects"):
        datasets.gaussian_mixture_params(name)


# --- Gaussian mixtures ------------------------------------------------------------------------


def test_gaussian_mixture_params_match_definitions():
    means, std, weights = datasets.gaussian_mixture_params("gaussian_mixture")
    k = np.arange(7)
    np.testing.assert_allclose(
        means, 1.2 * np.stack([np.cos(2 * np.pi * k / 7), np.sin(2 * np.pi * k / 7)], 1), atol=1e-15
    )
    assert std == 0.12 and np.allclose(weights, 1 / 7)
    means, std, weights = datasets.gaussian_mixture_params("ffjord_8gaussians")
    np.testing.assert_allclose(np.hypot(means[:, 0], means[:, 1]), 4 / 1.414, rtol=1e-15)
    assert sorted(np.round(np.degrees(np.arctan2(means[:, 1], means[:, 0])) % 360)) == list(
        range(0, 360, 45)
    )
    assert std == 0.5 / 1.414 and np.allclose(weights, 1 / 8)
    means, std, weights = datasets.gaussian_mixture_params("torchcfm_8gaussians")
    np.testing.assert_allclose(np.hypot(means[:, 0], means[:, 1]), 5.0, rtol=1e-15)
    assert std == pytest.approx(0.1**0.25, rel=1e-15) and np.allclose(weights, 1 / 8)


@pytest.mark.parametrize("name", MIXTURES)
def test_mixture_log_prob_matches_scipy(name):
    means, std, weights = datasets.gaussian_mixture_params(name)
    x = np.random.default_rng(0).uniform(-6, 6, (500, 2))
    comps = np.stack([stats.multivariate_normal(m, std**2).logpdf(x) for m in means], 1)
    expected = special.logsumexp(comps, b=weights, axis=1)
    np.testing.assert_allclose(datasets.log_prob(name, x), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", MIXTURES)
def test_mixture_moments(name):
    """Empirical mean and second moments of 200k samples vs the mixture's, within MC error."""
    means, std, weights = datasets.gaussian_mixture_params(name)
    mean = weights @ means
    second = std**2 * np.eye(2) + np.einsum("k,ki,kj->ij", weights, means, means)
    x = big_sample(name)
    n = len(x)
    se_mean = x.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(0) - mean) < MC_SIGMAS * se_mean)
    for i in range(2):
        for j in range(2):
            m, se = mean_and_se(x[:, i] * x[:, j])
            assert abs(m - second[i, j]) < MC_SIGMAS * se, (i, j, m, second[i, j], se)
    cov = second - np.outer(mean, mean)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.02 * cov[0, 0])


def test_mixture_entropy_near_separated_limit():
    """Well separated: H ~ log K + log(2 pi e s^2), from below (overlap lowers it)."""
    for name, tol in (("gaussian_mixture", 1e-4), ("ffjord_8gaussians", 0.02)):
        means, std, _ = datasets.gaussian_mixture_params(name)
        limit = math.log(len(means)) + 1 + math.log(2 * math.pi * std**2)
        assert limit - tol < datasets.entropy(name) < limit


# --- log_prob: normalisation, brute-force references, histograms -------------------------------

# A box holding all but ~e^-40 of the mass, and a grid step (at most std / 2).
GRIDS = {
    "spiral": ((-1.4, 1.4), (-1.4, 1.4), 0.02),
    "gaussian_mixture": ((-2.6, 2.6), (-2.6, 2.6), 0.04),
    "ffjord_8gaussians": ((-6.5, 6.5), (-6.5, 6.5), 0.1),
    "ffjord_moons": ((-4.5, 4.5), (-3.5, 3.5), 0.08),
    "ffjord_swissroll": ((-4.5, 4.5), (-4.5, 4.5), 0.08),
    "ffjord_circles": ((-5.5, 5.5), (-5.5, 5.5), 0.1),
    "ffjord_rings": ((-4.0, 4.0), (-4.0, 4.0), 0.03),
    "torchcfm_8gaussians": ((-9.0, 9.0), (-9.0, 9.0), 0.1),
    "torchcfm_scurve": ((-2.6, 2.6), (-4.2, 4.2), 0.03),
}


def grid_points(name, midpoints=False):
    (a1, b1), (a2, b2), h = GRIDS[name]
    shift = h / 2 if midpoints else 0.0
    g1 = np.arange(a1 + shift, b1, h)
    g2 = np.arange(a2 + shift, b2, h)
    return np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2), h


@pytest.mark.parametrize("name", SMOOTH_NAMES)
def test_log_prob_integrates_to_one_on_grid(name):
    assert set(GRIDS) == set(SMOOTH_NAMES)
    x, h = grid_points(name)
    mass = np.exp(datasets.log_prob(name, x)).sum() * h**2
    assert abs(mass - 1) < NORMALISATION_ATOL, mass


@pytest.mark.parametrize("name", ["checkerboard", "ffjord_checkerboard"])
def test_checkerboard_log_prob(name):
    g = np.arange(-5 + 0.025, 5, 0.05)  # midpoints: exact for a piecewise constant density
    x = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lp = datasets.log_prob(name, x)
    assert np.exp(lp).sum() * 0.05**2 == pytest.approx(1.0, abs=1e-12)
    assert set(np.unique(lp)) == {-np.inf, -math.log(32)}
    # squares of side 2: (0, 0) to (2, 2) is on the support, (2, 0) to (4, 2) is not
    np.testing.assert_array_equal(
        datasets.log_prob(name, [[1.0, 1.0], [3.0, 1.0], [-1.0, -1.0], [4.0, 0.5], [-4.0, 0.5]]),
        [-math.log(32), -np.inf, -math.log(32), -np.inf, -math.log(32)],
    )
    # every one of the 8 squares gets 1/8 of 200k samples, within MC error
    s = big_sample(name)
    assert np.all(np.isfinite(big_log_prob(name)))
    cells = np.floor(s / 2).astype(int) + 2  # in 0..3
    counts = np.zeros((4, 4))
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    black = (np.add.outer(np.arange(4), np.arange(4)) % 2) == 0
    assert np.all(counts[~black] == 0)
    se = math.sqrt(N_MC * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts[black] - N_MC / 8) < MC_SIGMAS * se), counts


def test_pinwheel_log_prob_integrates_to_one_in_polar_coordinates():
    """p has an integrable 1/r singularity at 0, so integrate p(x) r dr dphi (no singularity):
    Gauss-Legendre in r on (0, 1), periodic trapezoid in phi."""
    r, wr = np.polynomial.legendre.leggauss(200)
    r, wr = (r + 1) / 2, wr / 2
    phi = np.arange(512) * (2 * np.pi / 512)
    rr, pp = np.meshgrid(r, phi, indexing="ij")
    x = np.stack([rr * np.sin(pp), rr * np.cos(pp)], -1).reshape(-1, 2)
    p = np.exp(datasets.log_prob("pinwheel", x)).reshape(rr.shape)
    mass = np.sum(wr[:, None] * rr * p) * (2 * np.pi / 512)
    assert abs(mass - 1) < 1e-10
    outside = np.array([[1.0, 0.0], [0.0, 1.5], [-3.0, 2.0], [0.6, -0.8]])
    assert np.all(datasets.log_prob("pinwheel", outside) == -np.inf)


def test_pinwheel_log_prob_matches_direct_formula():
    x = np.random.default_rng(1).uniform(-1, 1, (400, 2))
    r = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 0], x[:, 1])
    total = sum(
        stats.norm.pdf(phi + 2 * np.pi * k, loc=4 * j + 4 * r, scale=0.2)
        for j in range(3)
        for k in range(-4, 5)
    )
    with np.errstate(divide="ignore"):
        expected = np.where(r < 1, np.log(total / 3 / r), -np.inf)
    keep = expected > -300
    np.testing.assert_allclose(datasets.log_prob("pinwheel", x)[keep], expected[keep], atol=1e-10)


def brute_force_curve_log_prob(x, curves, std, panels=10_000):
    """(1/M) sum_m average over t of N(x; c_m(t), std^2 I): 10-point Gauss-Legendre on 10k
    uniform panels in t per curve (100k nodes; no adaptivity, unlike the library's rule)."""
    gx, gw = np.polynomial.legendre.leggauss(10)
    per_curve = []
    for fn, lo, hi in curves:
        edges = np.linspace(lo, hi, panels + 1)
        mid, half = (edges[1:] + edges[:-1])[:, None] / 2, (edges[1:] - edges[:-1])[:, None] / 2
        t, w = (mid + half * gx).ravel(), (half * gw).ravel() / (hi - lo)
        parts = []
        for start in range(0, len(t), 20_000):
            c = fn(t[start : start + 20_000])
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            parts.append(special.logsumexp(-d2 / (2 * std**2), b=w[start : start + 20_000], axis=1))
        per_curve.append(special.logsumexp(np.stack(parts, 1), axis=1))
    log_p = special.logsumexp(np.stack(per_curve, 1), axis=1) - math.log(len(curves))
    return log_p - math.log(2 * np.pi * std**2)


CURVES = {
    "spiral": (
        [(lambda t: 0.05 * t[:, None] * np.stack([np.cos(t), np.sin(t)], 1), 0, 6 * np.pi)],
        0.04,
    ),
    "ffjord_moons": (
        [
            (lambda a: np.stack([2 * np.cos(a) - 1, 2 * np.sin(a) - 0.2], 1), 0, np.pi),
            (
                lambda a: np.stack([2 * (1 - np.cos(a)) - 1, 2 * (0.5 - np.sin(a)) - 0.2], 1),
                0,
                np.pi,
            ),
        ],
        0.2,
    ),
    "ffjord_swissroll": (
        [(lambda t: np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5, 1.5 * np.pi, 4.5 * np.pi)],
        0.2,
    ),
    "ffjord_circles": (
        [
            (lambda a: 3 * np.stack([np.cos(a), np.sin(a)], 1), 0, 2 * np.pi),
            (lambda a: 1.5 * np.stack([np.cos(a), np.sin(a)], 1), 0, 2 * np.pi),
        ],
        0.24,
    ),
    "ffjord_rings": (
        [
            (lambda a, r=r: r * np.stack([np.cos(a), np.sin(a)], 1), 0, 2 * np.pi)
            for r in (3.0, 2.25, 1.5, 0.75)
        ],
        0.08,
    ),
    "torchcfm_scurve": (
        [
            (
                lambda t: 1.5 * np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1)], 1),
                -1.5 * np.pi,
                1.5 * np.pi,
            )
        ],
        0.075,
    ),
}


@pytest.mark.parametrize("name", sorted(CURVES))
def test_log_prob_matches_brute_force_quadrature(name):
    """Against a brute-force rule along the curve, at samples and at points far from the
    data (down to log p = -300), where the narrow integrand is hardest."""
    curves, std = CURVES[name]
    rng = np.random.default_rng(5)
    near = big_sample(name)[:10]
    (a1, b1), (a2, b2), _ = GRIDS[name]
    far = np.stack([rng.uniform(a1, b1, 30), rng.uniform(a2, b2, 30)], 1)
    x = np.vstack([near, far])
    expected = brute_force_curve_log_prob(x, curves, std)
    keep = expected > -300
    assert keep.sum() > 25
    np.testing.assert_allclose(
        datasets.log_prob(name, x)[keep], expected[keep], atol=BRUTE_FORCE_ATOL, rtol=0
    )


def test_log_prob_accepts_jax_arrays_and_lists():
    x = datasets.sample("spiral", KEY, 50)
    lp = datasets.log_prob("spiral", x)
    assert isinstance(lp, np.ndarray) and lp.dtype == np.float64 and lp.shape == (50,)
    np.testing.assert_array_equal(lp, datasets.log_prob("spiral", np.asarray(x).tolist()))


@pytest.mark.parametrize("name", SMOOTH_NAMES)
def test_log_prob_matches_histogram(name):
    """Cell probabilities (midpoint rule on exp(log_prob)) vs counts of 200k samples in a
    4 x 4 partition of the plane: chi-square goodness of fit."""
    x, h = grid_points(name, midpoints=True)
    p = np.exp(datasets.log_prob(name, x)) * h**2
    (a1, b1), (a2, b2), _ = GRIDS[name]
    # cut lines on grid-cell boundaries, so that grid cells fall wholly in one region
    cuts1 = a1 + h * np.round((np.linspace(a1, b1, 5)[1:-1] - a1) / h)
    cuts2 = a2 + h * np.round((np.linspace(a2, b2, 5)[1:-1] - a2) / h)

    def region(pts):
        return np.searchsorted(cuts1, pts[:, 0]) * 4 + np.searchsorted(cuts2, pts[:, 1])

    expected = np.bincount(region(x), weights=p, minlength=16) * N_MC
    observed = np.bincount(region(big_sample(name)), minlength=16)
    used = expected > 5
    assert observed[~used].sum() < 20
    chi2 = np.sum((observed[used] - expected[used]) ** 2 / expected[used])
    assert stats.chi2.sf(chi2, used.sum() - 1) > 1e-4, (chi2, observed, expected.round())


def test_pinwheel_log_prob_matches_histogram():
    """Annular sectors (4 radii x 6 angles); masses by a polar midpoint rule."""
    nr, nphi = 200, 600
    r = (np.arange(nr) + 0.5) / nr
    phi = (np.arange(nphi) + 0.5) * (2 * np.pi / nphi)
    rr, pp = np.meshgrid(r, phi, indexing="ij")
    x = np.stack([rr * np.sin(pp), rr * np.cos(pp)], -1).reshape(-1, 2)
    p = np.exp(datasets.log_prob("pinwheel", x)) * rr.ravel() / nr * (2 * np.pi / nphi)

    def region(pts):
        radius = np.hypot(pts[:, 0], pts[:, 1])
        angle = np.mod(np.arctan2(pts[:, 0], pts[:, 1]), 2 * np.pi)
        return np.minimum((radius * 4).astype(int), 3) * 6 + (angle / (2 * np.pi) * 6).astype(int)

    expected = np.bincount(region(x), weights=p, minlength=24) * N_MC
    observed = np.bincount(region(big_sample("pinwheel")), minlength=24)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    assert stats.chi2.sf(chi2, 23) > 1e-4, (chi2, observed, expected.round())


# --- entropy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["checkerboard", "ffjord_checkerboard"])
def test_checkerboard_entropy_is_log_32(name):
    value, error = datasets.entropy_with_error(name)
    assert abs(value - math.log(32)) < 1e-12 and error == 0.0


@pytest.mark.parametrize("name", ENTROPY_NAMES)
def test_entropy_matches_monte_carlo(name):
    """H against -mean log p(x) over 200k samples: within 4 standard errors, plus 10x the
    reported quadrature error (itself < 1e-6)."""
    value, error = datasets.entropy_with_error(name)
    assert 0.0 <= error < 1e-6
    assert datasets.entropy(name) == value
    lp = big_log_prob(name)
    assert np.all(np.isfinite(lp))
    mc, se = mean_and_se(-lp)
    assert abs(mc - value) < MC_SIGMAS * se + 10 * error + 1e-12, (value, mc, se)


def test_pinwheel_conditional_angle_entropy_does_not_depend_on_r():
    """p(phi | r) = r p(x(r, phi)) is the same wrapped mixture rotated by 4r, so its entropy is
    the same for every r and equals H + 1 (H(X) = H(Phi | R) + E log R, E log R = -1)."""
    m = 4096
    phi = np.arange(m) * (2 * np.pi / m)
    h = datasets.entropy("pinwheel")
    assert -0.1 < h < -0.08
    for r in (0.01, 0.3, 0.77, 0.999):
        x = np.stack([r * np.sin(phi), r * np.cos(phi)], 1)
        q = r * np.exp(datasets.log_prob("pinwheel", x))
        assert abs(q.sum() * (2 * np.pi / m) - 1) < 1e-12
        h_r = -np.sum(q * np.log(q)) * (2 * np.pi / m)
        assert abs(h_r - (h + 1)) < 1e-10, (r, h_r, h + 1)
    # three well-separated wrapped normals: H(q) ~ log 3 + log(2 pi e 0.2^2) / 2
    assert abs((h + 1) - (math.log(3) + 0.5 * math.log(2 * math.pi * math.e * 0.04))) < 1e-3


def test_rings_entropy_near_thin_ring_limit():
    """Thin, separated rings: H ~ log M + mean_m log(2 pi rho_m) + log(2 pi e s^2) / 2."""
    for name, radii, std in (
        ("ffjord_rings", [3.0, 2.25, 1.5, 0.75], 0.08),
        ("ffjord_circles", [3.0, 1.5], 0.24),
    ):
        limit = (
            math.log(len(radii))
            + np.mean(np.log(2 * np.pi * np.array(radii)))
            + 0.5 * math.log(2 * math.pi * math.e * std**2)
        )
        assert abs(datasets.entropy(name) - limit) < 0.01, (name, datasets.entropy(name), limit)


def test_entropy_is_cached_and_fast():
    datasets.entropy_with_error.cache_clear()
    for name in ENTROPY_NAMES:
        start = time.perf_counter()
        datasets.entropy_with_error(name)
        assert time.perf_counter() - start < 2.0, name
    assert datasets.entropy_with_error.cache_info().currsize == len(ENTROPY_NAMES)


# --- torchcfm's moons: a uniform shift along (1, 1), closed-form density ------------------------


def test_torchcfm_moons_normalised_against_support_area():
    """E[1 / p(X)] over samples equals the area of the support for a normalised p (1/p is
    bounded on the support, so the Monte Carlo mean is well behaved); the area is counted on
    a grid of step 0.002 (error O(h))."""
    lp = big_log_prob("torchcfm_moons")
    assert np.all(np.isfinite(lp))
    inv = np.exp(-lp)
    mc, se = mean_and_se(inv)
    h = 0.002
    g1 = np.arange(-5 + h / 2, 6, h)
    area = 0.0
    for g2 in np.array_split(np.arange(-4 + h / 2, 5, h), 10):
        x = np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
        area += np.isfinite(datasets.log_prob("torchcfm_moons", x)).sum() * h**2
    assert abs(mc - area) < MC_SIGMAS * se + 0.01, (mc, se, area)


def brute_force_moons_density(x, grid=200_001):
    """Preimages found by a sign-change scan of y1 - y2 - (m1(a) - m2(a)) over a fine grid
    of a in [0, pi], refined by Newton; |det| by central differences."""
    y = (x + 1) / 3
    moons = (
        lambda a: np.stack([np.cos(a), np.sin(a)], -1),
        lambda a: np.stack([1 - np.cos(a), 0.5 - np.sin(a)], -1),
    )
    a = np.linspace(0, np.pi, grid)
    out = np.zeros(len(y))
    for m in moons:
        d = m(a)
        for i, yi in enumerate(y):
            f = (yi[0] - yi[1]) - (d[:, 0] - d[:, 1])
            for j in np.nonzero(np.sign(f[:-1]) != np.sign(f[1:]))[0]:
                r = a[j] - f[j] * (a[j + 1] - a[j]) / (f[j + 1] - f[j])
                for _ in range(3):
                    e = 1e-7
                    g = (yi[0] - yi[1]) - np.subtract(*m(np.array([r]))[0])
                    dg = -(
                        np.subtract(*m(np.array([r + e]))[0])
                        - np.subtract(*m(np.array([r - e]))[0])
                    ) / (2 * e)
                    r = r - g / dg
                u = yi[0] - m(np.array([r]))[0, 0]
                if 0 <= r <= np.pi and 0 <= u <= 0.2:
                    jac = (m(np.array([r + 1e-6]))[0] - m(np.array([r - 1e-6]))[0]) / 2e-6
                    det = abs(jac[0] - jac[1])  # det [m'(a), (1, 1)]
                    out[i] += 1 / (2 * np.pi * 0.2) / det
    return out / 9


def test_torchcfm_moons_log_prob_matches_brute_force():
    x = big_sample("torchcfm_moons")[:40]
    rng = np.random.default_rng(3)
    far = rng.uniform([-5, -4], [6, 5], (40, 2))
    pts = np.vstack([x, far])
    expected = brute_force_moons_density(pts)
    got = np.exp(datasets.log_prob("torchcfm_moons", pts))
    assert (expected > 0).sum() >= 40 and (expected == 0).sum() >= 10
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12)
