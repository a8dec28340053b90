"""Many runs as one program (``flowlab.fit_many``): run r of a batch gives the numbers of
the same run alone (every family that can batch), per-run early stopping, exact resumption
from the batch's checkpoint, clear errors for runs that cannot share a program, and the run
axis sharded over two (simulated) CPU devices."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lab import registry

import flowlab

ROOT = Path(__file__).resolve().parents[1]

# three runs on three data sets (different standardisations), three seeds
RUNS = (("pinwheel", 0), ("checkerboard", 1), ("spiral", 2))
STEPS, EVAL_EVERY = 24, 10  # the last chunk is shorter (4 steps)


def _hp(family, dataset, seed, train, **over):
    std = flowlab.Standardize.fit(train)
    hp = registry.family(family).defaults | {
        "family": family,
        "dataset": dataset,
        "seed": seed,
        "standardize_loc": np.asarray(std.loc).tolist(),
        "standardize_scale": np.asarray(std.scale).tolist(),
        "width": 16,
        "depth": 2,
        "steps": STEPS,
        "batch_size": 64,
    }
    fam = registry.family(family)
    if fam.data_hp is not None:
        hp.update(fam.data_hp(hp, np.asarray(std.forward(train))))
    return hp | over


def _runs(family, runs=RUNS, same_data=False):
    """``(model, train, holdout, key, hp)`` per run: ``runs`` of ``(dataset, seed)``; the
    seed draws the data split (the first run's for all with ``same_data``), the weights and
    the training key."""
    out = []
    for dataset, seed in runs:
        data_seed = runs[0][1] if same_data else seed
        train, holdout = flowlab.datasets.split(dataset, jax.random.key(data_seed))
        train, holdout = train[:400], holdout[:100]
        hp = _hp(family, dataset, seed, train)
        out.append((registry.build_model(hp), train, holdout, jax.random.key(100 + seed), hp))
    return out


def _kwargs(hp, **over):
    return (
        dict(
            steps=STEPS,
            batch_size=hp["batch_size"],
            optimizer=registry.build_optimizer(hp),
            eval_every=EVAL_EVERY,
            ema_decay=hp["ema_decay"],
            progress=False,
        )
        | over
    )


def _leaves(model):
    return jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))


def _assert_same_run(lone, batched, rtol=1e-4, atol=2e-5):
    (m1, h1), (m2, h2) = lone, batched
    assert h1.step == h2.step
    for name in ("step_losses", "holdout_loss", "train_eval_loss", "train_loss"):
        np.testing.assert_allclose(getattr(h2, name), getattr(h1, name), rtol=rtol, atol=atol)
    for name, values in h1.metrics.items():
        np.testing.assert_allclose(h2.metrics[name], values, rtol=rtol, atol=atol)
    for a, b in zip(_leaves(m1), _leaves(m2), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=atol)


# the EBM's data box is a static field (its quadrature rule is built from it in Python), so
# EBM runs batch only on one data set; every other family batches across data sets
# (maximum likelihood's adaptive solves and the EBM's Langevin hold-out loss are the slow
# ones: in the slow set)
FAMILIES = [
    "cnf_fm",
    pytest.param("cnf_mle", marks=pytest.mark.slow),
    "diffusion",
    "ddpm",
    "dsm",
    "vae",
    "gan",
    pytest.param("ebm", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("family", FAMILIES)
def test_run_r_of_a_batch_is_the_run_alone(family):
    if family == "ebm":
        runs = _runs(family, [("pinwheel", s) for s in range(3)], same_data=True)
    else:
        runs = _runs(family)
    hp = runs[0][4]
    objective = registry.build_objective(hp)
    models, histories = flowlab.fit_many(
        [r[0] for r in runs],
        objective,
        [r[1] for r in runs],
        [r[2] for r in runs],
        keys=[r[3] for r in runs],
        **_kwargs(hp),
    )
    assert len(models) == len(histories) == 3
    for r, (model, train, holdout, key, _) in enumerate(runs):
        lone = flowlab.fit(model, objective, train, holdout, key=key, **_kwargs(hp))
        _assert_same_run(lone, (models[r], histories[r]))
    # the runs are independent: different data and seeds give different losses
    finals = [h.holdout_loss[-1] for h in histories]
    assert len(set(np.round(finals, 4))) == 3


def test_shared_data_metrics_and_a_stacked_key_array():
    """One data set shared by every run, keys from ``jax.random.split``, a per-run metric."""
    train, holdout = flowlab.datasets.split("pinwheel", jax.random.key(0))
    hp = _hp("cnf_fm", "pinwheel", 0, train)
    models = [registry.build_model(hp | {"seed": s}) for s in range(2)]
    keys = jax.random.split(jax.random.key(5), 2)
    metric = {"mean_x": lambda m: float(jnp.mean(m.sample(jax.random.key(0), 64)[:, 0]))}
    objective = registry.build_objective(hp)
    out = flowlab.fit_many(
        models, objective, train, holdout, keys=keys, metrics=metric, **_kwargs(hp)
    )
    for r in range(2):
        lone = flowlab.fit(
            models[r], objective, train, holdout, key=keys[r], metrics=metric, **_kwargs(hp)
        )
        _assert_same_run(lone, (out[0][r], out[1][r]))
        assert len(out[1][r].metrics["mean_x"]) == len(out[1][r].step) == 3


def test_a_callback_stops_one_run_and_the_others_go_on():
    runs = _runs("cnf_fm")
    hp = runs[0][4]
    objective = registry.build_objective(hp)

    def stop_run_1(run, step, history):
        return run == 1 and step >= 10

    models, histories = flowlab.fit_many(
        [r[0] for r in runs],
        objective,
        [r[1] for r in runs],
        [r[2] for r in runs],
        keys=[r[3] for r in runs],
        callback=stop_run_1,
        **_kwargs(hp),
    )
    assert histories[1].step == [10] and histories[0].step == histories[2].step == [10, 20, 24]
    model, train, holdout, key, _ = runs[1]
    lone = flowlab.fit(
        model,
        objective,
        train,
        holdout,
        key=key,
        callback=lambda step, h: step >= 10,
        **_kwargs(hp),
    )
    _assert_same_run(lone, (models[1], histories[1]))
    model, train, holdout, key, _ = runs[2]
    _assert_same_run(
        flowlab.fit(model, objective, train, holdout, key=key, **_kwargs(hp)),
        (models[2], histories[2]),
    )


def test_an_interrupted_batch_resumes_exactly(tmp_path):
    runs = _runs("gan")  # two optimisers' states and per-step auxiliary outputs
    hp = runs[0][4]
    objective = registry.build_objective(hp)
    args = ([r[0] for r in runs], objective, [r[1] for r in runs], [r[2] for r in runs])
    hps = [r[4] for r in runs]
    full = flowlab.fit_many(*args, keys=[r[3] for r in runs], hyperparameters=hps, **_kwargs(hp))
    ckpt = tmp_path / "batch.eqx"

    def crash(run, step, history):
        if step >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        flowlab.fit_many(
            *args,
            keys=[r[3] for r in runs],
            checkpoint=ckpt,
            hyperparameters=hps,
            callback=crash,
            **_kwargs(hp),
        )
    header = flowlab.read_header(ckpt)
    assert header["step"] == 10 and header["runs"] == 3
    resumed = flowlab.fit_many(
        *args, keys=[r[3] for r in runs], checkpoint=ckpt, hyperparameters=hps, **_kwargs(hp)
    )
    for r in range(3):
        assert resumed[1][r].step_aux.keys() == full[1][r].step_aux.keys()
        np.testing.assert_array_equal(resumed[1][r].step_losses, full[1][r].step_losses)
        np.testing.assert_array_equal(resumed[1][r].holdout_loss, full[1][r].holdout_loss)
        for a, b in zip(_leaves(full[0][r]), _leaves(resumed[0][r]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # another batch (one run's hyperparameters changed) refuses the checkpoint
    other = [dict(h) for h in hps]
    other[2]["seed"] = 99
    with pytest.raises(ValueError, match="different"):
        flowlab.fit_many(
            *args, keys=[r[3] for r in runs], checkpoint=ckpt, hyperparameters=other, **_kwargs(hp)
        )


def test_runs_that_cannot_share_a_program_are_refused_clearly():
    runs = _runs("cnf_fm")
    hp = runs[0][4]
    wider = registry.build_model(hp | {"width": 32})
    objective = registry.build_objective(hp)
    with pytest.raises(ValueError, match=r"model 1 differs from model 0 in a non-array field"):
        flowlab.fit_many(
            [runs[0][0], wider],
            objective,
            runs[0][1],
            runs[0][2],
            keys=[runs[0][3]] * 2,
            **_kwargs(hp),
        )
    ebm = _runs("ebm", RUNS[:2])
    with pytest.raises(ValueError, match=r"model\.box"):
        flowlab.fit_many(
            [r[0] for r in ebm],
            registry.build_objective(ebm[0][4]),
            [r[1] for r in ebm],
            [r[2] for r in ebm],
            keys=[r[3] for r in ebm],
            **_kwargs(ebm[0][4]),
        )
    with pytest.raises(ValueError, match="2 keys for 3 models"):
        flowlab.fit_many(
            [r[0] for r in runs],
            objective,
            runs[0][1],
            runs[0][2],
            keys=[runs[0][3]] * 2,
            **_kwargs(hp),
        )
    with pytest.raises(ValueError, match="train_data lists 2 data sets for 3 runs"):
        flowlab.fit_many(
            [r[0] for r in runs],
            objective,
            [runs[0][1]] * 2,
            runs[0][2],
            keys=[r[3] for r in runs],
            **_kwargs(hp),
        )
    with pytest.raises(ValueError, match="share one shape"):
        flowlab.fit_many(
            [r[0] for r in runs],
            objective,
            [runs[0][1], runs[1][1][:300], runs[2][1]],
            runs[0][2],
            keys=[r[3] for r in runs],
            **_kwargs(hp),
        )


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from lab import registry
    import flowlab
    from flowlab import _fit_many
    from test_fit_many import _kwargs, _leaves, _runs

    assert len(jax.devices()) == 2, jax.devices()
    runs = _runs("cnf_fm", [("pinwheel", 0), ("checkerboard", 1), ("spiral", 2),
                            ("gaussian_mixture", 3)])
    hp = runs[0][4]
    obj = registry.build_objective(hp)
    seen = []
    orig = _fit_many._run_many

    def spy(batch, static_arrays, state, *rest):
        out = orig(batch, static_arrays, state, *rest)
        seen.append(sorted(d.id for d in jax.tree_util.tree_leaves(out[0])[0].devices()))
        return out

    _fit_many._run_many = spy
    models, hist = flowlab.fit_many([r[0] for r in runs], obj, [r[1] for r in runs],
                                    [r[2] for r in runs], keys=[r[3] for r in runs],
                                    **_kwargs(hp))
    worst = 0.0
    for r, (m, tr, ho, k, _) in enumerate(runs):
        lm, lh = flowlab.fit(m, obj, tr, ho, key=k, **_kwargs(hp))
        worst = max(worst, float(np.max(np.abs(np.subtract(lh.step_losses, hist[r].step_losses)))))
        for a, b in zip(_leaves(lm), _leaves(models[r])):
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    print(json.dumps({"devices": seen, "worst": worst}))
    """
)


def test_the_run_axis_is_sharded_over_two_cpu_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "experiments"), str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-c", SHARDED],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] and all(d == [0, 1] for d in got["devices"])  # both devices, every chunk
    assert got["worst"] < 1e-4
