"""Making connections: name lookup, TCP or Unix socket, TLS handshake.

Runs in a connection's own task (``_pool/pool.py``), never in a request's task.
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
from anyio.abc import ByteStream, SocketAttribute, SocketStream

from .._model.addresses import ProxyURI, RemoteAddress, UnixSocketAddress
from .._model.certificate import TlsCertificate, identity_flags
from .._model.enums import NetworkEvent, TlsCertificateFlags
from .._model.exceptions import ConnectError, TlsError
from .io_errors import describe_io_error
from .proxy_connect import through_proxy
from .tls import tls_error

__all__ = ["ConnectPlan", "RemoteAddress", "UnixSocketAddress", "open_stream"]


#: Seconds before the next address is tried while one still connects (RFC 8305 §5).
HAPPY_EYEBALLS_DELAY = 0.25

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
    #: A context that verifies nothing: when ``ssl_context`` rejects the peer,
    #: connect again with it and let the message judge the certificate.
    relaxed_context: ssl.SSLContext | None = None
    #: Whether the contexts present a client certificate.
    identity: bool = False
    #: Whether the TLS contexts offer HTTP/2 (ALPN ``h2`` before ``http/1.1``).
    http2: bool = False
    #: Where to connect instead of ``host:port``.
    remote: RemoteAddress | None = None
    #: The local ``(host, port)`` to bind to.
    local: tuple[str, int] | None = None
    #: The ``Host`` header for this host and port (computed once, not per request).
    authority: str = ""
    #: The proxy to go through, or None for a direct connection.
    proxy: ProxyURI | None = None
    #: Through an http(s) proxy: open a CONNECT tunnel (https, ws, wss), rather
    #: than send requests in absolute form to the proxy (http). Always True
    #: through SOCKS, whose stream ends at the origin too.
    tunnel: bool = False
    #: The verifying context for an https proxy.
    proxy_context: ssl.SSLContext | None = None
    #: ``Proxy-Authorization`` for the CONNECT request.
    proxy_authorization: str | None = None
    #: ``User-Agent`` for the CONNECT request.
    user_agent: str | None = None

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
) -> tuple[ByteStream, RemoteAddress, TlsCertificateFlags]:
    """Connect as ``plan`` says.

    Returns:
        The ready stream, the peer's address, and the problems of the peer's
        certificate (none unless the plan allows a relaxed connection).

    Raises:
        ConnectError: The name did not resolve or no address accepted.
        TlsError: The TLS handshake failed.
    """
    stream, peer = await _raw_stream(plan, log, resolver)
    errors = TlsCertificateFlags.NO_FLAGS
    if plan.ssl_context is not None:
        log.add(NetworkEvent.TLS_HANDSHAKING)
        try:
            stream = await _handshake(stream, plan, plan.ssl_context)
        except TlsError as exc:
            if plan.relaxed_context is None or not exc.errors:
                raise
            # The message may accept this certificate: connect again to the same
            # peer without verification and report what the first attempt found.
            if plan.proxy is not None:
                stream, peer = await _raw_stream(plan, ConnectLog(), resolver)
            else:
                stream, peer = await _transport(plan, peer, ConnectLog(), resolver)
            stream = await _handshake(stream, plan, plan.relaxed_context)
            from anyio.streams.tls import TLSAttribute  # loaded by _tls already

            der = stream.extra(TLSAttribute.peer_certificate_binary, None)
            errors = exc.errors
            if der:
                errors |= identity_flags(TlsCertificate(der), plan.host)
        log.add(NetworkEvent.TLS_HANDSHAKED)
    log.add(NetworkEvent.COMPLETE)
    return stream, peer, errors


async def _raw_stream(
    plan: ConnectPlan, log: ConnectLog, resolver: Resolver
) -> tuple[ByteStream, RemoteAddress]:
    """The stream to the origin before its TLS: direct, or through the plan's proxy."""
    proxy = plan.proxy
    if proxy is None:
        return await _transport(plan, plan.remote, log, resolver)

    async def proxy_handshake(stream: ByteStream, host: str, label: str) -> ByteStream:
        assert plan.proxy_context is not None
        return await _tls(stream, host, label, plan.proxy_context, identity=False)

    return await through_proxy(plan, proxy, log, resolver, _connect_tcp, proxy_handshake)


async def _handshake(stream: ByteStream, plan: ConnectPlan, context: ssl.SSLContext) -> ByteStream:
    return await _tls(stream, plan.host, plan.label, context, identity=plan.identity)


async def _tls(
    stream: ByteStream, host: str, label: str, context: ssl.SSLContext, *, identity: bool
) -> ByteStream:
    # Here, not at the top: anyio's TLS module (and logging) load with the first
    # TLS connection, not with ``import anysoup``.
    from anyio.streams.tls import TLSStream

    try:
        return await TLSStream.wrap(
            stream, hostname=host, ssl_context=context, standard_compatible=False
        )
    except BaseException as exc:
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)):
            cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
            raise tls_error(cause or exc, label, identity=identity) from exc
        raise


async def _transport(
    plan: ConnectPlan, remote: RemoteAddress | None, log: ConnectLog, resolver: Resolver
) -> tuple[ByteStream, RemoteAddress]:
    """The TCP or Unix-socket stream to ``remote`` (default: the plan's host and port)."""
    if isinstance(remote, UnixSocketAddress):
        if plan.local is not None:
            raise ConnectError(
                f"connect to {plan.label} via Unix socket {remote.path!r}: "
                f"local_address {plan.local!r} can't be bound to a Unix socket"
            )
        log.add(NetworkEvent.CONNECTING)
        try:
            stream = await anyio.connect_unix(remote.path)
        except OSError as exc:
            cause = describe_io_error(exc)
            raise ConnectError(
                f"connect to {plan.label} via Unix socket {remote.path!r}: {cause}"
            ) from exc
        log.add(NetworkEvent.CONNECTED)
        return stream, remote
    host, port = remote if remote is not None else (plan.host, plan.port)
    return await _connect_tcp(host, port, plan, log, resolver)


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
            raise ConnectError(f"resolve {host!r}: {describe_io_error(exc)}") from exc
        if not addresses:
            raise ConnectError(f"resolve {host!r}: no address found")
        log.add(NetworkEvent.RESOLVED)
    failures: list[str] = []
    stream = await _race(interleave(addresses), port, plan.local, log, failures)
    if stream is None:
        detail = failures[0] if len(failures) == 1 else "; ".join(failures)
        if len(failures) == 1:
            detail = detail.split(": ", 1)[1]
        raise ConnectError(f"connect to {label}: {detail}")
    log.add(NetworkEvent.CONNECTED)
    peer = stream.extra(SocketAttribute.remote_address)
    return stream, (str(peer[0]), int(peer[1]))


def interleave(addresses: list[str]) -> list[str]:
    """Alternate address families, the first family first (RFC 8305 §4)."""
    first_v6 = ":" in addresses[0]
    same = [a for a in addresses if (":" in a) == first_v6]
    other = [a for a in addresses if (":" in a) != first_v6]
    ordered: list[str] = []
    for index in range(max(len(same), len(other))):
        ordered.extend(group[index] for group in (same, other) if index < len(group))
    return ordered


async def _race(
    addresses: list[str],
    port: int,
    local: tuple[str, int] | None,
    log: ConnectLog,
    failures: list[str],
) -> SocketStream | None:
    """Happy Eyeballs (RFC 8305): start the next attempt when one fails or lags.

    The first connected stream wins; the other attempts are cancelled, and a
    stream that connects after the winner is closed. Returns None when every
    address failed (their causes are appended to ``failures``).
    """
    winner: SocketStream | None = None

    async def attempt(address: str, done: anyio.Event) -> None:
        nonlocal winner
        try:
            stream = await anyio.connect_tcp(
                address,
                port,
                local_host=local[0] if local else None,
                local_port=local[1] if local else None,
            )
        except OSError as exc:
            failures.append(f"{address}: {describe_io_error(exc)}")
            return
        finally:
            done.set()
        if winner is None:
            winner = stream
            group.cancel_scope.cancel()
        else:
            await anyio.aclose_forcefully(stream)

    try:
        async with anyio.create_task_group() as group:
            for address in addresses:
                done = anyio.Event()
                log.add(NetworkEvent.CONNECTING)
                group.start_soon(attempt, address, done)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await done.wait()
    except BaseException:
        if winner is not None:
            await anyio.aclose_forcefully(winner)
        raise
    return winner
