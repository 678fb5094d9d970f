"""Certificates: the peer's (what a message saw) and the client's (what we show).

:class:`TlsCertificate` is GLib's ``GTlsCertificate`` for Python: it holds a
certificate in DER and PEM, optionally with its chain and private key, and
parses the X.509 fields with ``cryptography`` only when one is read (a peer
certificate on every https connection costs nothing until asked about).
:class:`TlsInteraction` hands out client certificates.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import ssl
from typing import TYPE_CHECKING, Any

from .enums import TlsCertificateFlags
from .tls_password import decrypt_key, is_encrypted_key

if TYPE_CHECKING:
    import datetime

    from .message import Message
    from .tls_password import TlsPassword

__all__ = ["TlsCertificate", "TlsInteraction", "identity_flags"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL | re.ASCII
)


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: PEM data must be ASCII") from None
    return data


class TlsCertificate:
    """An X.509 certificate, perhaps with its private key (``GTlsCertificate``).

    Make one with :meth:`from_pem` or :meth:`from_file` (a client certificate
    needs its key); a message's ``tls_peer_certificate`` is one. Two objects
    for the same certificate compare equal, which makes pinning a comparison:
    ``cert == pinned``.
    """

    __slots__ = ("_chain_pem", "_der", "_identity", "_key_pem", "_locked_key", "_parsed")

    def __init__(self, der: bytes, *, chain_pem: str = "", key_pem: str | None = None) -> None:
        self._der = der
        self._chain_pem = chain_pem  # the certificates after this one (PEM)
        self._key_pem = key_pem
        # An encrypted key waiting for its password (then _key_pem is None).
        self._locked_key: str | None = None
        self._parsed: Any = None
        #: What tells client identities apart in a pool key: certificate and key.
        self._identity = (
            hashlib.sha256(der + b"\0" + key_pem.encode("ascii")).digest() if key_pem else der
        )

    # -- constructors ------------------------------------------------------------

    @classmethod
    def from_pem(
        cls,
        cert: str | bytes,
        key: str | bytes | None = None,
        *,
        password: str | bytes | None = None,
    ) -> TlsCertificate:
        """A certificate from PEM text: the first certificate in ``cert`` is the subject.

        Further certificates in ``cert`` are its chain (intermediates sent to
        the server along with it). The private key is ``key``, or else a
        ``PRIVATE KEY`` block in ``cert`` itself, as GLib reads it.

        An encrypted key is decrypted with ``password``; without one the
        certificate is locked (:attr:`needs_password`) until :meth:`unlock`,
        or until the session asks for the password when a request first
        needs it (``request_certificate_password``, see :doc:`tls`).

        Raises:
            ValueError: No certificate, a malformed one, a key that does not
                belong to the certificate, or a wrong ``password``.
        """
        text = _text(cert, "certificate")
        certs: list[str] = []
        keys: list[str] = []
        for block in _PEM_BLOCK.finditer(text):
            label = block.group(1)
            if label == "CERTIFICATE":
                certs.append(block.group(0))
            elif label.endswith("PRIVATE KEY"):
                keys.append(block.group(0))
        if not certs:
            raise ValueError("certificate: no PEM certificate found")
        if key is not None:
            keys = [m.group(0) for m in _PEM_BLOCK.finditer(_text(key, "private key"))]
            keys = [k for k in keys if "PRIVATE KEY-----" in k.splitlines()[0]]
            if not keys:
                raise ValueError("private key: no PEM private key found")
        try:
            der = ssl.PEM_cert_to_DER_cert(certs[0])
        except ValueError as exc:
            raise ValueError(f"certificate: {exc}") from None
        self = cls(der, chain_pem="\n".join(certs[1:]), key_pem=keys[0] if keys else None)
        self._x509()  # malformed DER fails here, not later in a handshake
        if self._key_pem is not None and is_encrypted_key(self._key_pem):
            self._locked_key, self._key_pem = self._key_pem, None
            if password is not None:
                self.unlock(password)
        elif self._key_pem is not None:
            # Loading proves that the key is readable and belongs to the certificate.
            self.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        return self

    @classmethod
    def from_file(
        cls,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str] | None = None,
        *,
        password: str | bytes | None = None,
    ) -> TlsCertificate:
        """A certificate from a PEM file, with its key from ``key_file`` or the same file.

        ``password`` decrypts an encrypted key, as in :meth:`from_pem`.

        Raises:
            ValueError: A file can't be read, or :meth:`from_pem` rejects it.
        """

        def read(path: str | os.PathLike[str]) -> bytes:
            try:
                with open(path, "rb") as file:
                    return file.read()
            except OSError as exc:
                raise ValueError(f"certificate: can't read {os.fspath(path)!r}: {exc}") from None

        key = read(key_file) if key_file is not None else None
        return cls.from_pem(read(cert_file), key, password=password)

    # -- the certificate's fields ------------------------------------------------

    def _x509(self) -> Any:
        if self._parsed is None:
            from cryptography import x509

            try:
                self._parsed = x509.load_der_x509_certificate(self._der)
            except ValueError as exc:
                raise ValueError(f"certificate: malformed X.509 data ({exc})") from None
        return self._parsed

    def _names(self, kind: str) -> list[Any]:
        from cryptography import x509

        try:
            extension = self._x509().extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except x509.ExtensionNotFound:
            return []
        general_name = x509.DNSName if kind == "dns" else x509.IPAddress
        values: list[Any] = extension.value.get_values_for_type(general_name)
        return values

    @property
    def der(self) -> bytes:
        """The certificate in DER."""
        return self._der

    @property
    def pem(self) -> str:
        """The certificate in PEM (without chain or key)."""
        return ssl.DER_cert_to_PEM_cert(self._der)

    @property
    def subject_name(self) -> str:
        """The subject's distinguished name, RFC 4514 style (``CN=example.org,O=…``)."""
        return str(self._x509().subject.rfc4514_string())

    @property
    def issuer_name(self) -> str:
        """The issuer's distinguished name, RFC 4514 style."""
        return str(self._x509().issuer.rfc4514_string())

    @property
    def not_valid_before(self) -> datetime.datetime:
        """When the certificate becomes valid (aware, UTC)."""
        value: datetime.datetime = self._x509().not_valid_before_utc
        return value

    @property
    def not_valid_after(self) -> datetime.datetime:
        """When the certificate expires (aware, UTC)."""
        value: datetime.datetime = self._x509().not_valid_after_utc
        return value

    @property
    def dns_names(self) -> list[str]:
        """The DNS names in the subject alternative names."""
        return [str(name) for name in self._names("dns")]

    @property
    def ip_addresses(self) -> list[IPAddress]:
        """The IP addresses in the subject alternative names."""
        return [address for address in self._names("ip") if not isinstance(address, tuple)]

    @property
    def has_private_key(self) -> bool:
        """Whether the certificate came with its private key (a client certificate)."""
        return self._key_pem is not None or self._locked_key is not None

    @property
    def needs_password(self) -> bool:
        """Whether its private key is encrypted and still locked (see :meth:`unlock`)."""
        return self._locked_key is not None

    def unlock(self, password: str | bytes) -> None:
        """Decrypt the encrypted private key with ``password``; it stays unlocked.

        Nothing happens if the key is not locked.

        Raises:
            ValueError: The password is wrong, or the key does not belong to
                the certificate.
        """
        locked = self._locked_key
        if locked is None:
            return
        secret = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        try:
            key_pem = decrypt_key(locked, secret)
        except ValueError as exc:
            raise ValueError(f"certificate {self._short()}: {exc}") from None
        self._key_pem, self._locked_key = key_pem, None
        try:
            self.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # the key is its own
        except ValueError:
            self._key_pem, self._locked_key = None, locked
            raise

    def get_subject_name(self) -> str:
        """Alias of :attr:`subject_name` (libsoup's accessor)."""
        return self.subject_name

    def get_issuer_name(self) -> str:
        """Alias of :attr:`issuer_name`."""
        return self.issuer_name

    def get_not_valid_before(self) -> datetime.datetime:
        """Alias of :attr:`not_valid_before`."""
        return self.not_valid_before

    def get_not_valid_after(self) -> datetime.datetime:
        """Alias of :attr:`not_valid_after`."""
        return self.not_valid_after

    def get_dns_names(self) -> list[str]:
        """Alias of :attr:`dns_names`."""
        return self.dns_names

    def get_ip_addresses(self) -> list[IPAddress]:
        """Alias of :attr:`ip_addresses`."""
        return self.ip_addresses

    def is_same(self, other: TlsCertificate) -> bool:
        """Whether ``other`` is the same certificate (``g_tls_certificate_is_same``)."""
        return self._der == other._der

    # -- use as a client certificate -----------------------------------------------

    def load_into(self, context: ssl.SSLContext) -> None:
        """Make ``context`` present this certificate, its chain and key.

        :mod:`ssl` reads certificate chains from files only: the PEM goes to a
        private temporary file (mode 0600) for the moment of loading.

        Raises:
            ValueError: The certificate has no private key, or OpenSSL rejects them.
        """
        if self._locked_key is not None:
            raise ValueError(
                f"certificate {self._short()}: its private key is encrypted; unlock() it first"
            )
        if self._key_pem is None:
            raise ValueError(
                f"certificate {self._short()}: a client certificate needs its private key"
            )
        text = "\n".join(p for p in (self.pem, self._chain_pem, self._key_pem) if p) + "\n"

        def no_pass_phrase() -> bytes:
            # Without a callback OpenSSL would prompt on the terminal for one.
            raise ValueError(
                f"certificate {self._short()}: the private key is encrypted (give its "
                "password to TlsCertificate, or answer request_certificate_password)"
            )

        import tempfile  # only for client certificates: not paid by every program

        fd, path = tempfile.mkstemp(prefix="anysoup-", suffix=".pem")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(text)
            context.load_cert_chain(path, password=no_pass_phrase)
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            raise ValueError(
                f"certificate {self._short()}: can't use it with its key: {reason}"
            ) from None
        finally:
            os.unlink(path)

    # -- object protocol -----------------------------------------------------------

    def _short(self) -> str:
        try:
            return repr(self.subject_name)
        except ValueError:
            return "(unreadable)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TlsCertificate):
            return NotImplemented
        return self._der == other._der

    def __hash__(self) -> int:
        return hash(self._der)

    def __repr__(self) -> str:
        return f"<anysoup.TlsCertificate {self._short()}>"


def identity_flags(cert: TlsCertificate, host: str) -> TlsCertificateFlags:
    """The problems of ``cert`` for ``host`` that don't need a trust store.

    The validity period and the name (RFC 6125: DNS names with a wildcard only
    as the whole leftmost label; IP addresses only against IP entries). OpenSSL
    stops at the first problem it finds; these complete the picture when a
    relaxed connection reports every problem to ``accept_certificate``.
    """
    import datetime  # here: only relaxed connections and reports need it

    flags = TlsCertificateFlags.NO_FLAGS
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        if now < cert.not_valid_before:
            flags |= TlsCertificateFlags.NOT_ACTIVATED
        if now > cert.not_valid_after:
            flags |= TlsCertificateFlags.EXPIRED
        if not _matches(cert, host):
            flags |= TlsCertificateFlags.BAD_IDENTITY
    except ValueError:
        flags |= TlsCertificateFlags.GENERIC_ERROR
    return flags


def _matches(cert: TlsCertificate, host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return address in cert.ip_addresses
    wanted = host.rstrip(".").lower()
    for name in cert.dns_names:
        pattern = name.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            first, rest = wanted.split(".", 1)
            if first and rest == pattern[2:] and "." in rest:
                return True
    return False


class TlsInteraction:
    """Gives client certificates to TLS connections (GLib's ``GTlsInteraction``).

    ``Session(tls_interaction=TlsInteraction(cert))`` offers ``cert`` on every
    https connection; TLS sends it only to servers that ask. Subclass it and
    override :meth:`request_certificate` to choose per message.

    Args:
        certificate: The client certificate, with its private key.
    """

    def __init__(self, certificate: TlsCertificate | None = None) -> None:
        if certificate is not None and not certificate.has_private_key:
            raise ValueError("tls_interaction: a client certificate needs its private key")
        self._certificate = certificate

    @property
    def certificate(self) -> TlsCertificate | None:
        """The certificate given to the constructor."""
        return self._certificate

    async def request_certificate(self, msg: Message) -> TlsCertificate | None:
        """The client certificate for ``msg``'s connection, or None for none.

        Called once for each https request, before a connection is chosen:
        connections made with a certificate serve only requests that chose
        the same one. The default returns :attr:`certificate`.
        """
        return self._certificate

    async def ask_password(self, password: TlsPassword) -> bool:
        """Fill in ``password`` for an encrypted client key; return whether it was given.

        GLib's ``g_tls_interaction_ask_password``. Asked when a request needs
        a certificate whose key is locked, before the message's
        ``request_certificate_password`` signal; again with
        ``TlsPasswordFlags.RETRY`` after a wrong one. The default returns
        False (not handled).
        """
        return False

    def __repr__(self) -> str:
        return f"<anysoup.TlsInteraction {self._certificate!r}>"
