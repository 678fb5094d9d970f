"""``Message``: one HTTP request and, once sent, its response."""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from yarl import URL

from .body import RequestBody, RequestBodySource
from .enums import CacheResult, HTTPVersion, MessageFlags, MessagePriority, TlsCertificateFlags
from .headers import MessageHeaders
from .methods import normal_method
from .response import response_json, response_text, status_error
from .signals import Handler, Signal, SignalDescriptor
from .uri import parse_uri

if TYPE_CHECKING:
    from .addresses import ProxyURI, RemoteAddress
    from .certificate import TlsCertificate
    from .compression_dictionary import CompressionDictionary
    from .multipart import Multipart

__all__ = ["Message", "MessageMetrics"]

#: Methods taken as they are, without a look at their grammar (the fast path).
_COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

#: An already encoded query (RFC 3986 §3.4, with well-formed percent-escapes).
_QUERY_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")


@dataclass
class MessageMetrics:
    """Timings and sizes of one message, filled when ``COLLECT_METRICS`` is set.

    Times are :func:`time.monotonic` seconds, 0.0 when the step did not
    happen (no DNS lookup or connect for a reused connection). Sizes are in
    bytes; body sizes are counted before any content decoding.
    """

    #: When the message was queued.
    fetch_start: float = 0.0
    #: When the host name lookup began.
    dns_start: float = 0.0
    #: When the host name lookup ended.
    dns_end: float = 0.0
    #: When the TCP connect began.
    connect_start: float = 0.0
    #: When the connection (TLS included) was ready.
    connect_end: float = 0.0
    #: When the TLS handshake began.
    tls_start: float = 0.0
    #: When the request began to be written.
    request_start: float = 0.0
    #: When the first byte of the response arrived.
    response_start: float = 0.0
    #: When the response was complete.
    response_end: float = 0.0
    #: Bytes of request line and headers written.
    request_header_bytes_sent: int = 0
    #: Bytes of request body (before transfer coding).
    request_body_size: int = 0
    #: Bytes of request body written, framing included.
    request_body_bytes_sent: int = 0
    #: Bytes of status line and headers received.
    response_header_bytes_received: int = 0
    #: Bytes of response body received (without chunk framing).
    response_body_size: int = 0
    #: Bytes of response body received.
    response_body_bytes_received: int = 0


class Message:
    """An HTTP request and its response, sent with :meth:`anysoup.Session.send`.

    Args:
        method: The request method, e.g. ``"GET"``.
        uri: An absolute http(s) or ws(s) URI, as a string or :class:`yarl.URL`.
        headers: Request headers: a mapping or an iterable of pairs (copied).
        body: The request body: bytes, an (async) iterable of bytes or an
            anyio byte stream. Bytes are sent with ``Content-Length``; other
            bodies with chunked transfer coding.

    Raises:
        ValueError: ``method`` or ``uri`` is not valid.
    """

    __slots__ = (
        "__weakref__",
        "_auth_state",
        "_body",
        "_compression_dictionary",
        "_connection_id",
        "_connection_note",
        "_connection_owner",
        "_dictionary_offer",
        "_disabled",
        "_options_ping",
        "_proxy",
        "_queued",
        "_reload",
        "_restarts",
        "_signals",
        "_switched",
        "_tls_client_certificate",
        "_tls_strict",
        "_validating",
        "cache_result",
        "first_party",
        "flags",
        "force_http1",
        "http_version",
        "is_top_level_navigation",
        "method",
        "metrics",
        "priority",
        "reason_phrase",
        "remote_address",
        "request_headers",
        "response_body",
        "response_headers",
        "site_for_cookies",
        "status",
        "tls_ciphersuite_name",
        "tls_peer_certificate",
        "tls_peer_certificate_errors",
        "tls_protocol_version",
        "uri",
    )

    starting: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the request is about to be written on a connection."
    )
    wrote_headers: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the request line and headers were written."
    )
    wrote_body_data: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, chunk)``: a piece of the request body was written."
    )
    wrote_body: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the whole request body was written."
    )
    got_informational: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: a 1xx response arrived; ``msg.status`` and headers show it."
    )
    got_headers: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the final response's headers arrived."
    )
    got_body_data: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, chunk)``: a piece of the response body was read."
    )
    got_body: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the whole response body was read."
    )
    restarted: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the message is about to be sent again (redirect, auth, retry)."
    )
    finished: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the exchange is over, by reading or closing the body."
    )
    network_event: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, event, connection)``: a step of making the message's new connection "
        "(:class:`anysoup.NetworkEvent`), reported when the message gets the connection."
    )
    authenticate: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, auth, retrying) -> bool``: credentials are needed."
    )
    accept_certificate: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, cert, errors) -> bool``: the server's certificate (a "
        ":class:`anysoup.TlsCertificate`) failed validation for the reasons in ``errors`` "
        "(:class:`anysoup.TlsCertificateFlags`); return True to use the connection anyway. "
        "Asked of every message that uses such a connection."
    )
    request_certificate: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg) -> bool``: the server demands a client certificate and none was given; "
        "call :meth:`set_tls_client_certificate` and return True to send the request "
        "again on a connection that presents it."
    )
    request_certificate_password: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, password) -> bool``: the client certificate's private key is encrypted; "
        "call ``password.set_value(...)`` on the :class:`anysoup.TlsPassword` and return "
        "True (a coroutine handler may await first). Not asked when the session's "
        "``tls_interaction`` gave the password."
    )
    content_sniffed: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg, content_type, params)``: the content type was sniffed."
    )
    hsts_enforced: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg)``: the URI was upgraded to https by HSTS."
    )
    request_compression_dictionary: SignalDescriptor[Message] = SignalDescriptor(
        "``(msg) -> CompressionDictionary | bytes | None``: the request is about to go "
        "to a secure origin with no compression dictionary (RFC 9842); return one, or its "
        "bytes, to offer it (``dcb``/``dcz``), None to let the next handler answer. "
        "Asked by the :class:`anysoup.ContentDecoder`; see :doc:`dictionaries`."
    )

    def __init__(
        self,
        method: str,
        uri: str | URL,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: RequestBodySource | None = None,
    ) -> None:
        if method not in _COMMON_METHODS:
            method = normal_method(method)
        #: The request method (``"get"`` is sent as ``GET``; see :doc:`/requests`).
        self.method = method
        #: The request URI (after redirects: the last one).
        self.uri: URL = parse_uri(uri)
        #: Request headers.
        self.request_headers = MessageHeaders(headers) if headers else MessageHeaders()
        #: Response headers (empty until the response arrives).
        self.response_headers = MessageHeaders()
        #: The response status code; 0 until a response arrives.
        self.status = 0
        #: The response's reason phrase.
        self.reason_phrase = ""
        #: The HTTP version of the response.
        self.http_version = HTTPVersion.HTTP_1_1
        #: :class:`anysoup.MessageFlags` changing how the message is sent.
        self.flags = MessageFlags.NONE
        #: The message's place in the connection queue.
        self.priority = MessagePriority.NORMAL
        #: The URI of the top-level document (for cookie policies).
        self.first_party: URL | None = None
        #: The URI whose cookies are "same-site" for this request.
        self.site_for_cookies: URL | None = None
        #: Whether the request is a top-level navigation (for SameSite cookies).
        self.is_top_level_navigation = False
        #: Send over HTTP/1.1 even where the server would speak HTTP/2 (libsoup's
        #: ``force_http1``): the message gets a connection that offers only
        #: ``http/1.1``. Set by anysoup for WebSocket handshakes and after an
        #: ``HTTP_1_1_REQUIRED`` reset.
        self.force_http1 = False
        #: The address of the peer the response came from.
        self.remote_address: RemoteAddress | None = None
        #: The server's TLS certificate (https only), on new and reused connections.
        self.tls_peer_certificate: TlsCertificate | None = None
        #: Why the server's certificate failed validation: set when a handler
        #: of ``accept_certificate`` accepted it, or on the :class:`TlsError`.
        self.tls_peer_certificate_errors = TlsCertificateFlags.NO_FLAGS
        #: The negotiated TLS version, e.g. ``"TLSv1.3"``.
        self.tls_protocol_version: str | None = None
        #: The negotiated cipher suite.
        self.tls_ciphersuite_name: str | None = None
        #: Timings and sizes, when ``COLLECT_METRICS`` is set.
        self.metrics: MessageMetrics | None = None
        #: The response body when the session read it for you: by the request
        #: helpers (:meth:`anysoup.Session.request`, ``get``, …), or the answer
        #: to a WebSocket handshake that was not 101. None otherwise (bodies
        #: are streams: see :meth:`anysoup.Session.send`).
        self.response_body: bytes | None = None
        #: Where the answer came from as far as the :class:`~anysoup.Cache` is
        #: concerned: :attr:`~anysoup.CacheResult.NONE` without a cache, else a
        #: miss, a (stale) hit or a revalidated entry (set with the final headers).
        self.cache_result = CacheResult.NONE
        # A stage sends the message again because its answer was not good
        # (Retry): the cache must not answer again from its store unvalidated.
        self._reload = False
        # The cache sent this exchange's conditional request: a 304 to it is the
        # cache's to turn into the stored answer, which brings its own
        # got_headers, got_body and finished (the core stays quiet about the 304).
        self._validating = False
        self._body = RequestBody.make(body) if body is not None else None
        self._disabled: set[type] | None = None
        self._signals: dict[str, Signal] | None = None
        self._tls_client_certificate: TlsCertificate | None = None
        # Set by HSTS for a host with a policy: no accept_certificate override.
        self._tls_strict = False
        # The 101 answer's connection, until websocket_connect takes it (a _core._Switched).
        self._switched: Any = None
        self._queued = False
        self._options_ping = False
        self._connection_id = 0
        self._restarts = 0
        # The auth manager's bookkeeping for this message (its auths, what it set).
        self._auth_state: object = None
        # Set by connection-based auth (NTLM, Negotiate): connections made for
        # this credential serve only messages that present the same one.
        self._connection_owner: Hashable | None = None
        # The proxy of the latest exchange (None: direct), set by the core: a
        # 407 came from it, and the Proxy-Authorization answering it is its alone.
        self._proxy: ProxyURI | None = None
        # Why the core closed the latest exchange's connection that could have
        # been kept (bytes past the response...), for the Logger; or None.
        self._connection_note: str | None = None
        # RFC 9842: the dictionary offered for this hop (set by the cache, or by
        # the ContentDecoder from request_compression_dictionary), and the
        # request headers the ContentDecoder set to offer it, taken back on a re-send.
        self._compression_dictionary: CompressionDictionary | None = None
        self._dictionary_offer: tuple[tuple[str, str], ...] | None = None

    # -- constructors (libsoup's names) --------------------------------------

    @classmethod
    def new(cls, method: str, uri_string: str) -> Message:
        """A message for ``method`` and ``uri_string`` (``soup_message_new``)."""
        return cls(method, uri_string)

    @classmethod
    def new_from_uri(cls, method: str, uri: URL | str) -> Message:
        """A message for ``method`` and a :class:`yarl.URL`."""
        return cls(method, uri)

    @classmethod
    def new_from_encoded_form(cls, method: str, uri: str | URL, encoded_form: str) -> Message:
        """A form submission: ``GET``/``HEAD`` put the form in the query, others in the body."""
        method = normal_method(method)
        if method in ("GET", "HEAD"):
            url = parse_uri(uri).with_query(None)  # the form replaces any query (libsoup)
            if encoded_form:
                # The form is already encoded: keep it as it is (yarl's with_query
                # would encode its "%" a second time). Anything not allowed in a
                # query is still percent-encoded by yarl.
                fragment = f"#{url.raw_fragment}" if url.raw_fragment else ""
                raw = f"{url.with_query(None).with_fragment(None)}?{encoded_form}{fragment}"
                url = URL(raw, encoded=_QUERY_RE.fullmatch(encoded_form) is not None)
            return cls(method, url)
        msg = cls(method, uri)
        msg.set_request_body_from_bytes(
            "application/x-www-form-urlencoded", encoded_form.encode("ascii")
        )
        return msg

    @classmethod
    def new_from_form(cls, method: str, uri: str | URL, form: Mapping[str, str]) -> Message:
        """Like :meth:`new_from_encoded_form` with the form given as a mapping."""
        return cls.new_from_encoded_form(method, uri, urlencode(form))

    @classmethod
    def new_from_multipart(cls, uri: str | URL, multipart: Multipart) -> Message:
        """A ``POST`` of ``multipart``'s encoded body (``soup_message_new_from_multipart``).

        The body is encoded once, as bytes, so it can be sent again after a
        redirect or an authentication challenge; ``Content-Type`` carries the
        boundary. Later changes to ``multipart`` do not reach the message.
        """
        msg = cls("POST", uri)
        msg.set_request_body_from_bytes(None, multipart.to_message(msg.request_headers))
        return msg

    @classmethod
    def new_options_ping(cls, base_uri: str | URL) -> Message:
        """An ``OPTIONS *`` request to ``base_uri``'s server (a cheap liveness check)."""
        msg = cls("OPTIONS", base_uri)
        msg._options_ping = True
        return msg

    @property
    def is_options_ping(self) -> bool:
        """Whether the message is an ``OPTIONS *`` ping (libsoup's ``is-options-ping``).

        The request target is then ``*`` and the URI's path and query are not
        sent. Setting it to True also sets :attr:`method` to ``OPTIONS``
        (libsoup); setting it back to False leaves the method alone.
        """
        return self._options_ping

    @is_options_ping.setter
    def is_options_ping(self, value: bool) -> None:
        self._options_ping = bool(value)
        if value:
            self.method = "OPTIONS"

    def get_is_options_ping(self) -> bool:
        """Alias of :attr:`is_options_ping`."""
        return self._options_ping

    def set_is_options_ping(self, value: bool) -> None:
        """Set :attr:`is_options_ping`."""
        self.is_options_ping = value

    # -- request body --------------------------------------------------------

    def set_request_body(
        self,
        content_type: str | None,
        body: RequestBodySource | None,
        length: int | None = None,
    ) -> None:
        """Set the request body and, if given, its ``Content-Type``.

        Args:
            content_type: The ``Content-Type`` header, or None to leave it alone.
            body: Bytes, an (async) iterable of bytes or an anyio byte stream;
                None removes the body.
            length: The body's length if known and not bytes; it is then sent
                with ``Content-Length`` instead of chunked.
        """
        if content_type is not None:
            self.request_headers.replace("Content-Type", content_type)
        self._body = RequestBody.make(body, length) if body is not None else None

    def set_request_body_from_bytes(self, content_type: str | None, data: bytes | None) -> None:
        """Set the request body from bytes (None removes it)."""
        self.set_request_body(content_type, data)

    @property
    def request_body(self) -> RequestBody | None:
        """The request body, or None."""
        return self._body

    # -- features ------------------------------------------------------------

    def disable_feature(self, feature_type: type) -> None:
        """Don't use features of ``feature_type`` (or its subclasses) for this message."""
        if self._disabled is None:
            self._disabled = set()
        self._disabled.add(feature_type)

    def is_feature_disabled(self, feature_type: type) -> bool:
        """Whether features of ``feature_type`` are disabled for this message."""
        disabled = self._disabled
        if not disabled:
            return False
        return any(issubclass(feature_type, d) for d in disabled)

    # -- flags ---------------------------------------------------------------

    def add_flags(self, flags: MessageFlags) -> None:
        """Set ``flags`` in addition to those already set."""
        self.flags |= flags

    def remove_flags(self, flags: MessageFlags) -> None:
        """Clear ``flags``."""
        self.flags &= ~flags

    def query_flags(self, flags: MessageFlags) -> bool:
        """Whether all of ``flags`` are set."""
        return (self.flags & flags) == flags

    def get_flags(self) -> MessageFlags:
        """The message's flags (alias of :attr:`flags`)."""
        return self.flags

    def set_flags(self, flags: MessageFlags) -> None:
        """Replace the message's flags."""
        self.flags = flags

    # -- libsoup getters and setters ----------------------------------------

    def get_method(self) -> str:
        """Alias of :attr:`method`."""
        return self.method

    def set_method(self, method: str) -> None:
        """Set :attr:`method` (checked and upper-cased as the constructor's).

        Raises:
            ValueError: ``method`` is not an HTTP method.
        """
        self.method = normal_method(method)

    def get_uri(self) -> URL:
        """Alias of :attr:`uri`."""
        return self.uri

    def set_uri(self, uri: str | URL) -> None:
        """Set :attr:`uri` (validated like the constructor's)."""
        self.uri = parse_uri(uri)

    def get_status(self) -> int:
        """Alias of :attr:`status`."""
        return self.status

    def get_reason_phrase(self) -> str:
        """Alias of :attr:`reason_phrase`."""
        return self.reason_phrase

    def get_http_version(self) -> HTTPVersion:
        """Alias of :attr:`http_version`."""
        return self.http_version

    def get_priority(self) -> MessagePriority:
        """Alias of :attr:`priority`."""
        return self.priority

    def set_priority(self, priority: MessagePriority) -> None:
        """Set :attr:`priority`."""
        self.priority = priority

    def get_request_headers(self) -> MessageHeaders:
        """Alias of :attr:`request_headers`."""
        return self.request_headers

    def get_response_headers(self) -> MessageHeaders:
        """Alias of :attr:`response_headers`."""
        return self.response_headers

    def get_remote_address(self) -> RemoteAddress | None:
        """Alias of :attr:`remote_address`."""
        return self.remote_address

    def get_metrics(self) -> MessageMetrics | None:
        """Alias of :attr:`metrics`."""
        return self.metrics

    def get_first_party(self) -> URL | None:
        """Alias of :attr:`first_party`."""
        return self.first_party

    def set_first_party(self, uri: str | URL | None) -> None:
        """Set :attr:`first_party`."""
        self.first_party = parse_uri(uri, what="first_party") if uri is not None else None

    def get_site_for_cookies(self) -> URL | None:
        """Alias of :attr:`site_for_cookies`."""
        return self.site_for_cookies

    def set_site_for_cookies(self, uri: str | URL | None) -> None:
        """Set :attr:`site_for_cookies`."""
        self.site_for_cookies = (
            parse_uri(uri, what="site_for_cookies") if uri is not None else None
        )

    @property
    def tls_client_certificate(self) -> TlsCertificate | None:
        """The client certificate set for this message, if any."""
        return self._tls_client_certificate

    def set_tls_client_certificate(self, certificate: TlsCertificate | None) -> None:
        """Present ``certificate`` (with its private key) to servers that ask for one.

        It takes precedence over the session's ``tls_interaction``. Connections
        made with it serve only messages that present the same certificate.

        Raises:
            ValueError: ``certificate`` has no private key.
        """
        if certificate is not None and not certificate.has_private_key:
            raise ValueError("tls client certificate: the certificate needs its private key")
        self._tls_client_certificate = certificate

    def get_tls_peer_certificate(self) -> TlsCertificate | None:
        """Alias of :attr:`tls_peer_certificate`."""
        return self.tls_peer_certificate

    def get_tls_peer_certificate_errors(self) -> TlsCertificateFlags:
        """Alias of :attr:`tls_peer_certificate_errors`."""
        return self.tls_peer_certificate_errors

    def get_tls_protocol_version(self) -> str | None:
        """Alias of :attr:`tls_protocol_version`."""
        return self.tls_protocol_version

    def get_tls_ciphersuite_name(self) -> str | None:
        """Alias of :attr:`tls_ciphersuite_name`."""
        return self.tls_ciphersuite_name

    def get_is_top_level_navigation(self) -> bool:
        """Alias of :attr:`is_top_level_navigation`."""
        return self.is_top_level_navigation

    def set_is_top_level_navigation(self, value: bool) -> None:
        """Set :attr:`is_top_level_navigation`."""
        self.is_top_level_navigation = value

    @property
    def connection_id(self) -> int:
        """The id of the connection of the latest exchange; 0 before one (libsoup's).

        Ids count up from 1 and are unique within the process, so two
        messages with the same id went over the same connection (the
        ``connection`` argument of ``network_event`` carries it as ``id``).
        It changes when a re-send (redirect, auth) takes another connection.
        """
        return self._connection_id

    def get_connection_id(self) -> int:
        """Alias of :attr:`connection_id`."""
        return self._connection_id

    def is_keepalive(self) -> bool:
        """Whether the response lets its connection carry further requests.

        libsoup's rule, from the headers: an HTTP/1.1 exchange is persistent
        unless either side sent ``Connection: close``; an HTTP/1.0 response
        only with ``Connection: keep-alive``; a body delimited by the end of
        the connection never is; a 200 to ``CONNECT`` always is. HTTP/2
        gives False, as in libsoup: its connection is shared by streams and
        this question does not apply.
        """
        if self.http_version is HTTPVersion.HTTP_2_0:
            return False
        if self.status == 200 and self.method == "CONNECT":
            return True
        response = self.response_headers
        if _ends_at_eof(self):
            return False
        if self.http_version is HTTPVersion.HTTP_1_0:
            return response.header_contains("Connection", "keep-alive")
        return not (
            self.request_headers.header_contains("Connection", "close")
            or response.header_contains("Connection", "close")
        )

    # -- handlers that filter (libsoup's add_header_handler, add_status_code_handler)

    def add_header_handler(self, signal: str, header: str, callback: Handler) -> int:
        """Connect ``callback`` to ``signal``, called only when the response has ``header``.

        The handler gets the signal's arguments, as a plain ``connect`` gives
        them; it may be a coroutine function. Disconnect it with the
        signal's ``disconnect`` and the returned id.

        Args:
            signal: A message signal's name, such as ``"got_headers"`` (libsoup's
                ``"got-headers"`` works too).
            header: The response header that must be present.
            callback: The handler.

        Raises:
            ValueError: The message has no such signal.
        """

        def filtered(msg: Message, *args: Any) -> Any:
            if header in msg.response_headers:
                return callback(msg, *args)
            return None

        return self._signal(signal).connect(filtered)

    def add_status_code_handler(self, signal: str, status_code: int, callback: Handler) -> int:
        """Connect ``callback`` to ``signal``, called only when :attr:`status` is ``status_code``.

        As :meth:`add_header_handler`; the signal must come after the status
        is known (``got_informational``, ``got_headers``, ``got_body``,
        ``finished``...), not a ``wrote_*`` one.

        Raises:
            ValueError: The message has no such signal.
        """

        def filtered(msg: Message, *args: Any) -> Any:
            if msg.status == status_code:
                return callback(msg, *args)
            return None

        return self._signal(signal).connect(filtered)

    def _signal(self, name: str) -> Signal:
        descriptor = getattr(type(self), name.replace("-", "_"), None)
        if isinstance(descriptor, SignalDescriptor):
            signal: Signal = descriptor.__get__(self, type(self))
            return signal
        raise ValueError(f"signal {name!r}: a Message has no such signal")

    def get_force_http1(self) -> bool:
        """Alias of :attr:`force_http1`."""
        return self.force_http1

    def set_force_http1(self, value: bool) -> None:
        """Set :attr:`force_http1`."""
        self.force_http1 = value

    # -- the response read into memory (the request helpers) -----------------------

    @property
    def text(self) -> str:
        """:attr:`response_body` as text; bytes that don't decode become U+FFFD.

        The encoding is the body's byte order mark, else the ``charset`` of
        ``Content-Type``, else UTF-8 (:doc:`/requests`).

        Raises:
            RuntimeError: The body was not read into :attr:`response_body`
                (send with :meth:`anysoup.Session.request` or ``get``, …).
        """
        return response_text(self)

    def json(self, **kwargs: Any) -> Any:
        """:attr:`response_body` parsed as JSON; ``kwargs`` go to ``json.loads``.

        Raises:
            RuntimeError: The body was not read into :attr:`response_body`.
            ValueError: The body is not JSON (``json.JSONDecodeError``).
        """
        return response_json(self, **kwargs)

    def raise_for_status(self) -> Message:
        """Raise :class:`anysoup.HTTPStatusError` for a 4xx or 5xx status; else return self.

        ``msg = (await session.get(url)).raise_for_status()``. Other statuses
        (1xx, 2xx, 3xx: a redirect handed back) are not errors.

        Raises:
            anysoup.HTTPStatusError: The status is 400 to 599; ``.message`` is
                this message.
            RuntimeError: There is no response yet.
        """
        error = status_error(self)
        if error is not None:
            raise error
        return self

    def __repr__(self) -> str:
        status = f" {self.status} {self.reason_phrase}".rstrip() if self.status else ""
        return f"<anysoup.Message {self.method} {str(self.uri)!r}{status}>"


def _ends_at_eof(msg: Message) -> bool:
    """Whether ``msg``'s response body is delimited by the end of the connection."""
    if msg.method == "HEAD" or msg.status < 200 or msg.status in (204, 304):
        return False
    headers = msg.response_headers
    if headers.header_contains("Transfer-Encoding", "chunked"):
        return False
    return headers.get_content_length() is None
