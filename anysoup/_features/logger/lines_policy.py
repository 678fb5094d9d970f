"""The Logger's lines: libsoup's format, redaction and body text (policy: no I/O).

Everything here turns a message's parts into ``(level, direction, text)``
lines; ``_features/logger/logger.py`` decides when to print them and where.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._model.enums import HTTPVersion, LoggerLogLevel

if TYPE_CHECKING:
    from ..._model.headers import MessageHeaders

#: ``printer(logger, level, direction, data, *user_data)``.
Printer = Callable[..., object]
#: ``filter(logger, msg, *user_data) -> LoggerLogLevel``.
Filter = Callable[..., LoggerLogLevel | int]
#: One output line: its level, direction (``>``, ``<`` or a space) and text.
Line = tuple[LoggerLogLevel, str, str]

NONE, MINIMAL, HEADERS, BODY = (
    LoggerLogLevel.NONE,
    LoggerLogLevel.MINIMAL,
    LoggerLogLevel.HEADERS,
    LoggerLogLevel.BODY,
)
SEPARATOR: Line = (MINIMAL, " ", "")
VERSIONS = {HTTPVersion.HTTP_1_0: "1.0", HTTPVersion.HTTP_1_1: "1.1", HTTPVersion.HTTP_2_0: "2"}
#: Characters that make a body "binary": C0 controls other than tab, LF, FF, CR; DEL.
_BINARY_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
REDACTED = "[redacted]"
#: Fields an HTTP/2 request never carries (RFC 9113 §8.2.2); ``Host`` becomes
#: ``:authority`` (§8.3.1). The driver's ``request_block`` drops the same ones.
_NOT_ON_HTTP2 = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)


# -- lines ------------------------------------------------------------


def redact_value(name: str, value: str) -> str:
    """The value of header ``name`` with its secrets replaced by ``[redacted]``.

    Credentials keep their scheme (and a Basic user name, as libsoup shows it);
    cookies keep their names and a ``Set-Cookie``'s attributes.
    """
    lower = name.lower()
    if lower in ("authorization", "proxy-authorization"):
        scheme, space, credentials = value.partition(" ")
        if not space:
            return REDACTED
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return f"{scheme} {REDACTED}"
            user, colon, _ = decoded.partition(":")
            if colon and not _BINARY_RE.search(user):
                return f"{scheme} {user}:{REDACTED}"
        return f"{scheme} {REDACTED}"
    if lower == "cookie":
        names = (pair.partition("=")[0].strip() for pair in value.split(";"))
        return "; ".join(f"{cookie}={REDACTED}" for cookie in names if cookie)
    if lower == "set-cookie":
        pair, semicolon, attributes = value.partition(";")
        return f"{pair.partition('=')[0].strip()}={REDACTED}{semicolon}{attributes}"
    return value


_REDACTED_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def header_lines(direction: str, pairs: list[tuple[str, str]], redact: bool) -> list[Line]:
    """``Name: value`` lines at HEADERS level, secrets redacted if asked."""
    if not redact:
        return [(HEADERS, direction, f"{name}: {value}") for name, value in pairs]
    return [
        (
            HEADERS,
            direction,
            f"{name}: {redact_value(name, value) if name.lower() in _REDACTED_NAMES else value}",
        )
        for name, value in pairs
    ]


def request_version(version: HTTPVersion) -> str:
    """The version in a logged request line: ``2`` on HTTP/2, else ``1.1``.

    An HTTP/1 connection always writes ``HTTP/1.1``, whatever version an
    earlier response of the same message had (libsoup's
    ``soup_http_version_to_string`` gives ``2`` for HTTP/2).
    """
    return VERSIONS[version] if version is HTTPVersion.HTTP_2_0 else "1.1"


def http2_fields(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header fields of ``pairs`` that an HTTP/2 request carries, in order.

    Connection-specific fields go, with those that ``Connection`` names, and
    ``TE`` unless it is ``trailers`` (RFC 9113 §8.2.2); names keep their case.
    """
    named: set[str] = set()
    for name, value in pairs:
        if name.lower() == "connection":
            named.update(token.strip().lower() for token in value.split(","))
    return [
        (name, value)
        for name, value in pairs
        if (lower := name.lower()) not in _NOT_ON_HTTP2
        and lower not in named
        and (lower != "te" or value.strip().lower() == "trailers")
    ]


def address_text(address: object) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = getattr(address, "path", None)
    return f"unix:{path}" if path is not None else "?"


class BodyText:
    """A body as log lines: bounded, decoded as it comes, binary recognised early.

    Keeps at most ``limit`` bytes (all with -1); once a body proves binary
    (undecodable, or control characters) only its size is kept, so memory
    stays flat however long it is.
    """

    __slots__ = ("_binary", "_decoder", "_kept", "_limit", "_parts", "_truncated", "size")

    def __init__(self, limit: int, headers: MessageHeaders) -> None:
        self._limit = limit
        charset = "utf-8"
        content_type = headers.get_content_type() if "Content-Type" in headers else None
        if content_type is not None and "charset" in content_type[1]:
            with contextlib.suppress(LookupError):  # unknown: UTF-8 or binary
                charset = codecs.lookup(content_type[1]["charset"]).name
        self._decoder = codecs.getincrementaldecoder(charset)("strict")
        self._parts: list[str] = []
        self._kept = 0
        self._binary = False
        self._truncated = False
        #: Bytes seen so far.
        self.size = 0

    def feed(self, data: bytes) -> None:
        """Take the next piece of the body."""
        self.size += len(data)
        if self._binary or self._truncated:
            return
        if self._limit >= 0 and self._kept + len(data) > self._limit:
            data = data[: self._limit - self._kept]
            self._truncated = True
        self._kept += len(data)
        self._add(data, final=False)

    def _add(self, data: bytes, *, final: bool) -> None:
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            text = "\x00"
        if _BINARY_RE.search(text):
            self._binary = True
            self._parts = []
        elif text:
            self._parts.append(text)

    def lines(self, direction: str, *, complete: bool) -> list[Line]:
        """The body's lines after a blank one, or nothing for an empty body.

        ``complete``: the body ended here (a partial character then counts as
        undecodable); otherwise it was cut short and the rest is not shown.
        """
        if not self.size:
            return []
        if complete and not self._truncated and not self._binary:
            self._add(b"", final=True)
        if self._binary:
            return [
                (BODY, direction, ""),
                (BODY, direction, f"[{self.size} bytes of binary data]"),
            ]
        text = "".join(self._parts)
        rows = [row.removesuffix("\r") for row in text.split("\n")]
        if rows[-1] == "":
            rows.pop()
        if self._truncated:
            rows.append("[...]")
        return [(BODY, direction, ""), *((BODY, direction, row) for row in rows)]


def failure_note(exc: BaseException, cancelled: type[BaseException]) -> str:
    """``[cancelled]`` or ``[failed: Type: text]`` for an exception."""
    if isinstance(exc, cancelled):
        return "cancelled"
    text = str(exc)
    return f"failed: {type(exc).__name__}: {text}" if text else f"failed: {type(exc).__name__}"
