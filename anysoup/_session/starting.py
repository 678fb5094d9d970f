"""What every exchange does first and last, whatever the protocol.

First: network events, signals, TLS facts, the target. Last: the body's
metrics at its end, and its ``got_body`` and ``finished`` signals once the
stream closes. Shared by the HTTP/1.1 exchange (``core.py``) and the
HTTP/2 one (``exchange_h2.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._model.enums import HTTPVersion, NetworkEvent, TlsCertificateFlags
from .._model.signals import active
from .._model.uri import absolute_form

if TYPE_CHECKING:
    from .._model.message import Message, MessageMetrics
    from .._pool.pool import Connection

__all__ = ["begin_exchange", "body_ended", "emit", "expects_continue", "finish_body"]

_NO_ERRORS = TlsCertificateFlags.NO_FLAGS
_HTTP_1_1, _HTTP_2_0 = HTTPVersion.HTTP_1_1, HTTPVersion.HTTP_2_0


async def begin_exchange(conn: Connection, msg: Message) -> str:
    """Tell ``msg`` about its connection (events, version, ``starting``, TLS); return its target.

    The target is the request line's: ``*`` for an OPTIONS ping, the
    absolute form to a forwarding proxy (RFC 9112 §3.2.2), else the path
    and query.
    """
    metrics = msg.metrics
    if conn.log is not None:
        await _report_connect(conn, msg, metrics)
    # The version of this exchange, known from ``starting`` on, as libsoup sets
    # it from the connection on each send (soup_session_send_queue_item): a
    # message sent again over HTTP/1.1 after an HTTP/2 hop says so at once.
    msg.http_version = _HTTP_1_1 if conn.http2 is None else _HTTP_2_0
    if msg._signals:
        await emit(msg, "starting")
    msg.remote_address = conn.peer
    msg._connection_id = conn.id
    msg._proxy = conn.plan.proxy
    msg._connection_note = None
    if conn.tls_version is not None:
        msg.tls_protocol_version = conn.tls_version
        msg.tls_ciphersuite_name = conn.tls_cipher
        msg.tls_peer_certificate = conn.peer_certificate
        msg.tls_peer_certificate_errors = conn.certificate_errors or _NO_ERRORS
    if msg._options_ping:
        target = "*"
    elif conn.plan.proxy is not None and not conn.plan.tunnel:
        target = absolute_form(msg.uri)
    else:
        target = msg.uri.raw_path_qs or "/"
    if metrics is not None:
        metrics.request_start = time.monotonic()
    return target


def body_ended(msg: Message, received: int) -> None:
    """The response body ended after ``received`` bytes: fill in its metrics."""
    metrics = msg.metrics
    if metrics is not None:
        metrics.response_end = time.monotonic()
        metrics.response_body_size = received
        metrics.response_body_bytes_received = received


async def finish_body(msg: Message) -> None:
    """The stream of a body read to its end closed: ``got_body``, then ``finished``.

    They wait for the close, which the InputStream does when its reader
    reaches the end: a sniffer that peeked up to the end must not announce
    the body before ``send()`` has even returned.
    """
    if msg._validating and msg.status == 304:
        return  # the cache serves the stored answer instead, with its own signals
    if msg._signals:
        await emit(msg, "got_body")
    if msg._signals:
        await emit(msg, "finished")


def expects_continue(msg: Message) -> bool:
    """Whether the request asks for ``100 Continue`` before its body."""
    return msg.request_headers.header_contains("Expect", "100-continue")


async def emit(msg: Message, name: str, *args: object) -> None:
    """Emit signal ``name`` of ``msg`` if it has handlers."""
    signal = active(msg, name)
    if signal is not None:
        await signal.emit(*args)


async def _report_connect(conn: Connection, msg: Message, metrics: MessageMetrics | None) -> None:
    """Give the first message of a new connection its network events and timings."""
    log, conn.log = conn.log, None
    assert log is not None
    if metrics is not None:
        times = log.times
        metrics.dns_start = times.get(NetworkEvent.RESOLVING, 0.0)
        metrics.dns_end = times.get(NetworkEvent.RESOLVED, 0.0)
        metrics.connect_start = times.get(NetworkEvent.CONNECTING, 0.0)
        metrics.tls_start = times.get(NetworkEvent.TLS_HANDSHAKING, 0.0)
        metrics.connect_end = times.get(NetworkEvent.COMPLETE, 0.0)
    signal = active(msg, "network_event")
    if signal is not None:
        for event in log.events:
            await signal.emit(event, conn)
