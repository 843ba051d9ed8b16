"""Per-message cost of the HTTP/1.1 codecs (portico/protocols/http1.py), without sockets.

Times, best of several ``timeit`` repetitions, the request parser on a small keep-alive GET,
the response parser (``start`` + ``feed``) on a small Content-Length response, and the
response parser on a 64 KiB body arriving in 16 KiB reads. Pin it to one core:

    taskset -c 0 .venv/bin/python bench/codecs.py [--number N]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portico.protocols.http1 import RequestParser, ResponseParser

REQUEST = (b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: Tue, 24 Nov 2026 04:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
BIG_HEAD = (b"HTTP/1.1 200 OK\r\nServer: origin\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 65536\r\n\r\n")
BIG_READS = [b"y" * 16384] * 4


def _best(fn, number: int) -> float:
    """Microseconds per call, best of seven repetitions."""
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def main() -> None:
    """Print one line per measured case."""
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--number", type=int, default=50000, help="calls per repetition")
    number = args.parse_args().number

    request_parser = RequestParser()
    response_parser = ResponseParser()
    big_parser = ResponseParser()

    def response() -> None:
        response_parser.start(b"GET")
        response_parser.feed(RESPONSE)

    def big_response() -> None:
        big_parser.start(b"GET")
        big_parser.feed(BIG_HEAD)
        for read in BIG_READS:
            big_parser.feed(read)

    figures = {
        "request feed (GET, 3 fields)": _best(lambda: request_parser.feed(REQUEST), number),
        "response start+feed (4 fields, 100 B)": _best(response, number),
        "response 64 KiB body in 4 reads": _best(big_response, number // 4),
    }
    for name, micros in figures.items():
        print(f"{name:42s} {micros:7.2f} us")


if __name__ == "__main__":
    main()
