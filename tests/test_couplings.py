"""Minibatch couplings against trusted references: scipy's assignment, a float64 Sinkhorn.

Compilation dominates the run time, so the tests share shapes on purpose: batches of 256
(and 64, 32) rows, and jitted entry points that take the coupling as an argument, so that
couplings differing only in float fields (epsilon, threshold) share one compilation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from flowlab.couplings import (
    ExactOT,
    Independent,
    Sinkhorn,
    _sample_plan,
    schrodinger_bridge,
    squared_distances,
)

# Tolerances (float32 solves).
COST_RTOL = 1e-9  # ExactOT is scipy's optimum computed in float64: equal up to summation order
PLAN_ATOL = 2e-3  # Sinkhorn plan vs the float64 reference, in units of the uniform mass 1/(nm)

plan_jit = jax.jit(lambda coupling, x0, x1: coupling.plan(x0, x1))
perm_jit = jax.jit(lambda coupling, x0, x1: coupling.permutation(x0, x1))
sample_jit = jax.jit(_sample_plan, static_argnums=1)


def batches(seed, n, m=None, d=2):
    """A Gaussian noise batch and a two-cluster data batch, float32."""
    rng = np.random.default_rng(seed)
    m = n if m is None else m
    x0 = rng.normal(size=(n, d))
    x1 = 0.5 * rng.normal(size=(m, d)) + np.where(rng.random((m, 1)) < 0.5, 2.0, -2.0)
    return x0.astype(np.float32), x1.astype(np.float32)


def cost64(x0, x1):
    return ((np.asarray(x0, np.float64)[:, None] - np.asarray(x1, np.float64)[None]) ** 2).sum(-1)


def exact_cost(x0, x1):
    """Mean cost of the optimal assignment (scipy, float64)."""
    cost = cost64(x0, x1)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    return cost[rows, cols].mean()


def reference_sinkhorn(cost, eps, tol=1e-13):
    """Sinkhorn's matrix scaling (Cuturi 2013) in float64 numpy, to round-off: the plan."""
    n, m = cost.shape
    kernel = np.exp(-(cost - cost.min()) / eps)
    u, v = np.ones(n), np.ones(m)
    for _ in range(100_000):
        u = (1 / n) / (kernel @ v)
        v = (1 / m) / (kernel.T @ u)
        if np.abs(u * (kernel @ v) - 1 / n).sum() < tol:
            break
    return u[:, None] * kernel * v[None, :]


@pytest.mark.parametrize("coupling", [ExactOT(), ExactOT(warm_start=False)], ids=["warm", "cold"])
@pytest.mark.parametrize("n", [1, 64, 256])
def test_exact_ot_matches_scipy_optimum(coupling, n):
    for seed in range(4 if n <= 64 else 2):
        x0, x1 = batches(seed, n)
        perm = np.asarray(perm_jit(coupling, x0, x1))
        assert sorted(perm.tolist()) == list(range(n))
        got = cost64(x0, x1)[perm, np.arange(n)].mean()
        np.testing.assert_allclose(got, exact_cost(x0, x1), rtol=COST_RTOL)


def test_shifted_copy_recovers_the_shift():
    """OT between a batch and a shuffled translate of itself undoes the shuffle."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.arange(16.0), np.arange(16.0)), -1).reshape(-1, 2)
    x0 = (0.5 * grid + 0.1 * rng.normal(size=grid.shape)).astype(np.float32)  # spacing ~0.5
    shuffle = rng.permutation(256)
    x1 = x0[shuffle] + np.array([0.7, -0.3], np.float32)
    perm = np.asarray(perm_jit(ExactOT(), x0, x1))
    np.testing.assert_array_equal(perm, shuffle)
    # Small epsilon (absolute ~0.02 against swap costs ~0.25 and more): the plan puts almost
    # all its mass on the translation pairs.
    plan, _ = plan_jit(Sinkhorn(epsilon=1e-3), x0, x1)
    assert float(jnp.sum(plan[shuffle, jnp.arange(256)])) > 0.98


@pytest.mark.parametrize(("n", "m"), [(256, 256), (12, 20)])
@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_sinkhorn_plan_matches_reference(n, m, eps):
    x0, x1 = batches(2, n, m)
    plan, info = plan_jit(Sinkhorn(epsilon=eps, threshold=1e-5), x0, x1)
    ref = reference_sinkhorn(cost64(x0, x1), float(info.epsilon))
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(plan, np.float64), ref, atol=PLAN_ATOL / (n * m))


@pytest.mark.parametrize("eps", [0.1, 0.01, 0.001])
def test_sinkhorn_marginals_within_threshold(eps):
    x0, x1 = batches(4, 256)
    coupling = Sinkhorn(epsilon=eps)
    plan, info = plan_jit(coupling, x0, x1)
    plan = np.asarray(plan, np.float64)
    assert bool(info.converged) and np.all(np.isfinite(plan))
    n = plan.shape[0]
    assert np.abs(plan.sum(0) - 1 / n).sum() <= coupling.threshold * 1.01  # float32 round-off
    assert np.abs(plan.sum(1) - 1 / n).sum() <= 1e-4  # exact after each row update


def test_sinkhorn_is_finite_at_tiny_epsilon_and_far_batches():
    """The stabilised kernel neither underflows nor overflows: tiny epsilon, distant data.

    (Row sums are exact inside the solver; re-exponentiating float32 potentials of size
    |C| ~ 2500 at epsilon ~ 0.05 leaves errors of order 1e-3.)
    """
    x0, x1 = batches(11, 256)
    for eps in [1e-4, 1e-5]:
        plan, info = plan_jit(Sinkhorn(epsilon=eps), x0, x1 + np.float32(50.0))
        plan = np.asarray(plan, np.float64)
        assert np.all(np.isfinite(plan)) and bool(info.converged)
        np.testing.assert_allclose(plan.sum(1), 1 / 256, rtol=3e-2)


def test_sinkhorn_cost_tends_to_exact_ot():
    x0, x1 = batches(5, 256)
    cost = cost64(x0, x1)
    exact = exact_cost(x0, x1)
    excess = []
    for eps in [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]:
        plan, _ = plan_jit(Sinkhorn(epsilon=eps), x0, x1)
        excess.append((np.asarray(plan, np.float64) * cost).sum() / exact - 1)
    assert all(e > -1e-4 for e in excess)  # no plan beats the optimum
    assert all(a > b for a, b in zip(excess, excess[1:], strict=False))  # monotone in eps
    assert excess[-1] < 5e-3  # within 0.5% of exact OT at relative epsilon 1e-3


def test_sinkhorn_samples_follow_the_plan():
    """The pair sampler draws (i, j) with probability plan[i, j] (50,000 draws at once)."""
    x0, x1 = batches(6, 12, 20)
    plan, _ = plan_jit(Sinkhorn(epsilon=0.5, threshold=1e-5), x0, x1)
    i, j = sample_jit(plan, 50_000, jax.random.key(0))
    plan = np.asarray(plan, np.float64)
    counts = np.zeros_like(plan)
    np.add.at(counts, (np.asarray(i), np.asarray(j)), 1)
    freq = counts / counts.sum()
    se = np.sqrt(plan * (1 - plan) / counts.sum())
    assert np.all(np.abs(freq - plan) < 5 * se + 1e-12)


@pytest.mark.parametrize(
    "coupling", [Independent(), ExactOT(), Sinkhorn(epsilon=0.05)], ids=lambda c: type(c).__name__
)
def test_inside_scan(coupling):
    """A coupling in a lax.scan step under jit, as the fused training loop runs it: the same
    pairs as the coupling's parts called directly; the same keys give the same pairs."""
    data = [batches(s, 256) for s in range(3)]
    x0s = jnp.stack([d[0] for d in data])
    x1s = jnp.stack([d[1] for d in data])
    keys = jax.random.split(jax.random.key(0), 3)

    @jax.jit
    def run(x0s, x1s, keys):
        def step(carry, inputs):
            a, b = coupling(*inputs)
            return carry + jnp.sum((a - b) ** 2), (a, b)

        return jax.lax.scan(step, jnp.zeros(()), (x0s, x1s, keys))

    total, (a, b) = run(x0s, x1s, keys)
    np.testing.assert_allclose(total, jnp.sum((a - b) ** 2), rtol=1e-5)
    for k in range(3):
        x0, x1 = np.asarray(x0s[k]), np.asarray(x1s[k])
        if isinstance(coupling, Independent):
            np.testing.assert_array_equal(a[k], x0)
            np.testing.assert_array_equal(b[k], x1)
        elif isinstance(coupling, ExactOT):
            np.testing.assert_array_equal(a[k], x0[np.asarray(perm_jit(coupling, x0, x1))])
            np.testing.assert_array_equal(b[k], x1)
            got = np.mean(np.sum((np.asarray(a[k], np.float64) - x1) ** 2, -1))
            np.testing.assert_allclose(got, exact_cost(x0, x1), rtol=COST_RTOL)
        else:
            plan, _ = plan_jit(coupling, x0, x1)
            i, j = sample_jit(plan, 256, keys[k])
            # Separately compiled programs may round differently: almost all rows agree.
            assert np.mean(np.all(np.asarray(a[k]) == x0[np.asarray(i)], axis=1)) > 0.98
            assert np.mean(np.all(np.asarray(b[k]) == x1[np.asarray(j)], axis=1)) > 0.98
    if isinstance(coupling, Sinkhorn):
        _, (a2, b2) = run(x0s, x1s, keys)
        _, (a3, _) = run(x0s, x1s, jax.random.split(jax.random.key(1), 3))
        np.testing.assert_array_equal(a, a2)
        np.testing.assert_array_equal(b, b2)
        assert not np.array_equal(a, a3)


def test_exact_ot_under_vmap():
    data = [batches(s, 64) for s in range(3)]
    x0s = np.stack([d[0] for d in data])
    x1s = np.stack([d[1] for d in data])
    perms = jax.jit(jax.vmap(ExactOT().permutation))(x0s, x1s)
    for k in range(3):
        np.testing.assert_array_equal(perms[k], perm_jit(ExactOT(), x0s[k], x1s[k]))
    # one side shared across runs (broadcast to every problem), and two nested run axes
    shared = jax.jit(jax.vmap(ExactOT().permutation, in_axes=(None, 0)))(x0s[0], x1s)
    for k in range(3):
        np.testing.assert_array_equal(shared[k], perm_jit(ExactOT(), x0s[0], x1s[k]))
    nested = jax.jit(jax.vmap(jax.vmap(ExactOT().permutation)))(x0s[None], x1s[None])
    np.testing.assert_array_equal(nested[0], perms)


def test_ot_pairs_are_shorter_than_independent():
    x0, x1 = batches(8, 256)
    cost = cost64(x0, x1)
    independent = np.mean(np.diag(cost))
    plan, _ = plan_jit(Sinkhorn(epsilon=0.01), x0, x1)
    sinkhorn = np.sum(np.asarray(plan, np.float64) * cost)
    perm = np.asarray(perm_jit(ExactOT(), x0, x1))
    exact = np.mean(cost[perm, np.arange(256)])
    assert exact <= sinkhorn < 0.5 * independent


def test_schrodinger_bridge_epsilon_is_two_sigma_squared():
    x0, x1 = batches(9, 12, 20)
    coupling = schrodinger_bridge(0.5)
    assert coupling == Sinkhorn(epsilon=0.5, relative_epsilon=False)
    _, info = plan_jit(coupling, x0, x1)
    np.testing.assert_allclose(info.epsilon, 2 * 0.5**2)


def test_squared_distances_large_d():
    x0, x1 = batches(10, 5, 6, d=40)
    np.testing.assert_allclose(squared_distances(x0, x1), cost64(x0, x1), rtol=1e-4, atol=1e-4)


def test_errors_say_expected_and_got():
    x0, x1 = batches(0, 8)
    with pytest.raises(ValueError, match=r"expected x0 of shape \(n, d\)"):
        ExactOT()(x0, x1[:, :1])
    with pytest.raises(ValueError, match="same number of rows"):
        ExactOT()(x0, x1[:5])
    with pytest.raises(ValueError, match="same number of rows"):
        Independent()(x0, x1[:5])
    with pytest.raises(ValueError, match="pass a key"):
        Sinkhorn()(x0, x1)
    with pytest.raises(ValueError, match="epsilon > 0"):
        Sinkhorn(epsilon=0.0)
    with pytest.raises(ValueError, match="sigma > 0"):
        schrodinger_bridge(0.0)
