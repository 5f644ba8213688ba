"""What a command tells its user when the database is not there to use: unreachable, or
not migrated to what this code needs (``token`` before ``migrate``, a server upgraded
without its migrations), in a sentence that names the remedy, not a driver's traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from infra.outages import database_unreachable

# The server answered, and refused the connection: no such database (invalid_catalog_name),
# a role or password it does not accept (invalid_authorization_specification,
# invalid_password).
_REFUSED_SQLSTATES = frozenset({"3D000", "28000", "28P01"})

# A statement on a table or column the schema does not have: SQLite says so in its
# message; PostgreSQL with undefined_table / undefined_column.
_MISSING_SQLSTATES = frozenset({"42P01", "42703"})


def _names_missing_schema(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, DBAPIError):
            orig = seen.orig
            sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            message = str(orig)
            if sqlstate in _MISSING_SQLSTATES or message.startswith(
                ("no such table", "no such column")
            ):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def _in_chain(error: BaseException, found: Callable[[BaseException], bool]) -> BaseException | None:
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if found(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _refused(error: BaseException) -> bool:
    orig = error.orig if isinstance(error, DBAPIError) else error
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in _REFUSED_SQLSTATES


def database_advice(error: BaseException, url: str) -> str | None:
    """The sentence for ``error`` if it is the database unreachable (a host that does not
    resolve too), refusing the connection (no such database, a role it does not accept) or
    not migrated; None for anything else (a bug keeps its traceback)."""
    shown = make_url(url).render_as_string(hide_password=True)
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if database_unreachable(error) or _in_chain(error, lambda e: isinstance(e, socket.gaierror)):
        return f"the database at {shown} is unreachable: {reason}"
    refusal = _in_chain(error, _refused)
    if refusal is not None:
        orig = refusal.orig if isinstance(refusal, DBAPIError) else refusal
        return f"the database at {shown} refused the connection: {orig}"
    if not _names_missing_schema(error):
        return None
    from api import migrations  # noqa: PLC0415 - Alembic, only on this path

    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

    try:
        current = asyncio.run(migrations.database_revision(url))
    except Exception:  # noqa: BLE001 - the advice below stands without the revision
        current = "unknown"
    head = migrations.head_revision()
    if current == head:
        return None  # migrated, yet a table is missing: not a matter of migrations
    return (
        f"the database at {shown} is not migrated (at {current or 'no revision'}, this "
        f"code needs {head}): run 'channelboard migrate' ('./dev serve' migrates the "
        "embedded default itself)"
    )
