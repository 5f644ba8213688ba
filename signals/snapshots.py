"""Reading snapshots: what rules (and the ``signals`` query) read. Snapshots are written
only by ``signals.maintenance`` (handlers, the daily job, the rebuild).

What a caller may read starts from ``readable_snapshots`` / ``readable_rep_snapshots``
(``partners.access.scope``): a partner's snapshot is an organisation-level record, which a
partner rep never reads (``RepAccess.NONE``); a rep's snapshot is owned by its rep."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Collection

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from partners.access import RepAccess, scope
from partners.roles import Principal
from signals.definitions import DEFINITIONS, REP_NAMES
from signals.models import SignalRepSnapshot, SignalSnapshot

Value = int | float | bool | None
Values = dict[str, Value]


def readable_snapshots(principal: Principal) -> SelectOfScalar[SignalSnapshot]:
    """The partner snapshots the caller may read: the organisation's figures (none to a
    partner rep)."""
    return select(SignalSnapshot).where(
        scope(principal, SignalSnapshot.vendor_id, SignalSnapshot.partner_id, RepAccess.NONE)
    )


def readable_rep_snapshots(principal: Principal) -> SelectOfScalar[SignalRepSnapshot]:
    """The rep snapshots the caller may read (a partner rep: its own)."""
    return select(SignalRepSnapshot).where(
        scope(
            principal,
            SignalRepSnapshot.vendor_id,
            SignalRepSnapshot.partner_id,
            SignalRepSnapshot.rep_user_id,
        )
    )


def complete(values: dict[str, object]) -> Values:
    """Every defined name, None where the stored snapshot has no value for it (a signal
    added after the snapshot was taken)."""
    out: Values = {}
    for name in DEFINITIONS:
        value = values.get(name)
        out[name] = value if isinstance(value, int | float | bool) else None
    return out


async def values_at(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    day: datetime.date,
    partner_ids: Collection[uuid.UUID] | None = None,
) -> dict[uuid.UUID, Values]:
    """Each partner's signal values as of ``day``'s snapshot (partners without a snapshot
    that day are left out). No access check: the caller is a rule engine or a service that
    has checked its principal."""
    statement = select(SignalSnapshot).where(
        SignalSnapshot.vendor_id == vendor_id, SignalSnapshot.day == day
    )
    if partner_ids is not None:
        if not partner_ids:
            return {}
        statement = statement.where(col(SignalSnapshot.partner_id).in_(list(partner_ids)))
    rows = await session.exec(statement)
    return {row.partner_id: complete(row.values) for row in rows}


async def history(
    session: AsyncSession,
    principal: Principal,
    partner_id: uuid.UUID,
    first: datetime.date,
    last: datetime.date,
) -> list[SignalSnapshot]:
    """A partner's snapshots from ``first`` to ``last`` inclusive, oldest first, as far as
    the caller may read them."""
    rows = await session.exec(
        readable_snapshots(principal)
        .where(
            SignalSnapshot.partner_id == partner_id,
            col(SignalSnapshot.day) >= first,
            col(SignalSnapshot.day) <= last,
        )
        .order_by(col(SignalSnapshot.day))
    )
    return list(rows)


def complete_rep(values: dict[str, object]) -> Values:
    """Every rep signal's name (``REP_NAMES``), None where the stored snapshot has none."""
    out: Values = {}
    for name in REP_NAMES:
        value = values.get(name)
        out[name] = value if isinstance(value, int | float | bool) else None
    return out


async def rep_history(
    session: AsyncSession,
    principal: Principal,
    partner_id: uuid.UUID,
    rep_user_id: uuid.UUID,
    first: datetime.date,
    last: datetime.date,
) -> list[SignalRepSnapshot]:
    """A partner's rep's snapshots from ``first`` to ``last`` inclusive, oldest first, as
    far as the caller may read them."""
    rows = await session.exec(
        readable_rep_snapshots(principal)
        .where(
            SignalRepSnapshot.partner_id == partner_id,
            SignalRepSnapshot.rep_user_id == rep_user_id,
            col(SignalRepSnapshot.day) >= first,
            col(SignalRepSnapshot.day) <= last,
        )
        .order_by(col(SignalRepSnapshot.day))
    )
    return list(rows)
