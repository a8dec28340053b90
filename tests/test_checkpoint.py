"""Checkpoints round-trip; anything else (empty, foreign, truncated, mismatched) is refused with
a CheckpointError that names the file, what was expected and what was found."""

import json
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowlab._checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_checkpoint,
    load_model,
    read_header,
    save_checkpoint,
    save_model,
)

EXPECTED = "expected a flowlab checkpoint: one JSON object on the first line"
TREE = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3, jnp.float32), "n": jnp.array(7)}


def _like():
    return jax.tree.map(jnp.zeros_like, TREE)


def _make_linear(hp):
    return eqx.nn.Linear(hp["in"], hp["out"], key=jax.random.key(0))


def _refused(path, found, *, header=True, model=True):
    """Every reader refuses ``path`` with a message naming it, the format and ``found``."""
    pattern = re.escape(str(path)) + ".*" + found
    readers = [lambda: load_checkpoint(path, _like())]
    if header:
        readers.append(lambda: read_header(path))
    if model:
        readers.append(lambda: load_model(path, _make_linear))
    for read in readers:
        with pytest.raises(CheckpointError, match=pattern) as info:
            read()
        assert isinstance(info.value, ValueError)
    return info.value


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.eqx", TREE, {"step": 3, "history": [1.5]})
    assert read_header(tmp_path / "c.eqx") == {"step": 3, "history": [1.5]}
    header, tree = load_checkpoint(tmp_path / "c.eqx", _like())
    assert header["step"] == 3
    for a, b in zip(jax.tree.leaves(TREE), jax.tree.leaves(tree), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype

    linear = _make_linear({"in": 2, "out": 3})
    linear = eqx.tree_at(lambda m: m.weight, linear, linear.weight + 1.0)
    save_model(tmp_path / "m.eqx", linear, {"in": 2, "out": 3})
    loaded, hp = load_model(tmp_path / "m.eqx", _make_linear)
    assert hp == {"in": 2, "out": 3}
    np.testing.assert_array_equal(loaded.weight, linear.weight)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.eqx", _like())
    with pytest.raises(FileNotFoundError):
        read_header(tmp_path / "nope.eqx")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.eqx"
    path.write_bytes(b"")
    err = _refused(path, "found an empty file")
    assert EXPECTED in str(err)


def test_random_bytes(tmp_path):
    path = tmp_path / "image.png"  # a binary file whose first line is not UTF-8
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(500))
    err = _refused(path, "a first line that is not UTF-8 text")
    assert isinstance(err.__cause__, UnicodeDecodeError)

    path = tmp_path / "noise.bin"  # no newline at all
    path.write_bytes(bytes(range(10)) * 20)
    _refused(path, r"200 bytes without a newline, starting b'\\x00\\x01")


def test_json_files(tmp_path):
    path = tmp_path / "metrics.json"  # pretty-printed: the first line is "{"
    path.write_text(json.dumps({"nll": 1.0, "step": 3}, indent=2) + "\n")
    err = _refused(path, r"a first line that is not JSON \(Expecting property name")
    assert isinstance(err.__cause__, json.JSONDecodeError)

    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]\n")
    _refused(path, "a first line holding a JSON list, not an object")

    path = tmp_path / "one_line.json"  # as atomic_write_text writes it: no final newline
    atomic_write_text(path, '{"a": 1}')
    _refused(path, "8 bytes without a newline")

    # One JSON object and a newline is a valid header, but no leaves follow it, and there are
    # no hyperparameters to rebuild a model from.
    path.write_text('{"a": 1}\n')
    assert read_header(path) == {"a": 1}
    _refused(path, "followed by 0 bytes that could not be read", header=False, model=False)
    with pytest.raises(CheckpointError, match=r"'hyperparameters' entry; found .* keys \['a'\]"):
        load_model(path, _make_linear)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "c.eqx"
    save_checkpoint(path, TREE, {"step": 3})
    data = path.read_bytes()
    header_len = data.index(b"\n") + 1
    path.write_bytes(data[: header_len + (len(data) - header_len) // 2])
    err = _refused(
        path, "bytes that could not be read as its leaves \\(truncated", header=False, model=False
    )
    assert read_header(path) == {"step": 3}  # the header alone is intact
    assert err.__cause__ is not None

    path.write_bytes(data[: header_len // 2])  # cut inside the header line
    _refused(path, "bytes without a newline", model=False)


def test_checkpoint_of_another_structure(tmp_path):
    path = tmp_path / "c.eqx"
    save_model(path, _make_linear({"in": 2, "out": 3}), {"in": 2, "out": 3})
    recorded = re.escape('its header records hyperparameters {"in": 2, "out": 3}')
    with pytest.raises(CheckpointError, match=recorded + ".*changed shape"):
        load_checkpoint(path, _make_linear({"in": 4, "out": 3}))
    # fewer leaves in `like` than on disk: equinox alone would load a prefix silently
    with pytest.raises(CheckpointError, match="bytes remain after reading the leaves"):
        load_checkpoint(path, {"weight": jnp.zeros((3, 2))})


@pytest.mark.parametrize("family", ["cnf_fm", "cnf_mle", "diffusion", "ddpm", "dsm", "vae", "ebm",
                                    "ebm_cd", "ebm_dsm", "gan"])  # fmt: skip
def test_a_saved_model_reloads_with_flowlab_alone(tmp_path, family):
    """Every family the scripts save rebuilds from its recorded hyperparameters through
    ``flowlab.load_model(path)``, with no build function from ``experiments/``."""
    import argparse

    from lab import pipeline, registry

    import flowlab

    args = argparse.Namespace(dataset="pinwheel", seed=3)
    _, _, _, hp = pipeline.prepare(family, args, registry.script_defaults(family, smoke=True))
    model = registry.build_model(hp)
    # weights unlike a fresh build's, so that only loading them can reproduce them
    params, static = eqx.partition(model, model.trainable())
    params = jax.tree.map(lambda p: p + 0.01 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), params)
    model = eqx.combine(params, static)
    flowlab.save_model(tmp_path / "model.eqx", model, hp)
    loaded, saved_hp = flowlab.load_model(tmp_path / "model.eqx")
    assert saved_hp == json.loads(json.dumps(hp)) and type(loaded) is type(model)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = flowlab.datasets.sample("pinwheel", jax.random.key(0), 16)
    if flowlab.likelihood_kind(model) == "exact":
        np.testing.assert_array_equal(np.asarray(loaded.log_prob(x)), np.asarray(model.log_prob(x)))
    else:
        key = jax.random.key(1)
        np.testing.assert_array_equal(
            np.asarray(loaded.sample(key, 16)), np.asarray(model.sample(key, 16))
        )


def test_load_model_without_a_build_function_names_the_families(tmp_path):
    path = tmp_path / "m.eqx"
    save_model(path, _make_linear({"in": 2, "out": 3}), {"in": 2, "out": 3})
    with pytest.raises(ValueError, match="no standard construction for family None.*cnf_fm"):
        load_model(path)
