"""Active health checks (mod_proxy_hcheck): one checker per server, results on the scoreboard.

``probes`` runs one check against one member; ``checker`` schedules them, keeps the
hcpasses/hcfails hysteresis and sets or clears the C flag.
"""

from portico.health.checker import (
    DEFAULT_TPSIZE,
    CheckerThread,
    HealthChecker,
    recovered_at,
    slow_start_factor,
    targets_for,
)
from portico.health.probes import ProbeResult, ProbeTarget, check_path, probe

__all__ = [
    "DEFAULT_TPSIZE", "CheckerThread", "HealthChecker", "ProbeResult", "ProbeTarget",
    "check_path", "probe", "recovered_at", "slow_start_factor", "targets_for",
]
