"""Digest access authentication (RFC 7616), as libsoup's ``soup-auth-digest.c``.

:class:`AuthDigest` sends a hash of the credentials bound to the server's
nonce, the method and the request target; only hashes of the password are
kept. Policy: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from yarl import URL

from ..._model.uri import absolute_form, authority_form, request_target, scheme_class
from .auth_policy import Auth, _directory, _quoted, _same_realm, _sendable

if TYPE_CHECKING:
    from ..._model.message import Message
    from .challenge_policy import Challenge

__all__ = ["AuthDigest"]


# -- Digest --------------------------------------------------------------------------


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name, usedforsecurity=False)
    except ValueError:  # OpenSSL built without it (SHA-512/256 before 1.1.1, FIPS)
        return False
    return True


#: RFC 7616 §6.1's algorithms, by lowercased name: (hashlib name, is a -sess variant).
_ALGORITHMS: dict[str, tuple[str, bool]] = {
    name.lower() + sess: (hash_name, bool(sess))
    for name, hash_name in (("MD5", "md5"), ("SHA-256", "sha256"), ("SHA-512-256", "sha512_256"))
    if _hash_available(hash_name)
    for sess in ("", "-sess")
}
_HASH_NAMES = frozenset(hash_name for hash_name, _ in _ALGORITHMS.values())

#: RFC 8187 §3.2.1 attr-char beyond what quote() always keeps (ALPHA DIGIT _ . - ~).
_ATTR_CHAR_EXTRA = "!#$&+^`|"


def _h(hash_name: str, data: str | bytes) -> str:
    """H(data): the lowercase hex digest (RFC 7616 §3.4.1)."""
    raw = data.encode() if isinstance(data, str) else data
    # Not a use "for security" in FIPS's sense: the protocol dictates MD5.
    return hashlib.new(hash_name, raw, usedforsecurity=False).hexdigest()


def _digest_problem(challenge: Challenge) -> str | None:
    """Why a Digest challenge can't be answered, or None if it can."""
    params = challenge.params
    # libsoup refuses a challenge without realm or nonce too.
    for name in ("realm", "nonce"):
        if name not in params:
            return f"the challenge has no {name}"
    for name in ("realm", "nonce", "opaque"):
        value = params.get(name)
        if value is not None and not _sendable(value):
            return f"the challenge's {name} holds characters that can't be sent back"
    algorithm = params.get("algorithm", "MD5")
    if algorithm.lower() not in _ALGORITHMS:
        return f"algorithm {algorithm!r} is not supported"
    qop = params.get("qop")
    if qop is not None and not {"auth", "auth-int"} & _qop_options(qop):
        return f"qop {qop!r} offers neither auth nor auth-int"
    if qop is None and _ALGORITHMS[algorithm.lower()][1]:
        # RFC 7616 §3.4.2: -sess mixes in the cnonce, which RFC 2069 mode never sends.
        return f"algorithm {algorithm!r} needs qop"
    return None


def _qop_options(qop: str) -> frozenset[str]:
    return frozenset(option.strip().lower() for option in qop.split(","))


class AuthDigest(Auth):
    """HTTP Digest authentication (RFC 7616; libsoup's ``SoupAuthDigest``).

    Algorithms MD5, SHA-256 and SHA-512-256 (when hashlib has it), each also
    ``-sess``; libsoup knows MD5 and MD5-sess only. A challenge with another
    algorithm is not :meth:`supported <supports>`.

    Quality of protection: ``auth`` when the server offers it (as libsoup,
    curl and browsers do; ``auth-int`` protects the body but not the
    headers, and servers that list it are the least tested with it), else
    ``auth-int``, which hashes the request body and so needs it as bytes.
    Without ``qop`` the RFC 2069 form is sent (no ``cnonce``, no ``nc``).

    Each request carries the next nonce count ``nc`` (reset by a new nonce)
    and a fresh client nonce; with a ``-sess`` algorithm the client nonce of
    the first request after a challenge is kept until the nonce changes, as
    the session key is made once (RFC 2617 §3.2.2.2), so servers that
    recompute it per request and servers that keep it both agree. libsoup
    uses one client nonce per :meth:`authenticate` call.

    ``userhash=true`` in the challenge sends ``H(user:realm)`` as the user
    name (RFC 7616 §3.4.4); otherwise a user name that can't go in a
    quoted-string (non-ASCII, say) goes as ``username*`` (RFC 8187), which
    libsoup doesn't do. User names and passwords are hashed as UTF-8. Only
    the hashes of ``user:realm:password`` are kept, not the password.
    """

    scheme_name: ClassVar[str] = "Digest"
    #: libsoup has 5 (above its NTLM's 3); anysoup ranks NTLM above Digest.
    strength: ClassVar[int] = 3

    @staticmethod
    def _cnonce_factory() -> str:
        """A new client nonce (tests replace this to reproduce the RFC examples)."""
        import secrets  # on first use: most programs never meet a Digest challenge

        return secrets.token_hex(16)

    def __init__(self, challenge: Challenge, *, authority: str, is_for_proxy: bool) -> None:
        super().__init__(challenge, authority=authority, is_for_proxy=is_for_proxy)
        self._username: str | None = None
        # H(user:realm:password) per hash function: a stale=true challenge
        # may change the algorithm, and the password itself is not kept.
        self._urp: dict[str, str] = {}
        self._take(challenge)

    @classmethod
    def supports(cls, challenge: Challenge) -> bool:
        """Whether the challenge has a realm and a nonce, and a known algorithm and qop."""
        return _digest_problem(challenge) is None

    def _take(self, challenge: Challenge) -> None:
        """Adopt the server's side of a challenge; the nonce count starts again."""
        params = challenge.params
        self._problem = _digest_problem(challenge)
        self._nonce = params.get("nonce", "")
        self._opaque = params.get("opaque")
        self._domain = params.get("domain")
        # Echoed as the server spelled it, and not sent when the server sent
        # none (RFC 7616 §3.3: absent means MD5); libsoup always sends its own.
        self._algorithm = params.get("algorithm")
        self._hash_name, self._sess = _ALGORITHMS.get(
            (self._algorithm or "MD5").lower(), ("md5", False)
        )
        qop = params.get("qop")
        self._qop_options = None if qop is None else _qop_options(qop)
        self._userhash = params.get("userhash", "").lower() == "true"
        self._nc = 1
        self._session_cnonce: str | None = None

    def _forget(self) -> None:
        self._username = None
        self._urp = {}

    @property
    def is_authenticated(self) -> bool:
        """Whether credentials were given and the challenge can be answered."""
        return self._username is not None and self._problem is None and not self._cancelled

    def authenticate(self, username: str, password: str) -> None:
        """Give the credentials; ignored after :meth:`cancel`."""
        if self._cancelled:
            return
        self._username = username
        urp = f"{username}:{self._realm}:{password}"
        self._urp = {hash_name: _h(hash_name, urp) for hash_name in _HASH_NAMES}

    def cancel(self) -> None:
        """Give up: the 401 or 407 is the final answer; the credentials are forgotten."""
        super().cancel()
        self._forget()

    def update(self, msg: Message, challenge: Challenge) -> bool:
        """Take the new nonce; True (credentials kept) only for ``stale=true``.

        RFC 7616 §3.3: ``stale=true`` says the credentials were right and
        only the nonce had expired, so the message goes again without asking
        the program. Any other new challenge means they were refused.
        """
        if self._cancelled or not _same_realm(self, challenge):
            return False
        stale = challenge.params.get("stale", "").lower() == "true"
        keep = stale and self.is_authenticated
        self._take(challenge)
        if not keep or self._problem is not None:
            self._forget()
            return False
        return True

    def get_authorization(self, msg: Message) -> str:
        """The ``Digest`` credentials for ``msg``; each call uses the next ``nc``.

        Raises:
            ValueError: The auth is not authenticated, its challenge can't be
                answered, or only ``auth-int`` is offered and the request body
                is a stream (it can't be hashed before it is sent).
        """
        if self._problem is not None:
            raise ValueError(f"Digest auth for {self._authority}: {self._problem}")
        if self._username is None or self._cancelled:
            raise ValueError(f"Digest auth for {self._authority}: call authenticate() first")
        qop, body = self._choose_qop(msg)
        method, uri = msg.method, "*" if msg._options_ping else request_target(msg.uri)
        if self._is_for_proxy:
            # The proxy checks the request it received (RFC 7616 §3.4): for a
            # tunnel (https, ws, wss) that is the CONNECT, which has no body;
            # a forwarded request names its target in absolute form.
            if msg.uri.scheme == "http":
                uri = absolute_form(msg.uri)
            else:
                method, uri = "CONNECT", authority_form(msg.uri)
                body = None if body is None else b""
        h = self._hash_name
        a2 = f"{method}:{uri}" if body is None else f"{method}:{uri}:{_h(h, body)}"
        fields = [self._username_field(), f"realm={_quoted(self._realm)}", f"uri={_quoted(uri)}"]
        if self._algorithm is not None:
            fields.append(f"algorithm={self._algorithm}")
        fields.append(f"nonce={_quoted(self._nonce)}")
        ha1 = self._urp[h]
        if qop is None:  # RFC 2069 (RFC 2617 §3.2.2.1)
            response = _h(h, f"{ha1}:{self._nonce}:{_h(h, a2)}")
        else:
            nc = f"{self._nc:08x}"
            self._nc += 1
            cnonce = self._session_cnonce or self._cnonce_factory()
            if self._sess:  # RFC 7616 §3.4.2
                self._session_cnonce = cnonce
                ha1 = _h(h, f"{ha1}:{self._nonce}:{cnonce}")
            response = _h(h, f"{ha1}:{self._nonce}:{nc}:{cnonce}:{qop}:{_h(h, a2)}")
            fields += [f"nc={nc}", f"cnonce={_quoted(cnonce)}", f"qop={qop}"]
        fields.append(f"response={_quoted(response)}")
        if self._opaque is not None:
            fields.append(f"opaque={_quoted(self._opaque)}")
        if self._userhash:
            fields.append("userhash=true")
        return "Digest " + ", ".join(fields)

    def _choose_qop(self, msg: Message) -> tuple[str | None, bytes | None]:
        """The qop to send and, for ``auth-int``, the body to hash."""
        options = self._qop_options
        if options is None:
            return None, None
        if "auth" in options:
            return "auth", None
        body = msg._body
        if body is not None and body.data is None:
            raise ValueError(
                f"Digest auth for {self._authority}: the server asks for qop=auth-int, "
                "which hashes the body, and this request's body is a stream; "
                "give the body as bytes"
            )
        return "auth-int", b"" if body is None else body.data

    def _username_field(self) -> str:
        username = self._username or ""
        if self._userhash:  # RFC 7616 §3.4.4
            return f"username={_quoted(_h(self._hash_name, f'{username}:{self._realm}'))}"
        if _sendable(username):
            return f"username={_quoted(username)}"
        # RFC 7616 §3.4.4 and RFC 8187 §3.2: UTF-8, percent-encoded.
        return f"username*=UTF-8''{quote(username, safe=_ATTR_CHAR_EXTRA)}"

    def get_protection_space(self, source_uri: URL) -> list[str]:
        """The ``domain`` URIs on this origin, or the whole origin without one.

        RFC 7616 §3.3: each URI is a prefix; a path is relative to the
        server's root; URIs on other origins are left out (the manager keeps
        spaces per origin), and if none is left the space is the directory
        of ``source_uri`` so the credentials are not asked for at each
        request. A proxy's space is the whole proxy. libsoup returns ``""``
        for the whole server and strips each path's trailing ``/``.
        """
        if not self._domain or self._is_for_proxy:
            return ["/"]
        # The manager's origin: scheme class, IDNA host, port.
        origin = (scheme_class(source_uri), source_uri.raw_host, source_uri.port)
        spaces: list[str] = []
        for entry in self._domain.split():
            try:
                uri = source_uri.join(URL(entry))
            except (ValueError, TypeError):
                continue
            path = uri.raw_path or "/"
            if (scheme_class(uri), uri.raw_host, uri.port) == origin and path not in spaces:
                spaces.append(path)
        return spaces or [_directory(source_uri)]
