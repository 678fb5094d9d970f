"""Unlocking an encrypted client key: asking for its password, as libsoup does.

Theory of operation: when a request is to present a client certificate whose
private key is still encrypted (:attr:`TlsCertificate.needs_password
<anysoup.TlsCertificate.needs_password>`), the session asks for the password
before choosing a connection: first the session's ``tls_interaction``
(``ask_password``, GLib's ``GTlsInteraction``), then the message's
``request_certificate_password`` handlers (libsoup's signal, which it emits
only without an interaction; here an interaction that does not handle the
request lets the signal be asked). A wrong password is asked again with
``RETRY`` set, at most :data:`TRIES` times in all. Unlocked, the certificate
stays so: later requests and connections don't ask again.

No password, or only wrong ones, fail the request with a
:class:`~anysoup.TlsError`, as libsoup fails the handshake with
``G_TLS_ERROR_CERTIFICATE_REQUIRED``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model.enums import TlsPasswordFlags
from .._model.exceptions import TlsError
from .._model.signals import active
from .._model.tls_password import TlsPassword

if TYPE_CHECKING:
    from .._model.certificate import TlsCertificate, TlsInteraction
    from .._model.message import Message

__all__ = ["TRIES", "unlock_certificate"]

#: Passwords asked for before giving up.
TRIES = 3


async def unlock_certificate(
    msg: Message, certificate: TlsCertificate, interaction: TlsInteraction | None
) -> None:
    """Ask for the password of ``certificate``'s key until it unlocks.

    Raises:
        anysoup.TlsError: No password was given, or :data:`TRIES` wrong ones.
    """
    for attempt in range(TRIES):
        if not certificate.needs_password:
            return  # another request unlocked it meanwhile
        flags = TlsPasswordFlags.RETRY if attempt else TlsPasswordFlags.NONE
        if attempt > 1:
            flags |= TlsPasswordFlags.MANY_TRIES
        if attempt == TRIES - 1:
            flags |= TlsPasswordFlags.FINAL_TRY
        password = TlsPassword(f"the private key of {certificate.subject_name}", flags)
        handled = interaction is not None and await interaction.ask_password(password)
        if not handled:
            signal = active(msg, "request_certificate_password")
            handled = signal is not None and await signal.emit_until_true(password)
        if not handled or password.value is None:
            raise TlsError(
                f"client certificate {certificate.subject_name}: its private key is encrypted "
                "and no password was given (answer request_certificate_password, or give "
                "the password to TlsCertificate)",
                message=msg,
            )
        try:
            certificate.unlock(password.value)
        except ValueError:
            continue
        return
    raise TlsError(
        f"client certificate {certificate.subject_name}: {TRIES} wrong passwords for its "
        "private key",
        message=msg,
    )
