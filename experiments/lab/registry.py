"""The one family registry of the experiment scripts: one entry per family holding its
label, default hyperparameters, smoke budget, table rows (a family sampled several ways),
objective, loss label, its script's evaluation settings and the report's text on it.

Strings live here, at the command-line edge; the library takes objects. The model of a run
is rebuilt from its hyperparameters alone by :func:`flowlab.load_model` (the library's
standard constructions, keyed by ``hp["family"]``), so a saved model loads with
``flowlab.load_model(path)`` and nothing from ``experiments/``.

| family | model | objective | likelihood |
|---|---|---|---|
| ``cnf_fm`` | ``CNF`` | ``FlowMatching`` | exact (ODE) |
| ``cnf_mle`` | ``CNF`` | ``MaximumLikelihood`` | exact (ODE) |
| ``diffusion`` | ``Diffusion`` (VP/sub-VP/VE) | ``DenoisingScoreMatching`` | exact (PF-ODE) |
| ``ddpm`` | ``DDPM`` | ``DenoisingScoreMatching`` (L_simple) | bound |
| ``dsm`` | ``SingleNoiseScore`` | ``SingleNoiseDSM`` | none |
| ``gan`` | ``GAN`` | ``NonSaturatingGAN`` (+ R1), ``TwoPlayerAdam`` | none |
| ``vae`` | ``VAE`` | ``NegativeELBO`` | exact (latent quadrature) + ELBO |
| ``ebm`` (alias ``ebm_cd``) | ``EBM`` | ``ContrastiveDivergence`` | exact (2-D quadrature) |
| ``ebm_dsm`` | ``EBM`` | ``EnergyDSM`` | exact (2-D quadrature) |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flowlab

from . import samplers


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a comparison table: a trained family sampled one way (``sampler(settings)``
    builds the sampler from the grid's evaluation settings, through the one vocabulary
    :mod:`lab.samplers`; ``None``: the model's own)."""

    label: str
    sampler: Callable[[dict], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Family:
    """How to train, evaluate and describe one model family in the scripts. (How to build
    its model from the hyperparameters lives in the library: :func:`flowlab.build_model`.)"""

    name: str
    label: str
    defaults: dict[str, Any]
    objective: Callable[[dict], Any]
    loss_label: str
    rows: dict[str, Row] = dataclasses.field(default_factory=dict)
    # what every smoke run of this family overrides beyond SMOKE (the scripts and the grid)
    smoke: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: Callable[[dict], Any] | None = None  # default: flowlab.default_optimizer
    # hyperparameters read off the standardised training data (e.g. an EBM's quadrature box)
    data_hp: Callable[[dict, Any], dict] | None = None
    # the single-family script's own evaluation settings (and their smoke values)
    script: dict[str, Any] = dataclasses.field(default_factory=dict)
    script_smoke: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the report's sentence on the family (Typst citations as [@key]; "" for none)
    text: str = ""
    # whether the grid trains this family's runs as one program (flowlab.fit_many) on an
    # accelerator; False where a batch cannot beat one run after another anywhere
    batched: bool = True
    # ... and on a CPU: only where benchmarks/batched.py measured the batch at least as fast
    # per run as one run after another (on two cores one run already keeps both busy)
    batched_on_cpu: bool = False
    # keyword arguments of ``model.log_prob`` for the hold-out NLL followed during training
    # and for the density figure's grid, where the reported value's setting is costly (a
    # VAE's quadrature); ``None``: the model's own defaults
    coarse_log_prob: Callable[[Any], dict] | None = None


SMOKE = dict(steps=40, width=32, depth=2, batch_size=128, eval_every=20)
"""Budgets of a ``--smoke`` run (seconds, for CI)."""


def _gan_optimizer(hp):
    return flowlab.TwoPlayerAdam(
        steps=hp["steps"],
        generator_lr=hp["generator_lr"],
        discriminator_lr=hp["discriminator_lr"],
        b1=hp.get("b1", 0.5),
    )


def _contrastive_divergence(hp):
    return flowlab.ContrastiveDivergence(
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


def _denoising(hp):
    return flowlab.DenoisingScoreMatching(k=hp.get("k", 1))


# The EBM's energy network and quadrature, shared by its two objectives.
_EBM_MODEL = dict(
    width=64,
    depth=3,
    activation="silu",
    batch_size=256,
    lr=2e-3,
    ema_decay=None,
    margin=0.5,
    wall_width=2.0,
    wall_stiffness=16.0,
    energy_bound=30.0,
    quadrature_panels=16,
    quadrature_order=8,
)
# Measured on pinwheel, seed 0 (2 loaded CPU cores): CD reaches an exact hold-out NLL of
# 0.12 nats (entropy -0.09) in 6000 steps, about 3 minutes compile included; DSM 0.18.
_EBM_SCRIPT = dict(sample_steps=5000, sample_step_size=3e-2, sample_final_step_size=1e-3)
_EBM_SMOKE = dict(langevin_steps=5, buffer_size=1000, holdout_steps=20, quadrature_panels=4)

FAMILIES: dict[str, Family] = {
    "cnf_fm": Family(
        "cnf_fm",
        "CNF (flow matching)",
        # chosen for time to quality (issue 13, revised in issue 25; benchmarks/defaults.py
        # and benchmarks/time_to_quality.py, tables in benchmarks/README.md and
        # benchmarks/TIME_TO_QUALITY.md): a 64x4 field, 24,000 steps at lr 5e-3 (cosine).
        # Issue 25 moved batch 1024 -> 256 (a step costs 0.22x), t uniform -> density 3t^2
        # (time_power 3) and EMA 0.999 -> 0.998: checkerboard reaches 3.70 nats in 5,000-5,500
        # steps (three seeds; 5,750-6,500 at batch 1024) and ends lower (3.561-3.572 against
        # 3.574 / 3.579); against density 2t, over three seeds on all four datasets
        # (TIME_TO_QUALITY.md, section 6): checkerboard -0.008 +- 0.004 (SE) nats, pinwheel
        # and spiral within their seed spread, the mixture +0.002 +- 0.001
        dict(
            steps=24_000,
            width=64,
            depth=4,
            batch_size=256,
            lr=5e-3,
            ema_decay=0.998,
            time_power=3.0,
            eval_every=1000,
        ),
        objective=lambda hp: flowlab.FlowMatching(
            sigma_min=hp.get("sigma_min", 0.0), time_power=hp.get("time_power", 1.0)
        ),
        loss_label="flow-matching loss",
        text=(
            "a continuous normalising flow (CNF) [@grathwohl2019]: an MLP vector field transports "
            "N(0, I) to the data along an ODE; it is trained by conditional flow matching "
            "[@lipman2023], a simulation-free regression of the field onto the velocity of "
            "straight paths from noise to data. Its exact log-density follows from the "
            "instantaneous change of variables, integrated with an adaptive solver and the exact "
            "Jacobian trace; sampling solves the same ODE"
        ),
        rows={"cnf_fm": Row("CNF (flow matching)")},
        # 1.24x per run at R = 3, 1.15x at 12, 0.99x at 36 (benchmarks/batched.py, CPU)
        batched_on_cpu=True,
    ),
    "cnf_mle": Family(
        "cnf_mle",
        "CNF (max. likelihood)",
        dict(
            steps=1_200, width=64, depth=3, batch_size=512, lr=3e-3, ema_decay=0.99, eval_every=200
        ),
        objective=lambda hp: flowlab.MaximumLikelihood(),
        loss_label="NLL (nats)",
        text=(
            "a continuous normalising flow [@grathwohl2019] trained by maximum likelihood: the "
            "exact log-density of each training point (adaptive ODE solve with the exact trace) "
            "is maximised by back-propagating through the solver; sampling solves the same ODE"
        ),
        rows={"cnf_mle": Row("CNF (max. likelihood)")},
        # its adaptive solves batch into one while loop that runs as long as the slowest
        # run's: 0.81x of one run after another at R = 3 (benchmarks/batched.py)
        batched=False,
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
        objective=_denoising,
        loss_label="denoising score-matching loss",
        text=(
            "a variance-preserving diffusion model [@song2021sde]: an MLP predicts the noise of "
            "the forward SDE at every noise level (denoising score matching); samples and the "
            "exact log-density come from the probability-flow ODE, solved adaptively"
        ),
        rows={
            "diffusion_sde": Row("VP diffusion, reverse SDE", samplers.factory("sde", "sde_steps")),
            "diffusion_ode": Row("VP diffusion, PF-ODE"),
        },
    ),
    "ddpm": Family(
        "ddpm",
        "DDPM (simple loss)",
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
        objective=_denoising,
        loss_label="L_simple (noise-prediction MSE)",
        text=(
            "a discrete-time DDPM [@ho2020] with T = 1000 linear β steps (10⁻⁴ to 0.02): an MLP "
            "ε-predictor trained with L_simple, sampled ancestrally through all T steps. Its "
            "likelihood is the variational bound of Ho et al. (eq. 5), evaluated by Monte Carlo: "
            "an upper bound on the NLL, not the NLL"
        ),
        rows={"ddpm": Row("DDPM (ancestral)")},
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
        objective=lambda hp: flowlab.SingleNoiseDSM(k=hp.get("k", 1)),
        loss_label="denoising score-matching loss",
        text=(
            "a single-noise-level denoising score-matching model: an MLP score at one noise level "
            "σ, sampled with annealed Langevin dynamics; it has no likelihood, so it is judged by "
            "its samples only"
        ),
        rows={"dsm": Row("single-noise DSM (Langevin)")},
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
        objective=lambda hp: flowlab.NonSaturatingGAN(r1=hp.get("r1", 0.0)),
        loss_label="players' losses",
        text=(
            "a generative adversarial network [@goodfellow2014] with the non-saturating generator "
            "loss; it has no likelihood, so it is judged by its samples only"
        ),
        rows={"gan": Row("GAN")},
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
        objective=lambda hp: flowlab.NegativeELBO(num_samples=hp.get("num_samples", 1)),
        loss_label="negative ELBO (nats)",
        text=(
            "a variational autoencoder [@kingma2014] with Gaussian encoder and decoder, trained "
            "on the negative ELBO; its bound is reported with the importance-weighted bound "
            "[@burda2016], and for a latent of dimension at most two its exact marginal "
            "likelihood is computed by quadrature"
        ),
        rows={"vae": Row("VAE (decoder noise)")},
        smoke=dict(quadrature_size=64),
        # the NLL tracked during training and the density figure on half the quadrature
        # grid per axis, as the script's track_ and density_quadrature_size (tested); the
        # reported hold-out NLL keeps the full grid
        coarse_log_prob=lambda model: {"size": 2 * max(1, model.quadrature_size // 4)},
        # Measured on pinwheel, seed 0: exact hold-out NLL 0.301 (true entropy -0.092),
        # -IWAE(5000) 0.303, -ELBO 0.535; 233 s of CPU time on two (heavily shared) cores.
        script=dict(
            quadrature_tol=5e-3,  # double the grid until the mean estimated error is below
            quadrature_max_size=2048,
            track_quadrature_size=256,  # the exact NLL tracked during training (coarser)
            elbo_samples=100,
            iwae_ks=[1, 10, 100, 1000, 5000],
            density_quadrature_size=256,
            density_grid=120,
        ),
        script_smoke=dict(
            quadrature_max_size=128,
            track_quadrature_size=32,
            elbo_samples=10,
            iwae_ks=[1, 10, 100],
            density_quadrature_size=32,
            density_grid=30,
        ),
    ),
    "ebm": Family(
        "ebm",
        "EBM (contrastive divergence)",
        dict(
            _EBM_MODEL,
            steps=6000,
            eval_every=500,
            langevin_steps=20,
            step_size=5e-3,
            alpha=0.1,
            buffer_size=10_000,
            reinit_prob=0.05,
            holdout_steps=200,
        ),
        objective=_contrastive_divergence,
        loss_label="contrastive-divergence loss",
        text=(
            "an energy-based model [@du2019] trained by persistent contrastive divergence with "
            "Langevin negatives and the stabilisers of Song and Kingma [@song2021ebm]; in two "
            "dimensions its normalising constant is computed by quadrature, so its likelihood is "
            "exact"
        ),
        rows={"ebm": Row("EBM (Langevin)")},
        smoke=_EBM_SMOKE,
        data_hp=_ebm_box,
        script=_EBM_SCRIPT,
        script_smoke=dict(sample_steps=50),
    ),
    "ebm_dsm": Family(
        "ebm_dsm",
        "EBM (denoising score matching)",
        dict(_EBM_MODEL, steps=4000, eval_every=500, sigma=0.1, k=4, dsm_alpha=1e-3),
        objective=lambda hp: flowlab.EnergyDSM(sigma=hp["sigma"], k=hp["k"], alpha=hp["dsm_alpha"]),
        loss_label="DSM loss (residual form)",
        data_hp=_ebm_box,
        script=_EBM_SCRIPT,
        script_smoke=dict(sample_steps=50),
    ),
}
"""Every family, in a fixed order (a grid's training keys fold in the position here)."""

ALIASES = {"ebm_cd": "ebm"}
"""Other names a run records for a family (the EBM script's ``ebm_cd``)."""

# The comparison's table rows, in its order: each a family sampled one way.
ROW_ORDER = ("cnf_mle", "cnf_fm", "diffusion", "ddpm", "dsm", "vae", "ebm", "gan")
ROWS: dict[str, tuple[str, Callable[[dict], Any] | None]] = {
    row: (fam, spec.sampler) for fam in ROW_ORDER for row, spec in FAMILIES[fam].rows.items()
}
"""Row name -> (trained family, sampler factory or ``None``)."""
ORACLE_LABEL = "oracle (true samples)"
LABELS: dict[str, str] = {
    **{name: fam.label for name, fam in FAMILIES.items()},
    **{row: spec.label for fam in FAMILIES.values() for row, spec in fam.rows.items()},
    "oracle": ORACLE_LABEL,
}
"""Display label of every family, row and the oracle (a row's label wins over its
family's where both share a name)."""


def family(name: str) -> Family:
    """The family called ``name`` (or one of its :data:`ALIASES`), or a ``ValueError``
    listing the valid ones."""
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def script_defaults(name: str, *, smoke: bool) -> dict:
    """The hyperparameters a single-family script starts from: the family's defaults and its
    script's evaluation settings, with the smoke budgets on top for ``smoke``."""
    fam = family(name)
    hp = {**fam.defaults, **fam.script}
    if smoke:  # only what the family has (the EBM's CD budgets do not apply to its DSM)
        hp.update({k: v for k, v in {**SMOKE, **fam.smoke, **fam.script_smoke}.items() if k in hp})
    return hp


def coarse_log_prob(name: str, model) -> dict:
    """Keyword arguments of ``model.log_prob`` (a model of family ``name``) for the tracked
    hold-out NLL and the density figure (:attr:`Family.coarse_log_prob`; ``{}``: its own)."""
    fam = FAMILIES.get(ALIASES.get(name, name))
    if fam is None or fam.coarse_log_prob is None:
        return {}
    return fam.coarse_log_prob(model)


def build_model(hp: dict):
    """The model of a run from its hyperparameters (``hp["family"]`` picks the family; the
    weights are drawn from ``hp["seed"]``): the library's standard construction."""
    return flowlab.build_model(hp)


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
