"""The core send coroutine: one message, one exchange on a borrowed connection.

This is the innermost stage of the feature chain. It borrows a connection
from the pool, writes the request, reads the response head and returns an
:class:`~anysoup.InputStream` that carries the loan until the body is read or
closed. A request that fails on a reused connection before any byte of the
response is sent once more on a new connection when that is safe
(DESIGN §3, ``docs/design.rst``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
import h11

from .._drivers.http1 import WRITE_SLICE
from .._drivers.http2_errors import Http11Required, Misdirected, StreamUnprocessed
from .._model.body import DRAIN_LIMIT, InputStream
from .._model.enums import NO_FLAGS, HTTPVersion, MessageFlags, TlsCertificateFlags
from .._model.exceptions import (
    ConnectError,
    Error,
    NetworkError,
    ParsingError,
    TimeoutError,
    TlsError,
)
from .._model.headers import MessageHeaders
from .._model.methods import IDEMPOTENT_METHODS
from .._model.resends import MAX_RESENDS, check_resend
from .._model.signals import active
from .._transport.proxy_connect import ProxyRefused
from .._transport.tls import describe_flags
from .starting import begin_exchange, body_ended, emit, expects_continue, finish_body
from .upload import upload, write_or_answer

if TYPE_CHECKING:
    from .._drivers.http1 import HTTP1Connection
    from .._model.message import Message
    from .._pool.pool import Connection, Pool

__all__ = ["MAX_RESENDS", "check_resend", "http1_only", "send_message"]

#: Methods whose request may be sent again on a new connection (DESIGN §3);
#: the same set (IDEMPOTENT_METHODS) may use a pooled connection without
#: ``MessageFlags.IDEMPOTENT``.
RETRYABLE_METHODS = IDEMPOTENT_METHODS
#: Methods that get ``Content-Length: 0`` when they have no body (RFC 9110 §8.6).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: How long closing a half-read body may spend draining it (at most DRAIN_LIMIT bytes).
DRAIN_SECONDS = 0.5
_NO_ERRORS = TlsCertificateFlags.NO_FLAGS
#: h11's version strings and ours.
_HTTP_VERSIONS = {b"1.1": HTTPVersion.HTTP_1_1, b"1.0": HTTPVersion.HTTP_1_0}


async def send_message(
    pool: Pool, plan_for: PlanFor, tls_plan: TlsPlan, proxy_lookup: ProxyLookup, msg: Message
) -> InputStream:
    """Send ``msg`` and return its body stream once the final headers are in.

    The session binds ``pool``, ``plan_for``, ``tls_plan`` and
    ``proxy_lookup`` with :func:`functools.partial`, which makes this the
    innermost stage of the chain without a frame between.
    """
    lookup = proxy_lookup(msg.uri)
    http1 = http1_only(msg)
    if lookup is None:  # no proxy can apply: not even an await
        proxies: list[ProxyURI | None] = []
        key, plan = plan_for(msg.uri, False, None, None, http1)
    else:
        proxies = await lookup
        key, plan = plan_for(msg.uri, False, None, proxies.pop(0) if proxies else None, http1)
    if plan.ssl_context is not None:  # the message's identity and trust mode count
        key, plan = await tls_plan(msg, key, plan)
    if msg._connection_owner is not None:  # a connection authenticated for one credential
        key = (key, msg._connection_owner)
    plan = _tunnel_credentials(msg, plan)
    method = msg.method
    flags = msg.flags
    if flags is NO_FLAGS:  # enum.Flag operations cost more than the rest
        fresh_only = method not in IDEMPOTENT_METHODS
    else:
        fresh_only = bool(flags & MessageFlags.NEW_CONNECTION) or (
            method not in IDEMPOTENT_METHODS and not flags & MessageFlags.IDEMPOTENT
        )
    headers = _wire_headers(msg, plan)
    # Sends the server never processed (HTTP/2 GOAWAY, REFUSED_STREAM): not re-sends.
    unprocessed = 0
    while True:
        # The common case, an idle connection and nobody waiting, needs no await.
        conn = None if fresh_only else pool.checkout_idle(key)
        if conn is None:
            multiplex = plan.http2 and not (flags & MessageFlags.NEW_CONNECTION)
            try:
                conn = await pool.acquire(
                    key, plan, priority=msg.priority, fresh_only=fresh_only, multiplex=multiplex
                )
            except TlsError as exc:
                if not await _client_certificate_given(msg, exc):
                    raise
                key, plan = await _tls_key(msg, plan_for, tls_plan, plan.proxy)
                plan = _tunnel_credentials(msg, plan)
                continue
            except ProxyRefused as exc:
                return _refused(msg, plan, exc)
            except ConnectError:
                if not proxies:
                    raise
                # The next proxy in the resolver's order (or direct).
                key, plan = plan_for(msg.uri, False, None, proxies.pop(0), http1)
                if plan.ssl_context is not None:
                    key, plan = await tls_plan(msg, key, plan)
                if msg._connection_owner is not None:
                    key = (key, msg._connection_owner)
                plan = _tunnel_credentials(msg, plan)
                headers = _wire_headers(msg, plan)
                continue
        reused = conn.used
        conn.used = True
        try:
            if conn.certificate_errors is not None:
                await _accept_certificate(conn, msg)
            if conn.http2 is None:
                return await _exchange(pool, conn, msg, headers)
            from .exchange_h2 import exchange_h2  # loaded with the HTTP/2 driver's first use

            retry_421 = not (flags & MessageFlags.NEW_CONNECTION)
            return await exchange_h2(pool, conn, msg, headers, retry_421=retry_421)
        except StreamUnprocessed:
            # RFC 9113 §8.7: the server never saw it; any method may go again,
            # unless part of a stream body already went (it can't be read twice).
            pool.release(conn, reusable=False)
            unprocessed += 1
            body = msg._body
            if unprocessed > MAX_RESENDS or (body is not None and body._consumed):
                raise
        except Http11Required:
            # The server wants this message over HTTP/1.1 (libsoup: force_http1).
            pool.release(conn, reusable=False)
            body = msg._body
            if body is not None and not body.replayable:
                raise
            check_resend(msg)
            msg.force_http1 = http1 = True
            key, plan = plan_for(msg.uri, False, None, plan.proxy, http1)
            if plan.ssl_context is not None:
                key, plan = await tls_plan(msg, key, plan)
            plan = _tunnel_credentials(msg, plan)
        except Misdirected:
            # 421 on HTTP/2 (RFC 9110 §15.5.20): once more, on a connection of its own.
            pool.release(conn, reusable=False)
            check_resend(msg)
            fresh_only = True
            flags |= MessageFlags.NEW_CONNECTION
        except NetworkError as exc:
            pool.release(conn, reusable=False)
            http = conn.http
            body = msg._body
            if (
                not reused
                or isinstance(exc, TimeoutError)
                or conn.close_reason is not None
                or (http is not None and http.received_any)
                or exc._response_started
                or method not in RETRYABLE_METHODS
                or (body is not None and not body.replayable)
            ):
                raise
            check_resend(msg)
            signal = active(msg, "restarted")
            if signal is not None:
                await signal.emit()
            fresh_only = True
        except TlsError as exc:
            # TLS 1.3: the server judges the client certificate after our
            # handshake ended, and its verdict is the first thing we read.
            pool.release(conn, reusable=False)
            body = msg._body
            if body is not None and body._consumed:
                raise  # a stream body already went out with the request: no re-send
            if not await _client_certificate_given(msg, exc):
                raise
            key, plan = await _tls_key(msg, plan_for, tls_plan, plan.proxy)
            plan = _tunnel_credentials(msg, plan)
            fresh_only = True
        except BaseException:
            pool.release(conn, reusable=False)
            raise


def http1_only(msg: Message) -> bool:
    """Whether ``msg`` must go over HTTP/1.1.

    Its ``force_http1``, or a connection-based authentication (NTLM,
    Negotiate: the credential belongs to one connection), as libsoup.
    """
    return msg.force_http1 or msg._connection_owner is not None


async def _tls_key(
    msg: Message, plan_for: PlanFor, tls_plan: TlsPlan, proxy: ProxyURI | None
) -> tuple[Hashable, ConnectPlan]:
    """The key and plan after the message got a client certificate (a re-send)."""
    key, plan = await tls_plan(msg, *plan_for(msg.uri, False, None, proxy, http1_only(msg)))
    if msg._connection_owner is not None:
        key = (key, msg._connection_owner)
    return key, plan


async def _accept_certificate(conn: Connection, msg: Message) -> None:
    """Let ``msg`` judge the certificate of a relaxed connection, or raise TlsError."""
    errors = conn.certificate_errors
    assert errors is not None
    msg.tls_peer_certificate = conn.peer_certificate
    msg.tls_peer_certificate_errors = errors
    signal = active(msg, "accept_certificate")
    if signal is not None and await signal.emit_until_true(conn.peer_certificate, errors):
        return
    raise TlsError(
        f"TLS handshake with {conn.plan.label}: certificate rejected "
        f"({describe_flags(errors)}); "
        "no accept_certificate handler accepted it",
        message=msg,
        errors=errors,
    )


async def _client_certificate_given(msg: Message, exc: TlsError) -> bool:
    """After a TlsError: did a ``request_certificate`` handler give a certificate?

    Asked only when the server demanded a certificate and the message had
    none. When True the message is to be sent again with it.
    """
    if exc.errors:
        msg.tls_peer_certificate_errors = exc.errors
    if not exc._wants_client_certificate or msg._tls_client_certificate is not None:
        return False
    signal = active(msg, "request_certificate")
    if signal is None:
        return False
    await signal.emit_until_true()
    if msg._tls_client_certificate is None:
        return False
    check_resend(msg)
    restarted = active(msg, "restarted")
    if restarted is not None:
        await restarted.emit()
    return True


def _own_proxy_authorization(msg: Message, proxy: ProxyURI | None) -> str | None:
    """The message's ``Proxy-Authorization`` if it may go to ``proxy``, else None.

    A value that answered one proxy's 407 (``msg._proxy``) never goes to
    another: a message whose first proxy went away falls back to the next
    without the first one's credentials.
    """
    if proxy is None or (msg._proxy is not None and msg._proxy != proxy):
        return None
    return msg.request_headers.get_one("Proxy-Authorization")


def _tunnel_credentials(msg: Message, plan: ConnectPlan) -> ConnectPlan:
    """The plan with the message's own Proxy-Authorization on its CONNECT, if it tunnels.

    The auth manager's answer to a 407 (or the program's header) goes there
    instead of the proxy URI's credentials.
    """
    if plan.tunnel and plan.proxy is not None and plan.proxy.is_http:
        value = _own_proxy_authorization(msg, plan.proxy)
        if value is not None:
            return replace(plan, proxy_authorization=value)
    return plan


def _wire_headers(msg: Message, plan: ConnectPlan) -> list[tuple[str, str]]:
    """The headers to send: the message's, with Host and the body's framing.

    ``Proxy-Authorization`` goes only to a forwarding proxy (the proxy URI's
    own credentials when the message has none for that proxy): never to an
    origin, and through a tunnel it went on the CONNECT.
    """
    authority = plan.authority
    request_headers = msg.request_headers
    body = msg._body
    if body is not None:
        if body.length is not None:
            request_headers.set_content_length(body.length)
            if "Transfer-Encoding" in request_headers:
                request_headers.remove("Transfer-Encoding")
        else:
            request_headers.remove("Content-Length")
            request_headers.replace("Transfer-Encoding", "chunked")
    else:
        # Most body-less requests carry no framing header: one walk finds out.
        chunked = bool(request_headers) and _check_bodyless_framing(request_headers, authority)
        if msg.method in _BODY_METHODS and not chunked and "Content-Length" not in request_headers:
            request_headers.set_content_length(0)
    if plan.proxy is not None and not plan.tunnel:
        value = _own_proxy_authorization(msg, plan.proxy) or plan.proxy_authorization
        pairs = [(n, v) for n, v in request_headers if n.lower() != "proxy-authorization"]
        if value:
            pairs.append(("Proxy-Authorization", value))
    elif not request_headers:
        return [("Host", authority)]
    else:
        pairs = list(request_headers)
        if "Proxy-Authorization" in request_headers:
            pairs = [(n, v) for n, v in pairs if n.lower() != "proxy-authorization"]
    if "Host" not in request_headers:
        pairs.insert(0, ("Host", authority))
    return pairs


def _check_bodyless_framing(headers: MessageHeaders, authority: str) -> bool:
    """Check the framing a program set on a message without a body; True if chunked.

    Checked before a connection is asked for, so no byte goes out: a
    ``Content-Length`` other than 0 with nothing to send would leave the
    server waiting (h11 refuses it only when the body ends), and both
    headers at once are forbidden (RFC 9112 §6.2). A program's
    ``Transfer-Encoding: chunked`` alone is honoured: an empty chunked body.
    """
    lengths: list[str] = []
    chunked = False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length":
            lengths.append(value)
        elif lower == "transfer-encoding":
            chunked = True
    if chunked and lengths:
        raise ValueError(
            f"request to {authority}: Content-Length and Transfer-Encoding are both set; "
            "a request has one framing (RFC 9112 §6.2)"
        )
    for value in lengths:
        if value.strip() != "0":
            raise ValueError(
                f"request to {authority}: Content-Length: {value} but the message has no body"
            )
    return chunked


async def _exchange(
    pool: Pool, conn: Connection, msg: Message, headers: list[tuple[str, str]]
) -> InputStream:
    http = conn.http
    assert http is not None
    http.timeout = pool.timeout
    metrics = msg.metrics
    target = await begin_exchange(conn, msg)
    data = http.start_request(msg.method, target, headers)
    body = msg._body
    # Heads read while the request went out (a server may answer early).
    heads: list[h11.Response | h11.InformationalResponse] = []
    if body is None or body.length == 0:
        heads = await write_or_answer(http, data + http.end_of_body(), "writing request")
        if not heads and msg._signals:  # no handler ever connected: skip the calls
            await emit(msg, "wrote_headers")
            await emit(msg, "wrote_body")
    elif body.data is not None and len(body.data) <= WRITE_SLICE and not expects_continue(msg):
        framed = data + http.body_data(body.data) + http.end_of_body()
        heads = await write_or_answer(http, framed, "writing request")
        if not heads and msg._signals:
            await emit(msg, "wrote_headers")
            await emit(msg, "wrote_body_data", body.data)
            await emit(msg, "wrote_body")
    else:
        await http.write(data, "writing request headers")
        if msg._signals:
            await emit(msg, "wrote_headers")
        if expects_continue(msg):
            head = await http.wait_continue()
            if head is not None and type(head) is not h11.Response:
                _set_response(msg, head)  # "100 Continue" (RFC 9110 §15.2.1): go on
                if msg._signals:
                    await emit(msg, "got_informational")
            elif head is not None:
                heads = [head]  # a final answer: the body is not sent
        if not heads:
            heads = await upload(http, msg, body)
    if metrics is not None:
        metrics.request_header_bytes_sent = len(data)
        if body is not None and body.length is not None:
            metrics.request_body_size = metrics.request_body_bytes_sent = body.length
    informational = 0
    heads.reverse()  # popped in the order they came
    while True:
        head = heads.pop() if heads else await http.receive_head()
        if metrics is not None and not metrics.response_start:
            metrics.response_start = time.monotonic()
        _set_response(msg, head)
        if type(head) is h11.Response:
            break
        if head.status_code == 101 and http.switched:  # the answer to our Upgrade
            if msg._signals:
                await emit(msg, "got_headers")
            switched = _Switched(pool, conn, msg)
            msg._switched = switched
            return InputStream(switched)
        informational += 1
        if informational > 10:
            raise ParsingError(
                f"reading response headers from {http.label}: more than 10 informational "
                "responses",
                message=msg,
            )
        if msg._signals:
            await emit(msg, "got_informational")
    if msg._signals and not (msg._validating and msg.status == 304):
        await emit(msg, "got_headers")
    return InputStream(_Exchange(pool, conn, msg))


def _refused(msg: Message, plan: ConnectPlan, exc: ProxyRefused) -> InputStream:
    """The proxy refused the tunnel: its answer becomes the message's (libsoup).

    The body is empty: the proxy's own page is not the origin's. A 407 goes
    on to the auth manager, which may send the message again with
    ``Proxy-Authorization``.
    """
    msg._proxy = plan.proxy
    msg.status = exc.status
    msg.reason_phrase = exc.reason
    msg.response_headers = MessageHeaders._from_raw(exc.headers)
    return InputStream(_NoBody(msg))


class _NoBody:
    """The body source of an answer that came without a connection (a refused CONNECT)."""

    __slots__ = ("_msg",)

    def __init__(self, msg: Message) -> None:
        self._msg = msg

    async def receive_chunk(self) -> bytes | None:
        return None

    async def close(self, *, drain: bool) -> None:
        if self._msg._signals:
            await emit(self._msg, "finished")

    def discard(self) -> None:
        pass


def _set_response(msg: Message, head: h11.Response | h11.InformationalResponse) -> None:
    msg.status = head.status_code
    msg.reason_phrase = head.reason.decode("latin-1")
    msg.http_version = _HTTP_VERSIONS.get(head.http_version, HTTPVersion.HTTP_1_1)
    msg.response_headers = MessageHeaders._from_raw(head.headers)
    if msg.metrics is not None:
        msg.metrics.response_header_bytes_received += (
            sum(len(n) + len(v) + 4 for n, v in head.headers.raw_items()) + 15 + len(head.reason)
        )


class _Exchange:
    """The body source of an :class:`InputStream`: one response on a borrowed connection."""

    __slots__ = ("_conn", "_ended", "_msg", "_pool", "_received")

    def __init__(self, pool: Pool, conn: Connection, msg: Message) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._msg = msg
        self._received = 0
        # The body ended; got_body and finished are due when the stream closes.
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        conn = self._conn
        if conn is None:
            raise anyio.ClosedResourceError
        http = conn.http
        assert http is not None
        try:
            chunk = await http.receive_chunk()
        except Error as exc:
            if exc.message is None:
                exc.message = self._msg
            raise
        msg = self._msg
        if chunk is None:
            self._conn = None
            self._pool.release(conn, reusable=self._finish(http))
            body_ended(msg, self._received)
            self._ended = True  # got_body and finished wait for close()
            return None
        self._received += len(chunk)
        signal = active(msg, "got_body_data")
        if signal is not None:
            await signal.emit(chunk)
        return chunk

    async def close(self, *, drain: bool) -> None:
        conn = self._conn
        if conn is None:
            if self._ended:
                self._ended = False
                await finish_body(self._msg)
            return
        reusable = False
        try:
            if drain:
                reusable = await self._drain(conn)
        finally:
            self._conn = None
            self._pool.release(conn, reusable=reusable)
        if self._msg._signals:
            await emit(self._msg, "finished")

    def _finish(self, http: HTTP1Connection) -> bool:
        """End the exchange at the body's end; say why a connection was not kept."""
        reusable = http.finish()
        if http.not_reused is not None:
            self._msg._connection_note = (
                f"connection to {http.label} not reused: {http.not_reused}"
            )
        return reusable

    async def _drain(self, conn: Connection) -> bool:
        """Read a bounded rest of the body so the connection can be reused."""
        http = conn.http
        assert http is not None
        left = DRAIN_LIMIT
        with anyio.move_on_after(DRAIN_SECONDS):
            try:
                while left > 0:
                    chunk = await http.receive_chunk()
                    if chunk is None:
                        return self._finish(http)
                    left -= len(chunk)
            except Error:
                return False
        return False

    def discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, reusable=False)


class _Switched:
    """The body source of a 101 answer: no body, and a connection to take.

    The message's new protocol (a WebSocket) takes the connection out of the
    pool with :meth:`take`; if the stream is closed or dropped first, the
    connection is closed (it can't carry HTTP any more).
    """

    __slots__ = ("_conn", "_ended", "_msg", "_pool")

    def __init__(self, pool: Pool, conn: Connection, msg: Message) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._msg = msg
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        self._ended = True
        return None

    async def close(self, *, drain: bool) -> None:
        self.discard()
        if self._ended:
            self._ended = False
            if self._msg._signals:
                await emit(self._msg, "got_body")
        if self._msg._signals:
            await emit(self._msg, "finished")

    def discard(self) -> None:
        conn, self._conn = self._conn, None
        if self._msg._switched is self:
            self._msg._switched = None
        if conn is not None:
            self._pool.release(conn, reusable=False)

    def take(self, attach: Attach) -> Connection:
        """Detach the connection from the pool; ``attach(conn, trailing_data)`` runs it.

        ``attach`` returns the job the connection's task runs from then on,
        and what to call instead should the task end before the job starts.

        Raises:
            NetworkError: The connection is gone (the stream was closed, or the
                pool closed the connection: timeout, abort, session end).
        """
        conn, self._conn = self._conn, None
        if self._msg._switched is self:
            self._msg._switched = None
        if conn is None or conn.http is None:
            raise NetworkError(
                f"{self._msg.uri.host}: the connection that switched protocols is closed",
                message=self._msg,
            )
        trailing = conn.http.take_trailing_data()
        self._pool.detach(conn, *attach(conn, trailing))
        return conn


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable

    from yarl import URL

    from .._transport.connect import ConnectPlan
    from .._transport.proxy_resolver_policy import ProxyURI

    PlanFor = Callable[..., tuple[Hashable, ConnectPlan]]
    ProxyLookup = Callable[[URL], Awaitable[list[ProxyURI | None]] | None]
    TlsPlan = Callable[[Message, Hashable, ConnectPlan], Awaitable[tuple[Hashable, ConnectPlan]]]
    Attach = Callable[
        [Connection, bytes], tuple[Callable[[], Awaitable[None]], Callable[[], None]]
    ]
