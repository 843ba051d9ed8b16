"""A small strict parser of the Prometheus text exposition format 0.0.4, for tests.

Strict on what portico promises: every sample belongs to a family announced by one HELP and
one TYPE line before it, names and label names are valid, label values use only the three
escapes, values are numbers, no family appears twice. A histogram family's samples are
``<family>_bucket`` (with an ``le`` label, ascending, ending with ``+Inf``, cumulative counts
that never decrease), ``<family>_sum`` and ``<family>_count`` (equal to the ``+Inf``
bucket), for every label set. Any violation is an AssertionError.
"""

from __future__ import annotations

import math
import re

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def parse(text: str) -> tuple[dict[str, str], list[Sample]]:
    """(family name → type, samples as (name, sorted labels, value))."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: list[Sample] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        assert line, f"line {number}: empty line"
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            assert _NAME.fullmatch(name) and name not in helps, f"line {number}: {line}"
            helps.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            parts = line[7:].split(" ")
            assert len(parts) == 2 and parts[1] in _TYPES, f"line {number}: {line}"
            assert parts[0] == current and parts[0] not in types, f"line {number}: {line}"
            types[parts[0]] = parts[1]
            continue
        assert not line.startswith("#"), f"line {number}: stray comment {line!r}"
        name, labels, rest = _sample(line, number)
        family = name
        if current is not None and types.get(current) == "histogram":
            suffix = name[len(current):]
            assert name.startswith(current) and suffix in _HISTOGRAM_SUFFIXES, (
                f"line {number}: {name} is not a sample of histogram {current}")
            family = current
        assert family == current and family in types, (
            f"line {number}: {name} outside its family")
        key = (name, labels)
        assert key not in seen, f"line {number}: duplicate sample {line!r}"
        seen.add(key)
        samples.append((name, labels, _number(rest, number)))
    for family, kind in types.items():
        if kind == "histogram":
            _check_histogram(family, samples)
    return types, samples


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _check_histogram(family: str, samples: list[Sample]) -> None:
    """Buckets ascend in ``le`` to +Inf with non-decreasing counts; _count is the +Inf one."""
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    sums: set[tuple[tuple[str, str], ...]] = set()
    for name, labels, v in samples:
        if name == family + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels).get("le")
            assert le is not None, f"{name} without le: {labels}"
            buckets.setdefault(rest, []).append((_number(le, 0), v))
        elif name == family + "_count":
            counts[labels] = v
        elif name == family + "_sum":
            sums.add(labels)
    assert buckets and set(buckets) == set(counts) == sums, f"{family}: incomplete series"
    for rest, series in buckets.items():
        bounds = [b for b, _ in series]
        values = [c for _, c in series]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), (family, rest)
        assert bounds[-1] == math.inf, f"{family}{rest}: no +Inf bucket"
        assert values == sorted(values), f"{family}{rest}: buckets are not cumulative"
        assert values[-1] == counts[rest], f"{family}{rest}: _count differs from +Inf"


def _sample(line: str, number: int) -> tuple[str, tuple[tuple[str, str], ...], str]:
    m = _NAME.match(line)
    assert m, f"line {number}: no metric name in {line!r}"
    name, pos = m.group(), m.end()
    labels: list[tuple[str, str]] = []
    if line[pos:pos + 1] == "{":
        pos += 1
        while line[pos] != "}":
            lm = _LABEL.match(line, pos)
            assert lm, f"line {number}: bad label at {line[pos:]!r}"
            value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                           lm.group(2))
            labels.append((lm.group(1), value))
            pos = lm.end()
            if line[pos] == ",":
                pos += 1
        pos += 1
    assert line[pos:pos + 1] == " ", f"line {number}: no space before the value"
    return name, tuple(sorted(labels)), line[pos + 1:]


def _number(text: str, number: int) -> float:
    assert " " not in text, f"line {number}: timestamps are not expected: {text!r}"
    if text in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[text]
    return float(text)


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    hits = [v for n, ls, v in samples if n == name and labels.items() <= dict(ls).items()]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]
