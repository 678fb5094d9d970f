"""Peak memory of ``Session.send_and_read`` for a large body, plain and encoded.

Usage::

    python benchmarks/read_memory.py [--size MIB] [--tree DIR ...] [--codings LIST]

Each ``--tree`` is a folder holding an ``anysoup`` package (a checkout, or
``git archive`` of another commit), so two versions are compared in the
same run; the default is the installed one. A loopback server in this
process answers ``GET /<coding>`` with the prepared body (Content-Length,
encoded beforehand); each measurement runs in a fresh client process, so
one never inherits another's heap. Two figures per case, from two runs:

* ``traced``: tracemalloc's peak during the call, over the traced memory
  before it (what Python allocated for the body);
* ``rss``: the growth of the process's high-water RSS (``VmHWM`` in
  ``/proc/self/status``, Linux) during the call, which also sees what
  tracemalloc can't (C libraries' own buffers, realloc copies).

Both are shown as a ratio to the decoded body. The ``bomb`` case is a nested
gzip (``gzip, gzip``) of zeros read with ``max_size`` = 1 MiB: it needs a
tree whose ``send_and_read`` has ``max_size``.

``--speed N`` instead times N sequential ``send_and_read`` of 256 KiB of
gzip-encoded text (the shared harness's ``gzip`` scenario) and of 1 KiB:
the client process's CPU time per request (steadier than wall time on a
shared machine), ``--rounds`` rounds per tree (3), the trees taking
turns; the best round is shown.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

CLIENT = r"""
import inspect, json, sys, time, tracemalloc
import anyio
import anysoup

url, mode, backend, max_size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def high_water():
    # VmHWM: this process's peak RSS in KiB (ru_maxrss would keep the parent's across exec).
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
limited = "max_size" in inspect.signature(anysoup.Session.send_and_read).parameters
if max_size != "-" and not limited:
    print(json.dumps({"peak": 0, "size": 0, "seconds": 0, "error": "no max_size here"}))
    sys.exit()

async def main():
    async with anysoup.Session(timeout=120) as session:
        warm = anysoup.Message("GET", url.rsplit("/", 1)[0] + "/warm")
        await session.send_and_read(warm)
        msg = anysoup.Message("GET", url)
        kwargs = {} if max_size == "-" else {"max_size": int(max_size)}
        if mode == "traced":
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        before = high_water()
        start = time.perf_counter()
        error = None
        try:
            body = await session.send_and_read(msg, **kwargs)
            size = len(body)
        except anysoup.Error as exc:
            error, size = type(exc).__name__, 0
        seconds = time.perf_counter() - start
        after = high_water()
        if mode == "traced":
            peak = tracemalloc.get_traced_memory()[1] - base
        else:
            peak = (after - before) * 1024
        body = None
    print(json.dumps({"peak": peak, "size": size, "seconds": seconds, "error": error}))

anyio.run(main, backend=backend)
"""


SPEED_CLIENT = r"""
import sys, time
import anyio
import anysoup

url, backend, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    async with anysoup.Session() as session:
        await session.send_and_read(anysoup.Message("GET", url))
        start = time.process_time()
        for _ in range(count):
            await session.send_and_read(anysoup.Message("GET", url))
        print((time.process_time() - start) / count * 1e6)

anyio.run(main, backend=backend)
"""


def text(size: int) -> bytes:
    """Text that compresses like a web page (words, not zeros, not noise), ``size`` bytes."""
    rng = random.Random(7)
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9)))
        for _ in range(5000)
    ]
    pieces, total = [], 0
    while total < size:
        piece = " ".join(rng.choices(words, k=20000)).encode()
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)[:size]


def nested_gzip_bomb(gib: int) -> bytes:
    """``gzip(gzip(zeros))``: ``gib`` GiB of zeros in a few KiB (the inner stream repeats)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [outer.compress(inner.compress(block) + inner.flush(zlib.Z_FULL_FLUSH))]
    piece = inner.compress(block) + inner.flush(zlib.Z_FULL_FLUSH)
    for _ in range(gib * 1024 - 1):
        out.append(outer.compress(piece))
    out.append(outer.compress(inner.flush()))
    out.append(outer.flush())
    return b"".join(out)


def encode(data: bytes, coding: str) -> bytes:
    """``data`` under one content coding, at the levels servers use on the fly."""
    if coding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()
    if coding == "br":
        import brotli  # type: ignore[import-untyped]

        return bytes(brotli.compress(data, quality=5))
    if coding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return data


class Server:
    """Answers ``GET /<name>`` with a prepared body file; one thread per connection."""

    def __init__(self, bodies: dict[str, tuple[str, Path]]) -> None:
        self.bodies = bodies
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                name = head.split(b" ")[1].decode().lstrip("/")
                if name not in self.bodies:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                coding, path = self.bodies[name]
                size = path.stat().st_size
                extra = "" if coding == "identity" else f"Content-Encoding: {coding}\r\n"
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n{extra}\r\n".encode()
                try:
                    with path.open("rb") as file:
                        if size <= 1 << 20:  # one write: no delayed-ACK stall between two
                            conn.sendall(head + file.read())
                        else:
                            conn.sendall(head)
                            conn.sendfile(file)
                except OSError:
                    return  # the client gave up (a limit)


def run_client(tree: str | None, code: str, *args: str) -> bytes:
    """Run a client script in a fresh process importing anysoup from ``tree``; its stdout."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        env=env,
        check=True,
        timeout=600,
        cwd=tempfile.gettempdir(),  # import anysoup from the tree, not the current folder
    ).stdout


def measure(
    tree: str | None, url: str, mode: str, backend: str, max_size: str
) -> dict[str, object]:
    """One memory measurement (``mode``: traced or rss) of one ``send_and_read``."""
    result: dict[str, object] = json.loads(run_client(tree, CLIENT, url, mode, backend, max_size))
    return result


def speed(trees: list[str | None], count: int, backend: str, rounds: int) -> None:
    """Print the client CPU time per request of each tree (``--speed``)."""
    workdir = Path(tempfile.mkdtemp(prefix="anysoup-bench-"))
    page = text(256 << 10)
    (workdir / "gzip").write_bytes(gzip.compress(page, compresslevel=9, mtime=0))
    (workdir / "small").write_bytes(page[:1024])
    server = Server({"gzip": ("gzip", workdir / "gzip"), "small": ("identity", workdir / "small")})
    print(f"client CPU µs per request, {count} sequential send_and_read, best of {rounds}")
    for name in ("gzip", "small"):
        url = f"http://127.0.0.1:{server.port}/{name}"
        rates: dict[str | None, list[float]] = {tree: [] for tree in trees}
        for _ in range(rounds):
            for tree in trees:
                rates[tree].append(float(run_client(tree, SPEED_CLIENT, url, backend, str(count))))
        for tree in trees:
            print(f"{tree or 'installed':<28} {name:<6} {min(rates[tree]):10.0f}")


def main() -> None:
    """Prepare the bodies, serve them, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="the body, in MiB (default 64)")
    parser.add_argument("--tree", action="append", help="a folder holding an anysoup package")
    parser.add_argument("--codings", default="identity,gzip,br,zstd,bomb")
    parser.add_argument("--backend", default="asyncio")
    parser.add_argument("--speed", type=int, metavar="N", help="time N requests instead")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree with --speed")
    args = parser.parse_args()
    if args.speed:
        speed(args.tree or [None], args.speed, args.backend, args.rounds)
        return
    data = text(args.size << 20)
    workdir = Path(tempfile.mkdtemp(prefix="anysoup-bench-"))
    bodies: dict[str, tuple[str, Path]] = {}
    for coding in args.codings.split(","):
        path = workdir / coding
        if coding == "bomb":
            path.write_bytes(nested_gzip_bomb(4))
            bodies[coding] = ("gzip, gzip", path)
        else:
            path.write_bytes(encode(data, coding))
            bodies[coding] = (coding, path)
    server = Server(bodies)
    body_size = len(data)
    del data
    print(f"body: {body_size / 2**20:.0f} MiB decoded, backend {args.backend}")
    print(f"{'tree':<28} {'coding':<9} {'sent':>9} {'traced':>14} {'rss':>14} {'seconds':>8}")
    for coding, (_, path) in bodies.items():
        url = f"http://127.0.0.1:{server.port}/{coding}"
        max_size = str(1 << 20) if coding == "bomb" else "-"
        for tree in args.tree or [None]:
            traced = measure(tree, url, "traced", args.backend, max_size)
            rss = measure(tree, url, "rss", args.backend, max_size)
            size = body_size if coding != "bomb" else 1 << 20
            cells = [
                f"{int(r['peak']) / 2**20:7.1f} MiB {int(r['peak']) / size:4.2f}x"  # type: ignore[call-overload]
                for r in (traced, rss)
            ]
            note = f"  {traced['error']}" if traced["error"] else ""
            sent = f"{path.stat().st_size / 2**20:.2f} MiB"
            name = tree or "installed"
            print(
                f"{name:<28} {coding:<9} {sent:>9} {cells[0]:>14} {cells[1]:>14} "
                f"{float(rss['seconds']):8.2f}{note}"  # type: ignore[arg-type]
            )


if __name__ == "__main__":
    main()
