"""Quality targets that need real training (minutes): `nox -s slow`."""

import jax
import jax.numpy as jnp
import pytest

from flowlab import CNF, Standardize, datasets
from flowlab.nn import MLPVectorField
from flowlab.train import FlowMatching, default_optimizer, fit


@pytest.mark.slow
@pytest.mark.parametrize("name, tol", [("gaussian_mixture", 0.10), ("pinwheel", 0.30)])
def test_flow_matching_reaches_the_true_entropy(name, tol):
    train, holdout = datasets.split(name, jax.random.key(0))
    cnf = CNF(
        MLPVectorField(2, width=128, depth=4, key=jax.random.key(1)),
        standardize=Standardize.fit(train),
    )
    steps = 8000
    cnf, _ = fit(
        cnf,
        FlowMatching(),
        train,
        holdout,
        key=jax.random.key(2),
        steps=steps,
        batch_size=1024,
        optimizer=default_optimizer(steps, 2e-3),
        eval_every=2000,
        ema_decay=0.999,
        progress=False,
    )
    nll = -float(jnp.mean(cnf.log_prob(holdout)))
    assert nll - datasets.entropy(name) < tol, (nll, datasets.entropy(name))
