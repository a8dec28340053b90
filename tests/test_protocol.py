"""The model protocol, the solver bookkeeping and the public namespace, family by family."""

import dataclasses
import re
from pathlib import Path

import diffrax
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


# -- the likelihood kind from the type alone; one sampling signature ---------------------------


def _all_families():
    from flowlab.ebm import EBM, energy_mlp
    from flowlab.gan import GAN
    from flowlab.vae import VAE, BoundVAE

    models = _families()
    models["vae"] = VAE.from_mlps(2, 2, width=8, depth=1, standardize=STD, key=jax.random.key(1))
    models["vae_latent3"] = VAE.from_mlps(2, 3, width=8, depth=1, key=jax.random.key(2))
    models["bound_vae"] = BoundVAE.from_mlps(2, 2, width=8, depth=1, key=jax.random.key(3))
    models["ebm"] = EBM(energy_mlp(2, 8, 1, key=jax.random.key(4)), ((-2.0, 2.0), (-2.0, 2.0)))
    models["gan"] = GAN.mlp(2, latent_size=2, width=8, depth=1, key=jax.random.key(5))
    return models


ALL_KINDS = {
    **KINDS,
    "vae": "exact",
    "vae_latent3": "bound",
    "bound_vae": "bound",
    "ebm": "exact",
    "gan": "none",
}


@pytest.mark.parametrize("name", list(ALL_KINDS))
def test_likelihood_kind_is_read_from_the_type(name):
    model = _all_families()[name]
    kind = flowlab.likelihood_kind(model)
    assert kind == ALL_KINDS[name]
    assert kind == (
        "exact"
        if isinstance(model, flowlab.AbstractExactLikelihood)
        else "bound"
        if isinstance(model, flowlab.AbstractBoundLikelihood)
        else "none"
    )
    assert not hasattr(model, "likelihood_kind")  # one statement of the kind: the type
    if kind == "exact":
        lp = model.log_prob(model.sample(jax.random.key(0), 5))
        assert lp.shape == (5,) and bool(jnp.all(jnp.isfinite(lp)))


def test_vae_class_follows_the_latent_size():
    from flowlab.vae import VAE, AbstractVAE, BoundVAE

    big = VAE.from_mlps(2, 3, width=8, depth=1, key=jax.random.key(0))
    small = VAE.from_mlps(2, 2, width=8, depth=1, key=jax.random.key(0))
    assert type(big) is BoundVAE and type(small) is VAE
    assert isinstance(big, AbstractVAE) and isinstance(small, AbstractVAE)
    assert not isinstance(big, flowlab.AbstractExactLikelihood)
    with pytest.raises(ValueError, match="latent_size <= 2.*BoundVAE"):
        VAE(big.encoder, big.decoder, latent_size=3, data_size=2)
    # the same networks, either class: the same ELBO (the bounds are shared)
    bound = BoundVAE(small.encoder, small.decoder, latent_size=2, data_size=2)
    x = jnp.asarray([[0.3, -0.2], [1.0, 0.5]])
    np.testing.assert_array_equal(
        bound.log_prob_bound(x, key=jax.random.key(1)),
        small.log_prob_bound(x, key=jax.random.key(1)),
    )


def test_sample_with_stats_has_one_signature():
    import inspect

    want = ["self", "key", "n", "sampler"]
    for name, model in _all_families().items():
        params = inspect.signature(type(model).sample_with_stats).parameters
        assert list(params) == want, (name, list(params))
        assert params["sampler"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["sampler"].default is None
        assert list(inspect.signature(type(model).sample).parameters) == want, name


def test_decoder_sampler_draws_the_vae_by_hand():
    from flowlab.samplers import Decoder
    from flowlab.vae import VAE

    model = VAE.from_mlps(2, 2, width=8, depth=1, standardize=STD, key=jax.random.key(7))
    key, n = jax.random.key(3), 6
    k_z, k_eps = jax.random.split(key)
    z = jax.random.normal(k_z, (n, 2))
    mean, std = jax.vmap(model.likelihood)(z)
    eps = jax.random.normal(k_eps, mean.shape, mean.dtype)
    want = STD.inverse(mean + std * eps)
    x, stats = model.sample_with_stats(key, n)
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-6)
    assert int(stats.nfe) == 1 and int(stats.num_steps) == 1
    np.testing.assert_allclose(model.decoder_mean(key, n), STD.inverse(mean), rtol=1e-6)
    np.testing.assert_array_equal(
        model.sample(key, n, sampler=Decoder(noise=False)), model.decoder_mean(key, n)
    )
    with pytest.raises(ValueError, match="latent-variable model"):
        Decoder()(_families()["cnf"], key, n)


def test_sde_samplers_ask_for_the_sde_protocol():
    models = _families()
    assert isinstance(models["diffusion"], flowlab.AbstractSDEModel)
    assert not isinstance(models["ddpm"], flowlab.AbstractSDEModel)
    with pytest.raises(ValueError, match="AbstractSDEModel"):
        models["ddpm"].sample(jax.random.key(0), 3, sampler=EulerMaruyama(steps=4))
    dsm = flowlab.DenoisingScoreMatching(weighting="likelihood")
    with pytest.raises(ValueError, match="AbstractSDEModel"):
        dsm(models["ddpm"], jnp.zeros((4, 2)), jax.random.key(0))


def test_string_options_become_validated_enums():
    from flowlab.objectives import Weighting
    from flowlab.samplers import Ancestral, AncestralVariance
    from flowlab.vae import Variance

    assert flowlab.DenoisingScoreMatching(weighting="likelihood").weighting is Weighting.LIKELIHOOD
    with pytest.raises(ValueError, match="unknown weighting 'g2'"):
        flowlab.DenoisingScoreMatching(weighting="g2")
    assert Ancestral(variance="posterior").variance is AncestralVariance.POSTERIOR
    with pytest.raises(ValueError, match="'beta' or 'posterior'"):
        Ancestral(variance="ddpm")
    model = flowlab.VAE.from_mlps(2, 2, width=8, depth=1, variance="fixed", key=jax.random.key(0))
    assert model.variance is Variance.FIXED and model.variance == "fixed"
    with pytest.raises(ValueError, match="unknown variance 'learnt'"):
        flowlab.VAE.from_mlps(2, 2, width=8, depth=1, variance="learnt", key=jax.random.key(0))


def test_linear_beta_sdes_are_final_with_their_fields():
    from flowlab.sde import VPSDE, SubVPSDE, _AbstractLinearBetaSDE

    # abstract: every attribute an AbstractVar; the final classes hold the fields
    abstract = {f.name: str(f.type) for f in dataclasses.fields(_AbstractLinearBetaSDE)}
    assert set(abstract) == {"beta_min", "beta_max", "eps"}
    assert all("AbstractVar" in t for t in abstract.values()), abstract
    for cls in (VPSDE, SubVPSDE):
        assert not any("AbstractVar" in str(f.type) for f in dataclasses.fields(cls))
    for cls in (VPSDE, SubVPSDE):
        sde = cls(beta_min=0.2, beta_max=10.0)
        assert (sde.beta_min, sde.beta_max, sde.eps) == (0.2, 10.0, 1e-3)
        # B(1) = beta_min + (beta_max - beta_min) / 2
        np.testing.assert_allclose(sde.integrated_beta(1.0), 5.1, rtol=1e-6)
    with pytest.raises(TypeError):
        _AbstractLinearBetaSDE()


def test_fit_is_the_function_and_the_loop_module_private():
    import importlib
    import inspect
    import types

    assert inspect.isfunction(flowlab.fit)
    assert isinstance(flowlab._fit, types.ModuleType) and flowlab._fit.fit is flowlab.fit
    assert flowlab.Adam is flowlab.optim.Adam
    assert flowlab.TwoPlayerAdam is flowlab.optim.TwoPlayerAdam
    for gone in ("flowlab.train", "flowlab.fit"):
        with pytest.raises(ImportError):
            importlib.import_module(gone)


def _import_graph(top: str, root: Path):
    """Module -> the modules it imports at module level by relative imports, for the
    package ``top`` whose folder is ``root``."""
    import ast

    graph = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join([top, *parts])
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:  # module level: what runs on import
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.add(target)
                if node.module is None:
                    deps.update(f"{target}.{a.name}" for a in node.names)
        graph[name] = deps
    return graph


@pytest.mark.parametrize(
    "top, folder", [("flowlab", "flowlab"), ("lab", "experiments/lab")], ids=["flowlab", "lab"]
)
def test_no_import_cycles_between_modules(top, folder):
    root = ROOT / folder
    graph = _import_graph(top, root)
    graph = {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}
    # the package __init__ files re-export their children: edges into a package are fine
    packages = {k for k in graph if (root / "/".join(k.split(".")[1:]) / "__init__.py").exists()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if dep in packages:
                continue
            if state.get(dep) == 1:
                cycle.extend(path + [node, dep])
                return True
            if state.get(dep) is None and visit(dep, path + [node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if node not in packages and state.get(node) is None and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle)
    if top == "flowlab":
        assert "flowlab.diffusion" not in graph["flowlab.samplers"]
    else:  # the report reads the studies' names; the studies never import the report
        assert not any(d.startswith("lab.report") for d in graph["lab.studies.cli"])
        assert "lab.report" not in graph["lab.results"]


def test_hygiene_one_version_no_aliases_no_private_helpers_in_the_api():
    import importlib
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == flowlab.__version__ == "0.2.0"
    for name in ("ODEStats", "atomic_write_text", "atomic_write_bytes", "train"):
        assert not hasattr(flowlab, name) and name not in flowlab.__all__
    # data generators are not model samplers
    generators = importlib.import_module("flowlab.datasets._generators")
    assert generators.pinwheel is flowlab.datasets.pinwheel
    with pytest.raises(ImportError):
        importlib.import_module("flowlab.datasets._samplers")
    # a test file a module cites exists
    for path in (ROOT / "flowlab").rglob("*.py"):
        for cited in re.findall(r"tests/(test_\w+\.py)", path.read_text()):
            assert (ROOT / "tests" / cited).exists(), (path.name, cited)
