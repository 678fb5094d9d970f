"""The disk cache's index: one SQLite database that every process using the directory shares.

Theory of operation
-------------------
``index.sqlite`` has one row per stored entry: its primary and secondary
keys, its metadata as JSON, its body size, when it was last used, and
where its body is: inline in the row (bodies up to :data:`INLINE_MAX`, so
that a hit is one query) or in a file next to the index (named in the row).
A ``totals`` row, kept by triggers, holds the bytes of bodies and the
number of rows, so that eviction never sums the table and every process
evicts against the same figure.

Several processes (and sessions) open the database at once. It runs in
WAL mode, so readers never wait for the writer; every write is one
``BEGIN IMMEDIATE`` transaction (it takes the write lock before reading,
so two writers never deadlock upgrading a read lock), with a busy timeout
(:data:`BUSY_TIMEOUT`) and a few retries on top. A store whose index stays
locked sees :class:`IndexUnavailable`, which it turns into a miss (or an
entry not stored) and a log line; "database is locked" never reaches a caller.

Crash safety comes from the order of steps (``disk_storage``): a body file
is complete and renamed into place before its row is inserted, and a row
goes before its file is deleted; a killed process leaves at worst a file
no row names, which the next :meth:`DiskIndex.open` removes. The database
itself is crash-safe (WAL with ``synchronous=NORMAL``: the last
transactions may be lost on power loss, never half-applied).

A file that is not this index (garbage, another program's database) is
moved aside to ``index.sqlite.bad`` with a log line and a new index is
made; a newer anysoup's index is left alone (this one then only misses).
A row that doesn't parse is logged and deleted.

Everything here blocks: it runs in worker threads. One connection writes
(under a lock); reads take a connection from a small pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .disk_rows import entry_from_row
from .entry_policy import StoredResponse

__all__ = ["BUSY_TIMEOUT", "INLINE_MAX", "DiskIndex", "IndexUnavailable", "Row"]

_log = logging.getLogger("anysoup.cache")
_T = TypeVar("_T")

#: Bodies up to this size live in their row (one query serves a hit).
INLINE_MAX = 64 * 1024
#: How long SQLite waits for another connection's lock before giving up (s).
BUSY_TIMEOUT = 5.0
#: Attempts at a statement that keeps meeting a lock (each waits BUSY_TIMEOUT).
_ATTEMPTS = 3
#: ``PRAGMA application_id``: marks the file as this index ("aSoC").
APPLICATION_ID = 0x61536F43
#: ``PRAGMA user_version``: the layout below.
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " entry_id TEXT PRIMARY KEY, key TEXT NOT NULL, vary TEXT NOT NULL,"
    " meta TEXT NOT NULL, body_size INTEGER NOT NULL, body BLOB, file TEXT,"
    " last_used REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_key ON entries (key)",
    "CREATE INDEX IF NOT EXISTS entries_lru ON entries (last_used)",
    "CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " size INTEGER NOT NULL, count INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO totals VALUES (0, 0, 0)",
    "CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN"
    " UPDATE totals SET size = size + NEW.body_size, count = count + 1; END",
    "CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN"
    " UPDATE totals SET size = size - OLD.body_size, count = count - 1; END",
    "CREATE TRIGGER IF NOT EXISTS entries_resize AFTER UPDATE OF body_size ON entries BEGIN"
    " UPDATE totals SET size = size - OLD.body_size + NEW.body_size; END",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
#: Newest first: a row's rowid grows with each insert.
_LOOKUP = (
    "SELECT entry_id, key, meta, body_size, body FROM entries WHERE key = ? ORDER BY rowid DESC"
)
_BODY = "SELECT body_size, body, file FROM entries WHERE entry_id = ?"
#: Rows of compression dictionaries: their meta says so (disk_rows writes compact JSON).
_DICTIONARIES = (
    "SELECT entry_id, key, meta, body_size, NULL FROM entries"
    """ WHERE meta LIKE '%"dictionary_match":"%' ORDER BY rowid DESC"""
)
_TOTAL = "SELECT size FROM totals"

#: How many parsed rows are remembered.
_PARSED = 512

#: One row as read back: the entry, and its body when it is inline.
Row = tuple[StoredResponse, bytes | None]


class IndexUnavailable(Exception):
    """The index could not be read or written (locked too long, corrupt, gone).

    The store logs it and carries on as if the entry were not there.
    """


class ForeignIndex(Exception):
    """The index file is not an index of this layout (garbage, or another program's)."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc)
    return "locked" in text or "busy" in text


def _is_damaged(exc: sqlite3.Error) -> bool:
    """Whether the file is not a database, or a damaged one (not just busy or unopenable)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc)
    return "not a database" in text or "malformed" in text


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class DiskIndex:
    """The SQLite index of one cache directory (blocking; call from worker threads).

    Args:
        path: The database file (``<dir>/index.sqlite``).
        busy_timeout: How long a statement waits for another connection's lock.
    """

    def __init__(self, path: str, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self._timeout = busy_timeout
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # The connection lookup_now() reads on the caller's own thread: it
        # never waits for a lock (busy timeout 0), so it never blocks a loop.
        self._inline: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()
        # Rows already turned into entries (bounded; oldest first out).
        self._parsed: dict[tuple[object, ...], StoredResponse] = {}
        self._closed = True

    # -- opening -------------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the index; move a foreign or corrupt file aside first.

        The caller holds the directory's lock, so one process at a time
        checks and repairs.
        """
        try:
            self._open_checked()
        except (sqlite3.DatabaseError, ForeignIndex) as exc:
            if not isinstance(exc, ForeignIndex) and not _is_damaged(exc):
                raise IndexUnavailable(f"opening cache index {self.path!r}: {exc}") from exc
            _log.warning(
                "cache index %r is not usable (%s): moved aside, starting anew", self.path, exc
            )
        else:
            return
        self._move_aside()
        try:
            self._open_checked()
        except (sqlite3.Error, ForeignIndex) as exc:
            raise IndexUnavailable(f"opening cache index {self.path!r}: {exc}") from exc

    def _open_checked(self) -> None:
        _create_private(self.path)
        db = _connect(self.path, self._timeout)
        try:
            self._retry(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone())
            self._retry(lambda: self._check_schema(db))
        except BaseException:
            db.close()
            raise
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(self.path + suffix, 0o600)
        self._writer = db
        self._closed = False

    @staticmethod
    def _check_schema(db: sqlite3.Connection) -> None:
        with _transaction(db):
            app = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app == APPLICATION_ID and version > SCHEMA_VERSION:
                # A newer anysoup's index: leave it be (this one only misses).
                raise IndexUnavailable(f"the cache index has a newer layout ({version})")
            if (app, version) != (APPLICATION_ID, SCHEMA_VERSION) and (app or version or tables):
                raise ForeignIndex(f"application_id {app:#x}, user_version {version}")
            for statement in _SCHEMA:
                db.execute(statement)

    def _move_aside(self) -> None:
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path + ".bad")
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(self.path + suffix)

    def close(self) -> None:
        """Close every connection (readers in use close when handed back)."""
        with self._write_lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        with self._inline_lock:
            if self._inline is not None:
                readers.append(self._inline)
                self._inline = None
        for db in readers:
            db.close()

    # -- the plumbing ------------------------------------------------------------------

    def _retry(self, action: Callable[[], _T]) -> _T:
        for attempt in range(_ATTEMPTS):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _read(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a query on a pooled read connection, with retries."""
        with self._readers_lock:
            db = self._readers.pop() if self._readers else None
        try:
            if db is None:
                if self._closed:
                    raise IndexUnavailable("the cache index is closed")
                db = _connect(self.path, self._timeout)
            conn = db
            return self._retry(lambda: action(conn))
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"reading cache index {self.path!r}: {exc}") from exc
        finally:
            if db is not None:
                with self._readers_lock:
                    if self._closed:
                        db.close()
                    else:
                        self._readers.append(db)

    def write(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action`` in one write transaction (retried when locked)."""
        with self._write_lock:
            db = self._writer
            if db is None:
                raise IndexUnavailable("the cache index is closed")

            def attempt() -> _T:
                with _transaction(db):
                    return action(db)

            try:
                return self._retry(attempt)
            except sqlite3.Error as exc:
                raise IndexUnavailable(f"writing cache index {self.path!r}: {exc}") from exc

    # -- reading -------------------------------------------------------------------

    def lookup(self, key: str) -> tuple[list[Row], list[str]]:
        """The rows for ``key``, newest first, and the ids of rows that didn't parse."""
        return self._rows(key, self._read(lambda db: db.execute(_LOOKUP, (key,)).fetchall()))

    def lookup_now(self, key: str) -> tuple[list[Row], list[str]] | None:
        """:meth:`lookup` without ever waiting, on the caller's thread; None if it can't.

        A hit should not cost a trip to a worker thread (on a small VM that
        trip costs more CPU than an HTTP round trip to a local server): an
        indexed read of one key from a WAL database never waits for writers,
        so it is tried here first, with a busy timeout of 0. When the index
        is locked (a checkpoint, another process's recovery), in use by
        another thread, or failing, the caller goes the worker-thread way.
        """
        if not self._inline_lock.acquire(blocking=False):
            return None
        try:
            db = self._inline
            if db is None:
                if self._closed:
                    return None
                db = self._inline = _connect(self.path, 0.0)
            raw = db.execute(_LOOKUP, (key,)).fetchall()
        except sqlite3.Error:
            return None
        finally:
            self._inline_lock.release()
        return self._rows(key, raw)

    def _rows(self, key: str, raw: list[Any]) -> tuple[list[Row], list[str]]:
        rows: list[Row] = []
        bad: list[str] = []
        parsed = self._parsed
        for entry_id, row_key, meta, body_size, body in raw:
            # A row read again (each hit) is the same text: parsed and checked once.
            memo = (entry_id, row_key, meta, body_size)
            entry = parsed.get(memo)
            if entry is not None:
                rows.append((entry, body if isinstance(body, bytes) else None))
                continue
            try:
                entry = entry_from_row(entry_id, row_key, meta, body_size)
                if len(parsed) >= _PARSED:
                    # Another thread may change the memo meanwhile: losing a
                    # race loses a memo, never an entry.
                    with contextlib.suppress(RuntimeError, KeyError, StopIteration):
                        parsed.pop(next(iter(parsed)))
                parsed[memo] = entry
            except (TypeError, ValueError, KeyError) as exc:
                _log.warning(
                    "cache index row %r for %r is not readable (%s): dropped", entry_id, key, exc
                )
                bad.append(str(entry_id))
                continue
            rows.append((entry, body if isinstance(body, bytes) else None))
        return rows, bad

    def dictionaries(self) -> list[StoredResponse]:
        """The entries that are compression dictionaries (unreadable rows skipped)."""
        raw = self._read(lambda db: db.execute(_DICTIONARIES).fetchall())
        found = []
        for entry_id, row_key, meta, body_size, _ in raw:
            try:
                entry = entry_from_row(entry_id, row_key, meta, body_size)
            except (TypeError, ValueError, KeyError):
                continue  # lookup() reports and drops it when its key is asked for
            if entry.dictionary_match:
                found.append(entry)
        return found

    def body_of(self, entry_id: str) -> tuple[int, bytes | None, str | None] | None:
        """``(body_size, inline body, file name)`` of a row, None if it is gone."""
        row = self._read(lambda db: db.execute(_BODY, (entry_id,)).fetchone())
        if row is None:
            return None
        size, body, name = row
        return (
            size if isinstance(size, int) else -1,
            body if isinstance(body, bytes) else None,
            name if isinstance(name, str) else None,
        )

    def total(self) -> int:
        """The bytes of bodies every row names."""
        row = self._read(lambda db: db.execute(_TOTAL).fetchone())
        return int(row[0]) if row is not None else 0

    def file_names(self) -> set[str]:
        """Every body file a row names."""
        rows = self._read(lambda db: db.execute("SELECT file FROM entries").fetchall())
        return {r[0] for r in rows if isinstance(r[0], str)}


def _create_private(path: str) -> None:
    """Create ``path`` empty with mode 0600 if it doesn't exist (SQLite keeps the mode)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        return  # sqlite3.connect reports what is wrong
    try:
        with contextlib.suppress(OSError):
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
