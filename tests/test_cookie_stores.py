"""CookieJarText and CookieJarDB: formats, round trips, reloads, crash safety.

Every test that writes runs on both backends; sessions are checked with
``leak_check`` (the writer task must be gone too).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

from anysoup import Message, Session
from anysoup._features.cookies import stores as stores
from anysoup._features.cookies.jar import Cookie, CookieJar, SameSitePolicy
from anysoup._features.cookies.stores import CookieJarDB, CookieJarText

LeakCheck = Callable[[Session], Awaitable[None]]
Store = type[CookieJarText] | type[CookieJarDB]
UTC = timezone.utc
BOUND = 10.0
STORES = [pytest.param(CookieJarText, id="text"), pytest.param(CookieJarDB, id="db")]


def in_an_hour() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def names(jar: CookieJar) -> list[str]:
    return sorted(c.name for c in jar.all_cookies())


async def setter(conn: ServerConnection, req: ReceivedRequest) -> None:
    """``/set`` sets cookies; every path echoes the Cookie header."""
    headers = []
    if req.target == "/set":
        headers = [
            ("Set-Cookie", "keep=1; Max-Age=3600"),
            ("Set-Cookie", "hidden=2; Max-Age=3600; HttpOnly; SameSite=Strict"),
            ("Set-Cookie", "session=3"),
        ]
    await conn.respond(200, headers, json.dumps({"cookie": req.header("cookie")}).encode())


# -- round trips through sessions ----------------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_round_trip_across_two_sessions(
    store: Store, tmp_path: Path, leak_check: LeakCheck
) -> None:
    filename = tmp_path / "cookies"
    async with serve_http(setter) as server:
        first = store(filename)
        async with Session(features=[first]) as session:
            with anyio.fail_after(BOUND):
                await session.send_and_read(Message("GET", server.url_for("/set")))
        await leak_check(session)
        assert filename.exists()  # complete when the session closed
        second = store(filename)
        assert second.is_persistent()
        assert names(second) == ["hidden", "keep"]  # no session cookie
        async with Session(features=[second]) as session:
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(Message("GET", server.url_for("/")))
        await leak_check(session)
    assert json.loads(body)["cookie"] == "keep=1; hidden=2"


async def test_db_keeps_same_site_and_uses_libsoups_table(tmp_path: Path) -> None:
    filename = tmp_path / "cookies.sqlite"
    jar = CookieJarDB(filename)
    jar.add_cookie(
        Cookie("s", "1", ".example.com", "/", in_an_hour(), True, True, SameSitePolicy.STRICT)
    )
    await jar.flush()
    with sqlite3.connect(filename) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(moz_cookies)")]
        rows = db.execute(
            "SELECT name, host, isSecure, isHttpOnly, sameSite FROM moz_cookies"
        ).fetchall()
    db.close()
    assert columns == [
        "id", "name", "value", "host", "path", "expiry",
        "lastAccessed", "isSecure", "isHttpOnly", "sameSite",
    ]  # fmt: skip
    assert rows == [("s", ".example.com", 1, 1, 2)]
    again = CookieJarDB(filename)
    assert again.all_cookies() == jar.all_cookies()


# -- cookies.txt and the standard library --------------------------------------------


async def test_text_read_by_mozilla_cookie_jar(tmp_path: Path) -> None:
    filename = tmp_path / "cookies.txt"
    jar = CookieJarText(filename)
    when = in_an_hour()
    jar.add_cookie(Cookie("dom", "1", ".example.com", "/", when))
    jar.add_cookie(Cookie("host", "2", "www.example.com", "/app", when, secure=True))
    jar.add_cookie(Cookie("ho", "3", "example.com", "/", when, http_only=True))
    jar.add_cookie(Cookie("sess", "4", "example.com"))  # session: not written
    jar.add_cookie(Cookie("tab", "a\tb", "example.com", "/", when))  # unwritable
    await jar.flush()
    mozilla = http.cookiejar.MozillaCookieJar(str(filename))
    mozilla.load()
    seen = {c.name: c for c in mozilla}
    assert sorted(seen) == ["dom", "ho", "host"]
    assert seen["dom"].domain == ".example.com" and seen["dom"].domain_specified
    assert seen["host"].domain == "www.example.com" and not seen["host"].domain_specified
    assert seen["host"].secure and seen["host"].path == "/app"
    assert seen["host"].expires == int(when.timestamp())
    assert seen["ho"].has_nonstandard_attr("HTTPOnly")
    assert oct(filename.stat().st_mode & 0o777) == "0o600"


def test_text_reads_mozilla_cookie_jar(tmp_path: Path) -> None:
    filename = tmp_path / "cookies.txt"
    mozilla = http.cookiejar.MozillaCookieJar(str(filename))
    expires = int(in_an_hour().timestamp())
    for name, domain, path, secure in [
        ("dom", ".example.com", "/", False),
        ("host", "www.example.com", "/app", True),
    ]:
        mozilla.set_cookie(
            http.cookiejar.Cookie(
                0, name, "v", None, False, domain, domain.startswith("."), domain.startswith("."),
                path, True, secure, expires, False, None, None, {},
            )
        )  # fmt: skip
    mozilla.save()
    jar = CookieJarText(filename)
    assert jar.get_cookies("https://www.example.com/app/x", True) == "host=v; dom=v"
    assert jar.get_cookies("http://example.com/", True) == "dom=v"


def test_text_reads_curl_and_hostile_lines(tmp_path: Path) -> None:
    filename = tmp_path / "cookies.txt"
    filename.write_text(
        "# Netscape HTTP Cookie File\n"
        "#HttpOnly_.example.com\tTRUE\t/\tFALSE\t4102444800\tho\t1\n"
        "example.com\tTRUE\t/\tFALSE\t4102444800\tdot\t2\n"  # curl without the dot
        "example.com\tFALSE\t/\tFALSE\t0\tsess\t3\n"  # 0: a session cookie
        ".com\tTRUE\t/\tFALSE\t4102444800\tsuper\t4\n"  # public suffix: refused
        "example.com\tFALSE\t/\tFALSE\t99999999999999999999\thuge\t5\n"
        "example.com\tFALSE\t/\tFALSE\tsoon\tbad\t6\n"
        "example.com\tFALSE\t/\tFALSE\t1\texpired\t7\n"
        "not enough fields\n"
        "\t\t\t\t\t\t\n"
        "\x00garbage\xff\n"
    )
    jar = CookieJarText(filename)
    assert names(jar) == ["dot", "ho", "huge", "sess"]
    assert jar.get_cookies("http://www.example.com/", False) == "dot=2"


# -- reloading what another process wrote --------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_reload_after_another_writer(store: Store, tmp_path: Path) -> None:
    filename = tmp_path / "cookies"
    mine, theirs = store(filename), store(filename)
    mine.add_cookie(Cookie("session", "s", "example.com"))  # memory only
    theirs.add_cookie(Cookie("a", "1", "example.com", "/", in_an_hour()))
    await theirs.flush()
    assert names(mine) == ["a", "session"]
    mine.add_cookie(Cookie("b", "2", "example.com", "/", in_an_hour()))  # not yet written
    theirs.add_cookie(Cookie("c", "3", "example.com", "/", in_an_hour()))
    await theirs.flush()
    await mine.flush()  # merges theirs before writing: nothing is lost
    assert names(store(filename)) == ["a", "b", "c"]
    theirs.delete_cookie(theirs.all_cookies()[0])
    await theirs.flush()
    assert len(mine.all_cookies()) == 3  # two persistent + the session cookie


@pytest.mark.parametrize("store", STORES)
async def test_changes_are_written_off_the_event_loop(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leak_check: LeakCheck
) -> None:
    threads: list[threading.Thread] = []
    write = stores._write_db if store is CookieJarDB else stores._replace_file

    def spy(*args: object) -> None:
        threads.append(threading.current_thread())
        write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(stores, write.__name__, spy)
    jar = store(tmp_path / "cookies")
    async with Session(features=[jar]) as session:
        jar.add_cookie(Cookie("a", "1", "example.com", "/", in_an_hour()))
        with anyio.fail_after(BOUND):
            # Polled on purpose: the writer task must run without any flush.
            while not threads:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    await leak_check(session)
    assert threads and all(t is not threading.main_thread() for t in threads)


@pytest.mark.parametrize("store", STORES)
async def test_read_only_never_writes(store: Store, tmp_path: Path) -> None:
    filename = tmp_path / "cookies"
    writer = store(filename)
    writer.add_cookie(Cookie("a", "1", "example.com", "/", in_an_hour()))
    await writer.flush()
    before = filename.read_bytes()
    jar = store(filename, read_only=True)
    seen: list[object] = []
    jar.changed.connect(lambda *args: seen.append(args))
    jar.set_cookie("http://example.com/", "b=2; Max-Age=60")
    jar.delete_cookie(jar.all_cookies()[0])
    assert names(jar) == ["b"]  # in memory
    await jar.flush()
    assert filename.read_bytes() == before and seen == []
    empty = store(tmp_path / "absent", read_only=True)
    empty.add_cookie(Cookie("c", "1", "example.com", "/", in_an_hour()))
    await empty.flush()
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("store", STORES)
async def test_deletion_and_expiry_are_written(store: Store, tmp_path: Path) -> None:
    filename = tmp_path / "cookies"
    jar = store(filename)
    jar.set_cookie("http://example.com/", "a=1; Max-Age=600")
    jar.set_cookie("http://example.com/", "b=1; Max-Age=600")
    await jar.flush()
    jar.set_cookie("http://example.com/", "a=1; Max-Age=0")  # the server deletes it
    jar.set_cookie("http://example.com/", "b=2; Max-Age=600")  # and replaces this one
    await jar.flush()
    again = store(filename)
    assert [(c.name, c.value) for c in again.all_cookies()] == [("b", "2")]


async def test_failed_text_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename = tmp_path / "cookies.txt"
    jar = CookieJarText(filename)
    jar.add_cookie(Cookie("a", "1", "example.com", "/", in_an_hour()))
    await jar.flush()
    before = filename.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    jar.add_cookie(Cookie("b", "2", "example.com", "/", in_an_hour()))
    with pytest.raises(OSError, match="disk full"):
        await jar.flush()
    assert filename.read_bytes() == before
    assert listing(tmp_path) == ["cookies.txt"]  # no temporary file left
    monkeypatch.undo()
    await jar.flush()  # the change was kept for the next try
    assert names(CookieJarText(filename)) == ["a", "b"]


def test_not_a_database_loads_nothing(tmp_path: Path) -> None:
    filename = tmp_path / "cookies.sqlite"
    filename.write_bytes(b"this is not SQLite")
    assert CookieJarDB(filename).all_cookies() == []
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute(stores._CREATE)
        db.execute(
            "INSERT INTO moz_cookies VALUES (NULL, 'a', '1', 'example.com', '/', 4102444800, "
            "NULL, 1, 0, 9), (NULL, NULL, 'x', 'h', '/', 1, NULL, 0, 0, 0), "
            "(NULL, 'b', '2', '.com', '/', 4102444800, NULL, 0, 0, 1)"
        )
    db.close()
    jar = CookieJarDB(tmp_path / "other.sqlite")
    assert [(c.name, c.same_site) for c in jar.all_cookies()] == [("a", SameSitePolicy.LAX)]
    assert "filename=" in repr(jar)
