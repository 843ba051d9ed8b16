"""Summaries of benchmark runs: medians, paired ratios, console and markdown tables, JSON.

Ratios are paired: for each rep, target A's req/s is divided by target B's from the same rep
and (body, conns) cell — those ran back to back, so they saw the same noise — and the
median of those per-rep ratios is reported.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wrkload import WrkResult


@dataclass(frozen=True)
class Run:
    """One measured wrk run of one target; `result` is None when it failed (see `error`)."""

    rep: int
    body: str
    conns: int
    target: str
    result: WrkResult | None
    cpu_s: float | None = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """A flat dict for the results file (the WrkResult fields inlined)."""
        out: dict[str, Any] = {
            "rep": self.rep,
            "body": self.body,
            "conns": self.conns,
            "target": self.target,
            "error": self.error,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
        }
        if self.result is not None:
            out.update(asdict(self.result))
            out["rps"] = round(self.result.rps, 1)
        return out


@dataclass(frozen=True)
class Cell:
    """The median figures of one target in one (body, conns) cell over its good reps."""

    body: str
    conns: int
    target: str
    reps: int
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    cpu_us_per_req: float | None
    cpu_busy: float | None
    http_errors: int
    socket_errors: int
    failed_runs: int
    vs_nginx: float | None
    vs_direct: float | None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _paired_ratio(runs: list[Run], target: str, base: str) -> float | None:
    """Median over reps of rps(target)/rps(base), using only reps where both succeeded."""
    by_rep: dict[tuple[str, int], float] = {}
    for r in runs:
        if r.result is not None and r.result.rps > 0:
            by_rep[(r.target, r.rep)] = r.result.rps
    reps = {rep for (_, rep) in by_rep}
    ratios = [
        by_rep[(target, rep)] / by_rep[(base, rep)]
        for rep in sorted(reps)
        if (target, rep) in by_rep and (base, rep) in by_rep
    ]
    return _median(ratios)


def summarize(runs: list[Run], targets: list[str]) -> list[Cell]:
    """One Cell per (body, conns, target), in the order the cells were first run."""
    cells: list[Cell] = []
    keys = list(dict.fromkeys((r.body, r.conns) for r in runs))
    for body, conns in keys:
        in_cell = [r for r in runs if r.body == body and r.conns == conns]
        for target in targets:
            mine = [r for r in in_cell if r.target == target]
            if not mine:
                continue
            good = [r.result for r in mine if r.result is not None]
            cpu = [
                r.cpu_s / r.result.requests * 1e6
                for r in mine
                if r.result is not None and r.cpu_s is not None and r.result.requests
            ]
            busy = [
                r.cpu_s / (r.result.duration_us / 1e6)
                for r in mine
                if r.result is not None and r.cpu_s is not None and r.result.duration_us
            ]
            cells.append(
                Cell(
                    body=body,
                    conns=conns,
                    target=target,
                    reps=len(good),
                    rps=_median([g.rps for g in good]),
                    p50_ms=_median([g.p50_us / 1000 for g in good]),
                    p99_ms=_median([g.p99_us / 1000 for g in good]),
                    cpu_us_per_req=_median(cpu),
                    cpu_busy=_median(busy),
                    http_errors=sum(g.err_status for g in good),
                    socket_errors=sum(g.socket_errors for g in good),
                    failed_runs=len(mine) - len(good),
                    vs_nginx=_paired_ratio(in_cell, target, "nginx"),
                    vs_direct=_paired_ratio(in_cell, target, "direct"),
                )
            )
    return cells


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row(c: Cell) -> list[str]:
    errors = f"{c.http_errors}/{c.socket_errors}"
    if c.failed_runs:
        errors += f" ({c.failed_runs} failed)"
    return [
        c.target,
        _fmt(c.rps, ",.0f"),
        _fmt(c.p50_ms, ".2f"),
        _fmt(c.p99_ms, ".2f"),
        _fmt(c.cpu_us_per_req, ".1f"),
        _fmt(None if c.cpu_busy is None else c.cpu_busy * 100, ".0f"),
        errors,
        _fmt(c.vs_nginx, ".2f"),
        _fmt(c.vs_direct, ".2f"),
    ]


_HEADER = [
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "CPU us/req",
    "CPU %",
    "err http/sock",
    "/nginx",
    "/direct",
]


def console_tables(cells: list[Cell], bodies: dict[str, int]) -> str:
    """A fixed-width table per (body, conns) cell for the terminal."""
    out: list[str] = []
    for body, conns in dict.fromkeys((c.body, c.conns) for c in cells):
        rows = [_HEADER] + [_row(c) for c in cells if (c.body, c.conns) == (body, conns)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
        out.append(f"\n{body} body ({bodies.get(body, 0):,} B), {conns} connections")
        for r in rows:
            right = [v.rjust(w) for v, w in zip(r[1:], widths[1:], strict=True)]
            cols = [r[0].ljust(widths[0]), *right]
            out.append("  " + "  ".join(cols))
    return "\n".join(out)


def markdown_table(cells: list[Cell]) -> str:
    """All cells as one markdown table, ready to paste into a README."""
    head = ["body", "conns", *_HEADER]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for c in cells:
        lines.append("| " + " | ".join([c.body, str(c.conns), *_row(c)]) + " |")
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], runs: list[Run], cells: list[Cell]) -> None:
    """Write everything (run settings, every run, the summary) to `path` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": meta,
        "runs": [r.to_json() for r in runs],
        "summary": [asdict(c) for c in cells],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
