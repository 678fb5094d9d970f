"""Developer tasks (``nox -s NAME``): tests, tests_all, lint, typecheck, docs, bench."""

from __future__ import annotations

import os
import shutil

import nox
import nox.command

#: The Pythons anysoup supports (``requires-python`` and the classifiers in
#: pyproject.toml say the same): ``tests_all`` runs the suite on each.
SUPPORTED_PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
# tests_all skips a supported Python this machine lacks (nox looks for
# python3.X on PATH) instead of failing; --error-on-missing-interpreters
# turns that back into an error where every version must run.
nox.options.error_on_missing_interpreters = False


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite on asyncio and trio, with branch coverage."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov=anysoup", "--cov-report=term", *session.posargs)


@nox.session(python=SUPPORTED_PYTHONS)
def tests_all(session: nox.Session) -> None:
    """The whole test suite once on every supported Python found on PATH.

    nox finds an interpreter as ``python3.X`` on PATH. pyenv's shims answer
    only for the versions selected, so select them all for the run::

        PYENV_VERSION=3.11.7:3.12.1:3.13.0 nox -s tests_all

    (or put each build's ``$(pyenv root)/versions/3.X.Y/bin`` on PATH).
    A missing version is skipped; extra arguments go to pytest.
    """
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("-e", ".[lint]")
    paths = ["anysoup", "tests", "docs", "examples", "benchmarks", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


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


def _ensure_nginx(session: nox.Session) -> None:
    """Install Debian's nginx when it is missing and this session may (root, apt-get).

    The harness runs the binary itself, with its own config and port. Without
    nginx it falls back to a Python server (benchmarks/serve.py), and its
    tables say so.
    """
    if shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.warn("no nginx, and no root apt-get to install it: using the Python fallback")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run("apt-get", "install", "-y", "-q", "nginx", external=True, env=env)
    except nox.command.CommandFailed:
        session.warn("apt-get could not install nginx: using the Python fallback")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (benchmarks/README.md): anysoup against its floor and peers.

    Extra arguments go to benchmarks/run.py, e.g. ``nox -s bench -- --scale
    0.05`` for a quick look, or ``-- --compare --scenarios seq,queue``. With
    none, it makes the README's table: every scenario and client, 3 rounds.
    """
    _ensure_nginx(session)
    session.install("-r", "benchmarks/requirements.txt")
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *(session.posargs or ["--compare"]))
