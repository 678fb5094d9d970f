"""The one budget of re-sends a message has: redirects, auth retries and retries share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .enums import TlsCertificateFlags
from .exceptions import TooManyRedirects, TooManyRestarts
from .headers import MessageHeaders

if TYPE_CHECKING:
    from .message import Message

__all__ = ["MAX_RESENDS", "check_resend", "forget_response"]

#: Re-sends per message, all reasons together (libsoup's limit, DESIGN §3).
MAX_RESENDS = 20


def check_resend(msg: Message) -> None:
    """Count one re-send of ``msg``; raise when it would be the 21st."""
    msg._restarts += 1
    if msg._restarts > MAX_RESENDS:
        text = f"{msg.method} {msg.uri}: gave up after {MAX_RESENDS} re-sends"
        if 300 <= msg.status < 400:
            raise TooManyRedirects(text, message=msg)
        raise TooManyRestarts(text, message=msg)


def forget_response(msg: Message) -> None:
    """Forget the answer before ``msg`` is sent again, as libsoup does on ``restarted``.

    Should the next hop fail before answering, the message shows no stale
    status, headers, address or TLS details of another server.
    """
    msg.status = 0
    msg.reason_phrase = ""
    msg.response_headers = MessageHeaders()
    msg.remote_address = None
    msg.tls_peer_certificate = None
    msg.tls_peer_certificate_errors = TlsCertificateFlags.NO_FLAGS
    msg.tls_protocol_version = None
    msg.tls_ciphersuite_name = None
