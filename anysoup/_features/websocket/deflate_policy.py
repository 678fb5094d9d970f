"""WebSocket extensions, and permessage-deflate for the client (policy: no I/O).

An extension is a :class:`wsproto.extensions.Extension`. For each handshake
the session asks :class:`WebsocketExtensionManager` for fresh instances and
offers them in ``Sec-WebSocket-Extensions`` (RFC 6455 §9.1); each extension
the server accepts gets the parameters of the answer through
:meth:`WebsocketExtension.configure`, and the accepted ones go to the
wsproto ``Connection``, which calls their frame hooks on every frame it reads
and writes. Nothing here awaits anything.

Theory of operation of permessage-deflate (RFC 7692):

* Negotiation. We offer ``permessage-deflate; client_max_window_bits`` (as
  libsoup): "you may ask me to compress with a smaller window". The answer
  may carry the four parameters of §7.1, each at most once; any other, a
  value where none belongs or a window size outside 8..15 fails the
  handshake.
* Reading. RSV1 on the first frame of a data message marks the message
  compressed (§6); on a continuation or control frame it is a protocol error
  (§6.1), since only a message, never a frame, is compressed. The payloads of
  the message's frames followed by ``00 00 ff ff`` form raw DEFLATE blocks
  (§7.2.2). The inflater, and with it the LZ77 window, lives on to the next
  message unless the server promised ``server_no_context_takeover``. A block
  with BFINAL set ends zlib's stream, yet more blocks may follow it (§7.2.1):
  they go to a new inflater.
* The bound. A few kilobytes of DEFLATE can claim gigabytes of output, and
  wsproto's own ``PerMessageDeflate`` inflates without limit. Here the output
  of the current message is counted, and each ``decompress`` call may give
  at most one byte more than what is left of :attr:`max_message_size`: one
  byte too many is enough to close with 1009 (RFC 6455 §7.4.1) and the rest
  of the input is never inflated. Whatever the input, a call holds at most
  the limit plus one byte of output.
* Writing. Each data message goes through a raw deflater ended with a sync
  flush, whose trailing ``00 00 ff ff`` is dropped (§7.2.1); RSV1 is set on
  the first frame only. Control frames are never compressed (§6.1).

Only the client's side is written: the window and takeover parameters are
read as "server" for what we inflate and "client" for what we deflate.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from ..._model.public import public
from ..._model.websocket_extension import WebsocketExtension

if TYPE_CHECKING:
    from wsproto.frame_protocol import FrameDecoder, FrameProtocol

__all__ = ["WebsocketExtensionDeflate"]


# -- permessage-deflate (RFC 7692) ---------------------------------------------------

#: The end of a sync flush, an empty stored block: stripped from each compressed
#: message by the sender, put back by the receiver (RFC 7692 §7.2.1, §7.2.2).
_TAIL = b"\x00\x00\xff\xff"
#: RFC 7692 §7.1.2.1: a window size is a decimal from 8 to 15, no leading zero.
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")
_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_SIZES = ("server_max_window_bits", "client_max_window_bits")


@public
class WebsocketExtensionDeflate(WebsocketExtension):
    """permessage-deflate (RFC 7692), the compression browsers speak; client side.

    Offered by default (see :class:`WebsocketExtensionManager`). A
    compressed message is inflated at most to :attr:`max_message_size`: a
    bigger one closes the connection with 1009 before it is in memory. The
    attributes below tell what was agreed once the handshake is done; they
    are read, not set.
    """

    name = "permessage-deflate"

    def __init__(self) -> None:
        # RFC 7692 §7.1: without parameters, both sides keep their context
        # and may use a 15-bit window. configure() sets what was agreed.
        #: The server starts each message with an empty window (we inflate each afresh).
        self.server_no_context_takeover = False
        #: We must deflate each message afresh.
        self.client_no_context_takeover = False
        #: The base-2 log of the server's LZ77 window (8 to 15).
        self.server_max_window_bits = 15
        #: The base-2 log of the largest window we may deflate with (8 to 15).
        self.client_max_window_bits = 15
        self._reset()

    def _reset(self) -> None:
        """Forget the codec state (what a new set of parameters needs)."""
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None
        # Reading: the current frame is a control frame (one may come between
        # the frames of a message), the current message is compressed, and
        # how many bytes it inflated to so far.
        self._control_frame = False
        self._compressed = False
        self._produced = 0
        # Writing: the message being sent is compressed.
        self._compressing = False

    # -- negotiation -----------------------------------------------------------------

    def request_params(self) -> str:
        """``client_max_window_bits``: the server may narrow our window (§7.1.2.2)."""
        return "client_max_window_bits"

    def configure(self, params: dict[str, str | None]) -> None:
        """Take the server's answer (RFC 7692 §7.1).

        Args:
            params: Any of ``server_no_context_takeover`` and
                ``client_no_context_takeover`` (without value),
                ``server_max_window_bits`` and ``client_max_window_bits``
                (8 to 15; the latter only because we offered it).

        Raises:
            ValueError: An unknown parameter, a value where none belongs, a
                missing or malformed window size.
        """
        offered = {p.partition("=")[0].strip() for p in self.request_params().split(";")}
        flags = dict.fromkeys(_FLAGS, False)
        sizes = dict.fromkeys(_SIZES, 15)
        for name, value in params.items():
            if name in flags:
                if value is not None:
                    raise ValueError(f"{name} takes no value, got {value!r}")
                flags[name] = True
            elif name in sizes:
                # §7.1.2.2: the server may narrow the client's window only if
                # the offer said the client can.
                if name == "client_max_window_bits" and name not in offered:
                    raise ValueError(f"{name} was not offered")
                if value is None or not _WINDOW_BITS.fullmatch(value):
                    raise ValueError(f"{name} must be a number from 8 to 15, got {value!r}")
                sizes[name] = int(value)
            else:
                raise ValueError(f"unknown parameter {name!r}")
        self.server_no_context_takeover = flags["server_no_context_takeover"]
        self.client_no_context_takeover = flags["client_no_context_takeover"]
        self.server_max_window_bits = sizes["server_max_window_bits"]
        self.client_max_window_bits = sizes["client_max_window_bits"]
        self._reset()
        self._configured = True

    # -- reading -----------------------------------------------------------------------

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        """Note whether a new message is compressed; refuse RSV1 where it can't be (§6.1)."""
        # wsproto may call this twice for one header (when it's cut short):
        # nothing below depends on the number of calls, only on the header.
        self._control_frame = opcode.iscontrol()
        if self._control_frame or opcode is Opcode.CONTINUATION:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(False, False, False)
        self._compressed = rsv.rsv1
        self._produced = 0
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate a piece of a compressed message's payload, within the size limit."""
        if self._control_frame or not self._compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        """At the end of a compressed message, inflate the stripped tail (§7.2.2)."""
        if self._control_frame or not fin or not self._compressed:
            return None
        # A message whose last block had BFINAL set is complete as it is (the
        # RFC wants an empty stored block after it, §7.2.1, not every sender
        # writes one): the tail would open a stored block nothing closes.
        ended = self._inflater is not None and self._inflater.eof
        rest = b"" if ended else self._inflate(_TAIL)
        self._compressed = False
        if self.server_no_context_takeover:
            self._inflater = None
        return rest

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        out = []
        limit = self.max_message_size
        while data:
            if self._inflater is None or self._inflater.eof:
                # zlib builds differ on a raw window of 8 for inflating; a
                # wider window reads any stream a narrower one wrote.
                self._inflater = zlib.decompressobj(-max(self.server_max_window_bits, 9))
            inflater = self._inflater
            try:
                if limit > 0:
                    budget = limit - self._produced  # below 0 if the limit was lowered
                    if budget < 0:
                        return CloseReason.MESSAGE_TOO_BIG
                    chunk = inflater.decompress(data, budget + 1)
                else:
                    chunk = inflater.decompress(data)
            except zlib.error:
                return CloseReason.INVALID_FRAME_PAYLOAD_DATA
            self._produced += len(chunk)
            if limit > 0 and self._produced > limit:
                return CloseReason.MESSAGE_TOO_BIG
            out.append(chunk)
            # Output below the cap means all the input was read, up to the end
            # of the stream if a BFINAL block ended it; what follows such a
            # block starts a new stream (§7.2.1, example in §7.2.3.4).
            data = inflater.unused_data if inflater.eof else b""
        return b"".join(out)

    # -- writing -----------------------------------------------------------------------

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        """Deflate a data frame; RSV1 on the first frame of a compressed message."""
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            # A raw deflater can't use a window of 8 (zlib writes 9 instead,
            # which a server that asked for 8 can't read): send such messages
            # uncompressed, which RSV1 clear allows (RFC 7692 §6).
            self._compressing = self.client_max_window_bits > 8
            if self._compressing:
                rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        if not self._compressing:
            return rsv, data
        if self._deflater is None:
            bits = -self.client_max_window_bits
            self._deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, bits)
        out = self._deflater.compress(data)
        # Only the last frame is flushed: a fragment may carry less than was
        # given (even nothing); the message as a whole is complete.
        if fin:
            out += self._deflater.flush(zlib.Z_SYNC_FLUSH)
            assert out.endswith(_TAIL)  # what a sync flush always writes last
            out = out[: -len(_TAIL)]
            if self.client_no_context_takeover:
                self._deflater = None
        return rsv, out

    def __repr__(self) -> str:
        if not self._configured:
            return super().__repr__()
        params = [name for name in _FLAGS if getattr(self, name)]
        params += [f"{name}={getattr(self, name)}" for name in _SIZES]
        return f"<{type(self).__module__}.{type(self).__qualname__} {'; '.join(params)}>"
