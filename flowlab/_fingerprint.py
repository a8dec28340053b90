"""Fingerprints of what a training run trains on and with, for its checkpoint's header.

A resumed run must be the run that wrote the checkpoint: :func:`describe_data` records a data
set by shape, dtype and a SHA-256 of its bytes; :func:`describe_callable` records a loss
function or an Optax transformation by qualified name and a SHA-256 of its code (bytecode,
constants and the names it calls), its default arguments and its closure (numbers, strings,
arrays and nested functions, e.g. the learning rate inside ``optax.adam(1e-3)``). Both are
plain JSON and the same in every process (no ``id``-based ``repr``), so a resume in a new
process compares equal; a different function, constant or array gives a different hash.

What a fingerprint cannot see: module-level globals a function reads (their *names* are
hashed, not their values), and bytecode differs between Python versions (a checkpoint is
then refused rather than resumed under another interpreter).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import types
from typing import Any

import equinox as eqx
import jax
import numpy as np

__all__ = ["describe_callable", "describe_data"]

_MAX_DEPTH = 12


def describe_data(x) -> dict[str, Any]:
    """``{"shape", "dtype", "sha256"}`` of an array (the hash of its C-ordered bytes)."""
    a = np.ascontiguousarray(np.asarray(x))
    return {
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
    }


def _name(obj) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _code(code: types.CodeType, depth: int) -> list:
    consts = [
        _code(c, depth + 1) if isinstance(c, types.CodeType) else _plain(c, depth + 1)
        for c in code.co_consts
    ]
    return [code.co_code.hex(), list(code.co_names), consts]


def _plain(obj, depth: int = 0) -> Any:
    """A JSON-able, process-independent description of ``obj`` (deterministic; never an
    address)."""
    if depth > _MAX_DEPTH:
        return f"<{_name(type(obj))}, not compared deeper>"
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float | complex | np.generic):
        return repr(obj)  # repr: NaN compares equal to itself as text
    if isinstance(obj, bytes):
        return hashlib.sha256(obj).hexdigest()
    if isinstance(obj, np.ndarray | jax.Array):
        return {"array": describe_data(obj)}
    if isinstance(obj, frozenset | set):
        return sorted((_plain(v, depth + 1) for v in obj), key=repr)
    if isinstance(obj, list | tuple):
        items = [_plain(v, depth + 1) for v in obj]
        return items if type(obj) in (list, tuple) else {_name(type(obj)): items}
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, types.CodeType):
        return _code(obj, depth + 1)
    if isinstance(obj, functools.partial):
        return {
            "partial": _plain(obj.func, depth + 1),
            "args": _plain(obj.args, depth + 1),
            "keywords": _plain(obj.keywords, depth + 1),
        }
    if isinstance(obj, types.MethodType):
        return {"method": _plain(obj.__func__, depth + 1), "self": _plain(obj.__self__, depth + 1)}
    if isinstance(obj, types.FunctionType):
        closure = [_plain(_cell(c), depth + 1) for c in obj.__closure__ or ()]
        return {
            "function": _name(obj),
            "code": _code(obj.__code__, depth + 1),
            "defaults": _plain(obj.__defaults__, depth + 1),
            "kwdefaults": _plain(obj.__kwdefaults__, depth + 1),
            "closure": closure,
        }
    if isinstance(obj, type | types.BuiltinFunctionType | types.ModuleType):
        return _name(obj)
    if isinstance(obj, eqx.Module):
        return repr(obj)
    call = inspect.getattr_static(type(obj), "__call__", None)
    state = getattr(obj, "__dict__", None)
    return {
        "object": _name(type(obj)),
        "call": _plain(call, depth + 1) if isinstance(call, types.FunctionType) else None,
        "state": _plain(dict(state), depth + 1) if isinstance(state, dict) else None,
    }


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name not yet bound)
        return None


def describe_callable(fn) -> dict[str, str]:
    """``{"callable": qualified name, "sha256": hash of its code, defaults and closure}``."""
    plain = _plain(fn)
    text = json.dumps(plain, sort_keys=True, default=repr)
    inner = getattr(fn, "func", getattr(fn, "__func__", fn))
    name = _name(inner) if callable(inner) and hasattr(inner, "__qualname__") else None
    return {
        "callable": name or _name(type(fn)),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
