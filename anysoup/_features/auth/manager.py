"""AuthManager: answers 401 and 407 with credentials (libsoup's ``SoupAuthManager``).

Theory of operation: the manager is a chain stage (inside the decoder,
outside cookies and the logger, DESIGN §1), so its re-sends pass through
cookies and the logger again. For each attempt it:

1. adds ``Authorization`` before sending when the request falls inside a
   protection space it knows (an origin and a path prefix, RFC 7617 §2.2):
   Basic is thereby sent preemptively, Digest reuses its nonce with the next
   nonce count;
2. after a 401 (or 407), parses every challenge, picks the strongest scheme it
   supports (Negotiate > NTLM > Digest > Basic), and gets credentials: an auth
   that can go on by itself (Digest ``stale=true``, the next NTLM leg) goes on;
   otherwise a new auth takes the URI's user and password the first time,
   then asks the message's ``authenticate(auth, retrying)`` handlers;
3. re-sends with the credentials, counting against the message's 20
   re-sends, or returns the 401 as the final answer when there are none.

Credentials are cached per origin, so they never go to another origin; a
cross-origin redirect drops the header (``_features/redirect.py``) and the next hop
finds only what its own origin earned. Connection-based schemes (NTLM,
Negotiate) authenticate a connection, not a request: the message's
``_connection_owner`` puts the credential in the pool key, so that connection
serves only requests of the same credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..._model.exceptions import Error
from ..._model.resends import check_resend
from ..._model.signals import active
from ..._model.uri import scheme_class
from ..feature import SessionFeature
from .auth_policy import Auth, AuthBasic
from .digest_policy import AuthDigest

if TYPE_CHECKING:
    from yarl import URL

    from ..._model.body import InputStream
    from ..._model.message import Message
    from ..feature import CallNext
    from .challenge_policy import Challenge

__all__ = ["AuthManager"]

#: An origin: scheme class, host, port.
Origin = tuple[str, str, int]


def _origin(uri: URL) -> Origin:
    return (scheme_class(uri), uri.raw_host or "", uri.port or 0)


def _authority(uri: URL) -> str:
    host = uri.raw_host or ""
    return f"[{host}]:{uri.port}" if ":" in host else f"{host}:{uri.port}"


def _uri_credentials(msg: Message, proxy: bool, scheme: type[Auth]) -> tuple[str, str] | None:
    """The URI's user and password for a first answer, or None.

    For a 401 the message's URI; for a 407 the proxy URI's. Those went up
    front as Basic already (``ProxyURI.basic_authorization``), so they
    answer another scheme (Digest) only: a Basic 407 means they were wrong.
    """
    if not proxy:
        user = msg.uri.user
        return None if user is None else (user, msg.uri.password or "")
    via = msg._proxy
    if via is None or via.username is None or scheme is AuthBasic:
        return None
    return via.username, via.password or ""


class _Sent:
    """What the manager put on a message, so a later hop can tell it from the program's."""

    __slots__ = ("proxy", "server")

    def __init__(self) -> None:
        self.server: str | None = None
        self.proxy: str | None = None


def _sent(msg: Message) -> _Sent:
    sent = msg._auth_state
    if not isinstance(sent, _Sent):
        sent = msg._auth_state = _Sent()
    return sent


class AuthManager(SessionFeature):
    """Handles HTTP authentication for a session (a default feature).

    It knows Basic and Digest; ``session.add_feature_by_type(AuthNTLM)`` adds
    a scheme, ``remove_feature_by_type(AuthBasic)`` takes one away. Programs
    give credentials from the message's ``authenticate`` signal, in the URI
    (``https://user:pass@host/``, used after the first 401, never sent
    elsewhere), or ahead of time with :meth:`use_auth`. See :doc:`auth`.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_AUTH

    def __init__(self) -> None:
        self._schemes: dict[str, type[Auth]] = {"basic": AuthBasic, "digest": AuthDigest}
        # origin -> path prefix -> auth; the longest prefix of a request path wins.
        self._spaces: dict[Origin, dict[str, Auth]] = {}

    # -- schemes (sub-features) ----------------------------------------------------

    def add_sub_feature(self, feature_type: type) -> bool:
        """Take an :class:`Auth` subclass as a supported scheme."""
        if isinstance(feature_type, type) and issubclass(feature_type, Auth):
            name = feature_type.scheme_name.lower()
            if name:
                self._schemes[name] = feature_type
                return True
        return False

    def remove_sub_feature(self, feature_type: type) -> bool:
        """Stop answering challenges of that scheme."""
        for name, scheme in list(self._schemes.items()):
            if scheme is feature_type:
                del self._schemes[name]
                return True
        return False

    def has_sub_feature(self, feature_type: type) -> bool:
        """Whether the scheme is supported."""
        return feature_type in self._schemes.values()

    # -- credentials ahead of time -------------------------------------------------------

    def use_auth(self, uri: str | URL, auth: Auth) -> None:
        """Use ``auth`` (already authenticated) for requests under ``uri`` without a 401.

        Raises:
            ValueError: ``auth`` has no credentials yet.
        """
        from ..._model.uri import parse_uri

        uri = parse_uri(uri)
        if not auth.is_authenticated:
            raise ValueError("use_auth: call auth.authenticate(username, password) first")
        self._remember(uri, auth)

    def clear_cached_credentials(self) -> None:
        """Forget every credential; the next request of each space gets a 401 again."""
        self._spaces.clear()

    def _remember(self, uri: URL, auth: Auth) -> None:
        spaces = self._spaces.setdefault(_origin(uri), {})
        for path in auth.get_protection_space(uri):
            spaces[path] = auth

    def _lookup(self, uri: URL) -> Auth | None:
        spaces = self._spaces.get(_origin(uri))
        if not spaces:
            return None
        path = uri.raw_path or "/"
        best: Auth | None = None
        best_length = -1
        for prefix, auth in spaces.items():
            if len(prefix) > best_length and path.startswith(prefix):
                best, best_length = auth, len(prefix)
        return best

    # -- the stage ------------------------------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Send ``msg``; answer 401 and 407 with credentials while there are new ones."""
        msg._connection_owner = None  # each hop earns its own (another origin, another space)
        server_auth = self._prepare(msg) if self._spaces else None
        proxy_auth: Auth | None = None
        uri_tried = proxy_uri_tried = False
        while True:
            stream = await call_next(msg)
            status = msg.status
            if status != 401 and status != 407:
                return stream
            body = msg._body
            if body is not None and body._consumed:
                return stream  # a streamed body went out: it can't be sent again
            proxy = status == 407
            try:
                auth = await self._answer(
                    msg, proxy, proxy_auth, server_auth, proxy_uri_tried if proxy else uri_tried
                )
            except BaseException:
                stream._discard()  # cancelled or failed in a handler: give the connection up
                raise
            if auth is None:
                return stream
            if proxy:
                proxy_uri_tried = True  # the proxy URI's credentials answer once
            elif msg.uri.user is not None:
                uri_tried = True
            try:
                value = auth.get_authorization(msg)
            except (Error, ValueError):
                # The scheme can't answer for this message (Negotiate without a
                # ticket, auth-int over a streamed body): the 401 is final.
                return stream
            await stream.aclose()  # the 401 body: drained (bounded) so the connection stays
            check_resend(msg)
            restarted = active(msg, "restarted")
            if restarted is not None:
                await restarted.emit()
            if proxy:
                proxy_auth = auth
            else:
                server_auth = auth
            self._apply(msg, auth, value, proxy=proxy)

    async def _answer(
        self,
        msg: Message,
        proxy: bool,
        proxy_auth: Auth | None,
        server_auth: Auth | None,
        uri_tried: bool,
    ) -> Auth | None:
        """The auth to re-send ``msg`` with after a 401/407, or None for a final answer."""
        from .challenge_policy import parse_challenges  # loaded by the first 401 or 407

        previous = proxy_auth if proxy else server_auth
        challenges = parse_challenges(
            msg.response_headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        )
        chosen = self._choose(challenges)
        if chosen is None:
            return None
        scheme, challenge = chosen
        if previous is None and not proxy:
            # A connection-based auth already earned for this space: a new
            # connection of its own asks it to start over, not the program.
            cached = self._lookup(msg.uri)
            if cached is not None and cached.connection_based and type(cached) is scheme:
                previous = cached
        if (
            previous is not None
            and type(previous) is scheme
            and previous.realm == challenge.params.get("realm", "")
            and previous.update(msg, challenge)
        ):
            return previous  # Digest stale=true, or the next leg of NTLM
        auth = scheme(challenge, authority=_authority(msg.uri), is_for_proxy=proxy)
        credentials = None if uri_tried else _uri_credentials(msg, proxy, scheme)
        if credentials is not None:
            auth.authenticate(*credentials)
        else:
            signal = active(msg, "authenticate")
            # A scheme that takes no credentials (can_authenticate() False) is
            # not offered to the program, as in libsoup.
            if signal is not None and auth.can_authenticate():
                session = self.session
                if session is None:
                    await signal.emit_until_true(auth, previous is not None)
                else:
                    with session._abortable(msg):  # Session.abort() ends a slow handler
                        await signal.emit_until_true(auth, previous is not None)
        if not auth.is_ready(msg):
            return None
        return auth

    def _choose(self, challenges: list[Challenge]) -> tuple[type[Auth], Challenge] | None:
        best: tuple[type[Auth], Challenge] | None = None
        for challenge in challenges:
            scheme = self._schemes.get(challenge.scheme)
            if scheme is None or not scheme.supports(challenge):
                continue
            if best is None or scheme.strength > best[0].strength:
                best = (scheme, challenge)
        return best

    def _prepare(self, msg: Message) -> Auth | None:
        """Before the first attempt: credentials of a known space go along unasked."""
        auth = self._lookup(msg.uri)
        if auth is None or not auth.is_ready(msg):
            return None
        if auth.connection_based:
            msg._connection_owner = auth  # its connection is already authenticated
            return None
        sent = _sent(msg)
        headers = msg.request_headers
        current = headers.get_one("Authorization")
        if current is not None and current != sent.server:
            return None  # the program's own header
        sent.server = auth.get_authorization(msg)
        headers.replace("Authorization", sent.server)
        return auth

    def _apply(self, msg: Message, auth: Auth, value: str, *, proxy: bool) -> None:
        """Put ``auth``'s header ``value`` on ``msg`` for the re-send; remember the space."""
        sent = _sent(msg)
        if auth.connection_based:
            msg._connection_owner = auth
        if proxy:
            msg.request_headers.replace("Proxy-Authorization", value)
            sent.proxy = value
        else:
            msg.request_headers.replace("Authorization", value)
            sent.server = value
            self._remember(msg.uri, auth)

    def __repr__(self) -> str:
        schemes = ", ".join(sorted(s.scheme_name for s in self._schemes.values()))
        return f"<anysoup.AuthManager {schemes}>"
