"""Test-wide settings: a headless matplotlib backend and JAX's strict dtype promotion (as
Equinox's test suite does), so that no flowlab code relies on an implicit float64 or
int/float promotion."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
