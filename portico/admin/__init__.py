"""Run-time views and controls that portico answers itself (``SetHandler``): server-status,
Prometheus metrics, the balancer-manager, and the access rules that guard them.

Handler modules register themselves with ``portico.proxy.local.handler`` when imported;
``portico.proxy.local.lookup`` imports them on first use, so nothing here runs at import.
"""

__all__: list[str] = []
