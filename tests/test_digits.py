"""The digits dataset (split, dequantisation, logit pre-transform, bits/dim), the 2D labelled
samplers and the closed-form baselines, against exact references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("sklearn")

import flowlab  # noqa: E402
from flowlab import baselines  # noqa: E402
from flowlab.datasets import digits, labelled  # noqa: E402


def test_split_is_fixed_disjoint_and_complete():
    a, b = digits.split_digits(), digits.split_digits()
    assert (a.train.shape, a.validation.shape, a.test.shape) == ((1257, 64), (180, 64), (360, 64))
    np.testing.assert_array_equal(a.test, b.test)
    images, labels = digits.load_digits()
    rows = np.concatenate([a.train, a.validation, a.test])
    # every image used once: the multisets of rows agree
    key = lambda x: np.sort(x.view([("", x.dtype)] * 64).ravel())  # noqa: E731
    np.testing.assert_array_equal(key(np.ascontiguousarray(rows)), key(images))
    assert images.min() == 0 and images.max() == 16
    assert set(np.unique(a.test_labels)) == set(range(10))


def test_dequantize_stays_in_each_cell():
    s = digits.split_digits()
    v = np.asarray(digits.dequantize(s.test, jax.random.key(0), copies=2))
    assert v.shape == (720, 64)
    x = np.concatenate([s.test, s.test])
    assert np.all(np.floor(v * 17 + 1e-6) == x)  # v in [x/17, (x+1)/17)
    with pytest.raises(ValueError, match="levels 0-16"):
        digits.dequantize(s.test + 1, jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        digits.dequantize(s.test[:, :10], jax.random.key(0))


def test_logit_log_det_matches_autodiff():
    t = digits.LogitTransform(alpha=0.05)
    v = jax.random.uniform(jax.random.key(1), (5, 64))
    y, log_det = t.forward(v)
    for i in range(5):
        jac = jax.jacfwd(lambda r: t.forward(r[None])[0][0])(v[i])
        sign, ref = jnp.linalg.slogdet(jac)
        assert sign == 1
        assert float(log_det[i]) == pytest.approx(float(ref), rel=1e-5)
    np.testing.assert_allclose(t.inverse(y), v, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        digits.LogitTransform(alpha=0.5)


def test_uniform_model_scores_log2_17_bits_per_dim():
    # the uniform density on [0, 1)^64, pushed to y: log p_Y(y) = -log|det dy/dv|
    s = digits.split_digits()
    t = digits.LogitTransform()
    v = digits.dequantize(s.test, jax.random.key(2))
    _, log_det = t.forward(v)
    bpd = digits.bits_per_dim(-log_det, log_det)
    np.testing.assert_allclose(bpd, math.log2(17), rtol=1e-12)
    # and through the inverse's Jacobian, by autodiff: p_Y(y) = |det dv/dy|
    y, ld = t.forward(v[:3])
    for i in range(3):
        jac = jax.jacfwd(lambda r: t.inverse(r[None])[0])(y[i])
        lp = jnp.linalg.slogdet(jac)[1]
        assert digits.bits_per_dim(np.array([lp]), np.array([ld[i]]))[0] == pytest.approx(
            math.log2(17), abs=2e-5
        )


def test_gaussian_baseline_is_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    x = rng.multivariate_normal(np.arange(4.0), cov, size=500)
    g = baselines.Gaussian.fit(x)
    mu, sig = x.mean(0), np.cov(x.T, bias=True)
    import scipy.stats

    ref = scipy.stats.multivariate_normal(mu, sig).logpdf(x[:20])
    np.testing.assert_allclose(np.asarray(g.log_prob(x[:20])), ref, rtol=1e-10)
    assert flowlab.likelihood_kind(g) == "exact"
    # in bits/dim of the digits: the formula applied to the closed form
    s = digits.split_digits()
    t = digits.LogitTransform()
    y, ld = t.forward(digits.dequantize(s.train, jax.random.key(0)))
    yt, ldt = t.forward(digits.dequantize(s.test, jax.random.key(1)))
    g = baselines.Gaussian.fit(y, ridge=1e-3)
    y64 = np.asarray(yt, np.float64)
    ref = scipy.stats.multivariate_normal(g.mean, g.cov).logpdf(y64)
    expected = (-ref - np.asarray(ldt, np.float64) + 64 * math.log(17)) / (64 * math.log(2))
    np.testing.assert_allclose(digits.bits_per_dim(g.log_prob(yt), ldt), expected, rtol=1e-9)


def test_mixture_em_recovers_separated_components_and_kde_normalises():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-4, 1, (400, 2)), rng.normal(4, 0.5, (400, 2))])
    m = baselines.GaussianMixture.fit(x, 2, key=jax.random.key(0), ridge=1e-6)
    order = np.argsort(m.means[:, 0])
    np.testing.assert_allclose(m.means[order], [[-4, -4], [4, 4]], atol=0.15)
    np.testing.assert_allclose(m.weights, [0.5, 0.5], atol=0.01)
    np.testing.assert_allclose(np.sqrt(m.covs[order][:, 0, 0]), [1.0, 0.5], rtol=0.1)
    # a KDE integrates to one (grid quadrature in 2D)
    k = baselines.KDE.fit(rng.normal(size=(50, 2)), 0.5)
    g = np.linspace(-6, 6, 241)
    xx = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    mass = np.exp(np.asarray(k.log_prob(xx))).sum() * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-4)
    best, scores = baselines.KDE.select(x[::2], x[1::2], [0.05, 0.3, 3.0])
    assert best.bandwidth == 0.3 and scores[0.3] == max(scores.values())


@pytest.mark.parametrize("name", labelled.LABELLED_NAMES)
def test_labelled_samplers_match_the_registry(name):
    key = jax.random.key(3)
    x, y = labelled.sample_with_labels(name, key, 500)
    np.testing.assert_array_equal(
        np.asarray(x), np.asarray(flowlab.datasets.sample(name, key, 500))
    )
    k = labelled.num_classes(name)
    assert set(np.unique(np.asarray(y))) == set(range(k))
    xc = np.asarray(labelled.sample_class(name, key, 2000, 1))
    if name == "gaussian_mixture":
        mean = flowlab.datasets.gaussian_mixture_params(name)[0][1]
        np.testing.assert_allclose(xc.mean(0), mean, atol=0.02)
        np.testing.assert_allclose(xc.std(0), 0.12, rtol=0.06)
    else:  # arm 1: angle - 4 r = 4 (mod 2 pi) up to N(0, 0.2^2) noise
        r = np.hypot(xc[:, 0], xc[:, 1])
        phase = np.angle(np.exp(1j * (np.arctan2(xc[:, 0], xc[:, 1]) - 4 * r - 4.0)))
        assert np.std(phase) == pytest.approx(0.2, rel=0.1)
    with pytest.raises(ValueError, match="expected label"):
        labelled.sample_class(name, key, 10, k)
    with pytest.raises(ValueError, match="no labels"):
        labelled.sample_with_labels("spiral", key, 10)


def test_conv_field_is_the_hand_written_convolution():
    import scipy.signal

    from flowlab.nn import ConvVectorField

    net = ConvVectorField(16, channels=3, depth=1, time_frequencies=(1.0,), key=jax.random.key(0))
    x = np.asarray(jax.random.normal(jax.random.key(1), (16,)), np.float64)
    t = 0.3
    emb = np.array([t, np.sin(np.pi * t), np.cos(np.pi * t)])
    img = x.reshape(4, 4)
    conv, tmap, out = net.convs[0], net.time_maps[0], net.out
    w1, b1 = np.asarray(conv.weight, np.float64), np.asarray(conv.bias, np.float64)
    tb = np.asarray(tmap.weight, np.float64) @ emb + np.asarray(tmap.bias, np.float64)
    h = np.stack(
        [
            scipy.signal.correlate2d(img, w1[c, 0], mode="same") + b1[c, 0, 0] + tb[c]
            for c in range(3)
        ]
    )
    h = h / (1 + np.exp(-h))  # SiLU
    wo, bo = np.asarray(out.weight, np.float64), float(np.asarray(out.bias).ravel()[0])
    ref = sum(scipy.signal.correlate2d(h[c], wo[0, c], mode="same") for c in range(3)) + bo
    np.testing.assert_allclose(
        np.asarray(net(t, jnp.asarray(x, jnp.float32))), ref.ravel(), atol=1e-5
    )
    with pytest.raises(ValueError, match="square"):
        ConvVectorField(10, key=jax.random.key(0))
