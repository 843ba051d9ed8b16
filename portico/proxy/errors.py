"""The one place that turns failures into HTTP statuses and error pages (DESIGN rule 3).

Statuses follow httpd's mod_proxy (reference §5.3): a refused or failed connect is 503, a
timeout waiting for the response head is 502 (not 504), a malformed response is 502, an
exhausted pool is 503, an unknown scheme is 500.
"""

from __future__ import annotations

__all__ = [
    "REASONS",
    "error_page",
    "reason",
    "status_for_upstream",
]

import html
from collections.abc import Mapping

from portico import SERVER_SOFTWARE
from portico.errors import UpstreamError, UpstreamErrorKind

REASONS: Mapping[int, str] = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    417: "Expectation Failed", 421: "Misdirected Request", 422: "Unprocessable Content",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

_STATUS_FOR_KIND: Mapping[UpstreamErrorKind, int] = {
    UpstreamErrorKind.CONNECT: 503,
    UpstreamErrorKind.CONNECT_TIMEOUT: 503,
    UpstreamErrorKind.DNS: 500,
    UpstreamErrorKind.POOL_EXHAUSTED: 503,
    UpstreamErrorKind.TIMEOUT: 502,
    UpstreamErrorKind.BAD_RESPONSE: 502,
    UpstreamErrorKind.CLOSED: 502,
    UpstreamErrorKind.NO_HANDLER: 500,
    UpstreamErrorKind.TLS_VERIFY: 502,
}

_EXPLANATIONS: Mapping[int, str] = {
    400: "The request could not be understood by this server.",
    403: "You are not allowed to access this resource.",
    404: "The requested URL was not found on this server.",
    405: "This method is not allowed for the requested URL.",
    413: "The request body is larger than this server accepts.",
    414: "The request line is longer than this server accepts.",
    417: "The expectation given in the Expect header cannot be met.",
    431: "The request headers are larger than this server accepts.",
    500: "The server met an internal problem and could not complete the request.",
    501: "The request method or encoding is not supported by this server.",
    502: "The proxy received an invalid response from the server behind it.",
    503: "The server behind this proxy is unavailable right now. Please try again later.",
    504: "The server behind this proxy did not answer in time.",
    505: "This HTTP version is not supported.",
}


def reason(status: int) -> str:
    return REASONS.get(status, "Unknown")


def status_for_upstream(error: UpstreamError) -> int:
    return _STATUS_FOR_KIND[error.kind]


def error_page(status: int, detail: str | None = None, proxy_error: bool = False) -> bytes:
    """A small HTML page for a locally generated error; ``detail`` is escaped."""
    title = f"{status} {'Proxy Error' if proxy_error else reason(status)}"
    text = _EXPLANATIONS.get(status, reason(status))
    extra = f"<p>Reason: <strong>{html.escape(detail)}</strong></p>\n" if detail else ""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head>\n<body>\n<h1>{html.escape(reason(status))}</h1>\n"
        f"<p>{text}</p>\n{extra}<hr>\n<address>{SERVER_SOFTWARE}</address>\n"
        "</body></html>\n"
    ).encode()
