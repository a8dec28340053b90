r"""The sampler study (the course's theory item on DDPM, DDIM and the SDE).

On the course Gaussian mixture the noise predictor is known in closed form at every noise
level (:mod:`.exact`), so running each sampler with the *exact* score isolates its
discretisation error, and running it with a *trained* score adds the learning error:

* a single Gaussian component as target: the closed-form $\mathrm{KL}(q\,\|\,p)$ of every
  sampler at every number of steps (:func:`gaussian_rows`);
* the mixture with the exact score, and a trained score on the dataset it was trained on
  (the course mixture by default; a course project passes one of its own datasets): the
  energy distance of $N$ samples to $N$ fresh true samples of that dataset (its noise
  floor: two independent true sample sets), and for the deterministic DDIM ($\eta = 0$)
  the exact $\mathrm{KL}(q\,\|\,p)$ (:func:`mixture_rows`);
* what the report quotes of it (:func:`summarise_sampler_study`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import jax
import numpy as np

import flowlab
from flowlab import datasets
from flowlab.evaluate import noise_floor
from flowlab.metrics import energy_distance
from flowlab.samplers import ODE

from .. import pipeline
from .. import samplers as vocabulary
from .exact import (
    SAMPLERS,
    Mixture,
    ddim_log_density,
    gaussian_kl,
    gaussian_limits,
    gaussian_sampler_moments,
)


def make_sampler(name: str, steps: int, model=None):
    """The library sampler called ``name`` (one of :data:`SAMPLERS`) with ``steps`` steps,
    from the one vocabulary :mod:`lab.samplers` (``ode_euler``: fixed-step Euler on the
    probability-flow ODE, ``dt = (1 - eps) / steps``)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {SAMPLERS}")
    return vocabulary.make(name, steps, model)


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


QUICK_SETTINGS = SamplerStudySettings(n=1000)
"""``compare.py --quick``'s: every sampler and number of steps, on 1000 samples per run
instead of 3000 (a third of the sampling; the energy distance's noise floor and the DDIM
KL's standard error are computed at the same size, and the report quotes it)."""

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
    rows = [
        _gaussian_row(name, steps, *gaussian_sampler_moments(name, steps, m, v), m, v)
        for name in SAMPLERS
        for steps in settings.gaussian_steps
    ]
    for name, (mu, var) in gaussian_limits(m, v).items():
        rows.append(_gaussian_row(name, 0, mu, var, m, v))
    return rows


def _gaussian_row(sampler: str, steps: int, mu, var: float, m, v: float) -> dict:
    r"""One row of :func:`gaussian_rows`: the output $\mathcal{N}(\mu, \mathrm{var}\, I)$
    of ``sampler`` after ``steps`` steps (0: its limit) against the target
    $\mathcal{N}(m, vI)$."""
    return dict(
        sampler=sampler,
        steps=steps,
        nfe=steps,
        kl=gaussian_kl(mu, var, m, v),
        mean_error=float(np.linalg.norm(mu - m)),
        var_ratio=var / v,
    )


MIXTURE = "gaussian_mixture"
"""The dataset with a closed-form score at every noise level (the exact-score rows)."""


def _true_samples(key, n, dataset: str = MIXTURE):
    return np.asarray(datasets.sample(dataset, key, n), np.float64)


def energy_noise(key, n: int, repeats: int, dataset: str = MIXTURE) -> float:
    """The root mean square of the energy distance between two independent true sample
    sets of ``dataset`` of size ``n`` (over ``repeats`` pairs): its noise when the
    distributions agree (:func:`flowlab.evaluate.noise_floor` of that dataset)."""
    floor = noise_floor(dataset, n, key=key, pairs=repeats)
    return floor["energy_distance"]["rms"]


FLOOR_RMS = 3.0
"""A sampler whose energy distance is below ``FLOOR_RMS`` times the noise RMS is called
indistinguishable from the data at this sample size."""


def _finite_energy(x, ref) -> float:
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        return math.nan
    return energy_distance(x, ref)


def mixture_rows(
    model, score: str, settings: SamplerStudySettings, *, key, dataset: str = MIXTURE
) -> list[dict]:
    """Every sampler with every number of steps on ``model`` (the exact-score mixture model
    or one trained on ``dataset``): energy distance to fresh true samples of ``dataset``, the
    NFE, and for DDIM the exact KL(q || p) with its standard error. Samplers the model
    cannot run are skipped. Every row records its ``dataset``."""
    k_ref, k_run = jax.random.split(key)
    ref = _true_samples(k_ref, settings.n, dataset)
    rows = []
    for name in settings.samplers:
        rows += _fixed_step_rows(model, name, score, settings, ref, key=k_run, dataset=dataset)
    if isinstance(model, flowlab.AbstractFlow):
        for tol in settings.tolerances:
            rows.append(_adaptive_row(model, tol, score, settings.n, ref, key=k_run))
    for r in rows:
        r["dataset"] = dataset
    return rows


def _fixed_step_rows(
    model, name: str, score: str, settings, ref, *, key, dataset: str = MIXTURE
) -> list[dict]:
    """The rows of :func:`mixture_rows` of the sampler ``name`` at every number of steps,
    up to the first the model cannot run."""
    rows = []
    for steps in settings.steps:
        sampler = make_sampler(name, steps, model)
        k = jax.random.fold_in(key, steps)
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
            row.update(_ddim_kl(model, steps, key=k, n=settings.n, dataset=dataset))
        rows.append(row)
    return rows


def _ddim_kl(model, steps: int, *, key, n: int, dataset: str = MIXTURE) -> dict:
    """``kl`` and ``kl_se``: the Monte Carlo KL(q || p) of deterministic DDIM with
    ``steps`` steps from its exact log-density against ``dataset``'s true density (nothing
    if that is not finite)."""
    x, logq = ddim_log_density(model, steps, key=key, n=n)
    x, logq = np.asarray(x, np.float64), np.asarray(logq, np.float64)
    diff = logq - datasets.log_prob(dataset, x)
    if not np.isfinite(diff).all():
        return {}
    return dict(kl=float(diff.mean()), kl_se=float(diff.std(ddof=1) / math.sqrt(diff.size)))


def _adaptive_row(model, tol: float, score: str, n: int, ref, *, key) -> dict:
    """The row of :func:`mixture_rows` of the adaptive PF-ODE at tolerance ``tol``."""
    opts = model.options.replace(rtol=tol, atol=tol)
    t0 = time.perf_counter()
    x, stats = ODE(options=opts)(model, jax.random.fold_in(key, 99), n)
    x = np.asarray(x)
    return dict(
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
    folder: Path,
    budget: dict,
    *,
    seed: int = 0,
    progress: bool = False,
    fresh: bool = False,
    dataset: str = MIXTURE,
):
    """A VP diffusion trained by DSM on ``dataset`` (the course Gaussian mixture by default;
    the experiments' pipeline: 2000 training points; resumable in ``folder``); returns
    ``(model, hp, history)``."""
    run_args = argparse.Namespace(dataset=dataset, seed=seed)
    train, holdout, keys, hp = pipeline.prepare("diffusion", run_args, budget)
    model, history, _ = pipeline.fit_or_load(
        hp, train, holdout, keys, folder, progress=progress, fresh=fresh, metrics={}
    )
    return model, hp, history


def sampler_study(
    learned=None,
    settings: SamplerStudySettings | None = None,
    *,
    key,
    learned_source: str = "",
    learned_dataset: str = MIXTURE,
) -> dict:
    """The whole sampler study: closed-form Gaussian rows, mixture rows for the exact
    score, and (when ``learned`` is given) rows for that trained model against fresh true
    samples of ``learned_dataset``, the dataset it was trained on. Returns a JSON-able dict
    (``energy_rms``/``energy_floor``: the mixture's noise; ``learned_energy_rms``/
    ``learned_energy_floor``: ``learned_dataset``'s)."""
    settings = SamplerStudySettings() if settings is None else settings
    k_floor, k_exact, k_learned = jax.random.split(key, 3)
    t0 = time.perf_counter()
    rows = mixture_rows(Mixture.course().model(), "exact", settings, key=k_exact)
    if learned is not None:
        rows += mixture_rows(learned, "learned", settings, key=k_learned, dataset=learned_dataset)
    rms = energy_noise(k_floor, settings.n, settings.floor_repeats)
    learned_rms = (
        rms
        if learned_dataset == MIXTURE
        else energy_noise(k_floor, settings.n, settings.floor_repeats, learned_dataset)
    )
    out = dict(
        settings=dataclasses.asdict(settings),
        gaussian=gaussian_rows(settings),
        mixture=rows,
        energy_rms=rms,
        learned_energy_rms=learned_rms,
        learned_dataset=learned_dataset if learned is not None else "",
        learned_source=learned_source if learned is not None else "",
        learned_kind=type(learned).__name__ if learned is not None else "",
        seconds=time.perf_counter() - t0,
    )
    out["energy_floor"] = FLOOR_RMS * out["energy_rms"]
    out["learned_energy_floor"] = FLOOR_RMS * learned_rms
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
    floors = {
        "exact": FLOOR_RMS * study["energy_rms"],
        "learned": FLOOR_RMS * study.get("learned_energy_rms", study["energy_rms"]),
    }
    limits = {r["sampler"]: r["kl"] for r in study["gaussian"] if r["sampler"].startswith("limit")}
    out: dict = {
        "energy_floor": floors["exact"],
        "learned_energy_floor": floors["learned"],
        "learned_dataset": study.get("learned_dataset") or MIXTURE,
        "gaussian_limits": limits,
        "samplers": {},
    }
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
            s[f"{score}_nfe_to_floor"] = _nfe_to_reach(rs, floors[score])
            if name == "ddim":
                s[f"{score}_kl_max_nfe"] = best["kl"]
                s[f"{score}_kl_se_max_nfe"] = best["kl_se"]
        out["samplers"][name] = s
    return out
