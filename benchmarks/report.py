"""Tables from the JSON records of a run: medians, and ratios paired by round.

A ratio compares a client with the baseline client on the same backend, in
the same scenario, *in the same round*: the two measurements ran minutes
apart at most, under the same background load. The table shows the median
of those per-round ratios, which survives a noisy machine far better than a
ratio of two medians, let alone of two runs. A scenario that the baseline
client can't run (the HTTP/2 ones, for h11raw) takes its ratios against its
own ``baseline`` (httpx), and its column says so.

The TLS scenarios get tables of their own, after the others, with one more:
the protocol each client spoke and the connections it had open. A throughput
cell whose client spoke another protocol than its scenario's (an anysoup
without HTTP/2 in an ``h2*`` column) carries that protocol in brackets.

When ``seq`` and a ``cache_hit*`` scenario ran, one more table sets each
client's CPU per cache hit beside its CPU per round trip to the server
(``seq``), with their ratio, paired by round as above.
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


def _baselines(runs: dict[Key, dict[int, Record]], baseline: str) -> dict[str, str]:
    """{scenario: the client its ratios are taken against}."""
    ran = {s for c, _, s in runs if c == baseline}
    return {
        s: baseline if s in ran or not SCENARIOS[s].baseline else SCENARIOS[s].baseline
        for s in SCENARIOS
    }


def _protocol(versions: Iterable[str]) -> str:
    """``h2``, ``h1`` (1.1), ``h1.0``, or several joined by ``+``."""
    names = {"2": "h2", "1.1": "h1"}
    return "+".join(names.get(v, f"h{v}") for v in sorted(versions))


def spoken(record: Record) -> str:
    """The protocol a run's responses came in, and its open connections: ``h2, 1 conn``."""
    n = record.get("connections", "?")
    conns = f"{n} conn" + ("" if n == 1 else "s")
    protocols = _protocol(record.get("protocols", []))
    return f"{protocols}, {conns}" if protocols else conns


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
    """The tables for ``records``, with ratios against ``baseline``: TCP first, then TLS."""
    done = [r for r in records if r.get("type") == "run"]
    present = [s for s in SCENARIOS if any(r["scenario"] == s for r in done)]
    groups = [
        ("", [s for s in present if not SCENARIOS[s].tls]),
        ("TLS: ", [s for s in present if SCENARIOS[s].tls]),
    ]
    return "\n\n".join(
        _render_group(done, scenarios, baseline, prefix)
        for prefix, scenarios in groups
        if scenarios
    )


class _Group:
    """The records of one group of scenarios, and the cells of its tables."""

    def __init__(self, done: list[Record], scenarios: list[str], baseline: str) -> None:
        self.done = [r for r in done if r["scenario"] in scenarios]
        self.scenarios = scenarios
        self.baseline = baseline
        self.runs = _ok_runs(self.done)
        #: {scenario: the client its ratios are taken against}
        self.bases = _baselines(self.runs, baseline)
        self.statuses: dict[Key, list[str]] = defaultdict(list)
        for r in self.done:
            self.statuses[_key(r)].append(r["status"])
        pairs = {(r["client"], r["backend"]) for r in self.done}
        self.rows = [(c, b) for c in ADAPTERS for b in BACKENDS if (c, b) in pairs]

    def grid(
        self, cell: Callable[[Key, list[Record]], str], scenarios: list[str] | None = None
    ) -> list[list[str]]:
        """One row per (client, backend): ``cell`` of its successful runs, or why none."""
        out = []
        for client, backend in self.rows:
            line = [client, backend]
            for s in scenarios or self.scenarios:
                key = (client, backend, s)
                ok = list(self.runs[key].values()) if key in self.runs else []
                line.append(cell(key, ok) if ok else _failure(self.statuses[key]))
            out.append(line)
        return out

    def head(self, label: Callable[[str], str], scenarios: list[str] | None = None) -> list[str]:
        """The column names: ``scenario label``."""
        return ["client", "backend", *(f"{s} {label(s)}" for s in scenarios or self.scenarios)]

    def versus_seq(self, key: Key, ok: list[Record]) -> str:
        """``seq's µs/req / this scenario's µs/req = ratio``, the ratio paired by round."""
        field = "client_cpu_us_per_op"
        seq = self.runs.get((key[0], key[1], "seq"), {})
        ratios = [seq[n][field] / r[field] for n, r in self.runs[key].items() if n in seq]
        if not ratios:
            return "no seq"
        seq_us = _median(list(seq.values()), field)
        ratio = statistics.median(ratios)
        return f"{_num(seq_us)} / {_num(_median(ok, field))} = {ratio:.1f}x"

    def ratios_to(self) -> str:
        """What the ratios are taken against: ``h11raw; h2seq, h2large: httpx``."""
        others: dict[str, list[str]] = defaultdict(list)
        for s in self.scenarios:
            if self.bases[s] != self.baseline:
                others[self.bases[s]].append(s)
        return "; ".join([self.baseline, *(f"{', '.join(v)}: {k}" for k, v in others.items())])

    def off_protocol(self, key: Key) -> str:
        """`` [h1]`` when the runs of ``key`` spoke another protocol than their scenario's."""
        used = {v for r in self.runs.get(key, {}).values() for v in r.get("protocols", [])}
        return f" [{_protocol(used)}]" if used and used != {SCENARIOS[key[2]].protocol} else ""

    def with_ratio(self, key: Key, text: str, field: str) -> str:
        """``text (0.85x)``; ``text [h1]`` and no ratio when a protocol isn't the scenario's."""
        base = (self.bases[key[2]], *key[1:])
        if self.off_protocol(key) or self.off_protocol(base):
            return text + self.off_protocol(key)
        ratio = _paired_ratio(self.runs, key, base[0], field) if key != base else None
        if ratio is None:
            return text
        return f"{text} ({ratio:.2f}x)" if ratio >= 0.1 else f"{text} ({ratio:.2g}x)"

    def throughput(self, key: Key, ok: list[Record]) -> str:
        """The median rate, ``^`` if capped, ``[2 of 3]`` if rounds failed, and the ratio."""
        capped = "^" if any(r["capped"] for r in ok) else ""
        missing = len(self.statuses[key]) - len(ok)
        partial = f" [{len(ok)} of {len(self.statuses[key])}]" if missing else ""
        return self.with_ratio(key, _num(_median(ok, "value")) + capped + partial, "value")

    def cpu(self, key: Key, ok: list[Record]) -> str:
        """The median client CPU per operation, and the ratio."""
        field = "client_cpu_us_per_op"
        return self.with_ratio(key, _num(_median(ok, field)), field)


def _median(ok: list[Record], field: str) -> float:
    return float(statistics.median(r[field] for r in ok))


def _render_group(done: list[Record], scenarios: list[str], baseline: str, prefix: str) -> str:
    """The tables of one group of scenarios; ``prefix`` starts their titles."""
    g = _Group(done, scenarios, baseline)
    rounds = max((r["round"] for r in g.done), default=0)
    tables = [
        _table(
            f"{prefix}Throughput, median of {rounds} round(s) (ratio to {g.ratios_to()};"
            " paired by round; >1 is faster)",
            g.head(lambda s: SCENARIOS[s].unit),
            g.grid(g.throughput),
        ),
        _table(
            f"{prefix}Client CPU per operation, µs (ratio to {g.ratios_to()}; <1 is cheaper)",
            g.head(lambda s: "µs/" + SCENARIOS[s].op),
            g.grid(g.cpu),
        ),
        _table(
            f"{prefix}Peak RSS of the client process, MiB (VmHWM; a fresh process each time)",
            g.head(lambda s: "MiB"),
            g.grid(lambda key, ok: f"{_median(ok, 'peak_rss_mib'):.1f}"),
        ),
        _table(
            f"{prefix}Server CPU during the timed section, % of one core (near 100: server-bound)",
            g.head(lambda s: "%"),
            g.grid(lambda key, ok: f"{_median(ok, 'server_cpu_pct'):.0f}"),
        ),
    ]
    hits = [s for s in g.scenarios if s.startswith("cache_hit")]
    if hits and "seq" in g.scenarios:
        tables.append(
            _table(
                f"{prefix}Cache hit vs round trip: client CPU per request of seq / of the"
                " hit, µs (seq over hit, paired by round; >1: the hit is cheaper)",
                g.head(lambda s: "seq/hit", hits),
                g.grid(g.versus_seq, hits),
            )
        )
    if prefix:  # the TLS group: what was spoken, on how many connections
        tables.append(
            _table(
                f"{prefix}Protocol spoken, and connections open at the end of the timed section",
                g.head(lambda s: f"(pool {SCENARIOS[s].limit})"),
                g.grid(lambda key, ok: " / ".join(sorted({spoken(r) for r in ok}))),
            )
        )
    notes = []
    if any(r.get("capped") or r["status"] == "nothing done" for r in g.done):
        notes.append(
            "^ = stopped at --max-seconds; the rate is over the operations that completed"
            " (0^: none did). [2 of 3] = medians over the rounds that gave a figure; the"
            " records say what the others did."
        )
    if any(g.off_protocol(key) for key in g.runs):
        notes.append(
            "[h1] = the client spoke that protocol, not the scenario's: the figure can't be"
            " compared with its column's, and no ratio is given."
        )
    return "\n\n".join([*tables, *notes])
