"""GAN: the players' losses against closed forms, the one-loss two-player gradient against
each player's own autodiff gradient, a two-player step, sampling, training and the collapse
diagnostic."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
import scipy.stats

import flowlab
from flowlab import Standardize, Trainer, fit
from flowlab.evaluate import diagnostics as sample_diagnostics
from flowlab.gan import GAN
from flowlab.metrics import DegenerateSamplesError, energy_distance, kde_log_likelihood
from flowlab.objectives import (
    EQUILIBRIUM_D_LOSS,
    EQUILIBRIUM_G_LOSS,
    NonSaturatingGAN,
    discriminator_loss,
    generator_loss,
)
from flowlab.optim import TwoPlayerAdam, player_labels


class Linear(eqx.Module):
    """z -> w . z + b: a discriminator whose gradient is known exactly."""

    w: jax.Array
    b: jax.Array

    def __call__(self, z):
        return jnp.dot(self.w, z) + self.b


class Shift(eqx.Module):
    """u -> a * u + c: a generator with a known push-forward N(c, a^2)."""

    a: jax.Array
    c: jax.Array

    def __call__(self, u):
        return self.a * u + self.c


def _small_gan(key=0, latent=3, standardize=None):
    return GAN.mlp(
        2, latent_size=latent, width=16, depth=2, standardize=standardize, key=jax.random.key(key)
    )


def _data(key, n):
    return jax.random.normal(jax.random.key(key), (n, 2)) * jnp.array([1.5, 0.5]) + 1.0


def test_equilibrium_values_at_a_constant_discriminator():
    model = GAN(Shift(jnp.ones(2), jnp.zeros(2)), Linear(jnp.zeros(2), jnp.zeros(())), 2)
    loss, aux = NonSaturatingGAN()(model, _data(0, 64), jax.random.key(1))
    np.testing.assert_allclose(float(aux["d_loss"]), 2 * math.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(aux["g_loss"]), math.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(loss), 3 * math.log(2), rtol=1e-6)
    assert float(aux["d_real"]) == float(aux["d_fake"]) == 0.5
    assert (EQUILIBRIUM_D_LOSS, EQUILIBRIUM_G_LOSS) == (2 * math.log(2), math.log(2))


def test_discriminator_loss_at_the_optimal_discriminator_is_2log2_minus_2jsd():
    # data N(1, 1), generator N(-1, 1): D*(z) = log p_data/p_g = 2z, and
    # L_D(D*) = 2 log 2 - 2 JSD(p_data, p_g) (Goodfellow et al. 2014, Theorem 1).
    p, q = scipy.stats.norm(1, 1), scipy.stats.norm(-1, 1)

    def kl_to_mixture(a):
        f = lambda t: a.pdf(t) * (a.logpdf(t) - np.log(0.5 * p.pdf(t) + 0.5 * q.pdf(t)))  # noqa: E731
        return scipy.integrate.quad(f, -12, 12, epsabs=1e-12)[0]

    jsd = 0.5 * kl_to_mixture(p) + 0.5 * kl_to_mixture(q)
    x = 1.0 + jax.random.normal(jax.random.key(0), (400_000, 1))
    gen = Shift(jnp.ones(1), -jnp.ones(1))
    best = GAN(gen, Linear(jnp.array([2.0]), jnp.zeros(())), 1, data_size=1)
    key = jax.random.key(1)
    _, aux = NonSaturatingGAN()(best, x, key)
    # Monte Carlo: per-point loss has std < 1, so 400k points give se < 2e-3
    np.testing.assert_allclose(float(aux["d_loss"]), 2 * math.log(2) - 2 * jsd, atol=5e-3)
    # any other discriminator does worse on the same draws
    for w, b in ((1.6, 0.0), (2.4, 0.0), (2.0, 0.3)):
        other = GAN(gen, Linear(jnp.array([w]), jnp.array(b)), 1, data_size=1)
        assert float(NonSaturatingGAN()(other, x, key)[1]["d_loss"]) > float(aux["d_loss"])


def test_r1_penalty_of_a_linear_discriminator():
    w = jnp.array([0.7, -1.9])
    model = GAN(
        Shift(jnp.ones(2), jnp.zeros(2)),
        Linear(w, jnp.array(0.2)),
        2,
        standardize=Standardize(jnp.array([3.0, -1.0]), jnp.array([2.0, 0.5])),
    )
    x = _data(2, 32)
    loss0, aux0 = NonSaturatingGAN()(model, x, jax.random.key(0))
    loss, aux = NonSaturatingGAN(r1=0.3)(model, x, jax.random.key(0))
    expected = 0.5 * 0.3 * float(jnp.sum(w**2))  # in standardised coordinates
    np.testing.assert_allclose(float(aux["r1_penalty"]), expected, rtol=1e-6)
    np.testing.assert_allclose(float(loss), float(loss0) + expected, rtol=1e-6)
    assert "r1_penalty" not in aux0
    for name in ("d_loss", "g_loss"):
        assert float(aux[name]) == float(aux0[name])


def test_one_loss_gives_each_player_the_gradient_of_its_own_loss():
    r1 = 0.5  # the penalty is part of the discriminator's loss only
    std = Standardize(jnp.array([1.0, 1.0]), jnp.array([1.5, 0.5]))
    model = _small_gan(3, standardize=std)
    x, key = _data(4, 64), jax.random.key(5)
    params, static = eqx.partition(model, model.trainable())

    def total(p):
        return NonSaturatingGAN(r1=r1)(eqx.combine(p, static), x, key)[0]

    grads = eqx.filter_jit(eqx.filter_grad(total))(params)

    # the reference: each player's loss written out separately, differentiated with
    # respect to that player alone (the other one a constant)
    z = std.forward(x)
    u = model.latent_sample(key, x.shape[0])

    def d_loss(disc):
        fake = jax.vmap(model.generator)(u)
        real_logits = jax.vmap(disc)(z)
        penalty = 0.5 * r1 * jnp.mean(jnp.sum(jax.vmap(jax.grad(disc))(z) ** 2, -1))
        return discriminator_loss(real_logits, jax.vmap(disc)(fake)) + penalty

    def g_loss(gen):
        return generator_loss(jax.vmap(model.discriminator)(jax.vmap(gen)(u)))

    disc_params = eqx.filter(model.discriminator, eqx.is_inexact_array)
    gen_params = eqx.filter(model.generator, eqx.is_inexact_array)
    ref_d = eqx.filter_jit(eqx.filter_grad(lambda p: d_loss(eqx.combine(p, model.discriminator))))(
        disc_params
    )
    ref_g = eqx.filter_jit(eqx.filter_grad(lambda p: g_loss(eqx.combine(p, model.generator))))(
        gen_params
    )
    for got, ref in ((grads.discriminator, ref_d), (grads.generator, ref_g)):
        got_leaves = jax.tree_util.tree_leaves(got)
        ref_leaves = jax.tree_util.tree_leaves(ref)
        assert len(got_leaves) == len(ref_leaves) > 0
        for a, b in zip(got_leaves, ref_leaves, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert jax.tree_util.tree_leaves(grads.standardize) == []  # never trained


def test_a_two_player_step_decreases_each_players_own_loss():
    """One step of the fit loop's Trainer (plain SGD, a learning rate per player) on a fixed
    batch with fixed latents: each player's loss, with the other player held at its old
    weights, falls by the first-order amount lr * |grad|^2."""
    model = _small_gan(6)
    x, key = _data(7, 256), jax.random.key(8)
    objective = NonSaturatingGAN()

    def fixed(m, _batch, _key):  # the same batch and latents whatever the step draws
        return objective(m, x, key)

    # the generator's gradient is ~30x smaller at initialisation: a larger step makes its
    # loss change resolvable in float32
    lr = {"discriminator": 1e-3, "generator": 0.3}
    opt = optax.multi_transform({k: optax.sgd(v) for k, v in lr.items()}, player_labels)
    params, static = eqx.partition(model, model.trainable())
    trainer = Trainer(fixed, opt, static, batch_size=8)
    state = trainer.init(params, x, jax.random.key(9))
    state, loss, aux = eqx.filter_jit(trainer.step)(state, x, jax.random.key(10))
    new = eqx.combine(state.params, static)

    @eqx.filter_jit
    def losses(disc_from, gen_from):
        m = eqx.tree_at(lambda g: g.discriminator, model, disc_from.discriminator)
        m = eqx.tree_at(lambda g: g.generator, m, gen_from.generator)
        _, a = objective(m, x, key)
        return a["d_loss"], a["g_loss"]

    d0, g0 = map(float, losses(model, model))
    np.testing.assert_allclose((d0, g0), (float(aux["d_loss"]), float(aux["g_loss"])), rtol=1e-6)
    d1 = float(losses(new, model)[0])  # the discriminator moved, the generator did not
    g1 = float(losses(model, new)[1])  # the generator moved, the discriminator did not
    grads = eqx.filter_jit(eqx.filter_grad(lambda p: fixed(eqx.combine(p, static), x, key)[0]))(
        params
    )
    sq = lambda t: sum(float(jnp.sum(v**2)) for v in jax.tree_util.tree_leaves(t))  # noqa: E731
    assert d1 < d0 and g1 < g0
    np.testing.assert_allclose(d0 - d1, lr["discriminator"] * sq(grads.discriminator), rtol=0.1)
    np.testing.assert_allclose(g0 - g1, lr["generator"] * sq(grads.generator), rtol=0.1)


def test_two_player_adam_gives_each_player_its_learning_rate():
    """Generator rate 0: the generator stays put and the discriminator follows exactly the
    path of flowlab's Adam training the discriminator alone."""
    model = _small_gan(11)
    x = _data(12, 128)
    objective = NonSaturatingGAN()

    def run(optimizer, spec):
        params, static = eqx.partition(model, spec)
        trainer = Trainer(objective, optimizer, static, batch_size=64)
        state = trainer.init(params, x, jax.random.key(13))
        for i in range(3):  # eager steps: cheaper than compiling a scan for three
            state, _, _ = trainer.step(state, x, jax.random.key(14 + i))
        return eqx.combine(state.params, static)

    two = run(TwoPlayerAdam(steps=10, generator_lr=0.0, discriminator_lr=1e-2), model.trainable())
    only_d = jax.tree_util.tree_map(lambda _: False, model)
    only_d = eqx.tree_at(
        lambda m: m.discriminator,
        only_d,
        jax.tree_util.tree_map(eqx.is_inexact_array, model.discriminator),
    )
    ref = run(flowlab.Adam(steps=10, learning_rate=1e-2, b1=0.5), only_d)
    leaves = lambda m: jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))  # noqa: E731
    for a, b in zip(leaves(two.generator), leaves(model.generator), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = 0.0
    for a, b, c in zip(
        leaves(two.discriminator),
        leaves(ref.discriminator),
        leaves(model.discriminator),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        moved = max(moved, float(jnp.max(jnp.abs(a - c))))
    assert moved > 1e-3
    assert TwoPlayerAdam(steps=10).describe()["optimizer"] == "two-player adam"
    with pytest.raises(ValueError, match="generator_lr"):
        TwoPlayerAdam(steps=10, generator_lr=-1.0)


def test_sampling_pushes_latents_through_the_generator_in_data_coordinates():
    std = Standardize(jnp.array([3.0, -1.0]), jnp.array([2.0, 0.5]))
    a, c = jnp.array([0.5, 2.0]), jnp.array([1.0, 0.0])
    model = GAN(Shift(a, c), Linear(jnp.zeros(2), jnp.zeros(())), 2, standardize=std)
    key = jax.random.key(0)
    x, stats = model.sample_with_stats(key, 1000)
    u = jax.random.normal(key, (1000, 2))
    np.testing.assert_allclose(
        np.asarray(x), np.asarray((a * u + c) * std.scale + std.loc), rtol=1e-6
    )
    assert stats.as_dict() == {
        "num_steps": 1,
        "num_accepted_steps": 1,
        "num_rejected_steps": 0,
        "nfe": 1,
        "success": True,
    }
    with pytest.raises(ValueError, match="expected sampler=None"):
        model.sample(key, 10, sampler="langevin")
    assert model.data_size == 2 and flowlab.likelihood_kind(model) == "none"
    np.testing.assert_allclose(np.asarray(model.discriminate(x)), 0.5)
    spec = model.trainable()
    assert spec.standardize is not None and not any(jax.tree_util.tree_leaves(spec.standardize))
    assert all(jax.tree_util.tree_leaves(spec.generator))
    assert all(jax.tree_util.tree_leaves(spec.discriminator))


def test_shape_errors_say_expected_and_got():
    model = _small_gan(1, latent=3)
    with pytest.raises(ValueError, match=r"expected latents of shape \(n, 3\), got"):
        model.generate(jnp.zeros((4, 2)))
    wrong = GAN(Shift(jnp.ones(3), jnp.zeros(3)), model.discriminator, 3, data_size=2)
    with pytest.raises(ValueError, match=r"shape \(2,\), got shape \(3,\)"):
        wrong.sample(jax.random.key(0), 5)
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 2\)"):
        model.discriminate(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="latent_size"):
        GAN(model.generator, model.discriminator, 0, data_size=2)
    with pytest.raises(ValueError, match="r1 >= 0"):
        NonSaturatingGAN(r1=-0.1)
    with pytest.raises(TypeError, match="trains a GAN"):
        NonSaturatingGAN()(flowlab.CNF(lambda t, z: z, data_size=2), jnp.zeros((4, 2)), None)
    with pytest.raises(ValueError, match="unknown activation"):
        GAN.mlp(2, generator_activation="swish!", key=jax.random.key(0))


def test_fit_trains_both_players_records_them_and_learns_a_gaussian(tmp_path):
    """The one fit loop: per-step and hold-out player losses recorded; a checkpointed run
    that stops half-way resumes to exactly the uninterrupted weights; the trained generator
    matches a correlated Gaussian's mean and covariance."""
    mean = np.array([1.0, -2.0])
    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    chol = np.linalg.cholesky(cov)
    data = jnp.asarray(mean + np.asarray(jax.random.normal(jax.random.key(0), (2500, 2))) @ chol.T)
    train, holdout = data[:2000], data[2000:]
    model = GAN.mlp(
        2,
        latent_size=2,
        width=32,
        depth=2,
        standardize=Standardize.fit(train),
        key=jax.random.key(1),
    )
    steps = 1200
    kwargs = dict(
        key=jax.random.key(2),
        steps=steps,
        batch_size=256,
        optimizer=TwoPlayerAdam(steps, 2e-3, 2e-3),
        eval_every=300,
        progress=False,
    )
    trained, history = fit(model, NonSaturatingGAN(r1=1.0), train, holdout, **kwargs)
    assert set(history.step_aux) == {"d_loss", "g_loss", "d_real", "d_fake", "r1_penalty"}
    assert all(len(v) == steps for v in history.step_aux.values())
    assert len(history.metrics["holdout_d_loss"]) == steps // 300
    # near the equilibrium: each player's hold-out loss within 0.1 of its value there
    assert abs(history.metrics["holdout_d_loss"][-1] - EQUILIBRIUM_D_LOSS) < 0.1
    assert abs(history.metrics["holdout_g_loss"][-1] - EQUILIBRIUM_G_LOSS) < 0.1

    x = np.asarray(trained.sample(jax.random.key(3), 4000))
    # a GAN matches moments loosely (the game oscillates): 0.1 on the mean, 0.25 on the
    # covariance, against an untrained generator's ~1
    np.testing.assert_allclose(x.mean(0), mean, atol=0.1)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.25)
    truth = mean + np.asarray(jax.random.normal(jax.random.key(4), (4000, 2))) @ chol.T
    untrained = np.asarray(model.sample(jax.random.key(3), 4000))
    assert energy_distance(x, truth) < 0.1 * energy_distance(untrained, truth)

    ckpt = tmp_path / "gan.eqx"
    fit(
        model,
        NonSaturatingGAN(r1=1.0),
        train,
        holdout,
        checkpoint=ckpt,
        callback=lambda s, h: s >= 600,
        **kwargs,
    )
    resumed, h2 = fit(model, NonSaturatingGAN(r1=1.0), train, holdout, checkpoint=ckpt, **kwargs)
    for a, b in zip(
        jax.tree_util.tree_leaves(eqx.filter(trained, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(resumed, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert h2.step_aux["d_loss"] == history.step_aux["d_loss"]


def test_a_collapsed_generator_triggers_the_diagnostic_not_a_kde_score():
    model = _small_gan(5)
    last = model.generator.layers[-1]
    dead = eqx.tree_at(lambda g: g.generator.layers[-1].weight, model, jnp.zeros_like(last.weight))
    x = np.asarray(dead.sample(jax.random.key(0), 500))
    ref = np.asarray(_data(1, 500))
    assert np.unique(x, axis=0).shape[0] == 1  # every latent gives the same point
    diag = sample_diagnostics(x, ref)
    assert diag["status"].startswith("collapsed:") and "1 distinct point" in diag["status"]
    assert diag["degenerate"] and diag["rank"] == 0 and diag["volume_ratio"] == 0.0
    assert diag["std_ratio"] == 0.0
    with pytest.raises(DegenerateSamplesError):
        kde_log_likelihood(x, ref)

    # collapse onto a line: rank 1
    line = GAN(lambda u: jnp.array([u[0], 2.0 * u[0]]), model.discriminator, 2, data_size=2)
    diag = sample_diagnostics(np.asarray(line.sample(jax.random.key(1), 500)), ref)
    assert diag["status"].startswith("collapsed:") and diag["rank"] == 1
    assert "rank 1 of 2" in diag["status"]

    # a healthy sampler is "ok", with coverage and precision near 1
    diag = sample_diagnostics(np.asarray(_data(2, 2000)), np.asarray(_data(3, 2000)))
    assert diag["status"] == "ok" and not diag["degenerate"] and diag["rank"] == 2
    assert diag["coverage"] > 0.95 and diag["precision"] > 0.95
    assert diag["std_ratio"] == pytest.approx(1.0, abs=0.05)


def test_sample_diagnostics_numbers():
    ref = np.asarray(_data(0, 1000))
    same = sample_diagnostics(ref, ref)
    assert same["coverage"] == same["precision"] == pytest.approx(1.0)
    assert same["overlap"] == pytest.approx(1.0) and same["outside_fraction"] == pytest.approx(0)
    # scaled about the mean: the spread ratios are the scale exactly
    wide = sample_diagnostics(ref.mean(0) + 2.0 * (ref - ref.mean(0)), ref)
    assert wide["std_ratio"] == pytest.approx(2.0) and wide["volume_ratio"] == pytest.approx(2.0)
    far = sample_diagnostics(ref + 100.0, ref)
    assert far["coverage"] == 0.0 and far["outside_fraction"] == 1.0
    assert far["status"].startswith("low coverage")
    # mode dropping: samples from one of two well-separated clusters
    two = np.concatenate([ref[:500] - 10.0, ref[500:] + 10.0])
    half = sample_diagnostics(two[:500], two)
    assert half["coverage"] == pytest.approx(0.5, abs=0.02)
    assert half["precision"] == pytest.approx(1.0, abs=0.01)
    # non-finite samples are reported, and the rest still scored
    bad = ref.copy()
    bad[:10] = np.nan
    diag = sample_diagnostics(bad, ref)
    assert diag["status"].startswith("non-finite: 10 of 1000")
    assert diag["n_finite"] == 990 and diag["coverage"] > 0.95
    with pytest.raises(ValueError, match="same d"):
        sample_diagnostics(ref, ref[:, :1])
