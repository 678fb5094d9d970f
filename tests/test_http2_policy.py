"""The HTTP/2 header-block rules (``_drivers/http2_policy.py``), without I/O."""

from __future__ import annotations

import pytest

from anysoup._drivers.http2_policy import error_name, reason_phrase, request_block, split_status


def test_request_block_pseudo_headers_first_and_names_in_lower_case() -> None:
    block = request_block("POST", "https", "example.org", "/a?b", [("X-Thing", "1")])
    assert block == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.org"),
        (b":path", b"/a?b"),
        (b"x-thing", b"1"),
    ]


def test_connection_specific_fields_are_dropped() -> None:
    headers = [
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "named by Connection"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("TE", "gzip"),
        ("X-Kept", "yes"),
    ]
    block = request_block("GET", "https", "h", "/", headers)
    assert [n for n, _ in block if not n.startswith(b":")] == [b"x-kept"]


def test_te_trailers_is_kept_and_host_becomes_authority() -> None:
    headers = [("TE", "Trailers"), ("Host", "o.ex")]
    block = dict(request_block("GET", "https", "plan", "/", headers))
    assert block[b":authority"] == b"o.ex"
    assert block[b"te"] == b"trailers"
    assert b"host" not in block


def test_values_are_octets_without_surrounding_whitespace() -> None:
    block = dict(request_block("GET", "https", "h", "/", [("X-Latin", " caf\xe9\t")]))
    assert block[b"x-latin"] == b"caf\xe9"


def test_split_status() -> None:
    assert split_status([(b":status", b"204"), (b"a", b"1")]) == (204, [(b"a", b"1")])
    for bad in ([], [(b":status", b"2x4")], [(b":status", b"99")], [(b"a", b"1")]):
        with pytest.raises(ValueError, match=":status"):
            split_status(bad)


def test_error_names_and_reason_phrases() -> None:
    assert error_name(0x7) == "REFUSED_STREAM"
    assert error_name(0xD) == "HTTP_1_1_REQUIRED"
    assert error_name(0x42) == "error 0x42"
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(299) == "Unknown Error"  # libsoup's soup_status_get_phrase


def test_credentials_and_short_cookies_are_never_indexed() -> None:
    from hpack import NeverIndexedHeaderTuple

    headers = [
        ("Authorization", "Basic eDp5"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Cookie", "a=1"),
        ("Cookie", "session=0123456789abcdef0123"),
        ("Accept", "*/*"),
    ]
    block = request_block("GET", "https", "h", "/", headers)[4:]
    never = [type(field) is NeverIndexedHeaderTuple for field in block]
    assert never == [True, True, True, False, False]
