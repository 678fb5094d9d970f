"""The servers the clients are measured against, started and stopped by run.py.

Everything a server needs lives in one fresh temporary folder: the fixture
files, and for nginx its generated config, pid file, error log and temp
folders. The harness never touches a system nginx or its config: it runs the
nginx binary itself, on a free port of 127.0.0.1, and stops each process it
started by that process's own pid.

* :class:`Nginx` is the HTTP server when the ``nginx`` binary exists (Debian
  package ``nginx``; ``nox -s bench`` installs it when it runs as root). One
  nginx process listens on three ports, its *listeners*: ``http`` (plain
  HTTP/1.1), ``h2`` (TLS offering ``h2`` and ``http/1.1`` by ALPN) and
  ``tls1`` (TLS, HTTP/1.1 only), all serving the same files. The TLS
  listeners use a certificate for 127.0.0.1 issued at start by a throwaway CA
  (``trustme``), whose PEM file, ``ca.pem`` in the temp folder, is what the
  clients are told to trust.
* :class:`PythonHTTP` (``serve.py http``) is the documented fallback: the same
  files, the same responses, from one asyncio process. It is much slower than
  nginx, so the tables say which server was used. It has the ``http``
  listener only: the TLS scenarios are ``n/a`` with it.
* :class:`WebsocketEcho` (``serve.py ws``) is the ``websockets`` echo server.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The fixture sizes: every response a scenario reads is checked against them.
SMALL_SIZE = 1024
GZIP_SIZE = 256 * 1024  # decoded; served gzip-encoded
LARGE_SIZE = 64 * 1024 * 1024

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    server_tokens off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # HTTP/2 (the listener with "http2"): keepalive_requests above bounds its
    # requests per connection too (nginx 1.19.7+, where http2_max_requests
    # became obsolete); 512 streams at once, not 128, so that 256 concurrent
    # requests fit on one connection; DATA frames of 16 KiB (not 8), one TLS
    # record each, as HTTP/1.1's body goes out in 16 KiB records.
    http2_max_concurrent_streams 512;
    http2_chunk_size 16k;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root {tmp}/www;
    # gzip.gz is served as is (no CPU spent compressing), whatever the
    # request's Accept-Encoding: a client that doesn't decode fails the
    # size check instead of quietly measuring the plain file. /cached is
    # /small's bytes, fresh for an hour (RFC 9111 §5.2.2.1): the cache_hit
    # scenarios' one miss stores it, and every later GET is a hit.
    server {{
        listen 127.0.0.1:{http} backlog=16384;
        location = /gzip {{ gzip_static always; default_type text/plain; }}
        location = /cached {{ add_header Cache-Control "max-age=3600"; }}
    }}
    server {{
        listen 127.0.0.1:{h2} ssl http2 backlog=16384;
        location = /gzip {{ gzip_static always; default_type text/plain; }}
        location = /cached {{ add_header Cache-Control "max-age=3600"; }}
    }}
    server {{
        listen 127.0.0.1:{tls1} ssl backlog=16384;
        location = /gzip {{ gzip_static always; default_type text/plain; }}
        location = /cached {{ add_header Cache-Control "max-age=3600"; }}
    }}
}}
"""


def write_fixtures(www: Path) -> None:
    """Write /small, /cached (the same bytes), /large and /gzip (with its gzip.gz) into ``www``."""
    rng = random.Random(14)
    (www / "small").write_bytes(rng.randbytes(SMALL_SIZE))
    (www / "cached").write_bytes((www / "small").read_bytes())
    block = rng.randbytes(1024 * 1024)  # incompressible, and cheap to repeat
    with (www / "large").open("wb") as f:
        for _ in range(LARGE_SIZE // len(block)):
            f.write(block)
    # Text that compresses like prose (about 3:1): words from a fixed vocabulary.
    words = ["".join(rng.choices("etaoinshrdlucmfwyp", k=rng.randint(2, 9))) for _ in range(400)]
    text = bytearray()
    while len(text) < GZIP_SIZE:
        text += " ".join(rng.choices(words, k=12)).encode() + b".\n"
    (www / "gzip").write_bytes(text[:GZIP_SIZE])
    (www / "gzip.gz").write_bytes(gzip.compress(bytes(text[:GZIP_SIZE]), mtime=0))
    for path in [www, *www.iterdir()]:
        # nginx's worker may run as another user ('nobody' when we are root).
        path.chmod(0o755 if path.is_dir() else 0o644)


def write_certificates(tmp: Path) -> Path:
    """A throwaway CA, and its certificate for 127.0.0.1 and localhost; -> the CA's PEM file.

    The server's chain goes to ``server.pem`` and its key to ``server.key``
    (ECDSA P-256, trustme's default) in ``tmp``, the CA's certificate to
    ``ca.pem``. Nothing is kept between runs.
    """
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    (tmp / "server.pem").write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(tmp / "server.key"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    return tmp / "ca.pem"


def connections_to(port: int) -> int:
    """How many ESTABLISHED TCP connections of this process have ``port`` as the peer's (Linux).

    The sockets of this process are the ``socket:[inode]`` links in
    ``/proc/self/fd``; ``/proc/self/net/tcp`` (and ``tcp6``) give each
    socket's state (``01``: established), peer address and inode.
    """
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed since the listing
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                mine.add(link[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            next(f)  # the column names
            for line in f:
                fields = line.split()
                peer_port = int(fields[2].rsplit(":", 1)[1], 16)
                count += fields[3] == "01" and peer_port == port and fields[9] in mine
    return count


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` so far, read from /proc (Linux)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[str] | None) -> None:
    """Stop one process this harness started, by its pid; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """A server process: its URLs, the pids whose CPU is the server's, and stop()."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        #: The base URL of each listener ("http", "h2", "tls1" or "ws").
        self.urls: dict[str, str] = {}
        #: The PEM file of the CA that signed the TLS listeners' certificate.
        self.ca_file: Path | None = None
        self.pids: list[int] = []

    def start(self) -> None:
        """Start the process and return once it serves; sets ``urls`` and ``pids``."""
        raise NotImplementedError

    def alive(self) -> bool:
        """Whether the server is still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        _stop(self.proc)

    def _spawn_announcing(self, *args: str) -> int:
        """Start ``serve.py args`` and return the port it announces."""
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serve.py"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"serve.py {args[0]} did not start (got {line!r})")
        self.pids = [self.proc.pid]
        return int(line.split()[1])


class Nginx(Server):
    """nginx from the system's binary, with a config of our own."""

    name = "nginx"

    def __init__(self, binary: str, tmp: Path) -> None:
        super().__init__()
        self.binary = binary
        self.tmp = tmp

    def start(self) -> None:
        """Write the config and certificates, start nginx, wait until it accepts connections."""
        ports = {"http": _free_port(), "h2": _free_port(), "tls1": _free_port()}
        self.ca_file = write_certificates(self.tmp)
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, **ports))
        cmd = [
            self.binary,
            "-p",
            str(self.tmp),
            "-e",
            str(self.tmp / "error.log"),
            "-c",
            str(conf),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, text=True)
        port = ports["http"]
        self.urls = {
            name: f"{'http' if name == 'http' else 'https'}://127.0.0.1:{port}"
            for name, port in ports.items()
        }
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while not workers:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}; see its stderr")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not serve on port {port} within 30 s")
            time.sleep(0.05)
            try:
                for port in ports.values():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                continue
            workers = _children(self.proc.pid)
        self.pids = [self.proc.pid, *workers]
        version = subprocess.run([self.binary, "-v"], capture_output=True, text=True, check=False)
        self.name = version.stderr.strip().rsplit(" ", 1)[-1]  # "nginx/1.22.1"


class PythonHTTP(Server):
    """The fallback: serve.py's asyncio server over the same files."""

    name = "python-fallback"

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.tmp = tmp

    def start(self) -> None:
        """Start serve.py http and wait for its port."""
        port = self._spawn_announcing("http", "--root", str(self.tmp / "www"))
        self.urls = {"http": f"http://127.0.0.1:{port}"}


class WebsocketEcho(Server):
    """The ``websockets`` echo server (serve.py ws)."""

    name = "websockets-echo"

    def start(self) -> None:
        """Start serve.py ws and wait for its port."""
        port = self._spawn_announcing("ws")
        self.urls = {"ws": f"ws://127.0.0.1:{port}/echo"}


def find_nginx() -> str | None:
    """The nginx binary on PATH or in /usr/sbin, or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def http_server(choice: str, tmp: Path) -> Server:
    """The HTTP server for ``--server choice`` (auto, nginx or python), fixtures written."""
    www = tmp / "www"
    www.mkdir()
    write_fixtures(www)
    tmp.chmod(0o755)
    binary = find_nginx()
    if choice == "nginx" and binary is None:
        raise RuntimeError("--server nginx: no nginx binary (Debian: apt-get install nginx)")
    if choice != "python" and binary is not None:
        return Nginx(binary, tmp)
    return PythonHTTP(tmp)


def make_tmp() -> Path:
    """A fresh folder for one run's fixtures and server files."""
    return Path(tempfile.mkdtemp(prefix="anysoup-bench-"))
