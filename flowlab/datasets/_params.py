"""Names, the parameters of the definitions (shared by samplers and densities), input checks."""

from __future__ import annotations

import math

import numpy as np

COURSE_NAMES: tuple[str, ...] = ("spiral", "pinwheel", "checkerboard", "gaussian_mixture")
"""The four datasets of the course, in its order."""
FFJORD_NAMES: tuple[str, ...] = (
    "ffjord_8gaussians",
    "ffjord_pinwheel",
    "ffjord_2spirals",
    "ffjord_moons",
    "ffjord_circles",
    "ffjord_rings",
    "ffjord_swissroll",
    "ffjord_checkerboard",
)
"""FFJORD's toy datasets, prefixed ``ffjord_``."""
TORCHCFM_NAMES: tuple[str, ...] = ("torchcfm_8gaussians", "torchcfm_moons", "torchcfm_scurve")
"""The toy generators of torchcfm (Tong et al. 2024) and C2OT (Cheng & Schwing 2025, whose
``playground_utils.py`` copies torchcfm's), prefixed ``torchcfm_``."""
NAMES: tuple[str, ...] = COURSE_NAMES + FFJORD_NAMES + TORCHCFM_NAMES
"""Every valid dataset name."""

TWO_PI = 2.0 * math.pi

SPIRAL_THETA_MAX = 6.0 * math.pi
SPIRAL_RATE = 0.05
SPIRAL_STD = 0.04

PINWHEEL_ARMS = 3
PINWHEEL_RATE = 4.0
PINWHEEL_STD = 0.2

MIXTURE_K = 7
MIXTURE_RADIUS = 1.2
MIXTURE_STD = 0.12

FFJORD_SCALE = 1.414  # FFJORD divides by this literal, not by sqrt(2)
_S = 1.0 / math.sqrt(2.0)
EIGHT_DIRECTIONS = np.array(
    [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (_S, _S), (_S, -_S), (-_S, _S), (-_S, -_S)]
)

CIRCLES_RADII = (1.0, 0.5)  # before the final * 3
CIRCLES_NOISE = 0.08  # before the final * 3
RINGS_RADII = (1.0, 0.75, 0.5, 0.25)  # times 3
RINGS_NOISE = 0.08  # after the * 3
MOONS_NOISE = 0.1  # before the final * 2
SWISSROLL_NOISE = 1.0  # before the final / 5

CHECKERBOARD_LOG_DENSITY = -math.log(32.0)

# torchcfm: sample_8gaussians = eight_normal_sample(scale=5, var=0.1), whose
# MultivariateNormal gets sqrt(var) * I as its *covariance*: std = 0.1 ** (1 / 4).
TORCHCFM_8G_SCALE = 5.0
TORCHCFM_8G_STD = 0.1**0.25
# torchcfm: sample_moons = torchdyn generate_moons(noise=0.2) * 3 - 1; torchdyn adds
# rand(n, 1) * noise: one U(0, 0.2) draw added to *both* coordinates.
TORCHCFM_MOONS_NOISE = 0.2
TORCHCFM_MOONS_SCALE = 3.0
TORCHCFM_MOONS_SHIFT = -1.0
# Tong et al.'s runner (SKLearnDataModule "scurve"): make_s_curve(noise=0.05)[:, [0, 2]] * 1.5
TORCHCFM_SCURVE_NOISE = 0.05
TORCHCFM_SCURVE_SCALE = 1.5


def check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(NAMES)}")


def mixture_means(name: str) -> np.ndarray:
    if name == "gaussian_mixture":
        angles = TWO_PI * np.arange(MIXTURE_K) / MIXTURE_K
        return MIXTURE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    if name == "torchcfm_8gaussians":
        return TORCHCFM_8G_SCALE * EIGHT_DIRECTIONS
    return 4.0 * EIGHT_DIRECTIONS / FFJORD_SCALE


MIXTURE_NAMES: tuple[str, ...] = ("gaussian_mixture", "ffjord_8gaussians", "torchcfm_8gaussians")
"""The isotropic Gaussian mixtures (``gaussian_mixture_params`` accepts these)."""


def mixture_std(name: str) -> float:
    return {
        "gaussian_mixture": MIXTURE_STD,
        "ffjord_8gaussians": 0.5 / FFJORD_SCALE,
        "torchcfm_8gaussians": TORCHCFM_8G_STD,
    }[name]


def gaussian_mixture_params(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    r"""Means, standard deviation and weights of an isotropic Gaussian mixture dataset.

    $p(x) = \sum_k w_k \, \mathcal{N}(x; \mu_k, \sigma^2 I)$, enough to build the exact score
    $\nabla_x \log p(x)$ of ``gaussian_mixture``, ``ffjord_8gaussians`` or
    ``torchcfm_8gaussians`` (the only accepted names). Returns ``(means, std, weights)``:
    new ``float64`` arrays of shapes ``(K, 2)`` and ``(K,)``, and a float.
    """
    check_name(name)
    if name not in MIXTURE_NAMES:
        raise ValueError(
            f"gaussian_mixture_params expects one of {', '.join(MIXTURE_NAMES)}, got {name!r}"
        )
    means = mixture_means(name)
    return means, mixture_std(name), np.full(len(means), 1.0 / len(means))
