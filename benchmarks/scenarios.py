"""The scenarios: one decorated async function each.

A scenario receives a :class:`~adapters.Client`, opened with the scenario's
pool ``limit``, and a :class:`Run`. It warms up (connections opened, buffers
grown: untimed), does its measured work inside ``with run.timed():`` and
returns how many operations that section did, in the scenario's ``op`` unit
(requests, messages or MB). Every response is checked against the fixture's
size, so a fast wrong answer is an error, never a number.

A timed section stops early once it has run ``--max-seconds``: loops stop
between operations, tasks are cancelled. The rate is then over what completed
and the record says ``capped``.

Each scenario talks to one *listener* of the servers (servers.py): ``http``
(HTTP/1.1 over TCP), ``ws``, ``h2`` (TLS, h2 offered) or ``tls1`` (TLS,
HTTP/1.1 only). The TLS scenarios come in two families, so that one table
sets each protocol beside the other:

* ``h2*``: HTTP/2 clients only (``protocol="2"``), and a pool of ONE
  connection: 64 or 256 concurrent requests are that many streams on it.
  Their ratios are taken against httpx (``http2=True``): the floor h11raw
  speaks no HTTP/2.
* ``tls1*``: every client over TLS with HTTP/1.1 forced (anysoup
  ``http2=False``, httpx's default), a pool of as many connections as there
  are concurrent tasks, as in ``conc``.

The ``cache_hit*`` scenarios GET a path that nginx serves fresh for an hour
through a session with an HTTP cache: one miss stores it, then every request
is a hit (the adapter raises on anything else). Their client CPU per request
is read against ``seq``'s, the same 1 KiB as a round trip to the server
(report.py prints that ratio when both ran); their own ratios are to httpx
with hishel.

To add a scenario, write one function here and decorate it with
:func:`scenario`; give it a new client operation in adapters.py if none of
get, stream and ws_echo fits.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from adapters import BadResponse, CachedGet, Client
from servers import GZIP_SIZE, LARGE_SIZE, SMALL_SIZE, connections_to, cpu_seconds

WS_TEXT = "anysoup benchmark: 32-byte text."
assert len(WS_TEXT) == 32


class Run:
    """One measurement in progress: its server, its size, its timed section."""

    def __init__(self, n: int, base_url: str, max_seconds: float, server_pids: list[int]) -> None:
        #: The scaled operation count (requests, messages, downloads).
        self.n = n
        #: The scenario's listener: ``http://127.0.0.1:PORT``, ``https://…`` or ``ws://…/echo``.
        self.base_url = base_url
        self.max_seconds = max_seconds
        self.server_pids = server_pids
        #: ``time.perf_counter()`` past which the timed section stops early.
        self.deadline = math.inf
        #: Whether it did.
        self.capped = False
        self.figures: dict[str, float] = {}

    def url(self, path: str) -> str:
        """The listener's URL for ``path``."""
        return self.base_url + path

    def over(self) -> bool:
        """Whether the timed section has run out of time (and so is capped)."""
        if time.perf_counter() > self.deadline:
            self.capped = True
        return self.capped

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Measure wall time, this process's CPU time and the server's CPU time.

        At the end, untimed, it also counts the connections open to the
        server: one for an HTTP/2 client in every ``h2*`` scenario.
        """
        server0 = cpu_seconds(self.server_pids)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        self.deadline = start + self.max_seconds
        yield
        wall = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        # RUSAGE_SELF counts every thread of the process: resolver threads and
        # any worker threads are the client's cost too. Kernel time (socket
        # calls, copies) is as much the client's as its Python code.
        client = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        server = cpu_seconds(self.server_pids) - server0
        self.figures = {"seconds": wall, "client_cpu": client, "server_cpu": server}
        self.figures["connections"] = connections_to(urlsplit(self.base_url).port or 0)
        self.deadline = math.inf


Measure = Callable[[Client, Run], Awaitable[float]]


@dataclass(frozen=True)
class Scenario:
    """A registered scenario and how to read its result."""

    name: str
    measure: Measure
    count: int  # operations at --scale 1
    unit: str  # of the throughput figure
    op: str  # what one operation is, for the CPU figure (req, msg, MB)
    listener: str  # "http", "ws", "h2" or "tls1" (servers.py)
    limit: int  # connections the client may open to the host
    needs: str  # the Client operation used
    protocol: str  # the HTTP version the scenario is about: "1.1" or "2"
    baseline: str | None  # ratios are taken against it when --baseline didn't run here
    doc: str

    @property
    def server(self) -> str:
        """The server process it needs: "http" (nginx or the fallback) or "ws"."""
        return "ws" if self.listener == "ws" else "http"

    @property
    def tls(self) -> bool:
        """Whether it runs over TLS."""
        return self.listener in ("h2", "tls1")

    @property
    def requires(self) -> frozenset[str]:
        """What a client's ``ops`` must include to run it."""
        return frozenset(
            [self.needs, *(["tls"] if self.tls else []), *(["h2"] if self.protocol == "2" else [])]
        )


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str,
    *,
    count: int,
    unit: str = "req/s",
    op: str = "req",
    listener: str = "http",
    limit: int = 64,
    needs: str = "get",
    protocol: str = "1.1",
    baseline: str | None = None,
) -> Callable[[Measure], Measure]:
    """Register the decorated coroutine function as the scenario ``name``."""

    def register(fn: Measure) -> Measure:
        doc = (fn.__doc__ or "").strip().splitlines()[0]
        SCENARIOS[name] = Scenario(
            name, fn, count, unit, op, listener, limit, needs, protocol, baseline, doc
        )
        return fn

    return register


def _check(got: int, expected: int, what: str) -> None:
    if got != expected:
        raise BadResponse(f"{what}: {got} bytes, expected {expected}")


async def _one_after_another(
    op: Callable[[str], Awaitable[int]], url: str, size: int, n: int, run: Run
) -> int:
    """``n`` operations in sequence, or fewer if the timed section runs out; -> done."""
    for done in range(1, n + 1):
        _check(await op(url), size, url)
        if run.over():
            return done
    return n


async def _in_tasks(
    op: Callable[[str], Awaitable[int]], url: str, size: int, n: int, tasks: int, run: Run
) -> int:
    """``n`` operations shared by ``tasks`` concurrent tasks; -> how many completed.

    When the timed section runs out, the tasks are cancelled wherever they
    are (in a pool queue, mid-response): what completed counts.
    """
    left, done = n, 0

    async def worker() -> None:
        nonlocal left, done
        while left > 0:
            left -= 1
            _check(await op(url), size, url)
            done += 1

    remaining = run.deadline - time.perf_counter()
    with anyio.move_on_after(remaining) as scope:
        async with anyio.create_task_group() as tg:
            for _ in range(min(tasks, n)):
                tg.start_soon(worker)
    run.capped = run.capped or scope.cancelled_caught
    return done


async def _gets_in_sequence(client: Client, run: Run, path: str, size: int, warm_up: int) -> int:
    """``warm_up`` GETs of ``path``, then ``run.n`` timed ones; -> timed GETs done."""
    assert client.get is not None
    url = run.url(path)
    await _one_after_another(client.get, url, size, warm_up, run)
    with run.timed():
        return await _one_after_another(client.get, url, size, run.n, run)


async def _concurrent_gets(client: Client, run: Run, tasks: int) -> int:
    """``run.n`` GET /small shared by ``tasks`` concurrent tasks; -> timed GETs done."""
    assert client.get is not None
    url = run.url("/small")
    await _in_tasks(client.get, url, SMALL_SIZE, tasks * 4, tasks, run)  # opens the connections
    with run.timed():
        return await _in_tasks(client.get, url, SMALL_SIZE, run.n, tasks, run)


async def _downloads(client: Client, run: Run) -> float:
    """``run.n`` streamed GET /large; -> MB counted (10^6 bytes)."""
    assert client.stream is not None
    url = run.url("/large")
    # One untimed download: the connection, and TCP receive-buffer autotuning,
    # which makes the first transfer on a fresh socket much slower.
    await _one_after_another(client.stream, url, LARGE_SIZE, 1, run)
    with run.timed():
        done = await _one_after_another(client.stream, url, LARGE_SIZE, run.n, run)
    return done * LARGE_SIZE / 1e6


@scenario("seq", count=5000)
async def seq(client: Client, run: Run) -> float:
    """Sequential GET /small (1 KiB) on one keep-alive connection."""
    return await _gets_in_sequence(client, run, "/small", SMALL_SIZE, warm_up=50)


@scenario("conc", count=20000)
async def conc(client: Client, run: Run) -> float:
    """GET /small by 64 concurrent tasks sharing a pool of 64 connections."""
    return await _concurrent_gets(client, run, 64)


@scenario("queue", count=10000, limit=2)
async def queue(client: Client, run: Run) -> float:
    """10,000 GET /small started at once, queued behind a pool of 2 connections to the host."""
    assert client.get is not None
    url = run.url("/small")
    await _in_tasks(client.get, url, SMALL_SIZE, 8, 2, run)  # opens both connections
    with run.timed():
        return await _in_tasks(client.get, url, SMALL_SIZE, run.n, run.n, run)


@scenario("gzip", count=2000)
async def gzip(client: Client, run: Run) -> float:
    """Sequential GET /gzip: 256 KiB of text sent gzip-encoded, decoded by the client."""
    return await _gets_in_sequence(client, run, "/gzip", GZIP_SIZE, warm_up=20)


@scenario("large", count=3, unit="MB/s", op="MB", needs="stream")
async def large(client: Client, run: Run) -> float:
    """Stream GET /large (64 MiB) without keeping it; MB = 10^6 bytes."""
    return await _downloads(client, run)


@scenario("ws", count=10000, unit="msg/s", op="msg", listener="ws", needs="ws_echo")
async def ws(client: Client, run: Run) -> float:
    """Echo round trips of a 32-byte text message on one WebSocket."""
    assert client.ws_echo is not None
    async with client.ws_echo(run.base_url) as echo:

        async def round_trip(text: str) -> int:
            reply = await echo(text)
            return len(reply) if reply == text else -1

        await _one_after_another(round_trip, WS_TEXT, len(WS_TEXT), 50, run)
        with run.timed():
            return await _one_after_another(round_trip, WS_TEXT, len(WS_TEXT), run.n, run)


# Blocking calls from plain threads (anysoup.blocking, httpx.Client, requests,
# urllib3); ratios against httpx.Client. The worker's loop only waits.


@scenario("blocking_seq", count=5000, needs="sync_get", limit=1, baseline="httpx")
async def blocking_seq(client: Client, run: Run) -> float:
    """Sequential blocking GET /small from one thread, one keep-alive connection."""
    return await _blocking_gets(client, run, threads=1)


@scenario("blocking_threads", count=20000, needs="sync_get", limit=8, baseline="httpx")
async def blocking_threads(client: Client, run: Run) -> float:
    """Blocking GET /small from 8 threads sharing one client and its 8 connections."""
    return await _blocking_gets(client, run, threads=8)


async def _blocking_gets(client: Client, run: Run, threads: int) -> int:
    """``run.n`` blocking GET /small shared by ``threads`` threads; -> timed GETs done."""
    get = client.sync_get
    assert get is not None
    url = run.url("/small")

    def in_thread(n: int) -> int:
        for done in range(1, n + 1):
            _check(get(url), SMALL_SIZE, url)
            if run.over():
                return done
        return n

    async def in_threads(n: int) -> int:
        counts: list[int] = []
        limiter = anyio.CapacityLimiter(threads)

        async def one(share: int) -> None:
            counts.append(await anyio.to_thread.run_sync(in_thread, share, limiter=limiter))

        async with anyio.create_task_group() as tg:
            for i in range(threads):
                tg.start_soon(one, n // threads + (i < n % threads))
        return sum(counts)

    await in_threads(threads * 10)  # the client made, its connections opened
    with run.timed():
        return await in_threads(run.n)


# HTTP/2 over TLS: ONE connection (limit=1), ratios against httpx's HTTP/2.


@scenario("h2seq", count=5000, listener="h2", protocol="2", limit=1, baseline="httpx")
async def h2seq(client: Client, run: Run) -> float:
    """HTTP/2: sequential GET /small, one stream at a time on one TLS connection."""
    return await _gets_in_sequence(client, run, "/small", SMALL_SIZE, warm_up=50)


@scenario("h2conc64", count=20000, listener="h2", protocol="2", limit=1, baseline="httpx")
async def h2conc64(client: Client, run: Run) -> float:
    """HTTP/2: GET /small by 64 concurrent tasks, 64 streams on ONE TLS connection."""
    return await _concurrent_gets(client, run, 64)


@scenario("h2conc256", count=20000, listener="h2", protocol="2", limit=1, baseline="httpx")
async def h2conc256(client: Client, run: Run) -> float:
    """HTTP/2: GET /small by 256 concurrent tasks, 256 streams on ONE TLS connection."""
    return await _concurrent_gets(client, run, 256)


@scenario(
    "h2large",
    count=3,
    unit="MB/s",
    op="MB",
    needs="stream",
    listener="h2",
    protocol="2",
    limit=1,
    baseline="httpx",
)
async def h2large(client: Client, run: Run) -> float:
    """HTTP/2: stream GET /large (64 MiB) over TLS without keeping it."""
    return await _downloads(client, run)


@scenario("tls1seq", count=5000, listener="tls1")
async def tls1seq(client: Client, run: Run) -> float:
    """HTTP/1.1 over TLS: sequential GET /small on one keep-alive connection."""
    return await _gets_in_sequence(client, run, "/small", SMALL_SIZE, warm_up=50)


@scenario("tls1conc64", count=20000, listener="tls1")
async def tls1conc64(client: Client, run: Run) -> float:
    """HTTP/1.1 over TLS: GET /small by 64 concurrent tasks, a pool of 64 connections."""
    return await _concurrent_gets(client, run, 64)


@scenario("tls1large", count=3, unit="MB/s", op="MB", needs="stream", listener="tls1")
async def tls1large(client: Client, run: Run) -> float:
    """HTTP/1.1 over TLS: stream GET /large (64 MiB) without keeping it."""
    return await _downloads(client, run)


# HTTP cache hits (anysoup.Cache, httpx with hishel): /cached is /small's
# bytes with Cache-Control: max-age=3600. Read against seq's CPU per request.


async def _cache_hits(op: CachedGet | None, run: Run) -> int:
    """One miss that stores /cached, 50 untimed hits, then ``run.n`` timed hits; -> hits done."""
    assert op is not None
    url = run.url("/cached")
    _check(await op(url, False), SMALL_SIZE, url)

    async def hit(url: str) -> int:
        return await op(url, True)

    await _one_after_another(hit, url, SMALL_SIZE, 50, run)
    with run.timed():
        return await _one_after_another(hit, url, SMALL_SIZE, run.n, run)


@scenario("cache_hit", count=5000, needs="cached_get", baseline="httpx")
async def cache_hit(client: Client, run: Run) -> float:
    """Sequential GET /cached, each a fresh hit of a cache in memory (after one miss)."""
    return await _cache_hits(client.cached_get, run)


@scenario("cache_hit_disk", count=5000, needs="cached_get_disk", baseline="httpx")
async def cache_hit_disk(client: Client, run: Run) -> float:
    """Sequential GET /cached, each a fresh hit of a cache in a temporary directory."""
    return await _cache_hits(client.cached_get_disk, run)
