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
NAMES: tuple[str, ...] = COURSE_NAMES + FFJORD_NAMES
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


def check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(NAMES)}")


def mixture_means(name: str) -> np.ndarray:
    if name == "gaussian_mixture":
        angles = TWO_PI * np.arange(MIXTURE_K) / MIXTURE_K
        return MIXTURE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return 4.0 * EIGHT_DIRECTIONS / FFJORD_SCALE


def gaussian_mixture_params(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    r"""Means, standard deviation and weights of an isotropic Gaussian mixture dataset.

    $p(x) = \sum_k w_k \, \mathcal{N}(x; \mu_k, \sigma^2 I)$, enough to build the exact score
    $\nabla_x \log p(x)$ of ``gaussian_mixture`` or ``ffjord_8gaussians`` (the only two
    accepted names). Returns ``(means, std, weights)``: new ``float64`` arrays of shapes
    ``(K, 2)`` and ``(K,)``, and a float.
    """
    check_name(name)
    if name not in ("gaussian_mixture", "ffjord_8gaussians"):
        raise ValueError(
            f"gaussian_mixture_params expects 'gaussian_mixture' or 'ffjord_8gaussians', "
            f"got {name!r}"
        )
    means = mixture_means(name)
    std = MIXTURE_STD if name == "gaussian_mixture" else 0.5 / FFJORD_SCALE
    return means, std, np.full(len(means), 1.0 / len(means))
