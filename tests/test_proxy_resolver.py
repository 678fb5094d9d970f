"""Proxy resolution (policy): no_proxy matching, the environment, proxy URIs.

All synchronous: ``lookup`` awaits nothing, so :func:`run` drives the
coroutine by hand and fails if it ever suspends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from yarl import URL

from anysoup._transport.proxy_resolver_policy import (
    DIRECT,
    NoProxyList,
    ProxyResolver,
    ProxyURI,
    SimpleProxyResolver,
    parse_proxy,
)

SECRET = "s3cr3t-pw"


def run(coroutine: Coroutine[Any, Any, list[str]]) -> list[str]:
    """The result of a coroutine that never suspends."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("lookup suspended: a policy lookup must await nothing")


def lookup(resolver: ProxyResolver, uri: str | URL) -> list[str]:
    return run(resolver.lookup(uri))


# -- no_proxy matching (curl's CURLOPT_NOPROXY rules) ------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "uri", "bypass"),
    [
        # names: the host itself and its subdomains, at a label boundary
        ("example.com", "http://example.com/", True),
        ("example.com", "http://a.example.com/", True),
        ("example.com", "http://a.b.example.com/", True),
        ("example.com", "http://example.com:8080/", True),  # the URI's port never counts
        (".example.com", "http://example.com/", True),
        (".example.com", "http://www.example.com/", True),
        ("*.example.com", "http://a.example.com/", True),  # GLib's spelling
        ("*.example.com", "http://example.com/", True),
        ("com", "http://example.com/", True),
        ("example.com", "http://badexample.com/", False),
        (".example.com", "http://badexample.com/", False),
        ("example.com", "http://example.com.evil.org/", False),
        ("example.com", "http://example.org/", False),
        ("ample.com", "http://www.example.com/", False),
        ("www.example.com", "http://example.com/", False),
        ("*example.com", "http://badexample.com/", False),
        ("*example.com", "http://example.com/", False),
        # case, trailing dots
        ("EXAMPLE.Com", "http://example.com/", True),
        ("example.com", "http://WWW.EXAMPLE.COM/", True),
        ("example.com.", "http://example.com/", True),
        ("example.com", "http://example.com./", True),
        (".example.com.", "http://a.example.com./", True),
        # international names, compared as IDNA A-labels
        ("bücher.example", "http://xn--bcher-kva.example/", True),
        ("xn--bcher-kva.example", "http://bücher.example/", True),
        (".BÜCHER.example", "http://www.bücher.example/", True),
        ("bücher.example", "http://bucher.example/", False),
        # the list: commas, blanks, empty entries, "*"
        ("a.test, example.com", "http://example.com/", True),
        ("  a.test ,  example.com  ", "http://example.com/", True),
        ("a.test,,example.com,", "http://example.com/", True),
        ("a.test example.com", "http://example.com/", True),
        ("a.test, b.test", "http://example.com/", False),
        ("", "http://example.com/", False),
        ("*", "http://anything.test/", True),
        (" * ", "http://[::1]/", True),
        ("*", "http://10.1.2.3/", True),
        ("a.test,*", "http://example.com/", True),
        # no implicit bypass, no DNS
        ("", "http://localhost/", False),
        ("localhost", "http://localhost:8080/", True),
        ("127.0.0.1", "http://localhost/", False),
        ("localhost", "http://127.0.0.1/", False),
        ("::1", "http://localhost/", False),
        # IPv4 addresses and ranges
        ("127.0.0.1", "http://127.0.0.1:8000/", True),
        ("127.0.0.1", "http://127.0.0.2/", False),
        ("10.0.0.0/8", "http://10.200.3.4/", True),
        ("10.0.0.0/8", "http://11.0.0.1/", False),
        ("192.168.0.0/16", "http://192.168.255.1/", True),
        ("192.168.1.7/24", "http://192.168.1.200/", True),  # host bits ignored, as curl
        ("172.16.0.0/12", "http://172.32.0.1/", False),
        ("0.0.0.0/0", "http://8.8.8.8/", True),
        ("10.0.0.0/33", "http://10.0.0.1/", False),  # not a range: matches nothing
        ("10.0.0.0/8", "http://10.example.com/", False),  # an address never matches a name
        ("10.0.0.1", "http://10.0.0.1.example.com/", False),
        # IPv6: any spelling, brackets optional, ranges
        ("::1", "http://[::1]/", True),
        ("[::1]", "http://[::1]:8443/", True),
        ("0:0:0:0:0:0:0:1", "http://[::1]/", True),
        ("::1", "http://[0:0::0:1]/", True),
        ("2001:DB8::1", "http://[2001:db8:0:0::1]/", True),
        ("::1", "http://[::2]/", False),
        ("fe80::/10", "http://[fe80::1234]/", True),
        ("[fe80::]/10", "http://[febf::1]/", True),
        ("fe80::/10", "http://[fec0::1]/", False),
        ("fe80::1", "http://[fe80::1%25eth0]/", True),  # the zone is not compared
        # families never cross
        ("::1", "http://127.0.0.1/", False),
        ("127.0.0.1", "http://[::ffff:127.0.0.1]/", False),
        ("0.0.0.0/0", "http://[::1]/", False),
        ("::/0", "http://10.0.0.1/", False),
        # an entry with a port matches nothing, as in curl
        ("example.com:8080", "http://example.com:8080/", False),
        ("example.com:8080", "http://example.com/", False),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/", False),
        ("[::1]:8080", "http://[::1]:8080/", False),
    ],
)
def test_no_proxy_matching(no_proxy: str, uri: str, bypass: bool) -> None:
    assert NoProxyList.compile(no_proxy).matches(URL(uri).raw_host) is bypass
    resolver = SimpleProxyResolver("http://proxy.test:3128", ignore_hosts=no_proxy)
    assert lookup(resolver, uri) == ([DIRECT] if bypass else ["http://proxy.test:3128"])


def test_no_proxy_list_is_compiled_once() -> None:
    compiled = NoProxyList.compile(
        "*.a.test, .B.test, c.test., 10.0.0.0/8, [::1], x.test:80, [::1]:443, 1.2.3.4/99"
    )
    assert compiled.names == frozenset({"a.test", "b.test", "c.test"})
    assert [str(n) for n in compiled.networks] == ["10.0.0.0/8", "::1/128"]
    assert compiled.unused == ("x.test:80", "[::1]:443", "1.2.3.4/99")
    assert not compiled.match_all
    assert not compiled.matches(None)
    assert not compiled.matches("")
    assert compiled.matches("[::1]")  # a host with its brackets


def test_no_proxy_entries_must_be_str() -> None:
    with pytest.raises(TypeError, match="ignore_hosts"):
        NoProxyList.compile([b"example.com"])  # type: ignore[list-item]


# -- the environment (curl's rules) ------------------------------------------------

P = "http://p.test:1"
Q = "http://q.test:2"


@pytest.mark.parametrize(
    ("environ", "uri", "expected"),
    [
        ({}, "http://a.test/", DIRECT),
        ({"http_proxy": P}, "http://a.test/", P),
        ({"http_proxy": P}, "https://a.test/", DIRECT),
        # httpoxy: HTTP_PROXY may come from a CGI request's Proxy: header
        ({"HTTP_PROXY": P}, "http://a.test/", DIRECT),
        ({"HTTP_PROXY": P, "all_proxy": Q}, "http://a.test/", Q),
        ({"HTTP_PROXY": P}, "ws://a.test/", DIRECT),
        # lower case wins; empty counts as unset
        ({"https_proxy": P, "HTTPS_PROXY": Q}, "https://a.test/", P),
        ({"HTTPS_PROXY": Q}, "https://a.test/", Q),
        ({"https_proxy": "", "HTTPS_PROXY": Q}, "https://a.test/", Q),
        ({"https_proxy": "  ", "HTTPS_PROXY": Q}, "https://a.test/", Q),
        ({"http_proxy": ""}, "http://a.test/", DIRECT),
        ({"all_proxy": P, "ALL_PROXY": Q}, "http://a.test/", P),
        ({"all_proxy": "", "ALL_PROXY": Q}, "http://a.test/", Q),
        # all_proxy is the default for every scheme, socks included
        ({"all_proxy": "socks5h://s.test"}, "http://a.test/", "socks5h://s.test:1080"),
        ({"ALL_PROXY": "socks4a://s.test:9050"}, "https://a.test/", "socks4a://s.test:9050"),
        ({"all_proxy": "socks5://s.test:1"}, "wss://a.test/", "socks5://s.test:1"),
        ({"all_proxy": P}, "ftp://a.test/", P),
        ({"http_proxy": P, "all_proxy": Q}, "https://a.test/", Q),
        ({"https_proxy": "socks5://s.test:1"}, "https://a.test/", "socks5://s.test:1"),
        # ws uses http's proxy, wss uses https's
        ({"http_proxy": P, "https_proxy": Q}, "ws://a.test/", P),
        ({"http_proxy": P, "https_proxy": Q}, "wss://a.test/", Q),
        ({"http_proxy": P}, "wss://a.test/", DIRECT),
        # normalized values
        ({"http_proxy": "p.test:3128"}, "http://a.test/", "http://p.test:3128"),
        ({"https_proxy": "https://p.test"}, "https://a.test/", "https://p.test:443"),
        ({"http_proxy": "direct://"}, "http://a.test/", DIRECT),
        # no_proxy
        ({"http_proxy": P, "no_proxy": "a.test"}, "http://a.test/", DIRECT),
        ({"http_proxy": P, "NO_PROXY": "a.test"}, "http://a.test/", DIRECT),
        ({"http_proxy": P, "no_proxy": "b.test", "NO_PROXY": "a.test"}, "http://a.test/", P),
        ({"http_proxy": P, "no_proxy": "", "NO_PROXY": "a.test"}, "http://a.test/", DIRECT),
        ({"http_proxy": P, "no_proxy": "*"}, "http://a.test/", DIRECT),
        ({"http_proxy": P}, "http://localhost/", P),
        ({"http_proxy": P}, "http://127.0.0.1/", P),
    ],
)
def test_environment(environ: dict[str, str], uri: str, expected: str) -> None:
    assert lookup(ProxyResolver.from_environment(environ), uri) == [expected]


def test_environment_is_read_once_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", P)
    monkeypatch.setenv("no_proxy", "a.test, b.test")
    resolver = SimpleProxyResolver.from_environment()
    monkeypatch.setenv("http_proxy", Q)
    assert lookup(resolver, "http://c.test/") == [P]
    assert resolver.ignore_hosts == ("a.test", "b.test")
    assert resolver.default_proxy is None


@pytest.mark.parametrize("name", ["http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY"])
def test_environment_errors_name_the_variable(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: ") as info:
        ProxyResolver.from_environment({name: f"ftp://user:{SECRET}@p.test:21"})
    assert SECRET not in str(info.value)


# -- SimpleProxyResolver -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "uri", "expected"),
    [
        ({}, "https://a.test/", DIRECT),
        ({"default_proxy": P}, "https://a.test/", P),
        ({"default_proxy": P}, "ws://a.test/", P),
        ({"default_proxy": P, "uri_proxies": {"https": Q}}, "https://a.test/", Q),
        ({"default_proxy": P, "uri_proxies": {"https": Q}}, "http://a.test/", P),
        ({"default_proxy": P, "uri_proxies": {"https": Q}}, "wss://a.test/", Q),
        ({"uri_proxies": {"http": P, "ws": Q}}, "ws://a.test/", Q),
        ({"uri_proxies": {"https": P, "wss": "direct://"}}, "wss://a.test/", DIRECT),
        ({"default_proxy": P, "uri_proxies": {"HTTPS": "direct://"}}, "https://a.test/", DIRECT),
        ({"default_proxy": P, "ignore_hosts": ["a.test"]}, "https://www.a.test/", DIRECT),
        ({"default_proxy": P, "ignore_hosts": ["b.test, a.test"]}, "https://a.test/", DIRECT),
        ({"default_proxy": P, "ignore_hosts": iter(["a.test"])}, "https://a.test/", DIRECT),
        ({"default_proxy": P, "ignore_hosts": "a.test"}, "https://b.test/", P),
        ({"default_proxy": P}, URL("https://a.test/"), P),
    ],
)
def test_simple_lookup(kwargs: dict[str, Any], uri: str | URL, expected: str) -> None:
    assert lookup(SimpleProxyResolver(**kwargs), uri) == [expected]


def test_simple_setters() -> None:
    resolver = SimpleProxyResolver()
    resolver.set_default_proxy("socks5h://u:pw@s.test")
    assert resolver.default_proxy == "socks5h://u:pw@s.test:1080"
    resolver.default_proxy = None
    assert resolver.default_proxy is None
    resolver.set_uri_proxy("HTTP", P)
    assert lookup(resolver, "http://a.test/") == [P]
    resolver.set_uri_proxy("http", None)
    assert lookup(resolver, "http://a.test/") == [DIRECT]
    resolver.set_default_proxy(Q)
    resolver.ignore_hosts = ["a.test", ".b.test"]
    assert resolver.ignore_hosts == ("a.test", ".b.test")
    assert lookup(resolver, "http://x.b.test/") == [DIRECT]
    resolver.set_ignore_hosts(())
    assert lookup(resolver, "http://x.b.test/") == [Q]
    with pytest.raises(ValueError, match="scheme"):
        resolver.set_uri_proxy("", P)


# -- validation: errors name the argument, never show the password ------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ftp://p.test:21", "the scheme 'ftp' is not one of http, https, socks4"),
        ("socks://p.test", "the scheme 'socks'"),
        ("http://", "no valid host"),
        ("http:///path", "no valid host"),
        ("http://ho st:1", "no valid host"),
        ("http://:3128", "does not parse"),
        ("http://p.test:99999", "does not parse"),
        ("http://p.test:port", "does not parse"),
        ("http://[::1", "does not parse"),
        ("http://p.test:0", "port 0"),
        ("direct://p.test", "takes no host"),
        (f"http://user:{SECRET}@p.test:99999", "does not parse"),
        (f"socks5://user:{SECRET}@/x", "no valid host"),
        (f"user:{SECRET}@p.test:bad", "does not parse"),
        (f"gopher://user:{SECRET}@@p.test", "the scheme 'gopher'"),
    ],
)
def test_invalid_proxies(value: str, reason: str) -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: SimpleProxyResolver(default_proxy=value), "default_proxy: "),
        (lambda: SimpleProxyResolver(uri_proxies={"https": value}), "uri_proxies['https']: "),
        (lambda: SimpleProxyResolver().set_uri_proxy("http", value), "proxy: "),
        (lambda: SimpleProxyResolver().set_default_proxy(value), "default_proxy: "),
        (lambda: parse_proxy(value), "proxy: "),
    ]
    for call, name in cases:
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert message.startswith(name), message
        assert reason in message
        assert SECRET not in message
        assert info.value.__cause__ is None  # yarl's message may quote the value


def test_wrong_types() -> None:
    with pytest.raises(TypeError, match="default_proxy: expected a proxy URI str, got int"):
        SimpleProxyResolver(default_proxy=3128)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ignore_hosts"):
        SimpleProxyResolver(ignore_hosts=[None])  # type: ignore[list-item]


def test_reprs_mask_passwords() -> None:
    resolver = SimpleProxyResolver(
        default_proxy=f"http://alice:{SECRET}@p.test:3128",
        ignore_hosts="a.test",
        uri_proxies={"https": f"socks5h://bob:{SECRET}@s.test"},
    )
    text = repr(resolver)
    assert SECRET not in text
    assert text == (
        "SimpleProxyResolver(default_proxy='http://alice:***@p.test:3128', "
        "ignore_hosts=('a.test',), uri_proxies={'https': 'socks5h://bob:***@s.test:1080'})"
    )
    proxy = parse_proxy(f"http://alice:{SECRET}@p.test:3128")
    assert repr(proxy) == "ProxyURI('http://alice:***@p.test:3128')"
    assert SECRET not in str(proxy)
    assert repr(parse_proxy("http://p.test")) == "ProxyURI('http://p.test:80')"


# -- parse_proxy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://p.test", ProxyURI("http", "p.test", 80)),
        ("https://p.test", ProxyURI("https", "p.test", 443)),
        ("socks4://p.test", ProxyURI("socks4", "p.test", 1080)),
        ("socks4a://p.test", ProxyURI("socks4a", "p.test", 1080)),
        ("socks5://p.test", ProxyURI("socks5", "p.test", 1080)),
        ("socks5h://p.test:9050", ProxyURI("socks5h", "p.test", 9050)),
        ("p.test:3128", ProxyURI("http", "p.test", 3128)),
        ("p.test", ProxyURI("http", "p.test", 80)),
        ("  HTTP://P.Test:8080/ignored/path  ", ProxyURI("http", "p.test", 8080)),
        ("http://u%40x:p%3Aw%2F@p.test:1", ProxyURI("http", "p.test", 1, "u@x", "p:w/")),
        ("http://u@p.test", ProxyURI("http", "p.test", 80, "u")),
        ("http://:pw@p.test", ProxyURI("http", "p.test", 80, "", "pw")),
        ("http://u:@p.test", ProxyURI("http", "p.test", 80, "u", "")),
        ("socks5h://[::1]:9050", ProxyURI("socks5h", "::1", 9050)),
        ("http://10.0.0.1:3128", ProxyURI("http", "10.0.0.1", 3128)),
        ("http://bücher.example:1", ProxyURI("http", "xn--bcher-kva.example", 1)),
        ("http://corp_proxy.internal:8080", ProxyURI("http", "corp_proxy.internal", 8080)),
    ],
)
def test_parse_proxy(value: str, expected: ProxyURI) -> None:
    proxy = parse_proxy(value)
    assert proxy == expected
    assert parse_proxy(proxy.uri) == proxy  # the normalized URI round-trips


@pytest.mark.parametrize(
    ("scheme", "kinds"),
    [
        ("http", {"is_http"}),
        ("https", {"is_http", "tls"}),
        ("socks4", {"is_socks"}),
        ("socks4a", {"is_socks", "remote_dns"}),
        ("socks5", {"is_socks"}),
        ("socks5h", {"is_socks", "remote_dns"}),
    ],
)
def test_proxy_kinds(scheme: str, kinds: set[str]) -> None:
    proxy = parse_proxy(f"{scheme}://p.test")
    flags = {name for name in ("is_http", "is_socks", "remote_dns", "tls") if getattr(proxy, name)}
    assert flags == kinds


def test_proxy_labels_and_uris() -> None:
    assert parse_proxy("socks5://[2001:db8::1]").label == "[2001:db8::1]:1080"
    assert parse_proxy("https://p.test:8443").label == "p.test:8443"
    assert parse_proxy("http://a%20b:c%40d@p.test:1").uri == "http://a%20b:c%40d@p.test:1"


def test_direct_is_not_a_proxy() -> None:
    with pytest.raises(ValueError, match="direct"):
        parse_proxy("direct://")
    assert SimpleProxyResolver(default_proxy="DIRECT://").default_proxy == DIRECT
