"""Basic and Digest, as policy (no I/O): RFC vectors, wire format, state changes.

Expected digests come from the RFCs' examples or are computed here with
hashlib, step by step as RFC 7616 §3.4 writes them, not through anysoup's
helpers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from yarl import URL

from anysoup._features.auth.auth_policy import Auth, AuthBasic
from anysoup._features.auth.challenge_policy import Challenge
from anysoup._features.auth.digest_policy import AuthDigest
from anysoup._model.headers import MessageHeaders
from anysoup._model.message import Message

try:
    hashlib.new("sha512_256")
    HAVE_SHA512_256 = True
except ValueError:
    HAVE_SHA512_256 = False

needs_sha512_256 = pytest.mark.skipif(not HAVE_SHA512_256, reason="hashlib has no SHA-512/256")

# RFC 7616 §3.9.1
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


# -- helpers ---------------------------------------------------------------------------


def digest(**params: str) -> Challenge:
    base = {"realm": "r@example.org", "nonce": "n0nce", "qop": "auth"}
    base.update(params)
    return Challenge("digest", {k: v for k, v in base.items() if v != "<absent>"})


def make_digest(
    challenge: Challenge | None = None, *, proxy: bool = False, user: str | None = "u"
) -> AuthDigest:
    auth = AuthDigest(challenge or digest(), authority="example.org:80", is_for_proxy=proxy)
    if user is not None:
        auth.authenticate(user, "pw")
    return auth


def make_basic(realm: str = "r", **params: str) -> AuthBasic:
    challenge = Challenge("basic", {"realm": realm, **params})
    return AuthBasic(challenge, authority="example.org:80", is_for_proxy=False)


def get(uri: str = "http://example.org/dir/index.html", **kwargs: object) -> Message:
    return Message("GET", uri, **kwargs)  # type: ignore[arg-type]


_PARAM = re.compile(r'([A-Za-z-]+\*?)=("(?:[^"\\]|\\.)*"|[^\s,]*)')


def fields(value: str) -> dict[str, str]:
    """The auth-params of a credentials value, unquoted (a parser of the tests' own)."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    out = {}
    for name, raw in _PARAM.findall(rest):
        assert name not in out, f"{name} twice"
        out[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return out


def h(alg: str, data: str | bytes) -> str:
    return hashlib.new(alg, data.encode() if isinstance(data, str) else data).hexdigest()


def expected_response(
    alg: str,
    *,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
    sess: bool = False,
    body: bytes | None = None,
) -> str:
    """RFC 7616 §3.4.1-3.4.3 (and RFC 2069 when qop is None), spelled out."""
    a1 = f"{user}:{realm}:{password}"
    if sess:
        a1 = f"{h(alg, a1)}:{nonce}:{cnonce}"
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        assert body is not None
        a2 += ":" + h(alg, body)
    if qop is None:
        return h(alg, f"{h(alg, a1)}:{nonce}:{h(alg, a2)}")
    return h(alg, f"{h(alg, a1)}:{nonce}:{nc}:{cnonce}:{qop}:{h(alg, a2)}")


@pytest.fixture
def cnonces(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Client nonces are "c1", "c2", ... in order; the list shows how many were made."""
    made: list[str] = []

    def factory() -> str:
        made.append(f"c{len(made) + 1}")
        return made[-1]

    monkeypatch.setattr(AuthDigest, "_cnonce_factory", staticmethod(factory))
    yield made


def fixed_cnonce(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setattr(AuthDigest, "_cnonce_factory", staticmethod(lambda: value))


# -- the schemes as the manager sees them ----------------------------------------------


def test_names_strength_and_kind() -> None:
    assert (AuthBasic.scheme_name, AuthDigest.scheme_name) == ("Basic", "Digest")
    assert AuthBasic.strength == 1
    assert AuthDigest.strength == 3
    assert max([AuthBasic, AuthDigest], key=lambda s: s.strength) is AuthDigest
    assert not AuthBasic.connection_based
    assert not AuthDigest.connection_based
    assert Auth.supports(Challenge("x")) is True  # the base class's default
    assert AuthBasic.supports(Challenge("basic", {"realm": "r"}))


def test_accessors_and_repr_are_inherited() -> None:
    auth = AuthDigest(digest(realm="shop"), authority="example.org:8080", is_for_proxy=True)
    assert (auth.realm, auth.authority, auth.is_for_proxy) == ("shop", "example.org:8080", True)
    assert auth.get_info() == auth.info == "Digest:shop"
    assert auth.get_scheme_name() == "Digest"
    assert repr(auth) == "<anysoup.AuthDigest example.org:8080 realm='shop' new>"
    auth.authenticate("user", "s3cret-pw")
    assert auth.get_is_authenticated()
    assert "s3cret" not in repr(auth)
    assert repr(auth).endswith("authenticated>")
    basic = make_basic()
    basic.authenticate("user", "s3cret-pw")
    assert "s3cret" not in repr(basic)
    assert "authenticated" in repr(basic)


@pytest.mark.parametrize("make", [make_basic, lambda: make_digest(user=None)])
def test_authenticate_then_cancel(make: object) -> None:
    auth = make()  # type: ignore[operator]
    assert not auth.is_authenticated
    with pytest.raises(ValueError, match="authenticate"):
        auth.get_authorization(get())
    auth.authenticate("u", "pw")
    assert auth.is_authenticated
    auth.get_authorization(get())
    auth.cancel()
    assert auth.is_cancelled
    assert auth.get_is_cancelled()
    assert not auth.is_authenticated
    assert repr(auth).endswith("cancelled>")
    with pytest.raises(ValueError):
        auth.get_authorization(get())
    auth.authenticate("u", "pw")  # ignored once cancelled (libsoup)
    assert not auth.is_authenticated
    stale = Challenge(
        auth.scheme_name.lower(), {"realm": auth.realm, "nonce": "x", "stale": "true"}
    )
    assert auth.update(get(), stale) is False


# -- Basic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "params", "expected"),
    [
        # RFC 7617 §2
        ("Aladdin", "open sesame", {}, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        # RFC 7617 §2.1: "test" / "123£" in UTF-8, with charset and without
        ("test", "123\u00a3", {"charset": "UTF-8"}, "Basic dGVzdDoxMjPCow=="),
        ("test", "123\u00a3", {}, "Basic dGVzdDoxMjPCow=="),
        ("", "", {}, "Basic Og=="),
        ("u", "a:b:c", {}, "Basic dTphOmI6Yw=="),  # a colon in the password is fine
        ("\u00fcser", "\U0001f511", {}, "Basic w7xzZXI68J+UkQ=="),
    ],
)
def test_basic_credentials(
    user: str, password: str, params: dict[str, str], expected: str
) -> None:
    auth = make_basic(**params)
    auth.authenticate(user, password)
    assert auth.get_authorization(get()) == expected
    MessageHeaders([("Authorization", expected)])  # a valid header value
    assert expected.isascii()


@pytest.mark.parametrize(
    ("user", "password"), [("a:b", "pw"), (":", ""), ("u\r\nX: y", "pw"), ("u", "p\x00w")]
)
def test_basic_refuses_what_cannot_be_sent(user: str, password: str) -> None:
    auth = make_basic()
    with pytest.raises(ValueError, match="RFC 7617"):
        auth.authenticate(user, password)
    assert not auth.is_authenticated


@pytest.mark.parametrize(
    ("user", "password"), [("secret:name", "hunter2"), ("secret", "hun\nter2")]
)
def test_basic_refusal_does_not_show_the_credentials(user: str, password: str) -> None:
    with pytest.raises(ValueError) as info:
        make_basic().authenticate(user, password)
    assert "secret" not in str(info.value)
    assert "hun" not in str(info.value)


@pytest.mark.parametrize(
    ("uri", "space"),
    [
        ("http://example.org/docs/index.html", "/docs/"),
        ("http://example.org/docs/", "/docs/"),
        ("http://example.org/docs", "/"),
        ("http://example.org/", "/"),
        ("http://example.org", "/"),
        ("http://example.org/a/b/c?q=/x/y#f", "/a/b/"),
        ("http://example.org/a%20b/c", "/a%20b/"),
    ],
)
def test_basic_protection_space(uri: str, space: str) -> None:
    assert make_basic().get_protection_space(URL(uri)) == [space]


def test_basic_update_forgets_refused_credentials() -> None:
    auth = make_basic("r")
    auth.authenticate("u", "pw")
    assert auth.update(get(), Challenge("basic", {"realm": "r"})) is False
    assert not auth.is_authenticated
    assert not auth.is_cancelled
    auth.authenticate("u", "pw2")  # asked again: the same object takes new ones
    assert auth.get_authorization(get()) == "Basic dTpwdzI="


def test_basic_update_for_another_realm_changes_nothing() -> None:
    auth = make_basic("r")
    auth.authenticate("u", "pw")
    assert auth.update(get(), Challenge("basic", {"realm": "other"})) is False
    assert auth.update(get(), Challenge("digest", {"realm": "r", "nonce": "n"})) is False
    assert auth.is_authenticated


# -- Digest: the RFC examples --------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(monkeypatch: pytest.MonkeyPatch, algorithm: str, response: str) -> None:
    fixed_cnonce(monkeypatch, RFC7616_CNONCE)
    challenge = Challenge(
        "digest",
        {
            "realm": "http-auth@example.org",
            "qop": "auth, auth-int",
            "algorithm": algorithm,
            "nonce": RFC7616_NONCE,
            "opaque": RFC7616_OPAQUE,
        },
    )
    assert AuthDigest.supports(challenge)
    auth = AuthDigest(challenge, authority="www.example.org:80", is_for_proxy=False)
    auth.authenticate("Mufasa", "Circle of Life")
    value = auth.get_authorization(get("http://www.example.org/dir/index.html"))
    # The field order of the RFC's example.
    assert value == (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{response}", '
        f'opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_example(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_cnonce(monkeypatch, "0a4f113b")
    challenge = Challenge(
        "digest",
        {
            "realm": "testrealm@host.com",
            "qop": "auth,auth-int",
            "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
        },
    )
    auth = AuthDigest(challenge, authority="host.com:80", is_for_proxy=False)
    auth.authenticate("Mufasa", "Circle Of Life")
    got = fields(auth.get_authorization(get("http://host.com/dir/index.html")))
    assert got == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "qop": "auth",
        "nc": "00000001",
        "cnonce": "0a4f113b",
        "response": "6629fae49393a05397450978507c4ef1",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    }  # no algorithm: the challenge had none, so none is echoed


@needs_sha512_256
def test_rfc7616_sha512_256_userhash_example(monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 7616 §3.9.2. Its printed username hash and response are wrong
    # (erratum 4897), so the expected values are computed here.
    cnonce = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v"
    fixed_cnonce(monkeypatch, cnonce)
    params = {
        "realm": "api@example.org",
        "qop": "auth",
        "algorithm": "SHA-512-256",
        "nonce": "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
        "opaque": "HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS",
        "charset": "UTF-8",
        "userhash": "true",
    }
    user = "J\u00e4s\u00f8n Doe"
    auth = AuthDigest(
        Challenge("digest", params), authority="api.example.org:80", is_for_proxy=False
    )
    auth.authenticate(user, "Secret, or not?")
    got = fields(auth.get_authorization(get("http://api.example.org/doe.json")))
    user_bytes = b"J\xc3\xa4s\xc3\xb8n Doe"  # the RFC's octets
    assert got["username"] == h("sha512_256", user_bytes + b":api@example.org")
    assert got["userhash"] == "true"
    assert got["algorithm"] == "SHA-512-256"
    assert got["response"] == expected_response(
        "sha512_256",
        user=user,
        realm="api@example.org",
        password="Secret, or not?",
        method="GET",
        uri="/doe.json",
        nonce=params["nonce"],
        nc="00000001",
        cnonce=cnonce,
        qop="auth",
    )


# -- Digest: algorithms and qop -------------------------------------------------------

SESS = [
    pytest.param("MD5-sess", "md5", id="MD5-sess"),
    pytest.param("SHA-256-sess", "sha256", id="SHA-256-sess"),
    pytest.param("SHA-512-256-sess", "sha512_256", id="SHA-512-256-sess", marks=needs_sha512_256),
    pytest.param("sha-256-SESS", "sha256", id="any-case"),
]


@pytest.mark.parametrize(("algorithm", "alg"), SESS)
def test_sess_algorithms(cnonces: list[str], algorithm: str, alg: str) -> None:
    auth = make_digest(digest(algorithm=algorithm, nonce="abc", realm="R"), user="bob")
    first = fields(auth.get_authorization(get()))
    second = fields(auth.get_authorization(get("http://example.org/other?x=1")))
    assert first["algorithm"] == algorithm  # echoed as spelled
    # The session key is made once per nonce: the same cnonce goes along.
    assert first["cnonce"] == second["cnonce"] == "c1"
    for got, uri, nc in (
        (first, "/dir/index.html", "00000001"),
        (second, "/other?x=1", "00000002"),
    ):
        assert got["nc"] == nc
        assert got["response"] == expected_response(
            alg,
            user="bob",
            realm="R",
            password="pw",
            method="GET",
            uri=uri,
            nonce="abc",
            nc=nc,
            cnonce="c1",
            qop="auth",
            sess=True,
        )
    # A new nonce starts a new session with a new cnonce.
    assert auth.update(get(), digest(algorithm=algorithm, nonce="def", realm="R", stale="true"))
    third = fields(auth.get_authorization(get()))
    assert (third["cnonce"], third["nc"], third["nonce"]) == ("c2", "00000001", "def")


@pytest.mark.parametrize(
    ("algorithm", "alg"),
    [
        pytest.param("<absent>", "md5", id="absent-is-MD5"),
        pytest.param("md5", "md5", id="md5"),
        pytest.param("SHA-256", "sha256", id="SHA-256"),
        pytest.param("SHA-512-256", "sha512_256", id="SHA-512-256", marks=needs_sha512_256),
    ],
)
def test_plain_algorithms(cnonces: list[str], algorithm: str, alg: str) -> None:
    auth = make_digest(digest(algorithm=algorithm))
    got = fields(auth.get_authorization(get("http://example.org/a%20b/c?q=%22")))
    assert got.get("algorithm", "<absent>") == algorithm
    assert got["uri"] == "/a%20b/c?q=%22"  # the request target as sent
    assert got["response"] == expected_response(
        alg,
        user="u",
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/a%20b/c?q=%22",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )


@pytest.mark.parametrize(
    ("body", "hashed"),
    [(b"hello=world", b"hello=world"), (None, b""), (b"", b"")],
)
def test_auth_int_hashes_the_body(cnonces: list[str], body: bytes | None, hashed: bytes) -> None:
    auth = make_digest(digest(qop="auth-int", algorithm="SHA-256"))
    msg = Message("POST", "http://example.org/form", body=body)
    got = fields(auth.get_authorization(msg))
    assert got["qop"] == "auth-int"
    assert got["response"] == expected_response(
        "sha256",
        user="u",
        realm="r@example.org",
        password="pw",
        method="POST",
        uri="/form",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth-int",
        body=hashed,
    )


def test_auth_int_and_a_stream_body(cnonces: list[str]) -> None:
    def stream() -> Iterator[bytes]:
        yield b"chunk"

    only_int = make_digest(digest(qop="auth-int"))
    with pytest.raises(ValueError, match=r"auth-int.*stream"):
        only_int.get_authorization(Message("POST", "http://example.org/", body=stream()))
    # Offered alongside auth, auth is chosen and the stream is no obstacle.
    both = make_digest(digest(qop="auth-int, auth"))
    value = both.get_authorization(Message("POST", "http://example.org/", body=stream()))
    assert fields(value)["qop"] == "auth"


def test_no_qop_is_rfc2069(cnonces: list[str]) -> None:
    auth = make_digest(digest(qop="<absent>", opaque="op"))
    got = fields(auth.get_authorization(get()))
    assert "qop" not in got
    assert "nc" not in got
    assert "cnonce" not in got
    assert got["response"] == expected_response(
        "md5",
        user="u",
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="n0nce",
    )
    assert got["opaque"] == "op"
    assert cnonces == []


def test_options_ping_uri_is_star(cnonces: list[str]) -> None:
    auth = make_digest()
    got = fields(auth.get_authorization(Message.new_options_ping("http://example.org/x")))
    assert got["uri"] == "*"
    assert got["response"] == expected_response(
        "md5",
        user="u",
        realm="r@example.org",
        password="pw",
        method="OPTIONS",
        uri="*",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )


# -- Digest: user names --------------------------------------------------------------


def test_userhash(cnonces: list[str]) -> None:
    auth = make_digest(digest(userhash="TRUE", algorithm="SHA-256"), user="alice")
    got = fields(auth.get_authorization(get()))
    assert got["username"] == h("sha256", "alice:r@example.org")
    assert got["userhash"] == "true"
    # A1 still holds the user name itself (RFC 7616 §3.4.4).
    assert got["response"] == expected_response(
        "sha256",
        user="alice",
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )


def test_userhash_false_sends_the_name(cnonces: list[str]) -> None:
    got = fields(make_digest(digest(userhash="false"), user="alice").get_authorization(get()))
    assert got["username"] == "alice"
    assert "userhash" not in got


@pytest.mark.parametrize(
    ("user", "field", "sent"),
    [
        # RFC 7616 §3.4.4's example of username*
        ("J\u00e4s\u00f8n Doe", "username*", "UTF-8''J%C3%A4s%C3%B8n%20Doe"),
        ("a\tb", "username", "a\tb"),
        ("bell\x07", "username*", "UTF-8''bell%07"),
        ("x!#$&+^`|~._-y", "username*", "UTF-8''x!#$&+^`|~._-y"),  # with a non-ASCII tail
        ('say "hi"\\', "username", 'say "hi"\\'),
        ("DOMAIN\\user", "username", "DOMAIN\\user"),
    ],
)
def test_user_names(cnonces: list[str], user: str, field: str, sent: str) -> None:
    if field == "username*" and user.isascii() and user.isprintable():
        user += "\u00e9"
        sent += "%C3%A9"
    auth = make_digest(user=user)
    value = auth.get_authorization(get())
    got = fields(value)
    assert got[field] == sent
    assert ("username" in got) != ("username*" in got)
    assert got["response"] == expected_response(
        "md5",
        user=user,
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )
    assert value.isascii()
    MessageHeaders([("Authorization", value)])  # a valid header value


def test_realm_with_quotes_is_escaped_and_hashed_raw(cnonces: list[str]) -> None:
    auth = make_digest(digest(realm='the "best" \\ realm'))
    value = auth.get_authorization(get())
    assert 'realm="the \\"best\\" \\\\ realm"' in value
    assert fields(value)["response"] == expected_response(
        "md5",
        user="u",
        realm='the "best" \\ realm',
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="n0nce",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )


# -- Digest: nonce count, client nonce, opaque ----------------------------------------


def test_nc_counts_per_nonce_and_cnonce_is_per_request(cnonces: list[str]) -> None:
    auth = make_digest()
    sent = [fields(auth.get_authorization(get())) for _ in range(3)]
    assert [f["nc"] for f in sent] == ["00000001", "00000002", "00000003"]
    assert [f["cnonce"] for f in sent] == ["c1", "c2", "c3"]
    assert len({f["response"] for f in sent}) == 3


def test_nc_is_eight_hex_digits(cnonces: list[str]) -> None:
    auth = make_digest()
    for _ in range(255):
        auth.get_authorization(get())
    assert fields(auth.get_authorization(get()))["nc"] == "00000100"


def test_default_cnonces_differ() -> None:
    auth = make_digest()
    first, second = (fields(auth.get_authorization(get()))["cnonce"] for _ in range(2))
    assert first != second
    assert len(first) >= 16
    assert first.isascii()
    assert first.isalnum()


def test_stale_keeps_credentials_and_resets_nc(cnonces: list[str]) -> None:
    auth = make_digest(digest(nonce="one"))
    for _ in range(2):
        auth.get_authorization(get())
    assert auth.update(get(), digest(nonce="two", stale="TRUE")) is True
    assert auth.is_authenticated
    got = fields(auth.get_authorization(get()))
    assert (got["nonce"], got["nc"]) == ("two", "00000001")
    assert got["response"] == expected_response(
        "md5",
        user="u",
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="two",
        nc="00000001",
        cnonce="c3",
        qop="auth",
    )


def test_stale_may_change_the_algorithm(cnonces: list[str]) -> None:
    auth = make_digest(digest(nonce="one"))
    assert auth.update(get(), digest(nonce="two", stale="true", algorithm="SHA-256"))
    got = fields(auth.get_authorization(get()))
    assert got["algorithm"] == "SHA-256"
    assert got["response"] == expected_response(
        "sha256",
        user="u",
        realm="r@example.org",
        password="pw",
        method="GET",
        uri="/dir/index.html",
        nonce="two",
        nc="00000001",
        cnonce="c1",
        qop="auth",
    )


@pytest.mark.parametrize(
    "challenge",
    [
        pytest.param(digest(nonce="two"), id="new-nonce-not-stale"),
        pytest.param(digest(nonce="two", stale="false"), id="stale-false"),
        pytest.param(digest(nonce="two", stale="true", algorithm="MD6"), id="stale-unsupported"),
    ],
)
def test_update_refused_forgets_credentials(challenge: Challenge) -> None:
    auth = make_digest(digest(nonce="one"))
    assert auth.update(get(), challenge) is False
    assert not auth.is_authenticated
    assert not auth.is_cancelled


def test_update_after_refusal_takes_new_credentials(cnonces: list[str]) -> None:
    auth = make_digest(digest(nonce="one"))
    assert auth.update(get(), digest(nonce="two")) is False
    auth.authenticate("u", "right")
    got = fields(auth.get_authorization(get()))
    assert (got["nonce"], got["nc"]) == ("two", "00000001")


def test_stale_before_credentials_is_not_usable() -> None:
    auth = make_digest(user=None)
    assert auth.update(get(), digest(nonce="two", stale="true")) is False
    assert not auth.is_authenticated


def test_update_for_another_realm_changes_nothing(cnonces: list[str]) -> None:
    auth = make_digest(digest(nonce="one"))
    assert auth.update(get(), digest(nonce="two", realm="elsewhere", stale="true")) is False
    assert auth.update(get(), Challenge("basic", {"realm": "r@example.org"})) is False
    assert auth.is_authenticated
    assert fields(auth.get_authorization(get()))["nonce"] == "one"


def test_opaque_is_echoed_and_follows_the_challenge(cnonces: list[str]) -> None:
    auth = make_digest(digest(opaque="o/1+=="))
    assert fields(auth.get_authorization(get()))["opaque"] == "o/1+=="
    auth.update(get(), digest(nonce="n2", stale="true"))  # no opaque this time
    assert "opaque" not in fields(auth.get_authorization(get()))


# -- Digest: which challenges it answers ----------------------------------------------


@pytest.mark.parametrize(
    ("challenge", "ok"),
    [
        (digest(), True),
        (digest(qop="<absent>"), True),
        (digest(qop="auth-int"), True),
        (digest(qop="AUTH-INT , auth-conf"), True),
        (digest(algorithm="SHA-256-sess"), True),
        (digest(algorithm="MD5-sess", qop="<absent>"), False),  # -sess needs a cnonce
        (digest(algorithm="SHA-1"), False),
        (digest(algorithm=""), False),
        (digest(qop="auth-conf"), False),
        (digest(qop=""), False),
        (digest(nonce="<absent>"), False),
        (digest(realm="<absent>"), False),
        (digest(nonce="a\r\nX-Injected: 1"), False),
        (digest(realm="caf\u00e9"), False),  # header values go out as ASCII
        (digest(opaque="\x00"), False),
        (Challenge("digest", token68="abc"), False),
    ],
)
def test_supports(challenge: Challenge, ok: bool) -> None:
    assert AuthDigest.supports(challenge) is ok


def test_unsupported_challenge_cannot_authenticate() -> None:
    auth = make_digest(digest(algorithm="SHA-1"))  # authenticate() was called
    assert not auth.is_authenticated
    with pytest.raises(ValueError, match="'SHA-1' is not supported"):
        auth.get_authorization(get())


# -- Digest: protection spaces ----------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "source", "spaces"),
    [
        ("<absent>", "http://example.org/dir/x", ["/"]),
        ("", "http://example.org/dir/x", ["/"]),
        ("/", "http://example.org/dir/x", ["/"]),
        ("/api /static/", "http://example.org/api/x", ["/api", "/static/"]),
        ("  /a\t/b  /a ", "http://example.org/", ["/a", "/b"]),
        ("http://example.org/c/d", "http://example.org/", ["/c/d"]),
        ("http://EXAMPLE.org:80/c", "http://example.org/", ["/c"]),
        ("https://example.org/s /p", "http://example.org/", ["/p"]),
        ("http://example.org:8080/p /q", "http://example.org/", ["/q"]),
        ("http://other.example/p /q", "http://example.org/", ["/q"]),
        ("//other.example/p /q", "http://example.org/", ["/q"]),
        ("http://b\u00fccher.example/p", "http://xn--bcher-kva.example/", ["/p"]),
        ("sub/", "http://example.org/dir/x", ["/dir/sub/"]),
        ("/a%20b", "http://example.org/", ["/a%20b"]),
        # Nothing on this origin: the directory of the request, not nothing.
        ("http://other.example/", "http://example.org/dir/x", ["/dir/"]),
        ("http://[bad", "http://example.org/dir/x", ["/dir/"]),
    ],
)
def test_digest_protection_space(domain: str, source: str, spaces: list[str]) -> None:
    auth = make_digest(digest(domain=domain))
    assert auth.get_protection_space(URL(source)) == spaces


def test_digest_proxy_space_is_the_whole_proxy() -> None:
    auth = make_digest(digest(domain="/only/here"), proxy=True)
    assert auth.get_protection_space(URL("http://proxy.example:3128/x")) == ["/"]
