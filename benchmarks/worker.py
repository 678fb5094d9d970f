"""One measurement, in a fresh process: one client, one backend, one scenario.

run.py starts this script once per measurement, so the peak RSS it reports
(VmHWM, the process's resident high-water mark) belongs to that measurement
alone, and no client inherits another's warm caches. It prints one JSON record
on stdout, whatever happens: a failure becomes ``status: error`` with the
exception, a missing library ``status: not installed``, and a client that
completes no operation within ``--max-seconds`` ``status: nothing done``.

By hand, against a server you started::

    python benchmarks/worker.py anysoup trio seq --url http://127.0.0.1:8080
    python benchmarks/worker.py httpx asyncio h2seq --url https://127.0.0.1:8443 --ca-file ca.pem

Besides the figures, the record says which protocol versions the responses
came in (``protocols``: ``["2"]``, ``["1.1"]``) and how many connections to
the server were open at the end of the timed section (``connections``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from importlib import metadata
from typing import Any

# The A/B client (see adapters.BASE_TREE_VARIABLE) imports its own anysoup.
if sys.argv[1:2] == ["anysoup-base"] and os.environ.get("ANYSOUP_BASE_TREE"):
    sys.path.insert(0, os.environ["ANYSOUP_BASE_TREE"])

from adapters import ADAPTERS, Setup, protocol_name
from scenarios import SCENARIOS, Run


def peak_rss_mib() -> float:
    """The process's resident-set high-water mark so far, in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def warm_allocator() -> None:
    """Free one big block first, as any long-running process has done.

    glibc serves blocks above its mmap threshold (128 KiB at start) with a
    fresh mmap, and raises the threshold to the size of the first such block
    that is freed. Until then, every 256 KiB receive buffer of asyncio's
    transport is a new mapping whose pages fault in one by one: a fresh
    process would measure the allocator's cold start, not the client. A
    bytearray of 1 MiB is allocated by malloc and, freed, moves the threshold.
    """
    block = bytearray(1 << 20)
    del block


class NothingDone(Exception):
    """The timed section ran out of time before its first operation completed."""


async def _measure(client_name: str, scenario_name: str, run: Run, ca: str) -> dict[str, Any]:
    scenario = SCENARIOS[scenario_name]
    setup = Setup(scenario.limit, scenario.protocol, ca or None, scenario.needs)
    async with ADAPTERS[client_name].open(setup) as client:
        ops = await scenario.measure(client, run)
    if not ops:
        raise NothingDone(f"not one operation completed in --max-seconds ({run.max_seconds:g} s)")
    figures = run.figures
    return {
        "value": ops / figures["seconds"],
        "ops": ops,
        "capped": run.capped,
        "seconds": figures["seconds"],
        "client_cpu_us_per_op": 1e6 * figures["client_cpu"] / ops,
        "client_cpu_pct": 100 * figures["client_cpu"] / figures["seconds"],
        "server_cpu_pct": 100 * figures["server_cpu"] / figures["seconds"],
        "connections": figures["connections"],
        "protocols": sorted({protocol_name(v) for v in client.protocols}),
    }


def _versions(client_name: str) -> dict[str, str]:
    out = {}
    for dist in (*ADAPTERS[client_name].dists, "anyio", "trio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure once and print the record."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("client", choices=list(ADAPTERS))
    p.add_argument("backend", choices=["asyncio", "trio"])
    p.add_argument("scenario", choices=list(SCENARIOS))
    p.add_argument("--url", required=True, help="the scenario's listener (see servers.py)")
    p.add_argument("--ca-file", default="", help="the CA to trust for https")
    p.add_argument("--server-pids", default="", help="comma-separated: whose CPU is the server's")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--round", type=int, default=1)
    args = p.parse_args(argv)
    warm_allocator()

    scenario = SCENARIOS[args.scenario]
    n = max(1, round(scenario.count * args.scale))
    pids = [int(pid) for pid in args.server_pids.split(",") if pid]
    run = Run(n, args.url, args.max_seconds, pids)
    record: dict[str, Any] = {
        "type": "run",
        "client": args.client,
        "backend": args.backend,
        "scenario": args.scenario,
        "round": args.round,
        "n": n,
        "status": "ok",
    }
    try:
        import anyio

        record.update(
            anyio.run(
                _measure, args.client, args.scenario, run, args.ca_file, backend=args.backend
            )
        )
    except ImportError as exc:
        record.update(status="not installed", error=str(exc))
    except NothingDone as exc:  # a result (a very slow client), not a failure
        record.update(status="nothing done", error=str(exc))
    except BaseException as exc:  # any failure is a result to report, not a crash
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
        record["traceback"] = traceback.format_exc(limit=-6)
    record["peak_rss_mib"] = peak_rss_mib()
    record["versions"] = _versions(args.client)
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
