"""anysoup's benchmarks: the client against its floor and its peers, one machine.

Starts the servers (nginx, or the Python fallback, for HTTP; a ``websockets``
echo server for WebSocket), then runs every (scenario, client, backend) in a
fresh worker process, in interleaved rounds: round 1 runs A, B, C; round 2
runs A, B, C again; and so on. It prints progress on stderr, then the tables
(see report.py) on stdout, and stops the servers by their pids. A scenario
whose listener the server lacks (the TLS ones, with the Python fallback) is
recorded as ``n/a`` for each client, and not run.

Examples::

    python benchmarks/run.py --scale 0.05                 # quick look at everything
    python benchmarks/run.py --compare                    # 3 rounds, the README's table
    python benchmarks/run.py --compare --scenarios seq,queue --clients anysoup,h11raw
    python benchmarks/run.py --scale 0.05 --scenarios h2seq,h2conc64,h2large,tls1large
    python benchmarks/run.py --report results.jsonl       # tables from saved records
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

import report
from adapters import ADAPTERS
from scenarios import SCENARIOS
from servers import Server, WebsocketEcho, http_server, make_tmp

HERE = Path(__file__).resolve().parent


def _names(known: dict[str, Any]) -> Any:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {', '.join(known)}")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see ``--help``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=_names(ADAPTERS), default=list(ADAPTERS))
    p.add_argument(
        "--backends", type=_names(dict.fromkeys(report.BACKENDS)), default=report.BACKENDS
    )
    p.add_argument("--scenarios", type=_names(SCENARIOS), default=list(SCENARIOS))
    p.add_argument(
        "--compare", action="store_true", help="3 rounds (unless --rounds says otherwise)"
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 1, 3 with --compare)")
    p.add_argument("--baseline", default="h11raw", help="the client ratios are taken against")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every count (0.05: quick)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap on one timed section")
    p.add_argument("--timeout", type=float, default=300.0, help="cap on one worker process")
    p.add_argument(
        "--server",
        choices=["auto", "nginx", "python"],
        default="auto",
        help="HTTP server: nginx if installed (auto), or the Python fallback",
    )
    p.add_argument("--json", type=Path, help="also write every record to this JSON-lines file")
    p.add_argument("--report", type=Path, nargs="+", help="only print tables from saved records")
    p.add_argument("--list", action="store_true", help="list clients and scenarios")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.compare else 1)
    return args


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Harness:
    """The servers, the worker processes and the records of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.records: list[dict[str, Any]] = []
        self.out: TextIO | None = args.json.open("w") if args.json else None
        self.servers: dict[str, Server] = {}

    def emit(self, record: dict[str, Any]) -> None:
        """Keep a record, and write it to --json."""
        self.records.append(record)
        if self.out:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()

    def jobs(self) -> list[tuple[str, str, str]]:
        """(scenario, client, backend) in the order of one round; skips what can't run."""
        return [
            (s, c, b)
            for s in self.args.scenarios
            for c in self.args.clients
            for b in self.args.backends
            if b in ADAPTERS[c].backends and SCENARIOS[s].requires <= ADAPTERS[c].ops
        ]

    def served(self, scenario: str) -> bool:
        """Whether the started servers have the scenario's listener."""
        wanted = SCENARIOS[scenario]
        server = self.servers.get(wanted.server)
        return server is not None and wanted.listener in server.urls

    def skip_unserved(self, jobs: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """Record ``n/a`` for the jobs whose listener isn't served; -> the others."""
        for scenario, client, backend in jobs:
            if not self.served(scenario):
                wanted = SCENARIOS[scenario]
                server = self.servers[wanted.server].name
                self.emit(
                    {
                        "type": "run",
                        "client": client,
                        "backend": backend,
                        "scenario": scenario,
                        "round": 1,
                        "status": "n/a",
                        "error": f"the {server} server has no {wanted.listener} listener",
                    }
                )
        return [job for job in jobs if self.served(job[0])]

    def measure(self, scenario: str, client: str, backend: str, rnd: int) -> dict[str, Any]:
        """Run one worker process and return its record."""
        server = self.servers[SCENARIOS[scenario].server]
        if not server.alive():
            raise RuntimeError(f"the {server.name} server died")
        options = {
            "--url": server.urls[SCENARIOS[scenario].listener],
            "--ca-file": str(server.ca_file or ""),
            "--server-pids": ",".join(map(str, server.pids)),
            "--scale": str(self.args.scale),
            "--max-seconds": str(self.args.max_seconds),
            "--round": str(rnd),
        }
        cmd = [sys.executable, str(HERE / "worker.py"), client, backend, scenario]
        cmd += [word for option in options.items() for word in option]
        failed = {
            "type": "run",
            "client": client,
            "backend": backend,
            "scenario": scenario,
            "round": rnd,
            "status": "error",
        }
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.args.timeout)
        except subprocess.TimeoutExpired:  # run() has killed it
            return {**failed, "error": f"worker killed after {self.args.timeout:.0f} s"}
        lines = done.stdout.strip().splitlines()
        if not lines:
            return {**failed, "error": f"worker exit {done.returncode}: {done.stderr[-2000:]}"}
        return dict(json.loads(lines[-1]))

    def start_servers(self, tmp: Path) -> None:
        """Start the servers this run's scenarios need."""
        kinds = {SCENARIOS[s].server for s, _, _ in self.jobs()}
        if "http" in kinds:
            self.servers["http"] = http_server(self.args.server, tmp)
        if "ws" in kinds:
            self.servers["ws"] = WebsocketEcho()
        for server in self.servers.values():
            server.start()
            urls = ", ".join(f"{name} {url}" for name, url in server.urls.items())
            _log(f"{server.name} at {urls}; pids {server.pids}")

    def main(self) -> int:
        """Run every round; print the tables even after an interruption."""
        args, jobs = self.args, self.jobs()
        tmp = make_tmp()
        started = time.monotonic()
        try:
            self.start_servers(tmp)
            self.emit(self._meta())
            jobs = self.skip_unserved(jobs)
            _log(f"{len(jobs)} measurements x {args.rounds} round(s)")
            for rnd in range(1, args.rounds + 1):
                for scenario, client, backend in jobs:
                    record = self.measure(scenario, client, backend, rnd)
                    self.emit(record)
                    _log(
                        f"round {rnd}/{args.rounds} {scenario:<10} {client}/{backend}: "
                        + _summary(record)
                    )
        except KeyboardInterrupt:
            _log("interrupted: tables of what was measured")
        finally:
            for server in self.servers.values():
                server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            if self.out:
                self.out.close()
        print(header(self.records[0]) if self.records else "")
        print(report.render(self.records, args.baseline))
        _log(f"{time.monotonic() - started:.0f} s")
        return 1 if any(r.get("status") == "error" for r in self.records) else 0

    def _meta(self) -> dict[str, Any]:
        http, ws = self.servers.get("http"), self.servers.get("ws")
        return {
            "type": "meta",
            "date": time.strftime("%Y-%m-%d"),
            "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
            "http_server": http.name if http else None,
            "ws_server": ws.name if ws else None,
            "rounds": self.args.rounds,
            "scale": self.args.scale,
        }


def _summary(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record.get('error', '')[:300]}"
    unit = SCENARIOS[record["scenario"]]
    capped = " (capped)" if record["capped"] else ""
    return (
        f"{record['value']:,.1f} {unit.unit}, {record['client_cpu_us_per_op']:,.1f} µs/{unit.op}"
        f", {record['peak_rss_mib']:.1f} MiB, {report.spoken(record)}{capped}"
    )


def header(meta: dict[str, Any]) -> str:
    """Where and how the tables were made, from the run's meta record."""
    return (
        f"{meta['date']}, `{meta['command']}`: Python {meta['python']}, {meta['machine']};"
        f" HTTP server {meta['http_server']}, WebSocket server {meta['ws_server']};"
        f" {meta['rounds']} round(s) at scale {meta['scale']}.\n"
    )


def _stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # so that the servers are stopped all the same


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and do what it says."""
    args = parse_args(argv)
    if args.list:
        for a in ADAPTERS.values():
            print(f"client {a.name:<10} {','.join(a.backends):<13} {a.doc}")
        for s in SCENARIOS.values():
            print(f"scenario {s.name:<10} n={s.count:<6} {s.unit:<6} {s.doc}")
        return 0
    if args.report:
        records = [
            json.loads(line) for path in args.report for line in path.open() if line.strip()
        ]
        metas = [r for r in records if r["type"] == "meta"]
        print(header(metas[0]) if metas else "")
        print(report.render(records, args.baseline))
        return 0
    spec = importlib.util.find_spec("anysoup")
    if spec is None or spec.origin != str(HERE.parent / "anysoup" / "__init__.py"):
        where = spec.origin if spec else "nowhere"
        _log(f"warning: the workers import anysoup from {where}, not from this checkout")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return Harness(args).main()


if __name__ == "__main__":
    sys.exit(main())
