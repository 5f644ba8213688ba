"""Commands that meet a lost Redis (``simulate`` waits it out) say so in one line of their
own; their background tasks' records of it are one line each too, not tracebacks."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_LOST = (RedisConnectionError, RedisTimeoutError)


class OneLineRedisErrors(logging.Filter):
    """Log a lost Redis connection as its message alone: the command reports the loss
    itself, and a traceback per background task drowns that report."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], REDIS_LOST):
            record.msg = f"{record.msg} ({record.exc_info[1]})"
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_redis_tracebacks() -> None:
    """On every handler of the root logger (where every module's records end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OneLineRedisErrors) for f in handler.filters):
            handler.addFilter(OneLineRedisErrors())
