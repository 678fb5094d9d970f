"""HSTS policy: host names, the ``Strict-Transport-Security`` header, HSTSPolicy.

Theory of operation
-------------------
This module is policy: synchronous, no I/O. It answers three questions for
:class:`anysoup.HSTSEnforcer` (RFC 6797):

* *Which host is this?* :func:`normalize_domain` turns a host name into the
  one key policies are stored under: IDNA A-labels as yarl's ``raw_host``
  gives them (the form the connection uses), lower case, without a trailing
  dot. ``Example.COM.``, ``example.com`` and ``EXAMPLE。com`` are one host;
  ``bücher.example`` is ``xn--bcher-kva.example``. Hosts that spell an IP
  address never get a policy (§8.1.1, §8.3): IPv6 literals, dotted quads, and
  the numeric forms ``inet_aton`` accepts (``127.1``, ``0x7f.1``), which the
  WHATWG URL standard also treats as IPv4. Mismatched spellings were how
  curl's HSTS was bypassed (CVE-2022-30115, CVE-2022-42916), so every lookup
  and every stored policy goes through this one function.
* *What did the server ask for?* :func:`parse_sts` parses one header value
  by the grammar of §6.1: directives separated by ``;``, names
  case-insensitive, values a token or a quoted-string. ``max-age`` is
  required and is delta-seconds (§6.1.1); ``includeSubDomains`` takes no
  value (§6.1.2); a directive that appears twice, or anything off the
  grammar, makes the whole header invalid (§6.1 rules 2 and 4); unknown
  directives are ignored (rule 5). A huge max-age is clamped to
  :data:`MAX_AGE_LIMIT`, never converted digit by digit into a giant integer.
* *Is a URI to be upgraded, and to what?* :func:`superdomains` lists the
  hosts whose includeSubDomains policies cover a host (§8.2), and
  :func:`upgrade_uri` makes the secure URI (§8.3: port 80 becomes the
  default, any other explicit port is kept).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yarl import URL

from ..._model.public import public

if TYPE_CHECKING:
    from ..._model.message import Message

__all__ = [
    "MAX_AGE_LIMIT",
    "HSTSPolicy",
    "normalize_domain",
    "parse_sts",
    "superdomains",
    "upgrade_uri",
    "uri_domain",
]

#: The longest max-age kept, in seconds (about 68 years): larger values are
#: clamped so an expiry date always fits a datetime and a 64-bit SQLite integer.
MAX_AGE_LIMIT = 2**31 - 1

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
#: A host after normalisation: dot-separated labels of letters, digits, - and _.
_DOMAIN_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
#: A label inet_aton (and the WHATWG URL parser) reads as a number.
_NUMBER_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED_RE = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*)"')
_OWS_RE = re.compile(r"[ \t]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_QUOTED_PAIR_RE = re.compile(r"\\(.)")


# -- host names ------------------------------------------------------------------


def _is_ip(host: str) -> bool:
    """Whether a lower-case host without a trailing dot spells an IP address."""
    if ":" in host:  # an IPv6 literal (a registered name never has a colon)
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        # WHATWG "ends in a number": 127.1, 0x7f.0.0.1 and 2130706433 are IPv4
        # to getaddrinfo too, while no top-level domain is all digits.
        return _NUMBER_RE.fullmatch(host.rsplit(".", 1)[-1]) is not None
    return True


def normalize_domain(domain: str) -> str | None:
    """The key a policy for ``domain`` is stored under, or None if it can have none.

    None means an IP address or a string that is not a host name.

    Raises:
        TypeError: ``domain`` is not a str.
    """
    if not isinstance(domain, str):
        raise TypeError(f"domain: expected str, got {type(domain).__name__}")
    text = domain.strip()
    if not text or text.startswith("["):
        return None  # "[::1]": an IPv6 literal
    if not text.isascii():
        try:  # IDNA (UTS #46): the same A-labels as the URI the connection uses
            text = URL.build(scheme="http", host=text).raw_host or ""
        except (ValueError, UnicodeError):
            return None
    text = text.lower()
    if text.endswith("."):
        text = text[:-1]
    if _DOMAIN_RE.fullmatch(text) is None or _is_ip(text):
        return None
    return text


def uri_domain(uri: URL) -> str | None:
    """The policy key of ``uri``'s host, or None for an IP address."""
    host = uri.raw_host
    return normalize_domain(host) if host else None


def superdomains(domain: str) -> list[str]:
    """The hosts above ``domain``, nearest first: ``a.b.c`` gives ``b.c``, ``c``."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def upgrade_uri(uri: URL) -> URL:
    """The secure URI for ``uri`` (http → https, ws → wss), RFC 6797 §8.3.

    An explicit port 80 becomes the default port; any other explicit port is
    kept; no port stays no port.
    """
    port = uri.explicit_port
    new = uri.with_scheme("wss" if uri.scheme == "ws" else "https")
    if port == 80:
        new = new.with_port(None)
    return new


# -- the header ------------------------------------------------------------------


def parse_sts(value: str) -> tuple[int, bool] | None:
    """Parse one ``Strict-Transport-Security`` value: ``(max_age, include_subdomains)``.

    Returns None when the value is invalid and must be ignored (RFC 6797 §6.1,
    §8.1): off the grammar, a directive twice, no ``max-age``, a max-age that
    is not delta-seconds, or ``includeSubDomains`` with a value.
    """
    directives: dict[str, str | None] = {}
    pos, end = 0, len(value)
    while True:
        pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            break
        if value[pos] == ";":  # an empty directive: allowed by [ directive ]
            pos += 1
            continue
        match = _TOKEN_RE.match(value, pos)
        if match is None:
            return None
        name = match.group().lower()
        pos = _OWS_RE.match(value, match.end()).end()  # type: ignore[union-attr]
        directive_value: str | None = None
        if pos < end and value[pos] == "=":
            pos = _OWS_RE.match(value, pos + 1).end()  # type: ignore[union-attr]
            token = _TOKEN_RE.match(value, pos)
            if token is not None:
                directive_value, pos = token.group(), token.end()
            else:
                quoted = _QUOTED_RE.match(value, pos)
                if quoted is None:
                    return None
                directive_value = _QUOTED_PAIR_RE.sub(r"\1", quoted.group(1))
                pos = quoted.end()
            pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
        if pos < end and value[pos] != ";":
            return None
        if name in directives:
            return None  # §6.1 rule 2: each directive at most once
        directives[name] = directive_value
    if "max-age" not in directives:
        return None
    raw_age = directives["max-age"]
    if raw_age is None or _DIGITS_RE.fullmatch(raw_age) is None:
        return None
    digits = raw_age.lstrip("0")
    # Compare lengths before converting: a 5,000-digit value is clamped, not parsed.
    max_age = MAX_AGE_LIMIT if len(digits) > len(str(MAX_AGE_LIMIT)) else int(digits or "0")
    if "includesubdomains" in directives:
        if directives["includesubdomains"] is not None:
            return None  # §6.1.2: a valueless directive
        return min(max_age, MAX_AGE_LIMIT), True
    return min(max_age, MAX_AGE_LIMIT), False


# -- the policy ------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(time.time()), _UTC)


def _domain_or_error(domain: str) -> str:
    key = normalize_domain(domain)
    if key is None:
        raise ValueError(f"domain: {domain!r} is not a host name (IP addresses have no policy)")
    return key


@public
@dataclass(frozen=True, init=False)
class HSTSPolicy:
    """An HSTS policy for one host (libsoup's ``SoupHSTSPolicy``, RFC 6797).

    ``HSTSPolicy(domain, max_age, include_subdomains)`` makes a policy that
    expires ``max_age`` seconds from now (0: already expired, which removes a
    policy when set). :meth:`new_session_policy` makes one that never expires
    and is never stored on disk; :meth:`new_full` takes the expiry date.

    The domain is normalised (lower case, no trailing dot, IDNA A-labels);
    policies are equal when every field is.

    Raises:
        ValueError: ``domain`` is an IP address or not a host name, or
            ``max_age`` is negative.
    """

    #: The host the policy applies to, normalised (A-labels, lower case, no trailing dot).
    domain: str
    #: The ``max-age`` it was made with, in seconds (clamped to :data:`MAX_AGE_LIMIT`).
    max_age: int
    #: Whether the policy also covers every subdomain of :attr:`domain`.
    include_subdomains: bool
    #: When it expires (UTC, whole seconds), or None for a session policy.
    expires: datetime.datetime | None

    def __init__(self, domain: str, max_age: int, include_subdomains: bool = False) -> None:
        if not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age: {max_age!r} is not a number of seconds >= 0")
        max_age = min(max_age, MAX_AGE_LIMIT)
        # max-age=0 expires "way in the past", as libsoup does, against clock skew.
        expires = _EPOCH if max_age == 0 else _now() + datetime.timedelta(seconds=max_age)
        self._set(_domain_or_error(domain), max_age, include_subdomains, expires)

    def _set(
        self,
        domain: str,
        max_age: int,
        include_subdomains: bool,
        expires: datetime.datetime | None,
    ) -> None:
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "max_age", max_age)
        object.__setattr__(self, "include_subdomains", bool(include_subdomains))
        object.__setattr__(self, "expires", expires)

    @classmethod
    def new(cls, domain: str, max_age: int, include_subdomains: bool = False) -> HSTSPolicy:
        """Same as the constructor (``soup_hsts_policy_new``)."""
        return cls(domain, max_age, include_subdomains)

    @classmethod
    def new_full(
        cls,
        domain: str,
        max_age: int,
        expires: datetime.datetime | None,
        include_subdomains: bool = False,
    ) -> HSTSPolicy:
        """A policy with a given expiry date; None makes a session policy.

        Raises:
            ValueError: A bad ``domain`` or ``max_age``, or a naive ``expires``.
        """
        if not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age: {max_age!r} is not a number of seconds >= 0")
        if expires is not None:
            if expires.tzinfo is None:
                raise ValueError(f"expires: {expires!r} has no time zone")
            expires = expires.astimezone(_UTC).replace(microsecond=0)
        policy = cls.__new__(cls)
        policy._set(
            _domain_or_error(domain), min(max_age, MAX_AGE_LIMIT), include_subdomains, expires
        )
        return policy

    @classmethod
    def new_session_policy(cls, domain: str, include_subdomains: bool = False) -> HSTSPolicy:
        """A policy that never expires and is never persisted (set by the program)."""
        return cls.new_full(domain, 0, None, include_subdomains)

    @classmethod
    def new_from_response(cls, msg: Message) -> HSTSPolicy | None:
        """The policy in ``msg``'s first ``Strict-Transport-Security`` header, or None.

        Only the first header counts (RFC 6797 §8.1); None if it is invalid,
        if there is none, or if the message's host is an IP address. This
        does not look at how the response arrived: :class:`anysoup.HSTSEnforcer`
        learns only from secure responses without certificate errors.
        """
        values = msg.response_headers.get_all("Strict-Transport-Security")
        if not values:
            return None
        parsed = parse_sts(values[0])
        domain = uri_domain(msg.uri)
        if parsed is None or domain is None:
            return None
        return cls(domain, parsed[0], parsed[1])

    def is_expired(self) -> bool:
        """Whether the policy has expired (a session policy never does)."""
        return self.expires is not None and self.expires <= _now()

    def is_session_policy(self) -> bool:
        """Whether this is a session policy (no expiry, never persisted)."""
        return self.expires is None

    def includes_subdomains(self) -> bool:
        """Alias of :attr:`include_subdomains` (libsoup's name)."""
        return self.include_subdomains

    def get_domain(self) -> str:
        """Alias of :attr:`domain`."""
        return self.domain

    def get_max_age(self) -> int:
        """Alias of :attr:`max_age`."""
        return self.max_age

    def get_expires(self) -> datetime.datetime | None:
        """Alias of :attr:`expires`."""
        return self.expires
