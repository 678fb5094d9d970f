"""ContentSniffer: the WHATWG MIME Sniffing algorithm over a response's first bytes."""

from __future__ import annotations

from typing import ClassVar

from ._feature import SessionFeature

__all__ = ["ContentSniffer"]


class ContentSniffer(SessionFeature):
    """Sniffs the content type of response bodies (``content_sniffed`` signal)."""

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_SNIFFER
