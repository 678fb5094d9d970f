"""``Session``: owns the connections and background tasks, sends messages."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Generator, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
from anyio.abc import ByteSendStream, ObjectSendStream, TaskGroup, TaskStatus
from yarl import URL

from .._features.auth.manager import AuthManager
from .._features.decoder.decoder import ContentDecoder
from .._features.feature import NEW_SESSION_HOOKS, CallNext, SessionFeature
from .._features.redirect import follow_redirects
from .._features.websocket.manager import WebsocketExtensionManager
from .._model.arguments import byte_count, positive, seconds
from .._model.body import InputStream
from .._model.cancellable import Cancellable
from .._model.certificate import TlsCertificate, TlsInteraction
from .._model.enums import NO_FLAGS, MessageFlags, SpliceFlags
from .._model.exceptions import ConnectError, Error, MessageAlreadyInQueue, RequestCancelled
from .._model.message import Message, MessageMetrics
from .._model.signals import SignalDescriptor, active
from .._model.uri import host_header, is_secure, scheme_class
from .._pool.pool import Pool
from .._pool.state_policy import PoolStatistics
from .._transport.connect import ConnectPlan, RemoteAddress
from .._transport.proxy_resolver_policy import (
    DIRECT,
    ProxyResolver,
    ProxyURI,
    SimpleProxyResolver,
    parse_proxy,
)
from .._transport.tls import TlsDatabase
from .._version import __version__
from .chain import build_chain
from .client_password import unlock_certificate
from .core import http1_only, send_message
from .locale_policy import user_agent_header
from .props import DEFAULT, SessionProperties
from .requests import RequestHelpers

if TYPE_CHECKING:
    from .._model.signals import Signal
    from .websocket_connect import WebsocketConnectContext

__all__ = ["DEFAULT", "SendContext", "Session"]

#: What a call runs in when abort() needs no scope of its own for it.
_NO_SCOPE = nullcontext()

#: Connect plans remembered per (scheme, host, port); each is cheap to remake.
_PLAN_CACHE_SIZE = 1024
#: The features every new session has (DESIGN §3); more arrive with their issues.
_DEFAULT_FEATURES: tuple[type[SessionFeature], ...] = (
    AuthManager,
    ContentDecoder,
    WebsocketExtensionManager,
)


class _Writable(Protocol):
    async def write(self, data: bytes) -> Any: ...


class SendContext:
    """What :meth:`Session.send` returns: await it, or use it with ``async with``.

    ``body = await session.send(msg)`` gives the :class:`InputStream` (close
    it when done); ``async with session.send(msg) as body:`` closes it for you.
    """

    __slots__ = ("_cancellable", "_msg", "_session", "_stream")

    def __init__(self, session: Session, msg: Message, cancellable: Cancellable | None) -> None:
        self._session = session
        self._msg = msg
        self._cancellable = cancellable
        self._stream: InputStream | None = None

    def __await__(self) -> Generator[Any, None, InputStream]:
        return self._session._send(self._msg, self._cancellable).__await__()

    async def __aenter__(self) -> InputStream:
        self._stream = await self._session._send(self._msg, self._cancellable)
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()


class Session(RequestHelpers, SessionProperties):
    """An HTTP session: connections, features and settings shared by many messages.

    A session is an async context manager: entering it opens the task group
    that runs its connections; leaving it closes every connection and ends
    every task it started. It may be created outside a running event loop.

    Args:
        accept_language: The ``Accept-Language`` header for messages without one.
        accept_language_auto: Build ``accept_language`` from the locale
            environment (LANGUAGE, LC_ALL, LC_MESSAGES, LANG).
        http2: Offer HTTP/2 on https connections (ALPN ``h2`` then
            ``http/1.1``, as libsoup); False offers only HTTP/1.1.
        idle_timeout: Seconds an idle connection is kept (0: forever).
        local_address: ``(host, port)`` to bind outgoing TCP connections to
            (port 0: any).
        max_conns: Connections open at once, all hosts together.
        max_conns_per_host: Connections open at once to one host.
        proxy_resolver: Chooses proxies (:class:`ProxyResolver`): :data:`DEFAULT`
            reads ``http_proxy``, ``https_proxy``, ``all_proxy`` and ``no_proxy``
            when the session is created; None connects directly.
        remote_connectable: Connect every message here instead of the URI's
            host: ``(host, port)`` or :class:`UnixSocketAddress`.
        timeout: Seconds without progress (connecting, each read or write)
            before :class:`anysoup.TimeoutError`; 0 waits forever.
        tls_database: Who validates certificates: :data:`DEFAULT` (the system
            store), a :class:`TlsDatabase`, or None (every certificate fails).
        tls_interaction: Gives client certificates (:class:`TlsInteraction`).
        user_agent: The ``User-Agent`` header; ``""`` means ``anysoup/VERSION``,
            a value ending in a space gets it appended.
        features: Features to add to the defaults.
        base_url: Joined to relative URLs given to the request helpers
            (:meth:`request`, :meth:`get`, …); see :doc:`/requests`.
    """

    request_queued: SignalDescriptor[Session] = SignalDescriptor(
        "``(session, msg)``: a message was queued for sending."
    )
    request_unqueued: SignalDescriptor[Session] = SignalDescriptor(
        "``(session, msg)``: a message is done (its body read or closed, or it failed)."
    )

    def __init__(
        self,
        *,
        accept_language: str | None = None,
        accept_language_auto: bool = False,
        http2: bool = True,
        idle_timeout: float = 60,
        local_address: tuple[str, int] | None = None,
        max_conns: int = 10,
        max_conns_per_host: int = 2,
        proxy_resolver: ProxyResolver | None = DEFAULT,
        remote_connectable: RemoteAddress | None = None,
        timeout: float = 60,
        tls_database: TlsDatabase | None = DEFAULT,
        tls_interaction: TlsInteraction | None = None,
        user_agent: str | None = None,
        features: Iterable[SessionFeature] = (),
        base_url: str | URL | None = None,
    ) -> None:
        self.base_url = base_url  # the setter checks it first: nothing made in vain
        self._signals: dict[str, Signal] | None = None
        self._task_group: TaskGroup | None = None
        # The scopes of the waits outside the pool (a Retry's backoff, the
        # authenticate handlers): abort() cancels them as it does pool waits.
        self._calls: set[anyio.CancelScope] = set()
        self._pool = Pool(
            max_conns=positive("max_conns", max_conns),
            max_conns_per_host=positive("max_conns_per_host", max_conns_per_host),
            idle_timeout=seconds("idle_timeout", idle_timeout),
            timeout=seconds("timeout", timeout),
        )
        self._features: list[SessionFeature] = []
        self._send_core: CallNext = partial(
            send_message, self._pool, self._plan_for, self._tls_plan, self._proxy_lookup
        )
        self._chain: CallNext = self._send_core
        self._rebuild_chain()
        self._plans: dict[Hashable, tuple[Hashable, ConnectPlan]] = {}
        self._http2 = True
        self.http2 = http2  # the setter checks the type
        self._accept_language = accept_language
        self._accept_language_auto = False
        self._user_agent = user_agent
        self._user_agent_header = user_agent_header(user_agent, __version__)
        self._local_address: tuple[str, int] | None = None
        self.local_address = local_address  # the setter checks and normalises it
        self._remote_connectable: RemoteAddress | None = None
        self.remote_connectable = remote_connectable  # the setter normalises (host, port)
        self._proxy_resolver: ProxyResolver | None = None
        self.proxy_resolver = proxy_resolver  # DEFAULT reads the environment now
        self._tls_interaction: TlsInteraction | None = None
        self.tls_interaction = tls_interaction
        # DEFAULT stays a marker until https is first used: loading the system
        # store costs tens of milliseconds that a plain-http program needn't pay.
        self._tls_database: TlsDatabase | None = DEFAULT
        # For tls_database=None: made on first use, one per session.
        self._no_database: TlsDatabase | None = None
        self.tls_database = tls_database
        self.accept_language_auto = accept_language_auto
        given = list(features)
        for default in _DEFAULT_FEATURES:  # an instance of a default's type replaces it
            if not any(isinstance(feature, default) for feature in given):
                self.add_feature(default())
        for feature in given:
            self.add_feature(feature)
        for hook in tuple(NEW_SESSION_HOOKS):  # an active test router (anysoup.testing)
            hook(self)

    @classmethod
    def new(cls) -> Session:
        """A session with default settings (libsoup's ``soup_session_new``)."""
        return cls()

    # -- lifetime --------------------------------------------------------------

    async def __aenter__(self) -> Session:
        if self._task_group is not None:
            raise RuntimeError("this session is already open")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._pool.attach(task_group)
        task_group.start_soon(self._pool.run_sweeper, name="anysoup pool sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return None
        self._pool.close()
        task_group.cancel_scope.cancel()
        # Only the session's own tasks go through the task group: an exception
        # from the caller's block goes on as itself, not in an exception group.
        await task_group.__aexit__(None, None, None)
        # Persistent features (cookie jars, HSTS stores) finish their writes:
        # the files are complete when the session has closed.
        with anyio.CancelScope(shield=True):
            for feature in list(self._features):
                await feature.session_closed(self)
        return None

    def abort(self) -> None:
        """Cancel every pending call and close idle connections.

        The calls raise :class:`anysoup.RequestCancelled`: those waiting for
        a connection or reading from one, and those waiting anywhere else in
        the chain (a :class:`~anysoup.Retry` backoff, an auth callback).
        """
        for scope in tuple(self._calls):
            scope.cancel()
        self._pool.abort()

    @contextmanager
    def _abortable(self, msg: Message) -> Iterator[None]:
        """A wait of a stage outside the pool that :meth:`abort` must end too.

        For a Retry's backoff, the ``authenticate`` handlers, and whole calls
        when a feature answers instead of the network: the pool's own waits
        already end with ``abort()``. Only such waits pay for the scope, not
        every request. Raises RequestCancelled when aborted.
        """
        with anyio.CancelScope() as scope:
            self._calls.add(scope)
            try:
                yield
            finally:
                self._calls.discard(scope)
        if scope.cancelled_caught:
            raise RequestCancelled(f"{msg.method} {msg.uri}: the session was aborted", message=msg)

    def statistics(self) -> PoolStatistics:
        """The connection pool's counters (for monitoring and tests)."""
        return self._pool.statistics()

    # -- sending ---------------------------------------------------------------

    def send(
        self, msg: Message, *, cancellable: Cancellable | None = None, io_priority: int = 0
    ) -> SendContext:
        """Send ``msg``; the result gives the response body once the headers are in.

        ``body = await session.send(msg)`` or ``async with session.send(msg) as
        body:``. ``msg.status`` and ``msg.response_headers`` are set by then.
        HTTP error statuses are not errors.

        Args:
            msg: The message to send.
            cancellable: Cancels the call from elsewhere (raises RequestCancelled).
            io_priority: Accepted for libsoup compatibility; the message's
                ``priority`` orders the queue.

        Raises:
            anysoup.Error: The message could not be sent or the response was
                broken; ``.message`` is ``msg``.
        """
        return SendContext(self, msg, cancellable)

    async def send_and_read(
        self,
        msg: Message,
        *,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> bytes:
        """Send ``msg`` and return its whole response body (decoded).

        Args:
            msg: The message to send.
            cancellable: Cancels the call from elsewhere, reading the body
                included (raises RequestCancelled).
            io_priority: Accepted for libsoup compatibility; the message's
                ``priority`` orders the queue.
            max_size: The most bytes of body accepted (None: no limit). A
                larger body is not read to its end: the connection is closed.

        Raises:
            anysoup.BodyTooLarge: The body is over ``max_size``: its
                ``Content-Length`` says so, or reading it passed the limit
                (the decoded size counts).
            anysoup.Error: The message could not be sent or the response was
                broken; ``.message`` is ``msg``.
            ValueError: ``max_size`` is not a number of bytes.
        """
        if max_size is not None:
            byte_count("max_size", max_size)
        if cancellable is not None:
            with _for_message(msg), cancellable._scope(f"{msg.method} {msg.uri}"):
                return await self._send_and_read(msg, max_size)
        return await self._send_and_read(msg, max_size)

    async def _send_and_read(self, msg: Message, max_size: int | None) -> bytes:
        stream = await self._send(msg, None)
        try:
            if max_size is not None:
                await stream._limit_size(max_size)
            return await stream.read()
        finally:
            if stream._source is not None:  # read() gave the connection back already
                await stream.aclose()

    async def send_and_splice(
        self,
        msg: Message,
        out_stream: ByteSendStream | ObjectSendStream[bytes] | _Writable,
        flags: SpliceFlags = SpliceFlags.NONE,
        *,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
    ) -> int:
        """Send ``msg`` and copy its body to ``out_stream``; return the bytes copied.

        ``out_stream`` is an anyio byte send stream, an anyio object send
        stream of bytes (a memory object stream) or has ``async write(bytes)``.
        With ``SpliceFlags.CLOSE_TARGET`` it is closed at the end. A
        ``cancellable`` covers the whole call, copying included.
        """
        if cancellable is not None:
            with _for_message(msg), cancellable._scope(f"{msg.method} {msg.uri}"):
                return await self.send_and_splice(msg, out_stream, flags)
        total = 0
        try:
            async with self.send(msg) as body:
                if isinstance(out_stream, (ByteSendStream, ObjectSendStream)):
                    async for chunk in body:
                        await out_stream.send(chunk)
                        total += len(chunk)
                else:
                    async for chunk in body:
                        await out_stream.write(chunk)
                        total += len(chunk)
        finally:
            if flags & SpliceFlags.CLOSE_TARGET:
                close = getattr(out_stream, "aclose", None)
                if close is not None:
                    await close()
                else:
                    result = out_stream.close()  # type: ignore[union-attr]
                    if hasattr(result, "__await__"):
                        await result
        return total

    async def preconnect(
        self,
        msg: Message,
        io_priority: int = 0,
        *,
        cancellable: Cancellable | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open a connection for ``msg``'s host ahead of time.

        Returns at once if an idle connection exists. A request for the same
        host that arrives while the connection is being made takes it over.
        A preconnected connection unused for 3 s is closed. Usable as
        ``await nursery.start(session.preconnect, msg)``.

        Raises:
            ConnectError, TlsError, TimeoutError: The connection failed (only
                while no request took it over).
        """
        key, plan = self._plan_for(msg.uri, False, None, None, http1_only(msg))
        if plan.ssl_context is not None:  # the connection the message itself would use
            key, plan = await self._tls_plan(msg, key, plan)
        try:
            if cancellable is None:
                await self._pool.preconnect(key, plan, priority=msg.priority)
            else:
                with cancellable._scope(f"preconnect to {plan.label}"):
                    await self._pool.preconnect(key, plan, priority=msg.priority)
        except Error as exc:
            if exc.message is None:
                exc.message = msg
            raise
        task_status.started()

    def websocket_connect(
        self,
        msg: Message,
        origin: str | None = None,
        protocols: Sequence[str] | None = None,
        *,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
    ) -> WebsocketConnectContext:
        """Open a WebSocket with the handshake ``msg`` (a GET to a ws, wss, http or https URI).

        ``async with session.websocket_connect(msg) as ws:`` or ``ws = await
        session.websocket_connect(msg)``. The handshake goes through the
        session like any message (redirects, authentication, cookies, TLS
        settings apply); its connection then leaves the pool and belongs to
        the :class:`WebsocketConnection`, whose reader runs in the session's
        task group. The :class:`WebsocketExtensionManager` offers its
        extensions (permessage-deflate by default).

        Args:
            msg: The handshake request; it gets the WebSocket headers.
            origin: The ``Origin`` header to send, if any.
            protocols: Subprotocols to offer, in order of preference.
            cancellable: Cancels the handshake from elsewhere.
            io_priority: Accepted for libsoup compatibility.

        Raises:
            WebsocketError: ``NOT_WEBSOCKET`` (an answer other than 101; the
                message holds the response, its body in ``msg.response_body``),
                ``BAD_ORIGIN`` (403 to an Origin), ``BAD_HANDSHAKE`` (a 101
                that isn't a valid WebSocket answer).
            anysoup.Error: The handshake could not be sent.
        """
        # Imported here: the WebSocket connection and wsproto load with the first one.
        from .websocket_connect import WebsocketConnectContext

        return WebsocketConnectContext(self, msg, origin, protocols, cancellable)

    async def _send(self, msg: Message, cancellable: Cancellable | None) -> InputStream:
        if msg._queued:
            raise MessageAlreadyInQueue(
                f"{msg.method} {msg.uri}: this message is already queued", message=msg
            )
        msg._queued = True
        msg._restarts = 0
        if msg.flags is not NO_FLAGS and msg.flags & MessageFlags.COLLECT_METRICS:
            msg.metrics = MessageMetrics(fetch_start=time.monotonic())
        try:
            self._prepare(msg)
            self.do_request_queued(msg)
            signal = active(self, "request_queued")
            if signal is not None:
                await signal.emit(msg)
            with self._abortable(msg) if self._abort_calls else _NO_SCOPE:
                if cancellable is None:
                    stream = await self._chain(msg)
                else:
                    with cancellable._scope(f"{msg.method} {msg.uri}"):
                        stream = await self._chain(msg)
        except BaseException as exc:
            if isinstance(exc, Error) and exc.message is None:
                exc.message = msg
            await self._stream_done(msg)
            raise
        stream.set_owner(self, msg)
        return stream

    def _prepare(self, msg: Message) -> None:
        headers = msg.request_headers
        if self._user_agent_header is not None:
            headers.replace("User-Agent", self._user_agent_header)
        if self._accept_language and "Accept-Language" not in headers:
            headers.append("Accept-Language", self._accept_language)

    def _dequeue(self, msg: Message) -> Signal | None:
        """Mark ``msg`` no longer queued; return ``request_unqueued`` if it has handlers."""
        if not msg._queued:
            return None
        msg._queued = False
        self.do_request_unqueued(msg)
        return active(self, "request_unqueued")

    def _stream_discarded(self, msg: Message) -> None:
        """Unqueue ``msg`` whose body stream was garbage-collected unclosed.

        Nothing can be awaited there: plain handlers of ``request_unqueued``
        run, coroutine handlers are skipped (:meth:`Signal.emit_sync`).
        """
        signal = self._dequeue(msg)
        if signal is not None:
            signal.emit_sync(msg)

    async def _stream_done(self, msg: Message) -> None:
        """Unqueue ``msg``: its body was read or closed, or sending it failed."""
        signal = self._dequeue(msg)
        if signal is not None:
            # A notification that the exchange is over, part of closing it:
            # handlers run even when the caller is being cancelled.
            with anyio.CancelScope(shield=True):
                await signal.emit(msg)

    def _plan_for(
        self,
        uri: URL,
        relaxed: bool = False,
        identity: TlsCertificate | None = None,
        proxy: ProxyURI | None = None,
        http1: bool = False,
    ) -> tuple[Hashable, ConnectPlan]:
        """The pool key and connect plan for a URI (cached).

        The key holds every setting that makes one connection unfit for
        another request: scheme, host (also the TLS server name), port, the
        trust database, whether the certificate may be judged by the message
        (``relaxed``), the client identity, the remote and local addresses,
        the proxy (with its credentials) and whether it tunnels, and whether
        HTTP/2 is offered (not with ``http1``: the message is kept on
        HTTP/1.1; nor to a forwarding proxy).
        """
        scheme = scheme_class(uri)
        # "example.org." names the same host: connect, send SNI and check the
        # certificate without the final dot, as browsers and curl do.
        host = (uri.raw_host or "").rstrip(".")
        port = uri.port or 0
        identity_key = identity._identity if identity is not None else None
        if proxy is not None:
            cache_key: Hashable = (
                scheme, host, port, relaxed, identity_key, proxy, uri.scheme, http1
            )  # fmt: skip
        elif not relaxed and identity is None and not http1:
            cache_key = (scheme, host, port)
        else:
            cache_key = (scheme, host, port, relaxed, identity_key, http1)
        cached = self._plans.get(cache_key)
        if cached is not None:
            return cached
        database = self._database_for_tls() if is_secure(uri) else None
        proxied = self._proxy_settings(uri, proxy)
        # HTTP/2 only over TLS (no h2c), and inside a tunnel, never to a forwarding proxy.
        http2 = (
            database is not None
            and self._http2
            and not http1
            and (proxy is None or proxied["tunnel"])
            and uri.scheme in ("https", "wss")
        )
        plan = ConnectPlan(
            host=host,
            port=port,
            ssl_context=(
                database.context_for(identity, http2=http2) if database is not None else None
            ),
            relaxed_context=(
                database.context_for(identity, verify=False, http2=http2)
                if database is not None and relaxed
                else None
            ),
            identity=identity is not None,
            http2=http2,
            remote=self._remote_connectable,
            local=self._local_address,
            authority=host_header(uri),
            **proxied,
        )
        # The database itself (hashed by identity), not its id(): the key keeps it
        # alive, so a later database can't reuse the number and share connections.
        key: Hashable = (
            scheme,
            host,
            port,
            database,
            relaxed and database is not None,
            identity_key,
            plan.remote,
            plan.local,
            http2,
        )
        if proxy is not None:
            key = (key, proxy, plan.tunnel)
        if len(self._plans) >= _PLAN_CACHE_SIZE:  # a crawler meets many hosts: stay bounded
            self._plans.clear()
        self._plans[cache_key] = (key, plan)
        return key, plan

    async def _tls_plan(
        self, msg: Message, key: Hashable, plan: ConnectPlan
    ) -> tuple[Hashable, ConnectPlan]:
        """The key and plan for an https message: its client identity and trust mode.

        ``key`` and ``plan`` are the URI's strict, anonymous ones, returned as
        they are in the common case (no certificate, no override).
        """
        identity = msg._tls_client_certificate
        if identity is None and self._tls_interaction is not None:
            identity = await self._tls_interaction.request_certificate(msg)
        if identity is not None and identity.needs_password:
            await unlock_certificate(msg, identity, self._tls_interaction)
        # A host under an HSTS policy allows no override (RFC 6797 §12.1).
        relaxed = not msg._tls_strict and active(msg, "accept_certificate") is not None
        if identity is None and not relaxed:
            return key, plan
        return self._plan_for(msg.uri, relaxed, identity, plan.proxy, http1_only(msg))

    def _proxy_settings(self, uri: URL, proxy: ProxyURI | None) -> dict[str, Any]:
        """The ConnectPlan fields for going to ``uri`` through ``proxy``."""
        if proxy is None:
            return {}
        return {
            "proxy": proxy,
            # https and WebSockets go through a tunnel; plain http is forwarded,
            # except by SOCKS, which is always a tunnel: the origin reads origin
            # form and never a Proxy-Authorization (the SOCKS credentials).
            "tunnel": proxy.is_socks or uri.scheme != "http",
            "proxy_context": self._database_for_tls().context_for(None) if proxy.tls else None,
            "proxy_authorization": proxy.basic_authorization if proxy.is_http else None,
            "user_agent": self._user_agent_header,
        }

    def _proxy_lookup(self, uri: URL) -> Awaitable[list[ProxyURI | None]] | None:
        """The lookup of the proxies for ``uri``, or None when no proxy can apply.

        No resolver, a ``remote_connectable`` (it names where to connect), or
        a :class:`SimpleProxyResolver` without any proxy: no await at all.
        """
        resolver = self._proxy_resolver
        if resolver is None or self._remote_connectable is not None:
            return None
        if isinstance(resolver, SimpleProxyResolver) and not resolver._has_proxies():
            return None
        return _lookup_proxies(resolver, uri)

    def _database_for_tls(self) -> TlsDatabase:
        database = self.tls_database
        if database is None:  # every certificate fails: a database with no authority
            if self._no_database is None:
                self._no_database = TlsDatabase._empty()
            database = self._no_database
        return database

    # -- subclass hooks --------------------------------------------------------

    def do_request_queued(self, msg: Message) -> None:
        """Called before the ``request_queued`` signal; override in subclasses."""

    def do_request_unqueued(self, msg: Message) -> None:
        """Called before the ``request_unqueued`` signal; override in subclasses."""

    # -- features --------------------------------------------------------------

    def add_feature(self, feature: SessionFeature) -> None:
        """Add a feature instance.

        Raises:
            TypeError: ``feature`` is not a :class:`SessionFeature`.
            ValueError: A feature of the same type is already present.
        """
        if not isinstance(feature, SessionFeature):
            raise TypeError(f"add_feature: {feature!r} is not a SessionFeature")
        if any(type(f) is type(feature) for f in self._features):
            raise ValueError(f"add_feature: the session already has a {type(feature).__name__}")
        feature.attach(self)
        self._features.append(feature)
        self._rebuild_chain()

    def add_feature_by_type(self, feature_type: type) -> None:
        """Add a feature of ``feature_type``, or offer the type as a sub-feature.

        A type that is not a :class:`SessionFeature` is offered to the features
        present (an auth scheme is taken by the auth manager).

        Raises:
            ValueError: No feature accepts a non-feature type, or the feature
                is already present.
        """
        if isinstance(feature_type, type) and issubclass(feature_type, SessionFeature):
            self.add_feature(feature_type())
            return
        for feature in self._features:
            if feature.add_sub_feature(feature_type):
                return
        raise ValueError(f"add_feature_by_type: no feature accepts {feature_type!r}")

    def remove_feature(self, feature: SessionFeature) -> None:
        """Remove a feature instance (nothing happens if it isn't present)."""
        if feature in self._features:
            self._features.remove(feature)
            feature.detach(self)
            self._rebuild_chain()

    def remove_feature_by_type(self, feature_type: type) -> None:
        """Remove features of ``feature_type`` (and subclasses), or that sub-feature."""
        if isinstance(feature_type, type) and issubclass(feature_type, SessionFeature):
            for feature in [f for f in self._features if isinstance(f, feature_type)]:
                self.remove_feature(feature)
            return
        for feature in self._features:
            feature.remove_sub_feature(feature_type)

    def get_feature(self, feature_type: type) -> SessionFeature | None:
        """The feature of ``feature_type`` (or a subclass), or None."""
        for feature in self._features:
            if isinstance(feature, feature_type):
                return feature
        return None

    def get_feature_for_message(self, feature_type: type, msg: Message) -> SessionFeature | None:
        """Like :meth:`get_feature`, but None if ``msg`` disabled that type."""
        if msg.is_feature_disabled(feature_type):
            return None
        return self.get_feature(feature_type)

    def has_feature(self, feature_type: type) -> bool:
        """Whether a feature or a sub-feature of ``feature_type`` is present."""
        return any(
            isinstance(f, feature_type) or f.has_sub_feature(feature_type) for f in self._features
        )

    def get_features(self) -> list[SessionFeature]:
        """The features present, in the order they were added."""
        return list(self._features)

    def _rebuild_chain(self) -> None:
        # Requests in flight keep the chain they started with: changing the
        # features never changes a running exchange.
        inner = build_chain(self._features, self._send_core)
        self._chain = partial(follow_redirects, inner)
        # A stage that answers instead of the network (the testing router)
        # waits where abort() can't see: then each call gets a scope of its own.
        self._abort_calls = any(f._answers_locally for f in self._features)

    # -- libsoup aliases -----------------------------------------------------------

    def get_async_result_message(self, error: BaseException) -> Message | None:
        """The message an error was raised for (``error.message``)."""
        return cast("Message | None", getattr(error, "message", None))

    def __repr__(self) -> str:
        state = "open" if self._task_group is not None else "closed"
        return f"<anysoup.Session {state} {self._pool!r}>"


async def _lookup_proxies(resolver: ProxyResolver, uri: URL) -> list[ProxyURI | None]:
    """The resolver's answer for ``uri``, parsed: None stands for ``direct://``.

    Raises:
        ConnectError: The resolver failed or answered with an invalid proxy.
    """
    try:
        found = await resolver.lookup(uri)
        return [None if proxy == DIRECT else parse_proxy(proxy) for proxy in found] or [None]
    except ValueError as exc:
        raise ConnectError(f"looking up the proxy for {uri.host}: {exc}") from None


@contextmanager
def _for_message(msg: Message) -> Iterator[None]:
    """Give an :class:`Error` raised in the block, for no message yet, ``msg``."""
    try:
        yield
    except Error as exc:
        if exc.message is None:
            exc.message = msg
        raise
