"""Input checks at the public edge: clear errors that say what was expected and what came."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Point


def is_concrete(x) -> bool:
    """``True`` when ``x`` holds values (not a tracer inside ``jit``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def fail_unless(success, message: str, *arrays) -> tuple:
    """``arrays`` unchanged when ``success`` holds; an ``EquinoxRuntimeError`` with
    ``message`` otherwise.

    Called on a compiled program's outputs (a concrete ``success``), the check runs on the
    host after the program has returned, so flowlab's programs hold no host callback and
    JAX's persistent compilation cache keeps them: it never writes a program with one, and
    ``eqx.error_if`` makes one on the CPU. Called under a caller's own ``jit`` (a traced
    ``success``), it is ``eqx.error_if``, so the failure still raises from inside.
    """
    if is_concrete(success):
        if not bool(success):
            raise eqx.EquinoxRuntimeError(message)
        return arrays
    return eqx.error_if(arrays, jnp.logical_not(success), message)


def check_points(x, d: int, name: str = "x") -> Array:
    """Return ``x`` as a float array of shape ``(n, d)``; raise ``ValueError`` otherwise.

    Concrete inputs are also checked for NaN and inf.
    """
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] < 1:
        raise ValueError(f"expected {name} of shape (n, {d}) with n >= 1, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = jnp.asarray(x, dtype=jnp.result_type(float))
    if is_concrete(x):
        bad = ~np.isfinite(np.asarray(x)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"{name} contains non-finite values (NaN or inf) in {rows.size} of "
                f"{x.shape[0]} rows, first at rows {rows[:5].tolist()}"
            )
    return jnp.asarray(x)


def check_count(n, name: str = "n") -> int:
    """A positive Python int."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def check_key(key, name: str = "key") -> None:
    """Accept one JAX PRNG key; raise ``ValueError`` otherwise.

    One key is a typed key of shape ``()`` (``jax.random.key(0)``) or a raw ``uint32`` key
    of shape ``(2,)`` (``jax.random.PRNGKey(0)``); an int seed, a batch of keys or any other
    array is refused with what was given. Only shapes and dtypes are read, so this also
    works on traced keys inside ``jit``.
    """
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return
    if dtype == jnp.uint32 and shape == (2,):  # legacy jax.random.PRNGKey
        return
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        raise ValueError(
            f"{name} must be one JAX PRNG key, got the int {key!r}: pass "
            f"jax.random.key({key!r}) instead of the seed"
        )
    raise ValueError(
        f"{name} must be one JAX PRNG key (e.g. jax.random.key(0)), got "
        f"{type(key).__name__} with dtype {dtype} and shape {shape}"
    )


def check_example(network: str, x: Point, data_size: int) -> None:
    """A ``ValueError`` unless ``x`` is one example of shape ``(data_size,)``: networks act on
    one example and are vectorised with ``jax.vmap`` at the edge."""
    if x.shape != (data_size,):
        raise ValueError(
            f"{network} acts on one example of shape ({data_size},), got shape {x.shape}; "
            "use jax.vmap for batches"
        )
