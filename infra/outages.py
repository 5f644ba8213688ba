"""Whether an error means a service the app stands on is out of reach right now — Redis
(``infra.redis.redis_unreachable``) or the database — as opposed to a bug (and, at the
end, the database refusing a value: ``value_refused``). Callers answer
SERVICE_UNAVAILABLE with a retry hint and log one line, not a traceback; the dispatcher
ends its pass without charging the event; a command that runs on (``waiting_out``) waits
and says so once per outage. Nothing is lost: a transaction that met the outage rolled
back, and the outbox keeps its events."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from infra.redis import redis_unreachable

T = TypeVar("T")


class Unavailable(Exception):
    """Raised by an adapter of a service the app stands on, other than Redis and the
    database, that is out of reach or refuses to take data right now (the file store: a
    full or read-only disk, a bucket that does not answer). Answered SERVICE_UNAVAILABLE
    like the other two, with one warning line naming the cause."""


def _adapter_unavailable(error: BaseException | None) -> bool:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, Unavailable):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


# SQLSTATEs of a server that is going away or not yet there (class 57P, operator
# intervention): admin_shutdown (a fast or immediate stop ended the session),
# crash_shutdown, cannot_connect_now ("the database system is starting up", "... is
# shutting down", "... is in recovery mode": a restart, a failover); and the connection
# exceptions of class 08 that say the connection failed or is gone. Not 08P01 (protocol
# violation) nor 08007 (transaction resolution unknown): a driver's bug, and a commit whose
# outcome nobody knows, are not an outage to wait out.
OUT_OF_REACH_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}
)


def database_unreachable(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is the database out of reach: a
    connection found dead by its statement (SQLAlchemy then replaces the pool's
    connections: ``connection_invalidated``), a refused or dropped connection, a server
    stopping or starting, a connection failed (``OUT_OF_REACH_SQLSTATES``)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, ConnectionError):  # refused, reset, aborted, broken pipe
            return True
        if getattr(error, "sqlstate", None) in OUT_OF_REACH_SQLSTATES:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


# SQLSTATEs of a transaction PostgreSQL rolled back itself: serialization_failure,
# deadlock_detected.
ROLLED_BACK = frozenset({"40001", "40P01"})


def rolled_back_by_the_database(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is PostgreSQL's transaction rollback
    (``ROLLED_BACK``: a deadlock broken by killing this side, a serialization conflict):
    nothing of the transaction stayed, and running it again is the remedy.
    psycopg reports these as ``OperationalError``; asyncpg's adapter only as a
    ``DBAPIError``, with the SQLSTATE beside it."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DBAPIError):
            sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
            if sqlstate in ROLLED_BACK:
                return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


# PostgreSQL's unique_violation.
UNIQUE_VIOLATION = "23505"


def lost_a_race_for_a_unique_key(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is a unique key PostgreSQL refused:
    in a transaction that looked first and found no row (an upsert of a setting, an
    assignment), a concurrent transaction inserted the same key after that look. Running the
    transaction again reads the row the other one committed (READ COMMITTED: each statement
    sees what committed before it) and updates it or refuses with the service's own code.
    (SQLite's writers take turns: one never looks before another's insert commits.)"""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DBAPIError):
            sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
            if sqlstate == UNIQUE_VIOLATION:
                return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


# SQLSTATEs of a statement or transaction ended because it waited, or held its locks, too
# long: lock_not_available (a lock_timeout, a NOWAIT), query_canceled (a statement_timeout,
# a cancel request), idle_in_transaction_session_timeout (the server ended a session that
# sat in a transaction: ``infra.db.Waits``). Contention, not a bug: the transaction rolled
# back, and running it again is the remedy.
CONTENDED = frozenset({"55P03", "57014", "25P03"})

# SQLite's result codes of a lock not granted within the busy timeout: SQLITE_BUSY (5),
# SQLITE_LOCKED (6), and their extended codes (the low byte is the primary code).
_SQLITE_BUSY = frozenset({5, 6})


def contended(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is a wait the database gave up on
    (``CONTENDED``; on SQLite "database is locked" once the busy timeout ran out): another
    transaction held what this one needed for too long, or this one sat idle in its
    transaction for too long. Nothing of the transaction stayed."""
    seen = 0
    while error is not None and seen < 10:
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(error, DBAPIError):
            sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if sqlstate in CONTENDED:
            return True
        if isinstance(error, sqlite3.OperationalError):
            code = getattr(error, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _SQLITE_BUSY:
                return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def first_line(error: BaseException | None) -> str:
    """The database's own message (not the SQL a DBAPIError carries), on one line: what a
    warning about contention shows."""
    orig = getattr(error, "orig", None)
    return (str(orig if orig is not None else error).splitlines() or [""])[0][:200]


def to_run_again(error: BaseException | None) -> bool:
    """A transaction the database ended for contention (``rolled_back_by_the_database``,
    ``contended``): nothing of it stayed, and the same work run again may well go through.
    Clients are answered SERVICE_UNAVAILABLE with a retry hint, like an outage."""
    return rolled_back_by_the_database(error) or contended(error)


def is_unavailable(error: BaseException | None) -> bool:
    """Redis, the database or another service (``Unavailable``) out of reach (see the
    module)."""
    return redis_unreachable(error) or database_unreachable(error) or _adapter_unavailable(error)


# The data exceptions (SQLSTATE class 22) that mean a value did not fit where it was put:
# too long for its column, beyond its type's range, a character the database cannot store.
# The rest of the class (a division by zero, a cast of a constant, an invalid argument to a
# function) is what our own statements raise with no client value in them: a bug.
VALUE_DOES_NOT_FIT = frozenset({"22001", "22003", "22021", "22026", "22P05"})


def value_refused(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is PostgreSQL refusing a value that
    does not fit (``VALUE_DOES_NOT_FIT``: a string over its column's length, a number out
    of its type's range, a character it cannot store) or asyncpg refusing to encode one
    for a parameter. Not an outage: a gap in the service's own validation, which answers
    before the database should; the client is told its input was refused
    (``schema.extensions``), the transaction rolled back, and the gap logged to be
    closed."""
    seen = 0
    while error is not None and seen < 10:
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in VALUE_DOES_NOT_FIT:
            return True
        kind = type(error)
        # asyncpg's DataError itself (not its subclasses, the rest of class 22): the one it
        # raises when it cannot encode a parameter ("invalid input for query argument").
        if kind.__name__ == "DataError" and kind.__module__.startswith("asyncpg"):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class Outage:
    """Tells of an outage once, however many attempts meet it: ``met`` reports the first
    failure of an outage (what is out of reach, and why; or the database's contention),
    and again when what fails changes (contention, then Redis out of reach); ``over``
    reports once that work went through again. For commands that wait an outage out
    (``waiting_out``)."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self._since: float | None = None
        self._what = ""

    def met(self, error: BaseException) -> None:
        contention = to_run_again(error) and not is_unavailable(error)
        what = "the work" if contention else _service(error)
        if self._since is not None and what == self._what:
            return
        if self._since is None:
            self._since = time.monotonic()
        self._what = what
        if contention:
            self._report(
                f"the database ended a transaction for contention ({first_line(error)}); "
                "running it again"
            )
            return
        reason = (str(error).splitlines() or [""])[0][:200]
        self._report(f"{what} is out of reach ({type(error).__name__}: {reason}); waiting for it")

    def over(self) -> None:
        if self._since is not None:
            back = "went through" if self._what == "the work" else "is back"
            self._report(
                f"{self._what} {back} after {time.monotonic() - self._since:.0f} s; carrying on"
            )
            self._since = None


def _service(error: BaseException) -> str:
    if redis_unreachable(error):
        return "Redis"
    if database_unreachable(error):
        return "the database"
    return "a service it needs"


async def waiting_out(
    work: Callable[[], Awaitable[T]],
    outage: Outage,
    *,
    backoff: tuple[float, float] = (0.2, 5.0),
    contention_runs: int = 5,
) -> T:
    """``work()``, run again with capped exponential backoff for as long as it fails because
    Redis, the database or another service is out of reach (``is_unavailable``) or the
    database ended its transaction for contention (``to_run_again``: a deadlock, a lock
    not granted in time: ``contention_runs`` runs in a row at most, then it propagates, as
    a statement that always outlasts a ``statement_timeout`` would otherwise run for ever);
    any other error propagates. ``work`` must be safe to run again after such a failure."""
    delay = backoff[0]
    contended_runs = 0
    while True:
        try:
            result = await work()
        except Exception as exc:
            unavailable = is_unavailable(exc)
            if not (unavailable or to_run_again(exc)):
                raise
            contended_runs = 0 if unavailable else contended_runs + 1
            if contended_runs >= contention_runs:
                raise
            outage.met(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff[1])
        else:
            outage.over()
            return result
