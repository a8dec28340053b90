"""VAE: exact marginal by quadrature, ELBO and IWAE against closed forms (a linear-Gaussian
decoder, where p(x) is Gaussian), the bounds' ordering, sampling, training."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LOGPROB_ATOL, gaussian_logpdf

import flowlab
from flowlab.objectives import NegativeELBO
from flowlab.vae import VAE

W2 = np.array([[1.0, 0.3], [-0.5, 0.8]])
W1 = np.array([[0.9], [-0.4]])
B = np.array([0.2, -0.1])
SIGMA = 0.3
LOC = np.array([0.5, -1.0])
SCALE = np.array([2.0, 0.5])


def _linear(weight, bias):
    weight = np.asarray(weight, np.float32)
    layer = eqx.nn.Linear(weight.shape[1], weight.shape[0], key=jax.random.key(0))
    return eqx.tree_at(
        lambda m: (m.weight, m.bias), layer, (jnp.asarray(weight), jnp.asarray(bias, jnp.float32))
    )


def _posterior(w, sigma):
    """The exact posterior of p(z) = N(0, I), p(u|z) = N(Wz + b, sigma^2 I): covariance and
    the matrix A with mean A (u - b)."""
    k = w.shape[1]
    cov = np.linalg.inv(np.eye(k) + w.T @ w / sigma**2)
    return cov, cov @ w.T / sigma**2


def linear_vae(w=W2, sigma=SIGMA, *, inflate=1.2, standardize=None, **options):
    """A VAE with decoder u = W z + b (+ N(0, sigma^2 I)) and a linear encoder: the exact
    posterior mean and the exact posterior marginal standard deviations times ``inflate``."""
    w = np.asarray(w)
    d, k = w.shape
    cov, a = _posterior(w, sigma)
    enc_w = np.concatenate([a, np.zeros((k, d))])
    enc_b = np.concatenate([-a @ B, np.log(inflate * np.sqrt(np.diag(cov)))])
    return VAE(
        _linear(enc_w, enc_b),
        _linear(w, B),
        latent_size=k,
        data_size=d,
        standardize=standardize,
        variance="fixed",
        decoder_std=sigma,
        **options,
    )


def closed_form_logpdf(x, w=W2, sigma=SIGMA, loc=None, scale=None):
    """log p(x) of the linear-Gaussian VAE, in data coordinates x = scale * u + loc."""
    cov_u = w @ w.T + sigma**2 * np.eye(w.shape[0])
    if loc is None:
        return gaussian_logpdf(x, B, cov_u)
    s = np.diag(scale)
    return gaussian_logpdf(x, scale * B + loc, s @ cov_u @ s)


def closed_form_elbo(model, x):
    """The ELBO of the linear-Gaussian VAE with its (diagonal) encoder, in closed form."""
    std = model.standardizer()
    u = np.asarray(std.forward(jnp.asarray(x)), np.float64)
    mean, s = (np.asarray(a, np.float64) for a in jax.vmap(model.posterior)(jnp.asarray(u)))
    w = np.asarray(model.decoder.weight, np.float64)
    b = np.asarray(model.decoder.bias, np.float64)
    sigma = np.asarray(model.global_std(), np.float64)
    resid = u - mean @ w.T - b
    spread = (s**2) @ (w**2).T  # E ||W (z - mean)||^2 per coordinate
    recon = np.sum(
        -0.5 * (resid**2 + spread) / sigma**2 - np.log(sigma) - 0.5 * math.log(2 * math.pi),
        axis=-1,
    )
    kl = 0.5 * np.sum(mean**2 + s**2 - 1.0 - 2.0 * np.log(s), axis=-1)
    return recon - kl + float(std.log_det()), kl


def _points(n, key=3, scale=1.5):
    return jax.random.normal(jax.random.key(key), (n, 2)) * scale


def _repeat(estimate, x, reps, **kwargs):
    """``reps`` independent draws of a per-point estimate, shape ``(reps, n)``, in one call."""
    tiled = jnp.tile(x, (reps, 1))
    return np.asarray(estimate(tiled, **kwargs)).reshape(reps, x.shape[0])


# -- the exact marginal by quadrature -------------------------------------------------------------


@pytest.mark.parametrize("latent", [1, 2])
@pytest.mark.parametrize("standardized", [False, True])
def test_quadrature_matches_linear_gaussian_closed_form(latent, standardized):
    w = W2 if latent == 2 else W1
    std = flowlab.Standardize(jnp.asarray(LOC), jnp.asarray(SCALE)) if standardized else None
    # a 1D latent puts the decoder means on a line: points off it have a tiny p(x), so the
    # box must leave out less prior mass for the tail bound to be small relative to p(x)
    bound = 7.0 if latent == 2 else 10.0
    model = linear_vae(w, standardize=std, quadrature_size=256, quadrature_bound=bound)
    assert flowlab.likelihood_kind(model) == "exact"
    x = _points(16, scale=1.0)
    if standardized:
        x = x * SCALE + LOC
    x = jnp.concatenate([model.sample(jax.random.key(1), 48), x])
    lp, err, stats = model.log_prob_with_error(x)
    ref = closed_form_logpdf(
        np.asarray(x), w, loc=LOC if standardized else None, scale=SCALE if standardized else None
    )
    np.testing.assert_allclose(np.asarray(lp), ref, atol=LOGPROB_ATOL, rtol=0)
    # resolved: the error estimate is at the level of float32 rounding, and says so
    assert float(jnp.max(err)) < LOGPROB_ATOL
    assert int(stats.nfe) == 257**latent and bool(stats.success)
    np.testing.assert_array_equal(np.asarray(model.log_prob(x)), np.asarray(lp))


def test_quadrature_learned_variance_closed_form():
    """The learned-variance path (sigma = min_std + softplus(param)) at a known sigma."""
    model = linear_vae(quadrature_size=256)
    param = math.log(math.expm1(SIGMA - 0.01))
    learned = VAE(
        model.encoder,
        model.decoder,
        latent_size=2,
        data_size=2,
        variance="learned",
        decoder_std=0.5,
        min_std=0.01,
        quadrature_size=256,
    )
    learned = eqx.tree_at(lambda m: m.decoder_std_param, learned, jnp.full((2,), param))
    np.testing.assert_allclose(np.asarray(learned.global_std()), SIGMA, rtol=1e-6)
    x = _points(32)
    np.testing.assert_allclose(
        np.asarray(learned.log_prob(x)), closed_form_logpdf(np.asarray(x)), atol=LOGPROB_ATOL
    )
    # the learned standard deviation is trained (the fixed one is not: see the gradient test)
    assert learned.trainable().decoder_std_param is True
    loss = eqx.filter_jit(eqx.filter_grad(lambda m: NegativeELBO()(m, x, jax.random.key(0))[0]))
    assert np.abs(np.asarray(loss(learned).decoder_std_param)).min() > 1e-3


class Bent(eqx.Module):
    """A nonlinear decoder mean with a Jacobian of order 2: m(z) = (z0 + sin 2 z1, z1 + z0^2/2);
    with ``per_latent`` also a raw decoder scale rho(z) that varies with z."""

    per_latent: bool = eqx.field(static=True, default=False)

    def __call__(self, z):
        mean = jnp.stack([z[0] + jnp.sin(2.0 * z[1]), z[1] + 0.5 * z[0] ** 2])
        if not self.per_latent:
            return mean
        return jnp.concatenate([mean, jnp.stack([-1.5 + 0.5 * jnp.tanh(z[0]), -2.0 + 0.3 * z[1]])])


def bent_vae(variance, **options):
    """The Bent decoder with a random MLP encoder whose last layer is scaled down: q(z|u) is
    close to the prior N(0, I), wider than every posterior (so IWAE converges)."""
    enc = eqx.nn.MLP(2, 4, 8, 1, key=jax.random.key(0))
    enc = eqx.tree_at(lambda m: m.layers[-1].weight, enc, 0.1 * enc.layers[-1].weight)
    enc = eqx.tree_at(lambda m: m.layers[-1].bias, enc, 0.1 * enc.layers[-1].bias)
    return VAE(enc, Bent(variance == "per_latent"), data_size=2, variance=variance, **options)


def test_quadrature_error_estimate_is_honest():
    """A nonlinear decoder with a small noise (latent peaks of width ~0.05): once the grid
    roughly resolves the integrand (spacing 0.11, 0.055) the estimated error covers the actual
    error (against a grid 4x finer, itself checked against one 8x finer); on grids that are
    too coarse (spacing 0.22) the estimate flags it with errors of order one."""
    model = bent_vae("fixed", decoder_std=0.1)
    x = model.sample(jax.random.key(1), 64)
    ref, ref_err, _ = model.log_prob_with_error(x, size=512)
    assert float(jnp.max(ref_err)) < 1e-3
    for size in (128, 256):
        lp, err, _ = model.log_prob_with_error(x, size=size)
        actual = np.abs(np.asarray(lp - ref))
        assert np.all(actual <= np.asarray(err) + 1e-5), (size, actual.max())
    lp, err, _ = model.log_prob_with_error(x, size=64)
    assert float(jnp.max(err)) > 1.0
    assert float(jnp.max(jnp.abs(lp - ref))) > 0.1


def test_tail_bound_grows_as_the_box_shrinks():
    """A box that cuts off prior mass reports it in the error (a rigorous bound)."""
    model = linear_vae(quadrature_size=256)
    x = _points(16)
    ref = closed_form_logpdf(np.asarray(x))
    lp, err, _ = model.log_prob_with_error(x, bound=2.0)
    actual = np.abs(np.asarray(lp) - ref)
    assert actual.max() > 1e-3  # a [-2, 2]^2 box misses mass
    assert np.all(actual <= np.asarray(err))


# -- the bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize("standardized", [False, True])
def test_elbo_matches_closed_form(standardized):
    std = flowlab.Standardize(jnp.asarray(LOC), jnp.asarray(SCALE)) if standardized else None
    model = linear_vae(inflate=1.5, standardize=std)
    x = _points(32) * (SCALE if standardized else 1.0) + (LOC if standardized else 0.0)
    ref, kl_ref = closed_form_elbo(model, x)
    n_samples = 4000
    terms = model.elbo_terms(x, key=jax.random.key(0), num_samples=n_samples)
    np.testing.assert_allclose(np.asarray(terms["kl"]), kl_ref, rtol=1e-5, atol=1e-5)
    elbo = np.asarray(model.log_prob_bound(x, key=jax.random.key(0), num_samples=n_samples))
    np.testing.assert_allclose(elbo, np.asarray(terms["reconstruction"] - terms["kl"]), rtol=1e-6)
    # Monte Carlo error of the reconstruction term: its per-draw spread / sqrt(n)
    single = _repeat(model.log_prob_bound, x, 64, key=jax.random.key(1))
    se = single.std(axis=0) / math.sqrt(n_samples)
    assert np.all(np.abs(elbo - ref) < 5 * se + 1e-4)
    assert np.all(
        ref < closed_form_logpdf(np.asarray(x), loc=LOC, scale=SCALE)
        if standardized
        else ref < closed_form_logpdf(np.asarray(x))
    )


def test_iwae_tightens_to_exact():
    """IWAE(K) -> log p(x) as K grows, for an encoder narrower than the posterior (0.7 times
    its marginal standard deviations, uncorrelated: the usual VAE failure); K = 1 is the
    ELBO (in expectation)."""
    model = linear_vae(inflate=0.7)
    n = 400
    x = _points(n)
    exact = closed_form_logpdf(np.asarray(x))
    elbo, _ = closed_form_elbo(model, x)
    gaps, ses = {}, {}
    for k in (1, 10, 100, 1000, 5000):
        diff = exact - np.asarray(model.iwae(x, key=jax.random.key(k), k=k, chunk_size=16))
        gaps[k], ses[k] = float(diff.mean()), float(diff.std() / math.sqrt(n))
    assert abs(gaps[1] - float(np.mean(exact - elbo))) < 4 * ses[1]
    assert gaps[1] > 0.15
    ks = sorted(gaps)
    for a, b in zip(ks[:-1], ks[1:], strict=True):  # never increases beyond noise
        assert gaps[b] < gaps[a] + 3 * math.hypot(ses[a], ses[b]), gaps
    assert gaps[100] < 0.5 * gaps[1] and gaps[1000] < 0.25 * gaps[10], gaps
    assert -4 * ses[5000] < gaps[5000] < 0.01, (gaps, ses)
    # drawn 300 at a time (a ragged last chunk) the bound is the same, to Monte Carlo error
    ragged = exact - np.asarray(model.iwae(x, key=jax.random.key(0), k=1000, chunk_size=300))
    assert abs(float(ragged.mean()) - gaps[1000]) < 4 * math.hypot(
        ses[1000], float(ragged.std() / math.sqrt(n))
    )


def test_elbo_le_iwae_le_exact_on_every_point():
    """ELBO <= E[IWAE_K] <= log p(x) for every point of a nonlinear model (the exact value by
    quadrature); E[IWAE_K] estimated by averaging repeated draws, compared within 4 SE."""
    model = bent_vae("learned", decoder_std=0.2)
    x = jnp.concatenate([model.sample(jax.random.key(1), 24), _points(8)])
    exact, err, _ = model.log_prob_with_error(x, size=512)
    assert float(jnp.max(err)) < 1e-3
    n_elbo = 4000
    elbo = np.asarray(model.log_prob_bound(x, key=jax.random.key(2), num_samples=n_elbo))
    elbo_draws = _repeat(model.log_prob_bound, x, 64, key=jax.random.key(3))
    elbo_se = elbo_draws.std(axis=0) / math.sqrt(n_elbo)
    reps = 200
    iw = _repeat(model.iwae, x, reps, key=jax.random.key(4), k=10)
    iw_mean, iw_se = iw.mean(0), iw.std(0) / math.sqrt(reps)
    exact = np.asarray(exact)
    assert np.all(elbo <= iw_mean + 4 * (iw_se + elbo_se))
    assert np.all(iw_mean <= exact + 4 * iw_se + np.asarray(err))
    # and the gaps are real, not zero within noise
    assert np.mean(iw_mean - elbo) > 10 * np.sqrt(np.mean(iw_se**2 + elbo_se**2))
    assert np.mean(exact - iw_mean) > 10 * np.sqrt(np.mean(iw_se**2))


def test_iwae_large_k_agrees_with_quadrature_nonlinear():
    model = bent_vae("per_latent", min_std=0.05)
    x = model.sample(jax.random.key(4), 64)
    exact, err, _ = model.log_prob_with_error(x, size=512)
    assert float(jnp.max(err)) < 1e-3
    gap_10 = float(jnp.mean(exact - model.iwae(x, key=jax.random.key(5), k=10, chunk_size=16)))
    gap_5000 = float(jnp.mean(exact - model.iwae(x, key=jax.random.key(6), k=5000, chunk_size=16)))
    assert gap_10 > 0.05
    assert abs(gap_5000) < 0.1 * gap_10


# -- the objective, gradients, sampling ---------------------------------------------------------


def test_negative_elbo_objective_and_reparameterised_gradient():
    model = linear_vae(inflate=1.5)
    x = _points(16)
    obj = NegativeELBO(num_samples=4)
    loss, aux = obj(model, x, jax.random.key(0))
    elbo = model.log_prob_bound(x, key=jax.random.key(0), num_samples=4)
    np.testing.assert_allclose(float(loss), -float(jnp.mean(elbo)), rtol=1e-6)
    np.testing.assert_allclose(float(aux["reconstruction"] + aux["kl"]), float(loss), rtol=1e-6)

    # the reparameterised gradient (many draws) matches autodiff of the closed-form ELBO
    def closed(m):
        u = x
        mean, s = jax.vmap(m.posterior)(u)
        w, b, sigma = m.decoder.weight, m.decoder.bias, m.global_std()
        resid = u - mean @ w.T - b
        spread = (s**2) @ (w**2).T
        recon = jnp.sum(-0.5 * (resid**2 + spread) / sigma**2 - jnp.log(sigma), -1)
        kl = 0.5 * jnp.sum(mean**2 + s**2 - 1.0 - 2.0 * jnp.log(s), -1)
        return -jnp.mean(recon - kl) + 0.5 * 2 * math.log(2 * math.pi)

    def mc(m, key):
        return NegativeELBO(num_samples=4000)(m, x, key)[0]

    spec = model.trainable()
    g_ref = eqx.filter(eqx.filter_jit(eqx.filter_grad(closed))(model), spec)
    g_1, g_2 = (
        eqx.filter(eqx.filter_jit(eqx.filter_grad(mc))(model, jax.random.key(i)), spec)
        for i in (1, 2)
    )
    np.testing.assert_allclose(float(closed(model)), float(mc(model, jax.random.key(1))), rtol=2e-3)
    leaves = zip(*(jax.tree_util.tree_leaves(g) for g in (g_ref, g_1, g_2)), strict=True)
    for ref, a, b in leaves:
        ref, a, b = np.asarray(ref), np.asarray(a), np.asarray(b)
        noise = np.abs(a - b).max() / 2  # about the standard error of the mean of a and b
        assert np.abs((a + b) / 2 - ref).max() <= 4 * noise + 1e-5
        assert noise < 0.2 * np.abs(ref).max() + 1e-6  # precise enough to mean something
    g_mc = g_1
    # the fixed decoder variance gets no gradient; the encoder does
    assert np.all(np.asarray(g_mc.decoder_std_param) == 0)
    assert np.abs(np.asarray(g_mc.encoder.weight)).max() > 0.1


def test_samples_linear_gaussian_in_data_coordinates():
    std = flowlab.Standardize(jnp.asarray(LOC), jnp.asarray(SCALE))
    model = linear_vae(standardize=std)
    n = 100_000
    s, stats = model.sample_with_stats(jax.random.key(0), n)
    assert s.shape == (n, 2) and int(stats.nfe) == 1
    s = np.asarray(s, np.float64)
    cov = np.diag(SCALE) @ (W2 @ W2.T + SIGMA**2 * np.eye(2)) @ np.diag(SCALE)
    np.testing.assert_allclose(s.mean(0), SCALE * B + LOC, atol=0.02)
    np.testing.assert_allclose(np.cov(s.T), cov, atol=0.03)
    # the decoder means have no decoder noise: covariance S W W^T S
    m = np.asarray(model.decoder_mean(jax.random.key(0), n), np.float64)
    np.testing.assert_allclose(np.cov(m.T), np.diag(SCALE) @ W2 @ W2.T @ np.diag(SCALE), atol=0.03)


# -- protocol and errors ---------------------------------------------------------------------


def test_protocol_and_errors():
    assert VAE.trainable_fields == ("encoder", "decoder", "decoder_std_param")
    assert VAE.bound_name == "ELBO"
    model = linear_vae(quadrature_size=256)
    label = model.likelihood_label()
    assert label.startswith("exact:") and "257 x 257" in label and "[-7, 7]^2" in label
    assert flowlab.likelihood_kind(model) == "exact"

    big = VAE.from_mlps(2, 3, width=8, depth=1, key=jax.random.key(0))
    assert flowlab.likelihood_kind(big) == "bound" and not hasattr(big, "log_prob")
    with pytest.raises(ValueError, match="latent_size <= 2"):
        VAE(big.encoder, big.decoder, latent_size=3, data_size=2)
    assert np.isfinite(np.asarray(big.log_prob_bound(_points(4), key=jax.random.key(0)))).all()

    mlp = eqx.nn.MLP(2, 3, 8, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected the encoder .* \(4,\).*got \(3,\)"):
        VAE(mlp, eqx.nn.MLP(2, 2, 8, 1, key=jax.random.key(1)))
    enc = eqx.nn.MLP(2, 4, 8, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"per_latent.*got \(2,\)"):
        VAE(enc, eqx.nn.MLP(2, 2, 8, 1, key=jax.random.key(1)), variance="per_latent")
    with pytest.raises(ValueError, match="unknown variance"):
        VAE(enc, eqx.nn.MLP(2, 2, 8, 1, key=jax.random.key(1)), variance="bogus")
    with pytest.raises(ValueError, match="even quadrature size"):
        model.log_prob(_points(4), size=33)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        model.log_prob(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="decoder_std"):
        VAE(enc, eqx.nn.MLP(2, 2, 8, 1, key=jax.random.key(1)), decoder_std=0.005, min_std=0.01)
    with pytest.raises(TypeError, match="NegativeELBO trains a VAE"):
        NegativeELBO()(object(), _points(4), jax.random.key(0))


# -- training ----------------------------------------------------------------------------------


def test_fit_gaussian_data_reaches_its_entropy():
    """Trained on correlated Gaussian data (which the model can represent exactly), the exact
    hold-out NLL approaches the data's entropy and the bounds are ordered."""
    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    chol = np.linalg.cholesky(cov)
    train = jax.random.normal(jax.random.key(0), (2000, 2)) @ chol.T
    holdout = jax.random.normal(jax.random.key(1), (500, 2)) @ chol.T
    model = VAE.from_mlps(
        2,
        2,
        width=16,
        depth=1,
        decoder_std=0.5,
        standardize=flowlab.Standardize.fit(train),
        quadrature_size=128,
        key=jax.random.key(2),
    )
    model, hist = flowlab.fit(
        model,
        NegativeELBO(),
        train,
        holdout,
        key=jax.random.key(3),
        steps=2000,
        batch_size=256,
        eval_every=1000,
        progress=False,
    )
    assert hist.holdout_loss[-1] < hist.holdout_loss[0]
    assert set(hist.step_aux) == {"reconstruction", "kl"}
    entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * cov))
    lp, err, _ = model.log_prob_with_error(holdout)
    nll = -float(jnp.mean(lp))
    ref_nll = -float(np.mean(gaussian_logpdf(np.asarray(holdout), np.zeros(2), cov)))
    assert float(jnp.max(err)) < 1e-3
    assert abs(nll - ref_nll) < 0.02, (nll, ref_nll, entropy)
