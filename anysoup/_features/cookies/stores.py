"""Persistent cookie jars: ``cookies.txt`` (CookieJarText) and SQLite (CookieJarDB).

Theory of operation
-------------------
Both are :class:`~anysoup.CookieJar` subclasses; the jar's logic is
unchanged, they only load and save. Loading happens in the constructor,
synchronously (cookie files are small), and again whenever the file
changed under us: before every read or write the jar compares the file's
``(mtime, size, inode)`` with what it last saw, and on a difference reloads
it, keeping its session cookies (never written) and any change not yet
written. That is how changes made by another process (another program, or
another jar on the same file) are picked up.

The jar changes in synchronous code, so a change only *queues* a write.
While the jar belongs to an open session, a writer task in the session's
task group writes the queue in a worker thread (``anyio.to_thread``), one
write at a time; :meth:`flush` waits for it, and the session awaits it
when it closes (``session_closed``), so the file is complete when
``async with Session()`` ends. Outside a session, ``await jar.flush()``
writes what is queued.

Crash safety: ``cookies.txt`` is written whole to a temporary file in the
same directory, flushed to disk, then renamed over the old one
(``os.replace`` is atomic), so a reader sees the old file or the new one.
The database is changed in one SQLite transaction per batch.

Session cookies (no expiry) are kept in memory only, as in libsoup. A
read-only jar loads and reloads but never writes.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

import anyio
import anyio.to_thread

from ..._model.public import public
from .jar import Cookie, CookieJar, CookieJarAcceptPolicy, SameSitePolicy

if TYPE_CHECKING:
    from ..._session.session import Session

__all__ = ["CookieJarDB", "CookieJarText"]

_UTC = timezone.utc
#: The last second a datetime holds: expiries in hostile files are clamped to it.
_MAX_TIMESTAMP = 253402300799
_Stamp = tuple[int, int, int] | None
_Change = tuple[Cookie | None, Cookie | None]


def _stamp(filename: str) -> _Stamp:
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _expiry(seconds: int) -> datetime | None:
    """A file's expiry column as a datetime; 0 (or less) is a session cookie."""
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(min(seconds, _MAX_TIMESTAMP), _UTC)


class _FileJar(CookieJar, abc.ABC):
    """What both stores share: the stamp check, the queue and the writer."""

    def __init__(
        self,
        filename: str | os.PathLike[str],
        read_only: bool = False,
        *,
        accept_policy: CookieJarAcceptPolicy = CookieJarAcceptPolicy.ALWAYS,
    ) -> None:
        super().__init__(accept_policy=accept_policy, read_only=read_only)
        self._filename = os.fspath(filename)
        self._stamp: _Stamp = None
        self._unsaved: list[_Change] = []
        self._writing = False
        self._writer_started = False
        self._lock: anyio.Lock | None = None
        self._reload()

    @property
    def filename(self) -> str:
        """The file the jar keeps its cookies in."""
        return self._filename

    def is_persistent(self) -> bool:
        """True: the jar keeps cookies in :attr:`filename`."""
        return True

    # -- loading -------------------------------------------------------------------

    @abc.abstractmethod
    def _read_file(self) -> Iterable[Cookie]:
        """The persistent cookies in the file (blocking; small files)."""

    def _before_read(self) -> None:
        if not self._writing and _stamp(self._filename) != self._stamp:
            self._reload()

    def _reload(self) -> None:
        """Replace the persistent cookies with the file's; keep session and unsaved ones."""
        self._stamp = _stamp(self._filename)
        session = [c for c in self.all_cookies_unchecked() if c.expires is None]
        self._clear()
        with self._quiet():
            for cookie in self._read_file():
                self._add(cookie, None, None, check_policy=False)
            for cookie in session:
                self._add(cookie, None, None, check_policy=False)
            for old, new in self._unsaved:
                if old is not None:
                    bucket = self._domains.get(old.domain)
                    if bucket is not None and (old.name, old.path) in bucket:
                        self._remove(old.domain, (old.name, old.path))
                if new is not None:
                    self._add(new, None, None, check_policy=False)

    def all_cookies_unchecked(self) -> list[Cookie]:
        """Every cookie in memory, without looking at the file first."""
        return [e.cookie for bucket in self._domains.values() for e in bucket.values()]

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change the jar without signals or writes (loading is not a change)."""
        read_only, self._read_only = self._read_only, True
        try:
            yield
        finally:
            self._read_only = read_only

    # -- writing -------------------------------------------------------------------

    def _on_changed(self, old: Cookie | None, new: Cookie | None) -> None:
        self._unsaved.append((old, new))
        session = self._session
        task_group = session._task_group if session is not None else None
        if task_group is not None and not self._writer_started:
            self._writer_started = True
            task_group.start_soon(self._writer, name=f"anysoup cookie writer {self._filename}")

    async def _writer(self) -> None:
        try:
            await self.flush()
        finally:
            self._writer_started = False

    @abc.abstractmethod
    def _prepare(self, changes: list[_Change]) -> Callable[[], None]:
        """The blocking write for ``changes`` (built on the event loop, run in a thread)."""

    async def flush(self) -> None:
        """Write every queued change; return when the file holds them."""
        if self._lock is None:
            self._lock = anyio.Lock()
        lock = self._lock
        async with lock:
            while self._unsaved:
                self._before_read()  # another process's changes are merged, not lost
                changes, self._unsaved = self._unsaved, []
                job = self._prepare(changes)
                self._writing = True
                try:
                    await anyio.to_thread.run_sync(job)
                except BaseException:
                    self._unsaved[:0] = changes  # try again at the next flush
                    raise
                finally:
                    self._writing = False
                self._stamp = _stamp(self._filename)
        if self._lock is lock and not lock.locked() and not lock.statistics().tasks_waiting:
            self._lock = None  # bound to this event loop: don't keep it past its use

    async def session_closed(self, session: Session) -> None:
        """Finish writing: the file is complete when the session has closed."""
        await self.flush()

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, filename={self._filename!r}>"


# -- cookies.txt ---------------------------------------------------------------------

_HTTP_ONLY_PREFIX = "#HttpOnly_"
_HEADER = (
    "# Netscape HTTP Cookie File\n"
    "# https://curl.se/docs/http-cookies.html\n"
    "# This file was generated by anysoup. Edit at your own risk.\n\n"
)
_UNWRITABLE = frozenset("\t\r\n")


def parse_cookies_txt(text: str) -> Iterator[Cookie]:
    """The cookies of a Mozilla/curl ``cookies.txt``; bad lines are skipped."""
    for line in text.splitlines():
        http_only = line.startswith(_HTTP_ONLY_PREFIX)
        if http_only:
            line = line[len(_HTTP_ONLY_PREFIX) :]
        elif line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            continue
        domain, subdomains, path, secure, expires, name, value = fields
        domain = domain.strip().lower().lstrip(".")
        if not domain:
            continue
        try:
            seconds = int(expires) if expires.strip() else 0
        except ValueError:
            continue
        yield Cookie(
            name,
            value,
            "." + domain if subdomains.upper() == "TRUE" else domain,
            path or "/",
            _expiry(seconds),
            secure.upper() == "TRUE",
            http_only,
        )


def format_cookies_txt(cookies: Iterable[Cookie], *, session_cookies: bool = False) -> str:
    """``cookies`` as a ``cookies.txt`` that curl, libsoup and Python's MozillaCookieJar read.

    Session cookies are left out (the jars' rule), unless ``session_cookies``
    asks for them, written with expiry 0 as curl's ``-c`` writes them (the
    ``anysoup`` command's ``-c``); so are cookies the format can't hold (a
    tab or line break in a field).
    """
    lines = [_HEADER]
    for c in cookies:
        if c.expires is None and not session_cookies:
            continue
        if _UNWRITABLE.intersection(c.name + c.value + c.path + c.domain):
            continue
        prefix = _HTTP_ONLY_PREFIX if c.http_only else ""
        expires = 0 if c.expires is None else int(c.expires.timestamp())
        lines.append(
            f"{prefix}{c.domain}\t{'FALSE' if c.host_only else 'TRUE'}\t{c.path}\t"
            f"{'TRUE' if c.secure else 'FALSE'}\t{expires}\t{c.name}\t{c.value}\n"
        )
    return "".join(lines)


def _replace_file(filename: str, data: str) -> None:
    """Write ``data`` to a temporary file next to ``filename``, then rename it over."""
    directory = os.path.dirname(os.path.abspath(filename))
    fd, temp = tempfile.mkstemp(prefix=".cookies-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o600)  # cookies are credentials
        os.replace(temp, filename)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@public
class CookieJarText(_FileJar):
    """A cookie jar kept in a Mozilla ``cookies.txt`` (libsoup's ``SoupCookieJarText``).

    The file is the format curl (``-b``/``-c``), libsoup and Python's
    ``http.cookiejar.MozillaCookieJar`` read and write, with curl's
    ``#HttpOnly_`` prefix. The format has no SameSite column: cookies read
    back are Lax (use :class:`CookieJarDB` to keep SameSite).

    Args:
        filename: The file; it need not exist yet.
        read_only: Load (and reload) the file but never write it.
        accept_policy: As for :class:`CookieJar`.
    """

    def _read_file(self) -> Iterable[Cookie]:
        try:
            with open(self._filename, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except FileNotFoundError:
            return ()
        return list(parse_cookies_txt(text))

    def _prepare(self, changes: list[_Change]) -> Callable[[], None]:
        data = format_cookies_txt(self.all_cookies_unchecked())
        filename = self._filename
        return lambda: _replace_file(filename, data)


# -- SQLite --------------------------------------------------------------------------

#: libsoup's ``moz_cookies`` layout (soup-cookie-jar-db.c).
_CREATE = (
    "CREATE TABLE IF NOT EXISTS moz_cookies (id INTEGER PRIMARY KEY, name TEXT, value TEXT, "
    "host TEXT, path TEXT, expiry INTEGER, lastAccessed INTEGER, isSecure INTEGER, "
    "isHttpOnly INTEGER, sameSite INTEGER)"
)
_SELECT = "SELECT name, value, host, path, expiry, isSecure, isHttpOnly, sameSite FROM moz_cookies"
_INSERT = "INSERT INTO moz_cookies VALUES (NULL, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"
#: libsoup deletes by name and host; the path is part of a cookie's identity too.
_DELETE = "DELETE FROM moz_cookies WHERE name = ? AND host = ? AND path = ?"


def _db_rows(filename: str) -> list[tuple[object, ...]]:
    if not os.path.exists(filename):
        return []
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{_quote(filename)}?mode=ro", uri=True, timeout=5)
        ) as db:
            return db.execute(_SELECT).fetchall()
    except sqlite3.Error:
        return []  # not a cookie database (yet): nothing to load


def _quote(filename: str) -> str:
    return quote(os.path.abspath(filename))


def _cookie_from_row(row: tuple[object, ...]) -> Cookie | None:
    name, value, host, path, expiry, secure, http_only, same_site = row
    if not isinstance(name, str) or not isinstance(value, str) or not isinstance(host, str):
        return None
    if not isinstance(expiry, int) or expiry <= 0:
        return None
    try:
        policy = SameSitePolicy(same_site)
    except ValueError:
        policy = SameSitePolicy.LAX
    return Cookie(
        name,
        value,
        host,
        path if isinstance(path, str) and path else "/",
        _expiry(expiry),
        bool(secure),
        bool(http_only),
        policy,
    )


def _write_db(filename: str, changes: list[_Change]) -> None:
    with contextlib.closing(sqlite3.connect(filename, timeout=30)) as db:
        with db:  # one transaction: all of the batch or none of it
            db.execute(_CREATE)
            for old, new in changes:
                if old is not None:
                    db.execute(_DELETE, (old.name, old.domain, old.path))
                if new is not None and new.expires is not None:
                    db.execute(_DELETE, (new.name, new.domain, new.path))
                    db.execute(
                        _INSERT,
                        (
                            new.name,
                            new.value,
                            new.domain,
                            new.path,
                            int(new.expires.timestamp()),
                            int(new.secure),
                            int(new.http_only),
                            new.same_site.value,
                        ),
                    )
        with contextlib.suppress(OSError):
            os.chmod(filename, 0o600)  # cookies are credentials


@public
class CookieJarDB(_FileJar):
    """A cookie jar kept in SQLite (libsoup's ``SoupCookieJarDB``).

    The table is libsoup's ``moz_cookies`` (id, name, value, host, path,
    expiry, lastAccessed, isSecure, isHttpOnly, sameSite), so libsoup and
    anysoup can share a file. Each batch of changes is one transaction.

    Args:
        filename: The database file; created on the first write.
        read_only: Load (and reload) the file but never write it.
        accept_policy: As for :class:`CookieJar`.
    """

    def _read_file(self) -> Iterable[Cookie]:
        cookies = []
        for row in _db_rows(self._filename):
            try:
                cookie = _cookie_from_row(row)
            except (ValueError, TypeError, OverflowError):
                continue
            if cookie is not None:
                cookies.append(cookie)
        return cookies

    def _prepare(self, changes: list[_Change]) -> Callable[[], None]:
        filename = self._filename
        return lambda: _write_db(filename, changes)
