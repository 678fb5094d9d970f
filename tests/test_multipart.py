"""Multipart bodies: exact bytes for a known boundary, then one upload to httpbin."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import anysoup._model.multipart
from anysoup import Message, MessageHeaders, Multipart, Session

LeakCheck = Callable[[Session], Awaitable[None]]

BOUNDARY = "test-boundary"


def encode(mp: Multipart) -> tuple[str | None, bytes]:
    headers = MessageHeaders()
    body = mp.to_message(headers)
    return headers.get_one("Content-Type"), body


# -- encoding ------------------------------------------------------------------------


def test_form_fields_and_a_file_exact_bytes() -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_form_string("title", "Holiday")
    mp.append_form_file("photo", "beach.jpg", "image/jpeg", b"\xff\xd8jpeg")
    mp.append_part({"X-Custom": "1"}, b"raw")
    content_type, body = encode(mp)
    assert content_type == "multipart/form-data; boundary=test-boundary"
    assert body == (
        b"--test-boundary\r\n"
        b'Content-Disposition: form-data; name="title"\r\n'
        b"\r\n"
        b"Holiday\r\n"
        b"--test-boundary\r\n"
        b'Content-Disposition: form-data; name="photo"; filename="beach.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n"
        b"\r\n"
        b"\xff\xd8jpeg\r\n"
        b"--test-boundary\r\n"
        b"X-Custom: 1\r\n"
        b"\r\n"
        b"raw\r\n"
        b"--test-boundary--\r\n"
    )


def test_a_part_without_headers_and_an_empty_multipart() -> None:
    mp = Multipart("multipart/mixed", boundary=BOUNDARY)
    assert encode(mp) == ("multipart/mixed; boundary=test-boundary", b"--test-boundary--\r\n")
    mp.append_part([], b"")
    assert encode(mp)[1] == b"--test-boundary\r\n\r\n\r\n--test-boundary--\r\n"


def test_a_file_without_filename_or_content_type() -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_form_file("f", None, None, b"x")
    headers, body = mp.get_part(0)
    assert headers.items() == [("Content-Disposition", 'form-data; name="f"')]
    assert body == b"x"


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", b'"plain"'),
        ('a"b', b'"a%22b"'),
        ("a\r\nb", b'"a%0D%0Ab"'),
        ("back\\slash", b'"back\\\\slash"'),
        ("a;b=c", b'"a;b=c"'),
        ("r\u00e9sum\u00e9 \u65e5\u672c.txt", '"r\u00e9sum\u00e9 \u65e5\u672c.txt"'.encode()),
    ],
)
def test_names_and_filenames_are_quoted_as_browsers_do(name: str, quoted: bytes) -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_form_string(name, "v")
    mp.append_form_file("file", name, "text/plain", b"v")
    body = encode(mp)[1]
    assert b"form-data; name=" + quoted + b"\r\n" in body
    assert b'form-data; name="file"; filename=' + quoted + b"\r\n" in body


def test_values_are_utf8() -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_form_string("n", "caf\u00e9\r\n")
    assert mp.get_part(0)[1] == "caf\u00e9\r\n".encode()


def test_a_colliding_boundary_is_replaced() -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_part({}, b"...--test-boundary...")
    content_type, body = encode(mp)
    assert mp.boundary != BOUNDARY and mp.boundary.startswith("anysoup-")
    assert content_type == f"multipart/form-data; boundary={mp.boundary}"
    assert body.count(mp.boundary.encode()) == 2


def test_the_boundary_is_searched_in_headers_too(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["anysoup-" + "0" * 32, "anysoup-" + "1" * 32])
    monkeypatch.setattr(anysoup._model.multipart, "_new_boundary", lambda: next(drawn))
    mp = Multipart()
    assert mp.boundary == "anysoup-" + "0" * 32
    mp.append_form_string("anysoup-" + "0" * 32, "v")
    encode(mp)
    assert mp.boundary == "anysoup-" + "1" * 32


def test_random_boundaries_differ_and_are_tokens() -> None:
    a, b = Multipart(), Multipart()
    assert a.boundary != b.boundary
    assert len(a.boundary) == len("anysoup-") + 32
    assert encode(a)[0] == f"multipart/form-data; boundary={a.boundary}"


def test_a_boundary_with_a_space_is_quoted() -> None:
    assert encode(Multipart(boundary="a b"))[0] == 'multipart/form-data; boundary="a b"'


def test_length_parts_and_repr() -> None:
    mp = Multipart()
    mp.append_form_string("a", "1")
    mp.append_form_string("b", "2")
    assert mp.get_length() == len(mp) == 2
    assert mp.get_part(-1)[1] == b"2"
    assert repr(mp) == "<Multipart multipart/form-data with 2 parts>"
    with pytest.raises(IndexError):
        mp.get_part(2)


def test_the_caller_objects_are_not_shared() -> None:
    given = MessageHeaders({"X-A": "1"})
    body = bytearray(b"data")
    mp = Multipart()
    mp.append_part(given, body)
    given.append("X-B", "2")
    body[0:1] = b"D"
    headers, got = mp.get_part(0)
    assert headers.items() == [("X-A", "1")] and got == b"data"
    headers.append("X-C", "3")
    assert mp.get_part(0)[0].items() == [("X-A", "1")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mime_type": "text/plain"}, "multipart/<subtype>"),
        ({"mime_type": "multipart/"}, "multipart/<subtype>"),
        ({"mime_type": "multipart/mixed\r\nX: y"}, "multipart/<subtype>"),
        ({"boundary": ""}, "RFC 2046"),
        ({"boundary": "a" * 71}, "RFC 2046"),
        ({"boundary": "ends with space "}, "RFC 2046"),
        ({"boundary": "bad\r\n"}, "RFC 2046"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Multipart(**kwargs)


def test_header_injection_and_wrong_types_are_refused() -> None:
    mp = Multipart()
    with pytest.raises(ValueError, match="control characters"):
        mp.append_form_string("a\x00b", "v")
    with pytest.raises(ValueError, match="control characters"):
        mp.append_form_file("f", "x.txt", "text/plain\r\nX-Evil: 1", b"")
    with pytest.raises(ValueError, match="invalid header name"):
        mp.append_part({"Bad Name": "v"}, b"")
    with pytest.raises(TypeError, match="must be str"):
        mp.append_form_string("n", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        mp.append_form_file(1, None, None, b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be bytes"):
        mp.append_part({}, "text")  # type: ignore[arg-type]
    assert len(mp) == 0


def test_new_from_multipart_is_a_replayable_post() -> None:
    mp = Multipart(boundary=BOUNDARY)
    mp.append_form_string("a", "1")
    msg = Message.new_from_multipart("http://example.com/upload", mp)
    assert msg.method == "POST"
    assert msg.request_headers.get_one("Content-Type") == (
        "multipart/form-data; boundary=test-boundary"
    )
    assert msg.request_body is not None and msg.request_body.replayable
    assert msg.request_body.data == encode(mp)[1]
    mp.append_form_string("b", "2")  # later changes don't reach the message
    assert msg.request_body.data.count(b"--test-boundary") == 2


# -- on the wire: httpbin ------------------------------------------------------------


@pytest.fixture
def httpbin_url(httpbin: Any) -> str:
    return str(httpbin.url)


async def test_upload_to_httpbin(httpbin_url: str, leak_check: LeakCheck) -> None:
    mp = Multipart()
    mp.append_form_string("title", "Holiday \u00e9t\u00e9")
    mp.append_form_file("notes", "notes.txt", "text/plain", b"hello\r\nworld")
    async with Session() as session:
        msg = Message.new_from_multipart(httpbin_url + "/post", mp)
        with anyio.fail_after(10):
            data = json.loads(await session.send_and_read(msg))
        assert msg.status == 200
        assert data["form"] == {"title": "Holiday \u00e9t\u00e9"}
        assert data["files"] == {"notes": "hello\r\nworld"}
        assert data["headers"]["Content-Type"] == f"multipart/form-data; boundary={mp.boundary}"
    await leak_check(session)
