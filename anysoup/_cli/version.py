"""``anysoup --version``: anysoup's version and those of what it runs on.

Laid out as curl's: the first line names the program and its libraries,
then the event loops the command can run on (``ANYSOUP_BACKEND``), then
the optional libraries that are installed. Versions come from the
installed distributions' metadata: nothing is imported for them (trio is
found, not loaded).
"""

from __future__ import annotations

import importlib.util
import platform
import ssl
from importlib import metadata

from .._version import __version__

__all__ = ["version_text"]

#: Distributions that turn on something when installed, and what.
_OPTIONAL = (
    ("brotli", "br"),
    ("brotlicffi", "br"),
    ("zstandard", "zstd"),
    ("pyspnego", "NTLM, Negotiate"),
    ("python-socks", "SOCKS proxies"),
    ("rich", "progress bar"),
)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def version_text() -> str:
    """The ``--version`` text, ending with a newline."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    openssl = ssl.OPENSSL_VERSION.split()
    libraries = [f"{name}/{_version(name) or '?'}" for name in ("anyio", "h11", "h2", "wsproto")]
    # "OpenSSL 3.0.13 30 Jan 2024" -> OpenSSL/3.0.13 (LibreSSL says its name the same way).
    libraries.append("/".join(openssl[:2]))
    backends = ["asyncio"]
    if importlib.util.find_spec("trio") is not None:
        backends.append(f"trio/{_version('trio') or '?'}")
    else:
        backends.append("(trio: not installed; pip install 'anysoup[trio]')")
    optional = [
        f"{name}/{version} ({what})"
        for name, what in _OPTIONAL
        if (version := _version(name)) is not None
    ]
    lines = [
        f"anysoup {__version__} ({python}) {' '.join(libraries)}",
        f"Backends: {' '.join(backends)}",
        f"Optional: {', '.join(optional) if optional else 'none installed'}",
    ]
    return "\n".join(lines) + "\n"
