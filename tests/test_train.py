"""Training objectives against closed forms; the fused loop's determinism and resumption."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LOGPROB_ATOL, gaussian_logpdf

import flowlab
from flowlab import CNF, Standardize, fit
from flowlab.nn import MLPVectorField
from flowlab.objectives import FlowMatching, MaximumLikelihood

MU = np.array([0.7, -0.4])
S = np.array([1.6, 0.5])


class GaussianFMField(eqx.Module):
    """The exact flow-matching field for data N(mu, diag(s^2)) and base N(0, I)."""

    mu: jax.Array
    s: jax.Array
    data_size: int = 2

    def __call__(self, t, x):
        var = t**2 * self.s**2 + (1 - t) ** 2
        return self.mu + (t * self.s**2 - (1 - t)) / var * (x - t * self.mu)


def test_exact_flow_matching_field_gives_the_data_gaussian():
    cnf = CNF(GaussianFMField(jnp.asarray(MU), jnp.asarray(S)))
    x = jnp.asarray(MU + S * np.random.default_rng(0).normal(size=(300, 2)), jnp.float32)
    expected = gaussian_logpdf(x, MU, np.diag(S**2))
    np.testing.assert_allclose(cnf.log_prob(x), expected, atol=LOGPROB_ATOL, rtol=0)
    samples = np.asarray(cnf.sample(jax.random.key(0), 20000))
    se = S / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(0) - MU) < 4 * se)


def test_flow_matching_loss_is_minimised_by_the_exact_field():
    field = GaussianFMField(jnp.asarray(MU), jnp.asarray(S))
    x = jnp.asarray(MU + S * np.random.default_rng(1).normal(size=(200_000, 2)), jnp.float32)
    key = jax.random.key(0)
    loss = FlowMatching()
    base = float(loss(CNF(field), x, key))
    for delta in ([0.1, 0.0], [0.0, -0.2], [0.15, 0.15]):
        shifted = CNF(lambda t, z, d=jnp.asarray(delta): field(t, z) + d, data_size=2)
        excess = float(loss(shifted, x, key)) - base
        # E|v + d - u|^2 - E|v - u|^2 = |d|^2 (+ Monte Carlo noise of the cross term)
        np.testing.assert_allclose(excess, np.sum(np.square(delta)), rtol=0.1, atol=2e-3)


def _gaussian_data(key, n):
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])
    chol = np.linalg.cholesky(cov)
    z = jax.random.normal(key, (n, 2))
    return z @ jnp.asarray(chol.T, jnp.float32) + jnp.array([1.0, -2.0]), cov


def _small_cnf(train, seed=0, width=32):
    vf = MLPVectorField(2, width=width, depth=2, key=jax.random.key(seed))
    return CNF(vf, standardize=Standardize.fit(train))


@pytest.mark.parametrize(
    "loss, steps, tol",
    [(FlowMatching(), 1500, 0.05), (MaximumLikelihood(), 300, 0.05)],
    ids=["flow_matching", "maximum_likelihood"],
)
def test_training_converges_to_gaussian_entropy(loss, steps, tol):
    train, cov = _gaussian_data(jax.random.key(0), 2000)
    holdout, _ = _gaussian_data(jax.random.key(1), 500)
    model, history = fit(
        _small_cnf(train),
        loss,
        train,
        holdout,
        key=jax.random.key(2),
        steps=steps,
        batch_size=256,
        eval_every=steps // 3,
        progress=False,
    )
    true_nll = -gaussian_logpdf(holdout, np.array([1.0, -2.0]), cov).mean()
    model_nll = -float(jnp.mean(model.log_prob(holdout)))
    assert model_nll - true_nll < tol, (model_nll, true_nll)
    assert history.holdout_loss[-1] < history.holdout_loss[0]
    assert len(history.step_losses) == steps and history.step == [
        steps // 3 * (i + 1) for i in range(3)
    ]


def _run(tmp_path, name, **kwargs):
    train, _ = _gaussian_data(jax.random.key(0), 500)
    holdout, _ = _gaussian_data(jax.random.key(1), 100)
    args = dict(
        key=jax.random.key(5),
        steps=60,
        batch_size=64,
        eval_every=20,
        ema_decay=0.9,
        progress=False,
        hyperparameters={"width": 32},
    )
    args.update(kwargs)
    return fit(
        _small_cnf(train), FlowMatching(), train, holdout, checkpoint=tmp_path / name, **args
    )


def _leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def test_same_key_same_run_and_resume_continues_exactly(tmp_path):
    full, full_history = _run(tmp_path, "full.ckpt")
    again, _ = _run(tmp_path, "again.ckpt")
    for a, b in zip(_leaves(full), _leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)

    class Interrupt(Exception):
        pass

    def stop_at_40(step, history):
        if step == 40:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(tmp_path, "resumed.ckpt", callback=stop_at_40)
    header = flowlab._checkpoint.read_header(tmp_path / "resumed.ckpt")
    assert header["step"] == 40
    evaluated = []
    resumed, history = _run(
        tmp_path, "resumed.ckpt", callback=lambda step, h: evaluated.append(step)
    )
    assert evaluated == [60]  # it resumed at step 40: one chunk left, not three
    for a, b in zip(_leaves(full), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.step == full_history.step == [20, 40, 60]
    assert history.holdout_loss == full_history.holdout_loss
    assert history.step_losses == full_history.step_losses
    assert history.train_eval_loss == full_history.train_eval_loss


def test_train_and_holdout_evaluations_use_the_same_weights_and_key(tmp_path):
    """train_eval_loss is the objective on as many training points as the hold-out has, with
    the returned (EMA) model and the hold-out's key: recomputed here, it matches; and with
    the hold-out set passed as training data the two curves coincide."""
    train, _ = _gaussian_data(jax.random.key(0), 500)
    holdout, _ = _gaussian_data(jax.random.key(1), 100)
    model, history = _run(tmp_path, "same.ckpt")
    eval_key = jax.random.split(jax.random.key(5), 3)[1]
    reps = flowlab._fit._holdout_repeats(FlowMatching())
    points = jnp.tile(train[:100], (reps, 1))
    loss, _ = flowlab._fit._holdout_loss(model, FlowMatching(), points, eval_key)
    assert history.train_eval_loss[-1] == pytest.approx(float(loss), rel=1e-6)
    assert history.train_eval_loss[-1] != pytest.approx(history.holdout_loss[-1], rel=1e-3)
    # the same 100 points in both roles: identical curves (same weights, same key)
    _, same = fit(
        _small_cnf(holdout), FlowMatching(), holdout, holdout, key=jax.random.key(5),
        steps=40, batch_size=64, eval_every=20, ema_decay=0.9, progress=False,
    )  # fmt: skip
    assert same.train_eval_loss == same.holdout_loss


def test_checkpoint_with_other_hyperparameters_objective_or_optimizer_is_refused(tmp_path):
    _run(tmp_path, "run.ckpt")
    with pytest.raises(ValueError, match="different hyperparameters"):
        _run(tmp_path, "run.ckpt", hyperparameters={"width": 64})
    train, _ = _gaussian_data(jax.random.key(0), 500)
    holdout, _ = _gaussian_data(jax.random.key(1), 100)
    common = dict(key=jax.random.key(5), steps=60, batch_size=64, eval_every=20, ema_decay=0.9)
    common.update(progress=False, hyperparameters={"width": 32}, checkpoint=tmp_path / "run.ckpt")
    with pytest.raises(ValueError, match="different objective"):
        fit(_small_cnf(train), FlowMatching(sigma_min=0.1), train, holdout, **common)
    with pytest.raises(ValueError, match="different optimizer"):
        fit(
            _small_cnf(train),
            FlowMatching(),
            train,
            holdout,
            optimizer=flowlab.default_optimizer(60, learning_rate=1e-3),
            **common,
        )
    # the refused runs left the checkpoint as it was
    assert flowlab._checkpoint.read_header(tmp_path / "run.ckpt")["step"] == 60


def test_save_load_model_round_trips_bit_for_bit(tmp_path):
    train, _ = _gaussian_data(jax.random.key(0), 100)
    model = _small_cnf(train, seed=3)

    def make(hp):
        vf = MLPVectorField(2, width=hp["width"], depth=2, key=jax.random.key(0))
        return CNF(vf, standardize=Standardize.identity(2))

    flowlab.save_model(tmp_path / "m.eqx", model, {"width": 32})
    loaded, hp = flowlab.load_model(tmp_path / "m.eqx", make)
    assert hp == {"width": 32}
    for a, b in zip(_leaves(model), _leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    x = train[:10]
    np.testing.assert_array_equal(model.log_prob(x), loaded.log_prob(x))


def test_fit_rejects_bad_input():
    train, _ = _gaussian_data(jax.random.key(0), 100)
    model = _small_cnf(train)
    bad = train.at[3, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="non-finite"):
        fit(model, FlowMatching(), bad, train, key=jax.random.key(0), steps=10, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fit(model, FlowMatching(), train, train, key=jax.random.key(0), steps=0)
    three_d = jnp.ones((10, 3))
    with pytest.raises(ValueError, match=r"acts on 2-dimensional points, but train_data has"):
        fit(model, FlowMatching(), three_d, train, key=jax.random.key(0), steps=5)


def test_fit_trains_only_what_the_model_declares():
    train, _ = _gaussian_data(jax.random.key(0), 200)
    model = _small_cnf(train)
    spec = model.trainable()
    assert not any(jax.tree_util.tree_leaves(spec.standardize))
    assert all(jax.tree_util.tree_leaves(eqx.filter(spec.vector_field, lambda x: x)))
    trained, _ = fit(
        model,
        FlowMatching(),
        train,
        train,
        key=jax.random.key(0),
        steps=20,
        eval_every=10,
        progress=False,
    )
    np.testing.assert_array_equal(trained.standardize.loc, model.standardize.loc)
    np.testing.assert_array_equal(trained.standardize.scale, model.standardize.scale)
    assert not np.array_equal(
        trained.vector_field.mlp.layers[0].weight, model.vector_field.mlp.layers[0].weight
    )


def test_maximum_likelihood_trains_a_diffusion_model_through_its_pf_ode():
    # Likelihood training of a VP diffusion model through the probability-flow ODE lowers
    # its exact hold-out NLL (DSM warm start, then MaximumLikelihood on the same model).
    train, _ = _gaussian_data(jax.random.key(0), 1000)
    holdout, _ = _gaussian_data(jax.random.key(1), 300)
    net = MLPVectorField(2, width=32, depth=2, key=jax.random.key(3))
    model = flowlab.Diffusion(net, standardize=Standardize.fit(train))
    model, _ = fit(
        model,
        flowlab.DenoisingScoreMatching(),
        train,
        holdout,
        key=jax.random.key(4),
        steps=200,
        batch_size=256,
        eval_every=100,
        progress=False,
    )
    before = -float(jnp.mean(model.log_prob(holdout)))
    model, history = fit(
        model,
        MaximumLikelihood(),
        train,
        holdout,
        key=jax.random.key(5),
        steps=60,
        batch_size=256,
        eval_every=30,
        optimizer=flowlab.default_optimizer(60, 3e-3),
        progress=False,
    )
    after = -float(jnp.mean(model.log_prob(holdout)))
    assert after < before - 0.02, (before, after)
    assert history.holdout_loss[-1] < history.holdout_loss[0]


def test_callback_returning_true_stops_training_early(tmp_path):
    seen = []

    def stop_at_40(step, history):
        seen.append(step)
        return step >= 40

    model, history = _run(tmp_path, "early.ckpt", callback=stop_at_40)
    assert seen == [20, 40]
    assert history.step == [20, 40]
    assert len(history.step_losses) == 40
    assert flowlab._checkpoint.read_header(tmp_path / "early.ckpt")["step"] == 40


def test_atomic_write_leaves_no_temporary_file_and_a_normal_mode(tmp_path):
    import os
    import stat

    from flowlab._checkpoint import atomic_write_text

    path = tmp_path / "out" / "metrics.json"
    atomic_write_text(path, "{}")
    atomic_write_text(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_flow_matching_with_minibatch_ot_coupling():
    # Data drawn from the base itself: the OT coupling pairs each base draw with a nearby data
    # point, so the regression target z1 - z0 nearly vanishes (the straight, short paths OT-CFM
    # is for), while independent pairs give E||z1 - z0||^2 = 2d = 4 for the zero field.
    from flowlab.couplings import ExactOT, Sinkhorn, schrodinger_bridge

    zero = CNF(lambda t, z: jnp.zeros_like(z), data_size=2)
    x = jax.random.normal(jax.random.key(0), (256, 2))
    key = jax.random.key(1)
    independent = float(FlowMatching()(zero, x, key))
    assert abs(independent - 4.0) < 0.6
    for coupling in (ExactOT(), Sinkhorn()):
        assert float(FlowMatching(coupling=coupling)(zero, x, key)) < 0.1 * independent
    sb = FlowMatching(coupling=schrodinger_bridge(0.1), bridge_sigma=0.1)
    assert float(sb(zero, x, key)) < 0.2 * independent
    with pytest.raises(ValueError, match="bridge_sigma"):
        FlowMatching(bridge_sigma=0.1, sigma_min=0.1)
    # inside fit's fused scan (the exact assignment is a host callback in the jitted step)
    train, _ = _gaussian_data(jax.random.key(0), 400)
    _, history = fit(
        _small_cnf(train), FlowMatching(coupling=ExactOT()), train, train,
        key=jax.random.key(2), steps=20, batch_size=64, eval_every=10, progress=False,
    )  # fmt: skip
    assert np.isfinite(history.step_losses).all() and len(history.step_losses) == 20
