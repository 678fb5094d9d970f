"""CookieJar: parsing, dates, domains, paths, prefixes, caps, policies, SameSite, the wire.

First the policy (``_cookie_parse``: no I/O) as tables and property tests,
then the jar's storage model and lookups, then the feature on the wire
against the scripted h11 server and httpbin, on both backends.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Message, Session
from anysoup._features.cookies import cookie_policy as _cookie
from anysoup._features.cookies import jar as _cookies
from anysoup._features.cookies import parse_policy as cp
from anysoup._features.cookies.jar import Cookie, CookieJar, CookieJarAcceptPolicy

LeakCheck = Callable[[Session], Awaitable[None]]
UTC = timezone.utc
BOUND = 10.0
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def names(cookies: list[Cookie]) -> list[str]:
    return [c.name for c in cookies]


# -- the policy module stays pure ----------------------------------------------------


def test_policy_module_imports_no_async_library() -> None:
    tree = ast.parse(Path(cp.__file__).read_text())
    imported = {
        (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not imported & {"anyio", "trio", "asyncio", "h11", "socket", "sqlite3", "os"}


# -- cookie dates (RFC 6265 §5.1.1) --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Wed, 09 Jun 2021 10:18:14 GMT", datetime(2021, 6, 9, 10, 18, 14, tzinfo=UTC)),
        ("09 Jun 21 10:18:14", datetime(2021, 6, 9, 10, 18, 14, tzinfo=UTC)),
        ("1 january 70 0:0:0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1 JANUARY 69 23:59:59", datetime(2069, 1, 1, 23, 59, 59, tzinfo=UTC)),
        ("Thu, 01-Jan-1970 00:00:01 GMT", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("Mon, 01 Jan 1601 00:00:00 GMT", datetime(1601, 1, 1, tzinfo=UTC)),
        ("Mon, 01 Jan 1600 00:00:00 GMT", None),  # before 1601
        ("Mon, 30 Feb 2021 00:00:00 GMT", None),  # no such day
        ("Mon, 32 Jan 2021 00:00:00 GMT", None),
        ("Mon, 01 Jan 2021 24:00:00 GMT", None),
        ("Mon, 01 Jan 2021 00:60:00 GMT", None),
        ("Mon, 01 Jan 2021 00:00:60 GMT", None),
        ("Mon, 01 Foo 2021 00:00:00 GMT", None),
        ("Mon, 01 Jan 2021", None),  # no time
        ("", None),
        ("999999999999999999999 Jan 99999999999999 1:1:1", None),  # no overflow, no match
        ("01 Jan 2021 00:00:00junk", datetime(2021, 1, 1, tzinfo=UTC)),
    ],
)
def test_cookie_date(text: str, expected: datetime | None) -> None:
    assert cp.parse_cookie_date(text) == expected


@given(st.text())
def test_cookie_date_never_raises(text: str) -> None:
    result = cp.parse_cookie_date(text)
    assert result is None or (1601 <= result.year <= 9999 and result.tzinfo is UTC)


@given(st.binary().map(lambda b: b.decode("latin-1")))
def test_cookie_date_never_raises_on_any_byte(text: str) -> None:
    cp.parse_cookie_date(text)


@given(
    st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    )
)
def test_cookie_date_round_trip(when: datetime) -> None:
    assert cp.parse_cookie_date(cp.format_cookie_date(when)) == when


@given(st.integers(min_value=0, max_value=99))
def test_two_digit_years(year: int) -> None:
    parsed = cp.parse_cookie_date(f"01 Jan {year:02d} 00:00:00")
    assert parsed is not None
    assert parsed.year == (1900 + year if year >= 70 else 2000 + year)


# -- Set-Cookie parsing (RFC 6265bis §5.6) -------------------------------------------


@given(st.text())
def test_set_cookie_never_raises(header: str) -> None:
    cp.parse_set_cookie(header, NOW)
    Cookie.parse(header, "http://www.example.com/a/b")


@given(st.text(), st.text())
def test_set_cookie_with_any_attributes_never_raises(name: str, value: str) -> None:
    for attr in ("Expires", "Max-Age", "Domain", "Path", "SameSite"):
        Cookie.parse(f"a=b; {attr}={value}; {name}", "https://example.com/")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=b", ("a", "b")),
        ("  a  =  b  ", ("a", "b")),
        ("a=", ("a", "")),
        ("=b", ("", "b")),
        ("b", ("", "b")),  # nameless (§5.6 step 4)
        ("a=b=c", ("a", "b=c")),
        ('a="b c"', ("a", '"b c"')),
        ("a=b\tc", ("a", "b\tc")),  # tab is allowed
        ("=", None),
        ("", None),
        (";", None),
        ("a=b\x00", None),  # control characters: the whole cookie goes
        ("a=b\x7f", None),
        ("a\x01=b", None),
        ("a=b; Path=/\x0b", None),
        ("a=" + "x" * 4095, ("a", "x" * 4095)),
        ("a=" + "x" * 4096, None),  # name + value over 4096
    ],
)
def test_name_value(header: str, expected: tuple[str, str] | None) -> None:
    parsed = cp.parse_set_cookie(header, NOW)
    assert (None if parsed is None else (parsed.name, parsed.value)) == expected


def test_attributes() -> None:
    parsed = cp.parse_set_cookie(
        "id=1; Path=/docs; Domain=.Example.COM; Secure; HttpOnly; SameSite=strict; x=y; flag",
        NOW,
    )
    assert parsed is not None
    assert parsed.path == "/docs"
    assert parsed.domain == "example.com"
    assert parsed.secure and parsed.http_only
    assert parsed.same_site == "strict"
    assert parsed.expires is None


@pytest.mark.parametrize(
    ("attrs", "same_site"),
    [
        ("", None),
        ("; SameSite=None", "none"),
        ("; samesite=LAX", "lax"),
        ("; SameSite=bogus", None),
    ],
)
def test_same_site_values(attrs: str, same_site: str | None) -> None:
    parsed = cp.parse_set_cookie("a=b" + attrs, NOW)
    assert parsed is not None and parsed.same_site == same_site


def test_max_age_wins_over_expires_in_any_order() -> None:
    for header in (
        "a=b; Max-Age=60; Expires=Wed, 09 Jun 2021 10:18:14 GMT",
        "a=b; Expires=Wed, 09 Jun 2021 10:18:14 GMT; Max-Age=60",
    ):
        parsed = cp.parse_set_cookie(header, NOW)
        assert parsed is not None and parsed.expires == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("max_age", "expected"),
    [
        ("60", NOW + timedelta(seconds=60)),
        ("0", cp.EPOCH),
        ("-1", cp.EPOCH),
        ("-99999999999999999999999", cp.EPOCH),
        ("00000000000000000000000030", NOW + timedelta(seconds=30)),
        ("99999999999999999999999999999999", NOW + timedelta(seconds=cp.MAX_AGE_CAP)),
        ("9" * 1000, NOW + timedelta(seconds=cp.MAX_AGE_CAP)),
        ("9" * 2000, None),  # over 1024 characters: ignored
        ("1e3", None),
        ("+5", None),
        (" 5", NOW + timedelta(seconds=5)),
        ("", None),
    ],
)
def test_max_age(max_age: str, expected: datetime | None) -> None:
    parsed = cp.parse_set_cookie(f"a=b; Max-Age={max_age}", NOW)
    assert parsed is not None and parsed.expires == expected


def test_expires_capped_at_400_days() -> None:
    parsed = cp.parse_set_cookie("a=b; Expires=Fri, 31 Dec 9999 23:59:59 GMT", NOW)
    assert parsed is not None and parsed.expires == NOW + timedelta(days=400)
    bad = cp.parse_set_cookie("a=b; Expires=tomorrow", NOW)
    assert bad is not None and bad.expires is None


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_max_age_never_overflows(seconds: int) -> None:
    parsed = cp.parse_set_cookie(f"a=b; Max-Age={seconds}", NOW)
    assert parsed is not None and parsed.expires is not None
    assert parsed.expires <= NOW + timedelta(days=400)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/a", "/a"), ("/", "/"), ("a", None), ("", None), ("/a/b/", "/a/b/")],
)
def test_path_attribute(path: str, expected: str | None) -> None:
    parsed = cp.parse_set_cookie(f"a=b; Path={path}", NOW)
    assert parsed is not None and parsed.path == expected


# -- paths (RFC 6265bis §5.1.4) -----------------------------------------------------


@pytest.mark.parametrize(
    ("uri_path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a", "/"),
        ("/a/", "/a"),
        ("/a/b", "/a"),
        ("/a/b/c", "/a/b"),
        ("x", "/"),
    ],
)
def test_default_path(uri_path: str, expected: str) -> None:
    assert cp.default_path(uri_path) == expected


@pytest.mark.parametrize(
    ("request_path", "cookie_path", "matches"),
    [
        ("/", "/", True),
        ("/a", "/", True),
        ("/a", "/a", True),
        ("/a/b", "/a", True),
        ("/a/", "/a", True),
        ("/ab", "/a", False),
        ("/a", "/a/", False),
        ("/a/b", "/a/", True),
        ("/A", "/a", False),
        ("/", "/a", False),
    ],
)
def test_path_match(request_path: str, cookie_path: str, matches: bool) -> None:
    assert cp.path_match(request_path, cookie_path) is matches


# -- domains: public suffixes, IPs, trailing dots, case, IDN -------------------------


@pytest.mark.parametrize(
    ("origin", "header", "domain"),
    [
        ("http://www.example.com/", "a=b", "www.example.com"),  # host-only
        ("http://www.example.com/", "a=b; Domain=example.com", ".example.com"),
        ("http://www.example.com/", "a=b; Domain=.example.com", ".example.com"),
        ("http://www.example.com/", "a=b; Domain=EXAMPLE.com", ".example.com"),
        # RFC 6265bis §5.6.3 strips a leading dot only; §5.7 then refuses these.
        ("http://www.example.com/", "a=b; Domain=example.com.", None),
        ("http://WWW.EXAMPLE.COM./", "a=b; Domain=Example.Com.", None),
        ("http://home.example.org/", "a=b; Domain=home.example.org.", None),
        ("http://home.example.org./", "a=b; Domain=home.example.org.", None),
        ("http://www.example.com/", "a=b; Domain=www.example.com", ".www.example.com"),
        ("http://www.example.com/", "a=b; Domain=", "www.example.com"),  # empty: ignored
        ("http://www.example.com/", "a=b; Domain=other.com", None),
        ("http://www.example.com/", "a=b; Domain=ww.example.com", None),
        ("http://www.example.com/", "a=b; Domain=sub.www.example.com", None),
        ("http://www.example.com/", "a=b; Domain=ample.com", None),
        ("http://www.example.com/", "a=b; Domain=com", None),  # public suffix
        ("http://www.example.com/", "a=b; Domain=.com", None),
        ("http://www.example.com/", "a=b; Domain=COM.", None),
        ("http://www.example.com/", "a=b; Domain=.com.", None),
        ("http://www.example.com/", "a=b; Domain=..com", None),
        ("http://www.example.com/", "a=b; Domain=example..com", None),
        ("http://www.example.com/", "a=b; Domain=exa mple.com", None),
        ("http://foo.example.co.uk/", "a=b; Domain=co.uk", None),
        ("http://foo.example.co.uk/", "a=b; Domain=CO.UK.", None),  # CVE-2022-27779
        ("http://foo.example.co.uk/", "a=b; Domain=example.co.uk", ".example.co.uk"),
        ("http://x.github.io/", "a=b; Domain=github.io", None),  # private section
        ("http://github.io/", "a=b; Domain=github.io", "github.io"),  # §5.7: host-only
        ("http://co.uk/", "a=b; Domain=CO.uk", "co.uk"),
        ("http://localhost/", "a=b", "localhost"),
        ("http://localhost/", "a=b; Domain=localhost", "localhost"),
        ("http://a.localhost/", "a=b; Domain=localhost", None),
        ("http://pc.lan/", "a=b; Domain=lan", None),  # unlisted TLD: public (the * rule)
        ("http://127.0.0.1/", "a=b", "127.0.0.1"),
        ("http://127.0.0.1/", "a=b; Domain=127.0.0.1", "127.0.0.1"),  # IP: host-only
        ("http://127.0.0.1/", "a=b; Domain=0.0.1", None),
        ("http://127.0.0.1/", "a=b; Domain=.0.0.1", None),
        ("http://10.0.0.1/", "a=b; Domain=1", None),
        ("http://[::1]/", "a=b", "::1"),
        ("http://[::1]/", "a=b; Domain=::1", "::1"),
        ("http://[::1]/", "a=b; Domain=[::1]", "::1"),
        ("http://[2001:db8::1]/", "a=b; Domain=db8::1", None),
        ("http://bücher.example/", "a=b", "xn--bcher-kva.example"),
        (
            "http://www.bücher.example/",
            "a=b; Domain=xn--bcher-kva.example",
            ".xn--bcher-kva.example",
        ),
        ("http://www.bücher.example/", "a=b; Domain=bücher.example", None),  # not A-labels
        ("http://www.example.com/", "a=b; Domain=example\uff0ecom", None),  # full-width dot
    ],
)
def test_cookie_domain(origin: str, header: str, domain: str | None) -> None:
    cookie = Cookie.parse(header, origin)
    assert (None if cookie is None else cookie.domain) == domain


def test_last_domain_attribute_wins() -> None:
    cookie = Cookie.parse("a=b; Domain=bad domain; Domain=example.com", "http://www.example.com/")
    assert cookie is not None and cookie.domain == ".example.com"
    assert Cookie.parse("a=b; Domain=example.com; Domain=x y", "http://www.example.com/") is None


@pytest.mark.parametrize(
    "domain", [".com", ".co.uk", ".github.io", ".1.2.3.4", ".", "", ".a..b.com", ".exa mple.com"]
)
def test_add_cookie_refuses_super_cookies(domain: str) -> None:
    jar = CookieJar()
    jar.add_cookie(Cookie("a", "b", domain))
    assert jar.all_cookies() == []


def test_trailing_dot_and_case_are_one_host() -> None:
    jar = CookieJar()
    jar.set_cookie("http://EXAMPLE.com./", "a=1")
    assert jar.get_cookies("http://example.com/", True) == "a=1"
    assert jar.get_cookies("http://Example.COM./x", True) == "a=1"
    assert jar.get_cookies("http://www.example.com/", True) is None  # host-only
    assert jar.get_cookies("http://com/", True) is None


def test_idn_host_matches_its_punycode() -> None:
    jar = CookieJar()
    jar.set_cookie("http://www.bücher.example/", "a=1; Domain=xn--bcher-kva.example")
    assert jar.get_cookies("http://xn--bcher-kva.example/", True) == "a=1"
    assert jar.get_cookies("http://BÜCHER.example/", True) == "a=1"
    assert jar.get_cookies("http://bucher.example/", True) is None


def test_domain_cookie_not_sent_to_lookalike_hosts() -> None:
    jar = CookieJar()
    jar.set_cookie("http://example.com/", "a=1; Domain=example.com")
    assert jar.get_cookies("http://sub.example.com/", True) == "a=1"
    assert jar.get_cookies("http://badexample.com/", True) is None
    assert jar.get_cookies("http://example.com.evil.net/", True) is None


def test_cookie_helpers() -> None:
    cookie = Cookie.parse("a=b; Domain=example.com; Path=/p; Secure", "https://www.example.com/")
    assert cookie is not None
    assert cookie.domain_matches("example.com") and cookie.domain_matches("A.EXAMPLE.COM.")
    assert not cookie.domain_matches("notexample.com")
    assert cookie.applies_to_uri("https://x.example.com/p/q")
    assert not cookie.applies_to_uri("http://x.example.com/p/q")  # Secure
    assert not cookie.applies_to_uri("https://x.example.com/pq")
    assert cookie.to_cookie_header() == "a=b"
    again = Cookie.parse(cookie.to_set_cookie_header(), "https://www.example.com/")
    assert again == cookie
    lasting = Cookie.new("n", "v", "example.com", "/", 3600)
    assert lasting.expires is not None and not lasting.is_expired()
    assert Cookie.parse(lasting.to_set_cookie_header(), "http://example.com/") is not None
    assert Cookie.new("n", "v", "example.com", max_age=0).is_expired()
    assert Cookie.new("n", "v", "example.com").expires is None
    with pytest.raises(ValueError, match="aware"):
        Cookie("n", "v", "example.com", expires=datetime(2030, 1, 1))
    assert Cookie.parse("a=b; Domain=example.com").domain == ".example.com"  # type: ignore[union-attr]
    assert Cookie.parse("a=b", "not a uri at all") is None


# -- the storage model --------------------------------------------------------------


def test_path_defaults_and_order() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/a/b/page", "deep=1")  # path /a/b
    jar.set_cookie("http://h.test/a/b/page", "root=1; Path=/")
    jar.set_cookie("http://h.test/a/b/page", "mid=1; Path=/a")
    jar.set_cookie("http://h.test/", "root2=1")
    assert jar.get_cookies("http://h.test/a/b/c", True) == "deep=1; mid=1; root=1; root2=1"
    assert jar.get_cookies("http://h.test/a/bc", True) == "mid=1; root=1; root2=1"
    # Replacing keeps the creation time (RFC 6265bis §5.7 step 22).
    jar.set_cookie("http://h.test/", "root=2; Path=/")
    assert jar.get_cookies("http://h.test/x", True) == "root=2; root2=1"


def test_nameless_cookie_is_sent_as_its_value() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/", "lonely")
    assert jar.get_cookies("http://h.test/", True) == "lonely"


def test_secure_cookies() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/", "s=1; Secure")  # not from an insecure origin
    assert jar.all_cookies() == []
    jar.set_cookie("https://h.test/", "s=1; Secure")
    assert jar.get_cookies("http://h.test/", True) is None
    assert jar.get_cookies("https://h.test/", True) == "s=1"
    assert jar.get_cookies("wss://h.test/", True) == "s=1"
    jar.set_cookie("http://h.test/", "s=2")  # may not overwrite a Secure cookie
    jar.set_cookie("http://h.test/", "s=2; Max-Age=0")  # nor delete it
    assert jar.get_cookies("https://h.test/", True) == "s=1"
    jar.set_cookie("https://h.test/", "d=1; Secure; Domain=h.test")
    jar.set_cookie("http://www.h.test/", "d=2; Path=/")  # would shadow it (§5.7 step 16)
    assert names(jar.all_cookies()) == ["s", "d"]
    jar.set_cookie("https://h.test/", "s=3")  # a secure origin may
    assert jar.get_cookies("http://h.test/", True) == "s=3"


def test_http_only_hidden_from_non_http() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/", "a=1; HttpOnly")
    jar.set_cookie("http://h.test/", "b=2")
    assert jar.get_cookies("http://h.test/", True) == "a=1; b=2"
    assert jar.get_cookies("http://h.test/", False) == "b=2"
    assert names(jar.get_cookie_list("http://h.test/", False)) == ["b"]


@pytest.mark.parametrize(
    ("origin", "header", "stored"),
    [
        ("https://h.test/", "__Secure-a=1; Secure", True),
        ("https://h.test/", "__secure-a=1; Secure", True),
        ("https://h.test/", "__Secure-a=1", False),
        ("http://h.test/", "__Secure-a=1; Secure", False),
        ("https://h.test/", "__Host-a=1; Secure; Path=/", True),
        ("https://h.test/", "__HOST-a=1; Secure; Path=/", True),
        ("https://h.test/", "__Host-a=1; Secure", True),  # default path of / is /
        ("https://h.test/x/y", "__Host-a=1; Secure", False),  # default path /x
        ("https://h.test/", "__Host-a=1; Path=/", False),
        ("https://h.test/", "__Host-a=1; Secure; Path=/x", False),
        ("https://w.h.test/", "__Host-a=1; Secure; Path=/; Domain=h.test", False),
        ("https://h.test/", "__Host-a=1; Secure; Path=/; Domain=h.test", False),
        ("https://h.test/", "=__Host-a=1; Secure; Path=/", False),  # nameless impostor
        ("https://h.test/", "__Secure-x", False),
        ("https://h.test/", "a=1; SameSite=None; Secure", True),
        ("https://h.test/", "a=1; SameSite=None", False),  # None needs Secure
    ],
)
def test_prefixes_and_samesite_none(origin: str, header: str, stored: bool) -> None:
    jar = CookieJar()
    jar.set_cookie(origin, header)
    assert bool(jar.all_cookies()) is stored


def test_expired_cookie_deletes_and_is_not_stored() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/", "a=1")
    jar.set_cookie("http://h.test/", "b=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert names(jar.all_cookies()) == ["a"]
    jar.set_cookie("http://h.test/", "a=; Max-Age=0")
    assert jar.all_cookies() == []


def test_expired_cookies_dropped_on_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    jar = CookieJar()
    seen: list[tuple[Cookie | None, Cookie | None]] = []
    jar.changed.connect(lambda j, old, new: seen.append((old, new)))
    jar.set_cookie("http://h.test/", "a=1; Max-Age=10")
    later = datetime.now(UTC) + timedelta(seconds=11)
    monkeypatch.setattr(_cookies, "_now", lambda: later)
    monkeypatch.setattr(_cookie, "_now", lambda: later)
    assert jar.get_cookies("http://h.test/", True) is None
    assert jar.all_cookies() == []
    assert [(o is None, n is None) for o, n in seen] == [(True, False), (False, True)]


def test_size_limits() -> None:
    jar = CookieJar()
    jar.set_cookie("http://h.test/", "a=" + "x" * 4095)
    jar.set_cookie("http://h.test/", "b=" + "x" * 4095)
    jar.set_cookie("http://h.test/", "c=" + "x" * 4096)
    jar.add_cookie(Cookie("d", "x" * 4096, "h.test"))
    jar.add_cookie(Cookie("e", "x\ny", "h.test"))
    jar.add_cookie(Cookie("f", "x; admin=1", "h.test"))  # header injection
    jar.add_cookie(Cookie("g=h", "x", "h.test"))
    assert names(jar.all_cookies()) == ["a", "b"]


def test_per_domain_cap_evicts_oldest_insecure_first() -> None:
    jar = CookieJar()
    jar.set_cookie("https://a.site.test/", "secure0=1; Secure")
    for i in range(1, 50):
        host = "a.site.test" if i % 2 else "b.site.test"  # one registrable domain
        jar.set_cookie(f"http://{host}/", f"c{i}=1")
    assert len(jar.all_cookies()) == 50
    jar.set_cookie("http://c.site.test/", "new=1")
    kept = set(names(jar.all_cookies()))
    assert len(kept) == 50
    assert "secure0" in kept and "new" in kept and "c1" not in kept and "c2" in kept
    jar.set_cookie("http://other.test/", "x=1")  # another domain has its own 50
    assert len(jar.all_cookies()) == 51


def test_per_domain_cap_evicts_expired_first(monkeypatch: pytest.MonkeyPatch) -> None:
    jar = CookieJar()
    for i in range(50):
        jar.set_cookie("http://site.test/", f"c{i}=1" + ("; Max-Age=5" if i == 30 else ""))
    later = datetime.now(UTC) + timedelta(seconds=6)
    monkeypatch.setattr(_cookies, "_now", lambda: later)
    monkeypatch.setattr(_cookie, "_now", lambda: later)
    jar.set_cookie("http://site.test/", "new=1")
    kept = set(names(jar.all_cookies()))
    assert "c30" not in kept and "c0" in kept and "new" in kept and len(kept) == 50


def test_total_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cookies, "MAX_COOKIES", 20)
    jar = CookieJar()
    for i in range(25):
        jar.set_cookie(f"http://h{i}.test/", "a=1")
    hosts = sorted(c.domain for c in jar.all_cookies())
    assert len(hosts) == 20 and "h0.test" not in hosts and "h24.test" in hosts


def test_total_cap_default_is_3000() -> None:
    jar = CookieJar()
    for i in range(3001):
        jar.add_cookie(Cookie(f"n{i % 40}", "v", f"h{i // 40}.test"))
    assert len(jar.all_cookies()) == 3000
    assert repr(jar) == "<anysoup.CookieJar 3000 cookies, accept_policy=ALWAYS>"


def test_delete_cookie_and_changed_signal() -> None:
    jar = CookieJar()
    seen: list[tuple[str | None, str | None]] = []

    def on_changed(owner: CookieJar, old: Cookie | None, new: Cookie | None) -> None:
        assert owner is jar
        seen.append((old and old.value, new and new.value))

    jar.changed.connect(on_changed)
    jar.set_cookie("http://h.test/", "a=1")
    jar.set_cookie("http://h.test/", "a=1")  # no change, no signal
    jar.set_cookie("http://h.test/", "a=2")
    cookie = jar.all_cookies()[0]
    jar.delete_cookie(cookie)
    jar.delete_cookie(cookie)  # already gone
    assert seen == [(None, "1"), ("1", "2"), ("2", None)]


def test_read_only_jar_keeps_changes_in_memory_silently() -> None:
    jar = CookieJar(read_only=True)
    seen: list[object] = []
    jar.changed.connect(lambda *args: seen.append(args))
    jar.set_cookie("http://h.test/", "a=1")
    assert jar.get_cookies("http://h.test/", True) == "a=1"
    assert seen == [] and jar.read_only and not jar.is_persistent()


# -- accept policies -----------------------------------------------------------------


def test_accept_policy_property() -> None:
    jar = CookieJar()
    assert jar.accept_policy is CookieJarAcceptPolicy.ALWAYS
    jar.set_accept_policy(CookieJarAcceptPolicy.NEVER)
    assert jar.get_accept_policy() is CookieJarAcceptPolicy.NEVER
    jar.accept_policy = CookieJarAcceptPolicy.NO_THIRD_PARTY
    assert jar.accept_policy is CookieJarAcceptPolicy.NO_THIRD_PARTY
    with pytest.raises(ValueError):
        jar.accept_policy = 7  # type: ignore[assignment]


def test_never_refuses_responses_but_not_the_program() -> None:
    jar = CookieJar(accept_policy=CookieJarAcceptPolicy.NEVER)
    jar.set_cookie("http://h.test/", "a=1")
    jar.set_cookie_with_first_party("http://h.test/", "http://h.test/", "a=1")
    assert jar.all_cookies() == []
    jar.add_cookie(Cookie("b", "2", "h.test"))  # libsoup: the program's own
    assert names(jar.all_cookies()) == ["b"]


P = CookieJarAcceptPolicy


@pytest.mark.parametrize(
    ("policy", "uri", "first_party", "stored"),
    [
        (P.ALWAYS, "http://ads.test/", "http://news.test/", True),
        (P.ALWAYS, "http://ads.test/", None, True),
        (P.NO_THIRD_PARTY, "http://www.news.test/", "http://news.test/", True),
        (P.NO_THIRD_PARTY, "http://img.news.test/", "http://www.news.test/", True),
        (P.NO_THIRD_PARTY, "http://ads.test/", "http://news.test/", False),
        (P.NO_THIRD_PARTY, "http://ads.test/", None, False),  # no first party: third
        (P.NO_THIRD_PARTY, "http://a.github.io/", "http://b.github.io/", False),  # PSL
        (P.NO_THIRD_PARTY, "http://a.co.uk/", "http://b.co.uk/", False),
        (P.GRANDFATHERED_THIRD_PARTY, "http://www.news.test/", "http://news.test/", True),
        (P.GRANDFATHERED_THIRD_PARTY, "http://ads.test/", "http://news.test/", False),
        (P.NEVER, "http://news.test/", "http://news.test/", False),
    ],
)
def test_third_party_matrix(
    policy: CookieJarAcceptPolicy, uri: str, first_party: str | None, stored: bool
) -> None:
    jar = CookieJar(accept_policy=policy)
    if first_party is None:
        jar.set_cookie(uri, "a=1")
    else:
        jar.set_cookie_with_first_party(uri, first_party, "a=1")
    assert bool(jar.all_cookies()) is stored


def test_grandfathered_third_party() -> None:
    jar = CookieJar(accept_policy=P.GRANDFATHERED_THIRD_PARTY)
    jar.set_cookie_with_first_party("http://ads.test/", "http://ads.test/", "first=1")
    jar.set_cookie_with_first_party("http://ads.test/", "http://news.test/", "later=1")
    jar.set_cookie_with_first_party("http://other.test/", "http://news.test/", "no=1")
    assert sorted(names(jar.all_cookies())) == ["first", "later"]
    jar.add_cookie_with_first_party("http://news.test/", Cookie("c", "1", "x.test"))
    assert "c" not in names(jar.all_cookies())


# -- SameSite (libsoup's rules) ------------------------------------------------------

SITE = "https://app.test/"
OTHER = "https://evil.test/"


@pytest.mark.parametrize("navigation", [True, False], ids=["top-level", "sub"])
@pytest.mark.parametrize("safe", [True, False], ids=["safe", "unsafe"])
@pytest.mark.parametrize("same", [True, False], ids=["same-site", "cross-site"])
@pytest.mark.parametrize("policy", ["Strict", "Lax", "None"])
def test_same_site_matrix(navigation: bool, safe: bool, same: bool, policy: str) -> None:
    jar = CookieJar()
    jar.set_cookie(SITE, f"a=1; SameSite={policy}; Secure")
    site = SITE if same else OTHER
    cookies = jar.get_cookie_list_with_same_site_info(SITE, site, site, True, safe, navigation)
    if policy == "None" or same:
        expected = True
    elif policy == "Lax":
        expected = navigation and safe
    else:
        expected = False
    assert bool(cookies) is expected


def test_same_site_without_top_level_or_site() -> None:
    jar = CookieJar()
    jar.set_cookie(SITE, "a=1; SameSite=Strict")
    jar.set_cookie(SITE, "b=1")  # default: Lax
    assert jar.get_cookies(SITE, True) == "a=1; b=1"  # no top level: not applied
    lookup = jar.get_cookie_list_with_same_site_info
    assert names(lookup(SITE, SITE, None, True, True, False)) == []  # no site for cookies
    assert names(lookup(SITE, SITE, None, True, True, True)) == ["b"]
    assert names(lookup(SITE, SITE, None, False, False, True)) == ["b"]  # scripts: any method
    assert names(lookup(SITE, OTHER, "https://sub.app.test/", True, True, False)) == []


# -- the feature on the wire ---------------------------------------------------------


def cookie_app(routes: dict[str, tuple[int, list[tuple[str, str]]]]) -> Any:
    """Answer each path with its status and headers; the body echoes the Cookie header."""

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        status, headers = routes.get(req.target.split("?")[0], (404, []))
        body = json.dumps({"cookie": req.header("cookie")}).encode()
        await conn.respond(status, headers, body)

    return handler


async def test_set_cookie_then_cookie(leak_check: LeakCheck) -> None:
    jar = CookieJar()
    routes = {
        "/login": (200, [("Set-Cookie", "sid=abc; Path=/"), ("Set-Cookie", "theme=dark")]),
        "/me": (200, []),
    }
    async with serve_http(cookie_app(routes)) as server:
        async with Session(features=[jar]) as session:
            with anyio.fail_after(BOUND):
                first = await session.send_and_read(Message("GET", server.url_for("/login")))
                second = await session.send_and_read(Message("GET", server.url_for("/me")))
        await leak_check(session)
    assert json.loads(first)["cookie"] is None
    assert json.loads(second)["cookie"] == "sid=abc; theme=dark"
    assert session.get_feature(CookieJar) is jar


async def test_cookie_set_on_a_redirect_goes_to_the_target(leak_check: LeakCheck) -> None:
    jar = CookieJar()
    async with serve_http(cookie_app({"/end": (200, [])})) as target:
        routes = {
            "/start": (302, [("Location", target.url_for("/end")), ("Set-Cookie", "hop=1")]),
        }
        async with serve_http(cookie_app(routes)) as origin:
            # Both servers are 127.0.0.1: cookies don't isolate by port (RFC 6265bis §8.5).
            async with Session(features=[jar]) as session:
                msg = Message("GET", origin.url_for("/start"))
                msg.request_headers.append("Cookie", "mine=1")
                with anyio.fail_after(BOUND):
                    body = await session.send_and_read(msg)
            await leak_check(session)
    assert json.loads(body)["cookie"] == "hop=1"
    # The first hop went out without the program's Cookie: the jar had none.
    assert origin.requests[0].header("cookie") is None


async def test_program_cookie_replaced_by_the_jars(leak_check: LeakCheck) -> None:
    jar = CookieJar()
    async with serve_http(cookie_app({"/": (200, [])})) as server:
        jar.set_cookie(server.url_for("/"), "jar=1")
        async with Session(features=[jar]) as session:
            msg = Message("GET", server.url_for("/"), headers={"Cookie": "mine=1"})
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
            other = Message("GET", server.url_for("/"), headers={"Cookie": "mine=1"})
            other.disable_feature(CookieJar)
            with anyio.fail_after(BOUND):
                kept = await session.send_and_read(other)
        await leak_check(session)
    assert json.loads(body)["cookie"] == "jar=1"
    assert json.loads(kept)["cookie"] == "mine=1"


async def test_feature_applies_policy_and_same_site(leak_check: LeakCheck) -> None:
    jar = CookieJar(accept_policy=CookieJarAcceptPolicy.NO_THIRD_PARTY)
    routes = {"/": (200, [("Set-Cookie", "a=1; SameSite=Strict")])}
    async with serve_http(cookie_app(routes)) as server:
        async with Session(features=[jar]) as session:
            third = Message("GET", server.url_for("/"))
            third.first_party = anysoup.Message("GET", "http://news.test/").uri
            with anyio.fail_after(BOUND):
                await session.send_and_read(third)
            assert jar.all_cookies() == []
            first = Message("GET", server.url_for("/"))
            first.first_party = first.uri
            with anyio.fail_after(BOUND):
                await session.send_and_read(first)
            assert names(jar.all_cookies()) == ["a"]
            cross = Message("POST", server.url_for("/"))
            cross.first_party = cross.site_for_cookies = third.first_party
            cross.is_top_level_navigation = True
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(cross)
            assert json.loads(body)["cookie"] is None
            same = Message("GET", server.url_for("/"))
            same.first_party = same.site_for_cookies = same.uri
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(same)
            assert json.loads(body)["cookie"] == "a=1"
        await leak_check(session)


async def test_changed_handlers_awaited_for_responses(leak_check: LeakCheck) -> None:
    jar = CookieJar()
    seen: list[str] = []

    async def on_changed(owner: CookieJar, old: Cookie | None, new: Cookie | None) -> None:
        await anyio.lowlevel.checkpoint()
        assert new is not None
        seen.append(new.name)

    jar.changed.connect(on_changed)
    async with serve_http(cookie_app({"/": (200, [("Set-Cookie", "a=1")])})) as server:
        async with Session(features=[jar]) as session:
            with anyio.fail_after(BOUND):
                await session.send_and_read(Message("GET", server.url_for("/")))
        await leak_check(session)
    assert seen == ["a"]


async def test_httpbin_cookies_round_trip(httpbin: Any, leak_check: LeakCheck) -> None:
    jar = CookieJar()
    async with Session(features=[jar]) as session:
        msg = Message("GET", httpbin.url + "/cookies/set?flavour=oat&size=big")
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(msg)
        assert msg.uri.path == "/cookies"  # the redirect was followed
        assert json.loads(body)["cookies"] == {"flavour": "oat", "size": "big"}
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(
                Message("GET", httpbin.url + "/cookies/delete?size")
            )
        assert json.loads(body)["cookies"] == {"flavour": "oat"}
    await leak_check(session)
    assert names(jar.all_cookies()) == ["flavour"]
