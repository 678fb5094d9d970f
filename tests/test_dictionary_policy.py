"""Compression Dictionary Transport (RFC 9842) as policy: tables, no I/O.

The structured-field parser, ``Use-As-Dictionary``, the match-pattern subset
(what it matches and what it refuses), choosing among dictionaries, the
request header values, secure contexts, the dcb/dcz stream headers, the
``CompressionDictionary`` value and the stream decoder fed in every chunking.
The I/O side, on both backends against hypercorn, is ``test_dictionary.py``.
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any, ClassVar

import pytest
import zstandard
from yarl import URL

from anysoup import CompressionDictionary, ContentDecoder
from anysoup._features.cache import dictionary_policy as policy
from anysoup._features.cache.dictionary_policy import DictionaryDirective
from anysoup._features.decoder import dictionary_codings_policy as codings
from anysoup._features.decoder.codings_policy import CodingFailure
from anysoup._model.structured_fields import (
    StructuredFieldError,
    Token,
    parse_dictionary,
    serialize_byte_sequence,
    serialize_string,
)

#: RFC 9842 §2.2's example hash.
EXAMPLE_HASH = base64.b64decode("pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=")

# -- RFC 8941 Dictionaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ('match="/a/*"', {"match": ("/a/*", {})}),
        ("  a=1 ,\tb=?0  ", {"a": (1, {}), "b": (False, {})}),
        ("a, b;x=1", {"a": (True, {}), "b": (True, {"x": 1})}),
        ('d=("x" "y");p', {"d": ([("x", {}), ("y", {})], {"p": True})}),
        ("d=()", {"d": ([], {})}),
        ("t=raw", {"t": (Token("raw"), {})}),
        ("t=a:b/c", {"t": (Token("a:b/c"), {})}),
        ("n=-12.5, m=0.001", {"n": (-12.5, {}), "m": (0.001, {})}),
        ("h=:AAE=:", {"h": (b"\x00\x01", {})}),
        ("h=:AAE:", {"h": (b"\x00\x01", {})}),  # padding may be left out
        ('s="a\\"b\\\\c"', {"s": ('a"b\\c', {})}),
        ("a=1, a=2", {"a": (2, {})}),  # a later key wins (§4.2.2)
        ("*x.y-z_1=1", {"*x.y-z_1": (1, {})}),
    ],
)
def test_structured_dictionary_parses(value: str, expected: dict[str, Any]) -> None:
    parsed = parse_dictionary(value)
    assert parsed == expected
    for key, (item, _) in expected.items():
        assert type(parsed[key][0]) is type(item)  # a Token stays a Token


@pytest.mark.parametrize(
    "value",
    [
        "A=1",  # keys are lowercase
        "a=",
        "a=1,",
        "a=1 b=2",
        'a="x',
        'a="\\x"',  # only \" and \\ escape
        'a="é"',
        "a=(1",
        'a=("x""y")',
        "a=1234567890123456",
        "a=1234567890123.5",
        "a=1.2345",
        "a=?2",
        "a=:AA=A:",
        "a=:A",
        "a=@date",  # RFC 9651's Date: not RFC 8941
        'a=%"x"',  # nor its Display String
        "a=1;",
    ],
)
def test_structured_dictionary_refuses(value: str) -> None:
    with pytest.raises(StructuredFieldError):
        parse_dictionary(value)


def test_structured_serialisers() -> None:
    assert serialize_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert serialize_byte_sequence(EXAMPLE_HASH) == (
        ":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:"
    )
    with pytest.raises(ValueError, match="printable ASCII"):
        serialize_string("caf\u00e9")


# -- Use-As-Dictionary -----------------------------------------------------------------------

DICT_URL = "https://example.com/app/v1/dict.js?x=1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('match="/app/*/main.js"', DictionaryDirective("/app/*/main.js")),
        (
            'match="/product/*", match-dest=("document")',
            DictionaryDirective("/product/*", ("document",)),
        ),
        ('match="/a/*", id="v1 33a6", type=raw', DictionaryDirective("/a/*", id="v1 33a6")),
        ('match="/a/*", id=""', DictionaryDirective("/a/*")),
        ('match="/a/*";p=1, other=?1, id="x";q', DictionaryDirective("/a/*", id="x")),
        ('match="/a/*", match-dest=()', DictionaryDirective("/a/*")),
        # Not a dictionary:
        (None, None),
        ("", None),
        ('id="x"', None),  # no match
        ("match=token", None),  # match must be a String
        ('match=("/a/*")', None),
        ('match="/a/*", match-dest="document"', None),
        ('match="/a/*", match-dest=(document)', None),
        ('match="/a/*", id=5', None),
        (f'match="/a/*", id="{"x" * 1025}"', None),
        ('match="/a/*", type=other', None),  # §2.1.4: an unknown type is not used
        ('match="/a/*", type="raw"', None),  # type is a Token
        ('match="/a/*",', None),  # not a Structured Field: ignored
        ('match="/app/(\\\\d+)/*"', None),  # regexp group: §2.1.1
        ('match="https://other.example/*"', None),  # another origin
    ],
)
def test_use_as_dictionary(value: str | None, expected: DictionaryDirective | None) -> None:
    assert policy.parse_use_as_dictionary(value, DICT_URL) == expected


# -- the match pattern -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "target", "matches"),
    [
        # Paths: * matches any run, / included; query and fragment are free.
        ("/app/*/main.js", "https://example.com/app/v2/main.js", True),
        ("/app/*/main.js", "https://example.com/app/v2/deep/main.js", True),
        ("/app/*/main.js", "https://example.com/app/v2/main.js?q=3", True),
        ("/app/*/main.js", "https://example.com/app/v2/other.js", False),
        ("/app/*/main.js", "https://example.com/App/v2/main.js", False),  # case matters
        ("/app/*", "https://example.com/app/", True),
        ("/app/*", "https://example.com/app", False),
        ("/**", "https://example.com/x", True),
        # Same origin only: scheme, host and port.
        ("/app/*", "https://other.com/app/x", False),
        ("/app/*", "http://example.com/app/x", False),
        ("/app/*", "https://example.com:8443/app/x", False),
        ("/app/*", "https://EXAMPLE.com:443/app/x", True),
        # Relative to the dictionary's directory.
        ("main.js", "https://example.com/app/v1/main.js", True),
        ("main.js", "https://example.com/main.js", False),
        ("*.js", "https://example.com/app/v1/lib/x.js", True),
        # A query or a fragment alone keeps the dictionary's path.
        ("?x=*", "https://example.com/app/v1/dict.js?x=9", True),
        ("?x=*", "https://example.com/app/v1/other.js?x=9", False),
        ("", "https://example.com/app/v1/dict.js?x=1", True),
        ("", "https://example.com/app/v1/dict.js?x=2", False),
        ("#*", "https://example.com/app/v1/dict.js?x=1", True),
        # A given query.
        ("/p/x?v=*", "https://example.com/p/x?v=2", True),
        ("/p/x?v=*", "https://example.com/p/x?w=2", False),
        ("/p/x?v=1", "https://example.com/p/x", False),
        # Escapes and percent-encoding of fixed text.
        ("/app/\\*", "https://example.com/app/*", True),
        ("/app/\\*", "https://example.com/app/x", False),
        ("/p/a\\?b", "https://example.com/p/a%3Fb", True),
        ("/a b/*", "https://example.com/a%20b/c", True),
        ("/\u00e9/*", "https://example.com/%C3%A9/x", True),
        # Absolute patterns: the dictionary's origin, written out.
        ("https://example.com/app/*", "https://example.com/app/z", True),
        ("https://example.com:443/app/*", "https://example.com/app/z", True),
        ("https://EXAMPLE.com", "https://example.com/anything?x", True),
        ("https://example.com?a=1", "https://example.com/?a=1", True),
        ("https://example.com?a=1", "https://example.com/p?a=1", False),
        # Refused patterns match nothing.
        ("https://other.com/app/*", "https://other.com/app/z", False),
        ("/app/(\\d+)/x", "https://example.com/app/1/x", False),
    ],
)
def test_pattern_matches(pattern: str, target: str, matches: bool) -> None:
    assert policy.pattern_matches(pattern, DICT_URL, target) is matches


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("/app/*", True),
        ("main.js", True),
        ("?v=*", True),
        ("", True),
        ("https://example.com/*", True),
        ("https://example.com:443", True),
        ("/app/(\\d+)/*", False),  # regexp group: RFC 9842 §2.1.1
        ("/app/(.*)", False),
        ("/app/:version/*", False),  # named group: outside the subset
        ("/app{/v1}?/*", False),  # group and modifier
        ("/app/*?v=1", False),  # "*?" is an optional wildcard, not a query
        ("/a+b", False),  # a bare modifier is invalid
        ("/p?a?b", False),
        ("/p\\", False),  # an escape with nothing after it
        ("/a/../b/*", False),  # dot segments
        ("./x", False),
        ("https://*.example.com/*", False),  # wildcard host
        ("https://example.com:*/*", False),
        ("https://user@example.com/*", False),
        ("http://example.com/*", False),  # another scheme: another origin
        ("https://example.com:8443/*", False),
        ("ftp://example.com/*", False),
    ],
)
def test_valid_pattern(pattern: str, valid: bool) -> None:
    assert policy.valid_pattern(pattern, DICT_URL) is valid


def test_pattern_of_a_dictionary_that_is_not_http() -> None:
    assert not policy.valid_pattern("/x", "ftp://example.com/d")
    assert not policy.pattern_matches("/x", "https://example.com/d", "not a url at all")


# -- choosing among dictionaries (longest match, then most recent) ---------------------------


@pytest.mark.parametrize(
    ("candidates", "target", "chosen"),
    [
        ([], "https://example.com/app/v2/main.js", None),
        ([("/zzz/*", DICT_URL, 1.0, "a")], "https://example.com/app/v2/main.js", None),
        (
            [("/app/*", DICT_URL, 9.0, "short"), ("/app/v2/*", DICT_URL, 1.0, "long")],
            "https://example.com/app/v2/main.js",
            "long",
        ),
        (
            [("/app/*", DICT_URL, 1.0, "old"), ("/app/*", DICT_URL, 2.0, "new")],
            "https://example.com/app/x",
            "new",
        ),
        (
            [("/app/*", DICT_URL, 2.0, "first"), ("/app/*", DICT_URL, 2.0, "second")],
            "https://example.com/app/x",
            "first",
        ),
        (  # an invalid pattern is skipped, however long
            [("/app/(.*)/main.js", DICT_URL, 9.0, "bad"), ("/app/*", DICT_URL, 1.0, "ok")],
            "https://example.com/app/v2/main.js",
            "ok",
        ),
        (  # a dictionary from another origin never serves the request
            [("/app/*", "https://other.com/d", 9.0, "other"), ("/*", DICT_URL, 1.0, "ours")],
            "https://example.com/app/x",
            "ours",
        ),
    ],
)
def test_choose_dictionary(
    candidates: list[tuple[str, str, float, str]], target: str, chosen: str | None
) -> None:
    assert policy.choose_dictionary(candidates, target) == chosen


# -- request headers, secure contexts, stream headers ----------------------------------------


def test_request_header_values() -> None:
    assert policy.available_dictionary_value(EXAMPLE_HASH) == (
        ":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:"
    )
    assert policy.dictionary_id_value("/v1/main.js 33a64df5") == '"/v1/main.js 33a64df5"'
    assert policy.dictionary_id_value('a"b\\') == '"a\\"b\\\\"'
    with pytest.raises(ValueError, match="32"):
        policy.available_dictionary_value(b"short")
    with pytest.raises(ValueError, match="1024"):
        policy.dictionary_id_value("x" * 1025)


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("https://example.com/", True),
        ("http://example.com/", False),
        ("http://localhost:8080/", True),
        ("http://LOCALHOST./", True),
        ("http://app.localhost/", True),
        ("http://127.0.0.1/", True),
        ("http://127.9.8.7:81/", True),
        ("http://[::1]:8080/", True),
        ("http://10.0.0.1/", False),
        ("http://localhost.example.com/", False),
        ("ws://localhost/", False),
        ("wss://example.com/", False),
    ],
)
def test_secure_context(url: str, secure: bool) -> None:
    assert policy.secure_context(URL(url)) is secure


@pytest.mark.parametrize(
    ("coding", "header", "error"),
    [
        ("dcb", b"\xff\x44\x43\x42" + EXAMPLE_HASH, None),
        ("dcz", b"\x5e\x2a\x4d\x18\x20\x00\x00\x00" + EXAMPLE_HASH, None),
        ("dcb", b"\xff\x44\x43\x43" + EXAMPLE_HASH, "bad magic number ff444343"),
        ("dcz", b"\x5e\x2a\x4d\x18\x21\x00\x00\x00" + EXAMPLE_HASH, "bad magic"),
        ("dcz", b"\xff\x44\x43\x42" + EXAMPLE_HASH + b"1234", "bad magic"),
        ("dcb", b"\xff\x44\x43\x42" + EXAMPLE_HASH[:-1], "36 bytes"),
    ],
)
def test_stream_headers(coding: str, header: bytes, error: str | None) -> None:
    assert policy.stream_header_size(coding) == len(policy.STREAM_MAGIC[coding]) + 32
    if error is None:
        assert policy.parse_stream_header(coding, header) == EXAMPLE_HASH
    else:
        with pytest.raises(ValueError, match=error):
            policy.parse_stream_header(coding, header)


# -- CompressionDictionary -------------------------------------------------------------------


def test_compression_dictionary_value() -> None:
    data = b"a dictionary"
    d = CompressionDictionary(bytearray(data), id="v1", url="https://Example.com/d")
    assert d.data == data and type(d.data) is bytes
    assert d.sha256 == hashlib.sha256(data).digest()
    assert d.url == "https://example.com/d"
    assert d == CompressionDictionary(data, id="v1", url="https://example.com/d")
    assert CompressionDictionary(data, id="").id is None
    assert repr(d) == (
        f"<anysoup.CompressionDictionary 12 bytes sha256={serialize_byte_sequence(d.sha256)}"
        " id='v1' url='https://example.com/d'>"
    )
    with pytest.raises(AttributeError):
        d.data = b"other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"data": "text"}, TypeError, "data: expected bytes, not str"),
        ({"data": b"x", "id": 5}, TypeError, "id: expected str"),
        ({"data": b"x", "id": "x" * 1025}, ValueError, "1025 characters"),
        ({"data": b"x", "id": "caf\u00e9"}, ValueError, "printable ASCII"),
        ({"data": b"x", "url": "/relative"}, ValueError, "url:"),
        ({"data": b"x", "url": "wss://example.com/"}, ValueError, "not an http"),
    ],
)
def test_compression_dictionary_refuses(
    kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        CompressionDictionary(**kwargs)


# -- the dcb and dcz stream decoders ---------------------------------------------------------

_RNG = random.Random(9842)
DICTIONARY = _RNG.randbytes(40_000)
# A new version of the dictionary: most of it only compresses well with it.
BODY = DICTIONARY[:15_000] + b"a change" + DICTIONARY[15_000:] + _RNG.randbytes(100)


def dcz(body: bytes, dictionary: bytes = DICTIONARY, sha256: bytes | None = None) -> bytes:
    raw = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    frame = zstandard.ZstdCompressor(dict_data=raw).compress(body)
    return policy.DCZ_MAGIC + (sha256 or hashlib.sha256(dictionary).digest()) + frame


def decode_in_steps(
    coding: str, dictionary: CompressionDictionary, data: bytes, step: int
) -> bytes:
    make = codings.dictionary_decoder_for(coding, dictionary)
    assert not isinstance(make, str), make
    decoder = make()
    out = []
    for i in range(0, len(data), step):
        out.append(decoder.decode(data[i : i + step]))
        while decoder.pending:
            out.append(decoder.decode(b""))
    decoder.finish()
    return b"".join(out)


@pytest.mark.parametrize("step", [1, 7, 39, 40, 41, 4096, 1 << 20])
def test_dcz_decodes_in_any_chunking(step: int) -> None:
    data = dcz(BODY)
    assert len(data) < len(BODY) // 10  # the dictionary did the work
    assert decode_in_steps("dcz", CompressionDictionary(DICTIONARY), data, step) == BODY


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (dcz(BODY, sha256=bytes(32)), "compressed with another dictionary"),
        (b"\xff\x44\x43\x42" + hashlib.sha256(DICTIONARY).digest() + b"more", "bad magic"),
        (dcz(BODY)[:30], "cut inside the compressed stream"),  # the header cut short
        (dcz(BODY)[:60], "cut inside the compressed stream"),  # the frame cut short
    ],
)
def test_dcz_refuses(data: bytes, text: str) -> None:
    with pytest.raises(CodingFailure, match=text):
        decode_in_steps("dcz", CompressionDictionary(DICTIONARY), data, 16)


def test_dcz_empty_body_and_header_only() -> None:
    d = CompressionDictionary(DICTIONARY)
    assert decode_in_steps("dcz", d, b"", 1) == b""
    assert decode_in_steps("dcz", d, dcz(BODY)[:40], 3) == b""


def test_dcz_with_the_wrong_dictionary_bytes_fails() -> None:
    # Right hash in the header, wrong bytes: the hash is the dictionary's own,
    # so decoding with other bytes can only happen with another header.
    other = CompressionDictionary(_RNG.randbytes(40_000))
    with pytest.raises(CodingFailure, match="another dictionary"):
        decode_in_steps("dcz", other, dcz(BODY), 512)


def test_a_dictionary_coding_without_a_dictionary() -> None:
    reason = codings.dictionary_decoder_for("dcz", None)
    assert reason == (
        "the response is 'dcz'-encoded, but no compression dictionary was offered for the request"
    )


class _IdentityBrotli:
    """A stand-in for a brotli binding that takes a dictionary: it copies its input."""

    error = ValueError

    class Decompressor:
        dictionaries: ClassVar[list[bytes]] = []

        def __init__(self, dictionary: bytes = b"") -> None:
            self.dictionaries.append(dictionary)
            self.done = False

        def process(self, data: bytes) -> bytes:
            return data

        def is_finished(self) -> bool:
            return False


def test_dcb_checks_the_header_then_hands_the_rest_over() -> None:
    # No installed binding decodes brotli with a dictionary (see
    # test_dictionary_support): the dcb wiring is checked with a stand-in.
    d = CompressionDictionary(DICTIONARY)
    decoder = codings._make("dcb", _IdentityBrotli, d)
    payload = b"compressed bytes" * 100
    out = decoder.decode(policy.DCB_MAGIC + d.sha256[:10])
    out += decoder.decode(d.sha256[10:] + payload[:5])
    while decoder.pending:
        out += decoder.decode(b"")
    out += decoder.decode(payload[5:])
    while decoder.pending:
        out += decoder.decode(b"")
    assert out == payload
    assert _IdentityBrotli.Decompressor.dictionaries[-1] == DICTIONARY


def test_dictionary_support() -> None:
    support = ContentDecoder.dictionary_support()
    assert set(support) == {"dcb", "dcz"}
    assert support["dcz"] is None  # zstandard is installed for the tests
    assert codings.decodable_codings() == tuple(c for c in ("dcb", "dcz") if support[c] is None)
    reason = support["dcb"]
    if reason is None:  # some binding decodes with a dictionary: it must be real
        module = codings._library("dcb")[0]
        module.Decompressor(dictionary=b"x")
    else:
        assert reason.startswith("'dcb' needs a brotli library")
        assert "brotli" in reason
