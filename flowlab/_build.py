"""Models rebuilt from the hyperparameters a script saved with them: what lets
:func:`flowlab.load_model` read a saved model with nothing but its file.

The constructions are the experiment scripts' standard ones (MLP networks of the recorded
width, depth and activation, the recorded standardisation), keyed by the family name
recorded in ``hyperparameters["family"]``; the weights are drawn from
``hyperparameters["seed"]`` (``load_model`` then replaces them with the saved ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ._flow_map import MLPFlowMapNet
from ._prior import AbstractPrior, prior_from_config
from ._standardize import Standardize
from .cnf import CNF
from .ddpm import DDPM
from .diffusion import Diffusion
from .ebm import EBM, energy_mlp
from .gan import GAN
from .meanflow import MeanFlow
from .nn import MLPVectorField
from .sde import get_sde
from .shortcut import Shortcut
from .single_noise import SingleNoiseScore
from .vae import VAE

__all__ = ["build_model"]


def standardize_from(hp: dict) -> Standardize:
    """The standardisation recorded in ``hp`` (``standardize_loc`` / ``standardize_scale``)."""
    return Standardize(
        jnp.asarray(hp["standardize_loc"], jnp.float32),
        jnp.asarray(hp["standardize_scale"], jnp.float32),
    )


def _mlp(hp: dict, key):
    return MLPVectorField(
        2, width=hp["width"], depth=hp["depth"], activation=hp.get("activation", "silu"), key=key
    )


def prior_from(hp: dict) -> AbstractPrior | None:
    """The prior recorded in ``hp["prior"]`` (:meth:`~flowlab.AbstractPrior.to_config`), or
    ``None`` (the standard normal) when there is none."""
    config = hp.get("prior")
    return None if config is None else prior_from_config(config)


def _cnf(hp, key, std):
    return CNF(_mlp(hp, key), standardize=std, prior=prior_from(hp))


def _flow_map_net(hp: dict, key):
    return MLPFlowMapNet(
        2, width=hp["width"], depth=hp["depth"], activation=hp.get("activation", "silu"), key=key
    )


def _meanflow(hp, key, std):
    return MeanFlow(_flow_map_net(hp, key), standardize=std, prior=prior_from(hp))


def _shortcut(hp, key, std):
    return Shortcut(_flow_map_net(hp, key), standardize=std, prior=prior_from(hp))


def _diffusion(hp, key, std):
    return Diffusion(_mlp(hp, key), get_sde(hp.get("sde", "vp")), standardize=std)


def _ddpm(hp, key, std):
    return DDPM(_mlp(hp, key), hp.get("num_diffusion_steps", 1000), standardize=std)


def _single_noise(hp, key, std):
    return SingleNoiseScore(_mlp(hp, key), hp["sigma"], standardize=std)


def _gan(hp, key, std):
    return GAN.mlp(
        2,
        latent_size=hp["latent_size"],
        width=hp["width"],
        depth=hp["depth"],
        generator_activation=hp.get("activation", "leaky_relu"),
        discriminator_activation=hp.get("activation", "leaky_relu"),
        standardize=std,
        key=key,
    )


def _vae(hp, key, std):
    return VAE.from_mlps(
        2,
        hp["latent_size"],
        width=hp["width"],
        depth=hp["depth"],
        activation=hp.get("activation", "silu"),
        variance=hp["variance"],
        standardize=std,
        decoder_std=hp["decoder_std"],
        min_std=hp["min_std"],
        quadrature_size=hp["quadrature_size"],
        quadrature_bound=hp["quadrature_bound"],
        key=key,
    )


def _ebm(hp, key, std):
    return EBM(
        energy_mlp(2, hp["width"], hp["depth"], hp.get("activation", "silu"), key=key),
        tuple(tuple(b) for b in hp["box"]),
        standardize=std,
        wall_width=hp["wall_width"],
        wall_stiffness=hp["wall_stiffness"],
        energy_bound=hp["energy_bound"],
        quadrature_panels=hp["quadrature_panels"],
        quadrature_order=hp["quadrature_order"],
    )


_BUILDERS: dict[str, Callable[[dict, Any, Standardize], Any]] = {
    "cnf_fm": _cnf,
    "cnf_mle": _cnf,
    "cnf_reflow": _cnf,
    "meanflow": _meanflow,
    "shortcut": _shortcut,
    "diffusion": _diffusion,
    "ddpm": _ddpm,
    "dsm": _single_noise,
    "vae": _vae,
    "ebm": _ebm,
    "ebm_cd": _ebm,
    "ebm_dsm": _ebm,
    "gan": _gan,
}
"""Family name (as saved in ``hyperparameters["family"]``) -> ``build(hp, key, standardize)``."""


def build_model(hp: dict) -> Any:
    """The model of the hyperparameters ``hp`` a script records (``hp["family"]`` picks the
    construction: ``cnf_fm``, ``cnf_mle``, ``cnf_reflow`` (a rectified flow is a CNF),
    ``meanflow``, ``shortcut``, ``diffusion``, ``ddpm``, ``dsm``, ``vae``,
    ``ebm``, ``gan``; ``width``, ``depth``, ``activation`` and the family's own entries
    size it; ``standardize_loc`` / ``standardize_scale`` its standardisation; for the flows
    ``cnf_*``, ``meanflow`` and ``shortcut``, an optional ``prior`` (the dict of
    :meth:`~flowlab.AbstractPrior.to_config`: a source-to-target flow); weights drawn
    from ``hp["seed"]``), or a ``ValueError`` naming the families it knows. What
    :func:`flowlab.load_model` uses when given no build function."""
    name = hp.get("family")
    if name not in _BUILDERS:
        raise ValueError(
            f"no standard construction for family {name!r}; expected one of: "
            f"{', '.join(_BUILDERS)} (or pass load_model a build function)"
        )
    key = jax.random.fold_in(jax.random.key(hp["seed"]), 1)
    return _BUILDERS[name](hp, key, standardize_from(hp))
