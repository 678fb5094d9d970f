"""Fetch one URL with Trio and show the status line, a few headers and the body size.

Run it with a URL (default https://example.org/)::

    python examples/trio_fetch.py https://example.org/

The body is streamed: it is counted chunk by chunk and never held in memory
whole, so this works as well for a large download.
"""

from __future__ import annotations

import argparse
import sys

import trio

import anysoup

#: The response headers worth a look; the others are left out.
SHOWN_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Server", "Date")


async def fetch(msg: anysoup.Message) -> None:
    """Send ``msg`` and print what came back."""
    # A Session owns its connections and background tasks: leaving the
    # `async with` block closes every socket it opened.
    async with anysoup.Session() as session:
        # send() returns once the response headers are in; the body is a stream.
        async with session.send(msg) as body:
            print(f"HTTP/{msg.http_version.value} {msg.status} {msg.reason_phrase}")
            for name in SHOWN_HEADERS:
                value = msg.response_headers.get_one(name)
                if value is not None:
                    print(f"{name}: {value}")
            size = 0
            async for chunk in body:  # reading to the end frees the connection
                size += len(chunk)
        # gzip or deflate bodies are decoded for you, so this size can differ
        # from Content-Length, which counts the bytes on the wire.
        print(f"body: {size} bytes")


def main() -> None:
    """Parse the command line, run the fetch under Trio, report errors in one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="https://example.org/")
    args = parser.parse_args()
    try:
        msg = anysoup.Message("GET", args.url)  # a Message holds a request and its response
    except ValueError as exc:  # not an http(s) URL, e.g. "example.org" without a scheme
        parser.error(str(exc))
    try:
        trio.run(fetch, msg)
    except anysoup.Error as exc:
        # Every anysoup failure derives from anysoup.Error; its message names
        # the host, the phase and the cause ("connect to …: connection refused").
        # An HTTP error status (404, 500) is not an exception: check msg.status.
        sys.exit(f"trio_fetch: {exc}")


if __name__ == "__main__":
    main()
