"""Sending a request body while watching for an early answer.

Theory of operation: a server may answer before the request body is
complete (RFC 9110 §15.5.14: a 413, a 401 to a request it won't read; RFC
9112 §9.5 lets it close right after). Then either our writes fail (it
closed) or they stall (it stopped reading), and the answer waits unread in
the socket. So:

* A small request (no body, or a bytes body of one slice) goes out in one
  write. If that write fails, whatever answer already arrived is read, for
  a short grace period, and returned; with none the write's error stands
  (so a stale keep-alive connection is still retried).
* A larger or streamed body goes out while a second task reads response
  heads. When a final head arrives first, the upload is cancelled and that
  answer returned. When the upload fails, the reader gets the same grace.
  When the upload ends, the reader is already reading the head the request
  needs next, so the task costs no extra round trip.

Either way a connection whose request was cut short is never reused: h11
never saw the end of our message. The reader and the writer keep separate
stall deadlines (see the driver), so neither hides the other's stall.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING

import anyio
import h11

from .._model.exceptions import Error, NetworkError, TlsError
from .._model.signals import active

if TYPE_CHECKING:
    from .._drivers.http1 import HTTP1Connection
    from .._model.body import RequestBody
    from .._model.message import Message

__all__ = ["upload", "write_or_answer"]

#: After a write failed, how long an answer the server sent may take to be read.
EARLY_ANSWER_GRACE = 1.0

Head = h11.Response | h11.InformationalResponse


async def write_or_answer(http: HTTP1Connection, data: bytes, phase: str) -> list[Head]:
    """Write a whole small request; if the write fails, the answer already sent, if any.

    Returns:
        No heads when the request went out; else the heads read after the
        failed write, ending with a final one.

    Raises:
        NetworkError: The write failed and no answer came.
    """
    try:
        await http.write(data, phase)
    except NetworkError:
        heads = await _answer_after(http)
        if heads:
            return heads
        raise
    return []


async def upload(http: HTTP1Connection, msg: Message, body: RequestBody) -> list[Head]:
    """Send ``body`` (the request head is out) while reading any early answer.

    Returns:
        The heads read meanwhile: empty if the upload ended first and the
        reader saw nothing yet, else ending with a final head.
    """
    watcher = _Watcher(http)
    failure: Exception | None = None
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(watcher.watch)
        try:
            with watcher.upload_scope:
                await _send_body(http, msg, body)
        except Exception as exc:
            failure = exc
        if not watcher.final:
            if failure is None:
                await watcher.done.wait()  # the head is what comes next anyway
            elif isinstance(failure, NetworkError):
                with anyio.move_on_after(EARLY_ANSWER_GRACE):
                    await watcher.done.wait()
        task_group.cancel_scope.cancel()
    if watcher.final:
        return watcher.heads
    if isinstance(failure, NetworkError) and isinstance(watcher.error, TlsError):
        # What the server said before it closed (TLS 1.3: "certificate
        # required", read after the handshake) explains the failed write.
        raise watcher.error
    if failure is not None:
        raise failure
    if watcher.error is not None:
        raise watcher.error
    return watcher.heads


class _Watcher:
    """Reads response heads beside the upload; cancels it at a final one."""

    __slots__ = ("done", "error", "final", "heads", "http", "upload_scope")

    def __init__(self, http: HTTP1Connection) -> None:
        self.http = http
        self.heads: list[Head] = []
        self.final = False
        self.error: Exception | None = None
        self.done = anyio.Event()
        self.upload_scope = anyio.CancelScope()

    async def watch(self) -> None:
        try:
            await _read_heads(self.http, self.heads)
            self.final = True
            self.upload_scope.cancel()
        except Exception as exc:  # the caller decides whether it matters
            self.error = exc
        finally:
            self.done.set()


async def _read_heads(http: HTTP1Connection, heads: list[Head]) -> None:
    """Read response heads into ``heads`` up to a final one (or a 101 to our Upgrade)."""
    while True:
        head = await http.receive_head()
        heads.append(head)
        if type(head) is h11.Response or http.switched:
            return


async def _answer_after(http: HTTP1Connection) -> list[Head]:
    """The heads of an answer that arrived before a write failed, up to a final one.

    Raises:
        TlsError: The server's TLS alert (TLS 1.3 reports a missing client
            certificate after the handshake): it says why the write failed.
    """
    heads: list[Head] = []
    with anyio.move_on_after(EARLY_ANSWER_GRACE):
        try:
            await _read_heads(http, heads)
        except TlsError:
            raise
        except Error:
            pass  # nothing readable: the write's failure is the one to report
        else:
            return heads
    return []


async def _send_body(http: HTTP1Connection, msg: Message, body: RequestBody) -> None:
    """Write the body and its end; emit ``wrote_body_data`` and ``wrote_body``."""
    sent = 0
    if body.data is not None:
        for piece in http.body_slices(body.data):
            await http.write(piece, "writing request body")
        sent = len(body.data)
        signal = active(msg, "wrote_body_data")
        if signal is not None and body.data:
            await signal.emit(body.data)
    else:
        # aclosing: a cancelled or failed write must close the generator (and
        # the caller's body source) now, not leave it to garbage collection.
        async with aclosing(body.chunks()) as chunks:
            async for chunk in chunks:
                if chunk:
                    await http.write(http.body_data(chunk), "writing request body")
                    sent += len(chunk)
                    signal = active(msg, "wrote_body_data")
                    if signal is not None:
                        await signal.emit(chunk)
    await http.write(http.end_of_body(), "writing request body")
    if msg.metrics is not None:
        msg.metrics.request_body_size = sent
    signal = active(msg, "wrote_body")
    if signal is not None:
        await signal.emit()
