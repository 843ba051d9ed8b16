"""Load-balancing methods: one small module each, registered by name (see ``base`` for the
plugin API and ``registry`` for lookup by ``lbmethod=`` value)."""

from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.lbmethods.bybusyness import ByBusyness
from portico.upstream.lbmethods.byrequests import ByRequests
from portico.upstream.lbmethods.bytraffic import ByTraffic
from portico.upstream.lbmethods.p2c import PowerOfTwo
from portico.upstream.lbmethods.registry import (
    ENTRY_POINT_GROUP,
    Registry,
    UnknownLBMethod,
    default_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP", "ByBusyness", "ByRequests", "ByTraffic", "LBMethod", "PowerOfTwo",
    "Registry", "UnknownLBMethod", "default_registry",
]
