"""Per-request cost of the proxy policy stages, each timed alone: a quick, low-noise figure.

Times ``parse_target``, ``Router.route``, ``max_forwards_action``, ``build_request_head`` and
``build_response_head`` for the request of bench/hotpath.py (GET, Host, User-Agent, Accept)
routed by a single ``ProxyPass / http://...`` and a four-header 200 response. The machine is
shared: pin it to one core and read the best of many short rounds, which is what it prints.

    taskset -c 0 .venv/bin/python bench/policy.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from portico.config.load import load_config  # noqa: E402
from portico.protocols.http1 import RequestParser, ResponseParser  # noqa: E402
from portico.proxy.headers import (  # noqa: E402
    BackendRequest,
    ResponseFraming,
    build_request_head,
    build_response_head,
    max_forwards_action,
)
from portico.proxy.routing import Router  # noqa: E402
from portico.proxy.uri import parse_target  # noqa: E402

REQUEST = (b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: Tue, 24 Nov 2026 04:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n")


def best(fn: Callable[[], object], rounds: int, number: int = 2000) -> float:
    """Microseconds per call: the fastest of ``rounds`` rounds of ``number`` calls."""
    timer = timeit.Timer(fn)
    return min(timer.timeit(number) for _ in range(rounds)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="portico-policy-") as tmp:
        conf = Path(tmp, "policy.conf")
        conf.write_text(f"Listen 127.0.0.1:8080\nErrorLog {tmp}/error.log\n"
                        "ProxyPass / http://127.0.0.1:9/\n")
        config = load_config(str(conf))
    vhost = config.main
    settings = vhost.settings
    router = Router(vhost, config.workers)
    head = RequestParser().feed(REQUEST)[0]
    response = ResponseParser()
    response.start(b"GET")
    rhead = response.feed(RESPONSE)[0]
    target = parse_target(head.target, settings.allow_encoded_slashes)
    backend = BackendRequest(b"GET", b"/small", b"127.0.0.1:9", "127.0.0.1", "localhost", "")
    stages: dict[str, Callable[[], object]] = {
        "parse_target": lambda: parse_target(head.target, settings.allow_encoded_slashes),
        "router.route": lambda: router.route(target, ()),
        "max_forwards_action": lambda: max_forwards_action(head.headers, head.method,
                                                           settings.max_forwards),
        "build_request_head": lambda: build_request_head(backend, head.headers, settings),
        "build_response_head": lambda: build_response_head(
            rhead.status, rhead.reason, rhead.headers, framing=ResponseFraming.LENGTH,
            content_length=100, keep_alive=True, client_version=b"1.1", settings=settings,
            via_name="", mapper=None, base_url=""),
    }
    for name, fn in stages.items():
        print(f"{name:24s} {best(fn, rounds):6.2f} us")


if __name__ == "__main__":
    main()
