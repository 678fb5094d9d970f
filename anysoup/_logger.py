"""Logger: libsoup's traffic log, to a printer or the stdlib logger ``anysoup``."""

from __future__ import annotations

from typing import ClassVar

from ._enums import LoggerLogLevel
from ._feature import SessionFeature

__all__ = ["Logger"]


class Logger(SessionFeature):
    """Logs requests and responses at a :class:`LoggerLogLevel`."""

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_LOGGER

    def __init__(self, level: LoggerLogLevel = LoggerLogLevel.HEADERS, max_body_size: int = -1):
        self.level = level
        self.max_body_size = max_body_size
