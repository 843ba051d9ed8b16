"""The immutable configuration model that the loader builds and the server runs on.

Everything here is a frozen dataclass (DESIGN rule 4): a graceful reload builds a new model and
swaps it in; nothing mutates a model that is serving. Every node keeps the file:line it came
from, so run-time messages can point at the config.

Settings that httpd merges server → virtual host → <Location> are kept in two forms:
``ProxySettings`` is a complete, already-merged value for a virtual host, and a Location
carries only its explicit ``overrides`` (field name → value), applied in order at request time
because several Locations can match one request.
"""

from __future__ import annotations

__all__ = [
    "AccessLogSpec",
    "BadHeader",
    "BalancerParams",
    "BalancerSpec",
    "CoreSettings",
    "EncodedSlashes",
    "EnvCondition",
    "EnvSet",
    "HC_TEMPLATE_KEYS",
    "HCExpr",
    "HCTemplate",
    "ListenSpec",
    "LocationSpec",
    "ProxySettings",
    "ProxyVia",
    "ReverseRule",
    "Route",
    "RouteKind",
    "SETENVIF_ATTRIBUTES",
    "ServerConfig",
    "Source",
    "TLSClientSettings",
    "VirtualHost",
    "WorkerParams",
    "WorkerSpec",
    "member_key",
]

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portico.admin.access import AccessRule
    from portico.admin.htpasswd import HtpasswdFile
    from portico.expr import Expr


@dataclass(frozen=True, slots=True)
class Source:
    """Where a directive or section was written."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ProxyVia(enum.Enum):
    OFF = "off"
    ON = "on"
    FULL = "full"
    BLOCK = "block"


class BadHeader(enum.Enum):
    IS_ERROR = "iserror"
    IGNORE = "ignore"
    START_BODY = "startbody"


class EncodedSlashes(enum.Enum):
    OFF = "off"            # %2F in the path → 404
    ON = "on"              # %2F decoded like any other escape
    NO_DECODE = "nodecode"  # %2F allowed and kept encoded


@dataclass(frozen=True, slots=True)
class TLSClientSettings:
    """mod_ssl's SSLProxy* settings: how portico talks TLS to https backends."""

    engine: bool = False
    verify: str = "none"              # none | optional | require | optional_no_ca
    verify_depth: int = 1
    check_peer_name: bool | None = None   # None: not set (see upstream/peercert.py)
    check_peer_cn: bool | None = None
    check_peer_expire: bool = True
    ca_certificate_file: str | None = None
    ca_certificate_path: str | None = None
    machine_certificate_file: str | None = None
    machine_certificate_chain_file: str | None = None
    protocol: str = "all -SSLv3"
    cipher_suite: str | None = None
    cipher_suite_tls13: str | None = None  # SSLProxyCipherSuite TLSv1.3 ...


# mod_setenvif's named request facts (any other attribute is a header or variable name).
SETENVIF_ATTRIBUTES = frozenset({"Remote_Host", "Remote_Addr", "Server_Addr", "Request_Method",
                                 "Request_Protocol", "Request_URI"})


@dataclass(frozen=True, slots=True)
class EnvSet:
    """One variable a rule sets (``value``) or removes (``value`` None): ``name=value``,
    ``name`` (value "1") or ``!name`` in SetEnvIf; SetEnv, UnsetEnv and PassEnv too."""

    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class EnvCondition:
    """SetEnvIf / SetEnvIfNoCase / BrowserMatch* (``pattern`` over ``attribute``) or
    SetEnvIfExpr (``expr``): when it holds, ``sets`` apply in order (mod_setenvif).

    ``attribute`` is one of mod_setenvif's request facts (``Remote_Addr``, ...), a request
    header name, or an environment variable set by an earlier rule; ``attribute_pattern`` is
    set when the attribute is itself a regular expression over header names."""

    attribute: str
    pattern: re.Pattern[str] | None
    sets: tuple[EnvSet, ...]
    source: Source
    attribute_pattern: re.Pattern[str] | None = None
    expr: Expr | None = None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """The proxy behaviour switches that merge server → vhost → Location (httpd semantics)."""

    preserve_host: bool = False
    add_headers: bool = True
    error_override: bool = False
    error_override_codes: frozenset[int] = frozenset()  # empty + error_override: all 400-599
    via: ProxyVia = ProxyVia.OFF
    timeout: float | None = None          # ProxyTimeout; None → CoreSettings.timeout
    bad_header: BadHeader = BadHeader.IS_ERROR
    iobuffersize: int = 8192
    receivebuffersize: int = 0
    max_forwards: int = -1
    proxy_100_continue: bool = True
    allow_encoded_slashes: EncodedSlashes = EncodedSlashes.OFF
    tls: TLSClientSettings = field(default_factory=TLSClientSettings)
    source_address: str | None = None
    limit_request_body: int = 1 << 30     # 0 = unlimited (httpd 2.4.54+ default is 1 GiB)
    # ErrorDocument code → value as httpd stores it: a text message starts with '"' (the
    # quote is a marker, not part of the text); otherwise a local /path or a full URL.
    error_documents: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    interpolate_env: bool = False         # ProxyPassInterpolateEnv
    proxy_requests: bool = False          # ProxyRequests (forward proxying) for this vhost
    # Require / <RequireAll|Any|None> (§19), compiled at load; a Location's rule replaces
    # the inherited one (httpd's AuthMerging Off). None: no rule, everything is allowed.
    access: AccessRule | None = None
    proxy_status: bool = False            # ProxyStatus On|Full: balancers in server-status
    # Basic authentication (§19), used only when a Require rule needs a user: AuthType
    # ("basic" or None), AuthName (the realm) and AuthUserFile (read at load, re-read on change).
    auth_type: str | None = None
    auth_name: str | None = None
    auth_user_file: HtpasswdFile | None = None
    # The request environment. ``env_early``: server-level SetEnvIf* rules (main server's
    # first), which run before routing (httpd's post_read_request), so they can set
    # no-proxy and the variables ProxyPass interpolates. ``env_late``: SetEnvIf* rules of
    # the matching Locations, in merge order (header_parser). ``env_fixed``: SetEnv, UnsetEnv
    # and PassEnv, server's then Locations' (fixups). Env rules of a Location add to these
    # rather than replace them (see LocationSpec.env_late).
    env_early: tuple[EnvCondition, ...] = ()
    env_late: tuple[EnvCondition, ...] = ()
    env_fixed: tuple[EnvSet, ...] = ()


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """Server-wide connection handling and request limits (httpd core directives)."""

    timeout: float = 60.0
    keepalive: bool = True
    keepalive_timeout: float = 5.0
    max_keepalive_requests: int = 100     # 0 = unlimited
    limit_request_line: int = 8190
    limit_request_field_size: int = 8190
    limit_request_fields: int = 100
    graceful_shutdown_timeout: float = 0.0  # 0 = wait for in-flight requests without bound
    workers: int = 0                      # Workers: processes under the master; 0 = one per CPU
    extended_status: bool = True          # ExtendedStatus (On since httpd 2.3.6)
    splice: bool = True                   # ProxySplice: large bodies moved by the kernel


@dataclass(frozen=True, slots=True)
class WorkerParams:
    """The key=value worker parameters of ProxyPass/BalancerMember/ProxySet (§6.2).

    Durations are seconds (floats). ``None`` means "not set: inherit" where httpd inherits
    (timeout → ProxyTimeout, connectiontimeout → timeout, smax → max). ``explicit`` lists the
    keys that the config actually gave, for worker-sharing warnings and ProxySet merging.
    """

    min: int = 0
    max: int = 0                      # 0 = no per-process limit of our own
    smax: int | None = None
    acquire: float | None = None
    connectiontimeout: float | None = None
    timeout: float | None = None
    ttl: float | None = None
    enablereuse: bool = True
    keepalive: bool = False
    flushpackets: str = "off"         # on | off | auto
    flushwait: float = 0.010
    iobuffersize: int = 8192
    receivebuffersize: int = 0
    responsefieldsize: int = 8192
    lbset: int = 0
    loadfactor: int = 100             # times 100, two decimals kept
    ping: float | None = None
    retry: float = 60.0
    route: str = ""
    redirect: str = ""
    status_set: str = ""              # flag letters set by status=
    status_clear: str = ""            # flag letters cleared by status=
    secret: str = ""
    upgrade: str = ""                 # comma-separated tokens; "*" = any
    mapping: str = ""                 # "", "encoded" or "servlet"
    addressttl: float = -1
    flusher: str = "flush"
    hcmethod: str = "NONE"
    hcuri: str = ""
    hcinterval: float = 30.0
    hcpasses: int = 1
    hcfails: int = 1
    hcexpr: str = ""
    hctemplate: str = ""
    explicit: frozenset[str] = frozenset()
    hcslowstart: float = 0.0          # portico: seconds for a recovered weight to ramp up


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One backend URL and its parameters. Its identity is its name (the URL, path included).

    For ``unix:/sock|http://host/path`` the name is the whole ``unix:/sock|http://host/path``
    string (so two sockets never share a worker), ``unix_path`` holds the socket resolved
    against DefaultRuntimeDir, and scheme/host/port/path describe the part after ``|``.
    ``has_placeholders`` is set for ProxyPassMatch URLs containing ``$n`` and for
    ``interpolate`` URLs with a ``${VAR}`` in the host or port: such a worker connects to the
    host and port of each request's URL (one pool per pair).
    """

    name: str
    scheme: str
    host: str
    port: int
    path: str
    params: WorkerParams
    source: Source
    unix_path: str | None = None
    has_placeholders: bool = False
    balancer: str | None = None       # "balancer://name" for a BalancerMember, else None

    @property
    def key(self) -> str:
        """This worker's key in ``ServerConfig.workers`` (members are keyed per balancer)."""
        return self.name if self.balancer is None else member_key(self.balancer, self.name)


class RouteKind(enum.Enum):
    PREFIX = "prefix"   # ProxyPass
    REGEX = "regex"     # ProxyPassMatch (or ProxyPass ~)


@dataclass(frozen=True, slots=True)
class Route:
    """One ProxyPass / ProxyPassMatch rule. ``target`` is None for an exclusion (``!``)."""

    kind: RouteKind
    path: str                         # prefix, or the regex source text
    target: str | None
    source: Source
    pattern: re.Pattern[str] | None = None
    worker: str | None = None         # WorkerSpec.name this rule's requests use
    nocanon: bool = False
    noquery: bool = False
    interpolate: bool = False
    mapping: str = ""

    @property
    def is_exclusion(self) -> bool:
        return self.target is None


@dataclass(frozen=True, slots=True)
class ReverseRule:
    """ProxyPassReverse / ProxyPassReverseCookieDomain / ProxyPassReverseCookiePath entry."""

    fake: str        # the public side (local path, public domain, public path)
    real: str        # the backend side (URL, internal domain, internal path)
    source: Source
    interpolate: bool = False


@dataclass(frozen=True, slots=True)
class AccessLogSpec:
    """CustomLog/TransferLog: where, which format string (nicknames resolved), which filter."""

    target: str                      # a file path, or "|command" for a piped log
    format: str
    source: Source
    env_condition: str | None = None  # "VAR" or "!VAR" from env=
    expr_condition: str | None = None


@dataclass(frozen=True, slots=True)
class LocationSpec:
    """A <Location>/<LocationMatch> section's proxy-relevant content."""

    path: str
    source: Source
    pattern: re.Pattern[str] | None = None   # set for <LocationMatch> / <Location ~>
    proxy_pass: Route | None = None
    reverse: tuple[ReverseRule, ...] = ()
    cookie_domains: tuple[ReverseRule, ...] = ()
    cookie_paths: tuple[ReverseRule, ...] = ()
    handler: str | None = None               # SetHandler value
    env_late: tuple[EnvCondition, ...] = ()  # this Location's SetEnvIf* rules
    env_fixed: tuple[EnvSet, ...] = ()       # this Location's SetEnv/UnsetEnv/PassEnv
    overrides: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ListenSpec:
    host: str | None   # None = every address
    port: int
    protocol: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """The main server or one <VirtualHost>; routes already include inherited main-server rules."""

    server_name: str
    source: Source
    addresses: tuple[tuple[str, int | None], ...] = ()  # ("*", 80), ("127.0.0.1", None), ...
    server_aliases: tuple[str, ...] = ()
    port: int | None = None                 # port from ServerName host:port, if given
    routes: tuple[Route, ...] = ()
    reverse: tuple[ReverseRule, ...] = ()
    cookie_domains: tuple[ReverseRule, ...] = ()
    cookie_paths: tuple[ReverseRule, ...] = ()
    locations: tuple[LocationSpec, ...] = ()
    settings: ProxySettings = field(default_factory=ProxySettings)
    access_logs: tuple[AccessLogSpec, ...] = ()
    error_log: str | None = None            # this host's own ErrorLog (None: the main one)
    error_log_source: Source | None = None
    log_level: str | None = None            # this host's own LogLevel (None: the main one)
    module_log_levels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    core: CoreSettings = field(default_factory=CoreSettings)  # main's equals ServerConfig.core
    # Balancer names this host can route to: the main server's (when BalancerInherit and
    # ProxyPassInherit are on) first, then those named inside the host. Keys of
    # ServerConfig.balancers.
    balancers: tuple[str, ...] = ()
    balancer_inherit: bool = True           # BalancerInherit (the main server's is the default)
    balancer_persist: bool = False          # BalancerPersist
    balancer_growth: int = 5                # BalancerGrowth: spare balancer slots


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A whole loaded configuration. ``workers`` is keyed by WorkerSpec.name."""

    source_file: str
    main: VirtualHost
    listens: tuple[ListenSpec, ...] = ()
    vhosts: tuple[VirtualHost, ...] = ()
    workers: Mapping[str, WorkerSpec] = field(default_factory=lambda: MappingProxyType({}))
    core: CoreSettings = field(default_factory=CoreSettings)
    log_formats: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    error_log: str = "logs/error_log"
    error_log_source: Source | None = None   # the ErrorLog directive; None: the default
    log_level: str = "warn"
    module_log_levels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    pid_file: str | None = None
    server_root: str = "."
    proxy_requests: bool = False
    defines: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Every balancer of the config, keyed by BalancerSpec.name; one balancer per name for the
    # whole config (docs/compat.md). Members are in ``workers`` under ``member_key``.
    balancers: Mapping[str, BalancerSpec] = field(default_factory=lambda: MappingProxyType({}))
    # Health checks (mod_proxy_hcheck, §10): ProxyHCExpr and ProxyHCTemplate by lowercased
    # name (httpd looks both up case-insensitively), and ProxyHCTPsize.
    hc_exprs: Mapping[str, HCExpr] = field(default_factory=lambda: MappingProxyType({}))
    hc_templates: Mapping[str, HCTemplate] = field(
        default_factory=lambda: MappingProxyType({}))
    hc_tpsize: int = 16
    # DefaultRuntimeDir (else ServerRoot): run-time files such as the BalancerPersist state.
    runtime_dir: str = "."


def member_key(balancer: str, name: str) -> str:
    """The ``ServerConfig.workers`` key of member ``name`` of ``balancer``.

    httpd keeps a worker list per balancer, so the same URL can be a standalone worker and a
    member of several balancers, each with its own parameters and state; the key keeps them
    apart. A space never occurs in a URL, so the key is unambiguous.
    """
    return f"{balancer} {name}"


@dataclass(frozen=True, slots=True)
class BalancerParams:
    """The balancer ``key=value`` parameters (§7.1), as ProxyPass/ProxySet/<Proxy> give them.

    ``maxattempts`` is already resolved in a loaded config: the explicit value, else members-1
    (0 with a single member: no failover, as httpd). ``stickysession`` is the cookie name and
    ``stickysession_url`` the URL parameter name (the same name unless written ``cookie|url``).
    ``stickysessionsep`` None means Off (the whole value is the route). ``nonce`` None means
    "generate a random one at start"; "" means the manager's nonce check is off (``None``).
    ``explicit`` lists the keys the config gave, lowercased.
    """

    lbmethod: str = "byrequests"
    maxattempts: int = 0
    nofailover: bool = False
    stickysession: str = ""
    stickysession_url: str = ""
    stickysessionsep: str | None = "."
    scolonpathdelim: bool = False
    timeout: float = 0.0              # seconds to wait for a usable member; 0 = do not wait
    failonstatus: frozenset[int] = frozenset()
    failontimeout: bool = False
    forcerecovery: bool = True
    growth: int = 0                   # spare member slots for members added in the manager
    nonce: str | None = None
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BalancerSpec:
    """One ``balancer://name``: its parameters and its members in config order.

    ``name`` is ``balancer://`` plus the lowercased host part (any path is not part of the
    identity). ``members`` are member WorkerSpec names (URLs); ``member_keys`` the matching
    ``ServerConfig.workers`` keys. ``frontends`` are the local paths (or regexes) of the
    ProxyPass/ProxyPassMatch rules that route to it, in config order. ``source`` is where the
    config first named it.
    """

    name: str
    params: BalancerParams
    source: Source
    members: tuple[str, ...] = ()
    frontends: tuple[str, ...] = ()

    @property
    def member_keys(self) -> tuple[str, ...]:
        return tuple(member_key(self.name, member) for member in self.members)


@dataclass(frozen=True, slots=True)
class HCExpr:
    """``ProxyHCExpr name {expr}``: the name as written, the expression text, the compiled
    expression (``expr.evaluate(EvalContext(...)) -> bool``) and where it was defined."""

    name: str
    text: str
    expr: Expr
    source: Source


#: The worker parameters a ProxyHCTemplate carries, in the order they are applied.
HC_TEMPLATE_KEYS = ("hcmethod", "hcinterval", "hcpasses", "hcfails", "hcuri", "hcexpr")


@dataclass(frozen=True, slots=True)
class HCTemplate:
    """``ProxyHCTemplate name k=v ...``: a complete set of hc* values.

    ``pairs`` holds every key of HC_TEMPLATE_KEYS (lowercased) with its final value: what the
    directive gave, else what a ``hctemplate=`` it named gave, else the template defaults
    (hcmethod TCP, hcinterval 30, hcpasses 1, hcfails 1, empty hcuri and hcexpr; §10.2). A
    worker's ``hctemplate=`` applies them with ``parse_worker_params``.
    """

    name: str
    pairs: tuple[tuple[str, str], ...]
    source: Source

    def value(self, key: str) -> str:
        """The template's value for ``key`` (one of HC_TEMPLATE_KEYS)."""
        return dict(self.pairs)[key]
