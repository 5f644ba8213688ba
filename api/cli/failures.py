"""What the command line tells its user when a command fails for a reason outside the
code: one line on stderr naming what is wrong, and an exit status, in place of a traceback.
``main`` asks ``explain`` about every exception a command lets out; a bug (anything not
named here) keeps its traceback."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from api.cli.database import database_advice
from api.cli.redis_loss import REDIS_LOST_EXIT
from api.settings import Settings
from infra.redis import EmbeddedRedisBusy, EmbeddedRedisError, redis_unreachable

# typer's exit status for Ctrl-C (128 + SIGINT), which it exits with silently.
INTERRUPTED_EXIT = 130
INTERRUPTED = (
    "interrupted (Ctrl-C): the command stopped; a transaction it had not committed was rolled back"
)


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    exit_code: int


def explain(error: BaseException, settings: Settings) -> Failure | None:
    """The line and exit status for ``error``, or None when it is not one named here."""
    advice = database_advice(error, settings.database_url)
    if advice is not None:
        return Failure(advice, 3)
    if isinstance(error, EmbeddedRedisBusy):
        return Failure(_first_line(error), 2)
    if isinstance(error, EmbeddedRedisError):
        return Failure(_first_line(error), REDIS_LOST_EXIT)
    if redis_unreachable(error):
        where = settings.redis_url or "the embedded Redis"
        return Failure(f"Redis ({where}) is unreachable: {_first_line(error)}", REDIS_LOST_EXIT)
    if _is_alembic_command_error(error):
        return Failure(f"cannot migrate: {_first_line(error)}", 2)
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        if error.filename is not None:
            reason = error.strerror or errno.errorcode.get(error.errno or 0, "error")
            return Failure(f"{error.filename}: {reason}", 1)
    return None


def _is_alembic_command_error(error: BaseException) -> bool:
    from alembic.util.exc import CommandError  # noqa: PLC0415 - only when a command failed

    return isinstance(error, CommandError)


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
