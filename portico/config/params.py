"""``key=value`` parameters: workers (ProxyPass, ProxySet, BalancerMember: §6.2) and
balancers (ProxyPass/ProxySet/<Proxy> on a ``balancer://`` URL: §7.1).

One schema entry per key states its type, unit and range; ``parse_worker_params`` and
``parse_balancer_params`` apply them. Keys and On/Off values are case-insensitive (lbmethod
names are not, as in httpd). Durations end up as float seconds.
"""

from __future__ import annotations

__all__ = [
    "BALANCER_KEYS",
    "LBMETHODS",
    "STATUS_FLAGS",
    "WORKER_KEYS",
    "parse_balancer_params",
    "parse_status",
    "parse_worker_params",
]

import dataclasses
import functools
import importlib.metadata
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

from portico.config.model import BalancerParams, Source, WorkerParams
from portico.config.values import parse_duration, parse_flag, parse_int, parse_seconds_int
from portico.errors import ConfigError

#: The status letters a config may set or clear (§6.3).
STATUS_FLAGS = "DSIRHENC"

_INT32_MAX = 2**31 - 1
_HCMETHODS = ("NONE", "TCP", "OPTIONS", "HEAD", "GET", "OPTIONS11", "HEAD11", "GET11")

# A parser takes the raw value and returns {field: value}; ValueError says what is wrong.
_Parser = Callable[[str], dict[str, object]]


def _int_field(name: str, low: int, high: int | None = None) -> _Parser:
    return lambda raw: {name: parse_int(raw, low, high)}


def _seconds_field(name: str, low: int) -> _Parser:
    return lambda raw: {name: parse_seconds_int(raw, low)}


def _duration_field(name: str, unit: str, minimum: float) -> _Parser:
    def parse(raw: str) -> dict[str, object]:
        value = parse_duration(raw, unit)
        if value < minimum:
            raise ValueError(f"must be at least {_format_seconds(minimum)}")
        return {name: value}
    return parse


def _format_seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def _flag_field(name: str, invert: bool = False) -> _Parser:
    return lambda raw: {name: parse_flag(raw) != invert}


def _text_field(name: str, limit: int) -> _Parser:
    def parse(raw: str) -> dict[str, object]:
        if len(raw) >= limit:
            raise ValueError(f"must be shorter than {limit} characters")
        return {name: raw}
    return parse


def _buffer_field(name: str, zero_means: int | None, minimum: int) -> _Parser:
    def parse(raw: str) -> dict[str, object]:
        value = parse_int(raw, 0)
        if value == 0:
            return {name: zero_means if zero_means is not None else 0}
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, or 0 for the default")
        return {name: value}
    return parse


def _choice_field(name: str, choices: Sequence[str], upper: bool = False) -> _Parser:
    def parse(raw: str) -> dict[str, object]:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return {name: value}
    return parse


def _loadfactor(raw: str) -> dict[str, object]:
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {raw!r}") from None
    scaled = int(number * 100)  # httpd truncates to two decimals
    if not 100 <= scaled <= 10000:
        raise ValueError("must be between 1 and 100")
    return {"loadfactor": scaled}


def _flushwait(raw: str) -> dict[str, object]:
    value = parse_int(raw, 0, 1000)
    return {"flushwait": (value or 10) / 1000}


def _upgrade(raw: str) -> dict[str, object]:
    if len(raw) >= 16:
        raise ValueError("must be shorter than 16 characters")
    return {"upgrade": "*" if raw.upper() == "ANY" else raw}


def _addressttl(raw: str) -> dict[str, object]:
    if raw.strip() == "-1":
        return {"addressttl": -1.0}
    value = parse_duration(raw, "s")
    if value < 0 or value > _INT32_MAX or value != int(value):
        raise ValueError("must be -1 or whole seconds up to 2147483647")
    return {"addressttl": value}


def _hcmethod(raw: str) -> dict[str, object]:
    value = raw.upper()
    if value in ("CPING", "PROVIDER"):
        raise ValueError(f"{raw} is not (yet) implemented")
    if value not in _HCMETHODS:
        raise ValueError(f"must be one of {', '.join(_HCMETHODS)}")
    return {"hcmethod": value}


def _mapping(raw: str) -> dict[str, object]:
    value = raw.lower()
    if value not in ("encoded", "servlet"):
        raise ValueError("must be encoded or servlet")
    return {"mapping": value}


WORKER_KEYS: dict[str, _Parser] = {
    "min": _int_field("min", 0),
    "max": _int_field("max", 0),
    "smax": _int_field("smax", 0),
    "acquire": _duration_field("acquire", "ms", 0.001),
    "connectiontimeout": _duration_field("connectiontimeout", "s", 0.001),
    "timeout": _seconds_field("timeout", 1),
    "ttl": _seconds_field("ttl", 1),
    "disablereuse": _flag_field("enablereuse", invert=True),
    "enablereuse": _flag_field("enablereuse"),
    "keepalive": _flag_field("keepalive"),
    "flushpackets": _choice_field("flushpackets", ("on", "off", "auto")),
    "flushwait": _flushwait,
    "iobuffersize": _buffer_field("iobuffersize", 8192, 512),
    "receivebuffersize": _buffer_field("receivebuffersize", None, 512),
    "responsefieldsize": _buffer_field("responsefieldsize", 8192, 1),
    "lbset": _int_field("lbset", 0, 99),
    "loadfactor": _loadfactor,
    "ping": _duration_field("ping", "s", 0.001),
    "retry": _seconds_field("retry", 0),
    "route": _text_field("route", 64),
    "redirect": _text_field("redirect", 64),
    "secret": _text_field("secret", 64),
    "upgrade": _upgrade,
    "mapping": _mapping,
    "addressttl": _addressttl,
    "flusher": _text_field("flusher", 16),
    "hcmethod": _hcmethod,
    "hcuri": _text_field("hcuri", 64),
    "hcinterval": _duration_field("hcinterval", "s", 0.1),
    "hcslowstart": _duration_field("hcslowstart", "s", 0),
    "hcpasses": _int_field("hcpasses", 0),
    "hcfails": _int_field("hcfails", 0),
    "hcexpr": _text_field("hcexpr", 16),
    "hctemplate": _text_field("hctemplate", 1 << 16),
}


def parse_status(raw: str, set_flags: str = "", clear_flags: str = "") -> tuple[str, str]:
    """Apply a ``status=`` value to (set, clear) letter strings and return the new pair.

    ``+``/``-`` switch the mode for every following letter (default: set); letters are
    case-insensitive; a letter both set and cleared ends up as the last word said.
    """
    to_set = list(set_flags)
    to_clear = list(clear_flags)
    adding = True
    for char in raw:
        if char == "+":
            adding = True
            continue
        if char == "-":
            adding = False
            continue
        letter = char.upper()
        if letter not in STATUS_FLAGS:
            raise ValueError(f"unknown status flag {char!r} (known: {', '.join(STATUS_FLAGS)})")
        gain, lose = (to_set, to_clear) if adding else (to_clear, to_set)
        if letter in lose:
            lose.remove(letter)
        if letter not in gain:
            gain.append(letter)
    return "".join(to_set), "".join(to_clear)


def parse_worker_params(
    pairs: Sequence[tuple[str, str]], source: Source, base: WorkerParams | None = None,
) -> WorkerParams:
    """Build WorkerParams from ``(key, value)`` pairs on top of ``base`` (defaults if None).

    Raises ConfigError located at ``source`` (without a directive name; the loader adds the
    directive) for an unknown key or a value out of its range. ``explicit`` gains every key
    given, lowercased.
    """
    params = base or WorkerParams()
    changes: dict[str, object] = {}
    explicit = set(params.explicit)
    status_set, status_clear = params.status_set, params.status_clear
    for key, value in pairs:
        lowered = key.lower()
        try:
            if lowered == "status":
                status_set, status_clear = parse_status(value, status_set, status_clear)
            elif lowered in WORKER_KEYS:
                changes.update(WORKER_KEYS[lowered](value))
            else:
                raise ConfigError(f"unknown Worker parameter {key!r}", source.file, source.line)
        except ValueError as exc:
            raise ConfigError(f"worker parameter {key}={value}: {exc}", source.file,
                              source.line) from None
        explicit.add(lowered)
    return dataclasses.replace(params, **changes, status_set=status_set,
                               status_clear=status_clear, explicit=frozenset(explicit))


# -- balancer parameters (§7.1) -----------------------------------------------------------------

#: The lbmethod names a config may use. The one place that lists them: the runtime's lbmethod
#: registry must provide each (third-party methods are added here when they are registered).
LBMETHODS: frozenset[str] = frozenset({"byrequests", "bytraffic", "bybusyness", "p2c"})


@functools.cache
def _plugin_lbmethods() -> frozenset[str]:
    """lbmethods third parties publish (entry point group ``portico.lbmethods``)."""
    return frozenset(ep.name for ep in importlib.metadata.entry_points(group="portico.lbmethods"))

_NAME_LIMIT = 64      # httpd's sticky session and nonce buffers
_NONCE_LIMIT = 36


def _lbmethod(raw: str) -> dict[str, object]:
    # httpd looks the provider up by exact name: "ByTraffic" is an unknown lbmethod.
    if raw not in LBMETHODS and raw not in _plugin_lbmethods():
        known = sorted(LBMETHODS | _plugin_lbmethods())
        raise ValueError(f"unknown lbmethod (known: {', '.join(known)})")
    return {"lbmethod": raw}


def _stickysession(raw: str) -> dict[str, object]:
    cookie, bar, url = raw.partition("|")
    if not bar:
        url = cookie
    for name in (cookie, url):
        if len(name) >= _NAME_LIMIT:
            raise ValueError(f"each name must be shorter than {_NAME_LIMIT} characters")
    return {"stickysession": cookie, "stickysession_url": url}


def _stickysessionsep(raw: str) -> dict[str, object]:
    if raw.lower() == "off":
        return {"stickysessionsep": None}
    if len(raw) != 1:
        raise ValueError("must be a single character or Off")
    return {"stickysessionsep": raw}


def _balancer_timeout(raw: str) -> dict[str, object]:
    value = parse_duration(raw, "s")
    if value < 1:
        raise ValueError("must be at least one second")
    return {"timeout": value}


def _failonstatus(raw: str) -> dict[str, object]:
    codes = set()
    for word in raw.replace(",", " ").split():
        try:
            code = parse_int(word, 100, 599)
        except ValueError:
            raise ValueError("must be one or more HTTP response codes (100-599), separated "
                             "by ',' or spaces") from None
        codes.add(code)
    return {"failonstatus": frozenset(codes)}


def _nonce(raw: str) -> dict[str, object]:
    if raw.lower() == "none":
        return {"nonce": ""}
    if len(raw) > _NONCE_LIMIT:
        raise ValueError(f"must be at most {_NONCE_LIMIT} characters, or None")
    return {"nonce": raw}


def _growth(raw: str) -> dict[str, object]:
    return {"growth": parse_int(raw, 1, 100)}


BALANCER_KEYS: dict[str, _Parser] = {
    "lbmethod": _lbmethod,
    "maxattempts": _int_field("maxattempts", 0),
    "nofailover": _flag_field("nofailover"),
    "stickysession": _stickysession,
    "stickysessionsep": _stickysessionsep,
    "scolonpathdelim": _flag_field("scolonpathdelim"),
    "timeout": _balancer_timeout,
    "failonstatus": _failonstatus,
    "failontimeout": _flag_field("failontimeout"),
    "nonce": _nonce,
    "growth": _growth,
    "forcerecovery": _flag_field("forcerecovery"),
}


def parse_balancer_params(
    pairs: Sequence[tuple[str, str]], source: Source, base: BalancerParams | None = None,
) -> BalancerParams:
    """Build BalancerParams from ``(key, value)`` pairs on top of ``base`` (defaults if None).

    Raises ConfigError located at ``source`` (the loader adds the directive) for an unknown
    key ("unknown Balancer parameter", as httpd) or a bad value. ``explicit`` gains every key
    given, lowercased. ``maxattempts`` is left as given; the loader resolves the default.
    """
    params = base or BalancerParams()
    changes: dict[str, object] = {}
    explicit = set(params.explicit)
    for key, value in pairs:
        lowered = key.lower()
        parser = BALANCER_KEYS.get(lowered)
        if parser is None:
            raise ConfigError(f"unknown Balancer parameter {key!r}", source.file, source.line)
        try:
            changes.update(parser(value))
        except ValueError as exc:
            raise ConfigError(f"balancer parameter {key}={value}: {exc}", source.file,
                              source.line) from None
        explicit.add(lowered)
    return dataclasses.replace(params, **changes, explicit=frozenset(explicit))
