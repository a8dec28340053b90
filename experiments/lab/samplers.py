"""The one sampler vocabulary of the experiment scripts: a name -> its label and a factory
that builds the flowlab sampler object with a number of steps.

Strings live here, at the command-line edge (the registry's table rows, the diffusion and
DDPM scripts' ``--sampler`` choices, the sampler study); the library takes the objects
:func:`make` returns. A script may keep its own command-line spelling through
:data:`ALIASES` (the diffusion script's ``em`` is ``sde`` here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import diffrax

import flowlab
from flowlab.samplers import (
    DDIM,
    ODE,
    AbstractSampler,
    Ancestral,
    EulerMaruyama,
    PredictorCorrector,
)


@dataclasses.dataclass(frozen=True)
class Sampler:
    """One sampler of the vocabulary: its display ``label`` and ``build(steps, model)``
    (``steps`` ``None``: the sampler's own default; ``model`` only where the sampler's
    settings are read off it, e.g. the fixed-step PF-ODE's end time)."""

    label: str
    build: Callable[[int | None, object], AbstractSampler]


def _steps(cls, **fixed):
    def build(steps, model=None):
        return cls(**fixed) if steps is None else cls(steps=steps, **fixed)

    return build


def _ode_euler(steps, model=None):
    """Fixed-step Euler on the probability-flow ODE, ``dt = (1 - eps) / steps``."""
    eps = model.sde.eps if model is not None else 1e-3
    opts = flowlab.SolverOptions(solver=diffrax.Euler(), dt0=(1.0 - eps) / steps)
    return ODE(options=opts)


SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler("DDPM (ancestral)", _steps(Ancestral)),
    "ddim": Sampler("DDIM (η = 0)", _steps(DDIM, eta=0.0)),
    "sde": Sampler("reverse SDE (Euler–Maruyama)", _steps(EulerMaruyama)),
    "pc": Sampler("predictor-corrector", _steps(PredictorCorrector)),
    "ode_euler": Sampler("PF-ODE (Euler)", _ode_euler),
    "ode_adaptive": Sampler("PF-ODE (adaptive Dopri5)", lambda steps=None, model=None: ODE()),
}
"""Every sampler the scripts name, by name."""

ALIASES = {"em": "sde", "ode": "ode_adaptive", "ancestral": "ddpm"}
"""Other spellings the scripts' command lines and outputs keep."""

LABELS = {name: s.label for name, s in SAMPLERS.items()}
"""Display label of every sampler."""


def canonical(name: str) -> str:
    """The vocabulary's name for ``name`` (or one of its :data:`ALIASES`), or a
    ``ValueError`` listing the valid ones."""
    name = ALIASES.get(name, name)
    if name not in SAMPLERS:
        valid = ", ".join([*SAMPLERS, *ALIASES])
        raise ValueError(f"unknown sampler {name!r}; expected one of: {valid}")
    return name


def make(name: str, steps: int | None = None, model=None) -> AbstractSampler:
    """The flowlab sampler called ``name`` with ``steps`` steps (``None``: its default)."""
    return SAMPLERS[canonical(name)].build(steps, model)


def label(name: str) -> str:
    """The display label of the sampler called ``name`` (or an alias)."""
    return SAMPLERS[canonical(name)].label


def factory(name: str, steps_setting: str) -> Callable[[dict], AbstractSampler]:
    """A grid row's sampler factory: ``settings -> make(name, settings[steps_setting])``."""
    canonical(name)
    return lambda settings: make(name, settings[steps_setting])
