"""The arguments of the request helpers, made into a :class:`Message` (no I/O).

Theory of operation: ``Session.request`` and ``get``, ``post``, … (async in
``_session/requests.py``, blocking in ``_blocking/requests.py``) turn their
arguments into a message here, synchronously, every argument checked before
anything is sent; then they send it through the whole chain.

* ``params`` are added after the URL's own query (yarl encodes them);
* ``json`` is sent compact (no spaces), UTF-8, as ``application/json``;
* ``data`` is a form, urlencoded as ``application/x-www-form-urlencoded``
  (in the body for every method: ``params`` is for the query), or a
  :class:`Multipart`;
* ``content`` is a raw body, str sent as UTF-8;
* a ``Content-Type`` among the program's ``headers`` is kept.

URLs: with a base URL, a URL without a scheme and host is joined to the
base by httpx's rule, not RFC 3986's: the base's path always ends in ``/``
and the URL is appended to it, a leading ``/`` dropped, so a base of
``https://api.test/v1`` and ``"users"`` or ``"/users"`` give
``https://api.test/v1/users``. An absolute URL is used as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlencode

from yarl import URL

from .message import Message
from .uri import lacks_scheme, parse_uri

if TYPE_CHECKING:
    from .body import RequestBodySource
    from .multipart import Multipart

__all__ = [
    "Content",
    "Data",
    "Headers",
    "Params",
    "base_url_from",
    "build_request",
    "join_url",
]

#: A query parameter's value; a mapping may give a sequence of them for a repeated name.
ParamValue: TypeAlias = "str | int | float"
#: ``params=``: a mapping, or a sequence of ``(name, value)`` pairs (repeats kept in order).
Params: TypeAlias = (
    "Mapping[str, ParamValue | Sequence[ParamValue]] | Sequence[tuple[str, ParamValue]]"
)
#: ``headers=``: as :class:`Message`'s.
Headers: TypeAlias = "Mapping[str, str] | Iterable[tuple[str, str]]"
#: ``data=``: a form (a mapping or pairs, urlencoded) or a :class:`Multipart`.
Data: TypeAlias = "Mapping[str, Any] | Sequence[tuple[str, Any]] | Multipart"
#: ``content=``: a raw body; str is sent as UTF-8.
Content: TypeAlias = "str | RequestBodySource"

_FORM_TYPE = "application/x-www-form-urlencoded"
_JSON_TYPE = "application/json"


def base_url_from(value: str | URL | None) -> URL | None:
    """``Session(base_url=...)`` checked, its path ending in ``/``.

    Raises:
        ValueError: It is not an absolute http(s) URL, or it has a query or
            a fragment (a base is a scheme, a host and a path).
    """
    if value is None:
        return None
    base = parse_uri(value, what="base_url")
    if base.raw_query_string or base.raw_fragment:
        raise ValueError(f"base_url: {str(base)!r} has a query or fragment; give a path only")
    if not base.raw_path.endswith("/"):
        base = base.with_path(base.raw_path + "/", encoded=True)
    return base


def join_url(base: URL | None, url: str | URL) -> URL:
    """``url`` made absolute against ``base`` (see the module's rule) and checked.

    Raises:
        ValueError: ``url`` is relative and there is no base, or the result
            is not an http(s) or ws(s) URL (the text says why).
        TypeError: ``url`` is not a str or a :class:`yarl.URL`.
    """
    if isinstance(url, str):
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return parse_uri(url, what="url")  # raises, and says why
        text = url
    elif isinstance(url, URL):
        parsed, text = url, str(url)
    else:
        raise TypeError(f"url: expected str or yarl.URL, got {type(url).__name__}")
    if parsed.scheme or parsed.raw_host:
        return parse_uri(url, what="url")
    if base is None:
        if isinstance(url, str) and lacks_scheme(url, parsed):
            return parse_uri(url, what="url")  # raises: "did you mean 'http://…'?"
        raise ValueError(
            f"url: {text!r} is relative; give an absolute http(s) URL, "
            "or a base_url to the Session"
        )
    prefix = str(base)  # yarl writes the root path "/" as nothing: add it back
    return parse_uri(prefix.rstrip("/") + "/" + text.lstrip("/"), what="url")


def build_request(
    method: str,
    url: str | URL,
    *,
    base_url: URL | None = None,
    params: Params | None = None,
    headers: Headers | None = None,
    json: Any = None,
    data: Data | None = None,
    content: Content | None = None,
) -> Message:
    """The :class:`Message` a request helper sends (see the module's rules).

    Raises:
        ValueError: A bad method or URL, more than one body, or a JSON value
            that JSON can't hold (NaN, infinities).
        TypeError: An argument of the wrong type.
    """
    bodies = {"json": json, "data": data, "content": content}
    given = [name for name, value in bodies.items() if value is not None]
    if len(given) > 1:
        raise ValueError(f"request: give one body, not {' and '.join(given)}")
    uri = join_url(base_url, url)
    if params:
        uri = _with_params(uri, params)
    msg = Message(method, uri, headers=headers)
    typed = "Content-Type" in msg.request_headers  # the program's own type wins
    if json is not None:
        import json as jsonlib  # on first use: ``import anysoup`` doesn't load the json package

        try:
            text = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"json: {exc}") from None
        msg.set_request_body(None if typed else _JSON_TYPE, text.encode("utf-8"))
    elif data is not None:
        from .multipart import Multipart  # loaded by the first form, not by every program

        if isinstance(data, Multipart):
            msg.set_request_body_from_bytes(None, data.to_message(msg.request_headers))
        else:
            msg.set_request_body(None if typed else _FORM_TYPE, _form(data).encode("ascii"))
    elif content is not None:
        raw = content.encode("utf-8") if isinstance(content, str) else content
        msg.set_request_body(None, raw)
    return msg


def _with_params(uri: URL, params: Params) -> URL:
    """``uri`` with ``params`` added after its own query (yarl encodes them)."""
    if isinstance(params, (str, bytes)):
        raise TypeError("params: a str is not a mapping or pairs; put a query in the URL")
    try:
        return uri.extend_query(params)
    except TypeError as exc:
        raise TypeError(f"params: {exc}") from None


def _form(data: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """``data`` as ``application/x-www-form-urlencoded`` (repeated names from sequences)."""
    if isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            f"data: {type(data).__name__} is not a form; give a mapping, pairs or a "
            "Multipart, or send a raw body with content="
        )
    try:
        return urlencode(data, doseq=True)
    except TypeError as exc:
        raise TypeError(f"data: {exc}") from None
