"""benchmarks/time_to_quality.py (issue 25): its prototypes give the numbers they claim.

The uniform time law reproduces ``flowlab.FlowMatching()`` exactly; the other laws draw
``t`` from the stated distributions (Kolmogorov-Smirnov against SciPy); the bias-corrected
EMA recovers the weights exactly when they have stayed constant since the first step.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers import load_benchmark

import flowlab


def _module():
    return load_benchmark("time_to_quality")


def _model(seed=0):
    train, _ = flowlab.datasets.split("checkerboard", jax.random.key(0))
    return load_benchmark("_models").build("cnf_fm", 16, 2, train, seed=seed), train


def test_uniform_time_law_is_flow_matching():
    model, train = _model()
    key = jax.random.key(3)
    ours = _module().TimeSampledFlowMatching(time=("uniform",))(model, train[:256], key)
    assert float(ours) == float(flowlab.FlowMatching()(model, train[:256], key))


@pytest.mark.parametrize(
    "law, reference",
    [
        (("power", 2.0), scipy.stats.beta(2.0, 1.0)),
        (("power", 3.0), scipy.stats.beta(3.0, 1.0)),
        (("logit_normal", 0.5, 1.5), None),
    ],
)
def test_time_laws_match_their_distributions(law, reference):
    u = jax.random.uniform(jax.random.key(1), (20_000,))
    t = np.asarray(_module().TimeSampledFlowMatching(time=law)._t(u), np.float64)
    assert np.all((t >= 0) & (t <= 1))
    if reference is None:  # logit(t) ~ N(m, s)
        _, m, s = law
        inner = t[(t > 0) & (t < 1)]
        p = scipy.stats.kstest(scipy.special.logit(inner), scipy.stats.norm(m, s).cdf).pvalue
    else:
        p = scipy.stats.kstest(t, reference.cdf).pvalue
    assert p > 1e-3


def test_debiased_ema_recovers_constant_weights():
    initial, _ = _model(seed=0)
    later, _ = _model(seed=1)
    decay, n = 0.998, 700
    p0, static = eqx.partition(initial, initial.trainable())
    p, _ = eqx.partition(later, later.trainable())
    # fit's EMA after n steps at the constant weights p, started from the initial ones
    w = decay**n
    ema = jax.tree_util.tree_map(lambda a, b: w * a + (1 - w) * b, p0, p)
    fixed = _module().debiased(initial, decay)(eqx.combine(ema, static), n)
    got, _ = eqx.partition(fixed, fixed.trainable())
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(p), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=2e-5)
    assert (
        jnp.max(jnp.abs(jax.tree_util.tree_leaves(ema)[0] - jax.tree_util.tree_leaves(p)[0])) > 1e-3
    )
