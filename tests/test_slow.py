"""Quality targets that need real training (minutes): `nox -s slow`.

Each bounds the hold-out NLL from both sides with its standard error: a model cannot beat
the truth (NLL >= entropy - 3 SE) and must come within the target of it."""

import jax
import numpy as np
import pytest

from flowlab import CNF, DDPM, DenoisingScoreMatching, Diffusion, Standardize, datasets, fit
from flowlab.metrics import mean_and_se
from flowlab.nn import MLPVectorField
from flowlab.objectives import FlowMatching
from flowlab.optim import default_optimizer


def _train(model, objective, train, holdout, steps):
    model, _ = fit(
        model, objective, train, holdout, key=jax.random.key(2), steps=steps, batch_size=1024,
        optimizer=default_optimizer(steps, 2e-3), eval_every=steps // 4, ema_decay=0.999,
        progress=False,
    )  # fmt: skip
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name, tol", [("gaussian_mixture", 0.10), ("pinwheel", 0.30)])
def test_flow_matching_reaches_the_true_entropy(name, tol):
    train, holdout = datasets.split(name, jax.random.key(0))
    net = MLPVectorField(2, width=128, depth=4, key=jax.random.key(1))
    cnf = _train(CNF(net, standardize=Standardize.fit(train)), FlowMatching(), train, holdout, 8000)
    nll, se = mean_and_se(-np.asarray(cnf.log_prob(holdout)))
    h = datasets.entropy(name)
    assert h - 3 * se < nll < h + tol, (nll, se, h)


@pytest.mark.slow
def test_ddpm_bound_lies_above_the_vp_models_exact_nll_and_the_entropy():
    # Same network, budget and data: the DDPM's variational bound (in NLL terms) is above the
    # exact PF-ODE NLL of the continuous VP model, which is above the true entropy.
    train, holdout = datasets.split("pinwheel", jax.random.key(0))
    std = Standardize.fit(train)
    steps, dsm = 8000, DenoisingScoreMatching()
    vp = _train(Diffusion(MLPVectorField(2, 128, 4, key=jax.random.key(1)), standardize=std),
                dsm, train, holdout, steps)  # fmt: skip
    ddpm = _train(DDPM(MLPVectorField(2, 128, 4, key=jax.random.key(1)), standardize=std),
                  dsm, train, holdout, steps)  # fmt: skip
    exact, exact_se = mean_and_se(-np.asarray(vp.log_prob(holdout)))
    bound, bound_se = mean_and_se(-np.asarray(ddpm.log_prob_bound(holdout, key=jax.random.key(3))))
    h = datasets.entropy("pinwheel")
    assert exact > h - 3 * exact_se, (exact, exact_se, h)
    assert bound > exact, (bound, bound_se, exact, exact_se)
