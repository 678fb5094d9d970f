"""Making connections: name lookup, TCP or Unix socket, TLS handshake.

Runs in a connection's own task (``_pool.py``), never in a request's task.
Every failure leaves as :class:`anysoup.ConnectError` or
:class:`anysoup.TlsError` naming the host and the cause.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSStream

from ._enums import NetworkEvent
from ._exceptions import ConnectError
from ._tls import tls_error

__all__ = ["ConnectPlan", "RemoteAddress", "UnixSocketAddress", "open_stream"]


@dataclass(frozen=True)
class UnixSocketAddress:
    """The path of a Unix domain socket, for ``Session(remote_connectable=…)``."""

    #: The socket's file system path.
    path: str


#: Where a connection goes or came from: ``(host, port)`` or a Unix socket.
RemoteAddress = tuple[str, int] | UnixSocketAddress

#: Looks up a host name: ``(host, port) -> [address, …]`` in the order to try.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The system resolver through anyio (a worker thread)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class ConnectPlan:
    """Everything needed to make one connection (part of it is the pool key)."""

    #: The URI's host (the TLS server name and the default address).
    host: str
    #: The URI's port.
    port: int
    #: The context to wrap the socket in TLS with, or None for plain HTTP.
    ssl_context: ssl.SSLContext | None = None
    #: Where to connect instead of ``host:port``.
    remote: RemoteAddress | None = None
    #: The local address to bind to.
    local_host: str | None = None
    #: The ``Host`` header for this host and port (computed once, not per request).
    authority: str = ""

    @property
    def label(self) -> str:
        """``host:port`` for messages (brackets for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class ConnectLog:
    """What happened while connecting: network events and their times."""

    events: list[NetworkEvent] = field(default_factory=list)
    times: dict[NetworkEvent, float] = field(default_factory=dict)

    def add(self, event: NetworkEvent) -> None:
        """Record ``event`` now."""
        self.events.append(event)
        self.times[event] = time.monotonic()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def open_stream(
    plan: ConnectPlan, log: ConnectLog, resolver: Resolver = resolve
) -> tuple[ByteStream, RemoteAddress]:
    """Connect as ``plan`` says; return the ready stream and the peer's address.

    Raises:
        ConnectError: The name did not resolve or no address accepted.
        TlsError: The TLS handshake failed.
    """
    stream: ByteStream
    remote = plan.remote
    if isinstance(remote, UnixSocketAddress):
        log.add(NetworkEvent.CONNECTING)
        try:
            stream = await anyio.connect_unix(remote.path)
        except OSError as exc:
            raise ConnectError(
                f"connect to {plan.label} via Unix socket {remote.path!r}: {_cause(exc)}"
            ) from exc
        peer: RemoteAddress = remote
        log.add(NetworkEvent.CONNECTED)
    else:
        host, port = remote if remote is not None else (plan.host, plan.port)
        stream, peer = await _connect_tcp(host, port, plan, log, resolver)
    if plan.ssl_context is not None:
        log.add(NetworkEvent.TLS_HANDSHAKING)
        try:
            stream = await TLSStream.wrap(
                stream,
                hostname=plan.host,
                ssl_context=plan.ssl_context,
                standard_compatible=False,
            )
        except BaseException as exc:
            await anyio.aclose_forcefully(stream)
            if isinstance(
                exc, (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)
            ):
                cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
                raise tls_error(cause or exc, plan.label) from exc
            raise
        log.add(NetworkEvent.TLS_HANDSHAKED)
    log.add(NetworkEvent.COMPLETE)
    return stream, peer


async def _connect_tcp(
    host: str, port: int, plan: ConnectPlan, log: ConnectLog, resolver: Resolver
) -> tuple[ByteStream, RemoteAddress]:
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if _is_ip(host):
        addresses = [host]
    else:
        log.add(NetworkEvent.RESOLVING)
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise ConnectError(f"resolve {host!r}: {_cause(exc)}") from exc
        if not addresses:
            raise ConnectError(f"resolve {host!r}: no address found")
        log.add(NetworkEvent.RESOLVED)
    failures: list[str] = []
    for address in addresses:
        log.add(NetworkEvent.CONNECTING)
        try:
            stream = await anyio.connect_tcp(address, port, local_host=plan.local_host)
        except OSError as exc:
            failures.append(f"{address}: {_cause(exc)}")
            continue
        log.add(NetworkEvent.CONNECTED)
        peer = stream.extra(SocketAttribute.remote_address)
        return stream, (str(peer[0]), int(peer[1]))
    detail = failures[0] if len(failures) == 1 else "; ".join(failures)
    if len(failures) == 1:
        detail = detail.split(": ", 1)[1]
    raise ConnectError(f"connect to {label}: {detail}")


def _cause(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return exc.strerror.lower() if exc.strerror else str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    # anyio may raise OSError("All connection attempts failed") with the real cause chained.
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause is not exc:
        return _cause(cause)
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
