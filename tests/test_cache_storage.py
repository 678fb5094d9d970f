"""The cache's storage: the memory store and the disk store behind one interface.

Both stores go through the same round trips; the disk store also through
its guarantees: an entry visible here before its disk write ends, crash
safety, 0700/0600, damaged files ignored with a log line, a locked index
turned into a miss, several processes filling one directory at once, and a
64 MiB body read back with flat memory. Nothing waits on time: the disk
store's worker thread is held by a job the test queues (:func:`held`), so
"while the write is still under way" is a state the test makes, not a race.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import sqlite3
import stat
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import anysoup
from anysoup._features.cache.disk_storage import DiskStorage
from anysoup._features.cache.entry_policy import StoredResponse
from anysoup._features.cache.storage import READ_SIZE, BodyReader, CacheStorage, MemoryStorage

MiB = 1024 * 1024
ROOT = Path(anysoup.__file__).resolve().parent.parent


def make_entry(
    key: str = "https://example.test/a", entry_id: str = "e1", **fields: object
) -> StoredResponse:
    base = StoredResponse(
        key=key,
        entry_id=entry_id,
        status=200,
        reason="OK",
        http_version="1.1",
        headers=(("content-type", "text/plain"), ("etag", '"v1"')),
        vary=(),
        request_time=1000.0,
        response_time=1001.0,
        body_size=0,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def data_of(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def store(
    storage: CacheStorage, entry: StoredResponse, body: bytes, piece: int = 50_000
) -> None:
    writer = storage.begin(entry)
    for start in range(0, len(body), piece):
        assert await writer.write(body[start : start + piece])
    await writer.commit(entry)


async def read_all(reader: BodyReader | None) -> bytes:
    assert reader is not None
    pieces = []
    while (piece := await reader.read_chunk()) is not None:
        assert 0 < len(piece) <= READ_SIZE
        pieces.append(piece)
    await reader.aclose()
    return b"".join(pieces)


async def body_of(storage: CacheStorage, key: str, entry_id: str | None = None) -> bytes | None:
    for entry in await storage.lookup(key):
        if entry_id is None or entry.entry_id == entry_id:
            return await read_all(await storage.open_body(entry))
    return None


@pytest.fixture(params=["memory", "disk"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheStorage]:
    made: CacheStorage = (
        MemoryStorage() if request.param == "memory" else DiskStorage(tmp_path / "c")
    )
    await made.open()
    yield made
    await made.aclose()


@pytest.fixture
async def disk(tmp_path: Path) -> AsyncIterator[DiskStorage]:
    made = DiskStorage(tmp_path / "c", max_size=1 << 30)
    await made.open()
    yield made
    await made.aclose()


@contextlib.contextmanager
def held(storage: DiskStorage) -> Iterator[threading.Event]:
    """Hold the store's worker thread: jobs queued from now wait for the event."""
    opened = storage.opened
    assert opened is not None
    gate = threading.Event()
    opened.worker.submit(gate.wait)
    try:
        yield gate
    finally:
        gate.set()


async def wait_worker_reached(storage: DiskStorage) -> threading.Event:
    """Queue a second hold and return once the worker ran every job before it."""
    opened = storage.opened
    assert opened is not None
    reached, gate = threading.Event(), threading.Event()

    def hold() -> None:
        reached.set()
        gate.wait()

    opened.worker.submit(hold)
    await anyio.to_thread.run_sync(reached.wait)
    return gate


def files_in(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.exists() else []


# -- both stores ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, READ_SIZE, READ_SIZE + 1, 3 * MiB // 2])
async def test_round_trip(storage: CacheStorage, size: int) -> None:
    body = data_of(size)
    await store(storage, make_entry(), body)
    [found] = await storage.lookup("https://example.test/a")
    assert found == make_entry(body_size=size)
    assert await read_all(await storage.open_body(found)) == body
    await storage.flush()
    assert storage.total_size() == size
    assert await storage.lookup("https://example.test/other") == []


async def test_variants_newest_first_and_same_vary_replaces(storage: CacheStorage) -> None:
    gzip = (("accept-encoding", "gzip"),)
    plain = (("accept-encoding", None),)
    await store(storage, make_entry(entry_id="g1", vary=gzip), b"gzip one")
    await store(storage, make_entry(entry_id="p1", vary=plain), b"plain")
    await store(storage, make_entry(entry_id="g2", vary=gzip), b"gzip two")
    found = await storage.lookup("https://example.test/a")
    assert [e.entry_id for e in found] == ["g2", "p1"]
    assert await body_of(storage, "https://example.test/a", "g2") == b"gzip two"
    await storage.flush()
    assert storage.total_size() == len(b"gzip two") + len(b"plain")

    await storage.remove("https://example.test/a", "g2")
    assert [e.entry_id for e in await storage.lookup("https://example.test/a")] == ["p1"]
    await store(storage, make_entry(key="https://example.test/b", entry_id="b1"), b"b")
    await storage.remove("https://example.test/a")
    assert await storage.lookup("https://example.test/a") == []
    await storage.clear()
    assert await storage.lookup("https://example.test/b") == []
    await storage.flush()
    assert storage.total_size() == 0


async def test_update_keeps_body(storage: CacheStorage) -> None:
    await store(storage, make_entry(), b"body")
    fresh = make_entry(headers=(("etag", '"v2"'),), response_time=2000.0, body_size=999)
    await storage.update(fresh)
    [found] = await storage.lookup("https://example.test/a")
    assert found == dataclasses.replace(fresh, body_size=4)
    assert await read_all(await storage.open_body(found)) == b"body"


async def test_abort_and_unfinished_writers_leave_nothing(storage: CacheStorage) -> None:
    writer = storage.begin(make_entry())
    assert await writer.write(data_of(2 * MiB + 5))
    writer.abort()
    writer.abort()
    assert not await writer.write(b"more")
    await writer.commit(make_entry())  # too late: nothing is stored
    forgotten = storage.begin(make_entry(entry_id="e2"))
    assert await forgotten.write(data_of(MiB + 1))
    del forgotten
    gc.collect()  # a writer dropped unfinished aborts itself
    await storage.flush()
    assert await storage.lookup("https://example.test/a") == []
    assert storage.total_size() == 0
    if isinstance(storage, DiskStorage):
        assert files_in(Path(storage.directory) / "bodies") == []


async def test_over_the_entry_cap_nothing_is_stored(storage: CacheStorage) -> None:
    storage.max_size = 1000
    assert storage.max_entry_size == 100
    writer = storage.begin(make_entry())
    assert await writer.write(b"x" * 100)
    assert not await writer.write(b"y")
    assert not await writer.write(b"z")
    await writer.commit(make_entry())
    await storage.flush()
    assert await storage.lookup("https://example.test/a") == []
    assert storage.total_size() == 0


async def test_eviction_is_least_recently_used(storage: CacheStorage) -> None:
    storage.max_size = 1000  # entries of 100 bytes: ten fit
    for n in range(10):
        await store(storage, make_entry(key=f"k{n}", entry_id=f"e{n}"), data_of(100, n))
    assert await body_of(storage, "k0") == data_of(100, 0)  # k0 is used again: k1 is oldest
    await store(storage, make_entry(key="k10", entry_id="e10"), data_of(100, 10))
    await store(storage, make_entry(key="k11", entry_id="e11"), data_of(100, 11))
    await storage.flush()
    kept = [n for n in range(12) if await storage.lookup(f"k{n}")]
    assert kept == [0, *range(3, 12)]
    assert storage.total_size() == 1000


async def test_lowering_max_size_evicts(storage: CacheStorage) -> None:
    for n in range(5):
        await store(storage, make_entry(key=f"k{n}", entry_id=f"e{n}"), data_of(1000, n))
    await storage.flush()
    storage.max_size = 2500
    await storage.flush()  # memory evicts at once, disk at the next write or flush
    assert storage.total_size() == 2000
    assert [n for n in range(5) if await storage.lookup(f"k{n}")] == [3, 4]


async def test_readers_outlive_removal(storage: CacheStorage) -> None:
    body = data_of(300_000)
    await store(storage, make_entry(), body)
    await storage.flush()
    [found] = await storage.lookup("https://example.test/a")
    reader = await storage.open_body(found)
    assert reader is not None
    first = await reader.read_chunk()
    await storage.clear()  # the file goes; an open reader keeps its bytes
    assert first is not None
    assert first + await read_all(reader) == body


async def test_sizes_and_parity_calls(storage: CacheStorage) -> None:
    assert storage.max_size == 50 * MiB
    assert storage.max_entry_size == 5 * MiB
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="max_size"):
            storage.max_size = bad  # type: ignore[assignment]
    await store(storage, make_entry(), b"x" * 10)
    await storage.dump()  # libsoup's names: dump writes what is pending, load re-reads
    await storage.load()
    assert storage.total_size() == 10
    assert await body_of(storage, "https://example.test/a") == b"x" * 10


# -- disk: visible before the write ends, backpressure ------------------------------------


async def test_committed_entry_is_served_while_its_write_waits(
    disk: DiskStorage, tmp_path: Path
) -> None:
    body = data_of(3 * MiB // 2)  # one full buffer handed over, the rest at commit
    with held(disk):
        await store(disk, make_entry(), body)
        [found] = await disk.lookup("https://example.test/a")
        assert found.body_size == len(body)
        assert await read_all(await disk.open_body(found)) == body  # all from memory
        other = DiskStorage(tmp_path / "c")  # another process's view: not there yet
        assert await other.lookup("https://example.test/a") == []
        await other.aclose()
        assert files_in(tmp_path / "c" / "bodies") == []
    await disk.flush()
    again = DiskStorage(tmp_path / "c")
    assert await body_of(again, "https://example.test/a") == body
    await again.aclose()


async def test_reader_crosses_from_file_to_memory(disk: DiskStorage, tmp_path: Path) -> None:
    body = data_of(3 * MiB // 2)
    writer = disk.begin(make_entry())
    assert await writer.write(body[:MiB])  # handed to the worker
    gate = await wait_worker_reached(disk)  # the first MiB is in the temporary file
    try:
        assert await writer.write(body[MiB:])
        await writer.commit(make_entry())
        [temp] = files_in(tmp_path / "c" / "bodies")
        assert temp.startswith(f"tmp-{os.getpid()}-")
        assert (tmp_path / "c" / "bodies" / temp).stat().st_size == MiB
        [found] = await disk.lookup("https://example.test/a")
        reader = await disk.open_body(found)
        assert reader is not None
        head = await reader.read_chunk()
    finally:
        gate.set()
    await disk.flush()  # renamed and indexed under the reader's feet
    assert head is not None
    assert head + await read_all(reader) == body
    assert [n.endswith(".body") for n in files_in(tmp_path / "c" / "bodies")] == [True]


async def test_writer_waits_only_when_a_second_buffer_is_full(disk: DiskStorage) -> None:
    writer = disk.begin(make_entry())
    progress: list[str] = []
    with held(disk) as gate:
        assert await writer.write(data_of(MiB))  # one buffer waiting: no wait
        progress.append("first")

        async def second() -> None:
            assert await writer.write(data_of(MiB))
            progress.append("second")

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert progress == ["first"]  # waiting for the disk
            gate.set()
    assert progress == ["first", "second"]
    await writer.commit(make_entry())
    await disk.flush()
    assert (await disk.lookup("https://example.test/a"))[0].body_size == 2 * MiB


async def test_update_of_an_entry_still_being_written(disk: DiskStorage, tmp_path: Path) -> None:
    fresh = make_entry(headers=(("etag", '"v2"'),), response_time=2000.0)
    with held(disk):
        await store(disk, make_entry(), data_of(200_000))
        await disk.update(fresh)
        [found] = await disk.lookup("https://example.test/a")
        assert found.headers == fresh.headers
    await disk.flush()
    again = DiskStorage(tmp_path / "c")
    [found] = await again.lookup("https://example.test/a")
    assert found == dataclasses.replace(fresh, body_size=200_000)
    await again.aclose()


async def test_a_failing_disk_stops_the_writer(
    disk: DiskStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = tmp_path / "c" / "bodies"
    bodies.rmdir()
    bodies.write_bytes(b"not a directory")
    writer = disk.begin(make_entry())
    with caplog.at_level(logging.WARNING, "anysoup.cache"):
        assert await writer.write(data_of(MiB))
        await disk.flush()  # the worker tried, and failed
        assert not await writer.write(b"more")
    await writer.commit(make_entry())
    await disk.flush()
    assert await disk.lookup("https://example.test/a") == []
    [record] = [r for r in caplog.records if r.name == "anysoup.cache"]
    assert "not stored" in record.getMessage()


async def test_lru_order_is_the_callers_not_the_disks(disk: DiskStorage) -> None:
    disk.max_size = 1000
    with held(disk):  # every entry below is still pending when k0 is read
        for n in range(10):
            await store(disk, make_entry(key=f"k{n}", entry_id=f"e{n}"), data_of(100, n))
        assert await body_of(disk, "k0") == data_of(100, 0)
    for n in (10, 11):
        await store(disk, make_entry(key=f"k{n}", entry_id=f"e{n}"), data_of(100, n))
    await disk.flush()
    assert [n for n in range(12) if await disk.lookup(f"k{n}")] == [0, *range(3, 12)]


async def test_concurrent_writers_of_one_url_store_one_whole_entry(
    disk: DiskStorage, tmp_path: Path
) -> None:
    first, second = disk.begin(make_entry(entry_id="one")), disk.begin(make_entry(entry_id="two"))
    for n in range(3):
        assert await first.write(data_of(MiB, 1)[n * MiB // 3 : (n + 1) * MiB // 3])
        assert await second.write(data_of(MiB, 2)[n * MiB // 3 : (n + 1) * MiB // 3])
    await second.commit(make_entry(entry_id="two"))
    await first.commit(make_entry(entry_id="one"))
    await disk.flush()
    again = DiskStorage(tmp_path / "c")
    [found] = await again.lookup("https://example.test/a")
    assert found.entry_id == "one"
    assert await read_all(await again.open_body(found)) == data_of(MiB, 1)
    await again.aclose()
    assert len(files_in(tmp_path / "c" / "bodies")) == 1


# -- disk: restart, crash, permissions ---------------------------------------------------


async def run_scripts(script: str, *runs: tuple[str, ...]) -> None:
    """Run ``python -c script *args`` once per ``runs`` item, all at once; each must succeed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def run(args: tuple[str, ...]) -> None:
        done = await anyio.run_process([sys.executable, "-c", script, *args], env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for args in runs:
                tg.start_soon(run, args)


#: The subprocesses below run on both backends at once; the test process
#: (the third party, reading) on one: its reading runs on both everywhere else.
ONE_READER = pytest.mark.parametrize("anyio_backend", ["asyncio"])

PRELUDE = """
import os, sys, anyio, hashlib, random
from anysoup._features.cache.disk_storage import DiskStorage
from anysoup._features.cache.entry_policy import StoredResponse

def entry(key, entry_id, headers=(), vary=()):
    return StoredResponse(key, entry_id, 200, "OK", "1.1", headers, vary, 0.0, 0.0, 0)

async def put(storage, e, body):
    w = storage.begin(e)
    for i in range(0, len(body), 40000):
        assert await w.write(body[i:i + 40000])
    await w.commit(e)
"""


@ONE_READER
async def test_entries_survive_an_exit_without_close_or_dump(tmp_path: Path) -> None:
    script = PRELUDE + textwrap.dedent("""
    async def main():
        storage = DiskStorage(sys.argv[1])
        for n in range(5):
            await put(storage, entry(f"k{n}", f"e{n}"), bytes([n]) * 100_000 * n)
    anyio.run(main, backend=sys.argv[2])
    """)
    await run_scripts(script, *[(str(tmp_path / b), b) for b in ("asyncio", "trio")])
    for backend in ("asyncio", "trio"):
        storage = DiskStorage(tmp_path / backend)
        for n in range(5):
            assert await body_of(storage, f"k{n}") == bytes([n]) * 100_000 * n
        await storage.aclose()


@ONE_READER
@pytest.mark.parametrize("writer_backend", ["asyncio", "trio"])
async def test_a_killed_writer_leaves_a_usable_cache(tmp_path: Path, writer_backend: str) -> None:
    script = PRELUDE + textwrap.dedent("""
    async def main():
        storage = DiskStorage(sys.argv[1])
        await put(storage, entry("kept", "kept"), b"k" * 200_000)
        w = storage.begin(entry("torn", "torn"))
        await w.write(b"t" * 3_000_000)
        await storage.flush()  # its bytes so far are in a temporary file
        await put(storage, entry("late", "late"), b"l" * 500_000)
        os._exit(0)  # no commit, no close: as if killed
    anyio.run(main, backend=sys.argv[2])
    """)
    await run_scripts(script, (str(tmp_path / "c"), writer_backend))
    assert any(n.startswith("tmp-") for n in files_in(tmp_path / "c" / "bodies"))
    storage = DiskStorage(tmp_path / "c")
    await storage.open()  # the dead writer's temporary file goes
    assert not any(n.startswith("tmp-") for n in files_in(tmp_path / "c" / "bodies"))
    assert await body_of(storage, "kept") == b"k" * 200_000
    assert await storage.lookup("torn") == []
    assert await body_of(storage, "late") in (None, b"l" * 500_000)  # whole or absent
    await store(storage, make_entry(), b"still usable")
    assert await body_of(storage, "https://example.test/a") == b"still usable"
    await storage.aclose()


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_directory_0700_and_files_0600(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        storage = DiskStorage(tmp_path / "new" / "c")
        await store(storage, make_entry(), data_of(200_000))
        await storage.flush()
        root = tmp_path / "new" / "c"
        modes = {
            str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]
        }
        await storage.aclose()
    finally:
        os.umask(old)
    assert modes.pop(".") == 0o700
    assert modes.pop("bodies") == 0o700
    assert set(modes.values()) == {0o600}, modes
    assert {"index.sqlite", "lock"} <= set(modes)


# -- disk: damaged and foreign files --------------------------------------------------------


@pytest.mark.parametrize("content", [b"garbage, not a database" * 100, b"sqlite"])
async def test_a_garbage_or_foreign_index_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (tmp_path / "c").mkdir()
    index = tmp_path / "c" / "index.sqlite"
    if content == b"sqlite":
        with contextlib.closing(sqlite3.connect(index)) as db:
            db.execute("CREATE TABLE entries (x)")
            db.commit()
    else:
        index.write_bytes(content)
    storage = DiskStorage(tmp_path / "c")
    with caplog.at_level(logging.WARNING, "anysoup.cache"):
        await store(storage, make_entry(), b"body")
    assert await body_of(storage, "https://example.test/a") == b"body"
    await storage.aclose()
    assert (tmp_path / "c" / "index.sqlite.bad").exists()
    [record] = [r for r in caplog.records if r.name == "anysoup.cache"]
    assert "moved aside" in record.getMessage()


async def test_a_newer_index_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = DiskStorage(tmp_path / "c")
    await store(storage, make_entry(), b"body")
    await storage.aclose()
    await damage(tmp_path, "PRAGMA user_version = 99")
    storage = DiskStorage(tmp_path / "c")
    with caplog.at_level(logging.WARNING, "anysoup.cache"):
        assert await storage.lookup("https://example.test/a") == []
        writer = storage.begin(make_entry(entry_id="e2"))
        assert not await writer.write(b"x")
    await storage.aclose()
    assert not (tmp_path / "c" / "index.sqlite.bad").exists()
    assert all("newer layout" in r.getMessage() for r in caplog.records)
    assert caplog.records


async def damage(tmp_path: Path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "c" / "index.sqlite")) as db:
        db.execute(statement)
        db.commit()


@pytest.mark.parametrize(
    ("harm", "message"),
    [
        ("truncate", "holds 1000 bytes"),
        ("directory", "not a regular file"),
        ("delete", "No such file"),
        ("escape", "names no body"),
    ],
)
async def test_a_damaged_body_file_is_a_miss_and_dropped(
    disk: DiskStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture, harm: str, message: str
) -> None:
    await store(disk, make_entry(), data_of(100_000))
    await disk.flush()
    [name] = files_in(tmp_path / "c" / "bodies")
    path = tmp_path / "c" / "bodies" / name
    if harm == "truncate":
        path.write_bytes(b"x" * 1000)
    elif harm == "directory":
        path.unlink()
        path.mkdir()
    elif harm == "delete":
        path.unlink()
    else:
        await damage(tmp_path, "UPDATE entries SET file = '../index.sqlite'")
    [found] = await disk.lookup("https://example.test/a")
    with caplog.at_level(logging.WARNING, "anysoup.cache"):
        assert await disk.open_body(found) is None
    [record] = [r for r in caplog.records if r.name == "anysoup.cache"]
    assert message in record.getMessage()
    assert await disk.lookup("https://example.test/a") == []
    assert (tmp_path / "c" / "index.sqlite").stat().st_size > 0  # not touched by the escape


@pytest.mark.parametrize("meta", ["{not json", '{"status": "200"}', "[]"])
async def test_a_row_that_does_not_parse_is_skipped_and_deleted(
    disk: DiskStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture, meta: str
) -> None:
    await store(disk, make_entry(entry_id="bad"), b"bad")
    await store(disk, make_entry(entry_id="good", vary=(("x", "1"),)), b"good")
    await disk.flush()
    await damage(tmp_path, f"UPDATE entries SET meta = '{meta}' WHERE entry_id = 'bad'")
    with caplog.at_level(logging.WARNING, "anysoup.cache"):
        assert [e.entry_id for e in await disk.lookup("https://example.test/a")] == ["good"]
    assert len([r for r in caplog.records if r.name == "anysoup.cache"]) == 1
    await disk.flush()
    with contextlib.closing(sqlite3.connect(tmp_path / "c" / "index.sqlite")) as db:
        assert db.execute("SELECT entry_id FROM entries").fetchall() == [("good",)]


async def test_leftovers_go_and_foreign_files_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = tmp_path / "c" / "bodies"
    bodies.mkdir(parents=True)
    dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    names = {
        "dead": f"tmp-{int(dead.stdout)}-{'a' * 32}.part",
        "old": f"tmp-{os.getpid()}-{'b' * 32}.part",
        "live": f"tmp-{os.getpid()}-{'c' * 32}.part",
        "orphan": f"{'d' * 32}.body",
        "young orphan": f"{'e' * 32}.body",
        "foreign": "notes.txt",
    }
    for name in names.values():
        (bodies / name).write_bytes(b"x")
    long_ago = time.time() - 3600
    for which in ("old", "orphan"):
        os.utime(bodies / names[which], (long_ago, long_ago))
    (tmp_path / "c" / "README").write_text("not the cache's")
    storage = DiskStorage(tmp_path / "c")
    with caplog.at_level(logging.INFO, "anysoup.cache"):
        await storage.open()
    await storage.aclose()
    assert files_in(bodies) == sorted([names["live"], names["young orphan"], names["foreign"]])
    assert (tmp_path / "c" / "README").exists()
    [record] = [r for r in caplog.records if r.name == "anysoup.cache"]
    assert "1 files" in record.getMessage()


async def test_a_locked_index_is_a_miss_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = DiskStorage(tmp_path / "c", busy_timeout=0.02)
    await store(storage, make_entry(key="before"), b"before")
    await storage.flush()
    with contextlib.closing(
        sqlite3.connect(tmp_path / "c" / "index.sqlite", isolation_level=None)
    ) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with caplog.at_level(logging.WARNING, "anysoup.cache"):
            await store(storage, make_entry(entry_id="e2"), b"not stored")
            await storage.flush()
            await storage.update(make_entry(key="before"))
            await storage.remove("before")
        assert await storage.lookup("https://example.test/a") == []  # readers aren't blocked (WAL)
        other.execute("ROLLBACK")
    messages = [r.getMessage() for r in caplog.records if r.name == "anysoup.cache"]
    assert any("not stored" in m and "locked" in m for m in messages), messages
    assert not any("Traceback" in m for m in messages)
    await store(storage, make_entry(entry_id="e3"), b"stored")
    assert await body_of(storage, "https://example.test/a") == b"stored"
    await storage.aclose()


# -- disk: several processes, and big bodies ------------------------------------------------


FILLER = (
    PRELUDE
    + """
async def fill(storage, seed, numbers):
    rnd = random.Random(seed)
    for n in numbers:
        size = rnd.choice([0, rnd.randrange(1, 1 << 16), rnd.randrange(1 << 16, 300_000),
                           rnd.randrange(1 << 20, 3 << 19)])
        body = rnd.randbytes(size)
        headers = (("x-sha256", hashlib.sha256(body).hexdigest()), ("x-writer", str(seed)))
        vary = (("accept-encoding", rnd.choice(["gzip", None])),)
        await put(storage, entry(f"https://example.test/{n}", f"{seed}-{n}", headers, vary), body)

async def main(directory, seed, first):
    storage = DiskStorage(directory, max_size=1 << 30)
    async with anyio.create_task_group() as tg:
        for task in range(5):
            tg.start_soon(fill, storage, seed * 10 + task, range(first + task, first + 50, 5))
    await storage.aclose()

anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), backend=sys.argv[4])
"""
)


@ONE_READER
async def test_two_processes_fill_one_directory_then_a_third_reads_all(tmp_path: Path) -> None:
    directory = str(tmp_path / "c")
    await run_scripts(FILLER, (directory, "1", "0", "asyncio"), (directory, "2", "25", "trio"))
    storage = DiskStorage(directory)
    seen = 0
    for n in range(75):
        found = await storage.lookup(f"https://example.test/{n}")
        assert found, n
        assert len({e.vary for e in found}) == len(found)  # one entry per secondary key
        for entry in found:
            headers = dict(entry.headers)
            body = await read_all(await storage.open_body(entry))
            assert len(body) == entry.body_size
            assert hashlib.sha256(body).hexdigest() == headers["x-sha256"]
            seen += 1
    await storage.flush()
    assert storage.total_size() > 0
    await storage.aclose()
    assert 75 <= seen <= 100
    assert not any(n.startswith("tmp-") for n in files_in(tmp_path / "c" / "bodies"))


async def test_a_64_mib_body_streams_from_disk_with_flat_memory(tmp_path: Path) -> None:
    size, block = 64 * MiB, data_of(READ_SIZE)
    digest = hashlib.sha256()
    storage = DiskStorage(tmp_path / "c", max_size=1 << 30)
    writer = storage.begin(make_entry())
    tracemalloc.start()
    try:
        for n in range(size // len(block)):
            piece = bytes([n % 256]) + block[1:]
            digest.update(piece)
            assert await writer.write(piece)
        await writer.commit(make_entry())
        await storage.flush()
        _, write_peak = tracemalloc.get_traced_memory()
        await storage.aclose()

        tracemalloc.reset_peak()
        storage = DiskStorage(tmp_path / "c")
        [found] = await storage.lookup("https://example.test/a")
        reader = await storage.open_body(found)
        assert reader is not None
        read = hashlib.sha256()
        while (piece := await reader.read_chunk()) is not None:
            read.update(piece)
        await reader.aclose()
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await storage.aclose()
    assert read.digest() == digest.digest()
    assert found.body_size == size
    assert write_peak < 4 * MiB, write_peak  # about two buffers, whatever the body's size
    assert read_peak < 1 * MiB, read_peak
