"""The ``anysoup`` command: fetch a URL and print its body (minimal for now)."""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from ._exceptions import Error
from ._message import Message
from ._session import Session

__all__ = ["main"]


async def _fetch(method: str, url: str, stall: float) -> int:
    async with Session(timeout=stall, user_agent="") as session:
        msg = Message(method, url)
        async with session.send(msg) as body:
            out = sys.stdout.buffer
            async for chunk in body:
                out.write(chunk)
            out.flush()
        return 0 if msg.status < 400 else 22


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    parser = argparse.ArgumentParser(prog="anysoup", description="Fetch a URL with anysoup.")
    parser.add_argument("url", help="the http(s) URL to fetch")
    parser.add_argument("-X", "--method", default="GET", help="request method (default GET)")
    parser.add_argument("--timeout", type=float, default=30, help="stall timeout in seconds")
    args = parser.parse_args(argv)
    try:
        return anyio.run(_fetch, args.method, args.url, args.timeout)
    except Error as exc:
        print(f"anysoup: {exc}", file=sys.stderr)
        return 7 if "connect" in str(exc) else 1
    except ValueError as exc:
        print(f"anysoup: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``anysoup URL | head``): stop quietly, as curl
        # does, and keep Python from failing again when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 23
