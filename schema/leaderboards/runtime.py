from __future__ import annotations

from leaderboards.consumer import Leaderboards, runtime
from schema.context import Services


def leaderboards_runtime(services: Services) -> Leaderboards:
    return runtime(services.db, services.redis, services.keys, services.clock, services.hub)
