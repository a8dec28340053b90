"""Checkpoints: one file holding a JSON line (hyperparameters, step, history) followed by
``eqx.tree_serialise_leaves`` of the model and optimiser state. Written atomically (a
temporary file then ``os.replace``), so a crash never leaves a half-written checkpoint.
Never pickle."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

__all__ = [
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


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint."""
    with open(path, "rb") as f:
        return json.loads(f.readline().decode())


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[dict[str, Any], Any]:
    """Read a checkpoint into a pytree shaped ``like``; returns ``(header, tree)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        header = json.loads(f.readline().decode())
        tree = eqx.tree_deserialise_leaves(f, like)
    return header, tree


def save_model(path: str | os.PathLike, model: Any, hyperparameters: dict[str, Any]) -> None:
    """Save a model with the hyperparameters needed to rebuild its structure."""
    save_checkpoint(path, model, {"hyperparameters": hyperparameters})


def load_model(path: str | os.PathLike, make_model) -> tuple[Any, dict[str, Any]]:
    """Load a model saved by :func:`save_model`.

    ``make_model(hyperparameters)`` must build a model of the same structure (any weights);
    its leaves are then replaced by the saved ones. Returns ``(model, hyperparameters)``.
    """
    hyperparameters = read_header(path)["hyperparameters"]
    _, model = load_checkpoint(path, make_model(hyperparameters))
    return model, hyperparameters
