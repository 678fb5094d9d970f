"""Shared fixtures: both anyio backends for every async test, and trustme TLS."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import ssl
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path

import anyio
import pytest
import trustme
from anyio.abc import SocketAttribute
from servers import CertFiles

from anysoup import PoolStatistics, Session

#: A session reads these when it is made (DESIGN §6): the suite talks to its
#: own loopback servers, so the machine's proxy settings must not reroute it.
#: Tests about proxies set them themselves (monkeypatch.setenv).
_PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)
for _name in _PROXY_VARIABLES:
    os.environ.pop(_name, None)

#: The anysoup_mock fixture: pytest loads anysoup's plugin through its entry
#: point once the package is installed with it; a checkout run against an
#: older install loads it here (never both: pytest refuses a plugin twice).
if not any(
    point.value == "anysoup.testing._plugin"
    for point in importlib.metadata.entry_points(group="pytest11")
):
    pytest_plugins = ["anysoup.testing._plugin"]

# -- every async test runs on asyncio and on trio ------------------------------


@pytest.fixture(
    scope="module",
    params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")],
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The backend anyio's plugin runs the test on."""
    return str(request.param)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, object, object]:
    """Mark every ``async def`` test with ``anyio`` so modules need no markers.

    This must happen before anyio's own (tryfirst) hook looks for the marker
    to add the ``anyio_backend`` fixture; a wrapper always runs first. Tests
    marked ``trio`` are left to pytest-trio.
    """
    if collector.istestfunction(obj, name):
        func = obj.hypothesis.inner_test if hasattr(obj, "hypothesis") else obj
        own_marks = {mark.name for mark in getattr(obj, "pytestmark", ())}
        trio_only = "trio" in own_marks or collector.get_closest_marker("trio") is not None
        if inspect.iscoroutinefunction(func) and not trio_only:
            pytest.mark.anyio(obj)
    return (yield)


# -- TLS: one trustme CA and leaf for the whole session ------------------------


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_ca_pem(tls_ca: trustme.CA) -> bytes:
    """The CA certificate, PEM-encoded, for clients that load trust from bytes."""
    return tls_ca.cert_pem.bytes()


@pytest.fixture(scope="session")
def tls_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    """The server certificate, valid for localhost, 127.0.0.1 and ::1."""
    return tls_ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture
def tls_server_context(tls_leaf: trustme.LeafCert) -> ssl.SSLContext:
    """A server-side context allowing TLS 1.2 and 1.3.

    Fresh for each test (issuing the leaf is the slow part, and that is
    shared), so a test may narrow versions or set ALPN without leaking.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    tls_leaf.configure_cert(context)
    return context


@pytest.fixture
def tls_client_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A default client-side context that trusts ``tls_ca`` (fresh for each test)."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def tls_cert_files(
    tls_leaf: trustme.LeafCert, tmp_path_factory: pytest.TempPathFactory
) -> CertFiles:
    """The leaf certificate chain and key written to PEM files."""
    directory: Path = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    for index, blob in enumerate(tls_leaf.cert_chain_pems):
        blob.write_to_path(certfile, append=index > 0)
    tls_leaf.private_key_pem.write_to_path(keyfile)
    return CertFiles(str(certfile), str(keyfile))


# --- session helpers ---


@pytest.fixture
def leak_check() -> Callable[[Session], Awaitable[None]]:
    """``await leak_check(session)`` after a session closed: no socket, no task left.

    Every connection the session ever made must be closed with its task ended,
    and no task named ``anysoup …`` may still run.
    """

    async def check(session: Session) -> None:
        assert session._task_group is None, "the session is still open"
        for conn in list(session._pool.connections):
            assert conn.finished, f"{conn!r}: its task is still running"
            if conn.stream is not None:
                sock = conn.stream.extra(SocketAttribute.raw_socket, None)
                assert sock is None or sock.fileno() == -1, f"{conn!r}: socket still open"
        stats = session.statistics()
        assert stats == PoolStatistics(0, 0, 0, 0, 0), stats
        names = [t.name for t in anyio.get_running_tasks()]
        assert not [n for n in names if n and n.startswith("anysoup")], names

    return check
