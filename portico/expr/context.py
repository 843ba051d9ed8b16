"""What an expression is evaluated against: one health-check response (or request)."""

from __future__ import annotations

__all__ = ["EvalContext"]

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class EvalContext:
    """The facts an expression may read. Evaluation never changes them.

    ``status`` is the response status (``%{REQUEST_STATUS}``), ``headers`` the response
    headers (looked up case-insensitively whatever the mapping's own rule), ``body`` the
    response body (``hc('body')``; bytes are read as UTF-8, invalid bytes kept as surrogate
    escapes so any byte survives), ``method``/``uri`` the request that was sent (``uri`` may
    carry a query; ``%{REQUEST_URI}`` is the part before ``?``), ``variables`` extra names
    read by ``%{env:X}``, ``env('X')`` and the pass-through variables (REMOTE_ADDR, ...).

    The lowered header index and the decoded body are built on first use and kept, so one
    context can be evaluated by several expressions cheaply.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    body: bytes | str = b""
    method: str = "GET"
    uri: str = "/"
    variables: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # Set when ``headers`` are a request's and the response is known too (an access log's
    # expr=): resp() reads these then.
    response_headers: Mapping[str, str] | None = None
    _lowered: dict[str, str] | None = field(default=None, init=False, repr=False,
                                            compare=False)
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str:
        """The response header ``name`` (any case), or "" when absent."""
        lowered = self._lowered
        if lowered is None:
            lowered = {key.lower(): value for key, value in self.headers.items()}
            self._lowered = lowered
        return lowered.get(name.lower(), "")

    def response_header(self, name: str) -> str:
        """The response header ``name`` (any case): from ``response_headers`` when set."""
        response = self.response_headers
        if response is None:
            return self.header(name)
        name = name.lower()
        for key, value in response.items():
            if key.lower() == name:
                return value
        return ""

    def body_text(self) -> str:
        """The body as text (decoded once)."""
        text = self._text
        if text is None:
            body = self.body
            text = body if isinstance(body, str) else body.decode("utf-8", "surrogateescape")
            self._text = text
        return text

    def variable(self, name: str) -> str:
        """An entry of ``variables``, or "" when absent."""
        return self.variables.get(name, "")
