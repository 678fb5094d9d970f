"""Authentication schemes: the :class:`Auth` base class and Basic (Digest: ``digest_policy.py``).

Theory of operation: an :class:`Auth` is one attempt to authenticate to one
protection space (libsoup's ``SoupAuth``). The auth manager makes one from a
challenge (a ``WWW-Authenticate`` or ``Proxy-Authenticate`` entry, already
parsed by ``_features/auth/challenge_policy.py``), lets the program give it credentials
(:meth:`Auth.authenticate`), and asks it for the ``Authorization`` value of
each request it covers. The schemes are policy: no I/O, no awaiting.

:class:`AuthBasic` (RFC 7617) sends the credentials themselves;
:class:`AuthDigest` (RFC 7616) sends a hash of them bound to the server's
nonce, the method and the request target. Both follow libsoup's
``soup-auth-basic.c`` and ``soup-auth-digest.c``; where they differ, the
docstring says so and why.
"""

from __future__ import annotations

import abc
import base64
import unicodedata
from typing import TYPE_CHECKING, ClassVar

from yarl import URL

if TYPE_CHECKING:
    from ..._model.message import Message
    from .challenge_policy import Challenge

__all__ = ["Auth", "AuthBasic"]


class Auth(abc.ABC):
    """Credentials for one protection space, in one scheme (``SoupAuth``).

    Programs meet auths in the message's ``authenticate(msg, auth, retrying)``
    signal: read :attr:`scheme_name`, :attr:`realm` and :attr:`authority`,
    then call :meth:`authenticate` with a user name and password, or
    :meth:`cancel` (or nothing) to let the 401 or 407 be the final answer.

    Subclasses set :attr:`scheme_name` and :attr:`strength` and implement
    :attr:`is_authenticated`, :meth:`authenticate`, :meth:`update`,
    :meth:`get_authorization` and :meth:`get_protection_space`; a scheme
    that can't answer every challenge of its name also overrides
    :meth:`supports`. As in libsoup, a cancelled auth is never
    authenticated and ignores :meth:`authenticate`.

    Args:
        challenge: The challenge this auth answers.
        authority: ``host:port`` of the server (or proxy) that sent it.
        is_for_proxy: Whether it came in a 407 (``Proxy-Authenticate``).
    """

    #: The scheme's name as it appears in headers (``"Basic"``).
    scheme_name: ClassVar[str] = ""
    #: Higher is preferred when a server offers several schemes
    #: (Negotiate > NTLM > Digest > Basic).
    strength: ClassVar[int] = 0
    #: Whether the scheme authenticates a connection rather than each request
    #: (NTLM, Negotiate): such a connection is private to the credential.
    connection_based: ClassVar[bool] = False

    def __init__(self, challenge: Challenge, *, authority: str, is_for_proxy: bool) -> None:
        self._realm = challenge.params.get("realm", "")
        self._authority = authority
        self._is_for_proxy = is_for_proxy
        self._cancelled = False

    # -- what programs read ------------------------------------------------------

    @property
    def realm(self) -> str:
        """The realm the server named (``""`` if none)."""
        return self._realm

    @property
    def authority(self) -> str:
        """``host:port`` of the server or proxy asking."""
        return self._authority

    @property
    def is_for_proxy(self) -> bool:
        """Whether a proxy asks (407) rather than the server (401)."""
        return self._is_for_proxy

    @property
    @abc.abstractmethod
    def is_authenticated(self) -> bool:
        """Whether credentials were given and are ready to be sent."""

    @property
    def is_cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    @property
    def info(self) -> str:
        """``"Scheme:realm"``: what identifies the space for a cache (libsoup's ``get_info``)."""
        return f"{self.scheme_name}:{self._realm}"

    # -- what programs call --------------------------------------------------------

    @abc.abstractmethod
    def authenticate(self, username: str, password: str) -> None:
        """Give the credentials (synchronous; the message is re-sent with them)."""

    def cancel(self) -> None:
        """Give up: the 401 or 407 is the final answer."""
        self._cancelled = True

    def can_authenticate(self) -> bool:
        """Whether :meth:`authenticate` would take credentials (libsoup's ``can_authenticate``).

        False once cancelled. Every anysoup scheme takes a user name and
        password, Negotiate included (libsoup's Negotiate uses only the
        system's credentials and says False there).
        """
        return not self._cancelled

    def is_ready(self, msg: Message) -> bool:
        """Whether the auth can put an ``Authorization`` on ``msg`` now (libsoup's ``is_ready``).

        For most schemes that is :attr:`is_authenticated`. A connection-based
        scheme (NTLM, Negotiate) is also ready while a handshake of ``msg``
        has its next leg waiting. Never after :meth:`cancel`.
        """
        return not self._cancelled and self.is_authenticated

    # -- what the auth manager calls ---------------------------------------------

    @classmethod
    def supports(cls, challenge: Challenge) -> bool:
        """Whether an auth of this scheme can answer ``challenge`` at all.

        The manager skips challenges its schemes can't answer (Digest with an
        unknown algorithm, say) and picks among the rest. The default is True.
        """
        return True

    @abc.abstractmethod
    def update(self, msg: Message, challenge: Challenge) -> bool:
        """Take a new challenge for the same space; return whether it is still usable.

        True means the auth took the challenge and is still authenticated, so
        the message can be re-sent without asking the program again: Digest's
        ``stale=true`` (same credentials, new nonce). False means the
        credentials were refused (they are forgotten: the auth is no longer
        authenticated), or the challenge is for another realm or can't be
        used; the manager then asks for credentials again. libsoup's
        ``update`` returns whether the object is still valid and leaves
        "refused" to ``is_authenticated``; here one answer says both.
        """

    @abc.abstractmethod
    def get_authorization(self, msg: Message) -> str:
        """The ``Authorization`` (or ``Proxy-Authorization``) value for ``msg``.

        Raises:
            ValueError: The auth is not authenticated, or can't answer for
                ``msg`` (the text says why).
        """

    @abc.abstractmethod
    def get_protection_space(self, source_uri: URL) -> list[str]:
        """The path prefixes this auth covers on ``source_uri``'s origin.

        Each is an encoded path (compare it with ``URL.raw_path``); a request
        on the same origin whose path starts with one of them is covered, and
        the longest match wins. ``source_uri`` is the request that was
        challenged.
        """

    # -- libsoup's accessors -----------------------------------------------------------

    def get_scheme_name(self) -> str:
        """Alias of :attr:`scheme_name`."""
        return self.scheme_name

    def get_realm(self) -> str:
        """Alias of :attr:`realm`."""
        return self._realm

    def get_authority(self) -> str:
        """Alias of :attr:`authority`."""
        return self._authority

    def get_is_for_proxy(self) -> bool:
        """Alias of :attr:`is_for_proxy`."""
        return self._is_for_proxy

    def get_is_authenticated(self) -> bool:
        """Alias of :attr:`is_authenticated`."""
        return self.is_authenticated

    def get_is_cancelled(self) -> bool:
        """Alias of :attr:`is_cancelled`."""
        return self._cancelled

    def get_info(self) -> str:
        """Alias of :attr:`info`."""
        return self.info

    def __repr__(self) -> str:
        state = (
            "authenticated" if self.is_authenticated else "cancelled" if self._cancelled else "new"
        )
        return f"<anysoup.{type(self).__name__} {self._authority} realm={self._realm!r} {state}>"


# -- shared helpers ----------------------------------------------------------------


def _quoted(value: str) -> str:
    """``value`` as an RFC 9110 §5.6.4 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sendable(value: str) -> bool:
    """Whether ``value`` can go in a quoted-string of a header anysoup writes.

    Header values go out as ASCII, so obs-text is out too; HTAB is allowed.
    """
    return value.isascii() and all(c == "\t" or " " <= c <= "~" for c in value)


def _directory(uri: URL) -> str:
    """The request path up to and including its last ``/`` (RFC 7617 §2.2)."""
    path = uri.raw_path or "/"
    return path[: path.rfind("/") + 1] or "/"


def _same_realm(auth: Auth, challenge: Challenge) -> bool:
    return (
        challenge.scheme == auth.scheme_name.lower()
        and challenge.params.get("realm", "") == auth.realm
    )


# -- Basic ---------------------------------------------------------------------------


class AuthBasic(Auth):
    """HTTP Basic authentication (RFC 7617; libsoup's ``SoupAuthBasic``).

    The credentials travel base64-encoded, readable by anyone on the path:
    use it over https. ``user:password`` is encoded in UTF-8, whether or not
    the challenge says ``charset="UTF-8"`` (RFC 7617 §2.1 defines no other
    value and leaves the default open; browsers send UTF-8). libsoup sends
    ISO-8859-1 when every character fits and UTF-8 otherwise: the two agree
    on ASCII credentials only.
    """

    scheme_name: ClassVar[str] = "Basic"
    strength: ClassVar[int] = 1

    def __init__(self, challenge: Challenge, *, authority: str, is_for_proxy: bool) -> None:
        super().__init__(challenge, authority=authority, is_for_proxy=is_for_proxy)
        self._token: str | None = None

    @property
    def is_authenticated(self) -> bool:
        """Whether credentials were given and are ready to be sent."""
        return self._token is not None and not self._cancelled

    def authenticate(self, username: str, password: str) -> None:
        """Give the credentials; ignored after :meth:`cancel`.

        Raises:
            ValueError: The user name holds a ``:``, or either holds a
                control character (RFC 7617 §2: neither can be sent).
        """
        if self._cancelled:
            return
        if ":" in username:
            raise ValueError("Basic auth: a user name containing ':' can't be sent (RFC 7617 §2)")
        if any(unicodedata.category(c) == "Cc" for c in username + password):
            raise ValueError(
                "Basic auth: control characters can't be sent in a user name or password "
                "(RFC 7617 §2)"
            )
        credentials = f"{username}:{password}".encode()
        self._token = base64.b64encode(credentials).decode("ascii")

    def cancel(self) -> None:
        """Give up: the 401 or 407 is the final answer; the credentials are forgotten."""
        super().cancel()
        self._token = None

    def update(self, msg: Message, challenge: Challenge) -> bool:
        """A new challenge for the same realm means the credentials were refused.

        They are forgotten and the answer is always False (libsoup clears its
        token the same way).
        """
        if self._cancelled or not _same_realm(self, challenge):
            return False
        self._token = None
        return False

    def get_authorization(self, msg: Message) -> str:
        """``Basic <base64(user:password)>``.

        Raises:
            ValueError: :meth:`authenticate` was not called.
        """
        if self._token is None or self._cancelled:
            raise ValueError(f"Basic auth for {self._authority}: call authenticate() first")
        return f"Basic {self._token}"

    def get_protection_space(self, source_uri: URL) -> list[str]:
        """The directory of the request path, with its trailing ``/`` (RFC 7617 §2.2).

        ``/docs/index.html`` gives ``/docs/``, covering everything below it.
        libsoup gives ``/docs`` and matches on ``/`` boundaries; here the
        slash stays so a plain prefix test can't also cover ``/docsecret``.
        """
        return [_directory(source_uri)]
