"""Sample metrics against closed forms; figures carry their labels and artists."""

import os
import subprocess
import sys
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pytest

from flowlab import History, plotting
from flowlab.metrics import (
    DegenerateSamplesError,
    bhattacharyya_distance,
    check_samples,
    energy_distance,
    grid_mass,
    kde_log_likelihood,
    mean_and_se,
    mmd,
    wasserstein2,
)


def test_kde_log_likelihood_approaches_gaussian_entropy():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * cov))
    holdout = rng.multivariate_normal([0, 0], cov, size=4000)
    gaps = []
    for n in (200, 20000):
        res = kde_log_likelihood(rng.multivariate_normal([0, 0], cov, size=n), holdout)
        gaps.append(-res.mean - entropy)
        assert res.bw_method == "scott" and res.n_samples == n and res.se > 0
    # a KDE over-smooths: its cross-entropy exceeds the entropy, less so with more samples
    assert gaps[0] > gaps[1] > 0
    assert gaps[1] < 0.03


def test_bhattacharyya_of_two_gaussians_matches_closed_form():
    rng = np.random.default_rng(1)
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, 0.5])
    c1, c2 = np.diag([1.0, 0.6]), np.diag([0.7, 1.2])
    c = 0.5 * (c1 + c2)
    dm = m2 - m1
    exact = dm @ np.linalg.solve(c, dm) / 8 + 0.5 * np.log(
        np.linalg.det(c) / np.sqrt(np.linalg.det(c1) * np.linalg.det(c2))
    )
    # 4000 points per set: measured errors within 0.006 of the closed form (0.219) over 4 seeds
    p = rng.multivariate_normal(m1, c1, size=4000)
    q = rng.multivariate_normal(m2, c2, size=4000)
    assert bhattacharyya_distance(p, q) == pytest.approx(exact, abs=0.012)
    # the same distribution: the noise floor is near zero (measured 0.003-0.004)
    assert bhattacharyya_distance(p, rng.multivariate_normal(m1, c1, size=4000)) < 0.007


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match=r"expected holdout of shape \(n, 2\)"):
        kde_log_likelihood(np.random.default_rng(0).normal(size=(10, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        kde_log_likelihood(np.full((10, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_se([1.0])


def test_ema_is_bias_corrected():
    np.testing.assert_allclose(plotting.ema(np.full(50, 3.0), 0.9), 3.0)


def _history():
    h = History()
    h.step_losses = list(np.linspace(3, 1, 100) + 0.1 * np.sin(np.arange(100)))
    h.step, h.train_loss, h.holdout_loss = [50, 100], [2.0, 1.2], [2.1, 1.3]
    h.wall_time, h.metrics = [1.0, 2.0], {"holdout_nll": [1.5, 1.0]}
    return h


def test_figures_have_labels_and_artists():
    fig = plotting.training_curves(_history(), reference=0.9, title="t")
    ax0, ax1 = fig.axes
    assert ax0.get_xlabel() == "gradient step" and ax0.get_title() == "t"
    labels = [t.get_text() for t in ax0.get_legend().get_texts()]
    assert labels == ["train (per step)", "train (EMA 0.98)", "hold-out"]
    assert any("true entropy" in t.get_text() for t in ax1.get_legend().get_texts())
    plt.close(fig)

    rng = np.random.default_rng(0)
    fig = plotting.sample_overlay(rng.normal(size=(30, 2)), rng.normal(size=(40, 2)))
    ax = fig.axes[0]
    assert len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["data (n=40)", "model (n=30)"]
    plt.close(fig)

    xs, ys, pts = plotting.grid((-1, -2), (1, 2), 20)
    assert pts.shape == (400, 2)
    np.testing.assert_allclose(pts.reshape(20, 20, 2)[3, 5], (xs[5], ys[3]), rtol=1e-6)
    fig = plotting.density_heatmap(xs, ys, -0.5 * (pts**2).sum(1))
    assert len(fig.axes) == 2 and fig.axes[0].images  # heatmap + colour bar
    plt.close(fig)

    ts = np.linspace(0, 1, 7)
    fig = plotting.trajectories(ts, rng.normal(size=(7, 12, 2)))
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # the paths, the start points, the end points
    assert ax.collections[0].get_array().shape == (6 * 12,)
    plt.close(fig)


def test_panels_drawn_into_a_callers_axes_leave_the_layout_to_the_caller(monkeypatch):
    """With ``ax=`` a plotting function draws its panel and does not lay out the caller's
    whole figure (a tight_layout per panel is quadratic in the panels: the comparison grid's
    40-panel sample figure took 20 s); without ``ax`` it lays out the figure it made."""
    from matplotlib.figure import Figure

    calls = []
    monkeypatch.setattr(Figure, "tight_layout", lambda self, *a, **k: calls.append(self))
    rng = np.random.default_rng(0)
    pts, ts = rng.normal(size=(50, 2)), np.linspace(0, 1, 5)
    xs = ys = np.linspace(-2, 2, 6)
    logp, paths = -(xs[None] ** 2 + ys[:, None] ** 2), np.stack([pts * t for t in ts])
    draw = {
        "sample_overlay": lambda ax: plotting.sample_overlay(pts, pts, ax=ax),
        "density_heatmap": lambda ax: plotting.density_heatmap(xs, ys, logp, ax=ax),
        "trajectories": lambda ax: plotting.trajectories(ts, paths, ax=ax),
        "vector_field": lambda ax: plotting.vector_field(xs, ys, np.ones((36, 2)), ax=ax),
    }  # fmt: skip
    for name, fn in draw.items():
        fig, axes = plt.subplots(1, 2)
        calls.clear()
        assert fn(axes[0]) is fig and calls == [], name
        own = fn(None)
        assert calls == [own] and own is not fig, name
        plt.close("all")


def test_density_evolution_vector_field_and_animation(tmp_path):
    from PIL import Image

    xs, ys, pts = plotting.grid((-2, -2), (2, 2), 24)
    ts = np.array([0.0, 0.5, 1.0])
    lds = np.stack([-0.5 * (pts**2).sum(1) / (1 + t) for t in ts])
    fig = plotting.density_evolution(xs, ys, lds, ts)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["$t = 0.00$", "$t = 0.50$", "$t = 1.00$"]
    plt.close(fig)

    fig = plotting.vector_field(xs, ys, -pts, title="f")
    assert fig.axes[0].get_title() == "f" and fig.axes[1].get_ylabel().startswith("speed")
    plt.close(fig)

    rng = np.random.default_rng(0)
    paths = np.cumsum(rng.normal(size=(9, 20, 2)) * 0.1, axis=0)
    out = plotting.animate_particles(np.linspace(0, 1, 9), paths, tmp_path / "a.gif", fps=5)
    with Image.open(out) as im:
        assert im.n_frames == 9


def test_w2_matches_brute_force_assignment():
    import itertools

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 1.0
    brute = min(np.mean(np.sum((x - y[list(p)]) ** 2, 1)) for p in itertools.permutations(range(6)))
    assert wasserstein2(x, y) == pytest.approx(np.sqrt(brute), rel=1e-12)
    # translation by a vector v: W2 of a set to its translate is |v|
    assert wasserstein2(x, x + np.array([3.0, 4.0])) == pytest.approx(5.0)


def test_energy_distance_and_mmd_separate_distributions_with_a_noise_floor():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2))
    shifted = rng.normal(size=(1500, 2)) + np.array([0.5, 0.0])
    # the same distribution: near zero (U-statistics are unbiased)
    assert abs(energy_distance(a, b)) < 0.01 and abs(mmd(a, b)) < 0.003
    assert energy_distance(a, shifted) > 0.1 and mmd(a, shifted) > 0.02


def test_grid_mass_of_a_gaussian_is_one():
    xs, ys, pts = plotting.grid((-6, -6), (6, 6), 121)
    lp = -0.5 * (pts**2).sum(1) - np.log(2 * np.pi)
    assert grid_mass(lp, xs, ys) == pytest.approx(1.0, abs=1e-4)


# --- degenerate samples: a collapsed generator ------------------------------------------------


def _line(n, dtype, offset=(0.0, 1.0)):
    t = np.random.default_rng(5).normal(size=n)
    return (np.stack([t, 2.0 * t], 1) + np.array(offset)).astype(dtype)


DEGENERATE = {
    # name: (samples, distinct points, rank)
    "one point": (np.tile([[0.3, -0.2]], (500, 1)), 1, 0),
    "three points on a line": (np.array([[0, 0], [1, 1], [2, 2.0]])[np.arange(300) % 3], 3, 1),
    "a line, float64": (_line(500, np.float64), 500, 1),
    # float32 rounding leaves the line a thickness of ~1e-8 (scipy would return about -2e16)
    "a line, float32": (_line(500, np.float32), 500, 1),
    "a line far from the origin, float32": (_line(500, np.float32, (1e3, 2e3)), None, 1),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_kde_metrics_refuse_degenerate_samples(case):
    samples, n_distinct, rank = DEGENERATE[case]
    holdout = np.random.default_rng(0).normal(size=(50, 2))
    for call in (
        lambda: check_samples(samples),
        lambda: kde_log_likelihood(samples, holdout),
        lambda: bhattacharyya_distance(samples, holdout),
    ):
        with pytest.raises(DegenerateSamplesError, match="covariance has full rank 2") as info:
            call()
        err = info.value
        assert isinstance(err, ValueError)
        assert err.rank == rank and err.dim == 2 and err.n == len(samples)
        assert f"got {len(samples)} samples" in str(err) and f"has rank {rank}" in str(err)
        if n_distinct is not None:
            assert err.n_distinct == n_distinct
            assert f"({n_distinct} distinct point" in str(err)
        assert err.eigenvalues.shape == (2,) and abs(err.eigenvalues[0]) < 1e-12
        if rank == 1:
            assert err.eigenvalues[1] > 1.0  # the spread along the line


def test_degenerate_error_names_the_argument():
    good = np.random.default_rng(1).normal(size=(300, 2))
    bad = np.tile([[1.0, 1.0]], (300, 1))
    with pytest.raises(DegenerateSamplesError, match="^samples_q are degenerate") as info:
        bhattacharyya_distance(good, bad)
    assert info.value.name == "samples_q"
    with pytest.raises(DegenerateSamplesError, match="^samples_p are degenerate"):
        bhattacharyya_distance(bad, good)
    # the hold-out set may be anything: only the fitted samples need to span the plane
    assert np.isfinite(kde_log_likelihood(good, bad).mean)


def test_thin_but_full_rank_samples_are_accepted():
    rng = np.random.default_rng(2)
    thin = np.stack([rng.normal(size=1000), 1e-3 * rng.normal(size=1000)], 1).astype(np.float32)
    assert check_samples(thin) is None
    assert check_samples(rng.normal(size=(3, 2))) is None  # three points in general position
    res = kde_log_likelihood(thin, thin[:100])
    assert np.isfinite(res.mean) and res.mean > 0  # a very peaked density on its own points


# --- the matplotlib backend is the user's -----------------------------------------------------

_BACKEND_SCRIPT = """
import sys
import matplotlib

if sys.argv[1] != "-":
    matplotlib.use(sys.argv[1])
before = matplotlib.get_backend()
import numpy as np
from flowlab import plotting

assert matplotlib.get_backend() == before, (before, matplotlib.get_backend())
fig = plotting.sample_overlay(np.zeros((3, 2)), np.ones((4, 2)))
plotting.save_figure(fig, "out/f.png", "out/f.pdf")
print(matplotlib.get_backend())
"""


@pytest.mark.parametrize(
    ("use", "expected"), [("svg", "svg"), ("-", None)], ids=["matplotlib.use", "default"]
)
def test_import_keeps_the_backend_and_saving_works_under_it(tmp_path, use, expected):
    """With MPLBACKEND unset and no display: a backend chosen before the import survives it
    (flowlab used to switch it to Agg), and with none chosen, matplotlib's own choice works."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_BACKEND_SCRIPT), use],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    if expected is not None:
        assert out.stdout.strip() == expected
    assert (tmp_path / "out/f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out/f.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.pdf", "f.png"]


def test_trajectory_panel_x_tick_labels_do_not_touch():
    """The trajectories figure (equal aspect beside a colour bar, so a narrow panel) keeps
    its x tick labels at least 4 pixels apart when saved at the scripts' 130 dpi, on paths
    spanning the main job's range (x -1.03 to 0.99, y -1.20 to 1.17: without a cap on the
    ticks, eleven labels at 0.25 with 1.6 pixels between some)."""
    rng = np.random.default_rng(0)
    xs = rng.uniform((-1.03, -1.2), (0.99, 1.17), size=(5, 300, 2))
    fig = plotting.trajectories(np.linspace(0, 1, 5), xs, title="paths")
    fig.set_dpi(130)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    boxes = sorted(
        (t.get_window_extent(renderer) for t in ax.get_xticklabels()
         if t.get_text() and lo <= t.get_position()[0] <= hi),
        key=lambda b: b.x0,
    )  # fmt: skip
    gaps = [b.x0 - a.x1 for a, b in zip(boxes[:-1], boxes[1:], strict=True)]
    plt.close(fig)
    assert len(boxes) >= 3 and min(gaps) >= 4, [t.get_text() for t in ax.get_xticklabels()]
