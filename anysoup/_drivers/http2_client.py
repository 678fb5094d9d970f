"""h2's connection as the HTTP/2 driver uses it: settings, windows, two fixes.

Theory of operation: :func:`new_client` makes the h2 state machine of one
client connection with anysoup's settings (no server push, 6 MiB stream
windows, a 15 MiB connection window, 256 KiB header lists, frames up to
64 KiB), in force from the first byte rather than from the server's
acknowledgement. :class:`H2Client` changes three things of h2's:

* a received GOAWAY leaves the state machine able to receive (h2 closes it
  whole, and would refuse the frames of the streams the server still
  finishes, python-hyper/h2#1181);
* a 204 or 304 answer is expected to have no content, whatever its
  Content-Length says (h2 would fail the connection on an empty DATA frame);
* received DATA frames are :class:`_QuietDataFrame` objects, whose ``repr``
  doesn't hex-dump the payload (h2 formats every received frame for its
  trace log whether anything logs or not).

:func:`read_more` takes every TLS record already received at once, so h2
gets several frames per call.
"""

from __future__ import annotations

import ssl
import struct
from typing import Any

import h2.config
import h2.connection
import h2.frame_buffer
import h2.settings
import h2.stream
import hyperframe.frame

from .http1 import MAX_HEADER_BLOCK, READ_SIZE

__all__ = [
    "CONNECTION_WINDOW",
    "MAX_FRAME_SIZE",
    "STREAM_WINDOW",
    "H2Client",
    "new_client",
    "read_more",
]

#: The connection's receive window (libsoup, Chromium).
CONNECTION_WINDOW = 15 * 1024 * 1024
#: Each stream's receive window.
STREAM_WINDOW = 6 * 1024 * 1024
#: The largest frame we accept (RFC 9113 §6.5.2: 16 KiB unless we say more).
MAX_FRAME_SIZE = 64 * 1024
_INITIAL_WINDOW = 65535
#: A frame header (RFC 9113 §4.1): 24-bit length, type, flags, 31-bit stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")

_Settings = h2.settings.SettingCodes


class _QuietDataFrame(hyperframe.frame.DataFrame):
    """A DATA frame whose ``repr`` doesn't hex-dump its payload.

    h2 formats every frame it receives for its trace log, logger or not, and
    hyperframe's ``repr`` of a DATA frame hexlifies the whole payload: a third
    of h2's work on a download.
    """

    def __repr__(self) -> str:
        return f"DataFrame(stream_id={self.stream_id}, length={len(self.data)})"


class _FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame parser, handing out DATA frames as :class:`_QuietDataFrame`.

    Consecutive unpadded DATA frames of one stream, already received, are
    handed out as one: h2 does the same flow-control accounting and length
    checks on their sum (each frame's size was checked against our limit as
    it was parsed), but its per-frame work, a third of a download's CPU, is
    done once per read instead of once per 16 KiB. Merging stops at a frame
    with END_STREAM, at padding and at any other frame, which waits for the
    next call: the order of frames is never changed.

    The frames after the first are read straight from h2's buffer (its
    ``_data``) when they are complete DATA frames of the same stream within
    our frame size limit, outside a header block: the 9-byte frame header
    of RFC 9113 §4.1 needs no frame object. Anything else goes through h2's
    parser, which checks it.
    """

    def __init__(self, server: bool = False) -> None:
        super().__init__(server=server)
        self._held: Any = None
        # h2's buffer and header-block state, if they are where 4.x keeps them.
        self._direct = isinstance(getattr(self, "_data", None), bytearray) and isinstance(
            getattr(self, "_headers_buffer", None), list
        )

    def _next_data(self, stream_id: int) -> tuple[bytes, bool] | None:
        """The payload and END_STREAM of the next frame, if a plain DATA frame of ``stream_id``."""
        data: bytearray = self._data
        if len(data) < 9 or self._headers_buffer:
            return None
        high, low, kind, flags, sid = _FRAME_HEADER.unpack_from(data)
        length = high << 8 | low
        if (
            kind != 0x0  # DATA
            or sid & 0x7FFFFFFF != stream_id
            or flags & 0x8  # PADDED
            or length > self.max_frame_size
            or len(data) < 9 + length
        ):
            return None
        with memoryview(data) as view:  # one copy, and no export left to block the del
            payload = bytes(view[9 : 9 + length])
        del data[: 9 + length]
        return payload, bool(flags & 0x1)  # END_STREAM

    def __next__(self) -> Any:
        frame = self._held
        if frame is None:
            frame = super().__next__()
        else:
            self._held = None
        if type(frame) is not hyperframe.frame.DataFrame:
            return frame
        flags = frame.flags
        if "PADDED" in flags or "END_STREAM" in flags:
            frame.__class__ = _QuietDataFrame
            return frame
        pieces = [frame.data]
        end = False
        while True:
            if self._direct:
                taken = self._next_data(frame.stream_id)
                if taken is not None:
                    pieces.append(taken[0])
                    if taken[1]:
                        end = True
                        break
                    continue
            try:
                more = super().__next__()
            except StopIteration:
                break
            if (
                type(more) is not hyperframe.frame.DataFrame
                or more.stream_id != frame.stream_id
                or "PADDED" in more.flags
            ):
                self._held = more
                break
            pieces.append(more.data)
            if "END_STREAM" in more.flags:
                end = True
                break
        merged = _QuietDataFrame(
            frame.stream_id,
            data=b"".join(pieces) if len(pieces) > 1 else pieces[0],
            flags=("END_STREAM",) if end else (),
        )
        return merged


class _Stream(h2.stream.H2Stream):
    """h2's stream, expecting no content after a 204 or 304 whatever Content-Length says.

    RFC 9110 §8.6: a 304 may carry the Content-Length the full answer would
    have had, and a 204 has no content. h2 checks the DATA it receives
    against Content-Length for every answer but one to HEAD, and a 304 that
    ends with an empty DATA frame would fail the whole connection.
    """

    def _initialize_content_length(self, headers: Any) -> None:
        super()._initialize_content_length(headers)
        for name, value in headers:
            if name == b":status":
                if value in (b"204", b"304"):
                    self._expected_content_length = 0
                return


class H2Client(h2.connection.H2Connection):
    """h2's connection, with two changes.

    * A received GOAWAY leaves it able to receive. RFC 9113 §6.8: streams at
      or below the GOAWAY's last-stream-id may still complete; h2 closes its
      whole state machine instead. The state is put back, and
      :class:`HTTP2Connection` refuses new streams itself.
    * DATA frames come from :class:`_FrameBuffer` (h2 looks up a frame's
      handler by its exact class, so the quiet class gets the same handler).
    * Streams are :class:`_Stream` objects (no content after 204 and 304).
    """

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.incoming_buffer = _FrameBuffer(server=False)
        table = self._frame_dispatch_table
        table[_QuietDataFrame] = table[hyperframe.frame.DataFrame]

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = _Stream
        return stream

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        if state is not h2.connection.ConnectionState.CLOSED:
            self.state_machine.state = state
        return result


def new_client() -> H2Client:
    """A client connection's h2 state, its preface and settings queued to be sent."""
    # Our header blocks are made clean (http2_policy.request_block): h2 need not
    # check and normalise them again; what the server sends is still checked.
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = H2Client(config=config)
    settings = h2.settings.Settings(
        client=True,
        initial_values={
            _Settings.ENABLE_PUSH: 0,
            _Settings.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            _Settings.MAX_HEADER_LIST_SIZE: MAX_HEADER_BLOCK,
            # Servers that fill frames up to what we allow send a quarter as
            # many: h2's work is per frame.
            _Settings.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
        },
    )
    # Some servers refuse a SETTINGS frame naming the extended CONNECT.
    del settings[_Settings.ENABLE_CONNECT_PROTOCOL]
    conn.local_settings = settings
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - _INITIAL_WINDOW)
    # Our limits hold from the start, not from the server's SETTINGS ack: h2
    # would apply them only then, and (for the frame size) only from its next
    # receive_data, while a server may use them at once.
    conn.decoder.max_header_list_size = MAX_HEADER_BLOCK
    conn.max_inbound_frame_size = MAX_FRAME_SIZE
    return conn


def read_more(ssl_object: ssl.SSLObject, conn: H2Client, data: bytes) -> bytes:
    """Add ``data`` and what else TLS can decrypt now to h2's buffer, but the last piece.

    anyio's TLS stream returns one TLS record per read, and servers often
    send one DATA frame per record (nginx: 8 KiB): taking every record
    already received at once feeds h2 several frames per call instead of one.
    The pieces go into h2's frame buffer as they come (no joined copy); the
    last one is returned for ``receive_data``, which adds it and parses.
    Anything unusual (an alert, the need for more bytes) is left for the next
    read through the stream, which reports it.
    """
    size = len(data)
    while size < READ_SIZE * 4:
        try:
            more = ssl_object.read(READ_SIZE)
        except ssl.SSLError:
            break
        if not more:
            break
        conn.incoming_buffer.add_data(data)
        data = more
        size += len(more)
    return data
