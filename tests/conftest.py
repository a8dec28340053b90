"""Test-wide settings: a headless matplotlib backend and JAX's strict dtype promotion (as
Equinox's test suite does), so that no flowlab code relies on an implicit float64 or
int/float promotion; JAX's persistent compilation cache on, as in the scripts."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")

import flowlab  # noqa: E402

# the persistent compilation cache, as the scripts use it: tests and smoke runs that compile
# the same programs (and a second run of the suite) load them instead
flowlab.enable_compile_cache()
