"""Feeding helpers shared by the codec tests: whole, byte by byte, and split at a point."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from portico.protocols.events import Data, Event


def merge_data(events: list[Event]) -> list[Event]:
    """Adjacent ``Data`` events joined, so differently split feeds compare equal."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def pieces(data: bytes, how: str | int) -> Iterator[bytes]:
    """``data`` cut up: ``"whole"``, ``"bytes"`` (one at a time) or split at an index."""
    if how == "whole":
        yield data
    elif how == "bytes":
        for i in range(len(data)):
            yield data[i:i + 1]
    else:
        assert isinstance(how, int)
        yield data[:how]
        yield data[how:]


def feed_pieces(feed: Callable[[bytes], list[Event]], data: bytes,
                how: str | int) -> list[Event]:
    """All events from feeding ``data`` cut up as ``how`` says, Data merged."""
    events: list[Event] = []
    for piece in pieces(data, how):
        events += feed(piece)
    return merge_data(events)


def every_split(data: bytes) -> list[str | int]:
    """Whole, byte by byte, and split at every position."""
    return ["whole", "bytes", *range(1, len(data))]
