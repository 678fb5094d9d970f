"""Header values the session derives from its environment.

``Accept-Language`` from the POSIX locale variables (the session's
``accept_language_auto``) and the ``User-Agent`` rule of the ``user_agent``
property, both as libsoup computes them (DESIGN §3).

This is a policy module: pure functions, no I/O, no anyio. The caller passes
the environment in, so tests need not touch ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["accept_language_from_environ", "user_agent_header"]

# The product in the default User-Agent, ``anysoup/VERSION``.
_PRODUCT_NAME = "anysoup"

# What glib's g_get_language_names() reads, in order of precedence. LANGUAGE is
# a colon-separated list (a GNU extension); the others hold one locale name.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")
# The "C" locale means untranslated messages, which are English.
_C_LOCALES = frozenset({"c", "posix"})
# RFC 4647 §2.1 language-range (without "*"), after "_" became "-". Anything
# else in the environment is ignored, so no junk ever reaches a header.
_LANGUAGE_RANGE_RE = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")


def _languages(spec: str) -> list[str]:
    """Turn a colon-separated list of POSIX locale names into language ranges.

    ``fr_FR.UTF-8@euro`` becomes ``fr-fr`` followed by ``fr``, as glib expands
    a locale into its variants and libsoup keeps those without codeset or
    modifier. Duplicates keep their first place.
    """
    languages: list[str] = []
    for entry in spec.split(":"):
        # Drop the codeset (".UTF-8") and the modifier ("@euro").
        name = entry.partition(".")[0].partition("@")[0].strip().lower()
        if name in _C_LOCALES:
            name = "en"
        name = name.replace("_", "-")
        if _LANGUAGE_RANGE_RE.fullmatch(name) is None:
            continue
        for language in (name, name.partition("-")[0]):
            if language not in languages:
                languages.append(language)
    return languages


def _quality_step(count: int) -> int:
    """Return the q-value step, in thousandths, for ``count`` languages.

    As libsoup: 0.1 for up to 10 languages, 0.01 for up to 100, else 0.001.
    """
    if count <= 10:
        return 100
    if count <= 100:
        return 10
    return 1


def accept_language_from_environ(environ: Mapping[str, str]) -> str:
    """Build an ``Accept-Language`` value from the locale variables.

    ``LANGUAGE`` is used if set and not empty, else the first non-empty of
    ``LC_ALL``, ``LC_MESSAGES`` and ``LANG``. Each locale name loses its
    codeset and modifier, ``C`` and ``POSIX`` stand for ``en``, and a language
    with a region is followed by the bare language. q-values fall from 1 in
    steps of 0.1 (0.01 past 10 languages, 0.001 past 100; at most 1000 are
    kept so that none reaches 0, which would mean "not acceptable").

    Args:
        environ: the environment, usually ``os.environ``.

    Returns:
        For example ``"fr-fr, fr;q=0.9, de;q=0.8, en-us;q=0.7, en;q=0.6"``
        for ``LANGUAGE=fr_FR:de:en_US``; ``"en"`` when nothing usable is set.
    """
    spec = environ.get("LANGUAGE", "")
    if not spec:
        spec = next((environ[v] for v in _LOCALE_VARIABLES if environ.get(v)), "")
    languages = _languages(spec)[:1000] or ["en"]
    step = _quality_step(len(languages))
    parts = [languages[0]]
    for i, language in enumerate(languages[1:], start=1):
        quality = f"{1000 - i * step:03d}".rstrip("0")
        parts.append(f"{language};q=0.{quality}")
    return ", ".join(parts)


def user_agent_header(value: str | None, version: str) -> str | None:
    """Apply the session's ``user_agent`` rule (DESIGN §3, as libsoup).

    Args:
        value: the session's ``user_agent`` property.
        version: anysoup's version, e.g. ``"0.1.0"``.

    Returns:
        None for None (send no header of our own); ``anysoup/VERSION`` for
        ``""``; ``value`` followed by ``anysoup/VERSION`` when ``value`` ends
        in a space; else ``value`` unchanged.
    """
    if value is None:
        return None
    product = f"{_PRODUCT_NAME}/{version}"
    if not value:
        return product
    if value.endswith(" "):
        return value + product
    return value
