from __future__ import annotations

from leaderboards.consumer import Leaderboards, runtime
from leaderboards.fanout import Fanout
from schema.context import Services


def leaderboards_runtime(services: Services) -> Leaderboards:
    return runtime(services.db, services.redis, services.keys, services.clock, services.hub)


def leaderboards_fanout(services: Services) -> Fanout:
    """The process's live fan-out (one per app)."""
    rt = leaderboards_runtime(services)
    found = getattr(rt, "fanout", None)
    if found is None:
        found = Fanout(rt)
        rt.fanout = found
    return found
