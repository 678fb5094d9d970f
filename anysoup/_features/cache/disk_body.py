"""The disk cache's body files: writing one in the background, reading it back, tidying up.

Theory of operation
-------------------
A body larger than ``disk_index.INLINE_MAX`` lives in its own file under
``<dir>/bodies/``, named ``<32 hex>.body`` (a fresh random name per entry,
so two processes storing the same URL never write the same file). It is
written under a temporary name, ``tmp-<pid>-<32 hex>.part``, in the same
directory, synced, then renamed into place (``os.replace`` is atomic) before
its index row is inserted: a name in the index always means a complete
file. Files are created 0600 whatever the umask (``os.open`` mode, then
``fchmod``); the directories are 0700.

A :class:`BodyFile` is one body on its way to disk, shared by three
parties under its lock:

* the entry's writer (on the event loop) hands it *segments*, buffers of
  about 1 MiB (:data:`BUFFER_SIZE`), in order;
* the store's worker thread writes the segments to the temporary file
  (:func:`write_segments`), dropping each from memory once it is written;
* readers (:class:`~.disk_readers.PendingReader`) of an entry already committed but not
  yet in the index read bytes below :attr:`BodyFile.written` from the file
  and the rest from the segments still in memory, so a new entry serves
  the next request before its disk write ends.

The file descriptor is counted (:attr:`BodyFile.users`: the writer and each
reader): it is closed when the last one lets go, so a reader keeps a valid
file even when the entry was renamed, replaced or evicted meanwhile.

:func:`clean_leftovers` runs when a store opens: it removes the temporary
files of writers that died (their pid is gone, or the file is older than
a minute) and body files no index row names (left by a crash between a
rename and the index insert, or after the index was replaced); files of
any other name are not ours and are left alone.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator

from .entry_policy import StoredResponse

__all__ = [
    "BUFFER_SIZE",
    "BodyFile",
    "body_name",
    "clean_leftovers",
    "delete_bodies",
    "directory_lock",
    "is_body_name",
    "make_private_dir",
    "write_segments",
]

_log = logging.getLogger("anysoup.cache")

#: A writer hands the disk this much at a time; one such buffer may wait.
BUFFER_SIZE = 1024 * 1024
#: A leftover temporary file this old is a dead writer's, whatever its pid.
_STALE_AFTER = 60.0
_TEMP = re.compile(r"tmp-(\d+)-[0-9a-f]{32}\.part")
_BODY = re.compile(r"[0-9a-f]{32}\.body")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def body_name() -> str:
    """A fresh body file name."""
    return f"{uuid.uuid4().hex}.body"


def is_body_name(name: str) -> bool:
    """Whether ``name`` is a body file's name (a row can't make us touch another file)."""
    return _BODY.fullmatch(name) is not None


def delete_bodies(directory: str, names: list[str]) -> None:
    """Delete body files (only names that are body names: a row can't point elsewhere)."""
    for name in names:
        if is_body_name(name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def make_private_dir(path: str) -> None:
    """Create ``path`` (and parents) if needed; a directory we create is 0700."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # makedirs' mode is filtered by the umask


class BodyFile:
    """One entry's body on its way to disk (see the module docstring).

    Args:
        directory: The ``bodies`` directory.
        entry: The entry's metadata (final once committed).
    """

    def __init__(self, directory: str, entry: StoredResponse) -> None:
        self.lock = threading.Lock()
        self.directory = directory
        #: The metadata; the store replaces it at commit and on update().
        self.entry = entry
        self.temp_path = os.path.join(directory, f"tmp-{os.getpid()}-{uuid.uuid4().hex}.part")
        self.fd: int | None = None
        #: The temporary file was created and not yet renamed (only the worker changes it).
        self.temp_exists = False
        #: Who needs ``fd`` open: the writer (until its last job) and each reader.
        self.users = 1
        #: Bytes in the file; the segments hold the bytes after them, in order.
        self.written = 0
        #: Each segment is the writer's buffer, handed over whole and never changed after.
        self.segments: collections.deque[bytearray] = collections.deque()
        #: When it was committed (its first use, as far as eviction goes).
        self.committed_at = 0.0
        #: A disk write failed: the entry will not be stored.
        self.failed = False
        #: Removed, replaced or aborted before reaching the index: not stored.
        self.dropped = False

    def add_segment(self, data: bytearray) -> None:
        """Queue ``data`` (after what was queued before) for the disk."""
        with self.lock:
            self.segments.append(data)

    def acquire(self) -> None:
        """One more user of the file descriptor."""
        with self.lock:
            self.users += 1

    def release(self) -> None:
        """One user fewer; the last one closes the file."""
        with self.lock:
            self.users -= 1
            fd = self.fd if self.users == 0 else None
            if fd is not None:
                self.fd = None
        if fd is not None:
            os.close(fd)

    def in_memory(self) -> bytes:
        """The whole body when it never went to a file (small bodies)."""
        with self.lock:
            return b"".join(self.segments)

    def discard(self) -> None:
        """The writer's last word when nothing is stored: close and remove the temporary file."""
        self.release()
        if self.temp_exists:
            self.temp_exists = False
            with contextlib.suppress(OSError):
                os.unlink(self.temp_path)


def write_segments(body: BodyFile) -> None:
    """Write the queued segments to the temporary file (the worker thread's job).

    A failure is logged once and marks the body failed: the writer then
    stops, and the entry is not stored; segments not written stay in
    memory, so a reader of the committed entry still gets its bytes.
    """
    while True:
        with body.lock:
            if body.failed or body.dropped or not body.segments:
                return
            data, fd, offset = body.segments[0], body.fd, body.written
        try:
            if fd is None:
                fd = os.open(
                    body.temp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600
                )
                body.temp_exists = True
                with body.lock:
                    body.fd = fd  # from now on closed by the last release()
                os.fchmod(fd, 0o600)  # the umask may have taken bits the mode asked for
            view = memoryview(data)
            while view:
                done = os.pwrite(fd, view, offset)
                view, offset = view[done:], offset + done
        except OSError as exc:
            _log.warning("cache body for %r not stored: writing %r failed: %s",
                         body.entry.key, body.temp_path, exc)  # fmt: skip
            with body.lock:
                body.failed = True
            return
        with body.lock:
            body.segments.popleft()
            body.written = offset


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """Hold the directory's lock file (between processes; none where flock is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (EPERM): alive
    return True


def clean_leftovers(directory: str, named: set[str], *, now: float | None = None) -> None:
    """Remove dead writers' temporary files and body files no row names.

    A body file younger than a minute is kept even when no row names it: its
    writer (in another process) may be between the rename and the insert.
    """
    now = time.time() if now is None else now
    foreign = 0
    try:
        names = os.listdir(directory)
    except OSError as exc:
        _log.warning("cache directory %r not readable: %s", directory, exc)
        return
    for name in names:
        temp = _TEMP.fullmatch(name)
        if temp is None:
            if _BODY.fullmatch(name) is None:
                foreign += 1
                continue
            if name in named:
                continue
        path = os.path.join(directory, name)
        try:
            age = now - os.lstat(path).st_mtime
            if age > _STALE_AFTER or (temp is not None and not _pid_alive(int(temp[1]))):
                os.unlink(path)
        except OSError:
            continue  # gone already, or not ours to remove
    if foreign:
        _log.info("cache directory %r: ignoring %d files not the cache's", directory, foreign)
