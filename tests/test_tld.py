"""``tld_get_base_domain``, ``tld_domain_is_public_suffix`` and ``TLDError`` (libsoup's soup-tld).

Cases in the spirit of publicsuffix.org's test list: plain, multi-label and
wildcard rules, exceptions, IDN labels in both forms, and each error code.
"""

from __future__ import annotations

import pytest

import anysoup
from anysoup import TLDError, TLDErrorCode, tld_domain_is_public_suffix, tld_get_base_domain


@pytest.mark.parametrize(
    ("hostname", "base"),
    [
        ("example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("www.example.co.uk", "example.co.uk"),
        ("x.y.github.io", "y.github.io"),  # the list's private section counts
        ("a.b.c.jm", "b.c.jm"),  # a wildcard rule (*.jm)
        ("www.pref.kyoto.jp", "pref.kyoto.jp"),  # an exception to *.kyoto.jp
        ("www.test.k12.ak.us", "test.k12.ak.us"),
        ("www.食狮.公司.cn", "食狮.公司.cn"),  # Unicode labels stay Unicode
        ("www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"),  # A-labels stay so
        ("WWW.Example.COM", "Example.COM"),  # the caller's case
        ("domain.biz.", "domain.biz."),  # a trailing dot is kept
    ],
)
def test_base_domain(hostname: str, base: str) -> None:
    assert tld_get_base_domain(hostname) == base


@pytest.mark.parametrize(
    ("hostname", "code"),
    [
        ("com", TLDErrorCode.NOT_ENOUGH_DOMAINS),
        ("co.uk", TLDErrorCode.NOT_ENOUGH_DOMAINS),
        ("c.jm", TLDErrorCode.NOT_ENOUGH_DOMAINS),
        ("公司.cn", TLDErrorCode.NOT_ENOUGH_DOMAINS),
        ("printer.lan", TLDErrorCode.NO_BASE_DOMAIN),  # no * rule, as libsoup
        ("localhost", TLDErrorCode.NO_BASE_DOMAIN),
        ("example.local", TLDErrorCode.NO_BASE_DOMAIN),
        ("192.0.2.1", TLDErrorCode.IS_IP_ADDRESS),
        ("2001:db8::1", TLDErrorCode.IS_IP_ADDRESS),
        ("[::1]", TLDErrorCode.IS_IP_ADDRESS),
        (".example.com", TLDErrorCode.INVALID_HOSTNAME),
        (".com.", TLDErrorCode.INVALID_HOSTNAME),
        ("a..example.com", TLDErrorCode.INVALID_HOSTNAME),
        ("", TLDErrorCode.INVALID_HOSTNAME),
        ("bad host.example.com", TLDErrorCode.INVALID_HOSTNAME),
        ("-x.example.com", TLDErrorCode.INVALID_HOSTNAME),
        ("x" * 64 + ".com", TLDErrorCode.INVALID_HOSTNAME),
    ],
)
def test_errors_carry_their_code(hostname: str, code: TLDErrorCode) -> None:
    with pytest.raises(TLDError) as caught:
        tld_get_base_domain(hostname)
    assert caught.value.code is code
    assert isinstance(caught.value, anysoup.Error) and isinstance(caught.value, ValueError)
    assert repr(hostname) in str(caught.value)


def test_a_hostname_must_be_text() -> None:
    with pytest.raises(TypeError):
        tld_get_base_domain(b"example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("domain", "public"),
    [
        ("com", True),
        ("co.uk", True),
        ("github.io", True),
        ("公司.cn", True),
        ("example.com", False),
        ("lan", False),  # unlisted: not public here (the cookie jar says otherwise)
        ("192.0.2.1", False),
        (".com", False),
    ],
)
def test_is_public_suffix(domain: str, public: bool) -> None:
    assert tld_domain_is_public_suffix(domain) is public
