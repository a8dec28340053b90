"""Build and execute `ode_trajectories.ipynb` (outputs kept) from the cells below.

    python notebooks/build.py            # full run (a few minutes on 2 cores)

The notebook reads FLOWLAB_NOTEBOOK_STEPS (training steps per model) and
FLOWLAB_NOTEBOOK_OUT (where its figures go) so the test suite can run it quickly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

CELLS = [
    (
        "md",
        """# ODE trajectories with flowlab

Continuous normalizing flows and diffusion models are both **vector fields**: a CNF's learned
field $f_\\theta(t, x)$ and a diffusion model's probability-flow field
$f(t,x) - \\tfrac12 g(t)^2 s_\\theta(t, x)$. This notebook trains one of each on *pinwheel* and
*checkerboard* and looks at what they do: particle paths, the density as it evolves along the
flow (exact, from the instantaneous change of variables), the fields themselves, the
probability-flow ODE against the reverse SDE, and an animation.

Everything a plot needs comes from the model (`trajectories`, `log_prob(x, t=...)`,
`velocity`, `sde_trajectories`); `flowlab.plotting` only draws arrays.""",
    ),
    (
        "code",
        """import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import flowlab
from flowlab import CNF, Diffusion, Standardize, datasets, fit, plotting
from flowlab.nn import MLPVectorField
from flowlab.objectives import DenoisingScoreMatching, FlowMatching
from flowlab.optim import default_optimizer
from flowlab.samplers import EulerMaruyama

%matplotlib inline
STEPS = int(os.environ.get("FLOWLAB_NOTEBOOK_STEPS", "10000"))  # per model
OUT = Path(os.environ.get("FLOWLAB_NOTEBOOK_OUT", "../figures"))
OUT.mkdir(parents=True, exist_ok=True)
NAMES = ["pinwheel", "checkerboard"]
print(f"flowlab {flowlab.__version__}, jax {jax.__version__}, {STEPS} training steps per model")""",
    ),
    (
        "md",
        """## Train a CNF (flow matching) and a VP diffusion model on each dataset

2000 training and 500 hold-out points from independent keys; each model works in
standardised coordinates and reports densities in the data's own. Both likelihoods below are
exact: adaptive Dopri5 on the augmented ODE with the exact Jacobian trace.""",
    ),
    (
        "code",
        """def train_models(name, seed=0):
    k_data, k_cnf, k_dif, k_fit1, k_fit2 = jax.random.split(jax.random.key(seed), 5)
    train, holdout = datasets.split(name, k_data)
    std = Standardize.fit(train)
    opt = default_optimizer(STEPS, 3e-3)
    cnf = CNF(MLPVectorField(2, width=128, depth=4, key=k_cnf), standardize=std)
    cnf, cnf_hist = fit(cnf, FlowMatching(), train, holdout, key=k_fit1, steps=STEPS,
                        batch_size=1024, optimizer=opt, eval_every=max(STEPS // 6, 1),
                        ema_decay=0.998, progress=False)
    dif = Diffusion(MLPVectorField(2, width=128, depth=4, key=k_dif), flowlab.VPSDE(),
                    standardize=std)
    dif, dif_hist = fit(dif, DenoisingScoreMatching(), train, holdout, key=k_fit2,
                        steps=STEPS, batch_size=1024, optimizer=opt,
                        eval_every=max(STEPS // 6, 1), ema_decay=0.998, progress=False)
    return dict(train=train, holdout=holdout, cnf=cnf, diffusion=dif,
                cnf_history=cnf_hist, diffusion_history=dif_hist)


models = {name: train_models(name) for name in NAMES}
for name, m in models.items():
    h = datasets.entropy(name)
    cnf_nll = -float(jnp.mean(m["cnf"].log_prob(m["holdout"])))
    dif_nll = -float(jnp.mean(m["diffusion"].log_prob(m["holdout"])))
    print(f"{name:13s} exact hold-out NLL: CNF {cnf_nll:.3f}, diffusion (PF-ODE) {dif_nll:.3f};"
          f" true entropy {h:.3f}")""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for ax, name in zip(axes, NAMES):
    for kind, colour in [("cnf", "C3"), ("diffusion", "C0")]:
        h = models[name][f"{kind}_history"]
        ax.plot(np.arange(1, len(h.step_losses) + 1), plotting.ema(h.step_losses, 0.99),
                color=colour, label=f"{kind}: train (EMA)")
        ax.plot(h.step, h.holdout_loss, "o--", color=colour, ms=3, label=f"{kind}: hold-out")
    ax.set(xlabel="gradient step", ylabel="loss (FM / DSM)", title=f"{name}: training curves")
    ax.legend()
fig.tight_layout()""",
    ),
    (
        "md",
        """## Particle trajectories: base distribution to data

Lines are coloured by time; grey dots are draws from $N(0, I)$ at $t=0$, red dots where the
ODE takes them at $t=1$ (exactly `cnf.sample` with the same key).""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
for ax, name in zip(axes, NAMES):
    ts, xs = models[name]["cnf"].trajectories(jax.random.key(1), 400, num_times=60)
    plotting.trajectories(ts, xs, ax=ax, title=f"CNF on {name}: ODE paths")
fig.tight_layout()
plotting.save_figure(fig, OUT / "notebook_cnf_trajectories.png")
display(Image(filename=OUT / "notebook_cnf_trajectories.png"))""",
    ),
    (
        "md",
        """## The density along the flow

$\\log p_t(x)$ at intermediate times, exact: integrate the augmented ODE from $t$ back to the
base at $t=0$ (`cnf.log_prob(x, t=t)`).""",
    ),
    (
        "code",
        """TIMES = [0.0, 0.25, 0.5, 0.75, 1.0]
for name in NAMES:
    m = models[name]
    tr = np.asarray(m["train"])
    lo, hi = tr.min(0) - 0.3 * np.ptp(tr, 0), tr.max(0) + 0.3 * np.ptp(tr, 0)
    xs, ys, pts = plotting.grid(lo, hi, 70)
    lds = np.stack([np.asarray(m["cnf"].log_prob(pts, t=t)) for t in TIMES])
    fig = plotting.density_evolution(xs, ys, lds, TIMES, title=f"CNF on {name}: $\\\\log p_t$")
    plt.show()""",
    ),
    (
        "md",
        """## The learned vector fields

The CNF's velocity $dx/dt$ (in data coordinates, `cnf.velocity`) at three times, with the
particles at those times on top.""",
    ),
    (
        "code",
        """for name in NAMES:
    m = models[name]
    cnf = m["cnf"]
    tr = np.asarray(m["train"])
    lo, hi = tr.min(0) - 0.3 * np.ptp(tr, 0), tr.max(0) + 0.3 * np.ptp(tr, 0)
    xs, ys, pts = plotting.grid(lo, hi, 40)
    ts, paths = cnf.trajectories(jax.random.key(2), 300, ts=jnp.array([0.0, 0.5, 1.0]))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for ax, t, p in zip(axes, [0.0, 0.5, 1.0], paths):
        v = jax.vmap(lambda x: cnf.velocity(t, x))(jnp.asarray(pts))
        plotting.vector_field(xs, ys, v, points=p, ax=ax, title=f"{name}: $f(t, x)$ at t = {t}")
    fig.tight_layout()
    plt.show()""",
    ),
    (
        "md",
        """## Diffusion: probability-flow ODE vs reverse SDE

Same model, same prior draws at $t=1$: the PF-ODE moves each particle deterministically;
Euler–Maruyama on the reverse SDE adds noise at every step (paths shown as the noise-free
step means, every 6th step drawn). Both end on the data distribution; 60 particles each.""",
    ),
    (
        "code",
        """for name in NAMES:
    dif = models[name]["diffusion"]
    key = jax.random.key(3)
    ts_ode, xs_ode = dif.trajectories(key, 60, num_times=60)
    ts_sde, xs_sde = dif.sde_trajectories(key, 60, sampler=EulerMaruyama(steps=300))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    plotting.trajectories(ts_ode, xs_ode, ax=axes[0], title=f"{name}: probability-flow ODE")
    plotting.trajectories(ts_sde[::6], xs_sde[::6], ax=axes[1],
                          title=f"{name}: reverse SDE (Euler–Maruyama, 300 steps)")
    fig.tight_layout()
    plotting.save_figure(fig, OUT / f"notebook_{name}_pf_ode_vs_sde.png")
    display(Image(filename=OUT / f"notebook_{name}_pf_ode_vs_sde.png"))""",
    ),
    ("md", """## Model samples against the data"""),
    (
        "code",
        """fig, axes = plt.subplots(2, 2, figsize=(11, 11))
for row, name in enumerate(NAMES):
    m = models[name]
    truth = datasets.sample(name, jax.random.key(9), 2000)
    for col, kind in enumerate(["cnf", "diffusion"]):
        s = m[kind].sample(jax.random.key(4), 2000)
        plotting.sample_overlay(s, truth, ax=axes[row, col], labels=(kind, "data"),
                                title=f"{name}: {kind} samples vs data")
fig.tight_layout()""",
    ),
    ("md", """## Animation: particles flowing from $N(0, I)$ to pinwheel"""),
    (
        "code",
        """ts, xs = models["pinwheel"]["cnf"].trajectories(jax.random.key(5), 1000, num_times=40)
gif = plotting.animate_particles(ts, xs, OUT / "cnf_pinwheel_flow.gif", fps=12,
                                 reference=models["pinwheel"]["train"],
                                 title="CNF on pinwheel")
display(Image(filename=gif))""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, src in CELLS:
        cell = (
            nbformat.v4.new_markdown_cell(src) if kind == "md" else (nbformat.v4.new_code_cell(src))
        )
        nb.cells.append(cell)
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 1800) -> nbformat.NotebookNode:
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    return nb


if __name__ == "__main__":
    nb = execute(build())
    path = HERE / "ode_trajectories.ipynb"
    tmp = path.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)
    print(f"wrote {path}")
    sys.exit(0)
