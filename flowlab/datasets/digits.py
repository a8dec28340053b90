r"""Handwritten digits (scikit-learn's copy of the UCI 8x8 digits) as a flowlab dataset.

1,797 greyscale images of $8 \times 8 = 64$ pixels, each pixel an integer level
$x_i \in \{0, \dots, 16\}$ (17 levels), with labels 0-9. scikit-learn ships them (no
download); it is an optional extra, ``pip install flowlab[digits]``, and only its data
loader is used.

**The fixed split.** :func:`split_digits` permutes the 1,797 images with
``jax.random.permutation(jax.random.key(0), 1797)`` and takes the first 1,257 for training,
the next 180 for validation and the last 360 for test (:data:`SPLIT_SIZES`): the same
images on every machine.

**From integers to a density.** A continuous model cannot put mass on integers, so the
images are *dequantised* and *pre-transformed*:

1. uniform dequantisation: $v = (x + u)/17$, $u \sim U[0, 1)^D$, so $v \in [0, 1)^D$ and
   each integer image owns the cell $[x/17, (x+1)/17)$ of volume $17^{-D}$
   (:func:`dequantize`);
2. the logit pre-transform $y = \operatorname{logit}(\alpha + (1 - 2\alpha) v)$
   (:class:`LogitTransform`, $\alpha = 0.05$), so that $y$ lives on $\mathbb{R}^D$;
   its log-determinant $\log\lvert\det \partial y/\partial v\rvert
   = \sum_i \log\frac{1-2\alpha}{s_i(1 - s_i)}$, $s = \alpha + (1-2\alpha)v$, is counted.

The models are trained on $y$ and report $\log p_Y(y)$. **Bits per dimension** of the
discrete images (:func:`bits_per_dim`) are

$$\text{bpd}(x) = \frac{-\log p_Y(y) - \log\lvert\det \partial y/\partial v\rvert
  + D \log 17}{D \ln 2}, \qquad D = 64,$$

since $p_V(v) = p_Y(y)\,\lvert\det \partial y/\partial v\rvert$ and the discrete model
$P(x) = \int_{\text{cell}(x)} p_V = 17^{-D}\,\mathbb{E}_u\, p_V((x+u)/17)$. By Jensen's
inequality $-\log_2 P(x) \le \mathbb{E}_u[\text{bpd}]\cdot D$: the bits/dim of a
dequantised model, averaged over the dequantisation noise, is an **upper bound** on the
discrete negative log-likelihood in bits/dim (Theis et al. 2016), and one draw of $u$ per
test image is an unbiased estimate of that bound. A uniform density on $[0, 1)^D$ scores
exactly $\log_2 17 = 4.087$ bits/dim.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_count, check_key
from .._typing import Key, Points, Values

__all__ = [
    "DIGITS_SIZE",
    "LEVELS",
    "SPLIT_SIZES",
    "DigitsSplit",
    "LogitTransform",
    "bits_per_dim",
    "dequantize",
    "load_digits",
    "split_digits",
    "to_images",
]

LEVELS = 17
"""Grey levels per pixel: the integers 0-16."""
DIGITS_SIZE = 64
"""Pixels per image (8 x 8): the data dimension D."""
SPLIT_SIZES = (1257, 180, 360)
"""Images in the training, validation and test sets of :func:`split_digits`."""
SPLIT_SEED = 0
"""Seed of the key that permutes the images before the split."""


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "flowlab.datasets.digits needs scikit-learn (the digits ship inside it): install "
            "the optional extra with `pip install flowlab[digits]` (scikit-learn>=1.3)"
        ) from None
    bunch = sk_load_digits()
    images = np.asarray(bunch.data, np.int32)
    labels = np.asarray(bunch.target, np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: ``(images, labels)``, ``images`` of shape ``(1797, 64)`` (int32
    levels 0-16, rows of the 8x8 image in order), ``labels`` of shape ``(1797,)`` (0-9).

    Raises:
        ImportError: scikit-learn is not installed (it names the ``digits`` extra).
    """
    return _load()


@dataclasses.dataclass(frozen=True)
class DigitsSplit:
    """The fixed training / validation / test split of the digits (integer levels 0-16).

    Attributes:
        train, validation, test: images of shape ``(n, 64)``, int32.
        train_labels, validation_labels, test_labels: labels 0-9 of shape ``(n,)``, int32.
    """

    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def split_digits() -> DigitsSplit:
    """The fixed split of :data:`SPLIT_SIZES` (1,257 / 180 / 360 images), permuted by
    ``jax.random.key(SPLIT_SEED)``: the same on every call and machine."""
    images, labels = load_digits()
    perm = np.asarray(jax.random.permutation(jax.random.key(SPLIT_SEED), images.shape[0]))
    n_train, n_val, _ = SPLIT_SIZES
    parts = np.split(perm, [n_train, n_train + n_val])
    return DigitsSplit(
        images[parts[0]],
        labels[parts[0]],
        images[parts[1]],
        labels[parts[1]],
        images[parts[2]],
        labels[parts[2]],
    )


def _check_images(images, name: str = "images") -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != DIGITS_SIZE:
        raise ValueError(f"expected {name} of shape (n, {DIGITS_SIZE}), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
            raise ValueError(f"expected {name} to hold integer levels 0-16, got non-integers")
    if x.min() < 0 or x.max() > LEVELS - 1:
        raise ValueError(
            f"expected {name} to hold integer levels 0-{LEVELS - 1}, got values in "
            f"[{x.min()}, {x.max()}]"
        )
    return x.astype(np.int32)


def dequantize(images, key: Key, copies: int = 1) -> Points:
    r"""Uniform dequantisation $v = (x + u)/17$, $u \sim U[0, 1)^D$, of integer images.

    Arguments:
        images: integer levels 0-16, shape ``(n, 64)``.
        key: PRNG key of the noise $u$.
        copies: independent noise draws per image; the result stacks them,
            ``(copies * n, 64)`` (copy ``c`` of image ``i`` is row ``c * n + i``).

    Returns:
        $v \in [0, 1)^{64}$ rows, float32.
    """
    check_key(key)
    copies = check_count(copies, "copies")
    x = jnp.asarray(_check_images(images), jnp.float32)
    u = jax.random.uniform(key, (copies, *x.shape), jnp.float32)
    v = (x[None] + u) / LEVELS
    return v.reshape(-1, DIGITS_SIZE)


class LogitTransform(eqx.Module):
    r"""The pre-transform $y = \operatorname{logit}(\alpha + (1-2\alpha)v)$ from
    $v \in [0, 1]^D$ to $\mathbb{R}^D$, with its log-determinant.

    $$\log\Big\lvert\det\frac{\partial y}{\partial v}\Big\rvert
      = \sum_i \big[\log(1 - 2\alpha) - \log s_i - \log(1 - s_i)\big],
      \qquad s = \alpha + (1 - 2\alpha) v .$$

    Arguments:
        alpha: the squeeze $\alpha \in (0, 1/2)$ keeping $s$ away from 0 and 1
            (default 0.05, RealNVP's choice).
    """

    alpha: float = eqx.field(static=True, default=0.05)

    def __check_init__(self):
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"expected alpha in (0, 0.5), got {self.alpha!r}")

    def forward(self, v: Points) -> tuple[Points, Values]:
        """``(y, log_det)``: the transformed rows and $\\log|\\det \\partial y/\\partial v|$
        of each row, shape ``(n,)``."""
        s = self.alpha + (1.0 - 2.0 * self.alpha) * v
        y = jnp.log(s) - jnp.log1p(-s)
        log_det = jnp.sum(math.log(1.0 - 2.0 * self.alpha) - jnp.log(s) - jnp.log1p(-s), -1)
        return y, log_det

    def inverse(self, y: Points) -> Points:
        """$v = (\\sigma(y) - \\alpha)/(1 - 2\\alpha)$ (may fall slightly outside
        ``[0, 1]`` for a model's samples)."""
        return (jax.nn.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)

    def log_det(self, v: Points) -> Values:
        """$\\log|\\det \\partial y/\\partial v|$ of each row of ``v``."""
        return self.forward(v)[1]


def bits_per_dim(log_prob_y, log_det, dim: int = DIGITS_SIZE, levels: int = LEVELS) -> np.ndarray:
    r"""Bits per dimension of discrete images from a density on the pre-transformed $y$:
    $(-\log p_Y(y) - \log|\det\partial y/\partial v| + D\log L)/(D\ln 2)$, $L$ = ``levels``.

    With $v$ the dequantised image, this is an upper bound on $-\log_2 P(x)/D$ in
    expectation over the dequantisation noise (see the module docstring).

    Arguments:
        log_prob_y: $\log p_Y(y)$ in nats, shape ``(n,)``.
        log_det: $\log|\det \partial y/\partial v|$, shape ``(n,)``.
        dim, levels: $D$ and $L$.

    Returns:
        float64 array of shape ``(n,)``.
    """
    lp = np.asarray(log_prob_y, np.float64)
    ld = np.asarray(log_det, np.float64)
    if lp.shape != ld.shape or lp.ndim != 1:
        raise ValueError(
            f"expected log_prob_y and log_det of the same shape (n,), got {lp.shape} and {ld.shape}"
        )
    return (-lp - ld + dim * math.log(levels)) / (dim * math.log(2.0))


def to_images(v, clip: bool = True) -> np.ndarray:
    """Rows of $v$ (or of integer levels divided by 17) as ``(n, 8, 8)`` grey levels in
    ``[0, 16]`` for display: ``17 v - 0.5``, clipped."""
    x = np.asarray(v, np.float64) * LEVELS - 0.5
    if clip:
        x = np.clip(x, 0.0, LEVELS - 1)
    return x.reshape(-1, 8, 8)
