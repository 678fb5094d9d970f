"""Passwords for encrypted client keys: :class:`TlsPassword` and the key decryption.

Theory of operation: a client certificate's private key may be encrypted
(a PEM ``ENCRYPTED PRIVATE KEY``, or a legacy one with ``Proc-Type:
4,ENCRYPTED``). :class:`~anysoup.TlsCertificate` keeps such a key *locked*
until a password unlocks it: given to its constructor, to
:meth:`~anysoup.TlsCertificate.unlock`, or asked for when a request first
needs the certificate (the session asks its ``tls_interaction``'s
``ask_password``, then the message's ``request_certificate_password``
signal, with a :class:`TlsPassword` to fill in; libsoup asks the same
questions, for PKCS#11 tokens). The decrypted key stays in memory only, for
the certificate's lifetime, as OpenSSL holds any loaded key.

Decryption is ``cryptography``'s; this module does no I/O.
"""

from __future__ import annotations

from .enums import TlsPasswordFlags

__all__ = ["TlsPassword", "decrypt_key", "is_encrypted_key"]


class TlsPassword:
    """A password being asked for (GLib's ``GTlsPassword``).

    Handlers of ``request_certificate_password`` and
    :meth:`TlsInteraction.ask_password <anysoup.TlsInteraction.ask_password>`
    read :attr:`description` and :attr:`flags`, call :meth:`set_value`, and
    return True.

    Args:
        description: What the password is for (the certificate's subject).
        flags: Whether this is a retry (:class:`anysoup.TlsPasswordFlags`).
    """

    __slots__ = ("_value", "description", "flags")

    def __init__(self, description: str = "", flags: TlsPasswordFlags = TlsPasswordFlags.NONE):
        #: What the password is for.
        self.description = description
        #: :class:`anysoup.TlsPasswordFlags` of this attempt.
        self.flags = flags
        self._value: bytes | None = None

    @property
    def value(self) -> bytes | None:
        """The password given (bytes; a str is stored UTF-8 encoded), or None."""
        return self._value

    @value.setter
    def value(self, value: bytes | str | None) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif value is not None and not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"a password is bytes or str, not {type(value).__name__}")
        self._value = bytes(value) if value is not None else None

    def get_value(self) -> bytes | None:
        """Alias of :attr:`value`."""
        return self._value

    def set_value(self, value: bytes | str) -> None:
        """Set :attr:`value`."""
        self.value = value

    def get_description(self) -> str:
        """Alias of :attr:`description`."""
        return self.description

    def get_flags(self) -> TlsPasswordFlags:
        """Alias of :attr:`flags`."""
        return self.flags

    def __repr__(self) -> str:
        given = "given" if self._value is not None else "empty"
        return f"<anysoup.TlsPassword {self.description!r} {self.flags} {given}>"


def is_encrypted_key(key_pem: str) -> bool:
    """Whether a PEM private key needs a password."""
    first = key_pem.lstrip().split("\n", 1)[0]
    return "ENCRYPTED PRIVATE KEY" in first or "Proc-Type: 4,ENCRYPTED" in key_pem


def decrypt_key(key_pem: str, password: bytes) -> str:
    """The key of ``key_pem`` decrypted with ``password``, as unencrypted PKCS#8 PEM.

    Raises:
        ValueError: The password is wrong, or the key can't be read.
    """
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=password)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the password does not decrypt the private key ({exc})") from None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
