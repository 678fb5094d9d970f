"""What a read response body means: its text, its JSON, its status as an error.

Theory of operation: the request helpers (``Session.request``, ``get``, …)
read the body into ``msg.response_body``; :attr:`Message.text`,
:meth:`Message.json` and :meth:`Message.raise_for_status` are thin
wrappers around the functions here. Nothing here does I/O.

Choosing the character encoding of :attr:`Message.text`, first match wins:

1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE): the WHATWG Encoding
   Standard's *decode* lets it override the label (§6, "BOM sniff"), since a
   file saved with a BOM is rarely served with the right label;
2. the ``charset`` parameter of ``Content-Type`` (RFC 9110 §8.3.2), when
   Python knows the encoding;
3. UTF-8, with U+FFFD for bytes that are not UTF-8 (RFC 8259 §8.1 for JSON,
   and what most text on the web is).

The :class:`~anysoup.ContentSniffer` names media types, not encodings: its
verdict carries the ``charset`` of ``Content-Type`` and no other, so it
has nothing to add to step 2 and is not consulted.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any

from .exceptions import HTTPStatusError

if TYPE_CHECKING:
    from .message import Message

__all__ = ["response_json", "response_text", "status_error", "text_encoding"]

#: Byte order marks and the encodings they announce (WHATWG Encoding §6).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _body(msg: Message) -> bytes:
    body = msg.response_body
    if body is None:
        raise RuntimeError(
            f"{msg.method} {_safe_uri(msg)}: the response body was not read into "
            "msg.response_body; send it with Session.request() (or get, post, …), "
            "or read it yourself with send_and_read()"
        )
    return body


def text_encoding(body: bytes, content_type: tuple[str, dict[str, str]] | None) -> tuple[str, int]:
    """The Python codec to decode ``body`` with, and how many bytes of BOM to skip.

    Args:
        body: The response body.
        content_type: ``MessageHeaders.get_content_type()`` of the response.
    """
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding, len(bom)
    if content_type is not None:
        charset = content_type[1].get("charset", "").strip()
        if charset:
            try:
                return codecs.lookup(charset).name, 0
            except LookupError:
                pass  # a label Python doesn't know: fall back, as browsers do
    return "utf-8", 0


def response_text(msg: Message) -> str:
    """``msg.response_body`` decoded (see the module's rule); never raises on bad bytes.

    Raises:
        RuntimeError: The body was not read into ``msg.response_body``.
    """
    body = _body(msg)
    encoding, skip = text_encoding(body, msg.response_headers.get_content_type())
    return body[skip:].decode(encoding, errors="replace")


def response_json(msg: Message, **kwargs: Any) -> Any:
    """``msg.response_body`` parsed as JSON (:func:`json.loads`, which takes UTF-8/16/32).

    Raises:
        RuntimeError: The body was not read into ``msg.response_body``.
        json.JSONDecodeError: The body is not JSON (a :class:`ValueError`).
    """
    import json  # on first use: ``import anysoup`` doesn't load the json package

    return json.loads(_body(msg), **kwargs)


def status_error(msg: Message) -> HTTPStatusError | None:
    """The error for ``msg``'s 4xx or 5xx status, or None for any other status.

    Raises:
        RuntimeError: No response yet (``msg.status`` is 0).
    """
    status = msg.status
    if status == 0:
        raise RuntimeError(f"{msg.method} {_safe_uri(msg)}: no response yet (status 0)")
    if not 400 <= status < 600:
        return None
    kind = "client error" if status < 500 else "server error"
    reason = f" {msg.reason_phrase}" if msg.reason_phrase else ""
    return HTTPStatusError(f"{msg.method} {_safe_uri(msg)}: {kind} {status}{reason}", message=msg)


def _safe_uri(msg: Message) -> str:
    """The URI for an error text: without user and password (never credentials)."""
    return str(msg.uri.with_user(None))
