r"""Two-dimensional toy distributions: key-based samplers, exact log-densities and entropies.

Every dataset is a distribution on $\mathbb{R}^2$ with a pure-JAX sampler
(``sample(name, key, n)``, or the function of the same name): the same key gives the same
points (drawn in ``float32``, returned in JAX's default float dtype: ``float64`` under
``jax_enable_x64``), and every point is an i.i.d. draw. Where the reference code used a
``linspace`` or fixed class counts we draw i.i.d. instead, so that a training set and a
hold-out set (``split``) are independent samples of one distribution. Each sampler's
docstring gives its definition.

Densities (``log_prob``) and entropies (``entropy``, ``entropy_with_error``) are *reference
numbers*, computed on the host in ``float64`` with NumPy/SciPy: in closed form where one
exists, otherwise by quadrature whose error is far below anything a model can reach
(``entropy_with_error`` reports it).

Three families: the course's ``COURSE_NAMES``; FFJORD's toy set (Grathwohl et al. 2019,
``lib/toy_data.py``) as ``FFJORD_NAMES``, prefixed ``ffjord_`` so that the two pinwheels
cannot be confused; and the generators of torchcfm and of the papers built on it (Tong et
al. 2024, TMLR and AISTATS; Cheng & Schwing 2025, C2OT, whose ``playground_utils.py`` copies
torchcfm's ``sample_8gaussians`` and ``sample_moons`` unchanged) as ``TORCHCFM_NAMES``, with
their scalings and quirks (see each sampler). ``NAMES`` holds all three.

| name | ``log_prob`` | ``entropy`` (nats) |
|---|---|---|
| ``spiral`` | 1-D quadrature | 2-D grid |
| ``pinwheel`` | closed form (polar) | $H(q) - 1$, periodic 1-D rule |
| ``checkerboard``, ``ffjord_checkerboard`` | closed form ($1/32$) | $\log 32$ exactly |
| ``gaussian_mixture``, ``ffjord_8gaussians``, ``torchcfm_8gaussians`` | closed form | 2-D grid |
| ``ffjord_moons``, ``ffjord_swissroll``, ``torchcfm_scurve`` | 1-D quadrature | 2-D grid |
| ``torchcfm_moons`` | closed form (preimages) | not available |
| ``ffjord_circles``, ``ffjord_rings`` | closed form (Bessel $I_0$) | 1-D radial rule |
| ``ffjord_pinwheel``, ``ffjord_2spirals`` | not available | not available |

Methods. *1-D quadrature*: $p(x) = \int \mathcal{N}(x; c(t), \sigma^2 I)\,dt$ by composite
8-point Gauss--Legendre in $t$ on panels of about 2 std of arc length, refined at tight bends
and the curve's ends (about 10 correct digits of $\log p$). *2-D grid*: the trapezoid rule for
$-p\log p$ on a grid of step $\sigma/6$ over the support plus $9\sigma$, checked to integrate
$p$ to 1. *Pinwheel*: with $\varphi = \operatorname{atan2}(x_1, x_2)$ and $r = |x| < 1$,
$p(x) = q(\varphi - 4r)/r$ with
$q(\psi) = \frac13\sum_{j}\sum_{k\in\mathbb{Z}}\mathcal{N}(\psi + 2\pi k; 4j, 0.2^2)$, so
$H = H(q) + E[\log R] = H(q) - 1$. *Radial*: $-\int_0^\infty p \log p\ 2\pi r\,dr$ by
composite Gauss--Legendre.

Beyond the plane: :mod:`flowlab.datasets.digits` (the 8x8 handwritten digits, 64
dimensions, bits/dim; scikit-learn as the optional ``digits`` extra, imported on first use)
and :mod:`flowlab.datasets.labelled` (the mixture's components and the pinwheel's arms as
labels, for conditional generation).

``gaussian_mixture_params`` returns the means, std and weights of the three mixtures, enough for
their exact scores. Importing this package does no work beyond defining functions (SciPy is
imported on first use, nothing is compiled).
"""

from . import digits as digits
from . import labelled as labelled
from ._generators import checkerboard as checkerboard
from ._generators import ffjord_2spirals as ffjord_2spirals
from ._generators import ffjord_8gaussians as ffjord_8gaussians
from ._generators import ffjord_checkerboard as ffjord_checkerboard
from ._generators import ffjord_circles as ffjord_circles
from ._generators import ffjord_moons as ffjord_moons
from ._generators import ffjord_pinwheel as ffjord_pinwheel
from ._generators import ffjord_rings as ffjord_rings
from ._generators import ffjord_swissroll as ffjord_swissroll
from ._generators import gaussian_mixture as gaussian_mixture
from ._generators import pinwheel as pinwheel
from ._generators import spiral as spiral
from ._generators import torchcfm_8gaussians as torchcfm_8gaussians
from ._generators import torchcfm_moons as torchcfm_moons
from ._generators import torchcfm_scurve as torchcfm_scurve
from ._params import COURSE_NAMES as COURSE_NAMES
from ._params import FFJORD_NAMES as FFJORD_NAMES
from ._params import NAMES as NAMES
from ._params import TORCHCFM_NAMES as TORCHCFM_NAMES
from ._params import gaussian_mixture_params as gaussian_mixture_params
from ._registry import entropy as entropy
from ._registry import entropy_with_error as entropy_with_error
from ._registry import has_entropy as has_entropy
from ._registry import has_log_prob as has_log_prob
from ._registry import log_prob as log_prob
from ._registry import sample as sample
from ._registry import split as split

__all__ = [
    "COURSE_NAMES",
    "FFJORD_NAMES",
    "NAMES",
    "TORCHCFM_NAMES",
    "checkerboard",
    "digits",
    "labelled",
    "entropy",
    "entropy_with_error",
    "ffjord_2spirals",
    "ffjord_8gaussians",
    "ffjord_checkerboard",
    "ffjord_circles",
    "ffjord_moons",
    "ffjord_pinwheel",
    "ffjord_rings",
    "ffjord_swissroll",
    "gaussian_mixture",
    "gaussian_mixture_params",
    "has_entropy",
    "has_log_prob",
    "log_prob",
    "pinwheel",
    "sample",
    "spiral",
    "split",
    "torchcfm_8gaussians",
    "torchcfm_moons",
    "torchcfm_scurve",
]
