"""The public suffix list: base domains and public suffixes (libsoup's ``soup-tld``).

Theory of operation: a *public suffix* is a name under which anyone can
register one (``com``, ``co.uk``, ``github.io``), as the Public Suffix List
says (https://publicsuffix.org/); the *base domain* (registrable domain,
eTLD+1) of a host is its public suffix plus one label. The list is the
``publicsuffixlist`` package's, ICANN and private sections both, loaded once
on first use and shared with the cookie jar.

These functions answer as libsoup's ``soup_tld_get_base_domain`` and
``soup_tld_domain_is_public_suffix`` do, which differs from what the cookie
jar needs in one way: a name under an *unlisted* top-level domain
(``printer.lan``, ``localhost``) has no base domain here, and is not a public
suffix, where the jar (like browsers) applies the list's implicit ``*`` rule
and treats every unknown top-level name as public.

The base domain comes back as the tail of the name given: the same labels,
in the same case and form (Unicode or ``xn--``), with a trailing dot kept.
This is a policy module: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from .enums import TLDErrorCode
from .exceptions import TLDError

__all__ = ["public_suffix_list", "tld_domain_is_public_suffix", "tld_get_base_domain"]

#: What an ASCII label may hold besides letters and digits (``_`` is common in practice).
_LABEL_PUNCTUATION = frozenset("-_")


@functools.cache
def public_suffix_list() -> Any:
    """The loaded list (a ``publicsuffixlist.PublicSuffixList``), made on first use.

    Raises:
        TLDError: ``NO_PSL_DATA``: the package or its data can't be loaded.
    """
    try:
        from publicsuffixlist import PublicSuffixList

        return PublicSuffixList()
    except (ImportError, OSError) as exc:
        raise TLDError(
            f"no public suffix list available ({exc})", code=TLDErrorCode.NO_PSL_DATA
        ) from exc


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _valid_label(label: str) -> bool:
    if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
        return False
    if not label.isascii():
        return label.isprintable() and not any(c.isspace() for c in label)
    if not all(c.isalnum() or c in _LABEL_PUNCTUATION for c in label):
        return False
    if label[:4].lower() == "xn--":
        try:
            label[4:].encode("ascii").decode("punycode")
        except UnicodeError:
            return False
    return True


def _labels(hostname: str) -> list[str]:
    """The labels of ``hostname`` without a trailing dot; TLDError if it is not a host name."""
    if not isinstance(hostname, str):
        raise TypeError(f"hostname must be str, not {type(hostname).__name__}")
    if _is_ip(hostname):
        raise TLDError(f"{hostname!r} is an IP address", code=TLDErrorCode.IS_IP_ADDRESS)
    bare = hostname[:-1] if hostname.endswith(".") else hostname
    labels = bare.split(".")
    if len(bare) > 253 or not all(_valid_label(label) for label in labels):
        raise TLDError(
            f"{hostname!r} is not a valid host name", code=TLDErrorCode.INVALID_HOSTNAME
        )
    return labels


def tld_get_base_domain(hostname: str) -> str:
    """The base domain of ``hostname``: its public suffix plus one label.

    ``www.example.co.uk`` gives ``example.co.uk``; ``a.b.github.io`` gives
    ``b.github.io`` (the list's private section counts). The result is the
    tail of ``hostname``, in its case and form; a trailing dot is kept.

    Raises:
        anysoup.TLDError: With ``code`` ``INVALID_HOSTNAME`` (a leading dot,
            an empty or malformed label), ``IS_IP_ADDRESS``,
            ``NO_BASE_DOMAIN`` (no listed public suffix: ``printer.lan``),
            ``NOT_ENOUGH_DOMAINS`` (the name is a public suffix: ``co.uk``)
            or ``NO_PSL_DATA``.
        TypeError: ``hostname`` is not a str.
    """
    labels = _labels(hostname)
    psl = public_suffix_list()
    name = ".".join(labels).lower()
    if psl.publicsuffix(name, accept_unknown=False) is None:
        raise TLDError(
            f"{hostname!r} has no base domain: it ends in no listed public suffix",
            code=TLDErrorCode.NO_BASE_DOMAIN,
        )
    base = psl.privatesuffix(name, accept_unknown=False)
    if base is None:
        raise TLDError(
            f"{hostname!r} is a public suffix: not enough labels for a base domain",
            code=TLDErrorCode.NOT_ENOUGH_DOMAINS,
        )
    count = str(base).count(".") + 1
    tail = ".".join(labels[-count:])
    return tail + "." if hostname.endswith(".") else tail


def tld_domain_is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a listed public suffix (``com``, ``co.uk``, ``github.io``).

    Unlisted top-level names (``lan``) are not, as in libsoup; IP addresses
    and malformed names are not either.

    Raises:
        anysoup.TLDError: ``NO_PSL_DATA``: the list can't be loaded.
    """
    try:
        labels = _labels(domain)
    except TLDError as exc:
        if exc.code is TLDErrorCode.NO_PSL_DATA:
            raise
        return False
    return bool(public_suffix_list().is_public(".".join(labels).lower(), accept_unknown=False))
