"""Proxies for the test suite: pproxy for truth, scripted proxies for the rest.

* :func:`run_pproxy` runs pproxy, a third-party HTTP and SOCKS proxy from
  PyPI, as a subprocess with one listener per entry (HTTP forwarding and
  CONNECT, SOCKS4, SOCKS5, TLS to the proxy, Basic and SOCKS credentials).
  It runs with ``--auth 0``: by default pproxy trusts an address for 30
  days once it has authenticated, which would let a later test pass
  without credentials.
* :func:`serve_proxy` is a scripted HTTP proxy over :func:`servers.serve_raw`,
  in the test's own event loop, for what pproxy can't do: record the exact
  request heads it receives, answer with a test's status (a 407 with a
  Digest challenge, a 403 with a body), and tunnel after that. It answers
  forwarded (absolute-form) requests itself, with the target as the body.
* :func:`serve_socks4a` is a SOCKS4a server (pproxy only speaks SOCKS4) that
  records the host name the client left for it to resolve.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.streams.buffered import BufferedByteStream
from servers import PEER_ERRORS, CertFiles, Server, ServerConnection, serve_raw

__all__ = [
    "ProxyRequest",
    "ScriptedProxy",
    "relay",
    "run_pproxy",
    "serve_proxy",
    "serve_socks4a",
]

#: How long pproxy may take to start listening.
PPROXY_START = 15.0


# -- pproxy, a third-party proxy ------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (bound, read, released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def run_pproxy(
    listeners: Mapping[str, str], *, log_path: Path, cert_files: CertFiles | None = None
) -> Iterator[dict[str, int]]:
    """Run one pproxy process; yield each listener's port by name.

    Args:
        listeners: name -> ``scheme`` or ``scheme#user:password`` (pproxy's
            syntax: ``http``, ``socks4``, ``socks5``, ``http+ssl``, …).
        log_path: Where pproxy's output goes (read it when a test fails).
        cert_files: The certificate for ``+ssl`` listeners.
    """
    ports = dict(zip(listeners, _free_ports(len(listeners)), strict=True))
    args = [sys.executable, "-m", "pproxy", "--auth", "0"]
    for name, spec in listeners.items():
        scheme, hash_, users = spec.partition("#")
        args += ["-l", f"{scheme}://127.0.0.1:{ports[name]}{hash_}{users}"]
    if cert_files is not None:
        args += ["--ssl", f"{cert_files.certfile},{cert_files.keyfile}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + PPROXY_START
        for port in ports.values():
            while not _accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = log_path.read_text(errors="replace")
                    raise RuntimeError(f"pproxy did not start ({args}):\n{output}")
                time.sleep(0.05)
        yield ports
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- relaying ---------------------------------------------------------------------------


async def relay(client: BufferedByteStream, host: str, port: int) -> None:
    """Copy bytes both ways between ``client`` and ``host:port`` until one side ends."""
    try:
        upstream = await anyio.connect_tcp(host, port)
    except OSError:
        return
    async with upstream, anyio.create_task_group() as tg:

        async def pump(
            source: anyio.abc.ByteReceiveStream, sink: anyio.abc.ByteSendStream
        ) -> None:
            with contextlib.suppress(*PEER_ERRORS):
                async for chunk in source:
                    await sink.send(chunk)
            tg.cancel_scope.cancel()

        tg.start_soon(pump, client, upstream)
        tg.start_soon(pump, upstream, client)


def _split_authority(authority: str) -> tuple[str, int]:
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port)


# -- a scripted HTTP proxy ------------------------------------------------------------------


@dataclass
class ProxyRequest:
    """One request head as the proxy received it."""

    #: The head's bytes, up to and without the blank line.
    raw: bytes
    method: str
    target: str
    #: The header fields in order, names as sent.
    headers: list[tuple[str, str]]
    #: The index of the connection it came on, from 0.
    connection: int

    @property
    def names(self) -> list[str]:
        """The header names, lowercased, in order."""
        return [name.lower() for name, _ in self.headers]

    def header(self, name: str) -> str | None:
        """The value of ``name`` (the last, if repeated), or None."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[-1] if values else None


#: The proxy's answer instead of serving: ``(status, headers, body)``.
Refusal = tuple[int, list[tuple[str, str]], bytes]
#: Decides per request: None to serve it, or the answer to refuse it with.
Gate = Callable[[ProxyRequest], Refusal | Awaitable[Refusal | None] | None]


@dataclass(eq=False)
class ScriptedProxy:
    """A running :func:`serve_proxy` and what it has seen."""

    server: Server
    requests: list[ProxyRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The proxy URI (``http://`` or ``https://`` for TLS to the proxy)."""
        return self.server.url

    @property
    def connects(self) -> list[ProxyRequest]:
        """The CONNECT requests, in order."""
        return [r for r in self.requests if r.method == "CONNECT"]


async def _read_head(conn: ServerConnection, index: int) -> ProxyRequest | None:
    try:
        raw = await conn.stream.receive_until(b"\r\n\r\n", 65536)
    except (anyio.IncompleteRead, anyio.EndOfStream):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = [tuple(line.split(":", 1)) for line in lines[1:]]
    pairs = [(name, value.strip()) for name, value in headers]
    return ProxyRequest(raw, method, target, pairs, index)


async def _answer(
    conn: ServerConnection, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    head = [f"HTTP/1.1 {status} Scripted", *(f"{n}: {v}" for n, v in headers)]
    head.append(f"Content-Length: {len(body)}")
    await conn.stream.send("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)


@asynccontextmanager
async def serve_proxy(
    gate: Gate | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[ScriptedProxy]:
    """Serve a scripted HTTP proxy: CONNECT tunnels and forwarded requests.

    Every request head is recorded. ``gate`` may refuse a request with an
    answer of its own (the connection stays open for the next request);
    otherwise a CONNECT gets ``200`` and a tunnel to its target, and a
    forwarded request gets ``200`` with its target as the body. With
    ``ssl_context`` the proxy speaks TLS (an ``https://`` proxy).
    """
    proxy: ScriptedProxy

    async def run(conn: ServerConnection) -> None:
        while (request := await _read_head(conn, conn.index)) is not None:
            length = int(request.header("Content-Length") or 0)
            if length:
                await conn.stream.receive_exactly(length)
            proxy.requests.append(request)
            refusal = gate(request) if gate is not None else None
            if refusal is not None and not isinstance(refusal, tuple):
                refusal = await refusal
            if refusal is not None:
                await _answer(conn, *refusal)
            elif request.method == "CONNECT":
                await conn.stream.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await relay(conn.stream, *_split_authority(request.target))
                return
            else:
                await _answer(conn, 200, [], request.target.encode())

    async with serve_raw(run, ssl_context=ssl_context) as server:
        proxy = ScriptedProxy(server)
        yield proxy


# -- SOCKS4a ---------------------------------------------------------------------------------


@asynccontextmanager
async def serve_socks4a(
    hosts: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[Server, list[str]]]:
    """A SOCKS4a proxy: yield it and the host names clients asked it to resolve.

    SOCKS4a (an extension of SOCKS4): the address ``0.0.0.x`` (x > 0) means
    "the host name follows the user id", and the proxy resolves it: first
    in ``hosts`` (a test may keep its own process from resolving a name),
    then with the system resolver.
    """
    names: list[str] = []

    async def run(conn: ServerConnection) -> None:
        request = await conn.stream.receive_exactly(8)
        version, command, port = request[0], request[1], int.from_bytes(request[2:4], "big")
        address = socket.inet_ntoa(request[4:8])
        await conn.stream.receive_until(b"\x00", 256)  # the user id
        if version != 4 or command != 1:
            return
        if address.startswith("0.0.0.") and address != "0.0.0.0":
            address = (await conn.stream.receive_until(b"\x00", 256)).decode("idna")
            names.append(address)
        await conn.stream.send(b"\x00\x5a" + request[2:8])
        await relay(conn.stream, (hosts or {}).get(address, address), port)

    async with serve_raw(run) as server:
        yield server, names
