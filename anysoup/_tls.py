"""TLS: trust databases, the client SSL contexts made from them, TLS errors.

anysoup makes its own :class:`ssl.SSLContext` objects, once per database,
and never changes one after it was first used: contexts a caller hands us
are never touched (httpcore set ALPN on the caller's context).
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import ClassVar

from ._enums import TlsCertificateFlags
from ._exceptions import TlsError

__all__ = ["TlsDatabase", "tls_error"]

_ALPN = ["http/1.1"]


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN)
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

    __slots__ = ("_context", "_description")

    def __init__(self, context: ssl.SSLContext, description: str) -> None:
        self._context = context
        self._description = description

    @classmethod
    def system(cls) -> TlsDatabase:
        """The system's trust store; one shared instance per process."""
        with cls._lock:
            if cls._system is None:
                context = _client_context()
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
                cls._system = cls(context, "system")
            return cls._system

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TlsDatabase:
        """Trust the PEM certificates in the file at ``path``, and nothing else.

        Raises:
            ValueError: The file can't be read or holds no certificate.
        """
        context = _client_context()
        try:
            context.load_verify_locations(cafile=os.fspath(path))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"tls database: can't load {os.fspath(path)!r}: {exc}") from None
        return cls(context, f"file {os.fspath(path)!r}")

    @classmethod
    def from_pem(cls, data: str | bytes) -> TlsDatabase:
        """Trust the PEM certificates in ``data``, and nothing else.

        Raises:
            ValueError: ``data`` holds no valid certificate.
        """
        text = data.decode("ascii") if isinstance(data, bytes) else data
        context = _client_context()
        try:
            context.load_verify_locations(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"tls database: no usable PEM certificate ({exc})") from None
        return cls(context, "PEM data")

    @classmethod
    def _empty(cls) -> TlsDatabase:
        """A database with no authority: the ``tls_database=None`` case."""
        return cls(_client_context(), "none (every certificate fails)")

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The client context made from this database (don't modify it)."""
        return self._context

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
    62: TlsCertificateFlags.BAD_IDENTITY,  # hostname mismatch
    64: TlsCertificateFlags.BAD_IDENTITY,  # IP address mismatch
}


def tls_error(exc: BaseException, label: str) -> TlsError:
    """Turn an :mod:`ssl` failure of the handshake with ``label`` into a TlsError."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        flags = _VERIFY_FLAGS.get(exc.verify_code, TlsCertificateFlags.GENERIC_ERROR)
        reason = str(exc.verify_message or exc.reason or exc)
        return TlsError(
            f"TLS handshake with {label}: certificate rejected: {reason}", errors=flags
        )
    code = getattr(exc, "reason", None)
    if code == "WRONG_VERSION_NUMBER":
        cause = "the server did not answer with TLS (plain HTTP?)"
    elif isinstance(code, str) and code.isupper():
        cause = code.lower().replace("_", " ")  # an OpenSSL reason code
    else:
        cause = str(exc) or type(exc).__name__
    return TlsError(f"TLS handshake with {label}: {cause}")
