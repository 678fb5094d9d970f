"""The one budget of re-sends a message has: redirects, auth retries and retries share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exceptions import TooManyRedirects, TooManyRestarts

if TYPE_CHECKING:
    from .message import Message

__all__ = ["MAX_RESENDS", "check_resend"]

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
