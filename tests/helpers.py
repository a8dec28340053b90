"""Tolerances, reference solutions and loaders shared by the tests (one place for each)."""

import importlib

import numpy as np
import scipy.linalg

# float32 solves at rtol = atol = 1e-5
LOGPROB_ATOL = 1e-4


def gaussian_logpdf(x, mean, cov):
    """log N(x; mean, cov) in float64, rows of x."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    diff = x - mean
    sol = np.linalg.solve(cov, diff.T).T
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * np.sum(diff * sol, -1) - 0.5 * logdet - 0.5 * d * np.log(2 * np.pi)


def linear_flow_logpdf(x, a, t=1.0):
    """Closed form of a CNF with f(t, x) = A x and base N(0, I) at t = 0:
    log p_t(x) = log N(e^{-A t} x; 0, I) - t tr(A)."""
    a = np.asarray(a, np.float64)
    z = np.asarray(x, np.float64) @ scipy.linalg.expm(-a * t).T
    d = a.shape[0]
    return -0.5 * np.sum(z**2, -1) - 0.5 * d * np.log(2 * np.pi) - t * np.trace(a)


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (``benchmarks/`` and ``experiments/`` are on the
    path through ``pythonpath`` in pyproject.toml's pytest settings)."""
    return importlib.import_module(name)
