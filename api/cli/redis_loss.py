"""Commands that meet a lost Redis say so in one line of their own, not in tracebacks:
those that stop (``leaderboards rebuild``) exit with ``REDIS_LOST_EXIT``; ``simulate``
waits it out. Their background tasks' records of it are one line each too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from rich.console import Console

from api.settings import Settings
from infra.redis import redis_unreachable

REDIS_LOST_EXIT = 3


class OneLineRedisErrors(logging.Filter):
    """Log a lost Redis connection as its message alone: the command reports the loss
    itself, and a traceback per background task drowns that report."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and redis_unreachable(record.exc_info[1]):
            record.msg = f"{record.msg} ({record.exc_info[1]})"
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_redis_tracebacks() -> None:
    """On every handler of the root logger (where every module's records end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OneLineRedisErrors) for f in handler.filters):
            handler.addFilter(OneLineRedisErrors())


async def stopping_when_redis_is_lost(
    work: Awaitable[int], settings: Settings, console: Console, kept: Callable[[], str]
) -> int:
    """``work``'s exit code; when Redis goes out of reach, one line saying so (where, why,
    and ``kept()``: what is kept and what to do) and ``REDIS_LOST_EXIT``."""
    quiet_redis_tracebacks()
    try:
        return await work
    except Exception as exc:
        if not redis_unreachable(exc):
            raise
        where = settings.redis_url or "the embedded Redis"
        console.print(f"[red]lost Redis ({where}): {exc}[/red]\n{kept()}")
        return REDIS_LOST_EXIT
