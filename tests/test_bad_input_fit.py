"""Issue 21, training side: bad input to the training loop, the optimisers, the checkpoints,
the objectives and the scripts gives a clear error (or a correct result), never a silent
wrong number. One test per cause, each asserting the message; tiny networks, few steps."""

import argparse
import importlib
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowlab
from flowlab import CNF, SingleNoiseScore, Standardize, fit, fit_many
from flowlab._checkpoint import read_header, save_checkpoint
from flowlab.nn import MLPVectorField
from flowlab.objectives import DenoisingScoreMatching, FlowMatching, SingleNoiseDSM
from flowlab.optim import Adam, TwoPlayerAdam, default_optimizer


def _data(seed, n=64):
    return jax.random.normal(jax.random.key(seed), (n, 2)) * jnp.array([1.0, 0.5]) + 0.3


def _cnf(seed=0):
    vf = MLPVectorField(2, width=8, depth=1, key=jax.random.key(seed))
    return CNF(vf, standardize=Standardize.fit(_data(0)))


def _fit(model=None, loss=None, train=None, holdout=None, **kwargs):
    args = dict(key=jax.random.key(1), steps=4, batch_size=16, eval_every=2, progress=False)
    args.update(kwargs)
    return fit(
        _cnf() if model is None else model,
        FlowMatching() if loss is None else loss,
        _data(0) if train is None else train,
        _data(1, 32) if holdout is None else holdout,
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
        fit_many([_cnf()], FlowMatching(), _data(0), _data(1, 32), keys=[jax.random.key(1)],
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
    plain, _ = _fit(ema_decay=None, batch_size=100, train=_data(0, 40))
    zero, _ = _fit(ema_decay=0.0, batch_size=100, train=_data(0, 40))
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
    model = _cnf()
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
    assert header["objective"]["callable"].endswith("test_bad_input_fit._l1")

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
        _fit(train=_data(7), checkpoint=ckpt)
    pattern = r"data\.train_data\.shape: saved \[64, 2\]\n.*now   \[65, 2\]"
    with pytest.raises(flowlab.CheckpointError, match=pattern):
        _fit(train=_data(0, 65), checkpoint=ckpt)
    with pytest.raises(flowlab.CheckpointError, match=r"data\.holdout_data\.sha256"):
        _fit(holdout=_data(8, 32), checkpoint=ckpt)


def test_cause_09_fit_many_refuses_one_run_with_other_data(tmp_path):
    ckpt = tmp_path / "batch.ckpt"
    args = dict(keys=[jax.random.key(1), jax.random.key(2)], steps=2, batch_size=16,
                eval_every=2, progress=False, checkpoint=ckpt)  # fmt: skip
    fit_many([_cnf(0), _cnf(1)], FlowMatching(), [_data(0), _data(1)], _data(2, 32), **args)
    with pytest.raises(flowlab.CheckpointError, match=r"configs\[1\]\.data\.train_data\.sha256"):
        fit_many([_cnf(0), _cnf(1)], FlowMatching(), [_data(0), _data(3)], _data(2, 32), **args)


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
        fit_many([_cnf(), _cnf()], FlowMatching(), _data(0), _data(1), keys=[jax.random.key(0), 3],
                 steps=2, progress=False)  # fmt: skip


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
