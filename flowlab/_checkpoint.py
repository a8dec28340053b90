"""Checkpoints: one file holding a JSON line (hyperparameters, step, history) followed by
``eqx.tree_serialise_leaves`` of the model and optimiser state. Written atomically (a
temporary file then ``os.replace``), so a crash never leaves a half-written checkpoint.
Never pickle.

Reading a file that is not such a checkpoint (empty, random bytes, another JSON file, a
truncated or mismatched checkpoint) raises :class:`CheckpointError`, a ``ValueError`` that
names the file, what was expected and what was found."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

from ._build import build_model

__all__ = [
    "CheckpointError",
    "atomic_write_text",
    "load_checkpoint",
    "load_model",
    "read_header",
    "save_checkpoint",
    "save_model",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file, then move it to ``path`` atomically."""
    _atomic(Path(path), write)


def save_checkpoint(path: str | os.PathLike, tree: Any, header: dict[str, Any]) -> None:
    """Save ``header`` (JSON-serialisable) and the array leaves of ``tree`` to ``path``."""
    line = (json.dumps(header) + "\n").encode()

    def write(f):
        f.write(line)
        eqx.tree_serialise_leaves(f, tree)

    _atomic(Path(path), write)


class CheckpointError(ValueError):
    """A file that is not a readable flowlab checkpoint (or not one for the given structure)."""


_EXPECTED = (
    "expected a flowlab checkpoint: one JSON object on the first line, then "
    "eqx.tree_serialise_leaves bytes"
)


def _preview(data: bytes, limit: int = 60) -> str:
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


def _not_a_checkpoint(path: Path, found: str) -> CheckpointError:
    return CheckpointError(f"{path}: {_EXPECTED}; found {found}")


def _read_header(f, path: Path) -> dict[str, Any]:
    line = f.readline()
    if not line:
        raise _not_a_checkpoint(path, "an empty file")
    if not line.endswith(b"\n"):
        raise _not_a_checkpoint(
            path, f"{len(line)} bytes without a newline, starting {_preview(line)}"
        )
    try:
        header = json.loads(line.decode())
    except UnicodeDecodeError as err:
        raise _not_a_checkpoint(
            path, f"a first line that is not UTF-8 text: {_preview(line)}"
        ) from err
    except json.JSONDecodeError as err:
        raise _not_a_checkpoint(
            path, f"a first line that is not JSON ({err.msg}): {_preview(line)}"
        ) from err
    if not isinstance(header, dict):
        raise _not_a_checkpoint(
            path, f"a first line holding a JSON {type(header).__name__}, not an object"
        )
    return header


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint; :class:`CheckpointError` if ``path`` is not one."""
    path = Path(path)
    with open(path, "rb") as f:
        return _read_header(f, path)


# What np.load raises on bytes that are not (or no longer) .npy arrays, and what equinox
# raises when a leaf on disk differs in type, shape or dtype from the one in `like`.
_DESERIALISE_ERRORS = (ValueError, EOFError, OSError, RuntimeError, TypeError, pickle.PickleError)


def _root_cause(err: BaseException) -> str:
    """``Type: message`` of the innermost exception (equinox wraps them in TreePathErrors)."""
    where = str(err) if type(err).__name__ == "TreePathError" else ""
    for _ in range(32):
        inner = err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    root = f"{type(err).__name__}: {err}"
    return f"{root} ({where})" if where else root


def _saved_with(header: dict[str, Any]) -> str:
    if "hyperparameters" not in header:
        return ""
    return f"; its header records hyperparameters {json.dumps(header['hyperparameters'])}"


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[dict[str, Any], Any]:
    """Read a checkpoint into a pytree shaped ``like``; returns ``(header, tree)``.

    Raises :class:`CheckpointError` when ``path`` is not a flowlab checkpoint, is truncated,
    or holds leaves that differ from those of ``like`` (in number, type, shape or dtype).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = _read_header(f, path)
        start = f.tell()
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except _DESERIALISE_ERRORS as err:
            raise CheckpointError(
                f"{path}: {_EXPECTED} matching the structure passed as `like`; the JSON header "
                f"is followed by {size - start} bytes that could not be read as its leaves "
                f"(truncated, corrupt, or saved from another structure{_saved_with(header)}): "
                f"{_root_cause(err)}"
            ) from err
        rest = size - f.tell()
    if rest:
        raise CheckpointError(
            f"{path}: {rest} bytes remain after reading the leaves of `like`: the checkpoint "
            f"holds more arrays than the structure passed (saved from another "
            f"structure{_saved_with(header)})"
        )
    return header, tree


def save_model(path: str | os.PathLike, model: Any, hyperparameters: dict[str, Any]) -> None:
    """Save a model with the hyperparameters needed to rebuild its structure."""
    save_checkpoint(path, model, {"hyperparameters": hyperparameters})


def load_model(path: str | os.PathLike, make_model=None) -> tuple[Any, dict[str, Any]]:
    """Load a model saved by :func:`save_model`.

    ``make_model(hyperparameters)`` must build a model of the same structure (any weights);
    its leaves are then replaced by the saved ones. Without it, a model saved by the
    experiment scripts is rebuilt from the family recorded in its hyperparameters
    (``hyperparameters["family"]``: ``cnf_fm``, ``cnf_mle``, ``cnf_reflow``, ``meanflow``,
    ``shortcut``, ``diffusion``, ``ddpm``, ``dsm``, ``vae``, ``ebm``, ``gan``; a flow's
    ``hyperparameters["prior"]``, from :meth:`~flowlab.AbstractPrior.to_config`, rebuilds
    its prior). Returns ``(model, hyperparameters)``.
    """
    header = read_header(path)
    if "hyperparameters" not in header:
        raise CheckpointError(
            f"{path}: expected a model saved by save_model, whose JSON header has a "
            f"'hyperparameters' entry; found a header with keys {sorted(header)}"
        )
    hyperparameters = header["hyperparameters"]
    build = build_model if make_model is None else make_model
    _, model = load_checkpoint(path, build(hyperparameters))
    return model, hyperparameters
