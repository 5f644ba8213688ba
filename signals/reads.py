"""What callers read of signals: a partner's (or one of its reps') daily values over a
range, only the partners the caller may see (``partners.repository.get_readable_partner``)
and only the signals its role may see (vendor-only ones to vendor staff).

A partner rep reads its own figures and never the organisation's
(``partners.access.reads_organisation_records``): the partner's snapshot is an
organisation-level record (its revenue, earnings, pipeline, deals of every rep), so
``signals`` answers a rep with its own rep signals (``REP_NAMES``, as ``repSignals``), and
``signalDefinitions`` lists those only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.errors import DomainError
from partners.access import reads_organisation_records
from partners.repository import get_readable_partner, get_user
from partners.roles import Principal, Role
from signals.definitions import DEFINITIONS, REP_NAMES, SignalDefinition, visible_names
from signals.errors import SignalsErrorCode as Code
from signals.models import SignalRepSnapshot, SignalSnapshot
from signals.policy import SIGNALS, SignalsOp
from signals.snapshots import Value, Values, complete, complete_rep, history, rep_history

MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class SignalDay:
    day: date
    currency: str
    values: list[tuple[SignalDefinition, Value]]


def definitions_for(principal: Principal) -> list[SignalDefinition]:
    SIGNALS.require(principal, SignalsOp.READ_DEFINITIONS)
    if not reads_organisation_records(principal):
        return [DEFINITIONS[name] for name in REP_NAMES]
    return [DEFINITIONS[name] for name in visible_names(principal.is_vendor_staff)]


def check_range(first: date, last: date) -> None:
    if first > last:
        raise DomainError(Code.INVALID_RANGE, "'from' is after 'to'.", "from")
    if (last - first) >= timedelta(days=MAX_RANGE_DAYS):
        raise DomainError(Code.RANGE_TOO_LONG, f"At most {MAX_RANGE_DAYS} days at a time.", "to")


def _partner_asked(
    principal: Principal, op: SignalsOp, partner_id: uuid.UUID | None, first: date, last: date
) -> uuid.UUID:
    """What both reads check before reading anything: the role, the range, and the partner
    (a partner user's own when not given)."""
    SIGNALS.require(principal, op)
    check_range(first, last)
    if partner_id is not None:
        return partner_id
    if principal.partner_id is None:
        raise DomainError(Code.PARTNER_REQUIRED, "Name the partner.", "partner_id")
    return principal.partner_id


def _days(
    snapshots: Iterable[SignalSnapshot | SignalRepSnapshot],
    values_of: Callable[[dict[str, object]], Values],
    names: Iterable[str],
) -> list[SignalDay]:
    out = []
    for snapshot in snapshots:
        values = values_of(snapshot.values)
        out.append(
            SignalDay(snapshot.day, snapshot.currency, [(DEFINITIONS[n], values[n]) for n in names])
        )
    return out


async def partner_signals(
    session: AsyncSession,
    principal: Principal,
    *,
    partner_id: uuid.UUID | None,
    first: date,
    last: date,
) -> list[SignalDay] | None:
    """The partner's snapshots from ``first`` to ``last`` (days without one are left out);
    None for a partner the caller may not see (answered like a missing one). A partner
    user's partner is its own when not given. A partner rep gets its own figures instead:
    its rep snapshots of its partner (``rep_signals`` of itself)."""
    partner_id = _partner_asked(principal, SignalsOp.READ, partner_id, first, last)
    if not reads_organisation_records(principal):
        return await _own_rep_days(session, principal, partner_id, principal.user_id, first, last)
    partner = await get_readable_partner(session, principal, partner_id)
    if partner is None:
        return None
    snapshots = await history(session, principal, partner.id, first, last)
    return _days(snapshots, complete, visible_names(principal.is_vendor_staff))


async def rep_signals(
    session: AsyncSession,
    principal: Principal,
    *,
    partner_id: uuid.UUID | None,
    rep_user_id: uuid.UUID | None,
    first: date,
    last: date,
) -> list[SignalDay] | None:
    """A rep's snapshots of the partner from ``first`` to ``last`` (days before its first
    sale, claim or deal are left out): the per-rep signals (``REP_NAMES``, all
    partner-visible). None for a partner the caller may not see, a rep that is not one of
    the partner's users, or a rep other than itself for a partner rep (answered like a
    missing one, as ``earnings`` answers a rep not of the partner). A partner user's
    partner is its own when not given, a partner rep's rep itself."""
    partner_id = _partner_asked(principal, SignalsOp.READ_REPS, partner_id, first, last)
    if rep_user_id is None:
        if principal.role is not Role.PARTNER_REP or principal.user_id is None:
            raise DomainError(Code.REP_REQUIRED, "Name the rep.", "rep_user_id")
        rep_user_id = principal.user_id
    return await _own_rep_days(session, principal, partner_id, rep_user_id, first, last)


async def _own_rep_days(
    session: AsyncSession,
    principal: Principal,
    partner_id: uuid.UUID,
    rep_user_id: uuid.UUID | None,
    first: date,
    last: date,
) -> list[SignalDay] | None:
    """The rep's days, checked (the range and role already were): None for a partner the
    caller may not see, a rep not of the partner, or a rep other than itself for a rep."""
    if rep_user_id is None:
        return None
    if principal.role is Role.PARTNER_REP and rep_user_id != principal.user_id:
        return None
    partner = await get_readable_partner(session, principal, partner_id)
    if partner is None:
        return None
    rep = await get_user(session, rep_user_id)
    if rep is None or (rep.vendor_id, rep.partner_id) != (partner.vendor_id, partner.id):
        return None
    snapshots = await rep_history(session, principal, partner.id, rep.id, first, last)
    return _days(snapshots, complete_rep, REP_NAMES)
