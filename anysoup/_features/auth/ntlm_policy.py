"""NTLM and Negotiate (SPNEGO) authentication on pyspnego (policy: no I/O of ours).

Theory of operation: both schemes authenticate a *connection* by a handshake
of several legs, each an ``Authorization: <Scheme> <base64 token>`` answered
by a 401 carrying the server's token (RFC 4559 §4; MS-NLMP §3.1 for NTLM).
pyspnego computes the tokens; these classes keep the HTTP side of it:

* One :class:`AuthNTLM` or :class:`AuthNegotiate` holds the credentials for
  a protection space (the whole origin) and a *handshake per message*: the
  legs of one message go out on one connection, so keying the handshake by
  message keeps two messages handshaking on two connections apart.
* :meth:`~_SpnegoAuth.get_authorization` either answers the server's last
  token (taken by :meth:`~_SpnegoAuth.update`) or, when there is none,
  opens a new handshake: a message re-sent without a challenge in between
  (a new connection, a redirect) starts over.
* A 401 after the leg that carried the credentials means they were
  refused: :meth:`~_SpnegoAuth.update` returns False and
  :attr:`~_SpnegoAuth.is_authenticated` turns False, so the program can be
  asked again, unless the same credentials already succeeded once (then it
  is a refusal of this resource, as libsoup reads it).
* A final non-401 answer ends the handshake: :meth:`~_SpnegoAuth.finish`
  takes the server's last token, which for Negotiate proves the server's
  identity (mutual authentication, RFC 4559 §5).

pyspnego is imported on first use (``pip install anysoup[ntlm]``); what it
does stays in-process, except that Kerberos may ask the KDC for a ticket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..._model.exceptions import Error
from ..._model.public import public
from .auth_policy import Auth

if TYPE_CHECKING:
    from yarl import URL

    from ..._model.message import Message
    from .challenge_policy import Challenge

__all__ = ["AuthNTLM", "AuthNegotiate"]

#: The NTLM AUTHENTICATE_MESSAGE header (MS-NLMP §2.2.1.3): signature, type 3.
_NTLM_AUTHENTICATE = b"NTLMSSP\x00\x03\x00\x00\x00"
#: An NTLMv1 (or LM) NtChallengeResponse is 24 bytes or none; NTLMv2's is longer.
_NTLMV1_RESPONSE_LEN = 24
#: Where Negotiate offers the system's credentials to a server (libsoup's rule).
_SECURE = frozenset({"https", "wss"})


class _SecurityContext(Protocol):
    """What we use of a pyspnego ``ContextProxy`` (typed here: pyspnego is optional)."""

    @property
    def complete(self) -> bool: ...

    def step(self, in_token: bytes | None = None, *, channel_bindings: Any = None) -> bytes | None:
        """Process the peer's token, return the next one to send."""


def _load_spnego(scheme: str) -> Any:
    """pyspnego, imported on first use; Any at the boundary of an optional library."""
    try:
        return importlib.import_module("spnego")
    except ImportError as exc:
        raise Error(
            f"{scheme} authentication needs pyspnego, which is not installed: "
            "install anysoup[ntlm]"
        ) from exc


def _decode_token(token: str) -> bytes | None:
    """A token68 as bytes, or None when it is not base64 (RFC 9110 §11.2)."""
    try:
        # Some servers drop the padding; the alphabet is still checked.
        return base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_ntlmv2(token: bytes, authority: str) -> None:
    """Refuse to send NTLMv1 or LM responses, even wrapped in SPNEGO.

    pyspnego answers with NTLMv2 unless ``LM_COMPAT_LEVEL`` is below 3, and
    SSPI or gss-ntlmssp follow the system's policy: NTLMv1 is crackable from
    one captured exchange, so whatever chose it, it does not leave here.
    """
    at = token.find(_NTLM_AUTHENTICATE)  # verbatim inside the SPNEGO DER, too
    if at < 0:
        return  # not an NTLM AUTHENTICATE message (Kerberos, or another leg)
    length = int.from_bytes(token[at + 20 : at + 22], "little")
    if length <= _NTLMV1_RESPONSE_LEN:
        raise Error(
            f"NTLM with {authority}: the security library produced an NTLMv1/LM "
            "response, which anysoup refuses to send; set LM_COMPAT_LEVEL to 3 or "
            "more (or unset it), or raise the system's LAN Manager authentication level"
        )


def _tls_server_end_point(der: bytes) -> bytes | None:
    """The RFC 5929 §4.1 channel binding of a server certificate, or None.

    The certificate's hash by the hash of its signature algorithm, SHA-256
    for MD5 and SHA-1 (and for signatures without one, such as Ed25519).
    """
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm):
        return None
    name = algorithm.name.replace("-", "_") if algorithm is not None else "sha256"
    if name in ("md5", "sha1") or name not in hashlib.algorithms_available:
        name = "sha256"
    return b"tls-server-end-point:" + hashlib.new(name, der).digest()


def _host_of(authority: str) -> str:
    """``host`` of ``host:port`` or ``[v6]:port``, lowercased, for the SPN ``HTTP@host``."""
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    if host.startswith("[") and "]" in host:
        host = host[1 : host.index("]")]
    return host.lower()


@dataclass
class _Handshake:
    """One message's handshake: its security context and where it stands."""

    context: _SecurityContext
    #: Tokens of ours sent so far.
    legs: int = 0
    #: Our answer to the server's last token, computed by update(), not yet sent.
    pending: bytes | None = None


class _SpnegoAuth(Auth):
    """What NTLM and Negotiate share: a pyspnego context per handshake.

    The auth manager drives it (see the module docstring):
    ``get_authorization`` → 401 with a token → ``update`` (True) →
    ``get_authorization`` → … → a final answer → ``finish``; every leg of a
    message on the same connection.

    Raises:
        anysoup.Error: pyspnego is not installed (``anysoup[ntlm]``).
    """

    connection_based: ClassVar[bool] = True
    #: pyspnego's name for the protocol.
    _protocol: ClassVar[str] = ""
    #: Which of our legs carries the credentials: a 401 after it refuses them.
    _credential_leg: ClassVar[int] = 1

    def __init__(self, challenge: Challenge, *, authority: str, is_for_proxy: bool) -> None:
        super().__init__(challenge, authority=authority, is_for_proxy=is_for_proxy)
        self._spnego = _load_spnego(self.scheme_name)
        self._username: str | None = None
        self._password: str | None = None
        self._refused = False  # the credentials were refused (or cannot be used)
        self._accepted = False  # they succeeded once: a later 401 refuses a resource
        self._handshakes: weakref.WeakKeyDictionary[Message, _Handshake] = (
            weakref.WeakKeyDictionary()
        )
        #: Bind the handshake to the TLS connection it runs on (RFC 5929
        #: ``tls-server-end-point``, Microsoft's Extended Protection for
        #: Authentication), so that it cannot be relayed to another server.
        #: Turn off for servers behind a TLS-terminating proxy that check it.
        self.channel_binding = True

    @staticmethod
    def supported() -> bool:
        """Whether pyspnego is installed (libsoup's ``soup_auth_negotiate_supported``)."""
        try:
            importlib.import_module("spnego")
        except ImportError:
            return False
        return True

    @property
    def is_authenticated(self) -> bool:
        """Whether credentials are at hand and were not refused."""
        return self._username is not None and not self._refused and not self._cancelled

    # -- what programs call ------------------------------------------------------

    def authenticate(self, username: str, password: str) -> None:
        r"""Give the credentials: ``user``, ``DOMAIN\user`` or ``user@domain``.

        Handshakes in progress are dropped: the next leg starts over with
        these credentials.

        Raises:
            ValueError: ``username`` is empty.
        """
        if not username:
            raise ValueError(f"username: empty; {self.scheme_name} needs a user name")
        self._username = username
        self._password = password
        self._refused = False
        self._accepted = False
        self._handshakes.clear()

    def cancel(self) -> None:
        """Give up: the 401 or 407 is the final answer."""
        super().cancel()
        self._handshakes.clear()

    def is_ready(self, msg: Message) -> bool:
        """Whether a leg can go on ``msg``: the next one of its handshake, or a first one."""
        if self._cancelled:
            return False
        handshake = self._handshakes.get(msg)
        return (handshake is not None and handshake.pending is not None) or self.is_authenticated

    # -- what the auth manager calls ---------------------------------------------

    def get_authorization(self, msg: Message) -> str:
        """The next leg of ``msg``'s handshake: ``"<Scheme> <base64 token>"``.

        The answer to the token :meth:`update` took, or else the first leg
        of a new handshake.

        Raises:
            ValueError: No credentials to use (before :meth:`authenticate`,
                after :meth:`cancel`, or after they were refused).
            anysoup.Error: The security library cannot start a handshake
                with these credentials (Negotiate: the system has none);
                :attr:`is_authenticated` is then False.
        """
        handshake = self._handshakes.get(msg)
        if handshake is not None and handshake.pending is not None:
            token, handshake.pending = handshake.pending, None
        else:
            if not self.is_authenticated:
                raise ValueError(
                    f"{self.scheme_name} for {self.authority}: get_authorization() without "
                    "usable credentials (call authenticate() first; cancelled or refused "
                    "credentials cannot be used)"
                )
            handshake = self._start(msg)
            token = self._first_token(handshake)
            self._handshakes[msg] = handshake
        handshake.legs += 1
        return f"{self.scheme_name} {base64.b64encode(token).decode('ascii')}"

    def update(self, msg: Message, challenge: Challenge) -> bool:
        """Take the server's 401 for ``msg``; return whether to send the next leg.

        True when the challenge carries the server's token for the leg
        ``msg`` sent (the answer is ready for :meth:`get_authorization`), or
        is the bare first challenge and credentials are at hand. False when
        the server refused (a bare challenge, or a token that cannot be
        continued, after our credentials went out) or sent garbage.

        Raises:
            anysoup.Error: Our answer would be NTLMv1 or LM, which is refused.
        """
        if self._cancelled or challenge.scheme.lower() != self.scheme_name.lower():
            return False
        handshake = self._handshakes.get(msg)
        if handshake is None or handshake.legs == 0:
            # Nothing of ours in flight: only the first, bare challenge is sane.
            return not challenge.token68 and self.is_authenticated
        if handshake.pending is not None:
            del self._handshakes[msg]  # two 401s without our answer between them
            return False
        token = _decode_token(challenge.token68) if challenge.token68 else None
        answer = None
        if token is not None and not handshake.context.complete:
            try:
                answer = handshake.context.step(token, channel_bindings=self._bindings(msg))
            # The server's token goes through a third-party parser that raises
            # anything (struct.error, ValueError, SpnegoError) on garbage: any
            # failure means it cannot be continued, like a refusal.
            except Exception:
                answer = None
        if not answer:
            del self._handshakes[msg]
            if handshake.legs >= self._credential_leg and not self._accepted:
                self._refused = True
            return False
        try:
            _check_ntlmv2(answer, self.authority)
        except Error:
            del self._handshakes[msg]
            raise
        handshake.pending = answer
        return True

    def finish(self, msg: Message, challenge: Challenge | None) -> bool:
        """End ``msg``'s handshake on its final, non-401 answer.

        Args:
            msg: The message whose response is final.
            challenge: The response's ``WWW-Authenticate`` (or
                ``Proxy-Authenticate``) entry for this scheme, if any: for
                Negotiate, the server's last token (RFC 4559 §5).

        Returns:
            Whether the handshake completed: NTLM sent its AUTHENTICATE leg;
            Negotiate's security context is established, the server's last
            token (mutual authentication) verified. libsoup only warns when
            it is not: servers that skip that token are common.
        """
        handshake = self._handshakes.pop(msg, None)
        if handshake is None or handshake.legs == 0 or handshake.pending is not None:
            return False
        context = handshake.context
        token = _decode_token(challenge.token68) if challenge and challenge.token68 else None
        if token is not None and not context.complete:
            try:
                context.step(token, channel_bindings=self._bindings(msg))
            except Exception:  # a forged or broken last token: not verified (see update)
                return False
        if context.complete:
            self._accepted = True
        return context.complete

    def get_protection_space(self, source_uri: URL) -> list[str]:
        """The whole origin: the connection is authenticated, not a path."""
        return ["/"]

    # -- the handshake -------------------------------------------------------------

    def _bindings(self, msg: Message) -> Any:
        """The channel bindings of ``msg``'s TLS connection to the server, or None."""
        cert = msg.tls_peer_certificate
        if not self.channel_binding or self._is_for_proxy or cert is None:
            return None  # a proxy's connection is not the server's certificate's
        data = _tls_server_end_point(cert.der)
        if data is None:
            return None
        bindings_module = importlib.import_module("spnego.channel_bindings")
        return bindings_module.GssChannelBindings(application_data=data)

    def _start(self, msg: Message) -> _Handshake:
        """A fresh security context for ``msg``, for the service ``HTTP@host``."""
        try:
            context: _SecurityContext = self._spnego.client(
                self._username,
                self._password,
                hostname=_host_of(self._authority),
                service="HTTP",
                channel_bindings=self._bindings(msg),
                protocol=self._protocol,
            )
        except self._local_errors() as exc:  # GSSAPI looks for credentials here
            raise self._cannot_start(exc) from exc
        return _Handshake(context)

    def _first_token(self, handshake: _Handshake) -> bytes:
        try:
            token = handshake.context.step()
        except self._local_errors() as exc:
            raise self._cannot_start(exc) from exc
        if not token:
            raise self._cannot_start(None)
        return token

    def _local_errors(self) -> tuple[type[Exception], ...]:
        """What pyspnego raises when it cannot use the credentials.

        GSSAPI errors come wrapped in SpnegoError; a missing Kerberos library
        is FeatureMissingError; an unreadable NTLM_USER_FILE is OSError.
        Anything else is a bug and propagates.
        """
        exceptions = self._spnego.exceptions
        return (exceptions.SpnegoError, exceptions.FeatureMissingError, ValueError, OSError)

    def _cannot_start(self, cause: Exception | None) -> Error:
        self._refused = True
        reason = f": {cause}" if cause is not None else ""
        return Error(
            f"{self.scheme_name} with {self.authority}: cannot start the handshake "
            f"with {self._credentials_name()}{reason}"
        )

    def _credentials_name(self) -> str:
        return "the given credentials"


@public
class AuthNTLM(_SpnegoAuth):
    r"""NTLM (``SoupAuthNTLM``): NTLMv2 only, user name and password required.

    The handshake has three legs on one connection: NEGOTIATE, the server's
    CHALLENGE (in a 401), AUTHENTICATE. The user name may be ``user``,
    ``DOMAIN\user`` (or ``DOMAIN/user``, as libsoup accepts) or
    ``user@domain``. Not offered by default: add it with
    ``session.add_feature_by_type(anysoup.AuthNTLM)``.
    """

    scheme_name: ClassVar[str] = "NTLM"
    strength: ClassVar[int] = 4
    _protocol: ClassVar[str] = "ntlm"
    _credential_leg: ClassVar[int] = 2  # NEGOTIATE carries nothing; AUTHENTICATE does

    def authenticate(self, username: str, password: str) -> None:
        r"""Give the credentials: ``user``, ``DOMAIN\user``, ``DOMAIN/user`` or ``user@domain``.

        Raises:
            ValueError: ``username`` is empty.
        """
        if "\\" not in username and "/" in username:
            username = username.replace("/", "\\", 1)
        super().authenticate(username, password)


@public
class AuthNegotiate(_SpnegoAuth):
    """Negotiate (``SoupAuthNegotiate``): SPNEGO, Kerberos or NTLM inside it.

    Like libsoup, it uses the system's credentials and does not need the
    program: :attr:`is_authenticated` is True from the start, so no
    ``authenticate`` signal is needed. They are a Kerberos ticket (``kinit``)
    when python-gssapi or SSPI is there, else NTLM credentials from the file
    named by ``NTLM_USER_FILE``. Also like libsoup, they go only to https
    servers (and to proxies): they are not offered to a plain-http server.

    Unlike libsoup, a program may give a user name and password with
    :meth:`authenticate`, which then replace the system's (a password
    Kerberos login, or NTLM inside SPNEGO). When the system has no
    credentials, :meth:`get_authorization` raises :class:`anysoup.Error`
    and :attr:`is_authenticated` turns False: the auth manager can then ask
    the program like for any other scheme.
    """

    scheme_name: ClassVar[str] = "Negotiate"
    strength: ClassVar[int] = 5
    _protocol: ClassVar[str] = "negotiate"
    _credential_leg: ClassVar[int] = 1  # Kerberos sends its ticket in the first leg

    @property
    def uses_default_credentials(self) -> bool:
        """Whether the system's credentials are used (no :meth:`authenticate` call)."""
        return self._username is None

    @property
    def is_authenticated(self) -> bool:
        """Whether credentials (the system's, or given) are at hand and not refused."""
        return not self._refused and not self._cancelled

    def _start(self, msg: Message) -> _Handshake:
        if self._username is None and not self._is_for_proxy and msg.uri.scheme not in _SECURE:
            # A plain-http server may be anyone: the system's credentials
            # would authenticate us to it, or be relayed (libsoup: https only).
            self._refused = True
            raise Error(
                f"Negotiate with {self.authority}: not offering the system's credentials "
                f"over plain {msg.uri.scheme}; use https, or give credentials with "
                "authenticate()"
            )
        return super()._start(msg)

    def _credentials_name(self) -> str:
        if self._username is None:
            return "the system's credentials (no Kerberos ticket or NTLM_USER_FILE?)"
        return "the given credentials"
