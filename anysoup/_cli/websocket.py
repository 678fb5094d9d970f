"""``anysoup --ws``: a WebSocket conversation on stdin and stdout.

Each line of stdin goes out as a text message; each message received is
printed as a line (a binary one as a bytes literal). Stdin is read by a
thread (:func:`_stdin_lines`), since no event loop can wait on every kind
of stdin. At the end of stdin the command keeps printing for ``--ws-wait``
seconds, or until the server closes, whichever comes first: a server's
answers to the last lines are not cut off by a close sent too early (after
a Close, RFC 6455 §5.5.1 lets the server send no more data).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread

from .._model.enums import WebsocketCloseCode
from .._model.exceptions import WebsocketClosed
from .streams import stdout_bytes

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._drivers.websocket import WebsocketConnection
    from .._model.message import Message
    from .._session.session import Session

__all__ = ["converse"]


async def converse(session: Session, msg: Message, wait: float) -> None:
    """Send stdin's lines as text messages and print what arrives, until either side ends.

    At the end of stdin the command waits up to ``wait`` seconds for the
    peer to close (the answers to the last lines are still on their way),
    then closes the WebSocket itself (1000) with the closing handshake; when
    the peer closes first, stdin is no longer read. A close by the peer with
    a code other than 1000, 1001 or none is a failure.
    """
    # Only this task receives and closes: a close() from another task while
    # this one is inside receive() can make both read the socket at once.
    printing = anyio.CancelScope()

    async def send_lines(ws: WebsocketConnection, lines: MemoryObjectReceiveStream[str]) -> None:
        try:
            async for line in lines:
                await ws.send_text(line)
        except WebsocketClosed:
            return  # the peer closed first: the printing side reports how
        # The end of stdin: after ``wait`` seconds it is time to close. A
        # peer that closes sooner ends the printing itself.
        printing.deadline = anyio.current_time() + wait

    async with (
        session.websocket_connect(msg) as ws,
        _stdin_lines() as lines,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(send_lines, ws, lines)
        closed = None
        with printing:
            closed = await _print_messages(ws)
        if printing.cancelled_caught:
            await ws.close(WebsocketCloseCode.NORMAL)
            closed = await _print_messages(ws)  # what came before the peer's answer
        tg.cancel_scope.cancel()  # the peer is gone: stdin has nothing more to say
    if closed is not None:
        raise closed


async def _print_messages(ws: WebsocketConnection) -> WebsocketClosed | None:
    """Print messages until the close: text as a line, binary as a bytes literal.

    Returns the error for a close that was not normal.
    """
    out = stdout_bytes()  # text messages are UTF-8 whatever the locale says
    try:
        async for message in ws:
            line = message.encode() if isinstance(message, str) else repr(message).encode()
            out.write(line + b"\n")
            out.flush()
    except WebsocketClosed as exc:
        return exc
    return None


@contextlib.asynccontextmanager
async def _stdin_lines() -> AsyncIterator[MemoryObjectReceiveStream[str]]:
    """Stdin's lines (without their line ends), read by a thread, as a receive stream.

    A thread because no event loop can wait on every kind of stdin (a regular
    file can't be polled). It is a daemon thread reading the raw file
    descriptor, so a read that never returns (a terminal nobody types on)
    neither holds a lock of ``sys.stdin`` nor keeps the process alive.
    """
    send, receive = anyio.create_memory_object_stream[str](16)
    async with anyio.from_thread.BlockingPortal() as portal:
        args = (portal, send)
        threading.Thread(target=_read_stdin, args=args, name="anysoup stdin", daemon=True).start()
        with receive:
            yield receive
        # A send waiting in the portal failed when ``receive`` closed; stop the rest.
        await portal.stop(cancel_remaining=True)


def _read_stdin(
    portal: anyio.from_thread.BlockingPortal, send: MemoryObjectSendStream[str]
) -> None:
    """The thread of :func:`_stdin_lines`: hand each line to the event loop."""
    # Any failure means the conversation is over (the receiver or the portal is
    # gone, stdin is unreadable): the thread just ends, closing its stream.
    with contextlib.suppress(Exception):
        pending = b""
        while chunk := os.read(sys.stdin.fileno(), 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                portal.call(send.send, _text(line))
        if pending:
            portal.call(send.send, _text(pending))
    with contextlib.suppress(Exception):
        portal.call(send.aclose)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").removesuffix("\r")
