"""A WebSocket chat client: sends the lines you type, prints the messages it receives.

Run it with a ws:// or wss:// URL (default wss://echo.websocket.org/, an echo server)::

    python examples/websocket_chat.py wss://echo.websocket.org/

End your input (Ctrl-D; Ctrl-Z Enter on Windows) to close the chat normally
(close code 1000). The program also ends when the server closes the chat.
"""

import argparse
import sys

import trio

import anysoup


async def send_lines(ws: anysoup.WebsocketConnection) -> None:
    """Send each line read from stdin; at the end of the input, close the WebSocket."""
    try:
        while True:
            # Reading stdin blocks, so it runs in a worker thread; abandon_on_cancel
            # lets this task end at once if the server closes while we wait for a line.
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:  # end of input
                await ws.close(1000)  # the closing handshake; the receiving loop then ends
                return
            await ws.send_text(line.rstrip("\n"))
    except anysoup.WebsocketClosed:  # the server closed first: nothing more to send
        pass


async def chat(msg: anysoup.Message) -> str | None:
    """Send and receive at once until the WebSocket closes; return an error, if any."""
    async with anysoup.Session() as session, session.websocket_connect(msg) as ws:
        print(f"connected to {ws.uri}", file=sys.stderr)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_lines, ws)  # sending runs in a task of its own
            try:
                # The loop ends on a normal close (code 1000 or 1001), raises on others.
                async for message in ws:  # str for text, bytes for binary messages
                    text = repr(message) if isinstance(message, bytes) else message
                    print(f"< {text}", flush=True)  # flushed: stdout may be a pipe
            except anysoup.WebsocketClosed as exc:
                # Returned, not raised: an exception leaving the nursery would come
                # out wrapped in an ExceptionGroup.
                return str(exc)
            finally:
                nursery.cancel_scope.cancel()  # the chat is over: stop reading stdin
    print(f"closed (code {ws.close_code})", file=sys.stderr)
    return None


def main() -> None:
    """Parse the command line, run the chat under Trio, report errors in one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="wss://echo.websocket.org/")
    args = parser.parse_args()
    try:
        msg = anysoup.Message("GET", args.url)  # the handshake request
    except ValueError as exc:  # not a ws(s) or http(s) URL
        parser.error(str(exc))
    try:
        error = trio.run(chat, msg)
    except anysoup.Error as exc:  # every anysoup failure derives from anysoup.Error
        error = str(exc)
    except KeyboardInterrupt:  # Ctrl-C: the session closed the WebSocket (code 1001)
        sys.exit(130)
    if error:
        sys.exit(f"websocket_chat: {error}")


if __name__ == "__main__":
    main()
