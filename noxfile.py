"""Sessions: `nox -s tests` (fast suite + experiment smoke runs), `nox -s slow`, `nox -s lint`,
`nox -s docs`."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install flowlab and run the fast test suite (slow tests excluded), spread over the
    machine's cores by pytest-xdist (``nox -s tests -- -n 0`` runs it in one process)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-m",
        "not slow",
        "-n",
        "auto",
        "--dist",
        "worksteal",
        "--durations=15",
        *session.posargs,
        env={"MPLBACKEND": "Agg"},
    )


@nox.session
def slow(session: nox.Session) -> None:
    """The slow tests: training runs that check quality targets."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs, env={"MPLBACKEND": "Agg"})


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks with ruff."""
    session.install("ruff")
    session.run(
        "ruff", "check", "flowlab", "experiments", "tests", "benchmarks", "notebooks", "noxfile.py"
    )
    session.run(
        "ruff", "format", "--check", "flowlab", "experiments", "tests", "benchmarks", "notebooks"
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site offline with warnings as errors (`mkdocs build --strict`
    into build/site), then check the built site: every public name in objects.inv, no asset
    loaded from another host, the notebook's outputs rendered."""
    session.install("-e", ".[docs,test]")
    env = {"NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    session.run("mkdocs", "build", "--strict", "--clean", "--site-dir", "build/site", env=env)
    session.run(
        "pytest",
        "tests/test_docs.py",
        "-k",
        "site",
        "-m",
        "not slow",
        *session.posargs,
        env={**env, "FLOWLAB_DOCS_SITE": "build/site"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Speed figures: `benchmarks/run.py` (prints a table, writes benchmarks/results.json)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def bench_torchcfm(session: nox.Session) -> None:
    """Optional side-by-side training speed, flowlab vs torchcfm, per step or (with
    ``-- --time-to-quality``) to a target exact hold-out NLL (torch is never a flowlab
    dependency; it is installed only in this session's virtualenv)."""
    # torch pinned to the CPU wheel on this machine's disk (an unpinned torch could pull a
    # multi-GB CUDA build); the constraint keeps torchcfm's dependencies (torchdyn, pot, ...)
    # and the project install from moving it.
    constraints = f"{session.create_tmp()}/torch-constraint.txt"
    with open(constraints, "w") as f:
        f.write("torch==2.13.0\n")
    session.install("-c", constraints, "torch==2.13.0", "torchcfm")
    session.install("-c", constraints, "-e", ".")
    session.run("python", "benchmarks/torchcfm_side_by_side.py", *session.posargs)


FLOWJAX = "flowjax==19.1.2"


@nox.session
def bench_flowjax(session: nox.Session) -> None:
    """Optional side by side: time to a target exact hold-out NLL, flowjax's spline flows
    (coupling and masked autoregressive) beside flowlab's flow matching (flowjax is never a
    flowlab dependency; it is installed only in this session's virtualenv)."""
    # flowlab first; then flowjax under a constraint that holds jax, jaxlib, equinox and
    # optax at the versions flowlab brought (flowjax 19.1.2 asks only jax>=0.7, equinox>=0.11,
    # optax, paramax, lineax): pip fails rather than moving them.
    session.install("-e", ".")
    pins = session.run(
        "python",
        "-c",
        "import importlib.metadata as m; "
        "print('\\n'.join(f'{d}=={m.version(d)}' for d in ('jax', 'jaxlib', 'equinox', 'optax')))",
        silent=True,
    )
    constraints = f"{session.create_tmp()}/jax-constraint.txt"
    with open(constraints, "w") as f:
        f.write(pins)
    session.install("-c", constraints, FLOWJAX)
    session.run("python", "benchmarks/flowjax_side_by_side.py", *session.posargs)
