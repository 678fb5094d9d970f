"""The command's request: what the options say, read once, made into a Message per try.

Theory of operation: :meth:`Request.prepare` does the reading the options
ask for (the ``-d @file`` body, a password typed at the prompt) once, so
each try of ``--retry`` sends the same bytes without asking again;
:meth:`Request.message` then makes a fresh :class:`~anysoup.Message` for a
try, with its headers and its per-message hooks (``--user``'s answer to a
challenge, ``-k``'s acceptance of any certificate).

Headers follow curl's rules: those the command sets itself
(``Content-Type`` for a form or JSON, ``Accept`` for JSON, ``User-Agent``,
``Referer``) are replaced by the command line's, others are added; ``-H
'Name:'`` sends none of one the command would set. A ``Cookie`` header goes
with the ``-b`` cookie strings (:mod:`anysoup._cli.cookies`).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from .._features.decoder.decoder import ContentDecoder
from .._model.enums import MessageFlags
from .._model.message import Message
from .options import Options, check_json
from .status import EXIT_BAD_URL, EXIT_READ, Failure

if TYPE_CHECKING:
    from yarl import URL

    from .._features.auth.auth_policy import Auth
    from .._model.certificate import TlsCertificate
    from .._model.enums import TlsCertificateFlags

__all__ = ["Request"]

#: Sent with --json unless the command line sets Accept itself.
_JSON_ACCEPT = "application/json, */*;q=0.5"


@dataclasses.dataclass(frozen=True)
class Request:
    """The request the command sends, with everything read that had to be read."""

    options: Options
    #: The URL, parsed and checked (on the first message made).
    uri: URL
    #: The body's bytes (-d, --json), or None.
    body: bytes | None
    #: The password for ``--user`` (asked for once), or None.
    password: str | None
    #: The command line's cookies (-b strings, -H Cookie), ``a=b; c=d``, or "".
    cookies: str

    @classmethod
    def prepare(cls, options: Options, cookie_strings: list[str]) -> Request:
        """Check the URL, read the body and ask for the password.

        Raises:
            Failure: A malformed URL (3) or an unreadable body file (26).
        """
        uri = _new_message(options).uri  # a malformed URL fails first, before any file
        body = None
        if options.data is not None:
            body = _read_body(options.data, "-d")
        elif options.json is not None:
            body = _read_body(options.json, "--json")
            if options.json.startswith("@"):
                check_json(None, body.decode("utf-8", "replace"))
        password = None
        if options.user is not None:
            password = options.user[1]
            if password is None:
                password = getpass.getpass(f"password for {options.user[0]}: ")
        given = [value for name, value in options.headers if name.lower() == "cookie" and value]
        return cls(options, uri, body, password, "; ".join([*given, *cookie_strings]))

    @property
    def sends_user_agent(self) -> bool:
        """Whether the command line sets or removes ``User-Agent`` (else anysoup's goes)."""
        return any(name.lower() == "user-agent" for name, _ in self.options.headers)

    def message(self) -> Message:
        """A new message for one try."""
        options = self.options
        msg = _new_message(options)
        ours: set[str] = set()  # headers set here, which the command line's replace
        if self.body is not None:
            content_type = "application/json" if options.json is not None else None
            msg.set_request_body_from_bytes(content_type, self.body)
        if options.json is not None:
            msg.request_headers.replace("Accept", _JSON_ACCEPT)
            ours = {"content-type", "accept"}
        elif options.form:
            ours = {"content-type"}
        headers = msg.request_headers
        for name, value in options.headers:
            lower = name.lower()
            if lower == "cookie":
                continue  # sent by CommandLineCookies, beside the jar's
            if value is None:
                headers.remove(name)
            elif lower in ours or lower in ("user-agent", "referer"):
                ours.discard(lower)
                headers.replace(name, value)
            else:
                headers.append(name, value)
        if not options.compressed:
            # curl without --compressed: no Accept-Encoding, the body as it came.
            msg.disable_feature(ContentDecoder)
        if options.http1:
            msg.force_http1 = True  # ALPN offers only http/1.1, on every hop
        if not options.redirect:
            msg.flags |= MessageFlags.NO_REDIRECT
        if options.insecure:
            msg.accept_certificate.connect(_accept_any)
        if options.user is not None:
            assert self.password is not None
            _give_credentials(msg, options.user[0], self.password)
        return msg


def _new_message(options: Options) -> Message:
    try:
        if options.form:
            return Message.new_from_encoded_form(
                options.method, options.url, urlencode(options.form)
            )
        return Message(options.method, options.url)
    except ValueError as exc:
        raise Failure(EXIT_BAD_URL, str(exc)) from None


def _read_body(spec: str, option: str) -> bytes:
    """The bytes of ``-d``/``--json``: the text itself, or the file after ``@`` (``-``: stdin)."""
    if not spec.startswith("@"):
        return os.fsencode(spec)  # the bytes as typed, even if not valid UTF-8
    path = spec[1:]
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise Failure(EXIT_READ, f"{option}: can't read {path!r}: {exc.strerror}") from None


def _accept_any(msg: Message, certificate: TlsCertificate, errors: TlsCertificateFlags) -> bool:
    """``-k``: whatever is wrong with the certificate, go on (never for an HSTS host)."""
    return True


def _give_credentials(msg: Message, user: str, password: str) -> None:
    """Answer the server's first challenge with ``user`` (like curl's -u, never a proxy's).

    The credentials go only to the origin of the URL given: a redirect to
    another host that asks for credentials does not get them.
    """
    origin = msg.uri.origin()
    given = False

    def authenticate(msg: Message, auth: Auth, retrying: bool) -> bool:
        nonlocal given
        if given or retrying or auth.is_for_proxy or msg.uri.origin() != origin:
            return False
        given = True
        auth.authenticate(user, password)
        return True

    msg.authenticate.connect(authenticate)
