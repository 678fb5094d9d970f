"""TLS: trust databases, the client SSL contexts made from them, TLS errors.

anysoup makes its own :class:`ssl.SSLContext` objects, once per database,
and never changes one after it was first used: contexts a caller hands us
are never touched (httpcore set ALPN on the caller's context).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import anyio

from .._model.enums import TlsCertificateFlags
from .._model.exceptions import TlsError

if TYPE_CHECKING:
    from .._model.certificate import TlsCertificate

__all__ = ["TlsDatabase", "alert_error", "describe_flags", "tls_error"]

#: What a connection offers in ALPN (RFC 7301), by whether it may speak HTTP/2.
_ALPN = {True: ["h2", "http/1.1"], False: ["http/1.1"]}


def _client_context(http2: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN[http2])
    return context


class TlsDatabase:
    """The certificate authorities that validate peers (GLib's ``GTlsDatabase``).

    Make one with :meth:`system`, :meth:`from_file` or :meth:`from_pem`. An
    explicit database trusts only the authorities it holds, never the
    system's. ``Session(tls_database=None)`` means no database: every
    certificate fails validation (libsoup's rule).
    """

    _system: ClassVar[TlsDatabase | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    __slots__ = ("_configure", "_contexts", "_description")

    def __init__(
        self, configure: Callable[[ssl.SSLContext], None] | ssl.SSLContext, description: str
    ) -> None:
        # One context per (client identity, verifying?, offering HTTP/2?), made on
        # first use and never changed after: a context in use is shared by connections.
        self._contexts: dict[tuple[bytes | None, bool, bool], ssl.SSLContext] = {}
        if isinstance(configure, ssl.SSLContext):
            self._contexts[None, True, True] = self._contexts[None, True, False] = configure
            self._configure: Callable[[ssl.SSLContext], None] | None = None
        else:
            self._configure = configure
        self._description = description
        self.context_for(None)  # a bad file or PEM fails now, not at the first request

    @classmethod
    def system(cls) -> TlsDatabase:
        """The system's trust store; one shared instance per process."""
        with cls._lock:
            if cls._system is None:
                cls._system = cls(
                    lambda c: c.load_default_certs(ssl.Purpose.SERVER_AUTH), "system"
                )
            return cls._system

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TlsDatabase:
        """Trust the PEM certificates in the file at ``path``, and nothing else.

        Raises:
            ValueError: The file can't be read or holds no certificate.
        """
        name = os.fspath(path)
        try:
            with open(name, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise ValueError(f"tls database: can't load {name!r}: {exc}") from None
        return cls._from_text(data.decode("ascii", "replace"), f"file {name!r}")

    @classmethod
    def from_pem(cls, data: str | bytes) -> TlsDatabase:
        """Trust the PEM certificates in ``data``, and nothing else.

        Raises:
            ValueError: ``data`` holds no valid certificate.
        """
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
        return cls._from_text(text, "PEM data")

    @classmethod
    def _from_text(cls, text: str, description: str) -> TlsDatabase:
        def configure(context: ssl.SSLContext) -> None:
            context.load_verify_locations(cadata=text)

        try:
            return cls(configure, description)
        except (ssl.SSLError, ValueError) as exc:
            text = f"tls database: {description}: no usable PEM certificate ({exc})"
            raise ValueError(text) from None

    @classmethod
    def from_ssl_context(cls, context: ssl.SSLContext) -> TlsDatabase:
        """Validate with a client :class:`ssl.SSLContext` you made, used as it is.

        anysoup never changes it (no ALPN, no option). It can't be combined
        with client certificates: load yours into the context instead.
        """
        return cls(context, "the caller's SSL context")

    @classmethod
    def _empty(cls) -> TlsDatabase:
        """A database with no authority: the ``tls_database=None`` case."""
        return cls(lambda context: None, "none (every certificate fails)")

    def context_for(
        self, identity: TlsCertificate | None, *, verify: bool = True, http2: bool = False
    ) -> ssl.SSLContext:
        """The client context that presents ``identity`` (cached).

        ``verify=False`` gives the context of a relaxed connection: it
        completes the handshake with any certificate, for a message whose
        ``accept_certificate`` handler will judge the problems found first.
        ``http2`` offers ``h2`` in ALPN before ``http/1.1``. A caller's own
        context (:meth:`from_ssl_context`) offers what the caller set.
        """
        cache_key = (identity._identity if identity is not None else None, verify, http2)
        context = self._contexts.get(cache_key)
        if context is None:
            if verify and self._configure is None:
                raise ValueError(
                    "tls database: a client certificate can't be added to the caller's "
                    "SSL context; load it into the context instead"
                )
            context = _client_context(http2)
            if verify:
                assert self._configure is not None
                self._configure(context)
            else:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if identity is not None:
                identity.load_into(context)
            self._contexts[cache_key] = context
        return context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The client context made from this database (don't modify it)."""
        return self.context_for(None)

    def __repr__(self) -> str:
        return f"<anysoup.TlsDatabase {self._description}>"


#: OpenSSL verify codes (``X509_V_ERR_*``) and what they mean for the caller.
_VERIFY_FLAGS = {
    2: TlsCertificateFlags.UNKNOWN_CA,  # unable to get issuer certificate
    9: TlsCertificateFlags.NOT_ACTIVATED,  # certificate is not yet valid
    10: TlsCertificateFlags.EXPIRED,  # certificate has expired
    18: TlsCertificateFlags.UNKNOWN_CA,  # self-signed certificate
    19: TlsCertificateFlags.UNKNOWN_CA,  # self-signed certificate in chain
    20: TlsCertificateFlags.UNKNOWN_CA,  # unable to get local issuer certificate
    21: TlsCertificateFlags.UNKNOWN_CA,  # unable to verify the first certificate
    23: TlsCertificateFlags.REVOKED,  # certificate revoked
    24: TlsCertificateFlags.UNKNOWN_CA,  # invalid CA certificate
    62: TlsCertificateFlags.BAD_IDENTITY,  # hostname mismatch
    64: TlsCertificateFlags.BAD_IDENTITY,  # IP address mismatch
    66: TlsCertificateFlags.INSECURE,  # end-entity key too small
    67: TlsCertificateFlags.INSECURE,  # CA key too small
    68: TlsCertificateFlags.INSECURE,  # CA signature digest too weak
}

#: TLS alerts by which a server says it wants a (different) client certificate.
_CLIENT_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server rejected the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client certificate expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the server says the client certificate is revoked",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate's issuer",
    "TLSV1_ALERT_ACCESS_DENIED": "the server denied access to the client certificate",
}


def describe_flags(errors: TlsCertificateFlags) -> str:
    """``UNKNOWN_CA|EXPIRED`` as words: "unknown ca, expired"."""
    names = [f.name or "" for f in TlsCertificateFlags if f and f in errors]
    return ", ".join(names).lower().replace("_", " ")


def tls_error(exc: BaseException, label: str, *, identity: bool = False) -> TlsError:
    """Turn an :mod:`ssl` failure of the handshake with ``label`` into a TlsError.

    ``identity`` says whether a client certificate was offered; without one,
    a handshake failure alert probably means the server wants one (TLS 1.2
    servers answer a missing certificate that way).
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        flags = _VERIFY_FLAGS.get(exc.verify_code, TlsCertificateFlags.GENERIC_ERROR)
        reason = str(exc.verify_message or exc.reason or exc)
        return TlsError(
            f"TLS handshake with {label}: certificate rejected: {reason}", errors=flags
        )
    code = getattr(exc, "reason", None)
    wants_certificate = False
    if code == "WRONG_VERSION_NUMBER":
        cause = "the server did not answer with TLS (plain HTTP?)"
    elif code in _CLIENT_CERTIFICATE_ALERTS:
        cause = _CLIENT_CERTIFICATE_ALERTS[code]
        wants_certificate = not identity
    elif code == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not identity:
        cause = "the server refused the handshake (does it require a client certificate?)"
        wants_certificate = True
    elif isinstance(exc, (anyio.EndOfStream, ssl.SSLEOFError, ConnectionResetError)):
        # Some servers hang up instead of sending an alert.
        cause = "the server closed the connection during the handshake"
        if not identity:
            cause += " (does it require a client certificate?)"
            wants_certificate = True
    elif isinstance(code, str) and code.isupper():
        cause = code.lower().replace("_", " ")  # an OpenSSL reason code
    else:
        cause = str(exc) or type(exc).__name__
    error = TlsError(f"TLS handshake with {label}: {cause}")
    error._wants_client_certificate = wants_certificate
    return error


def alert_error(exc: BaseException, label: str, *, identity: bool) -> TlsError | None:
    """A TlsError for a TLS alert that ends a connection after the handshake, else None.

    With TLS 1.3 the client's handshake is over before the server checks the
    client certificate: its verdict arrives as an alert on the first read.
    """
    code = getattr(exc, "reason", None)
    if not isinstance(exc, ssl.SSLError) or not isinstance(code, str) or "ALERT" not in code:
        return None
    return tls_error(exc, label, identity=identity)
