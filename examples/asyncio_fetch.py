"""Fetch one URL with asyncio and show the status line, a few headers and the body size.

Run it with a URL (default https://example.org/)::

    python examples/asyncio_fetch.py https://example.org/

anysoup runs on asyncio through AnyIO: nothing changes but the runner
(compare examples/trio_fetch.py). This one reads the whole body at once with
send_and_read(); trio_fetch.py streams it instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import anysoup

#: The response headers worth a look; the others are left out.
SHOWN_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Server", "Date")


async def fetch(msg: anysoup.Message) -> None:
    """Send ``msg`` and print what came back."""
    # Leaving the `async with` block closes every connection the session opened.
    async with anysoup.Session() as session:
        # send_and_read() returns the whole (decoded) body as bytes; the status
        # and headers are on the message.
        body = await session.send_and_read(msg)
    print(f"HTTP/{msg.http_version.value} {msg.status} {msg.reason_phrase}")
    for name in SHOWN_HEADERS:
        value = msg.response_headers.get_one(name)
        if value is not None:
            print(f"{name}: {value}")
    # gzip or deflate bodies are decoded for you, so this size can differ
    # from Content-Length, which counts the bytes on the wire.
    print(f"body: {len(body)} bytes")


def main() -> None:
    """Parse the command line, run the fetch under asyncio, report errors in one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="https://example.org/")
    args = parser.parse_args()
    try:
        msg = anysoup.Message("GET", args.url)  # a Message holds a request and its response
    except ValueError as exc:  # not an http(s) URL, e.g. "example.org" without a scheme
        parser.error(str(exc))
    try:
        asyncio.run(fetch(msg))
    except anysoup.Error as exc:
        # Every anysoup failure derives from anysoup.Error, with a message that
        # names the host, the phase and the cause. HTTP error statuses (404,
        # 500) are not exceptions: check msg.status.
        sys.exit(f"asyncio_fetch: {exc}")


if __name__ == "__main__":
    main()
