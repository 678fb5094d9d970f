"""A threaded HTTPS server on the stdlib's blocking :mod:`ssl`, for client certificates.

Theory of operation: anyio's server-side ``TLSStream`` does not flush the TLS
alert when a handshake fails (the client only sees EOF), so the tests of
client certificates need a server that behaves like nginx or ``openssl
s_server``: OpenSSL on a blocking socket writes its alert before the handshake
call returns. :func:`serve_tls` runs such a server in daemon threads, one for
``accept`` and one per connection, and is a plain context manager usable from
async tests on either backend (nothing in it touches the event loop).

Each connection is recorded in :attr:`TlsServer.connections`: the client
certificate's common name (or None), the request targets and bodies it
carried, and the handshake error if there was one. After a failed handshake
the server shuts down its sending side and drains what the client still sends
before closing; closing with unread data would make the kernel answer with a
TCP reset, which can overtake the alert. Every response is ``200`` with a
body ``conn=<index> subject=<common name or ->``, and connections are kept
alive until the client closes them. Request bodies need a Content-Length (no
chunked encoding); ``Expect: 100-continue`` is answered at once.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

#: How long a connection thread waits for the client's next bytes.
READ_TIMEOUT = 5.0
#: How long a failed handshake drains the client's bytes before closing.
DRAIN_TIMEOUT = 0.5
#: How long stopping the server waits for each thread.
JOIN_TIMEOUT = 5.0


@dataclass
class SeenConnection:
    """One accepted connection as the server saw it."""

    index: int  #: from 0, in accept order
    subject: str | None = None  #: the client certificate's common name
    targets: list[str] = field(default_factory=list)  #: request targets, in order
    bodies: list[bytes] = field(default_factory=list)  #: request bodies, in order
    handshake_error: str | None = None  #: the ssl error's reason, if the handshake failed
    hung_up: bool = False  #: closed on purpose during the handshake (``hang_up``)
    closed_early: bool = False  #: closed on purpose after it (``close_after_handshake``)


@dataclass(eq=False)
class TlsServer:
    """A running server and the connections it has seen."""

    port: int
    host: str = "127.0.0.1"
    connections: list[SeenConnection] = field(default_factory=list)
    hang_up: int = 0  #: how many more connections to drop after the ClientHello
    close_after_handshake: int = 0  #: how many more to close (cleanly) right after it

    @property
    def label(self) -> str:
        """``host:port``, as anysoup names the server in errors."""
        return f"{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The https URL of ``path`` (which starts with ``/``)."""
        return f"https://{self.host}:{self.port}{path}"

    @property
    def served(self) -> list[SeenConnection]:
        """The connections whose handshake succeeded."""
        return [c for c in self.connections if c.handshake_error is None and not c.hung_up]

    @property
    def failed(self) -> list[SeenConnection]:
        """The connections whose handshake failed or that were hung up on."""
        return [c for c in self.connections if c.handshake_error is not None or c.hung_up]


def client_auth(
    base: ssl.SSLContext,
    *,
    version: ssl.TLSVersion | None = None,
    required: bool = True,
) -> ssl.SSLContext:
    """Narrow a server context (with certificate and trust) for client certificates.

    ``required`` gives ``CERT_REQUIRED``, else ``CERT_OPTIONAL``; ``version``
    pins TLS 1.2 or 1.3.
    """
    base.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    if version is not None:
        base.minimum_version = version
        base.maximum_version = version
    return base


def _common_name(peer: dict[str, object] | None) -> str | None:
    if not peer:
        return None
    for rdn in peer.get("subject", ()):  # type: ignore[union-attr]
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return "(no common name)"


def _read_head(sock: ssl.SSLSocket, buffer: bytearray) -> bytes | None:
    """One request head (request line and fields), or None at EOF."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class _Runner:
    def __init__(self, context: ssl.SSLContext, server: TlsServer, listener: socket.socket):
        self.context = context
        self.server = server
        self.listener = listener
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.open_sockets: set[socket.socket] = set()

    def accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            with self.lock:
                seen = SeenConnection(len(self.server.connections))
                self.server.connections.append(seen)
                hang_up = self.server.hang_up > 0
                if hang_up:
                    self.server.hang_up -= 1
                elif self.server.close_after_handshake > 0:
                    self.server.close_after_handshake -= 1
                    seen.closed_early = True
                self.open_sockets.add(sock)
                thread = threading.Thread(
                    target=self.serve, args=(sock, seen, hang_up), daemon=True
                )
                self.threads.append(thread)
            thread.start()

    def serve(self, sock: socket.socket, seen: SeenConnection, hang_up: bool) -> None:
        current: socket.socket = sock
        try:
            sock.settimeout(READ_TIMEOUT)
            if hang_up:
                seen.hung_up = True
                sock.recv(65536)  # the ClientHello
                _drain_and_close(sock)
                return
            tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            with self.lock:
                self.open_sockets.discard(sock)
                self.open_sockets.add(tls)
            current = tls
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                seen.handshake_error = getattr(exc, "reason", None) or type(exc).__name__
                _drain_and_close(tls)
                return
            seen.subject = _common_name(tls.getpeercert())
            if seen.closed_early:
                # close_notify, then the FIN in ``finally``; not waiting for the
                # client's close_notify (non-blocking: unwrap stops at its read).
                tls.setblocking(False)
                with suppress(ssl.SSLWantReadError):
                    tls.unwrap()
                return
            self.answer(tls, seen)
        except OSError:
            pass  # the client went away, or the server is stopping
        finally:
            current.close()
            with self.lock:
                self.open_sockets.discard(current)

    def answer(self, tls: ssl.SSLSocket, seen: SeenConnection) -> None:
        buffer = bytearray()
        while True:
            head = _read_head(tls, buffer)
            if head is None:
                break
            length = _content_length(head)
            if b"\r\nexpect: 100-continue\r\n" in head.lower():
                tls.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(buffer) < length:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            seen.targets.append(head.split(b" ", 2)[1].decode("latin-1"))
            seen.bodies.append(bytes(buffer[:length]))
            del buffer[:length]
            body = f"conn={seen.index} subject={seen.subject or '-'}".encode()
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        # Answer the client's close_notify (ValueError: it was already unwrapped).
        with suppress(ssl.SSLError, OSError, ValueError):
            tls.unwrap()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.lock:
            sockets = list(self.open_sockets)
            threads = list(self.threads)
        for sock in sockets:
            # Wakes a thread blocked in recv. socket.socket's own method: the
            # SSLSocket one also drops the TLS state under the thread's feet.
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not [t for t in threads if t.is_alive()], "a server thread did not end"


def _drain_and_close(sock: socket.socket) -> None:
    """Send FIN, read what the client still sends for a moment, then close.

    The alert OpenSSL wrote is already in the kernel's send buffer; closing
    with unread data would send a reset that can arrive first.
    """
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock = socket.socket(fileno=sock.detach())
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(DRAIN_TIMEOUT)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


@contextmanager
def serve_tls(context: ssl.SSLContext) -> Iterator[TlsServer]:
    """Serve HTTPS with ``context`` on 127.0.0.1 until the ``with`` block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)  # the accept loop notices stop() this often
    server = TlsServer(port=listener.getsockname()[1])
    runner = _Runner(context, server, listener)
    acceptor = threading.Thread(target=runner.accept_loop, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        runner.stop()
        acceptor.join(JOIN_TIMEOUT)
