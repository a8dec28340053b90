r"""What the numbers mean, measured: the KDE's bias and bandwidth, and the samplers' errors.

    python experiments/studies.py --results results/course_project   # both, from disk
    python experiments/studies.py --results DIR --only kde

* :mod:`~lab.studies.kde`, the **KDE study** (:func:`kde_study`): the KDE of fresh true
  samples against the true density's exact NLL measures the KDE's own bias, under Scott's,
  Silverman's, half of Scott's and a cross-validated bandwidth, and the model ranking each
  bandwidth gives;
* :mod:`~lab.studies.exact`: the closed forms on the course Gaussian mixture, its exact
  noise predictor (:class:`ExactMixtureNoise`), every sampler's output moments on a
  Gaussian target (:func:`gaussian_sampler_moments`) and the exact output density of
  deterministic DDIM (:func:`ddim_log_density`);
* :mod:`~lab.studies.samplers`, the **sampler study** (:func:`sampler_study`; the course's
  theory item on DDPM, DDIM and the SDE): each sampler with the exact score (its
  discretisation error) and a trained one (plus the learning error);
* :mod:`~lab.studies.cli`: the command line, writing ``studies/kde.csv`` and
  ``studies/samplers.json`` in a results folder (:func:`run_studies`).

Each module imports only those before it; none imports :mod:`lab.report`, which reads what
they write.
"""

from .cli import find_learned_model, main, run_studies
from .exact import (
    SAMPLER_LABELS,
    SAMPLERS,
    ExactMixtureNoise,
    Mixture,
    ddim_log_density,
    gaussian_kl,
    gaussian_limits,
    gaussian_sampler_moments,
)
from .kde import (
    BANDWIDTH_LABELS,
    BANDWIDTHS,
    bandwidth_factor,
    cv_factor,
    kde_study,
    loo_curve,
    loo_log_likelihood,
    rankings,
    scott_factor,
    silverman_factor,
)
from .samplers import (
    FLOOR_RMS,
    QUICK_SETTINGS,
    SMOKE_SETTINGS,
    STUDY_MODEL_BUDGET,
    SamplerStudySettings,
    convergence_slope,
    energy_noise,
    gaussian_rows,
    make_sampler,
    mixture_rows,
    sampler_study,
    summarise_sampler_study,
    train_study_model,
)

__all__ = [
    "BANDWIDTHS",
    "BANDWIDTH_LABELS",
    "FLOOR_RMS",
    "SAMPLERS",
    "SAMPLER_LABELS",
    "QUICK_SETTINGS",
    "SMOKE_SETTINGS",
    "STUDY_MODEL_BUDGET",
    "ExactMixtureNoise",
    "Mixture",
    "SamplerStudySettings",
    "bandwidth_factor",
    "convergence_slope",
    "cv_factor",
    "ddim_log_density",
    "energy_noise",
    "find_learned_model",
    "gaussian_kl",
    "gaussian_limits",
    "gaussian_rows",
    "gaussian_sampler_moments",
    "kde_study",
    "loo_curve",
    "loo_log_likelihood",
    "main",
    "make_sampler",
    "mixture_rows",
    "rankings",
    "run_studies",
    "sampler_study",
    "scott_factor",
    "silverman_factor",
    "summarise_sampler_study",
    "train_study_model",
]
