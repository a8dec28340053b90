"""Sessions: `nox -s tests` (fast suite + experiment smoke runs), `nox -s slow`, `nox -s lint`."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install flowlab and run the fast test suite (slow tests excluded)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs, env={"MPLBACKEND": "Agg"})


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
def bench(session: nox.Session) -> None:
    """Speed figures: `benchmarks/run.py` (prints a table, writes benchmarks/results.json)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)
