"""The servers the clients are measured against, started and stopped by run.py.

Everything a server needs lives in one fresh temporary folder: the fixture
files, and for nginx its generated config, pid file, error log and temp
folders. The harness never touches a system nginx or its config: it runs the
nginx binary itself, on a free port of 127.0.0.1, and stops each process it
started by that process's own pid.

* :class:`Nginx` is the HTTP server when the ``nginx`` binary exists (Debian
  package ``nginx``; ``nox -s bench`` installs it when it runs as root).
* :class:`PythonHTTP` (``serve.py http``) is the documented fallback: the same
  files, the same responses, from one asyncio process. It is much slower than
  nginx, so the tables say which server was used.
* :class:`WebsocketEcho` (``serve.py ws``) is the ``websockets`` echo server.
"""

from __future__ import annotations

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
    server {{
        listen 127.0.0.1:{port} backlog=16384;
        root {tmp}/www;
        # gzip.gz is served as is (no CPU spent compressing), whatever the
        # request's Accept-Encoding: a client that doesn't decode fails the
        # size check instead of quietly measuring the plain file.
        location = /gzip {{ gzip_static always; default_type text/plain; }}
    }}
}}
"""


def write_fixtures(www: Path) -> None:
    """Write /small, /large and /gzip (with its gzip.gz) into ``www``."""
    rng = random.Random(14)
    (www / "small").write_bytes(rng.randbytes(SMALL_SIZE))
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
    """A server process: its URL, the pids whose CPU is the server's, and stop()."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.pids: list[int] = []

    def start(self) -> None:
        """Start the process and return once it serves; sets ``url`` and ``pids``."""
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
        """Write the config, start nginx and wait until it accepts connections."""
        port = _free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, port=port))
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
        self.url = f"http://127.0.0.1:{port}"
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
        self.url = f"http://127.0.0.1:{port}"


class WebsocketEcho(Server):
    """The ``websockets`` echo server (serve.py ws)."""

    name = "websockets-echo"

    def start(self) -> None:
        """Start serve.py ws and wait for its port."""
        port = self._spawn_announcing("ws")
        self.url = f"ws://127.0.0.1:{port}/echo"


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
