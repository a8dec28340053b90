"""The report's figures and settings table as printed: every figure the text width wide with
no font under 8 pt at that size, training curves whose y-limits hold every evaluation
point and whose lines are the recorded numbers (the train line is ``train_eval_loss``, the
GAN's is the course's V(D, G) = -d_loss with its equilibrium -2 log 2), and settings that
equal the families' defaults for a full comparison and a course-project run."""

import argparse
import math
from pathlib import Path

import compare
import course_project  # noqa: F401  (puts experiments/ on the path, like test_course_project)
import matplotlib
import matplotlib.pyplot
import matplotlib.text
import numpy as np
import pytest
from lab import grid, studies
from lab.figures import GAN_EQUILIBRIUM, curves, display_label, draw_curves
from lab.registry import FAMILIES, LABELS
from lab.report import figures as rfig
from lab.report.tables import hyperparameter_table
from lab.results import Results
from PIL import Image

import flowlab
from flowlab import datasets

STEPS, EVERY = 200, 40


def _history(start, end, *, seed=0, gan=False, old=False, spike=None):
    """A synthetic run: per-step losses decaying from ``start`` to ``end``; ``train_eval_loss``
    a little below the hold-out loss (unless ``old``, a history saved before it existed);
    ``spike`` puts the first evaluation far above the rest; ``gan`` adds the players'
    recorded losses."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, STEPS + 1)
    losses = end + (start - end) * np.exp(-t / 40) + 0.05 * rng.standard_normal(STEPS)
    evals = list(range(EVERY, STEPS + 1, EVERY))
    hold = [float(end + (start - end) * np.exp(-s / 40)) for s in evals]
    if spike is not None:
        hold[0] = spike
    h = flowlab.History(
        step=evals,
        train_loss=[float(np.mean(losses[s - EVERY : s])) for s in evals],
        holdout_loss=hold,
        wall_time=[0.05 * s for s in evals],
        metrics={"holdout_nll": [float(2.0 - s / 200) for s in evals]},
        step_losses=losses.tolist(),
        train_eval_loss=[] if old else [v - 0.05 for v in hold],
    )
    if gan:
        d = 1.2 + 0.2 * np.exp(-t / 60) + 0.02 * rng.standard_normal(STEPS)
        h.step_aux = {"d_loss": d.tolist(), "g_loss": (0.8 * np.ones(STEPS)).tolist()}
        h.metrics = {"holdout_d_loss": [1.25 + 0.1 * np.exp(-s / 60) for s in evals]}
    return h


FAMS = ("cnf_fm", "diffusion", "ddpm", "gan", "vae")


def _results(tmp_path: Path, fams=FAMS, names=("pinwheel", "checkerboard")) -> Results:
    """A results object as :func:`lab.results.load` returns it: default budgets, rows
    with train times, synthetic histories, blurred true samples, one density grid."""
    rows, hist, cells, density = [], {}, {}, {}
    models = [m for f in fams for m in FAMILIES[f].rows]
    rng = np.random.default_rng(0)
    for j, name in enumerate(names):
        for seed in (0, 1):
            for i, m in enumerate([*models, "oracle"]):
                rows.append(dict(dataset=name, model=m, seed=seed, train_time_s=10.0 + i + j + seed,
                                 n_samples=300, n_train=2000, n_holdout=500))  # fmt: skip
        for i, f in enumerate(fams):
            kw = dict(gan=f == "gan", old=f == "vae", spike=40.0 if f == "ddpm" else None)
            hist[(name, f)] = _history(3.0, 1.0 + 0.1 * i, seed=i, **kw)
        import jax

        ref = np.asarray(datasets.sample(name, jax.random.key(j), 300))
        x = np.asarray(datasets.sample(name, jax.random.key(10 + j), 300))
        cells[(name, 0)] = dict(
            train=ref,
            reference=ref,
            samples={m: x + 0.05 * rng.standard_normal(x.shape) for m in [*models, "oracle"]},
        )
        xs = ys = np.linspace(-2, 2, 20)
        g = -np.add.outer(ys**2, xs**2).ravel()
        density[name] = (xs, ys, {"cnf_fm": g, "true": g})
    config = dict(
        budgets={f: dict(FAMILIES[f].defaults) for f in fams},
        budget_source={f: "the family's default (its script's)" for f in fams},
    )
    study = studies.sampler_study  # noqa: F841  (the schema below is sampler_study's)
    gauss = studies.gaussian_rows(studies.SMOKE_SETTINGS)
    mixture = [
        dict(sampler=s, score=sc, steps=n, nfe=n, energy=0.01 / n, kl=0.1 / n, kl_se=0.01 / n,
             dataset="gaussian_mixture" if sc == "exact" else "pinwheel")
        for s in ("ddim", "sde") for sc in ("exact", "learned") for n in (4, 16, 64)
    ]  # fmt: skip
    samplers = dict(gaussian=gauss, mixture=mixture, energy_floor=1e-3, energy_rms=3e-4,
                    learned_energy_floor=2e-3, learned_dataset="pinwheel")  # fmt: skip
    return Results(tmp_path, rows, config, {}, list(names), models, [0, 1], hist, cells,
                   density, None, samplers)  # fmt: skip


def _texts(fig):
    fig.canvas.draw()
    return [
        t
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
    ]


BUILDERS = {
    "training": lambda res: rfig.training_figure(res, ["pinwheel"]),
    "training_nll": lambda res: rfig.training_figure(res, ["checkerboard"], with_metric=True),
    "overlays": lambda res: rfig.overlay_figure(res, ["pinwheel"]),
    "overlays_two": lambda res: rfig.overlay_figure(res, ["pinwheel", "checkerboard"]),
    "density": rfig.density_figure,
    "samplers": rfig.samplers_figure,
}


@pytest.mark.parametrize("which", sorted(BUILDERS))
def test_figures_are_text_width_with_fonts_of_at_least_8pt(tmp_path, which):
    res = _results(tmp_path)
    fig = BUILDERS[which](res)
    assert fig is not None
    assert fig.get_size_inches()[0] == pytest.approx(rfig.TEXT_WIDTH_IN)
    texts = _texts(fig)
    assert texts
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < rfig.MIN_FONT_PT]
    assert not small, small
    assert not [t.get_text() for t in texts if "_" in t.get_text()]  # no code names
    path = rfig._save(fig, tmp_path / f"{which}.png")
    with Image.open(path) as im:  # saved at the size it is printed
        assert im.size[0] == pytest.approx(rfig.TEXT_WIDTH_IN * rfig.FIG_DPI, abs=1)


def test_saved_figures_are_included_at_their_width(tmp_path):
    res = _results(tmp_path)
    path = rfig.figure_training(res, tmp_path / "t.png", ["pinwheel"])
    assert rfig.figure_width(path) == pytest.approx(6.5, abs=0.01)
    assert "width: 6.50in" in rfig.typst_figure(
        path, tmp_path, caption="c", label="fig:t", width_in=rfig.figure_width(path)
    )


def _eval_lines(ax):
    """The lines of a panel drawn at the evaluations (markers), and the running means."""
    return [
        ln
        for ln in ax.get_lines()
        if ln.get_marker() not in (None, "None", "") or "running mean" in str(ln.get_label())
    ]


def test_training_y_limits_hold_every_evaluation_point(tmp_path):
    res = _results(tmp_path)
    for names, metric in ((["pinwheel"], False), (["checkerboard"], True)):
        fig = rfig.training_figure(res, names, with_metric=metric)
        checked = 0
        for ax in fig.axes:
            lo, hi = ax.get_ylim()
            for ln in _eval_lines(ax):
                y = np.asarray(ln.get_ydata(), float)
                assert np.all((y >= lo) & (y <= hi)), (ax.get_title(), ln.get_label(), lo, hi)
                checked += 1
        assert checked >= 2 * len(FAMS)


def test_spike_gets_a_symlog_axis_and_stays_in_view(tmp_path):
    h = _history(3.0, 1.0, spike=400.0)
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    draw_curves(ax, h, ylabel="loss")
    assert ax.get_yscale() == "symlog" and "symlog" in ax.get_ylabel()
    assert ax.get_ylim()[1] >= 400.0 and ax.get_ylim()[0] <= min(h.train_eval_loss)
    plain = matplotlib.figure.Figure().add_subplot()
    draw_curves(plain, _history(3.0, 1.0), ylabel="loss")
    assert plain.get_yscale() == "linear"


def test_a_spike_within_the_linear_range_keeps_a_linear_axis_with_its_ticks():
    """A first evaluation well above flat later ones, but within 1.5x their size (a DSM
    loss: 0.69, then 0.48 for the rest), stays on a linear axis with ordinary ticks (a
    symlog axis would be linear there, with ticks only at its limits)."""
    # the VP diffusion script's pinwheel run (seed 0, 2026-12-07), rounded
    hold = [0.692, 0.519, 0.489, 0.484, 0.482, 0.482, 0.483, 0.483, 0.482, 0.482, 0.482, 0.482]
    train = [0.700, 0.529, 0.501, 0.493, 0.491, 0.491, 0.489, 0.490, 0.490, 0.489, 0.490, 0.489]
    steps = [2000 * (i + 1) for i in range(len(hold))]
    rng = np.random.default_rng(0)
    h = flowlab.History(
        step=steps, train_loss=train, holdout_loss=hold, wall_time=[1e-3 * s for s in steps],
        metrics={}, step_losses=(0.5 + 0.05 * rng.standard_normal(steps[-1])).tolist(),
        train_eval_loss=train,
    )  # fmt: skip
    ax = matplotlib.figure.Figure().add_subplot()
    draw_curves(ax, h, ylabel="loss")
    assert ax.get_yscale() == "linear" and "symlog" not in ax.get_ylabel()
    lo, hi = ax.get_ylim()
    assert lo <= min(hold) and hi >= 0.70
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert len(ticks) >= 4, ticks


def test_curves_are_the_recorded_numbers():
    h = _history(3.0, 1.0)
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    draw_curves(ax, h, ylabel="loss")
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["train, 500 points"].get_ydata(), h.train_eval_loss)
    np.testing.assert_array_equal(lines["hold-out, 500 points"].get_ydata(), h.holdout_loss)
    np.testing.assert_array_equal(lines["train, 500 points"].get_xdata(), h.step)
    # a history saved before train_eval_loss: the minibatch loss's running mean instead
    old = curves(_history(3.0, 1.0, old=True))
    assert old.train is None
    np.testing.assert_allclose(old.running, flowlab.plotting.ema(old.minibatch, 0.98))


def test_gan_panel_is_the_course_value_function_with_its_equilibrium():
    h = _history(3.0, 1.0, gan=True)
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    c = draw_curves(ax, h, ylabel="V")
    assert c.gan and GAN_EQUILIBRIUM == pytest.approx(-1.3862944)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(
        lines["hold-out, 500 points"].get_ydata(), -np.asarray(h.metrics["holdout_d_loss"])
    )
    eq = [ln for label, ln in lines.items() if "equilibrium" in label]
    assert len(eq) == 1 and np.allclose(eq[0].get_ydata(), -2 * math.log(2))
    lo, hi = ax.get_ylim()
    assert lo <= -2 * math.log(2) <= hi


def test_labels_have_no_code_names():
    assert display_label("DDPM (L_simple)") == "DDPM (simple loss)"
    assert display_label("gaussian_mixture") == "Gaussian mixture"
    assert all("_" not in display_label(v) for v in LABELS.values())


# -- the settings table: budgets as run equal the families' defaults --------------------------


def test_full_compare_and_course_project_budgets_are_the_family_defaults():
    args = argparse.Namespace(mode="full")
    hps = compare.family_budgets(args, list(FAMILIES))
    for fam, hp in hps.items():
        assert hp == FAMILIES[fam].defaults, fam
    cp = argparse.Namespace(smoke=False, steps=None)
    for fam in FAMILIES:
        assert course_project.budget(fam, cp) == FAMILIES[fam].defaults, fam
    smoke = course_project.budget("cnf_fm", argparse.Namespace(smoke=True, steps=None))
    assert smoke["steps"] != FAMILIES["cnf_fm"].defaults["steps"]  # the test can fail


def test_settings_table_from_a_config_lists_the_defaults(tmp_path):
    res = _results(tmp_path)
    tab = hyperparameter_table(res)
    by = {key[1]: dict(zip(tab.header, cells, strict=True)) for _, key, cells in tab.rows}
    assert set(by) == set(FAMS)
    for fam, row in by.items():
        d = FAMILIES[fam].defaults
        assert row["steps"].replace(" ", "") == str(d["steps"])
        assert row["batch"] == str(d["batch_size"])
        assert row["MLP"].startswith(f"{d['width']}×{d['depth']} ")
        assert row["EMA"] == ("none" if not d.get("ema_decay") else f"{d['ema_decay']:g}")
        lr = f"{d['generator_lr']:g} (G, D)" if fam == "gan" else f"{d['lr']:g}"
        assert row["learning rate"] == lr
        assert row["evals"] == str(math.ceil(STEPS / EVERY))  # from the histories, as run
    # train time: per dataset the mean over seeds, then their mean and range
    i = 0  # cnf_fm is the first row: times 10 + 0 + j + seed
    assert by["cnf_fm"]["train (s)"] == f"{np.mean([10.5 + i, 11.5 + i]):.0f} (10–12)"
    notes = " ".join(tab.notes)
    assert "the family's default (its script's)" in notes
    assert "benchmarks/defaults.py" in notes  # cnf_fm and diffusion cite how they were chosen
    assert "sample one trained" in notes  # the diffusion's two rows share a network
    assert "best" not in notes and "tuned" not in notes


def test_settings_table_does_not_cite_a_default_that_was_not_run(tmp_path):
    res = _results(tmp_path)
    res.config["budgets"]["cnf_fm"]["steps"] = 100
    assert "flow matching) was chosen" not in " ".join(hyperparameter_table(res).notes)


# -- the course project's sampler study uses one of its datasets ------------------------------


def test_course_project_study_score_is_on_a_project_dataset():
    run = grid.GridRun()
    run.models = {
        "pinwheel": {"ddpm": "ddpm-model"},
        "checkerboard": {"cnf_fm": "cnf", "diffusion": "vp-model"},
    }
    model, name, source = course_project.study_score(run, ["pinwheel", "checkerboard"])
    assert (model, name) == ("vp-model", "checkerboard") and "_" not in source
    # a DDPM alone does not serve (the study's samplers need the continuous-time SDE)
    run.models = {"pinwheel": {"ddpm": "ddpm-model"}}
    assert course_project.study_score(run, ["pinwheel"])[0] is None
    assert course_project.study_score(grid.GridRun(), ["pinwheel"])[0] is None


def test_learned_rows_use_their_own_datasets_noise_floor():
    rows = [
        dict(sampler="ddim", score=sc, nfe=n, energy=e, kl=math.nan, kl_se=math.nan)
        for sc, pts in (
            ("exact", ((10, 5e-3), (100, 5e-4))),
            ("learned", ((10, 5e-3), (100, 2e-3))),
        )
        for n, e in pts
    ]  # fmt: skip
    study = dict(gaussian=[], mixture=rows, energy_rms=1e-3 / 3, learned_energy_rms=1e-2 / 3)
    s = studies.summarise_sampler_study(study)
    assert s["energy_floor"] == pytest.approx(1e-3)
    assert s["learned_energy_floor"] == pytest.approx(1e-2)
    assert s["samplers"]["ddim"]["exact_nfe_to_floor"] == 100  # 5e-4 <= 1e-3 only at 100
    assert s["samplers"]["ddim"]["learned_nfe_to_floor"] == 10  # both under 1e-2


def test_a_titled_grid_of_sample_panels_keeps_rows_apart():
    """figures.titled on a 3 x 3 grid of equal-aspect sample panels with two-line titles
    (the diffusion script's sampler figure): each row's x label clears the next row's
    titles by at least 10 pixels (one tight_layout pass left 4)."""
    from lab import figures as lab_figures

    rng = np.random.default_rng(0)
    fig, axes = matplotlib.pyplot.subplots(3, 3, figsize=(15.6, 15.6), squeeze=False)
    for ax in axes.flat:
        x = 0.5 * rng.normal(size=(200, 2))
        flowlab.plotting.sample_overlay(
            x, x + 0.01, title="predictor-corrector, 1000 steps\nNFE 2000, KDE loglik -0.646",
            labels=("model samples", "true samples"), lim=((-1.3, 1.4), (-1.3, 1.3)), ax=ax,
        )  # fmt: skip
    lab_figures.titled(fig, "samplers vs true samples")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    gaps = [
        axes[i, 0].xaxis.label.get_window_extent(r).y0
        - axes[i + 1, 0].title.get_window_extent(r).y1
        for i in range(2)
    ]
    matplotlib.pyplot.close(fig)
    assert min(gaps) >= 10, gaps
