"""The model protocol, the solver bookkeeping and the public namespace, family by family."""

import dataclasses
import re
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowlab
from flowlab import CNF, DDPM, Diffusion, SingleNoiseScore, SolverOptions, Standardize, Stats
from flowlab._ode import augmented_solve, flow_solve
from flowlab.nn import MLPVectorField
from flowlab.samplers import DDIM, EulerMaruyama

ROOT = Path(__file__).resolve().parent.parent
STD = Standardize(jnp.asarray([1.0, -2.0]), jnp.asarray([2.0, 0.5]))


def _net(seed=0):
    return MLPVectorField(2, width=16, depth=2, key=jax.random.key(seed))


def _families():
    return {
        "cnf": CNF(_net(), standardize=STD),
        "diffusion": Diffusion(_net(), standardize=STD),
        "ddpm": DDPM(_net(), 100, standardize=STD),
        "single_noise": SingleNoiseScore(_net(), 0.2, standardize=STD),
    }


KINDS = {"cnf": "exact", "diffusion": "exact", "ddpm": "bound", "single_noise": "none"}


# -- NFE: counted from real calls of the field -------------------------------------------------

SOLVERS = [
    (diffrax.Tsit5(), None),
    (diffrax.Dopri5(), None),
    (diffrax.Dopri8(), None),
    (diffrax.Bosh3(), None),
    (diffrax.Heun(), None),
    (diffrax.Heun(), 0.05),
    (diffrax.Midpoint(), 0.05),
    (diffrax.Ralston(), 0.05),
    (diffrax.Euler(), 0.05),
    (diffrax.Tsit5(), 0.05),
    (diffrax.Dopri8(), 0.1),
]


@pytest.mark.parametrize("solver,dt0", SOLVERS, ids=lambda v: v.__class__.__name__)
@pytest.mark.parametrize("augmented", [False, True], ids=["flow", "likelihood"])
def test_nfe_counts_every_real_call_of_the_field(solver, dt0, augmented):
    calls = []

    def field(t, x):
        jax.debug.callback(lambda: calls.append(1))
        return -x * (1.0 + t)

    options = SolverOptions(solver=solver, dt0=dt0, rtol=1e-4, atol=1e-4)
    x0 = jnp.ones((1, 2))  # one example: one callback per field evaluation
    if augmented:
        *_, stats = augmented_solve(field, x0, 0.0, 1.0, options)
    else:
        _, stats = flow_solve(field, x0, 0.0, 1.0, options)
    jax.effects_barrier()
    assert int(stats.nfe) == len(calls) > 0


# -- the protocol, family by family ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_every_family_meets_the_protocol(name):
    model = _families()[name]
    assert isinstance(model, flowlab.AbstractModel)
    assert flowlab.likelihood_kind(model) == KINDS[name]
    assert model.data_size == 2
    x, stats = model.sample_with_stats(jax.random.key(0), 7)
    assert x.shape == (7, 2) and isinstance(stats, Stats) and int(stats.nfe) > 0
    np.testing.assert_array_equal(model.sample(jax.random.key(0), 7), x)  # same key, same draw
    # training touches the declared fields only: never the standardisation
    spec = model.trainable()
    assert not any(jax.tree_util.tree_leaves(spec.standardize))
    trained = [
        n for n in model.trainable_fields if any(jax.tree_util.tree_leaves(getattr(spec, n)))
    ]
    assert trained == list(model.trainable_fields)
    if KINDS[name] == "exact":
        lp, lp_stats = model.log_prob_with_stats(x)
        assert lp.shape == (7,) and isinstance(lp_stats, Stats)
        assert model.likelihood_label().startswith("exact: adaptive Dopri5")
    if KINDS[name] == "bound":
        assert model.log_prob_bound(x, key=jax.random.key(1)).shape == (7,)
        assert model.bound_name


def test_stats_are_one_type_across_samplers():
    model = _families()["diffusion"]
    for sampler in (None, EulerMaruyama(steps=10), DDIM(steps=10)):
        _, stats = model.sample_with_stats(jax.random.key(0), 5, sampler=sampler)
        assert type(stats) is Stats and set(stats.as_dict()) == {
            "num_steps", "num_accepted_steps", "num_rejected_steps", "nfe", "success"
        }  # fmt: skip


def test_flows_share_one_time_convention():
    cnf, dif = _families()["cnf"], _families()["diffusion"]
    assert (cnf.t_base, cnf.t_data) == (0.0, 1.0)
    assert (dif.t_base, dif.t_data) == (1.0, dif.sde.eps)
    for model in (cnf, dif):
        ts, xs = model.trajectories(jax.random.key(0), 4, num_times=5)
        assert float(ts[0]) == model.t_base and abs(float(ts[-1]) - model.t_data) < 1e-7
        # the last saved time is the end of the solve, read off the dense output: equal to
        # the end point to the solve's rtol (an untrained diffusion's samples reach |x| ~ 400)
        np.testing.assert_allclose(xs[-1], model.sample(jax.random.key(0), 4), rtol=1e-5, atol=1e-4)
        z0 = model.prior_sample(jax.random.key(0), 4)
        _, xs0 = model.trajectories(z0=z0, num_times=5)
        np.testing.assert_allclose(xs0, xs, atol=1e-5)
        with pytest.raises(ValueError, match="must start at the base time"):
            model.trajectories(z0=z0, ts=jnp.linspace(model.t_data, model.t_base, 3))


def test_with_options_is_derived_from_solver_options():
    model = _families()["cnf"]
    fields = {f.name for f in dataclasses.fields(SolverOptions)}
    changes = dict(solver=diffrax.Dopri5(), rtol=1e-3, atol=1e-4, dt0=None, max_steps=99,
                   adjoint=diffrax.DirectAdjoint(), norm="rms")  # fmt: skip
    assert set(changes) == fields  # every field is exercised: a new one must be added here
    changed = model.with_options(**changes)
    for name, value in changes.items():
        assert getattr(changed.options, name) == value or name in ("solver", "adjoint")
    assert type(changed.options.solver) is diffrax.Dopri5
    with pytest.raises(TypeError, match="unknown solver option"):
        model.with_options(tolerance=1e-3)
    fixed = model.with_options(solver=diffrax.Heun(), dt0=0.1)
    assert fixed.likelihood_label().startswith("estimate: fixed-step Heun")
    assert model.likelihood_label(hutchinson=True).startswith("estimate:")


# -- the public namespace -------------------------------------------------------------------------


def test_public_namespace():
    for name in ("datasets", "metrics", "plotting", "samplers", "objectives", "fit", "nn"):
        assert hasattr(flowlab, name), name
    for name in flowlab.__all__:
        assert getattr(flowlab, name) is not None, name
    assert "TEMP" not in (ROOT / "flowlab" / "__init__.py").read_text()
    assert callable(flowlab.datasets.sample) and callable(flowlab.metrics.energy_distance)


def test_readme_notebook_snippet_runs():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## In a notebook") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("steps=5000", "steps=100")  # the same code, a short run
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["paths"].shape[1:] == (300, 2)
    assert np.isfinite(np.asarray(namespace["log_p"])).all()


_ = eqx
