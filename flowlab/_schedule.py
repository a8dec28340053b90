r"""The linear $\beta$ noise schedule shared by the VP and sub-VP SDEs and DDPM.

Continuous time (Song et al. 2021): $\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})$
on $t \in [0, 1]$, with $B(t) = \int_0^t \beta = \beta_{\min} t +
\tfrac12(\beta_{\max} - \beta_{\min}) t^2$. Discrete time (Ho et al. 2020): $T$ steps with
$\beta_i$ linear from $\beta_{\min}/T$ to $\beta_{\max}/T$ ($10^{-4}$ to $0.02$ for the
defaults and $T = 1000$, Ho et al.'s values), whose continuous limit is the same $\beta(t)$.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ._typing import Array, Time

__all__ = ["LinearBetaSchedule"]


class LinearBetaSchedule(eqx.Module):
    r"""$\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})$ and its discretisation.

    Arguments:
        beta_min, beta_max: $0 < \beta_{\min} < \beta_{\max}$ (defaults 0.1 and 20).
    """

    beta_min: float = eqx.field(static=True, default=0.1)
    beta_max: float = eqx.field(static=True, default=20.0)

    def __check_init__(self):
        if not (0.0 < self.beta_min < self.beta_max):
            raise ValueError(
                f"expected 0 < beta_min < beta_max, got beta_min={self.beta_min}, "
                f"beta_max={self.beta_max}"
            )

    def beta(self, t: Time) -> Array:
        r"""$\beta(t)$."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated(self, t: Time) -> Array:
        r"""$B(t) = \int_0^t \beta(s)\,ds$."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def discrete(self, num_steps: int) -> np.ndarray:
        r"""The $T$ = ``num_steps`` DDPM variances $\beta_1, \dots, \beta_T$ (float64),
        linear from $\beta_{\min}/T$ to $\beta_{\max}/T$."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
            raise ValueError(f"expected num_steps to be an integer >= 2, got {num_steps!r}")
        betas = np.linspace(self.beta_min, self.beta_max, num_steps) / num_steps
        if betas[-1] >= 1.0:
            raise ValueError(
                f"beta_max / num_steps = {betas[-1]:.3g} must be below 1; use more steps"
            )
        return betas
