"""benchmarks/dimensions.py (issue 13): its target's closed-form density, and a smoke run.

That the Hutchinson ``log_prob`` averaged over probes equals the exact one is tested in
``test_cnf.py::test_hutchinson_divergence_is_unbiased``; here the benchmark's own numbers
are checked: the mixture's density integrates to one and agrees with SciPy, and in the
smoke run's output the Hutchinson hold-out NLL at d = 2 agrees with the exact one within
its paired standard error.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers import load_benchmark

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "dimensions.py"


def _module():
    return load_benchmark("dimensions")


@pytest.mark.parametrize("d", [2, 8])
def test_mixture_log_prob_matches_scipy(d):
    target = _module().GaussianMixture.on_sphere(jax.random.key(d), d)
    means = np.asarray(target.means, np.float64)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2.5, rtol=1e-5)
    x = target.sample(jax.random.key(1), 400)
    components = np.stack(
        [scipy.stats.multivariate_normal(m, target.std**2 * np.eye(d)).logpdf(x) for m in means]
    )
    reference = scipy.special.logsumexp(components, axis=0) - math.log(len(means))
    np.testing.assert_allclose(target.log_prob(x), reference, rtol=1e-5, atol=1e-4)
    # the sampler draws from that density: its mean is the mean of the means
    big = np.asarray(target.sample(jax.random.key(2), 40_000), np.float64)
    se = big.std(0) / math.sqrt(len(big))
    assert np.all(np.abs(big.mean(0) - means.mean(0)) < 5 * se)


def test_mixture_density_integrates_to_one_and_entropy_is_below_the_bound():
    target = _module().GaussianMixture.on_sphere(jax.random.key(0), 2)
    g = jnp.linspace(-4.5, 4.5, 601)
    xx, yy = jnp.meshgrid(g, g)
    grid = jnp.stack([xx.ravel(), yy.ravel()], axis=1)
    p = np.exp(np.asarray(target.log_prob(grid), np.float64))
    cell = float(g[1] - g[0]) ** 2
    assert abs(p.sum() * cell - 1.0) < 1e-3
    # the entropy on the grid, against the Monte Carlo estimate and the mixture bound
    h_grid = -float(np.sum(p * np.log(np.maximum(p, 1e-300))) * cell)
    h_mc, se = target.entropy_mc(jax.random.key(3), 100_000)
    assert se > 0
    assert abs(h_mc - h_grid) < 4 * se
    assert h_grid <= target.entropy_bound()


@pytest.mark.slow
def test_dimensions_quick_smoke(tmp_path):
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["dims"]) == {"2", "8"}

    def numbers(tree):
        if isinstance(tree, dict):
            for v in tree.values():
                yield from numbers(v)
        elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
            yield tree

    for d, r in result["dims"].items():
        values = list(numbers(r))
        assert len(values) > 20 and all(math.isfinite(v) for v in values), d
        for name in ("mle_step_exact", "mle_step_hutchinson"):
            assert r[name]["step_ms"] > 0 and r[name]["train_solve_nfe"] > 0
        for name in ("log_prob_exact", "log_prob_hutchinson"):
            assert r[name]["time_s"] > 0 and r[name]["nfe"] > 0
        assert r["nll"]["hutchinson_minus_exact_se"] > 0  # the estimate is genuinely noisy
        assert r["nll"]["kl_paired"] > -4 * r["nll"]["kl_paired_se"]  # a KL is >= 0
    # Hutchinson is unbiased: at d = 2 its hold-out NLL agrees with the exact one
    nll = result["dims"]["2"]["nll"]
    assert abs(nll["hutchinson_minus_exact"]) < 4 * nll["hutchinson_minus_exact_se"]
