"""The disk cache's body readers: a complete body file, and a body still being written.

Theory of operation
-------------------
A :class:`FileReader` reads a complete body file through a descriptor
opened (and checked against the row's size) in the same thread hop that
found the row, with the first :data:`READ_AHEAD` bytes: a body up to that
size needs no further hop, a larger one one hop per :data:`READ_AHEAD`,
handed out in pieces of ``READ_SIZE``. The descriptor stays valid when
the file is evicted or replaced meanwhile (POSIX unlink semantics).

A :class:`PendingReader` reads an entry committed in this process whose
:class:`~.disk_body.BodyFile` is still on its way to disk: bytes below
``written`` from the temporary (or renamed) file, the rest from the
segments in memory. It counts as a user of the body's descriptor, so the
worker's rename and its closing never pull the file from under it.
"""

from __future__ import annotations

import os
import stat

import anyio.to_thread

from .disk_body import BodyFile
from .storage import READ_SIZE, BodyReader

__all__ = ["READ_AHEAD", "FileReader", "PendingReader", "open_body_file"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: What a file reader reads in one thread hop (handed out in READ_SIZE pieces).
READ_AHEAD = 4 * READ_SIZE


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(f"cache body file ended at {offset + len(data)}, expected more")
    return data


class PendingReader(BodyReader):
    """Reads a committed body whose disk write may still be under way.

    Bytes below :attr:`BodyFile.written` come from the file (in a worker
    thread), the rest from the segments in memory (no thread at all).
    """

    def __init__(self, body: BodyFile, size: int) -> None:
        body.acquire()
        self._body: BodyFile | None = body
        self._size = size
        self._pos = 0

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        body, pos = self._body, self._pos
        if body is None or pos >= self._size:
            return None
        with body.lock:
            fd, written = body.fd, body.written
            piece = None
            if pos >= written:
                offset = pos - written
                for segment in body.segments:
                    if offset < len(segment):
                        piece = bytes(memoryview(segment)[offset : offset + READ_SIZE])
                        break
                    offset -= len(segment)
                else:
                    raise OSError("cache body ended early (its disk write failed)")
        if piece is None:
            assert fd is not None  # written > pos >= 0: the file exists and we hold it open
            piece = await anyio.to_thread.run_sync(_pread, fd, min(READ_SIZE, written - pos), pos)
        self._pos = pos + len(piece)
        return piece

    async def aclose(self) -> None:
        """Stop reading; the file closes when no one else needs it."""
        self._close()

    def _close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.release()

    def __del__(self) -> None:
        self._close()


class FileReader(BodyReader):
    """Reads a complete body file through an open descriptor.

    One thread hop reads :data:`READ_AHEAD` bytes, handed out in pieces of
    :data:`~.storage.READ_SIZE`: fewer hops for a large body, memory still flat.
    """

    def __init__(self, fd: int, size: int) -> None:
        self._fd: int | None = fd
        self._size = size
        self._pos = 0
        self._block = b""
        self._taken = 0

    @classmethod
    def open(cls, path: str, size: int) -> FileReader:
        """Open ``path`` (see :func:`open_body_file`) and read its first block, in one go.

        Blocking: the store calls it in the thread that found the row, so a
        body up to :data:`READ_AHEAD` costs no further thread hop.
        """
        fd = open_body_file(path, size)
        first = min(READ_AHEAD, size)
        try:
            block = _pread(fd, first, 0)
        except BaseException:
            os.close(fd)
            raise
        reader = cls(fd, size)
        reader._block, reader._pos = block, first
        return reader

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        if self._taken >= len(self._block):
            fd, pos = self._fd, self._pos
            if fd is None or pos >= self._size:
                return None
            size = min(READ_AHEAD, self._size - pos)
            self._block = await anyio.to_thread.run_sync(_pread, fd, size, pos)
            self._pos, self._taken = pos + size, 0
        block, start = self._block, self._taken
        if start == 0 and len(block) <= READ_SIZE:
            self._taken = len(block)
            return block
        self._taken = end = min(start + READ_SIZE, len(block))
        return block[start:end]

    async def aclose(self) -> None:
        """Close the file."""
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        self._block, self._taken = b"", 0
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self._close()


def open_body_file(path: str, size: int) -> int:
    """Open a body file for reading, checking that it holds ``size`` bytes.

    Raises:
        OSError: It can't be opened, is not a regular file, or has another size.
    """
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if stat.S_ISREG(st.st_mode) and st.st_size == size:
        return fd
    os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path!r} is not a regular file")
    raise OSError(f"{path!r} holds {st.st_size} bytes, the index says {size}")
