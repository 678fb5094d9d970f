"""AuthNTLM and AuthNegotiate driven through real handshakes against pyspnego's acceptor.

No network: the "server" is pyspnego's server side (``spnego.server``),
which checks the client's tokens against the users in ``NTLM_USER_FILE``;
the tests play the auth manager's part, leg by leg, as it would over one
connection.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

import anysoup
from anysoup import Message, TlsCertificate
from anysoup._features.auth import ntlm_policy as auth_ntlm_module
from anysoup._features.auth.challenge_policy import Challenge
from anysoup._features.auth.ntlm_policy import AuthNegotiate, AuthNTLM

spnego = pytest.importorskip("spnego")
channel_bindings = pytest.importorskip("spnego.channel_bindings")

USERS = "DOMAIN:user:Passw0rd\n:upn@DOMAIN.COM:Upn-Pass\n"
NTLM_SIGNATURE = b"NTLMSSP\x00"


@pytest.fixture(autouse=True)
def user_file(tmp_path, monkeypatch):
    """The acceptor's user store; also the client's "system credentials" for Negotiate."""
    path = tmp_path / "ntlm_users"
    path.write_text(USERS)
    monkeypatch.setenv("NTLM_USER_FILE", str(path))
    monkeypatch.delenv("LM_COMPAT_LEVEL", raising=False)
    # No Kerberos ticket can be found, whatever this machine has.
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'no-ccache'}")
    return path


@dataclass
class Server:
    """pyspnego's acceptor answering as an HTTP server would (RFC 4559 §4)."""

    scheme: str
    bindings: object = None
    context: object = field(init=False)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self):
        ntlm = self.scheme == "NTLM"
        # pyspnego's own acceptors, even where python-gssapi would want a keytab.
        options = (
            spnego.NegotiateOptions.use_ntlm if ntlm else spnego.NegotiateOptions.use_negotiate
        )
        self.context = spnego.server(
            protocol="ntlm" if ntlm else "negotiate",
            channel_bindings=self.bindings,
            options=options,
        )

    def respond(self, authorization: str | None) -> tuple[int, Challenge | None]:
        """The status and the ``WWW-Authenticate`` challenge for one request."""
        bare = Challenge(self.scheme.lower())
        if authorization is None:
            return 401, bare
        name, _, token68 = authorization.partition(" ")
        assert name == self.scheme
        token = base64.b64decode(token68, validate=True)
        self.received.append(token)
        try:
            answer = self.context.step(token)
        except spnego.exceptions.SpnegoError:
            return 401, bare  # refused: start again
        encoded = base64.b64encode(answer).decode() if answer else None
        if self.context.complete:
            return 200, Challenge(self.scheme.lower(), token68=encoded) if encoded else None
        return 401, Challenge(self.scheme.lower(), token68=encoded)


def new_auth(cls, *, authority="example.org:443", is_for_proxy=False):
    return cls(Challenge(cls.scheme_name.lower()), authority=authority, is_for_proxy=is_for_proxy)


def drive(auth, msg, server, *, max_legs=4):
    """The manager's loop for one message on one connection; returns (status, legs, finished)."""
    value = auth.get_authorization(msg)
    for legs in range(1, max_legs + 1):
        status, challenge = server.respond(value)
        if status != 401:
            return status, legs, auth.finish(msg, challenge)
        if not auth.update(msg, challenge):
            return status, legs, False
        value = auth.get_authorization(msg)
    raise AssertionError("the handshake did not end")


def token_of(value: str, scheme: str) -> bytes:
    name, _, token68 = value.partition(" ")
    assert name == scheme
    return base64.b64decode(token68, validate=True)


def ntlm_type(token: bytes) -> int:
    assert token.startswith(NTLM_SIGNATURE)
    return int.from_bytes(token[8:12], "little")


# -- NTLM: the three legs ------------------------------------------------------------


def test_ntlm_three_legs_with_real_tokens():
    server = Server("NTLM")
    msg = Message("GET", "https://example.org/private")
    status, first = server.respond(None)
    assert (status, first) == (401, Challenge("ntlm"))
    auth = AuthNTLM(first, authority="example.org:443", is_for_proxy=False)
    assert not auth.is_authenticated
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert auth.is_authenticated

    negotiate = auth.get_authorization(msg)
    assert ntlm_type(token_of(negotiate, "NTLM")) == 1
    status, challenge = server.respond(negotiate)
    assert status == 401 and challenge.token68
    assert ntlm_type(base64.b64decode(challenge.token68)) == 2

    assert auth.update(msg, challenge) is True
    authenticate = auth.get_authorization(msg)
    token = token_of(authenticate, "NTLM")
    assert ntlm_type(token) == 3
    assert int.from_bytes(token[20:22], "little") > 24  # an NTLMv2 NtChallengeResponse

    status, final = server.respond(authenticate)
    assert status == 200 and final is None
    assert server.context.client_principal == "DOMAIN\\user"
    assert auth.finish(msg, final) is True
    assert auth.is_authenticated


@pytest.mark.parametrize(
    ("username", "password", "principal"),
    [
        ("DOMAIN\\user", "Passw0rd", "DOMAIN\\user"),
        ("DOMAIN/user", "Passw0rd", "DOMAIN\\user"),  # libsoup accepts the slash too
        ("domain\\USER", "Passw0rd", "domain\\USER"),  # names are case-insensitive
        ("upn@DOMAIN.COM", "Upn-Pass", "upn@DOMAIN.COM"),
    ],
)
def test_ntlm_user_name_forms(username, password, principal):
    auth = new_auth(AuthNTLM)
    auth.authenticate(username, password)
    server = Server("NTLM")
    assert drive(auth, Message("GET", "https://example.org/"), server) == (200, 2, True)
    assert server.context.client_principal == principal


def test_ntlm_wrong_password_is_refused_then_retried():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "wrong")
    msg = Message("GET", "https://example.org/")
    # The server checks AUTHENTICATE and answers a bare 401: refused.
    assert drive(auth, msg, Server("NTLM")) == (401, 2, False)
    assert not auth.is_authenticated
    with pytest.raises(ValueError, match="usable credentials"):
        auth.get_authorization(msg)
    # The manager asks again (retrying=True); the handshake starts over.
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert drive(auth, msg, Server("NTLM")) == (200, 2, True)


def test_ntlm_401_after_success_is_a_refused_resource_not_a_bad_password():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert drive(auth, Message("GET", "https://example.org/a"), Server("NTLM"))[0] == 200
    msg = Message("GET", "https://example.org/b")
    value = auth.get_authorization(msg)
    _, challenge = Server("NTLM").respond(value)
    assert auth.update(msg, challenge)
    auth.get_authorization(msg)
    assert auth.update(msg, Challenge("ntlm")) is False  # this resource is denied
    assert auth.is_authenticated  # the password is still good (libsoup's reading)


def test_ntlm_bare_401_after_negotiate_fails_without_blaming_the_password():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    msg = Message("GET", "https://example.org/")
    auth.get_authorization(msg)
    assert auth.update(msg, Challenge("ntlm")) is False
    assert auth.is_authenticated


def test_ntlm_resend_without_challenge_starts_over():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    msg = Message("GET", "https://example.org/")
    first = auth.get_authorization(msg)
    # The connection closed; the manager re-sends on a new one.
    again = auth.get_authorization(msg)
    assert ntlm_type(token_of(first, "NTLM")) == ntlm_type(token_of(again, "NTLM")) == 1
    assert drive(auth, msg, Server("NTLM")) == (200, 2, True)


def test_ntlm_messages_on_two_connections_handshake_apart():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    one, two = Message("GET", "https://example.org/1"), Message("GET", "https://example.org/2")
    server_one, server_two = Server("NTLM"), Server("NTLM")
    _, ch1 = server_one.respond(auth.get_authorization(one))
    _, ch2 = server_two.respond(auth.get_authorization(two))
    assert auth.update(two, ch2) and auth.update(one, ch1)
    assert server_one.respond(auth.get_authorization(one))[0] == 200
    assert server_two.respond(auth.get_authorization(two))[0] == 200


def test_ntlmv1_is_refused(monkeypatch):
    monkeypatch.setenv("LM_COMPAT_LEVEL", "1")  # pyspnego would answer with NTLMv1
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    msg = Message("GET", "https://example.org/")
    _, challenge = Server("NTLM").respond(auth.get_authorization(msg))
    with pytest.raises(anysoup.Error, match="NTLMv1/LM") as info:
        auth.update(msg, challenge)
    assert "Passw0rd" not in str(info.value)


# -- framing and state ---------------------------------------------------------------


def test_header_framing_is_one_padded_base64_token():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    value = auth.get_authorization(Message("GET", "https://example.org/"))
    scheme, token68 = value.split(" ")
    assert scheme == "NTLM"
    assert len(token68) % 4 == 0 and "\n" not in token68
    assert base64.b64encode(base64.b64decode(token68, validate=True)).decode() == token68


def test_unpadded_server_token_is_accepted_and_garbage_is_not():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    msg = Message("GET", "https://example.org/")
    server = Server("NTLM")
    _, challenge = server.respond(auth.get_authorization(msg))
    unpadded = Challenge("ntlm", token68=challenge.token68.rstrip("="))
    assert auth.update(msg, unpadded)
    assert server.respond(auth.get_authorization(msg))[0] == 200

    for token68 in ["not base64!", base64.b64encode(b"garbage").decode(), ""]:
        msg = Message("GET", "https://example.org/")
        auth.get_authorization(msg)
        assert auth.update(msg, Challenge("ntlm", token68=token68)) is False
        assert auth.is_authenticated  # garbage before AUTHENTICATE blames nobody


def test_state_errors():
    auth = new_auth(AuthNTLM)
    msg = Message("GET", "https://example.org/")
    with pytest.raises(ValueError, match=r"authenticate\(\) first"):
        auth.get_authorization(msg)
    assert auth.update(msg, Challenge("ntlm")) is False  # no credentials yet
    with pytest.raises(ValueError, match="username"):
        auth.authenticate("", "pw")
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert auth.update(msg, Challenge("ntlm")) is True  # the first challenge again
    assert auth.update(msg, Challenge("ntlm", token68="TlRMTVNTUAAC")) is False  # not asked
    assert auth.update(msg, Challenge("basic", {"realm": "x"})) is False
    assert auth.finish(msg, None) is False  # no handshake in flight
    auth.get_authorization(msg)
    auth.cancel()
    assert auth.is_cancelled and not auth.is_authenticated
    assert auth.update(msg, Challenge("ntlm")) is False
    with pytest.raises(ValueError, match="cancelled"):
        auth.get_authorization(msg)


def test_two_challenges_without_our_answer_between_them():
    auth = new_auth(AuthNTLM)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    msg = Message("GET", "https://example.org/")
    _, challenge = Server("NTLM").respond(auth.get_authorization(msg))
    assert auth.update(msg, challenge)
    assert auth.update(msg, challenge) is False
    assert ntlm_type(token_of(auth.get_authorization(msg), "NTLM")) == 1  # starts over


def test_class_attributes_space_and_repr():
    auth = new_auth(AuthNTLM, authority="[::1]:8443")
    assert (AuthNTLM.scheme_name, AuthNTLM.strength, AuthNTLM.connection_based) == (
        "NTLM",
        4,
        True,
    )
    assert (AuthNegotiate.scheme_name, AuthNegotiate.strength) == ("Negotiate", 5)
    assert AuthNegotiate.connection_based
    assert AuthNTLM.strength < AuthNegotiate.strength
    assert auth.get_protection_space(Message("GET", "https://[::1]:8443/a/b/c").uri) == ["/"]
    assert auth.realm == "" and auth.info == "NTLM:"
    auth.authenticate("DOMAIN\\user", "s3cret-pw")
    assert "s3cret" not in repr(auth) and "authenticated" in repr(auth)
    assert AuthNTLM.supported() and AuthNegotiate.supported()


# -- channel binding (RFC 5929 tls-server-end-point) ---------------------------------


@pytest.fixture(scope="module")
def server_cert():
    leaf = trustme.CA().issue_cert("example.org")
    return TlsCertificate.from_pem(leaf.cert_chain_pems[0].bytes())


def https_message(cert):
    msg = Message("GET", "https://example.org/")
    msg.tls_peer_certificate = cert  # what the connection's 401 left on the message
    return msg


def end_point_bindings(der: bytes):
    data = b"tls-server-end-point:" + hashlib.sha256(der).digest()  # trustme signs with SHA-256
    return channel_bindings.GssChannelBindings(application_data=data)


@pytest.mark.parametrize("cls", [AuthNTLM, AuthNegotiate])
def test_channel_binding_matches_the_servers_certificate(cls, server_cert):
    auth = new_auth(cls)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    server = Server(cls.scheme_name, bindings=end_point_bindings(server_cert.der))
    assert drive(auth, https_message(server_cert), server)[0] == 200


@pytest.mark.parametrize("cls", [AuthNTLM, AuthNegotiate])
def test_channel_binding_mismatch_or_absence_is_refused(cls, server_cert):
    other = b"tls-server-end-point:" + b"\x00" * 32  # a relay's certificate
    auth = new_auth(cls)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    relayed = Server(
        cls.scheme_name, bindings=channel_bindings.GssChannelBindings(application_data=other)
    )
    assert drive(auth, https_message(server_cert), relayed)[0] == 401

    auth.authenticate("DOMAIN\\user", "Passw0rd")
    auth.channel_binding = False
    strict = Server(cls.scheme_name, bindings=end_point_bindings(server_cert.der))
    assert drive(auth, https_message(server_cert), strict)[0] == 401


def test_no_channel_binding_for_a_proxy(server_cert):
    auth = new_auth(AuthNTLM, authority="proxy:3128", is_for_proxy=True)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    # The certificate is the origin server's, not the proxy's: nothing is bound.
    assert drive(auth, https_message(server_cert), Server("NTLM")) == (200, 2, True)


# -- Negotiate: SPNEGO, NTLM inside it here (no Kerberos offline) ----------------------


def test_negotiate_falls_back_to_ntlm_with_given_credentials():
    auth = new_auth(AuthNegotiate)
    assert auth.is_authenticated and auth.uses_default_credentials
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert not auth.uses_default_credentials
    server = Server("Negotiate")
    msg = Message("GET", "http://example.org/")  # given credentials may go anywhere
    # NegTokenInit(NEGOTIATE) → 401 NegTokenResp(CHALLENGE) → AUTHENTICATE → 200 + mechListMIC
    assert drive(auth, msg, server) == (200, 2, True)
    assert server.context.negotiated_protocol == "ntlm"
    assert server.context.client_principal == "DOMAIN\\user"
    assert server.received[0].startswith(b"\x60")  # the GSS-API InitialContextToken


def test_negotiate_uses_the_systems_credentials_without_asking():
    auth = new_auth(AuthNegotiate)  # NTLM_USER_FILE is the "system" credential store here
    server = Server("Negotiate")
    assert drive(auth, Message("GET", "https://example.org/"), server) == (200, 2, True)
    assert server.context.client_principal == "DOMAIN\\user"  # the file's first entry


def test_negotiate_keeps_the_systems_credentials_off_plain_http():
    auth = new_auth(AuthNegotiate)
    with pytest.raises(anysoup.Error, match="plain http"):
        auth.get_authorization(Message("GET", "http://example.org/"))
    assert not auth.is_authenticated  # the manager may now ask the program
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert drive(auth, Message("GET", "http://example.org/"), Server("Negotiate"))[0] == 200

    proxy = new_auth(AuthNegotiate, authority="proxy:3128", is_for_proxy=True)
    msg = Message("GET", "http://example.org/")
    assert drive(proxy, msg, Server("Negotiate"))[0] == 200


def test_negotiate_without_system_credentials(monkeypatch):
    monkeypatch.delenv("NTLM_USER_FILE")
    auth = new_auth(AuthNegotiate)
    assert auth.is_authenticated  # presumed, like libsoup, until tried
    with pytest.raises(anysoup.Error, match="system's credentials") as info:
        auth.get_authorization(Message("GET", "https://example.org/"))
    assert isinstance(info.value.__cause__, Exception)
    assert not auth.is_authenticated
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    assert auth.is_authenticated


def test_negotiate_wrong_password():
    auth = new_auth(AuthNegotiate)
    auth.authenticate("DOMAIN\\user", "wrong")
    assert drive(auth, Message("GET", "https://example.org/"), Server("Negotiate")) == (
        401,
        2,
        False,
    )
    assert not auth.is_authenticated


def test_negotiate_mutual_authentication_token_is_checked():
    auth = new_auth(AuthNegotiate)
    auth.authenticate("DOMAIN\\user", "Passw0rd")
    for final in [None, Challenge("negotiate"), "forged"]:
        msg = Message("GET", "https://example.org/")
        server = Server("Negotiate")
        _, challenge = server.respond(auth.get_authorization(msg))
        assert auth.update(msg, challenge)
        status, last = server.respond(auth.get_authorization(msg))
        assert status == 200 and last.token68
        if final == "forged":
            token = bytearray(base64.b64decode(last.token68))
            token[-1] ^= 0xFF  # the mechListMIC no longer verifies
            final = Challenge("negotiate", token68=base64.b64encode(bytes(token)).decode())
        assert auth.finish(msg, final) is False  # no proof of the server's identity


# -- pyspnego is optional ---------------------------------------------------------------


@pytest.mark.parametrize("cls", [AuthNTLM, AuthNegotiate])
def test_missing_pyspnego_names_the_extra(cls, monkeypatch):
    monkeypatch.setitem(sys.modules, "spnego", None)  # import spnego → ImportError
    assert not cls.supported()
    with pytest.raises(anysoup.Error, match=r"install anysoup\[ntlm\]") as info:
        new_auth(cls)
    assert cls.scheme_name in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_pyspnego_is_imported_on_first_use():
    code = "import sys, anysoup._features.auth.ntlm_policy; print('spnego' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_module_is_policy():
    """STYLE.md's layering rule: no async library, driver or socket here."""
    tree = ast.parse(Path(auth_ntlm_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    assert not imported & {"anyio", "trio", "h11", "socket", "ssl", "asyncio", "spnego"}
