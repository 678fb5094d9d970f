"""The redirect stage: the outermost stage of the chain, part of the session."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._body import InputStream
    from ._feature import CallNext
    from ._message import Message

__all__ = ["follow_redirects"]


async def follow_redirects(call_next: CallNext, msg: Message) -> InputStream:
    """Send ``msg`` through ``call_next``, following redirects (DESIGN §3)."""
    return await call_next(msg)
