"""Tables from the JSON records of a run: medians, and ratios paired by round.

A ratio compares a client with the baseline client on the same backend, in
the same scenario, *in the same round*: the two measurements ran minutes
apart at most, under the same background load. The table shows the median
of those per-round ratios, which survives a noisy machine far better than a
ratio of two medians, let alone of two runs.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from adapters import ADAPTERS
from scenarios import SCENARIOS

Record = dict[str, Any]
Key = tuple[str, str, str]  # client, backend, scenario
BACKENDS = ["asyncio", "trio"]


def _key(record: Record) -> Key:
    return record.get("client", ""), record.get("backend", ""), record.get("scenario", "")


def _ok_runs(records: Iterable[Record]) -> dict[Key, dict[int, Record]]:
    """{(client, backend, scenario): {round: record}} of the successful runs."""
    out: dict[Key, dict[int, Record]] = defaultdict(dict)
    for r in records:
        if r.get("type") == "run" and r["status"] == "ok":
            out[r["client"], r["backend"], r["scenario"]][r["round"]] = r
    return out


def _paired_ratio(
    runs: dict[Key, dict[int, Record]], key: Key, baseline: str, field: str
) -> float | None:
    """Median over rounds of ``field(key) / field(baseline)``, same backend and round."""
    base = runs.get((baseline, key[1], key[2]), {})
    ratios = [r[field] / base[n][field] for n, r in runs[key].items() if n in base]
    return statistics.median(ratios) if ratios else None


def _failure(statuses: list[str]) -> str:
    """The cell of a measurement that has no successful round."""
    for status, cell in [("error", "error"), ("nothing done", "0^"), ("not installed", "-")]:
        if status in statuses:
            return cell
    return "n/a"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _table(title: str, head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    # Markdown: the first two columns are names, the others right-aligned figures.
    dashes = ["-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    rule = "|" + "|".join(dashes) + "|"
    return "\n".join([f"**{title}**", "", line(head), rule, *(line(r) for r in rows)])


def render(records: list[Record], baseline: str) -> str:
    """The tables for ``records``, with ratios against ``baseline``."""
    runs = _ok_runs(records)
    done = [r for r in records if r.get("type") == "run"]
    statuses: dict[Key, list[str]] = defaultdict(list)
    for r in done:
        statuses[_key(r)].append(r["status"])
    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in done)]
    pairs = {(r["client"], r["backend"]) for r in done}
    rows = [(c, b) for c in ADAPTERS for b in BACKENDS if (c, b) in pairs]

    def grid(cell: Callable[[Key, list[Record]], str]) -> list[list[str]]:
        out = []
        for client, backend in rows:
            line = [client, backend]
            for s in scenarios:
                key = (client, backend, s)
                ok = list(runs[key].values()) if key in runs else []
                line.append(cell(key, ok) if ok else _failure(statuses[key]))
            out.append(line)
        return out

    def median(ok: list[Record], field: str) -> float:
        return float(statistics.median(r[field] for r in ok))

    def with_ratio(key: Key, text: str, field: str) -> str:
        ratio = _paired_ratio(runs, key, baseline, field) if key[0] != baseline else None
        if ratio is None:
            return text
        return f"{text} ({ratio:.2f}x)" if ratio >= 0.1 else f"{text} ({ratio:.2g}x)"

    def throughput(key: Key, ok: list[Record]) -> str:
        capped = "^" if any(r["capped"] for r in ok) else ""
        missing = len(statuses[key]) - len(ok)
        partial = f" [{len(ok)} of {len(statuses[key])}]" if missing else ""
        return with_ratio(key, _num(median(ok, "value")) + capped + partial, "value")

    def cpu(key: Key, ok: list[Record]) -> str:
        return with_ratio(key, _num(median(ok, "client_cpu_us_per_op")), "client_cpu_us_per_op")

    def head(label: Callable[[str], str]) -> list[str]:
        return ["client", "backend", *(f"{s} {label(s)}" for s in scenarios)]

    rounds = max((r["round"] for r in done), default=0)
    return "\n\n".join(
        [
            _table(
                f"Throughput, median of {rounds} round(s) (ratio to {baseline}, paired by round;"
                " >1 is faster)",
                head(lambda s: SCENARIOS[s].unit),
                grid(throughput),
            ),
            _table(
                f"Client CPU per operation, µs (ratio to {baseline}; <1 is cheaper)",
                head(lambda s: "µs/" + SCENARIOS[s].op),
                grid(cpu),
            ),
            _table(
                "Peak RSS of the client process, MiB (VmHWM; a fresh process each time)",
                head(lambda s: "MiB"),
                grid(lambda key, ok: f"{median(ok, 'peak_rss_mib'):.1f}"),
            ),
            _table(
                "Server CPU during the timed section, % of one core (near 100: server-bound)",
                head(lambda s: "%"),
                grid(lambda key, ok: f"{median(ok, 'server_cpu_pct'):.0f}"),
            ),
            "^ = stopped at --max-seconds; the rate is over the operations that completed"
            " (0^: none did). [2 of 3] = medians over the rounds that gave a figure; the"
            " records say what the others did."
            if any(r.get("capped") or r["status"] == "nothing done" for r in done)
            else "",
        ]
    ).strip()
