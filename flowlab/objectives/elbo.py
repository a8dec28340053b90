r"""The negative ELBO of a variational autoencoder."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_count
from .._typing import Array, Key, Points
from ..vae import AbstractVAE, _elbo_terms
from ._base import AbstractObjective

__all__ = ["NegativeELBO"]


class NegativeELBO(AbstractObjective):
    r"""The negative ELBO of a :class:`~flowlab.VAE` in nats per point, data coordinates:
    $-\mathbb{E}_q \log p(x \mid z) + \mathrm{KL}(q(z \mid u)\,\|\,p(z))$, reparameterised
    ($z = \mu_\phi(u) + s_\phi(u)\odot\varepsilon$), the KL in closed form, averaged over the
    batch and ``num_samples`` draws per point.

    Returns ``(loss, {"reconstruction": -E log p(x|z), "kl": KL})`` (batch means), so
    :func:`~flowlab.fit` records both terms.

    Arguments:
        num_samples: reparameterised draws per point.
        holdout_repeats: noise draws per hold-out point in the hold-out loss.
    """

    num_samples: int = eqx.field(static=True, default=1)
    holdout_repeats: int = eqx.field(static=True, default=8, kw_only=True)

    def __check_init__(self):
        check_count(self.num_samples, "num_samples")
        check_count(self.holdout_repeats, "holdout_repeats")

    def __call__(self, model, x: Points, key: Key) -> tuple[Array, dict]:
        if not isinstance(model, AbstractVAE):
            raise TypeError(
                f"NegativeELBO trains a VAE (an AbstractVAE), got {type(model).__name__}"
            )
        recon, kl = _elbo_terms(model, x, key, self.num_samples)
        reconstruction = -jnp.mean(recon)
        kl = jnp.mean(kl)
        return reconstruction + kl, {"reconstruction": reconstruction, "kl": kl}
