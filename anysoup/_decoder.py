"""ContentDecoder: undo the response's content codings as the body is read."""

from __future__ import annotations

from typing import ClassVar

from ._feature import SessionFeature

__all__ = ["ContentDecoder"]


class ContentDecoder(SessionFeature):
    """Decodes gzip, deflate, br and zstd response bodies (a default feature)."""

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_DECODER
