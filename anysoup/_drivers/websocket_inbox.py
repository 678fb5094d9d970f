"""What the WebSocket reader hands to ``receive()``, in message order.

Theory of operation
-------------------

The reader turns each read into wsproto events and acts on them at once:
pings are answered, complete messages go to the :class:`Inbox`. Something
that ends the connection (a protocol error, text that isn't UTF-8, a message
over the size limit, the peer's close frame) may come in the same read as
messages the program has not received yet. It must not overtake them: the
program gets those messages first and may still answer them (the Autobahn
testsuite's cases 3.2-3.4, 4.1.3-4.2.5, 5.15 and 7.1.6 check this). So the
end is *held* at the back of the inbox, as its :attr:`Inbox.end`, and acted
on (*settled*) when the program reaches it:

* a ``receive()`` call finds the inbox empty and the end behind it;
* or the program isn't in the middle of a message at all (nothing queued,
  and it hasn't taken one since its last ``receive()``: a program that only
  sends, or one whose ``message`` handlers have already run);
* or the program closes;
* or :data:`ORDER_GRACE` seconds passed: a program that doesn't read can't
  keep a misbehaving peer's connection open (the messages stay queued for it).

Nothing past a held end is read or parsed: after a bad frame the stream
can't be trusted (RFC 6455 §7.1.7: fail the connection), and after the
peer's close nothing more may come (§5.5.1). Until it is settled the
connection is OPEN for the program, which may send; for a held close frame
this relies on RFC 6455 §5.5.1, which lets an endpoint finish sending before
it answers a close, and :class:`Protocol` lets wsproto frame those sends.
"""

from __future__ import annotations

from collections import deque
from typing import TypeAlias

import anyio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Event, Message, Ping

__all__ = ["ORDER_GRACE", "End", "Failure", "Inbox", "Protocol"]

#: Seconds an end waits for a program that doesn't come to it (see above).
ORDER_GRACE = 1.0

#: A failure found by the driver itself (the size limit, a handler that
#: raised): the close code to send and why.
Failure: TypeAlias = tuple[int, str]
#: What ends the connection: the peer's close frame or wsproto's protocol
#: error (a ``CloseConnection`` either way), or a :data:`Failure`.
End: TypeAlias = CloseConnection | Failure


class Protocol(Connection):
    """wsproto's connection, able to send while the peer's close waits its turn.

    wsproto moves to REMOTE_CLOSING as soon as it parses the peer's close
    frame, and from then on refuses data frames and pings. While that close
    is held behind messages the program hasn't received (:attr:`deferring`),
    the program's sends are framed as in the OPEN state; the close reply
    goes out when the close is settled.
    """

    #: The peer's close was parsed but is not acted on yet.
    deferring = False

    def send(self, event: Event) -> bytes:
        """Frame ``event`` (wsproto's rule, plus sends before a held close)."""
        if self.deferring and self.state is ConnectionState.REMOTE_CLOSING:
            # wsproto keeps its frame layer as `_proto`; framing is all it does here.
            if isinstance(event, Message):
                return bytes(self._proto.send_data(event.data, event.message_finished))
            if isinstance(event, Ping):
                return bytes(self._proto.ping(event.payload))
        return super().send(event)


class Inbox:
    """The bounded queue of complete messages for ``receive()``, and the end behind them.

    Readers stop reading when it is full (backpressure). Every change wakes
    whoever waits, and each waiter looks again at what it waits for.
    """

    __slots__ = ("_changed", "answering", "closed", "deadline", "end", "items", "size")

    def __init__(self, size: int) -> None:
        self.items: deque[str | bytes] = deque()
        self.size = size
        self.closed = False
        #: What ends the connection, held until the program reaches it.
        self.end: End | None = None
        #: When a held end is settled even if the program hasn't reached it.
        self.deadline = 0.0
        #: The program took a message and hasn't asked for the next one yet
        #: (it may be answering it).
        self.answering = False
        self._changed: anyio.Event | None = None

    def full(self) -> bool:
        return len(self.items) >= self.size

    def put(self, item: str | bytes) -> None:
        self.items.append(item)
        self.notify()

    def pop(self) -> str | bytes:
        item = self.items.popleft()
        self.answering = True
        self.notify()
        return item

    def hold(self, end: End) -> None:
        """Put ``end`` behind the queued messages, for at most :data:`ORDER_GRACE` s."""
        self.end = end
        self.deadline = anyio.current_time() + ORDER_GRACE

    def reached(self) -> bool:
        """Whether the program came to the held end, or stopped waiting for it."""
        if not self.items and not self.answering:
            return True
        return anyio.current_time() >= self.deadline

    def close(self) -> None:
        self.closed = True
        self.notify()

    def notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def wait(self) -> None:
        """Wait for the next change (an item, room, the end, a reader stepping aside)."""
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()
