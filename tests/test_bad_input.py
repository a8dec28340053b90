"""Bad input never becomes a silent wrong number (issue 21): one test per cause of the issue
(numbered as there) and its borderline items, each asserting the message or the flag, not only
that something was raised. Library numerics first (standardisation, solver options, samplers,
energies, metrics, datasets, keys), then training (fit's options, optimisers, checkpoints and
their fingerprint, objectives) and the scripts' flags. Tiny models, a few steps each."""

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowlab
from flowlab import CNF, SingleNoiseScore, Standardize, datasets, fit, fit_many, metrics, samplers
from flowlab._checkpoint import read_header, save_checkpoint
from flowlab._checks import check_key
from flowlab.nn import MLPVectorField
from flowlab.objectives import DenoisingScoreMatching, FlowMatching, SingleNoiseDSM
from flowlab.optim import Adam, TwoPlayerAdam, default_optimizer

KEY = jax.random.key(0)
BOX = ((-2.0, 2.0), (-2.0, 2.0))


def _cnf():
    return flowlab.CNF(flowlab.nn.MLPVectorField(2, width=8, depth=1, key=KEY))


class Quadratic(eqx.Module):
    """E(z) = a |z|^2: NaN for a = NaN; unbounded below (Langevin explodes) for a < 0."""

    a: jax.Array

    def __call__(self, z):
        return self.a * jnp.sum(z**2)


def _ebm(a, **kwargs):
    kwargs = {"quadrature_panels": 2, "quadrature_order": 4, **kwargs}
    return flowlab.EBM(Quadratic(jnp.asarray(a, jnp.float32)), BOX, **kwargs)


def _built(family, **hp):
    base = dict(width=8, depth=1, seed=0, standardize_loc=[0.0, 0.0])
    return flowlab.build_model({**base, "standardize_scale": [1.0, 1.0], "family": family, **hp})


# -- 1, 2: the standardisation ----------------------------------------------------------------


def test_cause_01_standardize_fit_rejects_non_finite_data():
    x = jax.random.normal(KEY, (100, 2)).at[3, 1].set(jnp.nan).at[7, 0].set(jnp.inf)
    with pytest.raises(ValueError, match=r"non-finite .* in 2 of 100 rows, first at rows \[3, 7\]"):
        flowlab.Standardize.fit(x)


@pytest.mark.parametrize("factor, found", [(1e30, "e\\+29"), (1e-30, "e-31")])
def test_cause_01_standardize_fit_rejects_a_scale_float32_cannot_compute(factor, found):
    x = factor * jax.random.normal(KEY, (100, 2))
    with pytest.raises(ValueError, match=f"scale .* is \\[9\\.\\d+{found}.*overflow or underflow"):
        flowlab.Standardize.fit(x)


@pytest.mark.parametrize("scale", [[-1.0, 1.0], [0.0, 1.0], [float("nan"), 1.0]])
def test_cause_02_standardize_needs_a_positive_finite_scale(scale):
    with pytest.raises(ValueError, match=r"expected scale > 0 and finite, got \["):
        flowlab.Standardize(jnp.zeros(2), jnp.asarray(scale))
    with pytest.raises(ValueError, match="expected a finite loc"):
        flowlab.Standardize(jnp.asarray([jnp.nan, 0.0]), jnp.ones(2))


# -- 3, 4: solver options and the time of a density -------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(max_steps=2.5), "max_steps must be a positive integer, got 2.5"),
        (dict(max_steps=0), "max_steps must be a positive integer, got 0"),
        (dict(dt0=0.0, solver=diffrax.Heun()), "dt0 must be None .* positive finite .* got 0.0"),
        (dict(dt0=-0.1, solver=diffrax.Heun()), "dt0 must be None .* got -0.1"),
        (dict(rtol=float("nan")), "rtol and atol must be positive finite numbers, got nan"),
        (dict(atol=0.0), "rtol and atol must be positive finite numbers, got 1e-05, 0.0"),
    ],
)
def test_cause_03_solver_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        flowlab.SolverOptions(**options)
    with pytest.raises(ValueError, match=message):  # and through a model's constructor
        flowlab.CNF(flowlab.nn.MLPVectorField(2, width=4, depth=1, key=KEY), **options)


def test_cause_04_log_prob_time_must_be_finite_and_inside_the_interval():
    cnf, x = _cnf(), jnp.ones((3, 2))
    for t in (float("nan"), 5.0, -0.1):
        with pytest.raises(ValueError, match=r"inside the model's time interval \[0, 1\], got t="):
            cnf.log_prob_with_stats(x, t=t)
    with pytest.raises(ValueError, match=r"expected t to be a scalar time, got shape \(2,\)"):
        cnf.log_prob(x, t=jnp.ones(2))
    # a traced t is checked under jit too (eqx.error_if)
    at = eqx.filter_jit(lambda t: cnf.log_prob(x, t=t))
    assert np.isfinite(np.asarray(at(jnp.asarray(0.5)))).all()
    with pytest.raises(Exception, match=r"time interval \[0, 1\]"):
        at(jnp.asarray(5.0))


# -- 10, 11: samplers and the energy-based model ----------------------------------------------


def test_cause_10_langevin_reports_non_finite_samples():
    nan_model, exploding = _ebm(jnp.nan), _ebm(-1e6, energy_bound=None, wall_stiffness=0.0)
    report = samplers.Langevin(steps=20, step_size=0.1, throw=False)
    for model in (nan_model, exploding):
        x, stats = model.sample_with_stats(KEY, 8, sampler=report)
        assert not np.isfinite(np.asarray(x)).all()
        assert bool(stats.success) is False
        # by default it fails loudly, as the CNF's ODE sampler does
        with pytest.raises(Exception, match="Langevin sampling produced non-finite samples"):
            model.sample(KEY, 8, sampler=samplers.Langevin(steps=20, step_size=0.1))
    with pytest.raises(Exception, match="Langevin sampling produced non-finite samples"):
        nan_model.sample(KEY, 8)  # the EBM's default sampler
    x, stats = _ebm(0.5).sample_with_stats(KEY, 8, sampler=samplers.Langevin(steps=20))
    assert np.isfinite(np.asarray(x)).all() and bool(stats.success) is True


def test_cause_10_fixed_step_samplers_report_non_finite_samples():
    ddpm = _built("ddpm", num_diffusion_steps=50)
    nan_weights = lambda net: jax.tree_util.tree_map(  # noqa: E731
        lambda a: a * jnp.nan if eqx.is_inexact_array(a) else a, net
    )
    broken = eqx.tree_at(lambda m: m.network, ddpm, replace_fn=nan_weights)
    _, stats = broken.sample_with_stats(KEY, 4, sampler=samplers.DDIM(steps=5))
    assert bool(stats.success) is False
    _, stats = ddpm.sample_with_stats(KEY, 4, sampler=samplers.DDIM(steps=5))
    assert bool(stats.success) is True
    gan = _built("gan", latent_size=2)  # one generator pass: the same flag
    broken = eqx.tree_at(lambda m: m.generator, gan, replace_fn=nan_weights)
    x, stats = broken.sample_with_stats(KEY, 4)
    assert np.isnan(np.asarray(x)).all() and bool(stats.success) is False
    assert bool(gan.sample_with_stats(KEY, 4)[1].success) is True


def test_cause_11_ebm_log_prob_with_a_nan_energy_raises_like_the_cnf():
    model, x = _ebm(jnp.nan), jnp.ones((3, 2))
    with pytest.raises(Exception, match="EBM log_prob failed: the energy is NaN"):
        model.log_prob(x)
    lp, stats = model.log_prob_with_stats(x, throw=False)
    assert np.isnan(np.asarray(lp)).all() and bool(stats.success) is False
    # a finite energy without wall or bound: log p = -|z|^2/2 - log(2 pi), to the quadrature
    # on [-4, 4]^2 (the data box widened by wall_width), which misses 1.3e-4 of the mass
    model = _ebm(0.5, quadrature_panels=8, energy_bound=None, wall_stiffness=0.0)
    lp, stats = model.log_prob_with_stats(x)
    assert bool(stats.success) is True
    np.testing.assert_allclose(np.asarray(lp), -1.0 - math.log(2 * math.pi), atol=1e-3)


# -- 13, 14, 15: sample metrics ---------------------------------------------------------------


@pytest.mark.parametrize("bandwidth", [0.0, -1.0, float("nan"), float("inf")])
def test_cause_13_mmd_bandwidth_must_be_positive_and_finite(bandwidth):
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="expected bandwidth to be a positive finite number"):
        metrics.mmd(x, x + 1.0, bandwidth=bandwidth)


def test_cause_14_mmd_of_collapsed_samples_has_a_defined_value():
    # 10 copies of a against 2 copies of b: more than half the pooled distances are 0, so the
    # bandwidth falls back to the median nonzero distance |a - b|; kxx = kyy = 1 and
    # kxy = exp(-1/2) give MMD^2 = 2 - 2 exp(-1/2).
    a, b = np.tile([1.0, 2.0], (10, 1)), np.tile([4.0, 6.0], (2, 1))
    assert metrics.mmd(a, b) == pytest.approx(2.0 - 2.0 * math.exp(-0.5), rel=1e-12)
    assert metrics.mmd(a, a) == 0.0  # one point mass against itself: 0 for any bandwidth
    assert metrics.mmd(a, b, bandwidth=5.0) == pytest.approx(2.0 - 2.0 * math.exp(-0.5))


@pytest.mark.parametrize("bw_method", [-1.0, 0.0, float("nan"), "scot", True, lambda kde: -1.0])
def test_cause_15_kde_bandwidth_must_be_positive(bw_method):
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(50, 2)), rng.normal(size=(20, 2))
    with pytest.raises(ValueError, match="bw_method"):
        metrics.kde_log_likelihood(x, h, bw_method=bw_method)
    with pytest.raises(ValueError, match="bw_method"):
        metrics.bhattacharyya_distance(x, h, bw_method=bw_method)
    assert np.isfinite(metrics.kde_log_likelihood(x, h, bw_method=0.5).mean)


# -- 16: float64 ------------------------------------------------------------------------------

X64_SCRIPT = """
import json, jax, flowlab
from flowlab import datasets
train, holdout = datasets.split("pinwheel", jax.random.key(0), 64, 16)
point = datasets.sample("ffjord_moons", jax.random.key(1), 4)
cnf = flowlab.CNF(flowlab.nn.MLPVectorField(2, width=8, depth=1, key=jax.random.key(2)),
                  standardize=flowlab.Standardize.fit(train))
lp = cnf.log_prob(holdout)
print(json.dumps({"dtypes": [str(train.dtype), str(point.dtype), str(lp.dtype)],
                  "train": train.tolist(), "moons": point.tolist(),
                  "lp": lp.tolist(), "true": datasets.log_prob("pinwheel", holdout).tolist()}))
"""


def test_cause_16_datasets_follow_jax_enable_x64():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", X64_SCRIPT], capture_output=True, text=True, env=env, cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dtypes"] == ["float64", "float64", "float64"]
    assert np.isfinite(out["lp"]).all() and np.isfinite(out["true"]).all()
    # the same key gives the same points with and without x64 (drawn in float32)
    train32, _ = datasets.split("pinwheel", jax.random.key(0), 64, 16)
    assert train32.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out["train"], np.float32), np.asarray(train32))
    moons32 = datasets.sample("ffjord_moons", jax.random.key(1), 4)
    np.testing.assert_array_equal(np.asarray(out["moons"], np.float32), np.asarray(moons32))


# -- borderline: int seeds as keys, and log_prob of models without an exact likelihood --------


def test_borderline_check_key_accepts_typed_and_raw_keys():
    check_key(jax.random.key(0))
    check_key(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"key must be one JAX PRNG key, got the int 0: pass "):
        check_key(0)
    with pytest.raises(ValueError, match=r"keys must be one JAX PRNG key .* shape \(3,\)"):
        check_key(jax.random.split(KEY, 3), "keys")


def test_borderline_an_int_seed_as_key_gets_one_clear_error():
    x = jnp.ones((4, 2))
    ddpm = _built("ddpm", num_diffusion_steps=50)
    calls = {
        "CNF.sample": lambda: _cnf().sample(0, 4),
        "CNF.log_prob (Hutchinson key)": lambda: _cnf().log_prob(x, key=0),
        "DDPM.sample": lambda: ddpm.sample(0, 4),
        "DDPM.log_prob_bound": lambda: ddpm.log_prob_bound(x, key=0),
        "GAN.sample": lambda: _built("gan", latent_size=2).sample(0, 4),
        "VAE.log_prob_bound": lambda: flowlab.VAE.from_mlps(
            2, 2, width=8, depth=1, key=KEY
        ).log_prob_bound(x, key=0),
        "EBM.sample": lambda: _ebm(0.5).sample(0, 4),
        "datasets.split": lambda: datasets.split("pinwheel", 0),
        "evaluate.noise_floor": lambda: flowlab.evaluate.noise_floor("pinwheel", 8, key=0),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="key must be one JAX PRNG key, got the int 0"):
            call()
            pytest.fail(name)


@pytest.mark.parametrize(
    "family, hp, kind",
    [
        ("ddpm", {"num_diffusion_steps": 50}, "bound"),
        ("dsm", {"sigma": 0.1}, "none"),
        ("gan", {"latent_size": 2}, "none"),
    ],
)
def test_borderline_log_prob_without_an_exact_likelihood_says_what_to_use(family, hp, kind):
    model = _built(family, **hp)
    assert flowlab.likelihood_kind(model) == kind
    assert not hasattr(model, "log_prob")  # dispatch by hasattr keeps working
    name = type(model).__name__
    if kind == "bound":
        message = f"{name} has no exact likelihood \\(likelihood kind 'bound'\\), so no log_prob"
        message += ": use log_prob_bound"
    else:
        message = f"{name} has no likelihood \\(likelihood kind 'none'\\), so no log_prob: "
    with pytest.raises(AttributeError, match=message):
        model.log_prob(jnp.ones((2, 2)))
    if kind == "none":
        assert not hasattr(model, "log_prob_bound")
        with pytest.raises(AttributeError, match="neither an exact log_prob nor a log_prob_bound"):
            model.log_prob_bound(jnp.ones((2, 2)), key=KEY)
    with pytest.raises(AttributeError, match=f"'{name}' object has no attribute 'nonsense'"):
        model.nonsense  # noqa: B018  (other names keep the ordinary message)


# == training, checkpoints, objectives and scripts ==========================================


def _gauss(seed, n=64):
    return jax.random.normal(jax.random.key(seed), (n, 2)) * jnp.array([1.0, 0.5]) + 0.3


def _std_cnf(seed=0):
    vf = MLPVectorField(2, width=8, depth=1, key=jax.random.key(seed))
    return CNF(vf, standardize=Standardize.fit(_gauss(0)))


def _fit(model=None, loss=None, train=None, holdout=None, **kwargs):
    args = dict(key=jax.random.key(1), steps=4, batch_size=16, eval_every=2, progress=False)
    args.update(kwargs)
    return fit(
        _std_cnf() if model is None else model,
        FlowMatching() if loss is None else loss,
        _gauss(0) if train is None else train,
        _gauss(1, 32) if holdout is None else holdout,
        **args,
    )


def _leaves(model):
    return jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))


# --- cause 5: fit's ema_decay and counts ---------------------------------------------------


@pytest.mark.parametrize("ema_decay", [1.5, 1.0, -1, float("nan"), "0.9"])
def test_cause_05_ema_decay_outside_unit_interval_is_refused(ema_decay):
    pattern = r"expected ema_decay to be None \(no moving average\) or a number in \[0, 1\)"
    with pytest.raises(ValueError, match=pattern + r".*got " + repr(ema_decay)[:4]):
        _fit(ema_decay=ema_decay)
    with pytest.raises(ValueError, match=pattern):
        fit_many([_std_cnf()], FlowMatching(), _gauss(0), _gauss(1, 32), keys=[jax.random.key(1)],
                 steps=4, progress=False, ema_decay=ema_decay)  # fmt: skip
    with pytest.raises(ValueError, match=pattern):
        flowlab.Trainer(FlowMatching(), default_optimizer(4), None, 16, ema_decay)


def test_cause_05_counts_and_checkpoint_path_are_checked(tmp_path):
    for name, value in [("steps", 0), ("steps", 2.5), ("batch_size", 0), ("eval_every", -1)]:
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value!r}"):
            _fit(**{name: value})
    with pytest.raises(ValueError, match="expected checkpoint to be a file path .* the folder"):
        _fit(checkpoint=tmp_path)
    # "no EMA" is None; 0 is an average that follows the weights: both train, and a batch
    # larger than the data is fine (batches are drawn with replacement)
    plain, _ = _fit(ema_decay=None, batch_size=100, train=_gauss(0, 40))
    zero, _ = _fit(ema_decay=0.0, batch_size=100, train=_gauss(0, 40))
    for a, b in zip(_leaves(plain), _leaves(zero), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --- cause 6: the optimiser's options -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(clip=0.0), r"expected clip > 0 .* got 0.0: a clip of 0 scales every update to zero"),
        (dict(clip=-1.0), r"expected clip > 0 .* got -1.0"),
        (dict(warmup=-5), r"expected warmup .* in \[0, steps\) = \[0, 100\), got -5"),
        (dict(warmup=100), r"expected warmup .* in \[0, steps\) = \[0, 100\), got 100"),
        (dict(learning_rate=0.0), r"expected a finite learning_rate > 0, got 0.0"),
        (dict(learning_rate=float("nan")), r"expected a finite learning_rate > 0, got nan"),
    ],
)
def test_cause_06_optimizer_options_out_of_range_are_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        default_optimizer(100, **kwargs)
    if "learning_rate" not in kwargs:
        with pytest.raises(ValueError, match=pattern):
            TwoPlayerAdam(steps=100, **kwargs)
    with pytest.raises(ValueError, match=r"expected b2 in \[0, 1\), got 1.0"):
        Adam(steps=100, b2=1.0)
    # no clipping is spelled inf, and trains
    assert default_optimizer(100, clip=float("inf")).describe()["clip"] == float("inf")


# --- cause 7: one step ----------------------------------------------------------------------


def test_cause_07_one_step_with_the_default_optimizer_trains():
    model = _std_cnf()
    trained, history = _fit(model, steps=1, eval_every=1)
    assert history.step == [1] and len(history.step_losses) == 1
    # the one step is taken at the peak rate (not a warm-up's zero): the weights moved
    moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(_leaves(model), _leaves(trained), strict=True)
    )
    assert moved > 1e-4
    adam = Adam(steps=1, learning_rate=1e-2)
    grads = {"w": jnp.ones(3)}
    with jax.numpy_dtype_promotion("standard"):  # as the Trainer runs Optax
        updates, _ = adam.update(grads, adam.init(grads))
    np.testing.assert_allclose(updates["w"], -1e-2, rtol=1e-4)


def test_cause_07_vae_script_configuration_trains_one_step():
    """``vae_pinwheel.py --smoke --steps 1``: its hyperparameters, model, objective and
    optimiser train one step (the full script, evaluation included, takes ~25 s; it was
    run by hand)."""
    from lab import pipeline, registry

    vae = importlib.import_module("vae_pinwheel")
    args, hp = vae.parse_args(["--smoke", "--steps", "1", "--out", "unused"])
    assert hp["steps"] == 1
    train, holdout, keys, hp = pipeline.prepare("vae", args, hp)
    model, history = fit(
        registry.build_model(hp), registry.build_objective(hp), train[:256], holdout[:64],
        key=keys["train"], steps=1, batch_size=hp["batch_size"], eval_every=hp["eval_every"],
        optimizer=registry.build_optimizer(hp), ema_decay=hp["ema_decay"], progress=False,
    )  # fmt: skip
    assert history.step == [1] and np.isfinite(history.holdout_loss[0])


# --- causes 8 and 9, and the checkpoint's fingerprint ----------------------------------------


def _l1(model, x, key):
    return FlowMatching()(model, x, key)


def _scaled(scale):
    def loss(model, x, key):
        return scale * FlowMatching()(model, x, key)

    return loss


def test_cause_08_resume_with_another_loss_function_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    _fit(loss=_l1, checkpoint=ckpt, callback=lambda step, h: step >= 2)
    header = read_header(ckpt)
    assert header["objective"]["callable"].endswith("test_bad_input._l1")

    def thousand(model, x, key):
        return 1000 * _l1(model, x, key)

    names = r"objective\.callable: saved '[\w.]*_l1'\n  objective\.callable: now   '.*thousand'"
    with pytest.raises(flowlab.CheckpointError, match=r"different objective:\n  " + names):
        _fit(loss=thousand, checkpoint=ckpt)
    # the same name, other code or closure: the hash differs
    with pytest.raises(flowlab.CheckpointError, match=r"objective\.sha256: saved '[0-9a-f]+'"):
        _fit(loss=types.FunctionType(thousand.__code__, globals(), "_l1"), checkpoint=ckpt)
    ckpt2 = tmp_path / "scaled.ckpt"
    _fit(loss=_scaled(1.0), checkpoint=ckpt2, callback=lambda step, h: step >= 2)
    with pytest.raises(flowlab.CheckpointError, match=r"objective\.sha256"):
        _fit(loss=_scaled(1000.0), checkpoint=ckpt2)
    # the same function resumes, from step 2
    steps = []
    _fit(loss=_l1, checkpoint=ckpt, callback=lambda step, h: steps.append(step))
    assert steps == [4]


def test_cause_08_resume_with_another_optax_transformation_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    _fit(optimizer=optax.adam(1e-3), checkpoint=ckpt, callback=lambda step, h: True)
    pattern = r"different optimizer:\n  optimizer\.optax\.sha256"
    with pytest.raises(flowlab.CheckpointError, match=pattern):
        _fit(optimizer=optax.adam(1e-4), checkpoint=ckpt)
    _fit(optimizer=optax.adam(1e-3), checkpoint=ckpt)  # the same one resumes


def test_cause_09_resume_with_other_data_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    _fit(checkpoint=ckpt)  # a finished run
    data = read_header(ckpt)["data"]["train_data"]
    assert data["shape"] == [64, 2] and data["dtype"] == "float32" and len(data["sha256"]) == 64
    pattern = r"different data:\n  data\.train_data\.sha256: saved"
    with pytest.raises(flowlab.CheckpointError, match=pattern):
        _fit(train=_gauss(7), checkpoint=ckpt)
    pattern = r"data\.train_data\.shape: saved \[64, 2\]\n.*now   \[65, 2\]"
    with pytest.raises(flowlab.CheckpointError, match=pattern):
        _fit(train=_gauss(0, 65), checkpoint=ckpt)
    with pytest.raises(flowlab.CheckpointError, match=r"data\.holdout_data\.sha256"):
        _fit(holdout=_gauss(8, 32), checkpoint=ckpt)


def test_cause_09_fit_many_refuses_one_run_with_other_data(tmp_path):
    ckpt = tmp_path / "batch.ckpt"
    args = dict(keys=[jax.random.key(1), jax.random.key(2)], steps=2, batch_size=16,
                eval_every=2, progress=False, checkpoint=ckpt)  # fmt: skip
    fit_many(
        [_std_cnf(0), _std_cnf(1)], FlowMatching(), [_gauss(0), _gauss(1)], _gauss(2, 32), **args
    )
    with pytest.raises(flowlab.CheckpointError, match=r"configs\[1\]\.data\.train_data\.sha256"):
        fit_many(
            [_std_cnf(0), _std_cnf(1)],
            FlowMatching(),
            [_gauss(0), _gauss(3)],
            _gauss(2, 32),
            **args,
        )


def test_fingerprint_old_checkpoint_without_it_is_refused(tmp_path):
    ckpt = tmp_path / "old.ckpt"
    _fit(checkpoint=ckpt, callback=lambda step, h: True)
    header = read_header(ckpt)
    del header["data"]
    save_checkpoint(ckpt, {"x": jnp.zeros(1)}, header)
    with pytest.raises(flowlab.CheckpointError, match="has no fingerprint of the data .* delete"):
        _fit(checkpoint=ckpt)


def test_fingerprint_resume_is_logged_with_its_step(tmp_path, caplog):
    ckpt = tmp_path / "run.ckpt"
    _fit(checkpoint=ckpt, callback=lambda step, h: step >= 2)
    with caplog.at_level("INFO", logger="flowlab"):
        _fit(checkpoint=ckpt)
    assert f"resuming from {ckpt} at step 2 of 4" in caplog.text


# --- cause 12: objectives check the model type ----------------------------------------------


def _single_noise():
    return SingleNoiseScore(MLPVectorField(2, width=8, depth=1, key=jax.random.key(0)), 0.1)


@pytest.mark.parametrize(
    "objective, model, pattern",
    [
        (
            DenoisingScoreMatching(),
            _cnf,
            "DenoisingScoreMatching trains a Gaussian-kernel diffusion .* got CNF",
        ),  # fmt: skip
        (
            SingleNoiseDSM(),
            _cnf,
            r"SingleNoiseDSM trains a single-noise score model \(SingleNoiseScore\), got CNF",
        ),  # fmt: skip
        (FlowMatching(), _single_noise, "FlowMatching trains a CNF .* got SingleNoiseScore"),
        (flowlab.EnergyDSM(), _cnf, "EnergyDSM trains an energy model .* got CNF"),
    ],
    ids=["dsm", "single_noise_dsm", "flow_matching", "energy_dsm"],
)
def test_cause_12_objectives_name_the_model_type_they_train(objective, model, pattern):
    with pytest.raises(ValueError, match=pattern):
        _fit(model(), objective)


# --- borderline: keys and the scripts' flags ------------------------------------------------


def test_borderline_int_seed_as_key_is_refused():
    pattern = r"key must be one JAX PRNG key, got the int 0: pass jax\.random\.key\(0\)"
    with pytest.raises(ValueError, match=pattern):
        _fit(key=0)
    with pytest.raises(ValueError, match=r"keys\[1\] must be one JAX PRNG key, got the int 3"):
        fit_many([_std_cnf(), _std_cnf()], FlowMatching(), _gauss(0), _gauss(1),
                 keys=[jax.random.key(0), 3], steps=2, progress=False)  # fmt: skip


SCRIPTS = ["cnf_pinwheel", "vae_pinwheel", "gan_pinwheel", "ebm_pinwheel", "diffusion_pinwheel"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "-1"], "argument --steps: expected a positive integer, got -1"),
        (["--steps", "two"], "argument --steps: expected a positive integer, got 'two'"),
        (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got 0"),
        (["--eval-every", "0"], "argument --eval-every: expected a positive integer, got 0"),
        (["--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
        (["--width", "0"], "argument --width: expected a positive integer, got 0"),
    ],
)
@pytest.mark.parametrize("script", SCRIPTS)
def test_borderline_script_flags_are_usage_errors(script, flags, message, capsys):
    parse = importlib.import_module(script).parse_args
    with pytest.raises(SystemExit) as info:
        parse(["--smoke", *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and message in err


def test_borderline_script_out_must_be_a_writable_folder(tmp_path, capsys, monkeypatch):
    from lab import common

    parse = importlib.import_module("cnf_pinwheel").parse_args
    a_file = tmp_path / "metrics.json"
    a_file.write_text("{}")
    for out, message in [
        (a_file, f"expected an output folder, got the existing file {a_file}"),
        (a_file / "run", f"got {a_file / 'run'}, below the existing file {a_file}"),
    ]:
        with pytest.raises(SystemExit) as info:
            parse(["--smoke", "--out", str(out)])
        assert info.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.setattr(common.os, "access", lambda path, mode: False)
    with pytest.raises(argparse.ArgumentTypeError, match=f"{tmp_path} is not writable"):
        common.output_folder(str(tmp_path / "new"))
    for script in ("compare", "course_project"):
        with pytest.raises(SystemExit) as info:
            importlib.import_module(script).parse_args(["--seeds", "0"])
        assert info.value.code == 2
        assert "argument --seeds: expected a positive integer, got 0" in capsys.readouterr().err


def test_borderline_script_says_when_it_resumes_without_progress(tmp_path, capsys):
    """A script's training step (``pipeline.train_model``, as every script runs it) with
    ``--no-progress``: the second call says it resumed, and from which step; a checkpoint of
    another run ends the script with the differences and a pointer to ``--fresh``."""
    from lab import pipeline

    cnf = importlib.import_module("cnf_pinwheel")
    args, hp = cnf.parse_args(["--smoke", "--no-progress", "--out", str(tmp_path)])
    hp.update(steps=4, eval_every=2, width=8, depth=1, batch_size=32)
    train, holdout, keys, hp = pipeline.prepare("cnf_fm", args, hp)
    pipeline.train_model("cnf_fm", args, hp, train, holdout, keys, metrics={})
    assert "resuming" not in capsys.readouterr().out
    pipeline.train_model("cnf_fm", args, hp, train, holdout, keys, metrics={})
    out = capsys.readouterr().out
    assert f"[flowlab] resuming from {tmp_path / 'checkpoint.eqx'} at step 4 of 4" in out
    with pytest.raises(SystemExit, match=r"(?s)data\.train_data\.sha256.*rerun with --fresh"):
        pipeline.train_model("cnf_fm", args, hp, train[::-1], holdout, keys, metrics={})


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: flowlab.FlowMatching(0.1), "sigma_min"),
        (lambda: flowlab.objectives.DenoisingScoreMatching(4), "k"),
        (lambda: flowlab.objectives.MeanFlowMatching(0.5), "flow_ratio"),
    ],
)
def test_objective_first_positional_option_is_not_holdout_repeats(make, field):
    """Every objective declares holdout_repeats keyword-only: a positional option lands on
    the objective's own first option, never silently on the hold-out repeat count (it used
    to: FlowMatching(0.1) gave holdout_repeats=0.1)."""
    obj = make()
    assert obj.holdout_repeats == type(obj)().holdout_repeats
    assert getattr(obj, field) != getattr(type(obj)(), field)
