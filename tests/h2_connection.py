"""One HTTP/2 connection of :func:`h2_servers.serve_h2`: h2 driven over a TLS stream.

Theory of operation: an :class:`H2ServerConnection` owns one h2
``H2Connection`` and three kinds of task, in its own task group:

* the *reader* feeds received bytes to h2 and dispatches the events: a request
  starts a handler task with its :class:`ServerStream`; body chunks, trailers
  and resets go to that stream; window updates, pings, GOAWAY and settings
  update the counters the tests assert on;
* the *writer* is the only task that writes to the socket. Everything h2 (or a
  script) produces is appended to one outbox, synchronously right after the h2
  call that produced it, so frames leave in the order they were made and a
  client that stops reading stalls the writer, never the reader;
* one *handler* task per stream, which answers through its stream.

Settings are sent in one SETTINGS frame written here, not h2's: h2 is told
everything but MAX_CONCURRENT_STREAMS, which this server enforces itself once
the client has acknowledged it, refusing the extra streams with REFUSED_STREAM
(RFC 9113 §5.1.2) instead of h2's connection error. GOAWAY is written raw too,
because h2 forbids any frame after its own GOAWAY, and a graceful GOAWAY must
let the streams it kept finish (RFC 9113 §6.8).

Peer misbehaviour (the client leaving, resets, HTTP/2 errors) ends the stream
or connection quietly; a handler's own bug propagates.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from anyio.streams.tls import TLSStream
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_streams import ServerStream, StreamGone
from hyperframe.frame import GoAwayFrame, SettingsFrame
from servers import CLOSE_LINGER, PEER_ERRORS

if TYPE_CHECKING:
    from h2_servers import H2Server

__all__ = ["ConnectionScript", "H2ServerConnection", "Handler"]

Handler = Callable[[ServerStream], Awaitable[None]]
ConnectionScript = Callable[["H2ServerConnection"], Awaitable[None]]

#: A handler's sends wait while the writer has more than this still to write.
OUTBOX_HIGH_WATER = 1 << 20

#: What h2 advertises by default (besides the RFC 9113 §6.5.2 defaults): kept
#: so that the client is told the limits h2 enforces before our settings apply.
H2_DEFAULT_SETTINGS: dict[int, int] = {
    SettingCodes.MAX_CONCURRENT_STREAMS: 100,
    SettingCodes.MAX_HEADER_LIST_SIZE: h2.connection.H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE,
}

#: h2's own limit on client streams: none, this server enforces the advertised one.
_UNLIMITED = 2**31 - 1


class H2ServerConnection:
    """One HTTP/2 connection: fault scripting and the counters tests assert on.

    Every counter is updated as the reader dispatches events; wait for one with
    ``await conn.wait_until(lambda: ...)``.
    """

    def __init__(
        self,
        server: H2Server,
        stream: TLSStream,
        index: int,
        handler: Handler,
        config: h2.config.H2Configuration,
    ) -> None:
        self.server = server
        self.stream = stream
        self.index = index  #: from 0, in accept order among HTTP/2 connections
        self.h2 = h2.connection.H2Connection(config=config)
        self._handler = handler
        #: Every stream the client opened, by id, including refused and ignored ones.
        self.stream_ids: list[int] = []
        #: The streams handed to the handler, by id.
        self.streams: dict[int, ServerStream] = {}
        self.refused_streams: list[int] = []  #: over MAX_CONCURRENT_STREAMS: REFUSED_STREAM
        self.ignored_streams: list[int] = []  #: opened above our GOAWAY's last stream id
        self.resets_received: list[tuple[int, int]] = []  #: (stream id, error code)
        self.window_updates: list[tuple[int, int]] = []  #: (stream id, 0 = connection; increment)
        self.pings_received: list[bytes] = []  #: opaque data of the client's PINGs
        self.ping_acks_received = 0  #: acknowledgements of our PINGs
        #: The client's GOAWAY as h2 saw it (error_code, last_stream_id, additional_data).
        self.goaway_received: h2.events.ConnectionTerminated | None = None
        self.goaway_sent: tuple[int, int] | None = None  #: our last GOAWAY (error code, last id)
        self.max_concurrent_streams_seen = 0  #: most client streams open at once
        self.client_settings: dict[int, int] = {}  #: the client's SETTINGS, as changed
        self.settings_acked = 0  #: SETTINGS frames of ours the client acknowledged
        self.data_sent = 0  #: response DATA payload bytes, all streams
        self.data_received = 0  #: request DATA payload bytes, all streams
        self.protocol_error: h2.exceptions.ProtocolError | None = None  #: what h2 raised on input
        self.closed = False
        #: Set by a test: everything h2 produces from then on is dropped (a
        #: server that went silent: PINGs and requests go unanswered).
        self.mute = False
        self._closing = False  # a graceful close after GOAWAY has started
        self._max_streams: int | None = None  # enforced MAX_CONCURRENT_STREAMS
        self._pending_max_streams: deque[int | None] = deque()  # per SETTINGS not yet acked
        self._active: set[int] = set()  # streams whose handler runs
        self._outbox = bytearray()
        self._queued = self._written = 0
        self._io = anyio.Event()  # outbox grew or shrank
        self._window = anyio.Event()  # a window may have opened
        self._reader_done = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None

    # -- fault scripting -----------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, after all h2 has produced so far; h2 does not see them."""
        self._take_h2_output()
        self._outbox += data
        await self._queue_output(backpressure=True)

    async def goaway(
        self, error_code: int = 0, last_stream_id: int | None = None, *, debug: bytes = b""
    ) -> None:
        """Send GOAWAY; the streams above ``last_stream_id`` are dropped, the others finish.

        ``last_stream_id`` defaults to the highest stream the client opened. A
        lower one tells the client that the streams above it were not processed
        (RFC 9113 §6.8): their handlers are cancelled and nothing more is sent
        on them, and new streams are ignored. Once no handler at or below it is
        running the connection is closed (after the client's EOF, or
        :data:`servers.CLOSE_LINGER`).
        """
        last = self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        self.goaway_sent = (error_code, last)
        self._take_h2_output()
        self._outbox += GoAwayFrame(
            0, last_stream_id=last, error_code=error_code, additional_data=debug
        ).serialize()
        for stream_id in sorted(self._active):
            if stream_id > last:
                self.streams[stream_id]._scope.cancel()
        await self._queue_output()
        await self.flush()
        self._close_when_done()

    async def ping(self, data: bytes = b"anysoup!") -> None:
        """Send one PING with 8 bytes of opaque data."""
        self._check_open()
        self.h2.ping(data)
        await self._queue_output()

    async def ping_flood(self, n: int) -> None:
        """Send ``n`` PINGs at once (each is counted in ``ping_acks_received`` when acked)."""
        self._check_open()
        for i in range(n):
            self.h2.ping(struct.pack(">Q", i))
        await self._queue_output(backpressure=True)

    def update_settings(self, settings: Mapping[Any, int]) -> None:
        """Send a new SETTINGS frame; MAX_CONCURRENT_STREAMS is enforced once the client acks."""
        self._check_open()
        self._send_settings(settings)
        self._wake_writer()

    async def flush(self) -> None:
        """Wait until everything queued so far has been written to the socket."""
        target = self._queued
        while self._written < target and not self.closed:
            await self._io.wait()

    async def close(self) -> None:
        """Drop the connection: write what is queued (for a moment), then close the TCP socket.

        No GOAWAY and no TLS close_notify; a handler calling this is cancelled.
        """
        if not self.closed:
            with anyio.move_on_after(CLOSE_LINGER):
                await self.flush()
        await self._shut(linger=False)

    async def abort(self) -> None:
        """Reset the connection: SO_LINGER 0 makes the kernel send RST, not FIN."""
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        if sock.fileno() != -1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self._shut(linger=False)

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Wait until ``predicate()`` is true (see :meth:`H2Server.wait_until`)."""
        await self.server.wait_until(predicate)

    @property
    def is_open(self) -> bool:
        """False once the socket is closed or h2 has stopped (a GOAWAY with an error)."""
        return not self.closed and self.h2.state_machine.state is not ConnectionState.CLOSED

    @property
    def streams_opened(self) -> int:
        """How many streams the client opened on this connection."""
        return len(self.stream_ids)

    def window_granted(self, stream_id: int = 0) -> int:
        """The client's window for ``stream_id`` (0: the connection) as it has granted it.

        The initial window plus every WINDOW_UPDATE increment so far: what
        the server may have sent, at most. (A stream's initial window is the
        client's current SETTINGS_INITIAL_WINDOW_SIZE.)
        """
        initial = 65535
        if stream_id:
            initial = self.client_settings.get(SettingCodes.INITIAL_WINDOW_SIZE, 65535)
        return initial + sum(d for s, d in self.window_updates if s == stream_id)

    def __repr__(self) -> str:
        return f"<H2ServerConnection {self.index} streams={self.stream_ids} closed={self.closed}>"

    # -- running -------------------------------------------------------------

    async def _serve(self, settings: Mapping[Any, int], script: ConnectionScript | None) -> None:
        self.h2.initiate_connection()
        self.h2.data_to_send()  # replaced by our own first SETTINGS frame
        self._send_settings({**H2_DEFAULT_SETTINGS, **settings}, first=True)
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            tg.start_soon(self._write_loop)
            if script is not None:
                tg.start_soon(self._run_quietly, script)
            await self._read_loop()
            with anyio.move_on_after(CLOSE_LINGER):  # e.g. h2's GOAWAY after a protocol error
                await self.flush()
            await self._shut(linger=False)

    async def _run_quietly(self, script: ConnectionScript) -> None:
        with suppress(StreamGone):
            await script(self)

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    data = await self.stream.receive(65536)
                except anyio.EndOfStream:
                    return
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    self.protocol_error = exc
                    self._wake_writer()  # h2 prepared a GOAWAY
                    return
                for event in events:
                    self._dispatch(event)
                self._wake_writer()
                self.server._notify()
        except PEER_ERRORS:
            return
        finally:
            self._reader_done.set()
            self.server._notify()

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._outbox:
                    await self._io.wait()
                data = bytes(self._outbox)
                self._outbox.clear()
                await self.stream.send(data)
                self._written += len(data)
                self._notify_io()
        except PEER_ERRORS:
            await self._shut(linger=False)

    async def _shut(self, *, linger: bool) -> None:
        """Close the socket and end every task of this connection."""
        if linger and not self.closed:
            # FIN after the last frame, then read until the client's EOF:
            # closing with unread input would make the kernel send RST, which
            # can destroy the end of the response before the client reads it.
            with anyio.move_on_after(CLOSE_LINGER):
                await self.flush()
                sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                await self._reader_done.wait()
        self.closed = True
        self._notify_io()
        self._open_windows()
        # Shielded so the socket is closed even while the server is cancelled.
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self.stream.transport_stream)
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        self.server._notify()

    def _close_when_done(self) -> None:
        if self.goaway_sent is None or self._task_group is None or self.closed:
            return
        last = self.goaway_sent[1]
        if not self._closing and not any(stream_id <= last for stream_id in self._active):
            self._closing = True
            self._task_group.start_soon(functools.partial(self._shut, linger=True))

    # -- output --------------------------------------------------------------

    def _check_open(self) -> None:
        if not self.is_open:
            raise StreamGone(f"{self!r} is closed")

    def _take_h2_output(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.mute:
            self._outbox += data

    def _wake_writer(self) -> None:
        self._take_h2_output()
        self._queued = self._written + len(self._outbox)
        if self._outbox:
            self._notify_io()

    async def _queue_output(self, *, backpressure: bool = False) -> None:
        """Hand h2's output to the writer; optionally wait while too much is unwritten."""
        self._wake_writer()
        self.server._notify()  # counters such as data_sent changed
        if backpressure:
            while len(self._outbox) > OUTBOX_HIGH_WATER and not self.closed:
                await self._io.wait()
        await anyio.lowlevel.checkpoint()

    def _notify_io(self) -> None:
        self._io.set()
        self._io = anyio.Event()

    def _open_windows(self) -> None:
        self._window.set()
        self._window = anyio.Event()

    async def _window_opened(self) -> None:
        await self._window.wait()

    def _send_settings(self, settings: Mapping[Any, int], *, first: bool = False) -> None:
        """One SETTINGS frame: ours on the wire, h2 told the same but no stream limit."""
        values = dict(settings)
        max_streams = values.get(SettingCodes.MAX_CONCURRENT_STREAMS)
        if first:
            frame = SettingsFrame(0, settings={**dict(self.h2.local_settings), **values})
        else:
            frame = SettingsFrame(0, settings=values)
            self._take_h2_output()
        if max_streams is not None:
            values = {**values, SettingCodes.MAX_CONCURRENT_STREAMS: _UNLIMITED}
        self.h2.update_settings(values)
        self.h2.data_to_send()  # h2's version of the frame, replaced by ours
        self._outbox += frame.serialize()
        self._pending_max_streams.append(max_streams)

    # -- input ---------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.TrailersReceived):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.request_trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.request_complete = True
                stream._arrived.set()
        elif isinstance(event, h2.events.StreamReset):
            self._reset(event)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updates.append((event.stream_id, event.delta))
            self._open_windows()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.client_settings[int(code)] = change.new_value
            self._open_windows()
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self.settings_acked += 1
            limit = self._pending_max_streams.popleft() if self._pending_max_streams else None
            if limit is not None:
                self._max_streams = limit
        elif isinstance(event, h2.events.PingReceived):
            self.pings_received.append(event.ping_data)
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_acks_received += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway_received = event
            if event.error_code == ErrorCodes.NO_ERROR:
                # h2 closes its state machine on any GOAWAY, yet the streams
                # already open may finish (RFC 9113 §6.8; python-hyper/h2#1181).
                self.h2.state_machine.state = (
                    ConnectionState.SERVER_OPEN
                    if self.h2.highest_inbound_stream_id
                    else ConnectionState.IDLE
                )
            self._open_windows()

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        self.stream_ids.append(stream_id)
        open_now = self.h2.open_inbound_streams
        self.max_concurrent_streams_seen = max(self.max_concurrent_streams_seen, open_now)
        if self.goaway_sent is not None and stream_id > self.goaway_sent[1]:
            self.ignored_streams.append(stream_id)  # RFC 9113 §6.8: may be ignored
            return
        if self._max_streams is not None and open_now > self._max_streams:
            self.refused_streams.append(stream_id)
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        stream = ServerStream(self, stream_id, list(event.headers))
        stream.request_complete = event.stream_ended is not None
        self.streams[stream_id] = stream
        self._active.add(stream_id)
        assert self._task_group is not None
        self._task_group.start_soon(self._run_stream, stream)

    def _data(self, event: h2.events.DataReceived) -> None:
        self.data_received += len(event.data)
        stream = self.streams.get(event.stream_id)
        if stream is None or event.stream_id not in self._active:
            # Nobody will read it: give the window back at once.
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        stream.data_received += len(event.data)
        stream._chunks.append((event.data, event.flow_controlled_length))
        stream._arrived.set()

    def _reset(self, event: h2.events.StreamReset) -> None:
        if not event.remote_reset:
            return
        self.resets_received.append((event.stream_id, int(event.error_code)))
        if (stream := self.streams.get(event.stream_id)) is not None:
            stream.reset_by_client = int(event.error_code)
            stream._scope.cancel()
            self._drop_chunks(stream)
        self._open_windows()

    def _consumed(self, stream: ServerStream, flow_length: int) -> None:
        """The handler read ``flow_length`` flow-controlled bytes: hand the windows back."""
        if not flow_length or not self.is_open:
            return
        if stream.hold_window:
            self.h2.increment_flow_control_window(flow_length)  # the connection only
        else:
            self.h2.acknowledge_received_data(flow_length, stream.stream_id)
        self._wake_writer()

    def _drop_chunks(self, stream: ServerStream) -> None:
        """Unread body left by a finished or reset stream: its connection window comes back."""
        while stream._chunks:
            _, flow_length = stream._chunks.popleft()
            if flow_length and not self.closed:
                self.h2.acknowledge_received_data(flow_length, stream.stream_id)
        self._wake_writer()

    async def _run_stream(self, stream: ServerStream) -> None:
        try:
            with stream._scope:
                await self._handler(stream)
                if not (stream.response_ended or stream.raw):
                    stream._check()
                    self.h2.reset_stream(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
                    stream.response_ended = True
        except StreamGone:
            pass
        finally:
            self._active.discard(stream.stream_id)
            self._drop_chunks(stream)
            self.server._notify()
            self._close_when_done()
