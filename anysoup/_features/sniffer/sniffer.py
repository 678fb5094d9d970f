"""The ContentSniffer feature: sniffs a response's type before ``send`` returns.

The algorithm is in :mod:`.sniff_policy`; this stage peeks at the first
bytes of the decoded body, asks the policy, and emits ``content_sniffed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..._model.enums import MessageFlags
from ..._model.public import public
from ..._model.signals import active
from ..feature import SessionFeature
from .sniff_policy import SNIFF_BUFFER_SIZE, SniffPlan, plan_sniffing

if TYPE_CHECKING:
    from ..._model.body import InputStream
    from ..._model.headers import MessageHeaders
    from ..._model.message import Message
    from ..feature import CallNext

__all__ = ["ContentSniffer"]


def _plan_for(headers: MessageHeaders) -> SniffPlan:
    """The plan for a response: its last Content-Type, and nosniff as Fetch reads it."""
    values = headers.get_all("Content-Type")
    options = headers.get_list("X-Content-Type-Options")
    # Fetch, "determine nosniff": the first value of the list, without ASCII case.
    nosniff = options is not None and options.split(",", 1)[0].strip(" \t").lower() == "nosniff"
    return plan_sniffing(values[-1] if values else None, nosniff=nosniff)


def _has_body_to_sniff(msg: Message) -> bool:
    """Whether ``msg``'s response has a body the caller will see."""
    status = msg.status
    if msg.method == "HEAD" or status < 200 or status in (204, 304):
        return False  # no body (RFC 9110 §6.4.1)
    # A redirect the redirect stage follows: its body is read and thrown away.
    return not (
        300 <= status < 400
        and "Location" in msg.response_headers
        and not msg.flags & MessageFlags.NO_REDIRECT
    )


@public
class ContentSniffer(SessionFeature):
    """Sniffs the content type of response bodies (libsoup's ``SoupContentSniffer``).

    Not a default feature: add it with ``Session(features=[ContentSniffer()])``
    or ``session.add_feature_by_type(ContentSniffer)``. For each response
    with a body, it emits the message's ``content_sniffed`` signal with the
    type computed by the WHATWG MIME Sniffing Standard (for a browsing
    context) and its parameters, before :meth:`anysoup.Session.send` returns.
    It looks at the first 512 bytes after content decoding and leaves them
    for the reader.

    Nothing is read ahead when no handler is connected to ``content_sniffed``,
    nor when the headers alone decide (an XML type, ``nosniff`` with a
    supplied type). Responses without a body (``HEAD``, 1xx, 204, 304) and
    redirects that the session follows are not sniffed. A message opts out
    with ``msg.disable_feature(ContentSniffer)``.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_SNIFFER

    def get_buffer_size(self) -> int:
        """How many bytes of the body are sniffed: 512."""
        return SNIFF_BUFFER_SIZE

    def sniff(self, msg: Message, buffer: bytes) -> tuple[str, dict[str, str]]:
        """Sniff ``buffer``, the start of ``msg``'s response body, given its response headers.

        Returns:
            ``(content_type, params)``: never empty; ``application/octet-stream``
            when nothing better is known.
        """
        return _plan_for(msg.response_headers).apply(buffer)

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Send ``msg``, then sniff its body's first bytes and emit ``content_sniffed``."""
        stream = await call_next(msg)
        signal = active(msg, "content_sniffed")
        if signal is None or not _has_body_to_sniff(msg):
            return stream
        plan = _plan_for(msg.response_headers)
        try:
            data = await stream._peek(SNIFF_BUFFER_SIZE) if plan.needs_body else b""
            content_type, params = plan.apply(data)
            await signal.emit(content_type, params)
        except BaseException:
            # Cancelled while peeking, or a handler failed: the caller never
            # gets the stream, so give its connection back here.
            await stream.aclose()
            raise
        return stream
