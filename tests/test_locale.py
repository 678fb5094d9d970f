"""Table-driven tests of anysoup._session.locale_policy (policy, no I/O)."""

from __future__ import annotations

import pytest

from anysoup._session.locale_policy import accept_language_from_environ, user_agent_header


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # DESIGN §3
        ({"LANGUAGE": "fr_FR:de:en_US"}, "fr-fr, fr;q=0.9, de;q=0.8, en-us;q=0.7, en;q=0.6"),
        ({"LANG": "C"}, "en"),
        # nothing usable
        ({}, "en"),
        ({"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": ""}, "en"),
        ({"LANG": "POSIX"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"HOME": "/root", "LC_CTYPE": "de_DE.UTF-8"}, "en"),
        # codeset and modifier dropped
        ({"LANG": "de_DE.UTF-8"}, "de-de, de;q=0.9"),
        ({"LANG": "ca_ES.UTF-8@valencia"}, "ca-es, ca;q=0.9"),
        ({"LANG": "sr_RS@latin"}, "sr-rs, sr;q=0.9"),
        ({"LANG": "pt_BR.ISO-8859-1"}, "pt-br, pt;q=0.9"),
        ({"LANG": "ja"}, "ja"),
        ({"LANG": "EN_gb"}, "en-gb, en;q=0.9"),
        # precedence: LANGUAGE, then LC_ALL, LC_MESSAGES, LANG
        ({"LANGUAGE": "it", "LC_ALL": "de_DE", "LANG": "fr_FR"}, "it"),
        ({"LANGUAGE": "", "LC_ALL": "de_DE", "LANG": "fr_FR"}, "de-de, de;q=0.9"),
        ({"LC_ALL": "", "LC_MESSAGES": "nl_NL", "LANG": "fr_FR"}, "nl-nl, nl;q=0.9"),
        ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "fr_FR"}, "fr-fr, fr;q=0.9"),
        # C inside a list stands for English
        ({"LANGUAGE": "fr:C"}, "fr, en;q=0.9"),
        ({"LANGUAGE": "C:fr"}, "en, fr;q=0.9"),
        # duplicates keep their first place; the bare language follows its region
        ({"LANGUAGE": "en_US:en"}, "en-us, en;q=0.9"),
        ({"LANGUAGE": "en:en_US"}, "en, en-us;q=0.9"),
        ({"LANGUAGE": "en_US:de:en"}, "en-us, en;q=0.9, de;q=0.8"),
        ({"LANGUAGE": "fr_FR:fr_CA"}, "fr-fr, fr;q=0.9, fr-ca;q=0.8"),
        ({"LANGUAGE": "de:de:de_DE.UTF-8"}, "de, de-de;q=0.9"),
        # empty and junk entries skipped, never copied into the header
        ({"LANGUAGE": "::fr::"}, "fr"),
        ({"LANGUAGE": "fr\r\nX-Injected: 1:de"}, "de"),
        ({"LANGUAGE": "12:toolonglanguage:fr FR:x_y;z:de"}, "de"),
        ({"LANGUAGE": "!!!"}, "en"),
    ],
)
def test_accept_language_from_environ(environ: dict[str, str], expected: str) -> None:
    assert accept_language_from_environ(environ) == expected


def _languages(count: int) -> str:
    """Return a LANGUAGE value of ``count`` distinct bare languages."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ":".join(
        letters[i // 26 // 26 % 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(count)
    )


@pytest.mark.parametrize(
    ("count", "second", "last"),
    [
        (2, "q=0.9", "q=0.9"),
        (5, "q=0.9", "q=0.6"),
        (10, "q=0.9", "q=0.1"),
        (11, "q=0.99", "q=0.9"),
        (100, "q=0.99", "q=0.01"),
        (101, "q=0.999", "q=0.9"),
        (1000, "q=0.999", "q=0.001"),
    ],
)
def test_quality_steps(count: int, second: str, last: str) -> None:
    parts = accept_language_from_environ({"LANGUAGE": _languages(count)}).split(", ")
    assert len(parts) == count
    assert ";" not in parts[0]
    assert parts[1].endswith(";" + second)
    assert parts[-1].endswith(";" + last)
    qualities = [float(p.partition(";q=")[2]) for p in parts[1:]]
    assert qualities == sorted(qualities, reverse=True)
    assert len(set(qualities)) == len(qualities)


def test_quality_never_reaches_zero() -> None:
    parts = accept_language_from_environ({"LANGUAGE": _languages(1500)}).split(", ")
    assert len(parts) == 1000
    assert parts[-1].endswith(";q=0.001")
    assert not any(p.endswith("q=0") or p.endswith("q=0.") for p in parts)


def test_environ_is_not_modified() -> None:
    environ = {"LANGUAGE": "fr_FR", "LANG": "C"}
    accept_language_from_environ(environ)
    assert environ == {"LANGUAGE": "fr_FR", "LANG": "C"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", "anysoup/1.2.3"),
        ("MyApp/2.0 ", "MyApp/2.0 anysoup/1.2.3"),
        (" ", " anysoup/1.2.3"),
        ("MyApp/2.0", "MyApp/2.0"),
        ("MyApp/2.0  ", "MyApp/2.0  anysoup/1.2.3"),
        ("MyApp/2.0\t", "MyApp/2.0\t"),
    ],
)
def test_user_agent_header(value: str | None, expected: str | None) -> None:
    assert user_agent_header(value, "1.2.3") == expected
