"""Sample metrics against closed forms; figures carry their labels and artists."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from flowlab import plotting
from flowlab.metrics import (
    bhattacharyya_distance,
    energy_distance,
    grid_mass,
    kde_log_likelihood,
    mean_and_se,
    mmd,
    wasserstein2,
)
from flowlab.train import History


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
    p = rng.multivariate_normal(m1, c1, size=20000)
    q = rng.multivariate_normal(m2, c2, size=20000)
    assert bhattacharyya_distance(p, q) == pytest.approx(exact, abs=0.01)
    # the same distribution: the noise floor is near zero
    assert bhattacharyya_distance(p, rng.multivariate_normal(m1, c1, size=20000)) < 0.005


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
