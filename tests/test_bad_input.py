"""Bad input never becomes a silent wrong number (issue 21): one test per cause, each
asserting the message or the flag. Tiny models, a few steps each."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowlab
from flowlab import datasets, metrics, samplers
from flowlab._checks import check_key

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
