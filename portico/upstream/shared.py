"""The scoreboard for a configuration: one record per worker and balancer, set from the config.

The master calls ``scoreboard_for`` once per configuration generation, before forking, so
every serving process of that generation shares the same records (DESIGN rule 11). On a
graceful reload the new board takes over the runtime state (flags set at run time, lbstatus,
error times, counters) of workers that exist in both configurations.
"""

from __future__ import annotations

__all__ = ["persist_path", "persistence_enabled", "scoreboard_for"]

import logging
import os

from portico.config.model import ServerConfig
from portico.errors import ConfigError
from portico.state import persist
from portico.state.flags import Status, apply_letters
from portico.state.scoreboard import Scoreboard

log = logging.getLogger("portico.state")


def scoreboard_for(config: ServerConfig, processes: int, generation: int = 0,
                   previous: Scoreboard | None = None) -> Scoreboard:
    """A new board for ``config`` with ``processes`` lanes, state migrated from ``previous``."""
    balancers = getattr(config, "balancers", {}) or {}
    standalone = [spec.name for spec in config.workers.values()
                  if getattr(spec, "balancer", None) is None]
    members = {name: list(spec.members) for name, spec in balancers.items()}
    growth = {name: spec.params.growth for name, spec in balancers.items()}
    try:
        board = Scoreboard.create(standalone, members, processes=processes, growth=growth,
                                  generation=generation)
    except ValueError as exc:
        raise ConfigError(f"cannot build the scoreboard: {exc}", config.source_file) from None
    for spec in config.workers.values():
        balancer = getattr(spec, "balancer", None)
        slot = board.worker(spec.name, balancer)
        params = spec.params
        # Workers outside a balancer ignore errors (httpd 2.4: they never enter E, §1.2).
        base = Status.INIT if balancer else Status.INIT | Status.IGNORE
        slot.status = apply_letters(base, params.status_set, params.status_clear)
        slot.lbfactor = params.loadfactor
        slot.lbset = params.lbset
        slot.route = params.route
        slot.redirect = params.redirect
    for name, spec in balancers.items():
        record = board.balancer(name)
        p = spec.params
        record.lbmethod = p.lbmethod
        record.sticky = p.stickysession or ""
        record.sticky_path = p.stickysession_url or ""
        if p.stickysessionsep:
            record.sticky_sep = p.stickysessionsep
        record.nofailover = int(p.nofailover)
        record.forcerecovery = int(p.forcerecovery)
        record.maxattempts = p.maxattempts
        record.timeout = float(p.timeout or 0)
        if p.nonce:  # a configured nonce= is the manager's token; else a random UUID stays
            record.nonce = p.nonce
    persisted = persistence_enabled(config)
    if previous is not None:
        # A reload: runtime state moves over in memory; with BalancerPersist the manager's
        # edits (weights, routes, flags, balancer settings) too.
        board.migrate_from(previous, keep_settings=persisted)
    elif persisted:
        data = persist.load(persist_path(config))
        if data is not None:
            restored = persist.restore(board, data)
            log.info("BalancerPersist: restored %d member(s) from %s", restored,
                     persist_path(config))
    return board


def persistence_enabled(config: ServerConfig) -> bool:
    """BalancerPersist On in the main server or any virtual host."""
    return bool(getattr(config.main, "balancer_persist", False) or any(
        getattr(vh, "balancer_persist", False) for vh in config.vhosts))


def persist_path(config: ServerConfig) -> str:
    """Where the BalancerPersist state lives: DefaultRuntimeDir, else ServerRoot."""
    return os.path.join(getattr(config, "runtime_dir", None) or config.server_root,
                        persist.FILE_NAME)
