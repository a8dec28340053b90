r"""The closed forms of the sampler study on the course Gaussian mixture.

* :class:`ExactMixtureNoise` and :class:`Mixture`: the noise predictor
  $\mathbb{E}[\varepsilon \mid z_t]$ of an isotropic Gaussian mixture, exact at every noise
  level, so a sampler run with it shows only its discretisation error;
* a single Gaussian component as target: every sampler in :data:`SAMPLERS` is an affine map
  plus Gaussian noise, so its output is Gaussian, with moments
  :func:`gaussian_sampler_moments` and limits :func:`gaussian_limits`, and
  $\mathrm{KL}(q\,\|\,p)$ is :func:`gaussian_kl`, with no Monte Carlo error at all;
* deterministic DDIM ($\eta = 0$) on any target: its output density follows from the change
  of variables through its steps (:func:`ddim_log_density`).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import flowlab
from flowlab import datasets
from flowlab.samplers import DDIM

from .. import samplers as vocabulary

# -- the exact noise predictor of the course Gaussian mixture -----------------------------


class ExactMixtureNoise(eqx.Module):
    r"""$\mathbb{E}[\varepsilon \mid z_t]$ for standardised data from an isotropic Gaussian
    mixture $\sum_k w_k \mathcal{N}(\mu_k, s^2 I)$ under the kernel
    $z_t = a z_0 + \sigma\varepsilon$: the marginal is
    $\sum_k w_k\mathcal{N}(a\mu_k, (a^2 s^2 + \sigma^2) I)$ and
    $\hat\varepsilon = -\sigma\nabla\log p_t$. ``marginal(t) -> (a, sigma)`` is the
    model's own kernel."""

    marginal: callable
    means: jax.Array
    std: float
    log_weights: jax.Array
    data_size: int = eqx.field(static=True, default=2)

    def __call__(self, t, z):
        a, s = self.marginal(t)
        var = a**2 * self.std**2 + s**2
        diff = z - a * self.means
        resp = jax.nn.softmax(self.log_weights - 0.5 * jnp.sum(diff**2, -1) / var)
        return s * jnp.sum(resp[:, None] * diff, axis=0) / var


@dataclasses.dataclass(frozen=True)
class Mixture:
    """An isotropic Gaussian mixture in standardised coordinates and its standardisation."""

    means: np.ndarray  # (K, 2), standardised
    std: float  # standardised
    weights: np.ndarray  # (K,)
    standardize: flowlab.Standardize

    @classmethod
    def course(cls, components: list[int] | None = None) -> Mixture:
        """The course Gaussian mixture (or some of its components, reweighted), standardised
        by its exact mean and the root mean per-axis variance."""
        means, std, weights = datasets.gaussian_mixture_params("gaussian_mixture")
        means, weights = np.asarray(means, np.float64), np.asarray(weights, np.float64)
        if components is not None:
            means, weights = means[components], weights[components] / weights[components].sum()
        full_means, _, full_w = datasets.gaussian_mixture_params("gaussian_mixture")
        mix_mean = np.asarray(full_w) @ np.asarray(full_means)
        scale = float(np.sqrt(np.mean(np.var(np.asarray(full_means), axis=0) + std**2)))
        standardize = flowlab.Standardize(
            jnp.asarray(mix_mean, jnp.float32), jnp.full(2, scale, jnp.float32)
        )
        return cls((means - mix_mean) / scale, std / scale, weights, standardize)

    def model(self, sde=None) -> flowlab.Diffusion:
        """A VP diffusion whose noise predictor is the exact one of this mixture."""
        sde = flowlab.VPSDE() if sde is None else sde
        net = ExactMixtureNoise(
            lambda t: (sde.marginal_mean_coeff(t), sde.marginal_std(t)),
            jnp.asarray(self.means, jnp.float32),
            float(self.std),
            jnp.log(jnp.asarray(self.weights, jnp.float32)),
        )
        return flowlab.Diffusion(net, sde, standardize=self.standardize)


# -- closed form: a Gaussian target ----------------------------------------------------------

SAMPLERS = ("ddpm", "ddim", "sde", "ode_euler")
"""The study's fixed-step samplers (names of the vocabulary :mod:`lab.samplers`)."""
SAMPLER_LABELS = {name: vocabulary.label(name) for name in (*SAMPLERS, "ode_adaptive")}


def _vp(sde, t):
    b = sde.beta_min * t + 0.5 * (sde.beta_max - sde.beta_min) * t**2
    return (
        math.exp(-0.5 * b),
        math.sqrt(-math.expm1(-b)),
        sde.beta_min + t * (sde.beta_max - sde.beta_min),
    )


def gaussian_sampler_moments(sampler: str, steps: int, mean, var: float, sde=None):
    r"""Mean and per-axis variance of what ``sampler`` (one of :data:`SAMPLERS`) returns
    after ``steps`` uniform steps from $t = 1$ to $\epsilon$ on a VP diffusion whose noise
    predictor is the exact one of $\mathcal{N}(m, v I)$ (standardised coordinates), started
    from the prior $\mathcal{N}(0, I)$, in float64.

    Every step is $z \mapsto A z + b + c\,\xi$ with $\hat\varepsilon = k(z - a_t m)$,
    $k = \sigma_t/(a_t^2 v + \sigma_t^2)$; like the library samplers, the last step returns
    its noise-free mean. Returns ``(mean (d,), variance)``."""
    sde = flowlab.VPSDE() if sde is None else sde
    m = np.asarray(mean, np.float64)
    mu, v = np.zeros_like(m), 1.0
    ts = np.linspace(1.0, sde.eps, steps + 1)
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        a_t, sig_t, beta_t = _vp(sde, t)
        a_s, sig_s, _ = _vp(sde, s)
        k = sig_t / (a_t**2 * var + sig_t**2)
        # eps_hat = k z - k a_t m ;  x0_hat = (z - sig_t eps_hat) / a_t
        e_z, e_1 = k, -k * a_t * m
        x_z, x_1 = (1.0 - sig_t * k) / a_t, sig_t * k * m
        if sampler in ("ddpm", "ddim"):
            r = a_t / a_s
            vv = max(sig_t**2 - r**2 * sig_s**2, 0.0)
            if sampler == "ddpm":
                A = (r * sig_s**2 + a_s * vv * x_z) / sig_t**2
                b = a_s * vv * x_1 / sig_t**2
                c2 = vv
            else:
                A, b, c2 = a_s * x_z + sig_s * e_z, a_s * x_1 + sig_s * e_1, 0.0
        elif sampler in ("sde", "ode_euler"):
            h, lam = t - s, (1.0 if sampler == "sde" else 0.5)
            # z - h (f - lam g^2 score), f = -beta z / 2, score = -eps / sig
            A = 1.0 + h * (0.5 * beta_t - lam * beta_t * e_z / sig_t)
            b = -h * lam * beta_t * e_1 / sig_t
            c2 = h * beta_t if sampler == "sde" else 0.0
        else:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
        mu = A * mu + b
        v = A * A * v + (c2 if i < steps - 1 else 0.0)
    return mu, v


def gaussian_kl(mu_q, v_q: float, mu_p, v_p: float) -> float:
    r"""$\mathrm{KL}(\mathcal{N}(\mu_q, v_q I)\,\|\,\mathcal{N}(\mu_p, v_p I))$ in nats."""
    mu_q, mu_p = np.asarray(mu_q, np.float64), np.asarray(mu_p, np.float64)
    d = mu_q.size
    return float(
        0.5 * (d * v_q / v_p + np.sum((mu_q - mu_p) ** 2) / v_p - d - d * math.log(v_q / v_p))
    )


def gaussian_limits(mean, var: float, sde=None) -> dict:
    r"""Where the samplers converge as the step size goes to zero, for the target
    $\mathcal{N}(m, vI)$: ``limit_sde``, the marginal $p_\epsilon = \mathcal{N}(a_\epsilon m,
    a_\epsilon^2 v + \sigma_\epsilon^2)$ that the stochastic samplers reach whatever their
    start (they forget the prior mismatch); ``limit_ode``, the exact probability flow of the
    prior $\mathcal{N}(0, I)$ (not $p_1$) from $t = 1$ to $\epsilon$, which the deterministic
    samplers reach: $z_\epsilon = \mu_\epsilon + (v_\epsilon/v_1)^{1/2}(z_1 - \mu_1)$."""
    sde = flowlab.VPSDE() if sde is None else sde
    m = np.asarray(mean, np.float64)
    a_e, sig_e, _ = _vp(sde, sde.eps)
    a_1, sig_1, _ = _vp(sde, 1.0)
    v_e, v_1 = a_e**2 * var + sig_e**2, a_1**2 * var + sig_1**2
    ode_mean = a_e * m + math.sqrt(v_e / v_1) * (0.0 - a_1 * m)
    return {"limit_sde": (a_e * m, v_e), "limit_ode": (ode_mean, v_e / v_1)}


# -- deterministic DDIM: its exact output density ------------------------------------------


@eqx.filter_jit
def _ddim_density(sampler: DDIM, model, key, n: int):
    k_prior, k_steps = jax.random.split(key)
    z = sampler.initial(model, k_prior, n)
    logq = flowlab.standard_normal_log_prob(z)  # the VP / DDPM prior N(0, I)
    ts = sampler.times(model)

    def body(carry, inputs):
        z, logq = carry
        t, s = inputs

        def step(z1):
            return sampler.update(model, z1[None], t, s, k_steps)[0][0]

        jac = jax.vmap(jax.jacfwd(step))(z)
        _, logdet = jnp.linalg.slogdet(jac)
        return (jax.vmap(step)(z), logq - logdet), None

    (z, logq), _ = jax.lax.scan(body, (z, logq), (ts[:-1], ts[1:]))
    std = model.standardizer(z.shape[-1])
    return std.inverse(z), logq + std.log_det()


def ddim_log_density(model, steps: int, *, key, n: int):
    r"""Samples of deterministic DDIM ($\eta = 0$) and their exact log-density under the
    sampler's own output distribution: with $z_T \sim \mathcal{N}(0, I)$ and each step a
    map $z \mapsto \phi_k(z)$, $\log q(x) = \log\mathcal{N}(z_T) - \sum_k
    \log|\det \partial\phi_k/\partial z| + \log|\det \partial z/\partial x|$ (Jacobians by
    forward-mode autodiff). Returns ``(x (n, d), log q (n,))`` in data coordinates."""
    return _ddim_density(DDIM(steps=steps, eta=0.0), model, key, n)
