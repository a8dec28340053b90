"""The course project in one command (smoke run: a PDF), and the studies it runs, checked
against closed forms: the samplers' Gaussian moments against the library samplers, DDIM's
change-of-variables density against the closed form, the leave-one-out KDE likelihood
against a brute-force one."""

import math
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("typst")

import course_project  # noqa: E402
from lab import report, studies, tables  # noqa: E402

from flowlab import datasets  # noqa: E402


def test_smoke_run_writes_results_studies_and_pdf(tmp_path):
    out = tmp_path / "cp"
    result = course_project.main(["--smoke", "--out", str(out), "--no-progress"])
    pdf = result["pdf"]
    assert pdf == out / "report.pdf" and pdf.read_bytes().startswith(b"%PDF")
    rows = tables.read_csv(out / "results.csv")
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == tables.COLUMNS
    models = list(course_project.DEFAULT_MODELS)
    assert {(r["dataset"], r["model"]) for r in rows} == {
        (d, m) for d in course_project.DEFAULT_DATASETS for m in [*models, "oracle"]
    }
    for r in rows:
        kind = r["likelihood_kind"]
        assert math.isfinite(r["exact_nll"]) == (kind == "exact"), r
        assert math.isfinite(r["neg_bound"]) == (kind == "bound"), r
        assert math.isfinite(r["kde_nll"]) and math.isfinite(r["energy"]), r
        if r["model"] == "oracle":  # the true density's NLL and its distance to entropy
            assert r["exact_nll"] == pytest.approx(r["true_entropy"], abs=0.3)
    for d in course_project.DEFAULT_DATASETS:
        for m in models:
            assert (out / "models" / d / "seed0" / m / "history.json").exists()
        assert (out / "arrays" / f"{d}_seed0.npz").exists()
    assert (out / "studies" / "kde.csv").exists() and (out / "studies" / "samplers.json").exists()
    assert (out / "report_build" / "body.typ").read_text().count("#figure(") >= 4
    # re-rendering from disk alone (no training) gives the same document text
    body = (out / "report_build" / "body.typ").read_text()
    report.render(out, tmp_path / "again.pdf", build=tmp_path / "build")
    assert (tmp_path / "build" / "body.typ").read_text() == body


def test_unknown_family_or_dataset_is_refused():
    with pytest.raises(SystemExit):
        course_project.parse_args(["--models", "cnf_fm", "nope"])
    with pytest.raises(SystemExit):
        course_project.parse_args(["--datasets", "ffjord_moons"])  # not a course dataset


# -- sampler study ----------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", studies.SAMPLERS)
def test_gaussian_moments_match_the_library_samplers(sampler):
    """The closed-form mean and variance of each sampler with the exact score of one
    Gaussian equal the library sampler's Monte Carlo moments (within 5 standard errors)."""
    mix = studies.Mixture.course([0])
    model = mix.model()
    steps, n = 10, 20_000
    mu, var = studies.gaussian_sampler_moments(sampler, steps, mix.means[0], mix.std**2)
    x, stats = studies.make_sampler(sampler, steps, model)(model, jax.random.key(1), n)
    assert int(stats.nfe) == steps
    z = np.asarray(mix.standardize.forward(x), np.float64)
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(z.mean(0) - mu) < 5 * se_mean), (z.mean(0), mu)
    se_var = var * np.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(z.var(0, ddof=1) - var) < 5 * se_var), (z.var(0), var)


def test_gaussian_closed_form_is_first_order_and_converges_to_its_limit():
    mix = studies.Mixture.course([0])
    m, v = mix.means[0], mix.std**2
    limits = studies.gaussian_limits(m, v)
    for sampler in studies.SAMPLERS:
        lim_mu, lim_v = limits["limit_sde" if sampler in ("ddpm", "sde") else "limit_ode"]
        errs = []
        for steps in (500, 1000, 2000):
            mu, var = studies.gaussian_sampler_moments(sampler, steps, m, v)
            errs.append((np.linalg.norm(mu - lim_mu), abs(var - lim_v)))
        errs = np.asarray(errs)
        # halving the step halves the variance error (first order) ...
        assert np.all((errs[:-1, 1] / errs[1:, 1] > 1.8) & (errs[:-1, 1] / errs[1:, 1] < 2.9))
        # ... and the mean error, except for ancestral sampling, whose mean is exact here
        if sampler != "ddpm":
            assert np.all(np.abs(errs[:-1, 0] / errs[1:, 0] - 2.0) < 0.1), sampler
    # the stochastic limit is the VP marginal at t = eps: KL of order sigma(eps)^4 / s^4
    kl_sde = studies.gaussian_kl(*limits["limit_sde"], m, v)
    assert 1e-6 < kl_sde < 1e-4
    # the deterministic limit also carries the prior mismatch a(1) m through the flow
    assert studies.gaussian_kl(*limits["limit_ode"], m, v) > kl_sde


def test_ddim_density_is_the_exact_density_of_its_samples():
    """On one Gaussian, DDIM is an affine map: the change-of-variables density of its samples
    equals the Gaussian with the closed-form moments, point by point."""
    mix = studies.Mixture.course([0])
    model = mix.model()
    steps = 20
    mu, var = studies.gaussian_sampler_moments("ddim", steps, mix.means[0], mix.std**2)
    x, logq = studies.ddim_log_density(model, steps, key=jax.random.key(2), n=500)
    loc = np.asarray(mix.standardize.loc, np.float64)
    scale = np.asarray(mix.standardize.scale, np.float64)
    expected = scipy.stats.multivariate_normal(loc + scale * mu, np.diag(scale**2 * var)).logpdf(
        np.asarray(x, np.float64)
    )
    assert np.allclose(np.asarray(logq), expected, atol=2e-3)
    # and the samples are DDIM's own
    x_lib, _ = studies.make_sampler("ddim", steps)(model, jax.random.key(2), 500)
    assert np.allclose(np.asarray(x), np.asarray(x_lib), atol=1e-4)


def test_ddim_kl_on_the_mixture_falls_with_steps():
    """With the exact score of the mixture, DDIM's KL(q || p) from its exact output density
    falls with the number of steps and is resolved beyond its standard error."""
    model = studies.Mixture.course().model()
    kls = []
    for steps in (5, 50):
        x, logq = studies.ddim_log_density(model, steps, key=jax.random.key(0), n=400)
        diff = np.asarray(logq, np.float64) - datasets.log_prob("gaussian_mixture", x)
        kls.append((diff.mean(), diff.std(ddof=1) / np.sqrt(diff.size)))
    (few, few_se), (many, many_se) = kls
    assert few > 3 * few_se and many < few - 3 * (few_se + many_se)


# -- KDE study --------------------------------------------------------------------------------


def test_loo_likelihood_matches_brute_force_and_cv_maximises_it():
    x = np.asarray(datasets.sample("pinwheel", jax.random.key(4), 60), np.float64)
    f = 0.4
    brute = []
    for i in range(len(x)):
        rest = np.delete(x, i, axis=0)
        cov = np.cov(x.T) * f**2  # the kernel of the full sample's covariance
        brute.append(np.log(np.mean(scipy.stats.multivariate_normal(cov=cov).pdf(rest - x[i]))))
    assert studies.loo_log_likelihood(x, [f])[0] == pytest.approx(np.mean(brute), abs=1e-10)
    x = np.asarray(datasets.sample("pinwheel", jax.random.key(5), 500), np.float64)
    best = studies.cv_factor(x)
    grid = np.geomspace(0.02, 1.5, 30)
    assert (
        studies.loo_log_likelihood(x, [best])[0] >= studies.loo_log_likelihood(x, grid).max() - 1e-6
    )
    # thin arms want a narrower kernel than Scott's rule
    assert best < studies.scott_factor(len(x))


def test_scott_equals_silverman_in_two_dimensions():
    for n in (300, 2000):
        assert studies.silverman_factor(n, 2) == pytest.approx(studies.scott_factor(n, 2))
        assert studies.silverman_factor(n, 3) != pytest.approx(studies.scott_factor(n, 3))


def test_kde_study_oracle_bias_is_the_kde_minus_the_true_nll():
    k1, k2, k3 = jax.random.split(jax.random.key(6), 3)
    holdout = np.asarray(datasets.sample("checkerboard", k1, 300))
    fresh = np.asarray(datasets.sample("checkerboard", k2, 1000))
    blurred = fresh + 0.2 * np.asarray(jax.random.normal(k3, fresh.shape))
    cell = dict(
        dataset="checkerboard", seed=0, holdout=holdout, samples={"oracle": fresh, "blur": blurred}
    )
    rows = studies.kde_study([cell], bandwidths=("scott", "cv"))
    true_nll = float(-np.mean(datasets.log_prob("checkerboard", holdout)))
    assert true_nll == pytest.approx(math.log(32.0))
    for r in rows:
        kde = scipy.stats.gaussian_kde(
            (fresh if r["model"] == "oracle" else blurred).T, bw_method=r["factor"]
        )
        assert r["kde_nll"] == pytest.approx(-np.mean(kde.logpdf(holdout.T)), rel=1e-9)
        assert r["bias"] == pytest.approx(r["kde_nll"] - true_nll)
    by = {(r["model"], r["bandwidth"]): r for r in rows}
    # the KDE of true samples overstates the NLL of uniform squares with sharp edges
    assert by[("oracle", "scott")]["bias"] > 0.05
    # blur costs likelihood under every bandwidth, and CV does not lose to Scott on the oracle
    for bw in ("scott", "cv"):
        assert by[("blur", bw)]["kde_nll"] > by[("oracle", bw)]["kde_nll"]
    assert by[("oracle", "cv")]["kde_nll"] <= by[("oracle", "scott")]["kde_nll"] + 0.02
    assert studies.rankings(rows)[("checkerboard", 0, "scott")] == ["blur"]
