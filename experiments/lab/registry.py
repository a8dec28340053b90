"""The one model factory of the experiment scripts: family name -> model, objective, defaults.

Strings live here, at the command-line edge; the library takes objects. Every model is
rebuilt from its hyperparameters alone (``build_model(hp)``), so a saved model or a
checkpoint loads with ``flowlab.load_model(path, build_model)``.

| family | model | objective | likelihood |
|---|---|---|---|
| ``cnf_fm`` | ``CNF`` | ``FlowMatching`` | exact (ODE) |
| ``cnf_mle`` | ``CNF`` | ``MaximumLikelihood`` | exact (ODE) |
| ``diffusion`` | ``Diffusion`` (VP/sub-VP/VE) | ``DenoisingScoreMatching`` | exact (PF-ODE) |
| ``ddpm`` | ``DDPM`` | ``DenoisingScoreMatching`` (L_simple) | bound |
| ``dsm`` | ``SingleNoiseScore`` | ``SingleNoiseDSM`` | none |
| ``vae`` | ``VAE`` | ``NegativeELBO`` | exact (latent quadrature) + ELBO |
| ``ebm`` | ``EBM`` | ``ContrastiveDivergence`` | exact (2-D quadrature) |
| ``gan`` | ``GAN`` | ``NonSaturatingGAN`` (+ R1), ``TwoPlayerAdam`` | none |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import flowlab
from flowlab.nn import MLPVectorField


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build, train and describe one model family in the scripts."""

    name: str
    label: str
    defaults: dict[str, Any]
    build: Callable[[dict, Any, flowlab.Standardize], Any]
    objective: Callable[[dict], Any]
    loss_label: str
    smoke: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: Callable[[dict], Any] | None = None  # default: flowlab.default_optimizer
    # hyperparameters read off the standardised training data (e.g. an EBM's quadrature box)
    data_hp: Callable[[dict, Any], dict] | None = None


SMOKE = dict(steps=40, width=32, depth=2, batch_size=128, eval_every=20)
"""Budgets of a ``--smoke`` run (seconds, for CI)."""


def _mlp(hp: dict, key) -> MLPVectorField:
    return MLPVectorField(
        2, width=hp["width"], depth=hp["depth"], activation=hp.get("activation", "silu"), key=key
    )


def _cnf(hp, key, std):
    return flowlab.CNF(_mlp(hp, key), standardize=std)


def _diffusion(hp, key, std):
    return flowlab.Diffusion(_mlp(hp, key), flowlab.get_sde(hp.get("sde", "vp")), standardize=std)


def _ddpm(hp, key, std):
    return flowlab.DDPM(_mlp(hp, key), hp.get("num_diffusion_steps", 1000), standardize=std)


def _single_noise(hp, key, std):
    return flowlab.SingleNoiseScore(_mlp(hp, key), hp["sigma"], standardize=std)


def _gan(hp, key, std):
    from flowlab.gan import GAN

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


def _gan_objective(hp):
    from flowlab.objectives import NonSaturatingGAN

    return NonSaturatingGAN(r1=hp.get("r1", 0.0))


def _gan_optimizer(hp):
    from flowlab.optim import TwoPlayerAdam

    return TwoPlayerAdam(
        steps=hp["steps"],
        generator_lr=hp["generator_lr"],
        discriminator_lr=hp["discriminator_lr"],
        b1=hp.get("b1", 0.5),
    )


def _vae(hp, key, std):
    from flowlab.vae import VAE

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


def _vae_objective(hp):
    from flowlab.objectives import NegativeELBO

    return NegativeELBO(num_samples=hp.get("num_samples", 1))


def _ebm(hp, key, std):
    from flowlab.ebm import EBM, energy_mlp

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


def _ebm_objective(hp):
    from flowlab.objectives import ContrastiveDivergence

    return ContrastiveDivergence(
        langevin_steps=hp["langevin_steps"],
        step_size=hp["step_size"],
        buffer_size=hp["buffer_size"],
        reinit_prob=hp["reinit_prob"],
        alpha=hp["alpha"],
        holdout_steps=hp["holdout_steps"],
    )


def _ebm_box(hp, z_train):
    from flowlab.ebm import data_box

    return {"box": [list(b) for b in data_box(z_train, hp["margin"])]}


def _flow_matching(hp):
    return flowlab.FlowMatching(sigma_min=hp.get("sigma_min", 0.0))


FAMILIES: dict[str, Family] = {
    "cnf_fm": Family(
        "cnf_fm",
        "CNF (flow matching)",
        # chosen for time to quality (issue 13) on all four course datasets, seed 0, quiet
        # 2-core CPU (benchmarks/defaults.py; table in benchmarks/README.md): this 64x4
        # field, batch 1024, 24,000 steps at lr 5e-3 ends 0.138 / 0.131 / 0.049 / -0.016 nats
        # above the true entropy on pinwheel / checkerboard / mixture / spiral after 33-36 s
        # of training, reaches a gap of 0.30 in 6-9 s, and its exact log_prob of 500 points
        # takes 75-113 ms; the earlier 128x4 field (12,000 steps) ended 0.151 / 0.147 /
        # 0.045 / -0.020 in 31-36 s, with 0.28-0.34 s log_prob
        dict(
            steps=24_000,
            width=64,
            depth=4,
            batch_size=1024,
            lr=5e-3,
            ema_decay=0.999,
            eval_every=1000,
        ),
        _cnf,
        _flow_matching,
        "flow-matching loss",
    ),
    "cnf_mle": Family(
        "cnf_mle",
        "CNF (max. likelihood)",
        dict(
            steps=1_200, width=64, depth=3, batch_size=512, lr=3e-3, ema_decay=0.99, eval_every=200
        ),
        _cnf,
        lambda hp: flowlab.MaximumLikelihood(),
        "NLL (nats)",
    ),
    "diffusion": Family(
        "diffusion",
        "VP diffusion (DSM)",
        # chosen for time to quality and likelihood cost (issue 13; benchmarks/defaults.py,
        # pinwheel, seed 0, quiet 2-core CPU): this 64x4 network, 24,000 steps at lr 5e-3
        # ends 0.179 nats above the true entropy (exact PF-ODE NLL) after 37 s of training,
        # with a 91 ms log_prob of 500 points; the earlier 256x4, 20,000 steps at lr 2e-3,
        # ended at 0.181 after 172 s, with 0.71 s
        dict(
            steps=24_000,
            width=64,
            depth=4,
            batch_size=1024,
            lr=5e-3,
            ema_decay=0.999,
            eval_every=2000,
            sde="vp",
        ),
        _diffusion,
        lambda hp: flowlab.DenoisingScoreMatching(k=hp.get("k", 1)),
        "denoising score-matching loss",
    ),
    "ddpm": Family(
        "ddpm",
        "DDPM (L_simple)",
        dict(
            steps=20_000,
            width=256,
            depth=4,
            batch_size=1024,
            lr=2e-3,
            ema_decay=0.999,
            eval_every=2000,
            num_diffusion_steps=1000,
        ),
        _ddpm,
        lambda hp: flowlab.DenoisingScoreMatching(k=hp.get("k", 1)),
        "L_simple (noise-prediction MSE)",
    ),
    "dsm": Family(
        "dsm",
        "single-noise DSM + Langevin",
        dict(
            steps=10_000,
            width=128,
            depth=3,
            batch_size=512,
            lr=2e-3,
            ema_decay=0.999,
            eval_every=1000,
            sigma=0.1,
            k=4,
        ),
        _single_noise,
        lambda hp: flowlab.SingleNoiseDSM(k=hp.get("k", 1)),
        "denoising score-matching loss",
    ),
    "gan": Family(
        "gan",
        "GAN (non-saturating, R1)",
        dict(
            steps=10_000,
            latent_size=8,
            width=128,
            depth=3,
            activation="leaky_relu",
            batch_size=256,
            generator_lr=1e-3,
            discriminator_lr=1e-3,
            b1=0.5,
            r1=0.1,
            ema_decay=None,
            eval_every=500,
            lr=1e-3,
        ),
        _gan,
        _gan_objective,
        "players' losses",
        optimizer=_gan_optimizer,
    ),
    "vae": Family(
        "vae",
        "VAE (2-D latent)",
        dict(
            steps=15_000,
            latent_size=2,
            width=128,
            depth=3,
            activation="silu",
            variance="learned",
            decoder_std=0.05,
            min_std=0.01,
            batch_size=512,
            lr=3e-3,
            ema_decay=None,
            eval_every=1000,
            num_samples=1,
            quadrature_size=512,
            quadrature_bound=7.0,
        ),
        _vae,
        _vae_objective,
        "negative ELBO (nats)",
    ),
    "ebm": Family(
        "ebm",
        "EBM (contrastive divergence)",
        dict(
            steps=6000,
            width=64,
            depth=3,
            activation="silu",
            batch_size=256,
            lr=2e-3,
            ema_decay=None,
            eval_every=500,
            margin=0.5,
            wall_width=2.0,
            wall_stiffness=16.0,
            energy_bound=30.0,
            quadrature_panels=16,
            quadrature_order=8,
            langevin_steps=20,
            step_size=5e-3,
            alpha=0.1,
            buffer_size=10_000,
            reinit_prob=0.05,
            holdout_steps=200,
        ),
        _ebm,
        _ebm_objective,
        "contrastive-divergence loss",
        data_hp=_ebm_box,
    ),
}


def family(name: str) -> Family:
    """The family called ``name``, or a ``ValueError`` listing the valid ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def standardize_from(hp: dict) -> flowlab.Standardize:
    """The standardisation recorded in ``hp`` (``standardize_loc`` / ``standardize_scale``)."""
    return flowlab.Standardize(
        jnp.asarray(hp["standardize_loc"], jnp.float32),
        jnp.asarray(hp["standardize_scale"], jnp.float32),
    )


def build_model(hp: dict):
    """The model of a run from its hyperparameters (``hp["family"]`` picks the family; the
    weights are drawn from ``hp["seed"]``)."""
    fam = family(hp["family"])
    key = jax.random.fold_in(jax.random.key(hp["seed"]), 1)
    return fam.build(hp, key, standardize_from(hp))


def build_objective(hp: dict):
    """The training objective of a run from its hyperparameters."""
    return family(hp["family"]).objective(hp)


def build_optimizer(hp: dict):
    """The optimiser of a run: the family's own (e.g. one learning rate per GAN player) or
    :func:`flowlab.default_optimizer` with ``hp["lr"]``."""
    fam = family(hp["family"])
    if fam.optimizer is not None:
        return fam.optimizer(hp)
    return flowlab.default_optimizer(hp["steps"], hp["lr"])
