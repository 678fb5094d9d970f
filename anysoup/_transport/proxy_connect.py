"""Connecting through a proxy: HTTP CONNECT tunnels (over TCP or TLS) and SOCKS.

Runs in a connection's own task, like the rest of ``_transport/connect.py``, which
calls :func:`through_proxy` for a plan with a proxy and then does the origin's
TLS handshake on the stream it gets (TLS inside TLS for an https proxy).

* **HTTP forward proxy** (an ``http://`` request through an http(s) proxy):
  the stream ends at the proxy; the core then writes requests in absolute
  form (RFC 9112 §3.2.2) with ``Proxy-Authorization``. Nothing to do here
  but connect (and handshake with an https proxy).
* **CONNECT tunnel** (https, ws and wss through an http(s) proxy): one
  ``CONNECT host:port`` request carrying only ``Host``, ``User-Agent`` and
  ``Proxy-Authorization`` (RFC 9110 §9.3.6): never the message's cookies or
  ``Authorization``. A 2xx answer makes the stream the origin's; any other
  answer is :class:`ProxyRefused`, which the core turns into the message's
  status and headers (libsoup), so a 407 reaches the auth manager.
* **SOCKS** (socks4, socks4a, socks5, socks5h) is negotiated by the
  ``python-socks`` library (the ``anysoup[socks]`` extra) on a connection it
  opens to the proxy; socks4a and socks5h let the proxy resolve the name.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

import anyio
import h11
from anyio.abc import ByteStream

from .._model.enums import NetworkEvent
from .._model.exceptions import ConnectError
from .io_errors import IO_ERRORS, describe_io_error

if TYPE_CHECKING:
    from .connect import ConnectLog, ConnectPlan, RemoteAddress, Resolver
    from .proxy_resolver_policy import ProxyURI

__all__ = ["ProxyRefused", "through_proxy"]

#: The largest CONNECT answer head read (the HTTP driver's cap too).
MAX_CONNECT_HEAD = 256 * 1024


class ProxyRefused(ConnectError):
    """The proxy answered CONNECT with a non-2xx status.

    Internal: the core makes the answer the message's response.
    """

    def __init__(self, text: str, status: int, reason: str, headers: Any) -> None:
        super().__init__(text)
        self.status = status
        #: h11's header block of the answer.
        self.reason = reason
        self.headers = headers


async def through_proxy(
    plan: ConnectPlan,
    proxy: ProxyURI,
    log: ConnectLog,
    resolver: Resolver,
    connect_tcp: TransportFn,
    handshake: HandshakeFn,
) -> tuple[ByteStream, RemoteAddress]:
    """The stream to the origin of ``plan`` (before its TLS) through ``proxy``.

    ``connect_tcp`` and ``handshake`` are ``_transport/connect.py``'s own steps, so a
    proxy gets Happy Eyeballs, ``local_address`` and trust like any server.

    Raises:
        ConnectError: The proxy could not be reached, or refused (``ProxyRefused``
            for an HTTP answer other than 2xx).
        TlsError: The TLS handshake with an https proxy failed.
    """
    if proxy.is_socks:
        return await _socks(plan, proxy, log)
    try:
        stream, peer = await connect_tcp(proxy.host, proxy.port, plan, log, resolver)
    except ConnectError as exc:
        raise ConnectError(f"proxy {proxy.label} for {plan.label}: {exc}") from exc
    if proxy.tls:
        stream = await handshake(stream, proxy.host, proxy.label)
    if plan.tunnel:
        log.add(NetworkEvent.PROXY_NEGOTIATING)
        try:
            await _connect_tunnel(stream, plan, proxy)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        log.add(NetworkEvent.PROXY_NEGOTIATED)
    return stream, peer


async def _connect_tunnel(stream: ByteStream, plan: ConnectPlan, proxy: ProxyURI) -> None:
    """Ask the proxy for a tunnel to the plan's host and port."""
    target = plan.label
    where = f"CONNECT {target} through proxy {proxy.label}"
    headers = [("Host", target)]
    if plan.user_agent:
        headers.append(("User-Agent", plan.user_agent))
    if plan.proxy_authorization:
        headers.append(("Proxy-Authorization", plan.proxy_authorization))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_CONNECT_HEAD)
    data = conn.send(h11.Request(method="CONNECT", target=target, headers=headers))
    try:
        await stream.send(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = await stream.receive()
                except anyio.EndOfStream:
                    # h11 would call the early close a protocol error: say what it is.
                    raise ConnectError(
                        f"{where}: the proxy closed the connection without an answer"
                    ) from None
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            break
    except IO_ERRORS as exc:
        raise ConnectError(f"{where}: {_describe(exc)}") from exc
    except h11.RemoteProtocolError as exc:
        raise ConnectError(f"{where}: the proxy's answer is not HTTP ({exc})") from exc
    assert isinstance(event, h11.Response), event  # h11 gives nothing else to a client here
    status = event.status_code
    reason = event.reason.decode("latin-1")
    if not 200 <= status < 300:
        raise ProxyRefused(
            f"{where}: the proxy answered {status} {reason}".rstrip(),
            status,
            reason,
            event.headers,
        )
    leftover, _closed = conn.trailing_data
    if leftover:  # the origin can't have spoken before the client's TLS hello
        raise ConnectError(f"{where}: the proxy sent data after its 2xx answer")


async def _socks(
    plan: ConnectPlan, proxy: ProxyURI, log: ConnectLog
) -> tuple[ByteStream, RemoteAddress]:
    """A SOCKS tunnel to the plan's host and port, negotiated by python-socks."""
    try:
        from python_socks import ProxyConnectionError, ProxyError, ProxyType
        from python_socks.async_.anyio import Proxy
    except ImportError:
        raise ConnectError(
            f"connect to {plan.label} through SOCKS proxy {proxy.label}: SOCKS needs "
            "python-socks (pip install 'anysoup[socks]')"
        ) from None
    # python-socks' anyio backend lets its own IncompleteReadError (the proxy
    # hung up mid-handshake, as some do on wrong credentials) and anyio's
    # stream errors escape unwrapped; the class is private, hence the lookup.
    socks_eof = getattr(sys.modules.get("python_socks._errors"), "IncompleteReadError", OSError)
    kind = ProxyType.SOCKS4 if proxy.scheme in ("socks4", "socks4a") else ProxyType.SOCKS5
    client = Proxy(
        kind,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=proxy.remote_dns,
    )
    where = f"connect to {plan.label} through SOCKS proxy {proxy.label}"
    log.add(NetworkEvent.CONNECTING)
    log.add(NetworkEvent.PROXY_NEGOTIATING)
    try:
        stream = await client.connect(
            plan.host,
            plan.port,
            timeout=math.inf,  # the pool's connect timeout bounds it
            local_host=plan.local[0] if plan.local else None,
        )
    except ProxyError as exc:
        raise ConnectError(f"{where}: the proxy refused: {exc}") from exc
    except ProxyConnectionError as exc:  # its text repeats the proxy and hides the cause
        raise ConnectError(f"{where}: {_describe(exc.__cause__ or exc)}") from exc
    except (*IO_ERRORS, socks_eof) as exc:
        raise ConnectError(f"{where}: {_describe(exc)}") from exc
    log.add(NetworkEvent.CONNECTED)
    log.add(NetworkEvent.PROXY_NEGOTIATED)
    return stream, (proxy.host, proxy.port)


def _describe(exc: BaseException) -> str:
    if type(exc).__name__ == "IncompleteReadError":  # python-socks'
        return "the proxy closed the connection during the SOCKS handshake"
    return describe_io_error(exc)


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    TransportFn = Callable[
        [str, int, ConnectPlan, ConnectLog, Resolver],
        Awaitable[tuple[ByteStream, RemoteAddress]],
    ]
    HandshakeFn = Callable[[ByteStream, str, str], Awaitable[ByteStream]]
