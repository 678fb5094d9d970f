"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``bench``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
BENCH = ROOT.parent / "shared" / "bench"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite on asyncio and trio, with branch coverage."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov=anysoup", "--cov-report=term", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "anysoup", "tests", "docs", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "anysoup", "tests", "docs", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the examples."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "anysoup", "examples")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site, warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """The shared benchmark harness, anysoup against its floor and peers.

    Needs nginx (``apt-get install -y nginx``). Extra arguments go to run.py,
    e.g. ``nox -s bench -- --scenarios seq,conc``.
    """
    session.install("-r", str(BENCH / "requirements.txt"))
    session.install("-e", ".")
    args = session.posargs or [
        "--compare",
        "--clients",
        "anysoup,h11raw,httpx,aiohttp",
        "--baseline",
        "h11raw",
        "--scenarios",
        "seq,conc,gzip,large,ws",
    ]
    session.run("python", str(BENCH / "run.py"), *args, env={"PYTHONHASHSEED": "0"})
