"""Open a connection ahead of time inside a task group, then send a request on it.

Run it with a URL (default https://example.org/)::

    python examples/preconnect.py https://example.org/ [--backend trio]

Preconnecting takes the DNS lookup, the TCP connect and the TLS handshake out
of the request's path: do it as soon as you know where you will go.
"""

import argparse
import contextlib
import sys

import anyio

import anysoup


def show(when: str, stats: anysoup.PoolStatistics) -> None:
    """Print the pool's counters (a frozen dataclass from session.statistics())."""
    print(f"{when}: {stats.connections} connection(s), {stats.idle} idle, {stats.in_use} in use")


async def main(msg: anysoup.Message) -> None:
    """Preconnect to ``msg``'s host, then send it; show that no new connection was made."""
    async with anysoup.Session() as session:
        async with anyio.create_task_group() as tg:
            # start() returns once preconnect() reports "started", i.e. once the
            # connection is up (trio: `await nursery.start(session.preconnect, msg)`).
            # A preconnect is only a hint: if it fails, the request below tries
            # again and reports the error. (Errors that escape a task group come
            # out wrapped in an ExceptionGroup, one more reason to catch it here.)
            with contextlib.suppress(anysoup.Error):
                await tg.start(session.preconnect, msg)
        before = session.statistics()
        show("after preconnect", before)
        async with session.send(msg) as body:  # returns once the response headers are in
            during = session.statistics()
            show("during the request", during)
            size = len(await body.read())  # reading to the end frees the connection
        print(f"GET {msg.uri}: {msg.status} {msg.reason_phrase}, {size} bytes")
        show("after the request", session.statistics())
        # The idle connection was lent to the request, and none was added.
        if before.idle == 1 and during.connections == 1 and during.in_use == 1:
            print("the request reused the preconnected connection")
        else:
            print("the request did not reuse the preconnected connection")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="https://example.org/")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    try:
        message = anysoup.Message("GET", args.url)  # a Message holds a request and its response
    except ValueError as exc:  # not an http(s) URL
        parser.error(str(exc))
    try:
        anyio.run(main, message, backend=args.backend)
    except anysoup.Error as exc:  # every anysoup failure derives from anysoup.Error
        sys.exit(f"preconnect: {exc}")
