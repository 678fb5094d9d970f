"""Table-driven and property tests of anysoup._features.auth.challenge_policy (policy, no I/O)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anysoup._features.auth.challenge_policy import (
    MAX_CHALLENGES,
    Challenge,
    format_params,
    parse_challenges,
    quote,
)


def C(scheme: str, token68: str | None = None, **params: str) -> Challenge:
    return Challenge(scheme, params, token68)


# -- RFC and real-world examples ---------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def _rfc7616_digest(algorithm: str) -> str:
    return (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def _rfc7616_expected(algorithm: str) -> Challenge:
    return C(
        "digest",
        realm="http-auth@example.org",
        qop="auth, auth-int",
        algorithm=algorithm,
        nonce=RFC7616_NONCE,
        opaque=RFC7616_OPAQUE,
    )


NTLM_TYPE2 = "TlRMTVNTUAACAAAADAAMADAAAAA1goriAAAAAAAAAAAAAAAAAAAAAA=="

EXAMPLES = [
    # RFC 9110 §11.6.1: two challenges, a quoted-pair, a token value.
    pytest.param(
        ['Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'],
        [
            C("newauth", realm="apps", type="1", title='Login to "apps"'),
            C("basic", realm="simple"),
        ],
        id="rfc9110-newauth",
    ),
    # RFC 7617 §2 and §2.1.
    pytest.param(['Basic realm="WallyWorld"'], [C("basic", realm="WallyWorld")], id="rfc7617"),
    pytest.param(
        ['Basic realm="foo", charset="UTF-8"'],
        [C("basic", realm="foo", charset="UTF-8")],
        id="rfc7617-charset",
    ),
    # RFC 7616 §3.9.1: two field lines, one challenge each.
    pytest.param(
        [_rfc7616_digest("SHA-256"), _rfc7616_digest("MD5")],
        [_rfc7616_expected("SHA-256"), _rfc7616_expected("MD5")],
        id="rfc7616-two-lines",
    ),
    pytest.param(
        [_rfc7616_digest("SHA-256") + ", " + _rfc7616_digest("MD5")],
        [_rfc7616_expected("SHA-256"), _rfc7616_expected("MD5")],
        id="rfc7616-one-line",
    ),
    # RFC 7616 §3.9.2 (userhash, a token charset).
    pytest.param(
        [
            'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, '
            'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
            'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true'
        ],
        [
            C(
                "digest",
                realm="api@example.org",
                qop="auth",
                algorithm="SHA-512-256",
                nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
                opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS",
                charset="UTF-8",
                userhash="true",
            )
        ],
        id="rfc7616-userhash",
    ),
    # RFC 6750 §3: Bearer and its error params.
    pytest.param(['Bearer realm="example"'], [C("bearer", realm="example")], id="rfc6750"),
    pytest.param(
        [
            'Bearer realm="example", error="invalid_token", '
            'error_description="The access token expired"'
        ],
        [
            C(
                "bearer",
                realm="example",
                error="invalid_token",
                error_description="The access token expired",
            )
        ],
        id="rfc6750-error",
    ),
    # Docker registry: no space after the commas, commas inside a quoted value.
    pytest.param(
        [
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:samalba/my-app:pull,push"'
        ],
        [
            C(
                "bearer",
                realm="https://auth.docker.io/token",
                service="registry.docker.io",
                scope="repository:samalba/my-app:pull,push",
            )
        ],
        id="docker-registry",
    ),
    # RFC 4559 and MS-NTLM: a bare scheme, a token68 with padding.
    pytest.param(["Negotiate", "NTLM"], [C("negotiate"), C("ntlm")], id="iis-offer"),
    pytest.param(
        ["Negotiate a87421000492aa874209af8bc028"],
        [C("negotiate", "a87421000492aa874209af8bc028")],
        id="rfc4559-token68",
    ),
    pytest.param([f"NTLM {NTLM_TYPE2}"], [C("ntlm", NTLM_TYPE2)], id="ntlm-type2"),
    pytest.param(
        ["Negotiate YII+/a=", "Negotiate YII", "Negotiate YIIabc=="],
        [C("negotiate", "YII+/a="), C("negotiate", "YII"), C("negotiate", "YIIabc==")],
        id="token68-padding",
    ),
    pytest.param(
        ['Negotiate oYIB==, Basic realm="x"'],
        [C("negotiate", "oYIB=="), C("basic", realm="x")],
        id="token68-then-challenge",
    ),
    pytest.param(
        ['Basic, Digest realm="d", nonce="n"'],
        [C("basic"), C("digest", realm="d", nonce="n")],
        id="scheme-without-params-first",
    ),
    pytest.param(
        ['Digest realm="d", Basic'], [C("digest", realm="d"), C("basic")], id="scheme-last"
    ),
    # Case: schemes and names lowercased, values as given.
    pytest.param(
        ['BASIC REALM="Shout", CharSet=UTF-8'],
        [C("basic", realm="Shout", charset="UTF-8")],
        id="uppercase",
    ),
    pytest.param(
        ["digest realm=x, algorithm=md5, stale=TRUE"],
        [C("digest", realm="x", algorithm="md5", stale="TRUE")],
        id="lowercase-and-values-kept",
    ),
    # Whitespace: OWS around commas, BWS around "=", tabs, several spaces.
    pytest.param(
        ['  Basic   realm  =  "x"  ,\tcharset\t=\tUTF-8\t'],
        [C("basic", realm="x", charset="UTF-8")],
        id="weird-spacing",
    ),
    pytest.param(['Basic\trealm="x"'], [C("basic", realm="x")], id="tab-after-scheme"),
    pytest.param(['Basic , realm="x"'], [C("basic", realm="x")], id="comma-after-scheme"),
    # Empty list elements (RFC 9110 §5.6.1.2).
    pytest.param(
        [', , Basic realm="x",,, charset="UTF-8",'],
        [C("basic", realm="x", charset="UTF-8")],
        id="empty-elements",
    ),
    pytest.param(["", " ", ",", " , ,\t"], [], id="only-empty"),
    pytest.param([], [], id="no-lines"),
    # Quoted-strings.
    pytest.param(['Basic realm=""'], [C("basic", realm="")], id="empty-quoted"),
    pytest.param(['Basic realm="a, b=c"'], [C("basic", realm="a, b=c")], id="comma-in-quotes"),
    pytest.param(['Basic realm="\\a\\b"'], [C("basic", realm="ab")], id="needless-escapes"),
    pytest.param(['Basic realm="end\\\\"'], [C("basic", realm="end\\")], id="escaped-backslash"),
    pytest.param(['Basic realm="a\tb"'], [C("basic", realm="a\tb")], id="tab-in-quotes"),
    pytest.param(['Basic realm="caf\xe9"'], [C("basic", realm="caf\xe9")], id="obs-text"),
    pytest.param(
        ["Basic realm=/private/, domain=http://a/b;c"],
        [C("basic", realm="/private/", domain="http://a/b;c")],
        id="lenient-bare-values",
    ),
    pytest.param(
        ["Newauth title*=UTF-8''%c2%a3"], [C("newauth", **{"title*": "UTF-8''%c2%a3"})], id="ext"
    ),
    # RFC 9110 §5.3: field lines are one list, so a line may go on with params.
    pytest.param(
        ['Digest realm="x"', 'nonce="y", qop=auth'],
        [C("digest", realm="x", nonce="y", qop="auth")],
        id="params-continue-on-next-line",
    ),
    # Duplicates: the first one wins.
    pytest.param(
        ['Basic realm="first", REALM="second", realm=third'],
        [C("basic", realm="first")],
        id="duplicate-param",
    ),
    pytest.param(
        ['Basic realm="a", Basic realm="b"'],
        [C("basic", realm="a"), C("basic", realm="b")],
        id="duplicate-challenges-kept",
    ),
]


@pytest.mark.parametrize(("values", "expected"), EXAMPLES)
def test_examples(values: list[str], expected: list[Challenge]) -> None:
    assert parse_challenges(values) == expected


# -- malformed input: skip what cannot be parsed, keep what can -----------------------

MALFORMED = [
    pytest.param(
        ['Digest realm="x", nonce="abc', 'Basic realm="y"'],
        [C("digest", realm="x"), C("basic", realm="y")],
        id="unterminated-quote-ends-at-its-line",
    ),
    pytest.param(
        ['Basic realm="a\x01b", charset=UTF-8'],
        [C("basic", charset="UTF-8")],
        id="control-in-quotes-drops-the-param",
    ),
    pytest.param(['Basic realm="a\\\x00"'], [C("basic")], id="escaped-control-drops-the-param"),
    pytest.param(['realm="x"'], [], id="param-without-scheme"),
    pytest.param(['realm="x", Basic'], [C("basic")], id="orphan-param-then-scheme"),
    pytest.param(
        ['Negotiate abc==, realm="x"'], [C("negotiate", "abc==")], id="params-after-token68"
    ),
    pytest.param(
        ["Negotiate, abc==, realm=x"],
        [C("negotiate", realm="x")],
        id="orphan-token68-dropped",
    ),
    pytest.param(
        ['Digest realm="a", nonce=, qop=auth'],
        [C("digest", realm="a", qop="auth")],
        id="param-without-value",
    ),
    pytest.param(
        ['Digest realm="a", nonce=a b, qop=auth'],
        [C("digest", realm="a", qop="auth")],
        id="param-with-trailing-junk",
    ),
    pytest.param(
        ['Digest realm="a", Bas/ic, nonce="n"'],
        [C("digest", realm="a")],
        id="junk-element-ends-the-challenge",
    ),
    pytest.param(
        ['Digest realm="a", "quoted", Basic realm="b"'],
        [C("digest", realm="a"), C("basic", realm="b")],
        id="quoted-element",
    ),
    pytest.param(
        ['=x, Basic realm="b"'], [C("basic", realm="b")], id="element-starting-with-equals"
    ),
    pytest.param(
        ['Basic "realm", charset=UTF-8'],
        [C("basic", charset="UTF-8")],
        id="scheme-then-junk-keeps-the-scheme",
    ),
    pytest.param(
        ['Basic realm="a" junk, charset=UTF-8'],
        [C("basic", charset="UTF-8")],
        id="junk-after-first-param",
    ),
    pytest.param(["Basic realm==x"], [C("basic")], id="value-starting-with-equals"),
    pytest.param(["Negotiate abc def"], [C("negotiate")], id="two-token68"),
    pytest.param(
        ['\xff\xfe\x00garbage, Basic realm="x"'], [C("basic", realm="x")], id="latin-1-garbage"
    ),
    pytest.param(['Ba\x00sic realm="x"'], [], id="nul-in-scheme"),
    pytest.param(['Basic realm="x"\r\nSet-Cookie: a=b'], [C("basic")], id="crlf-after-value"),
    pytest.param(['Basic realm="x", \x7f, charset=a'], [C("basic", realm="x")], id="del"),
    pytest.param(['"', '"unterminated', "Basic"], [C("basic")], id="lone-quotes"),
    pytest.param(['Basic realm="a\\'], [C("basic")], id="backslash-at-end"),
]


@pytest.mark.parametrize(("values", "expected"), MALFORMED)
def test_malformed(values: list[str], expected: list[Challenge]) -> None:
    assert parse_challenges(values) == expected


def test_at_most_max_challenges() -> None:
    many = ", ".join(f"S{i} a={i}" for i in range(MAX_CHALLENGES + 5))
    got = parse_challenges([many, "Basic"])
    assert [c.scheme for c in got] == [f"s{i}" for i in range(MAX_CHALLENGES)]
    assert got[-1].params == {"a": str(MAX_CHALLENGES - 1)}


def test_the_last_challenge_keeps_its_params_up_to_the_cap() -> None:
    line = ", ".join(f"S{i}" for i in range(MAX_CHALLENGES))
    got = parse_challenges([line + ", x=1, y=2, Extra realm=r"])
    assert len(got) == MAX_CHALLENGES
    assert got[-1] == C(f"s{MAX_CHALLENGES - 1}", x="1", y="2")


# -- linear time: hostile 1 MB headers return (no timing assertion) --------------------

MB = 1 << 20

PATHOLOGICAL = [
    pytest.param("," * MB, 0, id="commas"),
    pytest.param("a=b," * (MB // 4), 0, id="orphan-params"),
    pytest.param("Digest " + "a = b , " * (MB // 8), 1, id="one-challenge-many-params"),
    pytest.param('Digest realm="' + "a" * MB, 1, id="unterminated-quote"),
    pytest.param('Digest realm="' + "\\a" * (MB // 2), 1, id="unterminated-escapes"),
    pytest.param('Digest realm="' + "\\" * MB + '"', 1, id="backslashes"),
    pytest.param('"' * MB, 0, id="quotes"),
    pytest.param('a="' * (MB // 3), 0, id="param-quote"),
    pytest.param("x " + "a" * MB + "=", 1, id="token68-backoff"),
    pytest.param("Negotiate " + "A" * MB + "==x", 1, id="token68-junk"),
    pytest.param("a" + " " * MB + "!", 1, id="spaces-then-junk"),
    pytest.param("a" + "\t" * MB + "=", 0, id="tabs-then-equals"),
    pytest.param("Basic " * (MB // 6), 1, id="repeated-scheme"),
    pytest.param("A, " * (MB // 3), MAX_CHALLENGES, id="many-schemes"),
    pytest.param(bytes(range(256)).decode("latin-1") * (MB // 256), 0, id="latin-1"),
]


@pytest.mark.parametrize(("header", "count"), PATHOLOGICAL)
def test_hostile_megabyte_returns(header: str, count: int) -> None:
    # A quadratic (or exponential) path would not return within pytest-timeout.
    assert len(parse_challenges([header])) == count


# -- format_params and quote ------------------------------------------------------------


def test_format_params_rfc7616_authorization() -> None:
    params = [
        ("username", "Mufasa"),
        ("realm", "http-auth@example.org"),
        ("uri", "/dir/index.html"),
        ("algorithm", "MD5"),
        ("nonce", RFC7616_NONCE),
        ("nc", "00000001"),
        ("cnonce", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
        ("qop", "auth"),
        ("response", "8ca523f5e9506fed4657c9700eebdbec"),
        ("opaque", RFC7616_OPAQUE),
    ]
    quoted = {"username", "realm", "uri", "nonce", "cnonce", "response", "opaque"}
    assert format_params(params, quote=quoted) == (
        'username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm=MD5, nonce="{RFC7616_NONCE}", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        f'response="8ca523f5e9506fed4657c9700eebdbec", opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there, comma", '"tab\there, comma"'),
        ("J\xe4s\xf8n", '"J\xe4s\xf8n"'),
    ],
)
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected
    assert format_params([("v", value)], quote={"v"}) == f"v={expected}"


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "nul\x00", "del\x7f", "\x1b[0m"])
def test_quote_rejects_controls(value: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        quote(value)
    with pytest.raises(ValueError, match="control characters") as info:
        format_params([("username", value)], quote={"username"})
    assert "'username'" in str(info.value)
    assert value not in str(info.value)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ([("bad name", "x")], "name 'bad name' is not a token"),
        ([("", "x")], "name '' is not a token"),
        ([("qop", "auth, auth-int")], "'qop': a bare value must be a token"),
        ([("nc", "")], "'nc': a bare value must be a token"),
        ([("ok", "1"), ("q", 'a"b')], "'q': a bare value must be a token"),
    ],
)
def test_format_params_rejects(params: list[tuple[str, str]], match: str) -> None:
    with pytest.raises(ValueError, match=re.escape(match)):
        format_params(params, quote=set())


def test_format_params_empty() -> None:
    assert format_params([], quote={"realm"}) == ""


# -- properties -------------------------------------------------------------------------

# No example database (nothing kept between runs; failures print their
# reproducer), no deadline (CI machines stall), and few examples: the whole
# file runs in a few seconds.
FAST = settings(database=None, deadline=None, max_examples=100)

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
T68CHARS = "-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

tokens = st.text(TCHARS, min_size=1, max_size=12)
token68s = st.builds(
    lambda body, pad: body + "=" * pad,
    st.text(T68CHARS, min_size=1, max_size=40),
    st.integers(0, 2),
)
# Any text a quoted-string can carry: no controls but HTAB (RFC 9110 §5.6.4).
quotable = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters=[chr(i) for i in range(32) if i != 9] + ["\x7f"],
    ),
    max_size=20,
)
latin1 = st.binary(max_size=200).map(lambda b: b.decode("latin-1"))


def _check_invariants(challenges: list[Challenge]) -> None:
    assert len(challenges) <= MAX_CHALLENGES
    for c in challenges:
        assert isinstance(c, Challenge)
        assert _LOWER_TOKEN.match(c.scheme), c
        if c.token68 is not None:
            assert _TOKEN68.match(c.token68), c
            assert c.params == {}
        for name, value in c.params.items():
            assert _LOWER_TOKEN.match(name), c
            assert not _CTL.search(value), c


@FAST
@given(st.lists(st.text(max_size=80), max_size=4))
def test_any_text_never_raises(values: list[str]) -> None:
    _check_invariants(parse_challenges(values))


@FAST
@given(st.lists(latin1, max_size=4))
def test_any_bytes_as_latin1_never_raise(values: list[str]) -> None:
    _check_invariants(parse_challenges(values))


# A built challenge: (scheme, params with their quoting, token68).
Built = tuple[str, list[tuple[str, str, bool]], str | None]

param_lists = st.lists(
    st.one_of(
        st.tuples(tokens, quotable, st.just(True)),
        st.tuples(tokens, tokens, st.just(False)),
    ),
    max_size=5,
    unique_by=lambda p: p[0].lower(),
)
built_challenges: st.SearchStrategy[Built] = st.one_of(
    st.tuples(tokens, param_lists, st.none()),
    st.tuples(tokens, st.just([]), token68s),
)


def _elements(built: Built) -> list[str]:
    """One challenge as list elements: scheme with first param or token68, then params."""
    scheme, params, token68 = built
    if token68 is not None:
        return [f"{scheme} {token68}"]
    quoted = {name for name, _, q in params if q}
    items = [format_params([(name, value)], quote=quoted) for name, value, _ in params]
    if not items:
        return [scheme]
    return [f"{scheme} {items[0]}", *items[1:]]


def _expected(built: Built) -> Challenge:
    scheme, params, token68 = built
    return Challenge(scheme.lower(), {n.lower(): v for n, v, _ in params}, token68)


@FAST
@given(st.lists(built_challenges, max_size=6), st.sampled_from([", ", ",", " ,\t", ",, "]))
def test_round_trip(built: list[Built], separator: str) -> None:
    header = separator.join(e for b in built for e in _elements(b))
    assert parse_challenges([header]) == [_expected(b) for b in built]


@FAST
@given(st.lists(built_challenges, min_size=1, max_size=6), st.data())
def test_field_lines_are_one_list(built: list[Built], data: st.DataObject) -> None:
    # RFC 9110 §5.3: splitting a list over field lines at any top-level comma
    # does not change its meaning.
    elements = [e for b in built for e in _elements(b)]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(elements)), max_size=len(elements))))
    lines = [
        ", ".join(elements[i:j]) for i, j in zip([0, *cuts], [*cuts, len(elements)], strict=True)
    ]
    assert parse_challenges(lines) == parse_challenges([", ".join(elements)])
    assert parse_challenges(lines) == [_expected(b) for b in built]


@FAST
@given(quotable)
def test_quote_then_parse(value: str) -> None:
    assert parse_challenges([f"X v={quote(value)}"]) == [C("x", v=value)]


NASTY = ['"', "\\", ",", "=", " ", "\t", ";", "/", "\x00", "\r", "\n", "\x7f", "\xff", "==", '\\"']


@st.composite
def mutated_headers(draw: st.DrawFn) -> str:
    """A valid header with a few insertions, deletions, truncations, duplications."""
    built = draw(st.lists(built_challenges, min_size=1, max_size=4))
    s = ", ".join(e for b in built for e in _elements(b))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["insert", "delete", "truncate", "duplicate"]))
        if op == "insert":
            s = s[:i] + draw(st.sampled_from(NASTY)) + s[i:]
        elif op == "delete":
            s = s[:i] + s[i + 1 :]
        elif op == "truncate":
            s = s[:i]
        else:
            j = draw(st.integers(i, len(s)))
            s = s[:j] + s[i:j] + s[j:]
    return s


@settings(database=None, deadline=None, max_examples=120)
@given(st.lists(mutated_headers(), min_size=1, max_size=3))
def test_mutated_headers_never_raise(values: list[str]) -> None:
    got = parse_challenges(values)
    _check_invariants(got)
    assert got == parse_challenges(values)  # and the result is a function of the input
