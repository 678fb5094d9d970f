"""The connection pool's async shell: connection tasks, waiting, the sweeper.

All bookkeeping is in :class:`~anysoup._pool.state_policy.PoolState`; this module
does the I/O it asks for. Each connection is run by a task of the session's
task group (:meth:`Connection.run`): it connects, hands the stream to the
pool, waits to be told to close, and closes the socket in ``finally``. Request
tasks only borrow connections (see ``docs/design.rst``).
"""

from __future__ import annotations

import builtins
import itertools
import select
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup

from .._drivers.http1 import HTTP1Connection
from .._model.certificate import TlsCertificate
from .._model.enums import TlsCertificateFlags
from .._model.exceptions import Error, NetworkError, RequestCancelled, TimeoutError
from .._transport.connect import (
    ConnectLog,
    ConnectPlan,
    RemoteAddress,
    Resolver,
    open_stream,
    resolve,
)
from .state_policy import ConnectionRecord, PoolState, PoolStatistics, Waiter

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from .._drivers.http2 import HTTP2Connection

__all__ = ["Connection", "Pool"]

#: Streams an HTTP/2 connection is allowed before the peer's SETTINGS say
#: (RFC 9113 §6.5.2 leaves it open).
INITIAL_MAX_STREAMS = 100
#: Longest sleep of the sweeper while the pool holds connections.
SWEEP_INTERVAL = 1.0
#: How long a closing HTTP/2 connection may spend sending its GOAWAY.
GOODBYE_SECONDS = 0.1
#: The peer shut its side (Linux); 0 where poll() can't report it apart from data.
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)
#: Connection ids: one count for the process, as libsoup's.
_connection_ids = itertools.count(1)


class Connection(ConnectionRecord):
    """One pooled connection: its task, its stream and its driver (HTTP/1.1 or HTTP/2)."""

    __slots__ = (
        "__weakref__",
        "_job",
        "_job_abandon",
        "_job_given",
        "_poller",
        "_pool",
        "_scope",
        "certificate_errors",
        "close_reason",
        "closed",
        "finished",
        "http",
        "http2",
        "id",
        "log",
        "peer",
        "peer_certificate",
        "plan",
        "stream",
        "tls_cipher",
        "tls_version",
    )

    def __init__(self, key: Hashable, plan: ConnectPlan, pool: Pool) -> None:
        super().__init__(key)
        #: Unique in the process, from 1 (libsoup's connection id; ``msg.connection_id``).
        self.id = next(_connection_ids)
        self.plan = plan
        self._pool = pool
        # Made here, entered by run(): a close() before the task starts still counts.
        self._scope = anyio.CancelScope()
        #: Whether the pool told the task to close the connection.
        self.closed = False
        #: Whether the task ended (the socket is closed).
        self.finished = False
        #: Why the pool closed it: "timeout", "abort", "session closed" or None.
        self.close_reason: str | None = None
        self.stream: ByteStream | None = None
        self._poller: select.poll | None = None  # watches the idle socket
        self.http: HTTP1Connection | None = None
        #: The HTTP/2 driver instead, when ALPN chose ``h2``.
        self.http2: HTTP2Connection | None = None
        #: The peer's address once connected.
        self.peer: RemoteAddress | None = None
        #: The negotiated TLS version and cipher suite (https only).
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        #: The server's certificate (https only).
        self.peer_certificate: TlsCertificate | None = None
        #: The problems of ``peer_certificate``; None when it passed validation.
        #: Only a relaxed connection has problems, and each message that uses
        #: it must accept them (``accept_certificate``).
        self.certificate_errors: TlsCertificateFlags | None = None
        #: Network events and times of the connect, for the first message.
        self.log: ConnectLog | None = ConnectLog()
        # What the task runs once its message detached it (a WebSocket's reader).
        self._job: Callable[[], Awaitable[None]] | None = None
        self._job_abandon: Callable[[], None] | None = None
        self._job_given = anyio.Event()

    def close(self, reason: str | None = None) -> None:
        """Make the task close the socket (the pool already counts it CLOSED)."""
        if reason is not None and self.close_reason is None:
            self.close_reason = reason
        self.closed = True
        self._scope.cancel()

    async def run(self) -> None:
        """The connection's task: connect, wait to be closed, close."""
        state = self._pool.state
        try:
            with self._scope:
                try:
                    await self._connect()
                except Error as exc:
                    state.connect_failed(self, exc)
                    return
                if self.http2 is not None:
                    state.connected(
                        self, time.monotonic(), max_streams=INITIAL_MAX_STREAMS, offered_h2=True
                    )
                    await self.http2.run()
                    return
                state.connected(self, time.monotonic(), offered_h2=self.plan.http2)
                await self._job_given.wait()
                job, self._job = self._job, None
                self._job_abandon = None
                assert job is not None
                await job()
        finally:
            abandon, self._job_abandon = self._job_abandon, None
            if abandon is not None:  # detached, but closed before the job could start
                abandon()
            state.gone(self)
            if self.stream is not None:
                # Closing must finish even when the session's scope is cancelled;
                # aclose_forcefully cancels its own wait, so this can't hang.
                with anyio.CancelScope(shield=True):
                    if self.http2 is not None:  # a GOAWAY first, if it goes at once
                        with anyio.move_on_after(GOODBYE_SECONDS):
                            await self.http2.goodbye()
                    await anyio.aclose_forcefully(self.stream)
            self.finished = True

    async def _connect(self) -> None:
        timeout = self._pool.timeout
        label = self.plan.label
        assert self.log is not None
        try:
            with anyio.fail_after(timeout if timeout > 0 else None):
                self.stream, self.peer, errors = await open_stream(
                    self.plan, self.log, self._pool.resolver
                )
        except TimeoutError:  # anysoup's own (none today): let it through
            raise
        except builtins.TimeoutError as exc:
            raise TimeoutError(f"connect to {label} timed out after {timeout:g} s") from exc
        # Here, not at the top: anyio's TLS module (and logging) load with the
        # first connection, not with ``import anysoup``.
        from anyio.streams.tls import TLSAttribute

        # One lookup table: anyio builds every extra attribute on each extra() call.
        extras: Mapping[Any, Callable[[], Any]] = self.stream.extra_attributes
        alpn = extras.get(TLSAttribute.alpn_protocol)
        if alpn is not None and alpn() == "h2":
            # The HTTP/2 driver, and h2 with it, load with the first connection that needs them.
            from .._drivers.http2 import HTTP2Connection

            self.http2 = HTTP2Connection(self.stream, self, label, timeout=timeout)
        else:
            self.http = HTTP1Connection(self.stream, self, label)
            self.http.timeout = timeout
        raw_socket = extras.get(SocketAttribute.raw_socket)
        if raw_socket is not None and self.http is not None:
            self._poller = select.poll()
            self._poller.register(raw_socket().fileno(), select.POLLIN | _POLLRDHUP)
        if self.plan.ssl_context is not None:
            self.tls_version = str(extras[TLSAttribute.tls_version]())
            cipher = extras[TLSAttribute.cipher]()
            self.tls_cipher = str(cipher[0]) if cipher else None
            der: bytes | None = extras[TLSAttribute.peer_certificate_binary]()
            if der:
                self.peer_certificate = TlsCertificate(der)
            if errors:
                self.certificate_errors = errors

    def run_job(self, job: Callable[[], Awaitable[None]], abandon: Callable[[], None]) -> None:
        """Make the task run ``job`` (the connection was detached from the pool).

        The job runs under the connection's cancel scope: :meth:`close` (the
        session closing) cancels it, and the socket is closed when it ends.
        Should the task end before the job starts, ``abandon()`` is called.
        """
        self._job = job
        self._job_abandon = abandon
        self._job_given.set()

    def set_max_streams(self, limit: int) -> None:
        """The HTTP/2 peer's stream limit changed (see :class:`MultiplexOwner`)."""
        self._pool.state.set_max_streams(self, limit)

    def drain(self) -> None:
        """The HTTP/2 peer sent GOAWAY (see :class:`MultiplexOwner`)."""
        self._pool.state.drain(self)

    def is_alive(self) -> bool:
        """Whether an idle connection's socket is still open and quiet."""
        if self.closed or self.stream is None:
            return False
        if self.http2 is not None:
            return self.http2.accepts_streams
        poller = self._poller
        if poller is None:
            return True
        # Readable while idle: EOF (the server closed it) or bytes nobody asked
        # for (a next response would be out of step). Drop it either way...
        events = poller.poll(0)
        if not events:
            return True
        # ...except TLS 1.3 session tickets, sent after the handshake and read
        # with the first response: a connection not used yet (preconnected) is
        # dead only when the server hung up, which POLLRDHUP tells apart.
        if not self.used and _POLLRDHUP and self.tls_version == "TLSv1.3":
            hung_up = _POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL
            return not events[0][1] & hung_up
        return False

    def __repr__(self) -> str:
        return f"<anysoup.Connection #{self.id} {self.plan.label} {self.state.value}>"


class Pool:
    """The session's connections.

    Args:
        max_conns: The limit on connections, all hosts together.
        max_conns_per_host: The limit on connections for one pool key.
        idle_timeout: Seconds an idle, used connection is kept (0: forever).
        timeout: The I/O stall timeout in seconds (0: none).

    The session's task group, which runs the connection tasks, is given by
    :meth:`attach` when the session opens.
    """

    def __init__(
        self,
        *,
        max_conns: int,
        max_conns_per_host: int,
        idle_timeout: float,
        timeout: float,
    ) -> None:
        self.state = PoolState(
            self._open_connection,
            self._close_connection,
            max_conns=max_conns,
            max_conns_per_host=max_conns_per_host,
            idle_timeout=idle_timeout,
        )
        #: The I/O stall timeout (seconds, 0 = none).
        self.timeout = timeout
        #: Looks up host names (replaceable, e.g. by tests).
        self.resolver: Resolver = resolve
        self._task_group: TaskGroup | None = None
        self._wake_sweeper = anyio.Event()
        #: Every connection made and not yet garbage (for leak checks in tests).
        self.connections: weakref.WeakSet[Connection] = weakref.WeakSet()

    # -- lifetime --------------------------------------------------------------

    async def run_sweeper(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Expire idle connections and enforce I/O stall timeouts, until cancelled."""
        task_status.started()
        state = self.state
        while True:
            if not any(True for _ in state.records()):
                self._wake_sweeper = anyio.Event()
                await self._wake_sweeper.wait()
            now = time.monotonic()
            for record in state.expire(now):
                assert isinstance(record, Connection)
                record.close("timeout")
            interval = SWEEP_INTERVAL
            if self.timeout > 0:
                interval = min(interval, self.timeout / 4)
            interval = min(interval, max(state.next_expiry() - now, 0.01))
            await anyio.sleep(max(interval, 0.01))

    def attach(self, task_group: TaskGroup) -> None:
        """Start making connections in ``task_group``."""
        self._task_group = task_group
        self.state.closing = False

    def close(self) -> None:
        """Close every connection; fail waiters (the session is closing)."""
        for record in [*self.state.records(), *self.state.detached]:
            assert isinstance(record, Connection)
            record.close("session closed")
        self.state.close_all(lambda: NetworkError("the session is closed"))
        self._task_group = None

    def abort(self) -> None:
        """Fail waiting requests (cancelling their connects), interrupt lent connections.

        Idle connections are closed too.
        """
        for record in self.state.abort(lambda: RequestCancelled("the session was aborted")):
            assert isinstance(record, Connection)
            record.close("abort")

    # -- PoolState callbacks ---------------------------------------------------

    def _open_connection(self, key: Hashable, plan: Any) -> ConnectionRecord:
        assert self._task_group is not None and isinstance(plan, ConnectPlan)
        conn = Connection(key, plan, self)
        self.connections.add(conn)
        self._task_group.start_soon(conn.run, name=f"anysoup connection {conn.plan.label}")
        self._wake_sweeper.set()
        return conn

    def _close_connection(self, record: ConnectionRecord) -> None:
        assert isinstance(record, Connection)
        record.close()

    # -- requests --------------------------------------------------------------

    def checkout_idle(self, key: Hashable) -> Connection | None:
        """Lend an idle connection for ``key`` at once, if one is free and nobody waits."""
        return self.state.checkout_idle(key)  # type: ignore[return-value]

    async def acquire(
        self,
        key: Hashable,
        plan: ConnectPlan,
        *,
        priority: int,
        fresh_only: bool,
        multiplex: bool = False,
    ) -> Connection:
        """Borrow a connection for ``key``; give it back with :meth:`release`.

        Raises:
            ConnectError, TlsError, TimeoutError: Making the connection failed.
        """
        state = self.state
        if not fresh_only:
            record = self.checkout_idle(key)
            if record is not None:
                return record
        if self._task_group is None:
            raise NetworkError("the session is not open: use 'async with Session()'")
        event = anyio.Event()
        waiter = Waiter(
            key,
            priority=priority,
            fresh_only=fresh_only,
            multiplex=multiplex,
            notify=event.set,
            plan=plan,
        )
        state.enqueue(waiter)
        try:
            if not waiter.done:
                await event.wait()
        except BaseException:
            state.cancel_waiter(waiter, time.monotonic())
            raise
        if waiter.error is not None:
            raise waiter.error
        served = waiter.conn
        assert isinstance(served, Connection)
        return served

    async def preconnect(self, key: Hashable, plan: ConnectPlan, *, priority: int) -> None:
        """Make sure a connection for ``key`` exists (idle or being made for a request)."""
        if self._task_group is None:
            raise NetworkError("the session is not open: use 'async with Session()'")
        event = anyio.Event()
        waiter = Waiter(
            key,
            priority=priority,
            preconnect=True,
            multiplex=plan.http2,
            notify=event.set,
            plan=plan,
        )
        self.state.enqueue(waiter)
        try:
            if not waiter.done:
                await event.wait()
        except BaseException:
            self.state.cancel_waiter(waiter, time.monotonic())
            raise
        if waiter.error is not None:
            raise waiter.error

    def detach(
        self, conn: Connection, job: Callable[[], Awaitable[None]], abandon: Callable[[], None]
    ) -> None:
        """Take a lent connection out of the pool and let ``job`` run it.

        The connection no longer counts against the limits; ``job`` runs in
        the connection's task (in the session's task group) until it returns
        or the session closes, and then the socket is closed.

        Raises:
            NetworkError: The connection was closed meanwhile (timeout, abort).
        """
        try:
            self.state.detach(conn)
        except RuntimeError:
            raise NetworkError(f"{conn.plan.label}: the connection was closed") from None
        conn.run_job(job, abandon)

    def release(self, conn: Connection, *, reusable: bool) -> None:
        """Take back a borrowed connection (synchronous: safe in any clean-up)."""
        self.state.release(conn, reusable=reusable, now=time.monotonic())

    def statistics(self) -> PoolStatistics:
        """The pool's counters."""
        return self.state.statistics()

    def __repr__(self) -> str:
        return f"<anysoup.Pool {self.state!r}>"
