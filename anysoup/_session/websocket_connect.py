"""``Session.websocket_connect``: the handshake through the session, then the handover.

The handshake is an ordinary message sent through the whole chain, so
redirects, authentication, cookies, HSTS and logging apply to it. The core
recognises the 101 answer to an Upgrade request and keeps its connection
aside (``msg._switched``); once the answer is judged right, the connection
is detached from the pool and handed to the :class:`WebsocketConnection`.
Any other answer is read to the end, so the message holds the whole
response, and is an error.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._drivers.websocket import WebsocketConnection
from .._drivers.websocket_handshake_policy import check_response, prepare_request
from .._features.websocket.manager import WebsocketExtensionManager
from .._model.enums import WebsocketCloseCode
from .._model.exceptions import WebsocketError
from .._model.public import public

if TYPE_CHECKING:
    from types import TracebackType

    from .._model.cancellable import Cancellable
    from .._model.message import Message
    from .session import Session

__all__ = ["WebsocketConnectContext", "websocket_connect"]


@public
class WebsocketConnectContext:
    """What :meth:`Session.websocket_connect` returns: await it, or use ``async with``.

    ``ws = await session.websocket_connect(msg)`` gives an open
    :class:`WebsocketConnection` (close it when done; the session closes it
    at the latest). ``async with session.websocket_connect(msg) as ws:``
    closes it on the way out: with the closing handshake (code 1000) when the
    block ends normally; after an exception or a cancellation, with a close
    frame (1001) and without waiting for the peer. An exception from the
    block comes out as itself.
    """

    __slots__ = ("_args", "_session", "_ws")

    def __init__(
        self,
        session: Session,
        msg: Message,
        origin: str | None,
        protocols: Sequence[str] | None,
        cancellable: Cancellable | None,
    ) -> None:
        self._session = session
        self._args = (msg, origin, protocols, cancellable)
        self._ws: WebsocketConnection | None = None

    def __await__(self) -> Generator[Any, None, WebsocketConnection]:
        return websocket_connect(self._session, *self._args).__await__()

    async def __aenter__(self) -> WebsocketConnection:
        self._ws = await websocket_connect(self._session, *self._args)
        return self._ws

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        if exc_type is None:
            await ws.close()
        else:
            await ws._close_soon(WebsocketCloseCode.GOING_AWAY)


async def websocket_connect(
    session: Session,
    msg: Message,
    origin: str | None,
    protocols: Sequence[str] | None,
    cancellable: Cancellable | None,
) -> WebsocketConnection:
    """Send the handshake ``msg`` through ``session``; return the open WebSocket.

    Raises:
        WebsocketError: NOT_WEBSOCKET (another answer than 101; the message
            holds the response and its body), BAD_ORIGIN (403 to an Origin),
            BAD_HANDSHAKE (a 101 that isn't a valid WebSocket answer).
        anysoup.Error: Sending failed (connect, TLS, redirects, …).
    """
    if isinstance(protocols, str):
        protocols = [protocols]
    manager = session.get_feature_for_message(WebsocketExtensionManager, msg)
    offered = manager.new_offer() if isinstance(manager, WebsocketExtensionManager) else []
    key = prepare_request(msg, origin=origin, protocols=protocols, extensions=offered)
    # The handshake is an HTTP/1.1 Upgrade (RFC 8441's HTTP/2 form is not
    # spoken): keep it off HTTP/2 connections, as libsoup does.
    msg.force_http1 = True
    msg.response_body = None
    body = await session._send(msg, cancellable)
    ws: WebsocketConnection | None = None
    try:
        switched = msg._switched
        if switched is None:  # another answer: the message gets it whole
            msg.response_body = await body.read()
        origin = msg.request_headers.get_one("Origin")  # given, or set by the program
        protocol, extensions = check_response(
            msg, key, protocols=protocols, offered=offered, origin_sent=origin is not None
        )
        # check_response passed, so the answer was 101 to our Upgrade: the core switched.
        assert switched is not None
        ws = WebsocketConnection(
            uri=msg.uri,
            origin=origin,
            protocol=protocol,
            extensions=extensions,
            label=f"{msg.uri.host}:{msg.uri.port}",
        )
        switched.take(ws._attach)
        await body.aclose()  # the message is done: finished, request_unqueued
    except BaseException:
        with anyio.CancelScope(shield=True):
            if ws is not None:
                ws._fail_now(WebsocketError("the WebSocket handshake was interrupted"))
            await body.aclose()
        raise
    return ws
