"""Multipart bodies: :class:`Multipart`, anysoup's SoupMultipart (client side).

Theory of operation
-------------------
A :class:`Multipart` is a list of parts, each a :class:`MessageHeaders` and
the part's bytes, and a boundary. :meth:`Multipart.to_message` writes them
out as RFC 2046 §5.1.1 says::

    --boundary CRLF headers CRLF body CRLF --boundary CRLF ... --boundary-- CRLF

and puts the boundary in the message's ``Content-Type``. The body is built
whole, as bytes, so a message can send it again after a redirect or a 401.

The boundary is ``anysoup-`` and 32 random hex digits: 128 bits, so a part
that holds it by chance will not happen, but one that holds it on purpose
(a file that is itself a multipart body we sent) can. Before writing, the
parts are searched for the boundary and a fresh one is drawn if it is there
(RFC 2046 §5.1.1: the boundary must not appear inside an encapsulated part).

Field names and file names go into ``Content-Disposition`` quoted-strings as
browsers write them (the WHATWG HTML "multipart/form-data encoding
algorithm", which RFC 7578 §4.2 defers to): UTF-8 as it is, with ``"``, CR
and LF percent-encoded as ``%22``, ``%0D`` and ``%0A``. RFC 7578 §4.2 forbids
the RFC 5987 ``filename*=`` form, so non-ASCII names are sent as raw UTF-8,
which is what servers expect. A backslash is doubled, as in an RFC 9110 §5.6.4
quoted-pair (Go's ``mime/multipart`` does the same), so a parser that
unescapes quoted-strings reads the name back unchanged.

This is a policy module: no I/O, no anyio.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping

from .headers import MessageHeaders, _check, _quote_param
from .public import public

__all__ = ["Multipart"]

# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# RFC 9110 §8.3.1: type "/" subtype, both tokens; the type must be multipart.
_MULTIPART_TYPE_RE = re.compile(r"multipart/[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.IGNORECASE)
# The WHATWG form-data escapes, plus a doubled backslash (see the module docstring).
_NAME_ESCAPES = str.maketrans({"\\": "\\\\", '"': "%22", "\r": "%0D", "\n": "%0A"})


def _new_boundary() -> str:
    return "anysoup-" + secrets.token_hex(16)


def _quote_name(param: str, value: str) -> str:
    """Return ``param="value"`` with ``value`` escaped for a form-data header."""
    if not isinstance(value, str):
        raise TypeError(f"multipart {param} must be str, not {type(value).__name__}")
    return f'{param}="{value.translate(_NAME_ESCAPES)}"'


def _check_body(body: bytes | bytearray | memoryview) -> bytes:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a multipart part's body must be bytes, not {type(body).__name__}")
    return bytes(body)


@public
class Multipart:
    """A ``multipart/*`` request body, built part by part (libsoup's SoupMultipart).

    Only the sending side is here: build the parts, then pass the object to
    :meth:`Message.new_from_multipart <anysoup.Message.new_from_multipart>`
    (or call :meth:`to_message`).

    Args:
        mime_type: The body's type; it must be ``multipart/<subtype>``.
        boundary: The boundary to use, for reproducible output (tests); by
            default a random one. Either way it is replaced by a random one
            if a part contains it.

    Raises:
        ValueError: ``mime_type`` is not a ``multipart/`` type, or
            ``boundary`` is not an RFC 2046 §5.1.1 boundary.

    Example:
        >>> mp = Multipart()
        >>> mp.append_form_string("title", "Holiday")
        >>> mp.append_form_file("photo", "beach.jpg", "image/jpeg", b"...")
        >>> len(mp)
        2
    """

    __slots__ = ("_boundary", "_mime_type", "_parts")

    def __init__(self, mime_type: str = "multipart/form-data", *, boundary: str | None = None):
        if not isinstance(mime_type, str) or _MULTIPART_TYPE_RE.fullmatch(mime_type) is None:
            raise ValueError(
                f"mime_type {mime_type!r}: a Multipart's type must be multipart/<subtype>"
            )
        if boundary is not None and (
            not isinstance(boundary, str) or _BOUNDARY_RE.fullmatch(boundary) is None
        ):
            raise ValueError(
                f"boundary {boundary!r}: 1 to 70 letters, digits or '()+_,-./:=? "
                "(RFC 2046 §5.1.1), not ending in a space"
            )
        self._mime_type = mime_type
        self._boundary = boundary if boundary is not None else _new_boundary()
        self._parts: list[tuple[MessageHeaders, bytes]] = []

    def __repr__(self) -> str:
        return f"<Multipart {self._mime_type} with {len(self._parts)} parts>"

    @classmethod
    def new_from_message(cls, headers: MessageHeaders, body: bytes) -> Multipart | None:
        """Parse a whole ``multipart/*`` body (libsoup's ``soup_multipart_new_from_message``).

        For a response read into memory: ``Multipart.new_from_message(
        msg.response_headers, await session.send_and_read(msg))``. To read
        the parts as they arrive (a large body, ``multipart/x-mixed-replace``),
        use :class:`~anysoup.MultipartInputStream` instead.

        Args:
            headers: The message's headers: ``Content-Type`` gives the type
                and the boundary.
            body: The whole body.

        Returns:
            The parts, with the body's type and boundary; None (as libsoup's
            NULL) when ``headers`` do not describe a multipart body with a
            boundary, or the body is not one (no delimiter, a truncated
            part). The preamble and epilogue are dropped.
        """
        from .exceptions import ParsingError
        from .multipart_parse import (
            END,
            NEED_DATA,
            MultipartScanner,
            PartData,
            PartStart,
            boundary_of,
        )

        found = boundary_of(headers)
        if found is None:
            return None
        mime_type, boundary = found
        scanner = MultipartScanner(boundary, max_header_size=len(body) + 1)
        scanner.feed(body)
        scanner.feed_eof()
        parts: list[tuple[MessageHeaders, bytes]] = []
        pieces: list[bytes] = []
        try:
            while (event := scanner.next_event()) is not END:
                if event is NEED_DATA:  # not after the end was fed; never loop
                    return None
                if isinstance(event, PartStart):
                    pieces = []
                    parts.append((event.headers, b""))
                elif isinstance(event, PartData):
                    pieces.append(event.data)
                else:  # PART_END
                    parts[-1] = (parts[-1][0], b"".join(pieces))
        except ParsingError:
            return None
        if not parts:
            return None
        self = cls.__new__(cls)
        self._mime_type, self._boundary, self._parts = mime_type, boundary, parts
        return self

    @property
    def mime_type(self) -> str:
        """The body's type, such as ``multipart/form-data``."""
        return self._mime_type

    @property
    def boundary(self) -> str:
        """The boundary :meth:`to_message` will use (unless a part contains it)."""
        return self._boundary

    # -- building ---------------------------------------------------------------

    def append_part(
        self,
        headers: MessageHeaders | Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes | bytearray | memoryview,
    ) -> None:
        """Add a part with the given headers and body.

        The headers are copied and checked as :class:`~anysoup.MessageHeaders`
        checks them; the caller's object is not kept.

        Raises:
            ValueError: a header name or value is invalid (CR, LF, NUL, ...).
            TypeError: a header is not ``str`` or ``body`` is not bytes.
        """
        if isinstance(headers, MessageHeaders):
            pairs: Iterable[tuple[str, str]] = headers
        else:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
        self._parts.append((_part_headers(pairs), _check_body(body)))

    def append_form_string(self, name: str, value: str) -> None:
        """Add a form field: ``Content-Disposition: form-data; name="…"``.

        The value is sent as UTF-8, with no ``Content-Type`` (RFC 7578 §4.4:
        ``text/plain`` is then assumed).
        """
        if not isinstance(value, str):
            raise TypeError(f"form field {name!r}: value must be str, not {type(value).__name__}")
        disposition = "form-data; " + _quote_name("name", name)
        self._parts.append((_part_headers([("Content-Disposition", disposition)]), value.encode()))

    def append_form_file(
        self,
        name: str,
        filename: str | None,
        content_type: str | None,
        body: bytes | bytearray | memoryview,
    ) -> None:
        """Add a file field: ``Content-Disposition: form-data; name="…"; filename="…"``.

        Args:
            name: The form field's name.
            filename: The file's name (may be non-ASCII: it is sent as UTF-8),
                or None for no ``filename`` parameter.
            content_type: The file's ``Content-Type``, or None for none (as
                libsoup; the receiver then assumes ``text/plain``).
            body: The file's contents.
        """
        disposition = "form-data; " + _quote_name("name", name)
        if filename is not None:
            disposition += "; " + _quote_name("filename", filename)
        lines = [("Content-Disposition", disposition)]
        if content_type is not None:
            lines.append(("Content-Type", content_type))
        self._parts.append((_part_headers(lines), _check_body(body)))

    # -- reading -----------------------------------------------------------------

    def get_length(self) -> int:
        """The number of parts (also ``len(multipart)``)."""
        return len(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def get_part(self, index: int) -> tuple[MessageHeaders, bytes]:
        """Part ``index``'s headers (a copy) and body.

        Raises:
            IndexError: there is no such part.
        """
        headers, body = self._parts[index]
        return headers.copy(), body

    # -- encoding ----------------------------------------------------------------

    def to_message(self, dest_headers: MessageHeaders) -> bytes:
        """Encode the parts; set ``Content-Type`` with the boundary on ``dest_headers``.

        Returns:
            The body (RFC 2046 §5.1.1, RFC 7578). With no parts it is just the
            closing delimiter, as browsers send for an empty form.
        """
        encoded = [(_encode_headers(h), body) for h, body in self._parts]
        while any(
            self._boundary.encode() in h or self._boundary.encode() in b for h, b in encoded
        ):
            self._boundary = _new_boundary()
        delimiter = b"--" + self._boundary.encode()
        out = bytearray()
        for head, body in encoded:
            out += delimiter + b"\r\n" + head + b"\r\n" + body + b"\r\n"
        out += delimiter + b"--\r\n"
        # A boundary may hold a space or ":", which a quoted-string must carry.
        boundary = _quote_param(self._boundary)
        dest_headers.replace("Content-Type", f"{self._mime_type}; boundary={boundary}")
        return bytes(out)


def _part_headers(pairs: Iterable[tuple[str, str]]) -> MessageHeaders:
    """A part's headers, checked: UTF-8 text is allowed (RFC 7578 §5.1.1)."""
    return MessageHeaders._from_trusted(
        [_check(name, value, octets=False) for name, value in pairs]
    )


def _encode_headers(headers: MessageHeaders) -> bytes:
    # WHATWG form-data encoding: the part headers are UTF-8 (RFC 7578 §5.1.1).
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
