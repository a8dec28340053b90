r"""What the numbers mean, measured: the KDE's bias and bandwidth, and the samplers' errors.

    python experiments/studies.py --results results/course_project   # both, from disk
    python experiments/studies.py --results DIR --only kde

**KDE study** (:func:`kde_study`). Every sample-based likelihood in the report is the mean
log-density of the hold-out points under a Gaussian KDE of $N$ model samples. The same KDE
of $N$ *fresh true samples* (the oracle row) against the true density's exact NLL measures
the KDE's own bias, the floor below which it resolves nothing. The bandwidth moves that
floor: Scott's rule ($n^{-1/(d+4)}$), Silverman's ($(n(d+2)/4)^{-1/(d+4)}$, *the same number*
in $d = 2$), half of Scott's, and a bandwidth chosen by leave-one-out likelihood
cross-validation on the samples themselves (never on the hold-out set). Reported per
(dataset, model, seed): the KDE NLL under each bandwidth and the model ranking each one
gives.

**Sampler study** (:func:`sampler_study`; the course's theory item on DDPM, DDIM and the
SDE). On the course Gaussian mixture the noise predictor
$\mathbb{E}[\varepsilon \mid z_t]$ is known in closed form at every noise level
(:class:`ExactMixtureNoise`), so running each sampler with the *exact* score isolates its
discretisation error, and running it with a *trained* score adds the learning error:

* a single Gaussian component as target: every sampler is an affine map plus Gaussian noise,
  so its output is Gaussian and $\mathrm{KL}(q\,\|\,p)$ is computed in closed form
  (:func:`gaussian_sampler_moments`), with no Monte Carlo error at all;
* the mixture, exact and trained score: the energy distance of $N$ samples to $N$ fresh
  true samples (its noise floor: two independent true sample sets), and for the
  deterministic DDIM ($\eta = 0$) the exact $\mathrm{KL}(q\,\|\,p)$, since its output density
  follows from the change of variables through its steps (:func:`ddim_log_density`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import flowlab
from flowlab import datasets
from flowlab.metrics import DegenerateSamplesError, energy_distance, kde_log_likelihood
from flowlab.samplers import DDIM, ODE, Ancestral, EulerMaruyama

from . import pipeline
from .common import ROOT, write_json
from .registry import build_model
from .results import load_cells, write_kde_csv

# -- KDE study ------------------------------------------------------------------------------

BANDWIDTHS = ("scott", "silverman", "half_scott", "cv")
BANDWIDTH_LABELS = {
    "scott": "Scott",
    "silverman": "Silverman",
    "half_scott": "½ Scott",
    "cv": "CV",
}


def scott_factor(n: int, d: int = 2) -> float:
    """Scott's bandwidth factor $n^{-1/(d+4)}$ (SciPy's ``gaussian_kde`` convention: the
    kernel covariance is the factor squared times the sample covariance)."""
    return float(n ** (-1.0 / (d + 4)))


def silverman_factor(n: int, d: int = 2) -> float:
    """Silverman's factor $(n(d+2)/4)^{-1/(d+4)}$; equal to Scott's when $d = 2$."""
    return float((n * (d + 2) / 4.0) ** (-1.0 / (d + 4)))


def loo_curve(samples):
    r"""The leave-one-out mean log-likelihood of ``samples`` (shape ``(n, d)``) as a function
    of the bandwidth factor $f$ (kernel covariance $f^2\hat\Sigma$, SciPy's convention):
    $f \mapsto \frac1n\sum_i \log \frac{1}{n-1}\sum_{j\ne i}
    \mathcal{N}(x_i; x_j, f^2\hat\Sigma)$. The pairwise distances are computed once."""
    x = np.asarray(samples, np.float64)
    n, d = x.shape
    cov = np.atleast_2d(np.cov(x.T))
    chol = np.linalg.cholesky(cov)
    w = np.linalg.solve(chol, (x - x.mean(0)).T).T  # whitened: D2 = Mahalanobis^2
    sq = np.sum(w**2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * w @ w.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    d_min = np.min(d2, axis=1)
    half_logdet = float(np.sum(np.log(np.diag(chol))))

    def curve(f: float) -> float:
        a = -(d2 - d_min[:, None]) / (2.0 * f * f)  # shifted by each row's maximum
        lse = -d_min / (2.0 * f * f) + np.log(np.sum(np.exp(a), axis=1))
        log_k = -0.5 * d * np.log(2.0 * np.pi) - d * np.log(f) - half_logdet
        return float(np.mean(lse + log_k - np.log(n - 1)))

    return curve


def loo_log_likelihood(samples, factors) -> np.ndarray:
    """:func:`loo_curve` at every factor in ``factors``."""
    curve = loo_curve(samples)
    return np.asarray([curve(float(f)) for f in np.asarray(factors, np.float64)])


def cv_factor(samples, *, num: int = 14, lo: float = 0.02, hi: float = 1.5) -> float:
    """The bandwidth factor that maximises the leave-one-out likelihood of ``samples``: a
    log-spaced grid of ``num`` factors in ``[lo, hi]``, then golden-section refinement (in
    log f) on the bracket around the best grid point."""
    curve = loo_curve(samples)
    grid = np.geomspace(lo, hi, num)
    ll = [curve(float(f)) for f in grid]
    i = int(np.argmax(ll))
    a, b = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, num - 1)])
    g = (math.sqrt(5) - 1) / 2
    c, e = b - g * (b - a), a + g * (b - a)
    fc, fe = curve(math.exp(c)), curve(math.exp(e))
    for _ in range(10):
        if fc > fe:
            b, e, fe = e, c, fc
            c = b - g * (b - a)
            fc = curve(math.exp(c))
        else:
            a, c, fc = c, e, fe
            e = a + g * (b - a)
            fe = curve(math.exp(e))
    return float(math.exp((a + b) / 2))


def bandwidth_factor(name: str, samples) -> float:
    """The factor of the bandwidth called ``name`` (one of :data:`BANDWIDTHS`)."""
    n, d = np.asarray(samples).shape
    if name == "scott":
        return scott_factor(n, d)
    if name == "silverman":
        return silverman_factor(n, d)
    if name == "half_scott":
        return 0.5 * scott_factor(n, d)
    if name == "cv":
        return cv_factor(samples)
    raise ValueError(f"unknown bandwidth {name!r}; expected one of {BANDWIDTHS}")


def kde_study(cells: list[dict], *, bandwidths=BANDWIDTHS) -> list[dict]:
    """KDE NLL of the hold-out set under every bandwidth, for every sample set.

    ``cells``: one dict per (dataset, seed) with ``dataset``, ``seed``, ``holdout`` (shape
    ``(n, 2)``) and ``samples`` (model row name -> samples; include ``"oracle"``, fresh true
    samples), and optionally ``exact`` (row -> exact NLL, or minus the bound, for the
    ranking). Returns one row per (dataset, seed, model, bandwidth) with ``factor``,
    ``kde_nll``, ``kde_nll_se``, ``true_nll`` (the true density's hold-out NLL, the
    oracle's exact value) and ``bias`` (KDE NLL minus the true NLL: for the oracle, the
    KDE's own bias)."""
    rows = []
    for cell in cells:
        name, holdout = cell["dataset"], np.asarray(cell["holdout"], np.float64)
        true_nll = float(-np.mean(datasets.log_prob(name, holdout)))
        for model, x in cell["samples"].items():
            x = np.asarray(x, np.float64)
            for bw in bandwidths:
                row = dict(
                    dataset=name,
                    seed=int(cell["seed"]),
                    model=model,
                    bandwidth=bw,
                    true_nll=true_nll,
                )
                try:
                    if not np.isfinite(x).all():
                        raise DegenerateSamplesError(
                            "non-finite samples",
                            name="samples",
                            n=len(x),
                            n_distinct=0,
                            dim=2,
                            rank=0,
                            eigenvalues=np.zeros(2),
                        )
                    f = bandwidth_factor(bw, x)
                    res = kde_log_likelihood(x, holdout, bw_method=f)
                    row.update(
                        factor=f, kde_nll=-res.mean, kde_nll_se=res.se, bias=-res.mean - true_nll
                    )
                except DegenerateSamplesError:
                    row.update(
                        factor=math.nan, kde_nll=math.nan, kde_nll_se=math.nan, bias=math.nan
                    )
                rows.append(row)
    return rows


def rankings(kde_rows: list[dict]) -> dict:
    """``(dataset, seed, bandwidth) -> [models from best to worst KDE NLL]`` (the oracle
    and models without a finite KDE NLL left out)."""
    groups: dict[tuple, list[tuple[float, str]]] = {}
    for r in kde_rows:
        if r["model"] == "oracle" or not math.isfinite(r["kde_nll"]):
            continue
        groups.setdefault((r["dataset"], r["seed"], r["bandwidth"]), []).append(
            (r["kde_nll"], r["model"])
        )
    return {k: [m for _, m in sorted(v)] for k, v in groups.items()}


# -- sampler study: the exact score of the course Gaussian mixture ---------------------------


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
SAMPLER_LABELS = {
    "ddpm": "DDPM (ancestral)",
    "ddim": "DDIM (η = 0)",
    "sde": "reverse SDE (Euler–Maruyama)",
    "ode_euler": "PF-ODE (Euler)",
    "ode_adaptive": "PF-ODE (adaptive Dopri5)",
}


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


# -- the library samplers, exact or learned score --------------------------------------------


def make_sampler(name: str, steps: int, model=None):
    """The library sampler called ``name`` with ``steps`` steps (``ode_euler``: fixed-step
    Euler on the probability-flow ODE, ``dt = (1 - eps) / steps``)."""
    if name == "ddpm":
        return Ancestral(steps=steps)
    if name == "ddim":
        return DDIM(steps=steps, eta=0.0)
    if name == "sde":
        return EulerMaruyama(steps=steps)
    if name == "ode_euler":
        eps = model.sde.eps if model is not None else 1e-3
        opts = flowlab.SolverOptions(solver=diffrax.Euler(), dt0=(1.0 - eps) / steps)
        return ODE(options=opts)
    raise ValueError(f"unknown sampler {name!r}; expected one of {SAMPLERS}")


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


@dataclasses.dataclass
class SamplerStudySettings:
    """What the sampler study runs: ``samplers`` with every number of ``steps``, the
    adaptive PF-ODE at every tolerance, ``n`` samples each; the closed form at
    ``gaussian_steps``; whether a missing trained score is trained for the study."""

    samplers: tuple[str, ...] = SAMPLERS
    steps: tuple[int, ...] = (10, 30, 100, 300, 1000)
    tolerances: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    n: int = 3000
    gaussian_steps: tuple[int, ...] = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
    component: int = 0
    floor_repeats: int = 5
    train_learned: bool = True


SMOKE_SETTINGS = SamplerStudySettings(
    samplers=("ddim", "sde"),
    steps=(4,),
    tolerances=(),
    n=200,
    gaussian_steps=(5, 20, 100),
    floor_repeats=1,
    train_learned=False,
)
"""A few seconds: two samplers, one step count, the exact score only (unless the run has
a trained one)."""


def gaussian_rows(settings: SamplerStudySettings) -> list[dict]:
    """Closed-form KL of every sampler against one Gaussian component of the course
    mixture, for every number of steps (no sampling, no learned score)."""
    mix = Mixture.course([settings.component])
    m, v = mix.means[0], mix.std**2
    rows = []
    for name in SAMPLERS:
        for steps in settings.gaussian_steps:
            mu, var = gaussian_sampler_moments(name, steps, m, v)
            rows.append(
                dict(
                    sampler=name,
                    steps=steps,
                    nfe=steps,
                    kl=gaussian_kl(mu, var, m, v),
                    mean_error=float(np.linalg.norm(mu - m)),
                    var_ratio=var / v,
                )
            )
    for name, (mu, var) in gaussian_limits(m, v).items():
        rows.append(
            dict(
                sampler=name,
                steps=0,
                nfe=0,
                kl=gaussian_kl(mu, var, m, v),
                mean_error=float(np.linalg.norm(mu - m)),
                var_ratio=var / v,
            )
        )
    return rows


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


def _true_samples(key, n):
    return np.asarray(datasets.sample("gaussian_mixture", key, n), np.float64)


def energy_noise(key, n: int, repeats: int) -> float:
    """The root mean square of the energy distance between two independent true sample
    sets of size ``n`` (over ``repeats`` pairs): its noise when the distributions agree."""
    vals = []
    for k in jax.random.split(key, repeats):
        k1, k2 = jax.random.split(k)
        vals.append(energy_distance(_true_samples(k1, n), _true_samples(k2, n)))
    return float(np.sqrt(np.mean(np.square(vals))))


FLOOR_RMS = 3.0
"""A sampler whose energy distance is below ``FLOOR_RMS`` times the noise RMS is called
indistinguishable from the data at this sample size."""


def _finite_energy(x, ref) -> float:
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        return math.nan
    return energy_distance(x, ref)


def mixture_rows(model, score: str, settings: SamplerStudySettings, *, key) -> list[dict]:
    """Every sampler with every number of steps on ``model`` (the exact-score mixture model
    or a trained one): energy distance to fresh true samples, the NFE, and for DDIM the
    exact KL(q || p) with its standard error. Samplers the model cannot run are skipped."""
    k_ref, k_run = jax.random.split(key)
    ref = _true_samples(k_ref, settings.n)
    rows = []
    for name in settings.samplers:
        for steps in settings.steps:
            sampler = make_sampler(name, steps, model)
            k = jax.random.fold_in(k_run, steps)
            try:
                t0 = time.perf_counter()
                x, stats = sampler(model, k, settings.n)
                x = np.asarray(x)
                seconds = time.perf_counter() - t0
            except ValueError:  # e.g. the reverse SDE of a discrete-time DDPM
                break
            row = dict(
                sampler=name,
                score=score,
                steps=steps,
                nfe=int(stats.nfe),
                energy=_finite_energy(x, ref),
                seconds=seconds,
                kl=math.nan,
                kl_se=math.nan,
            )
            if name == "ddim":
                xd, logq = ddim_log_density(model, steps, key=k, n=settings.n)
                xd, logq = np.asarray(xd, np.float64), np.asarray(logq, np.float64)
                diff = logq - datasets.log_prob("gaussian_mixture", xd)
                if np.isfinite(diff).all():
                    row.update(
                        kl=float(diff.mean()), kl_se=float(diff.std(ddof=1) / math.sqrt(diff.size))
                    )
            rows.append(row)
    if isinstance(model, flowlab.AbstractFlow):
        for tol in settings.tolerances:
            opts = model.options.replace(rtol=tol, atol=tol)
            t0 = time.perf_counter()
            x, stats = ODE(options=opts)(model, jax.random.fold_in(k_run, 99), settings.n)
            x = np.asarray(x)
            rows.append(
                dict(
                    sampler="ode_adaptive",
                    score=score,
                    steps=int(stats.num_steps),
                    nfe=int(stats.nfe),
                    tol=tol,
                    energy=_finite_energy(x, ref),
                    seconds=time.perf_counter() - t0,
                    kl=math.nan,
                    kl_se=math.nan,
                )
            )
    return rows


STUDY_MODEL_BUDGET = dict(
    steps=4000,
    width=128,
    depth=3,
    batch_size=512,
    lr=5e-3,
    ema_decay=0.999,
    eval_every=1000,
    sde="vp",
)


def train_study_model(
    folder: Path, budget: dict, *, seed: int = 0, progress: bool = False, fresh: bool = False
):
    """A VP diffusion trained by DSM on the course Gaussian mixture (the experiments'
    pipeline: 2000 training points; resumable in ``folder``); returns ``(model, hp)``."""
    run_args = argparse.Namespace(dataset="gaussian_mixture", seed=seed)
    train, holdout, keys, hp = pipeline.prepare("diffusion", run_args, budget)
    model, history, _ = pipeline.fit_or_load(
        hp, train, holdout, keys, folder, progress=progress, fresh=fresh, metrics={}
    )
    return model, hp, history


def sampler_study(
    learned=None, settings: SamplerStudySettings | None = None, *, key, learned_source: str = ""
) -> dict:
    """The whole sampler study: closed-form Gaussian rows, and mixture rows for the exact
    score and (when ``learned`` is given) a trained model. Returns a JSON-able dict."""
    settings = SamplerStudySettings() if settings is None else settings
    k_floor, k_exact, k_learned = jax.random.split(key, 3)
    t0 = time.perf_counter()
    rows = mixture_rows(Mixture.course().model(), "exact", settings, key=k_exact)
    if learned is not None:
        rows += mixture_rows(learned, "learned", settings, key=k_learned)
    out = dict(
        settings=dataclasses.asdict(settings),
        gaussian=gaussian_rows(settings),
        mixture=rows,
        energy_rms=energy_noise(k_floor, settings.n, settings.floor_repeats),
        learned_source=learned_source if learned is not None else "",
        learned_kind=type(learned).__name__ if learned is not None else "",
        seconds=time.perf_counter() - t0,
    )
    out["energy_floor"] = FLOOR_RMS * out["energy_rms"]
    out["summary"] = summarise_sampler_study(out)
    return out


def _nfe_to_reach(rows, target: float):
    """The smallest NFE from which on every row's energy distance is at most ``target``."""
    ok = None
    for r in sorted(rows, key=lambda r: r["nfe"], reverse=True):
        if not (math.isfinite(r["energy"]) and r["energy"] <= target):
            break
        ok = r["nfe"]
    return ok


def convergence_slope(rows: list[dict], floor: float = 0.0, key: str = "kl") -> float:
    """Least-squares slope of log(``key``) against log(NFE) over the larger half of the
    points whose value is above ten times ``floor`` (the asymptotic order, before the
    step-size-independent floor takes over)."""
    pts = sorted((r["nfe"], r[key]) for r in rows if r["nfe"] > 0 and r[key] > 10 * floor)
    pts = pts[len(pts) // 2 :]
    if len(pts) < 2:
        return math.nan
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def summarise_sampler_study(study: dict) -> dict:
    """Numbers the report quotes, per sampler: the closed-form Gaussian KL at the fewest and
    most steps, its convergence slope in NFE and its limit; the NFE from which the exact
    score's energy distance stays within the noise floor; the error at the largest NFE with
    the exact and the learned score (their difference is the learning error)."""
    floor = FLOOR_RMS * study["energy_rms"]
    limits = {r["sampler"]: r["kl"] for r in study["gaussian"] if r["sampler"].startswith("limit")}
    out: dict = {"energy_floor": floor, "gaussian_limits": limits, "samplers": {}}
    for name in [*SAMPLERS, "ode_adaptive"]:
        s: dict = {}
        g = [r for r in study["gaussian"] if r["sampler"] == name]
        if g:
            lim = limits["limit_sde" if name in ("ddpm", "sde") else "limit_ode"]
            s["gaussian_limit"] = lim
            s["gaussian_slope"] = convergence_slope(g, lim)
            big, small = max(g, key=lambda r: r["nfe"]), min(g, key=lambda r: r["nfe"])
            s.update(
                gaussian_kl_max_nfe=big["kl"],
                gaussian_max_nfe=big["nfe"],
                gaussian_kl_min_nfe=small["kl"],
                gaussian_min_nfe=small["nfe"],
            )
        for score in ("exact", "learned"):
            rs = [r for r in study["mixture"] if r["sampler"] == name and r["score"] == score]
            if not rs:
                continue
            best = max(rs, key=lambda r: r["nfe"])
            s[f"{score}_energy_max_nfe"] = best["energy"]
            s[f"{score}_max_nfe"] = best["nfe"]
            s[f"{score}_nfe_to_floor"] = _nfe_to_reach(rs, floor)
            if name == "ddim":
                s[f"{score}_kl_max_nfe"] = best["kl"]
                s[f"{score}_kl_se_max_nfe"] = best["kl_se"]
        out["samplers"][name] = s
    return out


# -- command line ---------------------------------------------------------------------------


def find_learned_model(results: Path):
    """A trained VP diffusion (or DDPM) on the Gaussian mixture in a results folder."""
    for fam in ("diffusion", "ddpm"):
        for path in sorted(results.glob(f"models/gaussian_mixture/seed*/{fam}/model.eqx")):
            model, _ = flowlab.load_model(path, build_model)
            return model, str(path.relative_to(results))
    return None, ""


def run_studies(
    results: Path,
    *,
    smoke: bool = False,
    only: str | None = None,
    learned=None,
    learned_source: str = "",
    progress: bool = False,
    fresh: bool = False,
) -> dict:
    """Compute the studies for a results folder (arrays on disk, see :mod:`lab.results`) and
    write ``studies/kde.csv`` and ``studies/samplers.json``; returns what was written."""
    out = {}
    t0 = time.perf_counter()
    if only in (None, "kde"):
        cells = load_cells(results)
        rows = kde_study(cells)
        write_kde_csv(results / "studies" / "kde.csv", rows)
        out["kde"] = rows
        print(f"[studies] KDE study: {len(rows)} rows in {time.perf_counter() - t0:.1f} s")
    if only in (None, "samplers"):
        t1 = time.perf_counter()
        if learned is None:
            learned, learned_source = find_learned_model(results)
        settings = SMOKE_SETTINGS if smoke else SamplerStudySettings()
        if learned is None and settings.train_learned:
            learned, hp, _ = train_study_model(
                results / "studies" / "sampler_model",
                STUDY_MODEL_BUDGET,
                progress=progress,
                fresh=fresh,
            )
            learned_source = (
                f"a VP diffusion trained for this study: {hp['steps']} DSM steps of batch "
                f"{hp['batch_size']} on the mixture's 2000 training points, MLP width "
                f"{hp['width']} and depth {hp['depth']}, learning rate {hp['lr']:g}"
            )
        study = sampler_study(
            learned, settings, key=jax.random.key(2024), learned_source=learned_source
        )
        study["total_seconds"] = time.perf_counter() - t1
        write_json(results / "studies" / "samplers.json", study)
        out["samplers"] = study
        print(f"[studies] sampler study in {time.perf_counter() - t1:.1f} s")
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "course_project")
    p.add_argument("--only", choices=("kde", "samplers"), default=None)
    p.add_argument("--smoke", action="store_true", help="tiny settings (seconds, for CI)")
    p.add_argument("--fresh", action="store_true", help="retrain the study's own model")
    args = p.parse_args(argv)
    return run_studies(args.results, smoke=args.smoke, only=args.only, fresh=args.fresh)


if __name__ == "__main__":
    sys.exit(main() and 0)
