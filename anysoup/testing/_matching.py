"""What a route matches: the request as it reached the network, and the criteria.

Theory of operation: the router takes a :class:`Request` snapshot of each
message at the network edge (after redirects, auth and cookies shaped it)
and offers it to its routes in the order they were added. A route holds a
:class:`Matcher`, a list of criteria that must all hold; the first route
whose matcher finds no mismatch answers. When none does, each matcher's
first mismatch, in words, goes into the error, so a test that forgot a
header or misspelled a path says which.

The rules, settled for every criterion:

* strings compare exactly (a method case-insensitively; a URL after
  normalisation: scheme and host lower case, default port, percent-encoding);
* a compiled :class:`re.Pattern` is tried with :meth:`re.Pattern.match`, at
  the start of the value (add ``$`` to pin its end), as pytest-httpx does;
* query parameters, whether in ``url`` or ``params``, must be present in the
  request (which may have more); a URL without a query accepts any query;
* ``headers`` names compare case-insensitively; the value is the request's
  lines for that name joined with ``", "``;
* ``json`` compares the decoded request body with ``==``; ``content``
  compares the raw body bytes.

Nothing here does I/O: these are plain functions of a snapshot.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .._model.headers import MessageHeaders

__all__ = ["UNSET", "Matcher", "Request", "URLPattern"]

#: A URL criterion: the exact URL or a pattern matched from its start.
URLPattern = str | URL | re.Pattern[str]
#: A criterion on a single value (a host, a path, a header's value).
ValuePattern = str | re.Pattern[str]
#: Query parameters: a mapping (a value may be a list of values) or pairs.
Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


class _Unset:
    """The marker for "no ``json`` criterion" (``None`` is JSON's ``null``)."""

    def __repr__(self) -> str:
        return "UNSET"


#: The value of ``json=`` when no JSON body is required.
UNSET: Any = _Unset()


@dataclass(frozen=True)
class Request:
    """A request as the router received it: what would have gone on the wire.

    The headers include ``Host`` and the body's framing (``Content-Length``
    or ``Transfer-Encoding``), as the core would send them; a streamed body
    was read into :attr:`content`.
    """

    #: The request method, e.g. ``"GET"``.
    method: str
    #: The request URI (after redirects: this hop's).
    url: URL
    #: The request headers (a copy).
    headers: MessageHeaders
    #: The request body (``b""`` without one).
    content: bytes

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON.

        Raises:
            ValueError: The body is not JSON.
        """
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<anysoup.testing.Request {self.method} {str(self.url)!r}>"


class Matcher:
    """The criteria of one route; each left as None (or UNSET) accepts anything.

    Raises:
        TypeError: A criterion has the wrong type.
        ValueError: ``url`` or ``url_prefix`` is not an absolute URL.
    """

    __slots__ = (
        "content",
        "given_params",
        "headers",
        "host",
        "json",
        "method",
        "params",
        "path",
        "url",
    )

    def __init__(
        self,
        *,
        method: str | None = None,
        url: URLPattern | None = None,
        url_prefix: str | URL | None = None,
        host: ValuePattern | None = None,
        path: ValuePattern | None = None,
        params: Params | None = None,
        headers: Mapping[str, ValuePattern] | None = None,
        json: Any = UNSET,
        content: bytes | None = None,
        base_url: str | None = None,
    ) -> None:
        if method is not None and not isinstance(method, str):
            raise TypeError(f"method: {method!r} is not a str")
        self.method = method.upper() if method is not None else None
        self.url: URL | re.Pattern[str] | str | None = None
        if isinstance(url, re.Pattern):
            self.url = url
        elif url is not None:
            self.url = _absolute("url", url, base_url)
        if url_prefix is not None:
            if self.url is not None:
                raise ValueError("give url or url_prefix, not both")
            self.url = str(_absolute("url_prefix", url_prefix, base_url))
        self.host = _value_pattern("host", host)
        if isinstance(self.host, str):
            self.host = self.host.lower()
        self.path = _value_pattern("path", path)
        self.given_params = _pairs(params) if params is not None else []
        self.params = list(self.given_params)
        if isinstance(self.url, URL):  # the URL's own query is a criterion like params
            self.params += list(self.url.query.items())
        self.headers = [(name, _value_pattern(name, v)) for name, v in (headers or {}).items()]
        self.json = json
        if content is not None and not isinstance(content, (bytes, bytearray)):
            raise TypeError(f"content: {type(content).__name__} is not bytes")
        self.content = bytes(content) if content is not None else None

    def mismatch(self, request: Request) -> str | None:
        """The first criterion ``request`` fails, in words; None if it matches."""
        if self.method is not None and request.method.upper() != self.method:
            return f"method is {request.method}"
        url = request.url
        wanted = self.url
        if isinstance(wanted, URL):
            for part in ("scheme", "host", "port", "path"):
                got, want = getattr(url, part), getattr(wanted, part)
                if part in ("scheme", "host") and got is not None:
                    got = got.lower()
                if got != want:
                    return f"{part} is {got!r}, not {want!r}"
        elif isinstance(wanted, str):
            if not str(url).startswith(wanted):
                return f"URL does not start with {wanted!r}"
        elif wanted is not None and wanted.match(str(url)) is None:
            return f"URL does not match {wanted.pattern!r}"
        if self.host is not None and not _fits(self.host, (url.host or "").lower()):
            return f"host is {url.host!r}"
        if self.path is not None and not _fits(self.path, url.path):
            return f"path is {url.path!r}"
        missing = _missing(self.params, list(url.query.items()))
        if missing:
            return "query lacks " + ", ".join(f"{k}={v}" for k, v in missing)
        for name, value in self.headers:
            got_value = request.headers.get_list(name)
            if got_value is None:
                return f"header {name!r} is missing"
            if not _fits(value, got_value):
                return f"header {name!r} differs"  # never shown: it may be a credential
        if self.json is not UNSET:
            try:
                body = request.json()
            except ValueError:
                return "the body is not JSON"
            if body != self.json:
                return "the JSON body differs"
        if self.content is not None and request.content != self.content:
            return f"the body differs ({len(request.content)} bytes)"
        return None

    def describe(self) -> str:
        """The criteria in one line, for error messages and ``repr()``."""
        words = [self.method or "*"]
        if isinstance(self.url, URL):
            words.append(str(self.url))
        elif isinstance(self.url, str):
            words.append(f"{self.url}…")
        elif self.url is not None:
            words.append(f"re:{self.url.pattern}")
        for label, value in (("host", self.host), ("path", self.path)):
            if value is not None:
                shown = value if isinstance(value, str) else f"re:{value.pattern}"
                words.append(f"{label}={shown}")
        if self.given_params:
            words.append("params=" + "&".join(f"{k}={v}" for k, v in self.given_params))
        if self.headers:
            words.append("headers=" + ",".join(name for name, _ in self.headers))
        if self.json is not UNSET:
            words.append("json=…")
        if self.content is not None:
            words.append(f"content={len(self.content)} bytes")
        return " ".join(words)


def _absolute(what: str, url: str | URL, base_url: str | None) -> URL:
    """``url`` as an absolute URL, joined to ``base_url`` when it is relative."""
    if not isinstance(url, (str, URL)):
        raise TypeError(f"{what}: {url!r} is not a str, URL or re.Pattern")
    parsed = URL(url) if isinstance(url, str) else url
    if not parsed.is_absolute() and base_url is not None:
        # A prefix, as respx's base_url: "https://api/v1" and "/users" give "/v1/users".
        parsed = URL(base_url.rstrip("/") + "/" + str(url).lstrip("/"))
    if not parsed.is_absolute() or not parsed.scheme:
        raise ValueError(f"{what}: {str(url)!r} is not an absolute URL (and no base_url)")
    return parsed


def _value_pattern(what: str, value: object) -> Any:
    if value is None or isinstance(value, (str, re.Pattern)):
        return value
    raise TypeError(f"{what}: {value!r} is not a str or re.Pattern")


def _fits(pattern: ValuePattern, value: str) -> bool:
    if isinstance(pattern, str):
        return pattern == value
    return pattern.match(value) is not None


def _pairs(params: Params) -> list[tuple[str, str]]:
    """Query criteria as pairs; a list value stands for the name repeated."""
    if isinstance(params, str):
        raise TypeError("params: give a mapping or pairs, not a str (or put it in url)")
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        values = [value] if isinstance(value, str) else list(value)
        pairs.extend((str(name), str(v)) for v in values)
    return pairs


def _missing(wanted: list[tuple[str, str]], got: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of ``wanted`` not in ``got`` (each pair in ``got`` used once)."""
    left = list(got)
    missing = []
    for pair in wanted:
        if pair in left:
            left.remove(pair)
        else:
            missing.append(pair)
    return missing
