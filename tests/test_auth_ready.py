"""``Auth.can_authenticate`` and ``Auth.is_ready`` (libsoup's ``soup_auth_can_authenticate``
and ``soup_auth_is_ready``): as policy for each scheme, and what the auth
manager does with them against a loopback server.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar

import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

from anysoup import Auth, AuthBasic, AuthDigest, Message, Session
from anysoup._features.auth.challenge_policy import Challenge

GET = Message("GET", "http://example.org/private")


@pytest.mark.parametrize(
    ("scheme", "challenge"),
    [
        (AuthBasic, Challenge("basic", {"realm": "r"})),
        (AuthDigest, Challenge("digest", {"realm": "r", "nonce": "n", "qop": "auth"})),
    ],
)
def test_ready_once_authenticated_and_never_after_cancel(
    scheme: type[Auth], challenge: Challenge
) -> None:
    auth = scheme(challenge, authority="example.org:80", is_for_proxy=False)
    assert auth.can_authenticate() is True
    assert auth.is_ready(GET) is False  # no credentials yet
    auth.authenticate("user", "pw")
    assert auth.is_ready(GET) is True
    auth.cancel()
    assert auth.can_authenticate() is False
    assert auth.is_ready(GET) is False


def test_ntlm_is_ready_while_its_handshake_has_a_leg_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spnego = pytest.importorskip("spnego")
    from anysoup._features.auth.ntlm_policy import AuthNTLM

    users = tmp_path / "ntlm_users"
    users.write_text("DOMAIN:user:Passw0rd\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    server = spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm)
    auth = AuthNTLM(Challenge("ntlm"), authority="example.org:443", is_for_proxy=False)
    msg, other = Message("GET", "https://example.org/"), Message("GET", "https://example.org/")
    assert (auth.can_authenticate(), auth.is_ready(msg)) == (True, False)
    auth.authenticate("DOMAIN\\user", "wrong")
    negotiate = auth.get_authorization(msg)
    answer = server.step(base64.b64decode(negotiate.split()[1]))
    assert auth.update(msg, Challenge("ntlm", token68=base64.b64encode(answer).decode()))
    assert auth.is_ready(msg)  # its AUTHENTICATE leg waits
    auth.get_authorization(msg)
    assert auth.update(msg, Challenge("ntlm")) is False  # the password was refused
    assert not auth.is_ready(msg) and not auth.is_ready(other)
    assert auth.can_authenticate()  # the program may give another one
    auth.cancel()
    assert not auth.can_authenticate()


class AuthBasicNoCredentials(AuthBasic):
    """Basic that takes no credentials from the program, as libsoup's Negotiate."""

    scheme_name: ClassVar[str] = "Basic"

    def can_authenticate(self) -> bool:
        return False


async def test_a_scheme_that_cannot_authenticate_is_not_offered_to_the_program() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        if dict(req.headers).get("authorization") == "Basic " + base64.b64encode(b"u:p").decode():
            await conn.respond(200, [], b"in")
        else:
            await conn.respond(401, [("WWW-Authenticate", 'Basic realm="r"')], b"out")

    asked: list[str] = []

    def authenticate(msg: Message, auth: Auth, retrying: bool) -> bool:
        asked.append(type(auth).__name__)
        auth.authenticate("u", "p")
        return True

    async with serve_http(handler) as server:
        for scheme in (AuthBasic, AuthBasicNoCredentials):
            async with Session() as session:
                session.add_feature_by_type(scheme)
                msg = Message("GET", server.url_for("/"))
                msg.authenticate.connect(authenticate)
                body = await session.send_and_read(msg)
                assert (msg.status, body) == (
                    (200, b"in") if scheme is AuthBasic else (401, b"out")
                )
    assert asked == ["AuthBasic"]
