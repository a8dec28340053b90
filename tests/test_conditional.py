"""Conditional generation with classifier-free guidance: the guided field, its exact
conditional likelihood on closed-form flows, the class-aware minibatch OT (C2OT) against
scipy's assignment per class, and a short conditional training run on labelled 2D data."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import flowlab
from flowlab import conditional as C
from flowlab.couplings import ExactOT
from flowlab.datasets import labelled
from flowlab.nn import ConditionalMLPField


class ConstantVelocity(eqx.Module):
    """f(t, z, y) = mu_y: the CNF from N(0, I) at t = 0 carries it to N(mu_y, I) at t = 1."""

    means: jax.Array
    data_size: int = eqx.field(static=True, default=2)
    num_classes: int = eqx.field(static=True, default=2)

    def __call__(self, t, z, label):
        return self.means[label] + 0.0 * z


MEANS = jnp.array([[1.0, -2.0], [3.0, 0.5], [0.0, 0.0]])  # label 2: the null label


@pytest.mark.parametrize(("label", "w"), [(0, 0.0), (1, 0.0), (None, 0.0), (1, 2.0)])
def test_guided_cnf_log_prob_is_the_closed_form(label, w):
    model = C.condition(flowlab.CNF(C.Guided(ConstantVelocity(MEANS))), label, w)
    y = 2 if label is None else label
    mean = (1 + w) * MEANS[y] - w * MEANS[2]
    x = jax.random.normal(jax.random.key(0), (50, 2)) + mean
    ref = scipy.stats.multivariate_normal(np.asarray(mean), np.eye(2)).logpdf(np.asarray(x))
    np.testing.assert_allclose(np.asarray(model.log_prob(x)), ref, atol=1e-4)
    s = model.sample(jax.random.key(1), 4000)
    np.testing.assert_allclose(np.asarray(s.mean(0)), np.asarray(mean), atol=0.06)


def test_guided_field_mixes_conditional_and_unconditional():
    net = ConditionalMLPField(3, 4, 16, 2, key=jax.random.key(0))
    z = jnp.array([0.3, -1.0, 2.0])
    g = C.Guided(net, 2, 1.5)
    expected = 2.5 * net(0.4, z, 2) - 1.5 * net(0.4, z, 4)
    np.testing.assert_allclose(np.asarray(g(0.4, z)), np.asarray(expected), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(C.Guided(net, 2)(0.4, z)), np.asarray(net(0.4, z, 2)))
    assert net.null_label == 4 and int(C.Guided(net).label) == 4
    with pytest.raises(ValueError, match=r"label an int in 0..4"):
        C.Guided(net, 5)
    with pytest.raises(ValueError, match="guidance w >= 0"):
        C.Guided(net, 1, -1.0)
    with pytest.raises(ValueError, match="Guided field"):
        C.condition(flowlab.CNF(flowlab.nn.MLPVectorField(3, key=jax.random.key(0))), 1)


def _cost(a, b):
    return ((np.asarray(a)[:, None] - np.asarray(b)[None]) ** 2).sum(-1)


def test_class_aware_ot_pairs_within_classes_optimally():
    n, d, k = 48, 3, 4
    kz, kx, ky, kc = jax.random.split(jax.random.key(5), 4)
    z0 = jax.random.normal(kz, (n, d))
    z1 = jax.random.normal(kx, (n, d)) * 2
    labels = jax.random.randint(ky, (n,), 0, k)
    obj = C.ConditionalFlowMatching(coupling=ExactOT(), class_cost=1e4)
    perm = np.asarray(obj.permutation(z0, z1, labels, k, kc))
    noise_labels = np.asarray(labels)[np.asarray(jax.random.permutation(kc, n))]
    assert sorted(perm.tolist()) == list(range(n))
    np.testing.assert_array_equal(noise_labels[perm], np.asarray(labels))  # no pair crosses
    # and within each class the assignment is scipy's optimum
    total = _cost(np.asarray(z0)[perm], z1)[np.arange(n), np.arange(n)].sum()
    best = 0.0
    for c in range(k):
        i0, i1 = np.flatnonzero(noise_labels == c), np.flatnonzero(np.asarray(labels) == c)
        cost = _cost(np.asarray(z0)[i0], np.asarray(z1)[i1])
        r, col = scipy.optimize.linear_sum_assignment(cost)
        best += cost[r, col].sum()
    assert total == pytest.approx(best, rel=1e-5)
    plain = C.ConditionalFlowMatching(coupling=ExactOT())
    np.testing.assert_array_equal(
        np.asarray(plain.permutation(z0, z1, labels, k, kc)),
        np.asarray(ExactOT().permutation(z0, z1)),
    )
    with pytest.raises(ValueError, match="ExactOT"):
        C.ConditionalFlowMatching(coupling=flowlab.couplings.Sinkhorn())
    with pytest.raises(ValueError, match="drop_probability"):
        C.ConditionalFlowMatching(drop_probability=1.0)
    # a positional option is the objective's own first one, never holdout_repeats
    assert C.ConditionalDSM(0.2).drop_probability == 0.2
    assert C.ConditionalDSM(0.2).holdout_repeats == C.ConditionalDSM().holdout_repeats
    with pytest.raises(ValueError, match="holdout_repeats a positive integer"):
        C.ConditionalDSM(holdout_repeats=0)


def test_conditional_flow_matching_learns_each_component():
    name = "gaussian_mixture"
    x, y = labelled.sample_with_labels(name, jax.random.key(0), 2000)
    xh, yh = labelled.sample_with_labels(name, jax.random.key(1), 200)
    net = ConditionalMLPField(2, 7, 48, 2, key=jax.random.key(2))
    model = flowlab.CNF(C.Guided(net), standardize=flowlab.Standardize.fit(x))
    obj = C.ConditionalFlowMatching(drop_probability=0.1)
    model, hist = C.fit_conditional(
        model,
        obj,
        x,
        np.asarray(y),
        xh,
        np.asarray(yh),
        key=jax.random.key(3),
        steps=600,
        batch_size=256,
        eval_every=300,
        progress=False,
    )
    means = flowlab.datasets.gaussian_mixture_params(name)[0]
    for c in (0, 3):
        s = np.asarray(C.condition(model, c).sample(jax.random.key(c), 300))
        np.testing.assert_allclose(s.mean(0), means[c], atol=0.1)
    with pytest.raises(ValueError, match=r"labels in 0..6"):
        C.fit_conditional(
            model,
            obj,
            x,
            np.asarray(y) + 1,
            xh,
            np.asarray(yh),
            key=jax.random.key(3),
            steps=1,
            progress=False,
        )
    with pytest.raises(ValueError, match="ConditionalDSM trains a Diffusion"):
        C.fit_conditional(
            model,
            C.ConditionalDSM(),
            x,
            np.asarray(y),
            xh,
            np.asarray(yh),
            key=jax.random.key(3),
            steps=1,
            progress=False,
        )
