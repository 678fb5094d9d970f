"""The ``no_proxy`` list: which hosts reach the network without a proxy (policy).

Theory of operation
-------------------
``ignore_hosts`` and ``no_proxy`` are matched as curl matches ``NO_PROXY``
(CURLOPT_NOPROXY(3), lib/noproxy.c), without DNS: a host name is compared
with name entries, an IP address with address entries, never across.

* Entries are separated by commas; blanks around them are ignored. (curl
  stops reading at a blank inside an entry; here a blank separates too.)
* ``*`` matches every host. curl honours it only as the whole value; here
  it may be any entry, since nobody lists hosts next to ``*`` to mean less.
* A name entry matches that host and its subdomains, at a label boundary:
  ``example.com`` and ``.example.com`` both match ``example.com`` and
  ``a.example.com``, never ``badexample.com``. GLib's ``*.example.com``
  means the same (curl would compare it literally and never match).
  Comparison ignores case and one trailing dot on either side; international
  names are compared as IDNA A-labels, the form yarl's ``raw_host`` gives.
* An address entry matches that address, in any spelling (``::1`` is
  ``0:0::1``; brackets are optional), or a CIDR range, ``10.0.0.0/8`` or
  ``fe80::/10``. The prefix has :mod:`ipaddress` semantics, so ``/0`` is
  every address of the family (curl reads an IPv4 ``/0`` as ``/32``).
* An entry with a port (``example.com:8080``, ``[::1]:443``) matches
  nothing, as in curl: curl's documentation describes the list as host
  names ("``ample.com`` would match ``ample.com:80``": the URI's port never
  counts) and its code compares the whole entry as a name, which can never
  contain a colon. GLib would match only that port; we keep curl's rule and
  list such entries in :attr:`NoProxyList.unused` so a caller can warn.

The list is compiled once (:class:`NoProxyList`): a set of names, looked up
once per label of the host, and a tuple of networks; a lookup costs no
parsing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

__all__ = ["NoProxyList"]

_SEPARATORS_RE = re.compile(r"[,\s]+")
_BRACKETED_RE = re.compile(r"\[([^\]]*)\](/[0-9]+)?")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(entries: str | Iterable[str]) -> list[str]:
    """The entries of a comma-separated list, or of several such lists."""
    texts = [entries] if isinstance(entries, str) else list(entries)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"ignore_hosts: expected str entries, got {type(text).__name__}")
    return [entry for text in texts for entry in _SEPARATORS_RE.split(text) if entry]


def _name_key(host: str) -> str | None:
    """A host name as compared: IDNA A-labels, lower case, no trailing dot."""
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        try:
            host = URL.build(scheme="http", host=host).raw_host or ""
        except ValueError:  # UnicodeError is one too: not a valid IDN
            return None
    return host.lower() or None


def _network(entry: str) -> _Network | None:
    """The addresses an IP or CIDR entry covers, or None if it is not one."""
    bracketed = _BRACKETED_RE.fullmatch(entry)
    if bracketed:
        entry = bracketed[1] + (bracketed[2] or "")
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class NoProxyList:
    """A compiled ``no_proxy`` list: parse once, match many hosts (curl's rules).

    See the module documentation for the rules.
    """

    #: Whether an entry ``*`` makes every host match.
    match_all: bool = False
    #: Name entries, as compared: IDNA, lower case, no leading or trailing dot.
    names: frozenset[str] = frozenset()
    #: Address and CIDR entries.
    networks: tuple[_Network, ...] = ()
    #: Entries that can match nothing (a port, a bad address), kept for warnings.
    unused: tuple[str, ...] = ()

    @classmethod
    def compile(cls, entries: str | Iterable[str]) -> NoProxyList:
        """Compile a comma-separated list, or an iterable of entries (or of lists).

        Raises:
            TypeError: an entry is not a str.
        """
        match_all = False
        names: set[str] = set()
        networks: list[_Network] = []
        unused: list[str] = []
        for entry in _split(entries):
            if entry == "*":
                match_all = True
                continue
            network = _network(entry)
            if network is not None:
                networks.append(network)
                continue
            # A colon, slash or bracket here is a port (see above) or junk; a
            # leading "." or "*." (GLib) names the same domain as none.
            domain = entry.removeprefix("*.").lstrip(".")
            key = None if any(c in entry for c in ":/[") else _name_key(domain)
            if key is None:
                unused.append(entry)
            else:
                names.add(key)
        return cls(match_all, frozenset(names), tuple(networks), tuple(unused))

    def matches(self, host: str | None) -> bool:
        """Whether ``host`` (a URI's host, e.g. yarl's ``raw_host``) is to be reached directly."""
        if not host:
            return False
        if self.match_all:
            return True
        if ":" in host or host.startswith("["):  # IPv6, without its zone
            host = host.strip("[]").split("%", 1)[0]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return self._matches_name(host)
        return any(address in network for network in self.networks)

    def _matches_name(self, host: str) -> bool:
        key = _name_key(host)
        while key:
            if key in self.names:
                return True
            key = key.partition(".")[2]  # the parent domain: one label less
        return False
