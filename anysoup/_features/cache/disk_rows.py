"""The disk cache's rows: an entry as stored in ``index.sqlite``, and the steps that change rows.

Theory of operation
-------------------
A row holds an entry's keys, its metadata as JSON (``meta``), its body size,
its body (inline, up to ``disk_index.INLINE_MAX``) or the name of its body
file, and when it was last used. The secondary key is stored a second time
as canonical JSON text (``vary``), so that "the key's entry with the same
secondary key" (RFC 9111 §4.1) is one indexed comparison.

Reading a row is strict: a row that is not exactly what :func:`insert`
writes (another program's, a hand edit, a torn disk page) raises
``TypeError``/``ValueError``/``KeyError``, and the index drops it.

The functions that change rows run inside one ``DiskIndex.write``
transaction, so a store composes them (record the batched uses, insert,
evict) into one atomic step. Those that delete rows return the rows' body
files: the caller deletes them once the transaction committed (a row never
names a missing file because of us).
"""

from __future__ import annotations

import json
import sqlite3

from ..._model.headers import MessageHeaders
from .entry_policy import StoredResponse

__all__ = ["entry_from_row", "evict", "insert", "remove", "total", "touch", "update", "vary_key"]

#: Rows deleted per eviction step.
_EVICT_BATCH = 32
_TOTAL = "SELECT size FROM totals"


def vary_key(vary: tuple[tuple[str, str | None], ...]) -> str:
    """The secondary key as the text stored (and compared) in the ``vary`` column."""
    return json.dumps([list(pair) for pair in vary], separators=(",", ":"))


def _meta_json(entry: StoredResponse) -> str:
    return json.dumps(
        {
            "status": entry.status,
            "reason": entry.reason,
            "http_version": entry.http_version,
            "headers": [list(h) for h in entry.headers],
            "vary": [list(v) for v in entry.vary],
            "request_time": entry.request_time,
            "response_time": entry.response_time,
            "dictionary_match": entry.dictionary_match,
            "extra": [list(e) for e in entry.extra],
        },
        separators=(",", ":"),
    )


def _pairs(value: object, *, none_ok: bool = False) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    out: list[tuple[str, str | None]] = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError("not a pair")
        if not isinstance(pair[1], str) and not (none_ok and pair[1] is None):
            raise TypeError("not a text value")
        out.append((pair[0], pair[1]))
    return tuple(out)


def entry_from_row(
    entry_id: object, key: object, meta: object, body_size: object
) -> StoredResponse:
    """The entry a row describes (TypeError/ValueError when the row is not ours)."""
    if not isinstance(entry_id, str) or not isinstance(key, str) or not isinstance(meta, str):
        raise TypeError("bad columns")
    if not isinstance(body_size, int) or body_size < 0:
        raise TypeError("bad body size")
    m = json.loads(meta)
    if not isinstance(m, dict):
        raise TypeError("metadata is not an object")
    status, reason, version = m["status"], m["reason"], m["http_version"]
    times = (m["request_time"], m["response_time"])
    dictionary = m.get("dictionary_match")
    if not isinstance(status, int) or not isinstance(reason, str) or not isinstance(version, str):
        raise TypeError("bad status line")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
        raise TypeError("bad times")
    if dictionary is not None and not isinstance(dictionary, str):
        raise TypeError("bad dictionary_match")
    headers = _pairs(m["headers"])
    MessageHeaders(headers)  # type: ignore[arg-type]  # ValueError for a line not valid HTTP
    return StoredResponse(
        key=key,
        entry_id=entry_id,
        status=status,
        reason=reason,
        http_version=version,
        headers=headers,  # type: ignore[arg-type]
        vary=_pairs(m["vary"], none_ok=True),
        request_time=float(times[0]),
        response_time=float(times[1]),
        body_size=body_size,
        dictionary_match=dictionary,
        extra=_pairs(m.get("extra", [])),  # type: ignore[arg-type]
    )


# -- writing: steps run inside DiskIndex.write's transaction -------------------------


def touch(db: sqlite3.Connection, uses: dict[str, float]) -> None:
    """Record when entries were last used (batched: hits don't write one by one)."""
    if uses:
        db.executemany(
            "UPDATE entries SET last_used = max(last_used, ?) WHERE entry_id = ?",
            [(when, entry_id) for entry_id, when in uses.items()],
        )


def insert(
    db: sqlite3.Connection, entry: StoredResponse, body: bytes | None, file: str | None, now: float
) -> list[str]:
    """Add ``entry``, replacing its key's row with the same secondary key.

    Returns:
        The body files of the rows replaced (to delete once committed).
    """
    where = "(key = ? AND vary = ?) OR entry_id = ?"
    args = (entry.key, vary_key(entry.vary), entry.entry_id)
    files = db.execute(f"SELECT file FROM entries WHERE {where}", args).fetchall()
    db.execute(f"DELETE FROM entries WHERE {where}", args)
    db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.entry_id, entry.key, args[1], _meta_json(entry), entry.body_size, body, file, now),
    )
    return [f for (f,) in files if isinstance(f, str)]


def update(db: sqlite3.Connection, entry: StoredResponse, now: float) -> None:
    """Give the row ``entry.entry_id`` new metadata (a 304's); its body stays."""
    db.execute(
        "UPDATE entries SET meta = ?, vary = ?, last_used = ? WHERE entry_id = ? AND key = ?",
        (_meta_json(entry), vary_key(entry.vary), now, entry.entry_id, entry.key),
    )


def remove(db: sqlite3.Connection, key: str | None, entry_id: str | None) -> list[str]:
    """Delete one row, a key's rows, or (both None) every row; return their files."""
    args = tuple(v for v in (key, entry_id) if v is not None)
    where = " AND ".join(
        f"{column} = ?" for column, v in (("key", key), ("entry_id", entry_id)) if v is not None
    )
    where = where or "1"
    files = db.execute(f"SELECT file FROM entries WHERE {where}", args).fetchall()
    db.execute(f"DELETE FROM entries WHERE {where}", args)
    return [f for (f,) in files if isinstance(f, str)]


def evict(db: sqlite3.Connection, max_size: int) -> tuple[list[str], int]:
    """Delete the least recently used rows until the bodies fit in ``max_size``.

    The total is the database's (every process's entries), so each process
    evicts what all of them stored.

    Returns:
        The deleted rows' files, and the total left.
    """
    files: list[str] = []
    total = int(db.execute(_TOTAL).fetchone()[0])
    while total > max_size:
        rows = db.execute(
            "SELECT entry_id, body_size, file FROM entries ORDER BY last_used, rowid LIMIT ?",
            (_EVICT_BATCH,),
        ).fetchall()
        if not rows:
            break
        for entry_id, size, file in rows:
            if total <= max_size:
                break
            db.execute("DELETE FROM entries WHERE entry_id = ?", (entry_id,))
            total -= size if isinstance(size, int) else 0
            if isinstance(file, str):
                files.append(file)
        total = int(db.execute(_TOTAL).fetchone()[0])
    return files, total


def total(db: sqlite3.Connection) -> int:
    """The bytes of bodies every row names (inside a transaction)."""
    return int(db.execute(_TOTAL).fetchone()[0])
