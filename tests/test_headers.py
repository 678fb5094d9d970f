"""Table-driven tests of anysoup._model.headers.MessageHeaders (policy, no I/O)."""

from __future__ import annotations

import pytest

from anysoup._model import headers as _headers
from anysoup._model.headers import MessageHeaders

# -- construction and validation ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, []),
        ({}, []),
        ([], []),
        ({"Host": "example.org", "Accept": "*/*"}, [("Host", "example.org"), ("Accept", "*/*")]),
        ([("A", "1"), ("a", "2"), ("B", "3")], [("A", "1"), ("a", "2"), ("B", "3")]),
        ((p for p in [("X-Gen", "yes")]), [("X-Gen", "yes")]),
        (MessageHeaders([("Via", "1.1 a")]), [("Via", "1.1 a")]),
        # RFC 9110 §5.5: surrounding whitespace is not part of the value.
        ([("X", "  padded\t")], [("X", "padded")]),
        ([("X", "inner \t space")], [("X", "inner \t space")]),
        ([("X", "")], [("X", "")]),
        ([("X", "caf\u00e9")], [("X", "caf\u00e9")]),
    ],
)
def test_init_accepts(source: object, expected: list[tuple[str, str]]) -> None:
    h = MessageHeaders(source)  # type: ignore[arg-type]
    assert list(h) == expected


def test_init_copies_the_callers_objects() -> None:
    pairs = [("A", "1")]
    mapping = {"B": "2"}
    other = MessageHeaders([("C", "3")])
    from_pairs, from_mapping, from_other = (
        MessageHeaders(pairs),
        MessageHeaders(mapping),
        MessageHeaders(other),
    )
    from_pairs.append("A", "x")
    from_mapping.append("B", "x")
    from_other.append("C", "x")
    assert pairs == [("A", "1")]
    assert mapping == {"B": "2"}
    assert list(other) == [("C", "3")]


BAD_NAMES = ["", "Bad Name", "Bad:Name", "X\r\nInjected", "Na\x00me", "caf\u00e9", "(x)", "a/b"]
BAD_VALUES = [
    "a\r\nX-Injected: 1",
    "a\nb",
    "a\rb",
    "nul\x00",
    "bell\x07",
    "del\x7f",
    "\x1b[31m",
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("how", ["init-pairs", "init-mapping", "append", "replace"])
def test_bad_name_rejected(name: str, how: str) -> None:
    h = MessageHeaders([("Keep", "me")])
    with pytest.raises(ValueError, match="invalid header name") as info:
        if how == "init-pairs":
            MessageHeaders([(name, "v")])
        elif how == "init-mapping":
            MessageHeaders({name: "v"})
        elif how == "append":
            h.append(name, "v")
        else:
            h.replace(name, "v")
    assert repr(name) in str(info.value)
    assert list(h) == [("Keep", "me")]


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("how", ["init-pairs", "init-mapping", "append", "replace"])
def test_injection_rejected(value: str, how: str) -> None:
    h = MessageHeaders([("X-Target", "old")])
    with pytest.raises(ValueError, match="control characters") as info:
        if how == "init-pairs":
            MessageHeaders([("X-Target", value)])
        elif how == "init-mapping":
            MessageHeaders({"X-Target": value})
        elif how == "append":
            h.append("X-Target", value)
        else:
            h.replace("X-Target", value)
    assert "'X-Target'" in str(info.value)
    assert list(h) == [("X-Target", "old")]


@pytest.mark.parametrize(("name", "value"), [(b"X", "v"), ("X", b"v"), ("X", 3), (None, "v")])
def test_non_str_rejected(name: object, value: object) -> None:
    h = MessageHeaders()
    with pytest.raises(TypeError, match="must be str"):
        h.append(name, value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        MessageHeaders([(name, value)])  # type: ignore[list-item]
    assert len(h) == 0


def test_tab_is_allowed_inside_values() -> None:
    h = MessageHeaders()
    h.append("X", "a\tb")
    assert h["X"] == "a\tb"


def test_from_trusted_skips_validation_and_takes_the_list() -> None:
    pairs = [("content-type", "text/plain"), ("x-raw", "any\x01thing")]
    h = MessageHeaders._from_trusted(pairs)
    assert h.get_one("Content-Type") == "text/plain"
    assert h["X-Raw"] == "any\x01thing"
    assert list(h) == pairs


# -- lookups -------------------------------------------------------------------

SAMPLE = [
    ("Host", "example.org"),
    ("Accept", "text/html"),
    ("X-Multi", "one"),
    ("accept", "text/plain"),
    ("X-MULTI", "two, three"),
    ("Empty", ""),
]


@pytest.mark.parametrize(
    ("name", "one", "listed", "all_"),
    [
        ("Host", "example.org", "example.org", ["example.org"]),
        ("HOST", "example.org", "example.org", ["example.org"]),
        ("accept", "text/html", "text/html, text/plain", ["text/html", "text/plain"]),
        ("x-multi", "one", "one, two, three", ["one", "two, three"]),
        ("Empty", "", "", [""]),
        ("Missing", None, None, []),
        ("Hos", None, None, []),
    ],
)
def test_get_one_list_all(name: str, one: str | None, listed: str | None, all_: list[str]) -> None:
    h = MessageHeaders(SAMPLE)
    assert h.get_one(name) == one
    assert h.get_list(name) == listed
    assert h.get_all(name) == all_
    assert (name in h) is (one is not None)


def test_getitem() -> None:
    h = MessageHeaders(SAMPLE)
    assert h["ACCEPT"] == "text/html"
    assert h["empty"] == ""
    with pytest.raises(KeyError) as info:
        h["Missing"]
    assert info.value.args == ("Missing",)


@pytest.mark.parametrize("key", [1, None, b"Host", ("Host", "example.org")])
def test_contains_non_str(key: object) -> None:
    assert key not in MessageHeaders(SAMPLE)


def test_get_all_returns_a_new_list() -> None:
    h = MessageHeaders([("A", "1")])
    h.get_all("A").append("2")
    assert h.get_all("A") == ["1"]


# -- mutation --------------------------------------------------------------


def test_append_keeps_order_and_case() -> None:
    h = MessageHeaders()
    h.append("X-One", "1")
    h.append("x-two", "2")
    h.append("X-ONE", "3")
    assert list(h) == [("X-One", "1"), ("x-two", "2"), ("X-ONE", "3")]
    assert len(h) == 3


@pytest.mark.parametrize(
    ("start", "name", "value", "expected"),
    [
        # absent: appended at the end
        ([("A", "1")], "B", "2", [("A", "1"), ("B", "2")]),
        ([], "B", "2", [("B", "2")]),
        # present once: replaced in place, with the new case of the name
        (
            [("A", "1"), ("B", "old"), ("C", "3")],
            "b",
            "new",
            [("A", "1"), ("b", "new"), ("C", "3")],
        ),
        # present several times: first position kept, later ones removed
        (
            [("X", "1"), ("A", "a"), ("x", "2"), ("B", "b"), ("X", "3")],
            "X",
            "new",
            [("X", "new"), ("A", "a"), ("B", "b")],
        ),
        ([("A", "a"), ("X", "1"), ("X", "2")], "x", "n", [("A", "a"), ("x", "n")]),
    ],
)
def test_replace(
    start: list[tuple[str, str]], name: str, value: str, expected: list[tuple[str, str]]
) -> None:
    h = MessageHeaders(start)
    h.replace(name, value)
    assert list(h) == expected


@pytest.mark.parametrize(
    ("start", "name", "expected"),
    [
        ([("A", "1"), ("B", "2"), ("a", "3"), ("A", "4")], "A", [("B", "2")]),
        ([("A", "1"), ("B", "2")], "b", [("A", "1")]),
        ([("A", "1")], "Missing", [("A", "1")]),
        ([], "A", []),
    ],
)
def test_remove_drops_every_occurrence(
    start: list[tuple[str, str]], name: str, expected: list[tuple[str, str]]
) -> None:
    h = MessageHeaders(start)
    h.remove(name)
    assert list(h) == expected
    assert name not in h


def test_clear() -> None:
    h = MessageHeaders(SAMPLE)
    h.clear()
    assert len(h) == 0
    assert list(h) == []
    assert "Host" not in h
    h.append("A", "1")
    assert list(h) == [("A", "1")]


def test_copy_is_independent() -> None:
    h = MessageHeaders(SAMPLE)
    c = h.copy()
    assert c == h
    assert c is not h
    assert list(c) == list(h)
    c.append("New", "1")
    h.remove("Host")
    assert "New" not in h
    assert c["Host"] == "example.org"


def test_items_is_a_snapshot() -> None:
    h = MessageHeaders([("A", "1"), ("B", "2")])
    items = h.items()
    assert items == [("A", "1"), ("B", "2")]
    items.append(("C", "3"))
    h.append("D", "4")
    assert h.items() == [("A", "1"), ("B", "2"), ("D", "4")]
    assert items == [("A", "1"), ("B", "2"), ("C", "3")]


def test_iteration_yields_pairs_in_order() -> None:
    h = MessageHeaders(SAMPLE)
    assert [name for name, _ in h] == [n for n, _ in SAMPLE]
    assert dict(iter(MessageHeaders([("A", "1")]))) == {"A": "1"}
    assert len(h) == len(SAMPLE)


# -- header_contains / header_equals ------------------------------------------


@pytest.mark.parametrize(
    ("lines", "name", "token", "expected"),
    [
        ([("Connection", "close")], "Connection", "close", True),
        ([("Connection", "Keep-Alive, Upgrade")], "connection", "upgrade", True),
        ([("Connection", "keep-alive,upgrade")], "CONNECTION", "KEEP-ALIVE", True),
        ([("connection", " \tclose\t ")], "Connection", "close", True),
        ([("Connection", "keep-alive"), ("CONNECTION", "close")], "Connection", "close", True),
        ([("Connection", "closed")], "Connection", "close", False),
        ([("Connection", "clo")], "Connection", "close", False),
        ([("Connection", "")], "Connection", "close", False),
        ([("Connection", ",,")], "Connection", "close", False),
        ([], "Connection", "close", False),
        ([("Other", "close")], "Connection", "close", False),
        # parameters are ignored
        ([("Accept-Encoding", "gzip;q=1.0, br ; q=0.5")], "accept-encoding", "br", True),
        ([("Accept-Encoding", "gzip;q=1.0")], "Accept-Encoding", "gzip", True),
        ([("Accept-Encoding", "gzip;q=1.0")], "Accept-Encoding", "q=1.0", False),
        # commas inside quoted strings don't split items
        ([("Connection", 'x;p="a, close", keep-alive')], "Connection", "close", False),
        ([("Connection", 'x;p="a, \\" close", keep-alive')], "Connection", "keep-alive", True),
        ([("Connection", 'x;p="a, \\" close", keep-alive')], "Connection", "close", False),
        # ASCII case folding only: KELVIN SIGN is not "k" (values are octets,
        # so the sign can only be in what is looked for)
        ([("Connection", "keep-alive")], "Connection", "\u212aeep-alive", False),
    ],
)
def test_header_contains(
    lines: list[tuple[str, str]], name: str, token: str, expected: bool
) -> None:
    assert MessageHeaders(lines).header_contains(name, token) is expected


@pytest.mark.parametrize(
    ("lines", "value", "expected"),
    [
        ([("Upgrade", "websocket")], "WebSocket", True),
        ([("upgrade", "websocket")], "websocket", True),
        ([("Upgrade", "websocket")], "websockets", False),
        ([("Upgrade", "h2c"), ("Upgrade", "websocket")], "h2c, websocket", True),
        ([("Upgrade", "h2c"), ("Upgrade", "websocket")], "websocket", False),
        ([], "websocket", False),
        ([("Upgrade", "")], "", True),
        ([("Upgrade", "k")], "\u212a", False),
    ],
)
def test_header_equals(lines: list[tuple[str, str]], value: str, expected: bool) -> None:
    assert MessageHeaders(lines).header_equals("UPGRADE", value) is expected


# -- Content-Length ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["0"], 0),
        (["42"], 42),
        ([" 42 "], 42),
        (["0042"], 42),
        (["42, 42"], 42),
        (["42,42,42"], 42),
        (["42", "42"], 42),
        (["42", "042"], 42),
        (["9223372036854775807"], 2**63 - 1),
        (["0" * 5000 + "7"], 7),
        # invalid
        ([""], None),
        (["  "], None),
        (["-1"], None),
        (["+1"], None),
        (["1.0"], None),
        (["0x10"], None),
        (["1e3"], None),
        (["4 2"], None),
        (["abc"], None),
        (["\u0664\u0662"], None),  # Arabic-Indic digits are not DIGIT
        (["\u00b2"], None),
        (["42,"], None),
        (["9223372036854775808"], None),
        (["9" * 5000], None),
        # differing values
        (["42, 43"], None),
        (["42", "43"], None),
        (["42", "abc"], None),
    ],
)
def test_get_content_length(values: list[str], expected: int | None) -> None:
    h = MessageHeaders._from_trusted([("content-length", v) for v in values])
    assert h.get_content_length() == expected


def test_content_length_ignores_other_headers() -> None:
    h = MessageHeaders([("Content-Length-X", "5"), ("Content-Length", "7")])
    assert h.get_content_length() == 7


@pytest.mark.parametrize("n", [0, 1, 1024, 2**63 - 1])
def test_set_content_length(n: int) -> None:
    h = MessageHeaders(
        [("Host", "h"), ("content-length", "5"), ("Accept", "*/*"), ("Content-Length", "9")]
    )
    h.set_content_length(n)
    assert h.get_content_length() == n
    assert h.get_all("Content-Length") == [str(n)]
    assert list(h)[1] == ("Content-Length", str(n))
    assert len(h) == 3


@pytest.mark.parametrize(
    ("n", "error"),
    [(-1, ValueError), (2**63, ValueError), (True, TypeError), ("5", TypeError), (5.0, TypeError)],
)
def test_set_content_length_rejects(n: object, error: type[Exception]) -> None:
    h = MessageHeaders([("Content-Length", "3")])
    with pytest.raises(error, match="Content-Length"):
        h.set_content_length(n)  # type: ignore[arg-type]
    assert h.get_content_length() == 3


# -- Content-Type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/html", ("text/html", {})),
        ("Text/HTML", ("text/html", {})),
        ("  text/html  ", ("text/html", {})),
        ("text/html; charset=UTF-8", ("text/html", {"charset": "UTF-8"})),
        ("text/html;charset=utf-8", ("text/html", {"charset": "utf-8"})),
        ("text/html ; CharSet = utf-8 ", ("text/html", {"charset": "utf-8"})),
        (
            'multipart/form-data; boundary="a b;c,d"',
            ("multipart/form-data", {"boundary": "a b;c,d"}),
        ),
        ('text/plain; x="say \\"hi\\" \\\\ bye"', ("text/plain", {"x": 'say "hi" \\ bye'})),
        ('text/plain; x=""', ("text/plain", {"x": ""})),
        (
            "application/json; a=1; b=2;c=3",
            ("application/json", {"a": "1", "b": "2", "c": "3"}),
        ),
        ("application/vnd.api+json", ("application/vnd.api+json", {})),
        # lenient parameters: bad ones are skipped, the media type survives
        ("text/html; charset", ("text/html", {})),
        ("text/html; charset=", ("text/html", {})),
        ("text/html; =utf-8; a=1", ("text/html", {"a": "1"})),
        ("text/html; b@d=1; a=2", ("text/html", {"a": "2"})),
        ("text/html;;; a=1;", ("text/html", {"a": "1"})),
        ("text/html; a=1; A=2", ("text/html", {"a": "1"})),
        ('text/html; a="unterminated; b=2', ("text/html", {"a": "unterminated; b=2"})),
        ('text/html; a="x"junk; b=2', ("text/html", {"a": "x", "b": "2"})),
        ("text/html; a=b/c", ("text/html", {"a": "b/c"})),
        # unparsable media types
        ("", None),
        ("text", None),
        ("text/", None),
        ("/html", None),
        ("text /html", None),
        ("text/html/x", None),
        ("te(x)t/html", None),
        ("; charset=utf-8", None),
        ("t\u00e9xt/html", None),
    ],
)
def test_get_content_type(value: str, expected: tuple[str, dict[str, str]] | None) -> None:
    h = MessageHeaders([("content-type", value)])
    assert h.get_content_type() == expected


def test_get_content_type_absent_and_first_wins() -> None:
    assert MessageHeaders([("Content-Length", "1")]).get_content_type() is None
    h = MessageHeaders([("Content-Type", "text/plain"), ("Content-Type", "text/html")])
    assert h.get_content_type() == ("text/plain", {})


@pytest.mark.parametrize(
    ("media", "params", "written"),
    [
        ("text/html", None, "text/html"),
        ("text/html", {}, "text/html"),
        ("text/html", {"charset": "utf-8"}, "text/html; charset=utf-8"),
        ("Text/HTML", {"a": "1", "b": "2"}, "Text/HTML; a=1; b=2"),
        ("multipart/mixed", {"boundary": "a b"}, 'multipart/mixed; boundary="a b"'),
        ("text/plain", {"x": 'q"uo\\te'}, 'text/plain; x="q\\"uo\\\\te"'),
        ("text/plain", {"x": ""}, 'text/plain; x=""'),
        ("text/plain", {"x": "a;b,c=d"}, 'text/plain; x="a;b,c=d"'),
    ],
)
def test_set_content_type(media: str, params: dict[str, str] | None, written: str) -> None:
    h = MessageHeaders([("A", "1"), ("content-type", "old/old"), ("Content-Type", "x/y")])
    h.set_content_type(media, params)
    assert h.get_all("Content-Type") == [written]
    assert list(h)[1] == ("Content-Type", written)
    # what we write, we read back
    assert h.get_content_type() == (media.lower(), dict(params or {}))


@pytest.mark.parametrize(
    ("media", "params", "match"),
    [
        ("text", None, "invalid media type"),
        ("text/html; charset=utf-8", None, "invalid media type"),
        ("text/ html", None, "invalid media type"),
        ("text/html\r\nX: 1", None, "invalid media type"),
        ("text/html", {"bad name": "x"}, "parameter name"),
        ("text/html", {"": "x"}, "parameter name"),
        ("text/html", {"a": "x\r\nX-Injected: 1"}, "control characters"),
    ],
)
def test_set_content_type_rejects(media: str, params: dict[str, str] | None, match: str) -> None:
    h = MessageHeaders([("Content-Type", "text/plain")])
    with pytest.raises(ValueError, match=match):
        h.set_content_type(media, params)
    assert list(h) == [("Content-Type", "text/plain")]


# -- equality and repr -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ([], [], True),
        ([("A", "1")], [("A", "1")], True),
        ([("A", "1")], [("a", "1")], True),
        ([("A", "1"), ("B", "2")], [("B", "2"), ("A", "1")], True),
        ([("A", "1"), ("B", "2"), ("A", "3")], [("a", "1"), ("a", "3"), ("B", "2")], True),
        ([("A", "1"), ("A", "2")], [("A", "2"), ("A", "1")], False),
        ([("A", "1")], [("A", "1"), ("A", "1")], False),
        ([("A", "1")], [("A", "2")], False),
        ([("A", "1")], [("B", "1")], False),
        ([("A", "x")], [("A", "X")], False),
    ],
)
def test_equality(a: list[tuple[str, str]], b: list[tuple[str, str]], equal: bool) -> None:
    ha, hb = MessageHeaders(a), MessageHeaders(b)
    assert (ha == hb) is equal
    assert (hb == ha) is equal
    assert (ha != hb) is not equal


def test_equality_with_other_types_and_unhashable() -> None:
    h = MessageHeaders([("A", "1")])
    assert h != {"A": "1"}
    assert h != [("A", "1")]
    assert h.__eq__([("A", "1")]) is NotImplemented
    with pytest.raises(TypeError):
        hash(h)


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        ([], "MessageHeaders([])"),
        ([("Host", "example.org")], "MessageHeaders([('Host', 'example.org')])"),
        (
            [("Accept", "*/*"), ("accept", "text/html")],
            "MessageHeaders([('Accept', '*/*'), ('accept', 'text/html')])",
        ),
        (
            [
                ("Authorization", "Basic dXNlcjpwYXNz"),
                ("proxy-authorization", "Basic eDp5"),
                ("Cookie", "session=s3cret"),
                ("Set-Cookie", "id=1"),
                ("X-Safe", "shown"),
            ],
            "MessageHeaders([('Authorization', '[secure]'), ('proxy-authorization', '[secure]'),"
            " ('Cookie', '[secure]'), ('Set-Cookie', '[secure]'), ('X-Safe', 'shown')])",
        ),
    ],
)
def test_repr(lines: list[tuple[str, str]], text: str) -> None:
    assert repr(MessageHeaders(lines)) == text


def test_validation_is_not_fooled_by_a_str_subclass() -> None:
    class Liar(str):
        def __hash__(self) -> int:
            return hash("Host")

        def __eq__(self, other: object) -> bool:
            return True

        def isprintable(self) -> bool:
            return True

    MessageHeaders([("Host", "warm the name cache")])
    with pytest.raises(ValueError, match="invalid header name"):
        MessageHeaders([(Liar("Host\r\nX-Injected"), "v")])
    with pytest.raises(ValueError, match="control characters"):
        MessageHeaders([("Host", Liar("v\r\nX-Injected: 1"))])


def test_name_cache_is_bounded() -> None:
    for i in range(2 * _headers._VALID_NAMES_MAX):
        MessageHeaders().append(f"X-Generated-{i}", "v")
    assert len(_headers._VALID_NAMES) <= _headers._VALID_NAMES_MAX
    with pytest.raises(ValueError, match="invalid header name"):
        MessageHeaders().append("Still Checked", "v")


def test_from_raw_decodes_on_first_use_and_behaves_like_any_headers() -> None:
    class Block:
        listed = 0

        def raw_items(self) -> list[tuple[bytes, bytes]]:
            self.listed += 1
            return [(b"Content-Type", b"text/plain"), (b"X-Latin", b"caf\xe9")]

    block = Block()
    headers = MessageHeaders._from_raw(block)
    assert block.listed == 0  # nothing decoded until a method needs the lines
    assert headers.get_one("content-type") == "text/plain"
    assert headers.get_one("X-LATIN") == "café"
    assert headers == MessageHeaders([("content-type", "text/plain"), ("x-latin", "café")])
    headers.append("X-New", "1")
    assert len(headers) == 3 and list(headers)[-1] == ("X-New", "1")
    assert repr(headers).startswith("MessageHeaders([")
    assert isinstance(headers, MessageHeaders)
    assert block.listed == 1
