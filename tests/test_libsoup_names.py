"""Porting parity (DESIGN §6): the "Coming from libsoup" page names real objects.

``docs/libsoup.rst`` maps libsoup's names to anysoup's in ``list-table``
directives with three columns: libsoup's name, the anysoup counterpart, notes.
The second column holds double-backquoted references relative to the package
(``Session.send``, ``anysoup.Error``, ``Session.props.timeout``), or one of the
markers ``*not yet*`` and ``*not needed*`` when there is no counterpart.

These tests parse the tables, resolve every reference against the package
(properties and signals are class attributes; ``Session.props.x`` goes
through a real ``Session().props``), and check that no libsoup Session name,
no session property and no signal of the public classes is left out.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import anysoup
from anysoup._model.signals import SignalDescriptor
from anysoup._session.props import SessionProperties

PAGE = Path(__file__).resolve().parent.parent / "docs" / "libsoup.rst"

HEADER = ["libsoup", "anysoup", "notes"]
MARKERS = {"*not yet*", "*not needed*"}
#: A reference: dotted identifiers, optionally starting with ``anysoup.``.
REFERENCE_RE = re.compile(r"(?:anysoup\.)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
LITERAL_RE = re.compile(r"``([^`]+)``")

#: libsoup 3's whole SoupSession API (soup-session.h, its properties, signals
#: and class vfuncs). Every one of these must have a row.
LIBSOUP_SESSION_NAMES = [
    "soup_session_get_type",
    "soup_session_new",
    "soup_session_new_with_options",
    "soup_session_abort",
    "soup_session_add_feature",
    "soup_session_add_feature_by_type",
    "soup_session_remove_feature",
    "soup_session_remove_feature_by_type",
    "soup_session_get_feature",
    "soup_session_get_feature_for_message",
    "soup_session_has_feature",
    "soup_session_get_features",
    "soup_session_send",
    "soup_session_send_async",
    "soup_session_send_finish",
    "soup_session_send_and_read",
    "soup_session_send_and_read_async",
    "soup_session_send_and_read_finish",
    "soup_session_send_and_splice",
    "soup_session_send_and_splice_async",
    "soup_session_send_and_splice_finish",
    "soup_session_preconnect_async",
    "soup_session_preconnect_finish",
    "soup_session_websocket_connect_async",
    "soup_session_websocket_connect_finish",
    "soup_session_get_async_result_message",
    "soup_session_get_accept_language",
    "soup_session_set_accept_language",
    "soup_session_get_accept_language_auto",
    "soup_session_set_accept_language_auto",
    "soup_session_get_idle_timeout",
    "soup_session_set_idle_timeout",
    "soup_session_get_local_address",
    "soup_session_get_max_conns",
    "soup_session_get_max_conns_per_host",
    "soup_session_get_proxy_resolver",
    "soup_session_set_proxy_resolver",
    "soup_session_get_remote_connectable",
    "soup_session_get_timeout",
    "soup_session_set_timeout",
    "soup_session_get_tls_database",
    "soup_session_set_tls_database",
    "soup_session_get_tls_interaction",
    "soup_session_set_tls_interaction",
    "soup_session_get_user_agent",
    "soup_session_set_user_agent",
    "SoupSession:accept-language",
    "SoupSession:accept-language-auto",
    "SoupSession:idle-timeout",
    "SoupSession:local-address",
    "SoupSession:max-conns",
    "SoupSession:max-conns-per-host",
    "SoupSession:proxy-resolver",
    "SoupSession:remote-connectable",
    "SoupSession:timeout",
    "SoupSession:tls-database",
    "SoupSession:tls-interaction",
    "SoupSession:user-agent",
    "SoupSession::request-queued",
    "SoupSession::request-unqueued",
    "SoupSessionClass.request_queued",
    "SoupSessionClass.request_unqueued",
    "SOUP_SESSION_ERROR",
]


# -- parsing the page --------------------------------------------------------------


def parse_tables(text: str) -> dict[str, list[list[str]]]:
    """Return each ``list-table``'s rows (cells joined into one line) by title."""
    tables: dict[str, list[list[str]]] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"\.\. list-table::\s*(.*)$", lines[index])
        index += 1
        if match is None:
            continue
        title = match.group(1).strip()
        assert title, f"line {index}: every table on the page needs a title"
        assert title not in tables, f"two tables are titled {title!r}"
        rows: list[list[str]] = []
        while index < len(lines) and (not lines[index].strip() or lines[index][:3] == "   "):
            line = lines[index].rstrip()
            if line.startswith("   * -"):
                rows.append([line[6:].strip()])
            elif line.startswith("     -"):
                rows[-1].append(line[6:].strip())
            elif line.startswith("       ") and rows:
                rows[-1][-1] = f"{rows[-1][-1]} {line.strip()}".strip()
            index += 1
        tables[title] = rows
    return tables


@cache
def tables() -> dict[str, list[list[str]]]:
    return parse_tables(PAGE.read_text(encoding="utf-8"))


def body_rows(title_prefix: str = "") -> list[list[str]]:
    """The rows below the header of every table whose title starts with the prefix."""
    return [
        row
        for title, rows in tables().items()
        if title.startswith(title_prefix)
        for row in rows[1:]
    ]


def literals(cell: str) -> list[str]:
    return LITERAL_RE.findall(cell)


def libsoup_names(title_prefix: str = "") -> list[str]:
    names = []
    for row in body_rows(title_prefix):
        found = literals(row[0])
        assert len(found) == 1, f"the first cell must hold one libsoup name: {row[0]!r}"
        names.append(found[0])
    return names


def references() -> list[str]:
    """Every distinct reference in the anysoup column, in page order."""
    seen: dict[str, None] = {}
    for row in body_rows():
        for ref in literals(row[1]):
            seen.setdefault(ref, None)
    return list(seen)


# -- resolving a reference -----------------------------------------------------------


@cache
def session_props() -> Any:
    # Created outside an event loop and never opened: no socket, no task.
    return anysoup.Session().props


def resolve(reference: str) -> object:
    """Look ``reference`` up in the package, as ``getattr`` chains; raise if absent."""
    parts = reference.split(".")
    if parts[0] == "anysoup":
        parts = parts[1:]
    head, rest = parts[0], parts[1:]
    # anysoup.blocking is a public module of its own (the blocking calls).
    public = head in anysoup.__all__ or head == "blocking"
    assert public, f"{reference!r}: anysoup exports no {head!r}"
    obj: object = getattr(anysoup, head)
    if head == "Session" and rest[:1] == ["props"]:
        obj, rest = session_props(), rest[1:]
    for name in rest:
        obj = getattr(obj, name)
    return obj


# -- the tests -------------------------------------------------------------------------


def test_the_page_has_the_expected_tables() -> None:
    titles = list(tables())
    for prefix in ("SoupSession:", "SoupMessage:", "SoupSessionFeature", "Features:"):
        assert any(title.startswith(prefix) for title in titles), f"no table {prefix!r}…"
    assert "WebSockets" in titles
    assert "Error domains" in titles


@pytest.mark.parametrize("title", list(tables()))
def test_every_table_has_three_columns(title: str) -> None:
    header, *rows = tables()[title]
    assert header == HEADER, f"{title}: the header row must be {HEADER}"
    assert rows, f"{title}: the table is empty"
    for row in rows:
        assert len(row) == len(HEADER), f"{title}: row {row!r} has {len(row)} cells"


def test_every_libsoup_name_is_listed_once() -> None:
    names = libsoup_names()
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"listed more than once: {duplicates}"


def test_the_anysoup_column_holds_references_or_a_marker() -> None:
    for row in body_rows():
        refs = literals(row[1])
        if refs:
            assert not MARKERS & set(row[1].split()), f"{row[0]}: a counterpart and a marker"
            bad = [ref for ref in refs if not REFERENCE_RE.fullmatch(ref)]
            assert not bad, f"{row[0]}: not a reference to an anysoup name: {bad}"
            rest = LITERAL_RE.sub("", row[1]).replace(",", "").strip()
            assert not rest, f"{row[0]}: only references belong in this column, not {rest!r}"
        else:
            assert row[1] in MARKERS, f"{row[0]}: no counterpart, and no marker saying why"


@pytest.mark.parametrize("reference", references())
def test_every_reference_resolves(reference: str) -> None:
    try:
        resolve(reference)
    except AttributeError as exc:
        pytest.fail(f"docs/libsoup.rst names {reference!r}, which does not exist: {exc}")


def test_every_libsoup_session_name_has_a_row() -> None:
    listed = set(libsoup_names())
    missing = [name for name in LIBSOUP_SESSION_NAMES if name not in listed]
    assert not missing, f"libsoup Session names without a row: {missing}"


@pytest.mark.parametrize("prop", SessionProperties._PROPERTIES)
def test_every_session_property_is_mapped(prop: str) -> None:
    refs = set(references())
    expected = [f"Session.{prop}", f"Session.props.{prop}", f"Session.get_{prop}"]
    expected.append(f"Session.set_{prop}")
    missing = [ref for ref in expected if ref not in refs]
    assert not missing, f"property {prop!r}: the page lacks {missing}"
    assert f"SoupSession:{prop.replace('_', '-')}" in libsoup_names("SoupSession")
    assert prop in inspect.signature(anysoup.Session).parameters, (
        f"property {prop!r} is not a keyword of Session()"
    )


def _signals() -> list[str]:
    found = []
    for name in anysoup.__all__:
        cls = getattr(anysoup, name)
        if isinstance(cls, type):
            found += [
                f"{name}.{attr}"
                for attr, value in vars(cls).items()
                if isinstance(value, SignalDescriptor)
            ]
    return found


def test_signals_are_found() -> None:
    # Guards the next test against finding nothing to check.
    signals = _signals()
    assert "Session.request_queued" in signals
    assert "Message.got_headers" in signals


@pytest.mark.parametrize("signal", _signals())
def test_every_signal_is_mapped(signal: str) -> None:
    assert signal in references(), f"signal {signal} has no row on the libsoup page"


def test_a_wrong_name_is_caught() -> None:
    # The check itself: a documented name that doesn't exist must fail.
    with pytest.raises(AttributeError):
        resolve("Session.send_async")
    with pytest.raises(AttributeError):
        resolve("Session.props.no_such_property")
    with pytest.raises(AssertionError):
        resolve("NoSuchClass.method")
