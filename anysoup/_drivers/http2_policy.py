"""HTTP/2 header blocks and error codes, without I/O.

Theory of operation: an HTTP/2 request carries its request line as
pseudo-headers (``:method``, ``:scheme``, ``:authority``, ``:path``), names
in lower case, and none of HTTP/1.1's connection-specific fields (RFC 9113
§8.2.2): ``Connection`` and what it names, ``Keep-Alive``,
``Proxy-Connection``, ``Transfer-Encoding`` and ``Upgrade`` are dropped,
``TE`` is kept only as ``trailers``, and ``Host`` becomes ``:authority``
(§8.3.1). Credentials and short cookies are marked never-indexed, so
that HPACK doesn't keep them where a compression oracle could find them.
h2 is told not to check or normalise these blocks again. A response head
arrives as a list of byte pairs whose ``:status`` the driver takes out; the
reason phrase, which HTTP/2 doesn't carry, is the standard one for the
status (as libsoup does).
"""

from __future__ import annotations

import http

from hpack import NeverIndexedHeaderTuple

__all__ = [
    "CONNECTION_SPECIFIC",
    "ERROR_NAMES",
    "HTTP_1_1_REQUIRED",
    "REFUSED_STREAM",
    "error_name",
    "reason_phrase",
    "request_block",
    "split_status",
]

#: Fields that belong to one HTTP/1.1 connection and are never sent (RFC 9113 §8.2.2).
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"}
)

#: Credentials never entered in the HPACK table (RFC 7541 §7.1.3).
_NEVER_INDEXED = frozenset({b"authorization", b"proxy-authorization"})

#: RFC 9113 §7 error codes by number.
ERROR_NAMES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}
#: The stream was not processed: safe to send again (RFC 9113 §8.7).
REFUSED_STREAM = 0x7
#: The server wants this request over HTTP/1.1 (RFC 9113 §7).
HTTP_1_1_REQUIRED = 0xD


def error_name(code: int) -> str:
    """``INTERNAL_ERROR`` for 2; ``error 0x1f`` for a code RFC 9113 doesn't name."""
    return ERROR_NAMES.get(int(code), f"error {int(code):#x}")


def request_block(
    method: str, scheme: str, authority: str, path: str, headers: list[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """The header block of a request: pseudo-headers, then the fields allowed in HTTP/2.

    ``authority`` is the plan's; a ``Host`` field among ``headers`` (a
    program's own) takes its place, as it would on HTTP/1.1.
    """
    fields: list[tuple[bytes, bytes]] = []
    dropped: set[bytes] | None = None
    for name, value in headers:
        lower = name.lower().encode("ascii")
        if lower in CONNECTION_SPECIFIC:
            if lower == b"host":
                authority = value
            elif lower == b"connection":
                dropped = dropped or set()
                # A TE the program named there (RFC 9110 §10.1.4 asks for it)
                # is still kept below, if it is "trailers".
                dropped.update(
                    token.strip().lower().encode("ascii")
                    for token in value.split(",")
                    if token.strip() and token.strip().lower() != "te"
                )
            continue
        if lower == b"te":
            # Only "trailers" may go (RFC 9113 §8.2.2): kept from a list, if there.
            if "trailers" not in (t.split(";")[0].strip().lower() for t in value.split(",")):
                continue
            value = "trailers"
        # No leading or trailing whitespace in HTTP/2 (RFC 9113 §8.2.1); it is
        # not part of the value in HTTP/1.1 either (RFC 9110 §5.5).
        octets = value.strip(" \t").encode("latin-1")
        if lower in _NEVER_INDEXED or (lower == b"cookie" and len(octets) < 20):
            # Kept out of HPACK's table, where a compression oracle could
            # guess them (RFC 7541 §7.1.3; short cookies, as Firefox does).
            fields.append(NeverIndexedHeaderTuple(lower, octets))
        else:
            fields.append((lower, octets))
    if dropped:
        fields = [(n, v) for n, v in fields if n not in dropped]
    return [
        (b":method", method.encode("ascii")),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", authority.encode("latin-1")),
        (b":path", path.encode("ascii")),
        *fields,
    ]


def split_status(headers: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The ``:status`` of a response head and its other (regular) fields.

    h2 has already checked the block (one ``:status``, pseudo-headers first,
    lower-case names), so only the number is left to read.

    Raises:
        ValueError: ``:status`` is missing or not a three-digit number.
    """
    status = -1
    fields: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name[:1] == b":":
            if name == b":status" and len(value) == 3 and value.isdigit():
                status = int(value)
            continue
        fields.append((name, value))
    if status < 100:
        raise ValueError("the response has no valid :status")
    return status, fields


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (HTTP/2 sends none).

    ``Unknown Error`` for a status without one, as libsoup's
    ``soup_status_get_phrase``.
    """
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"
