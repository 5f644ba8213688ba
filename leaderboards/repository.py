"""Who may read which contests: the one place that decides it for this domain.

Vendor staff see every contest of their vendor but one whose eligibility names a partner
group they may not read (``partners.groups.readable_groups``: a pilot's treatment arm, read
by vendor admins and finance only): its eligibility and board would tell who is in the arm.
Partner users see published contests (scheduled, live, finished or cancelled - never
drafts) that their organisation is eligible for (tiers, regions, groups it is now in, and
an explicit partner list, each empty = everyone).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, func, literal, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.db import for_change
from infra.outbox import OutboxEvent
from leaderboards.models import (
    Contest,
    ContestCredit,
    ContestPeriod,
    ContestRevision,
    ContestStanding,
    ContestStatus,
    ContestWinner,
    ParticipantKind,
)
from partners.access import accessible_partner_ids
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.groups import groups_of, readable_groups
from partners.models import Partner, User
from partners.roles import Principal

_ESCAPE = "/"


def in_packed(column: Any, value: Any) -> ColumnElement[bool]:
    """The SQL value ``value`` is exactly one of the items of the ",A,B," list in ``column``
    (``models.listed`` in Python). LIKE's wildcards in the value (``%``, ``_``: a
    vendor-chosen region or tier may hold them) and its escape character are escaped, so they
    match only themselves; a value with a comma is no item (an item never holds one), not
    the two neighbours ",A,B," it would otherwise span. SQLite's LIKE ignores ASCII case,
    PostgreSQL's does not: every value these lists hold or are matched with is stored in
    upper case (``leaderboards.service``, ``partners.admin``) or is a lower-case id."""
    escaped = value
    for wildcard in (_ESCAPE, "%", "_"):
        escaped = func.replace(escaped, literal(wildcard), literal(_ESCAPE + wildcard))
    return and_(
        value.not_like("%,%"),
        col(column).like(literal("%,") + escaped + literal(",%"), escape=_ESCAPE),
    )


def _listed(column: Any, value: Any) -> ColumnElement[bool]:
    """An empty list means everyone; else the value must be one of the ",A,B," items."""
    return or_(col(column) == "", in_packed(column, value))


def _in_a_listed_group(principal: Principal) -> ColumnElement[bool]:
    """The caller's partner is now a member of a group the contest lists (as UUID hex: the
    text of a UUID without its hyphens on PostgreSQL, as stored on SQLite)."""
    group_hex = func.replace(cast(PartnerGroupMembership.group_id, String), "-", "")
    return exists().where(
        col(PartnerGroupMembership.partner_id) == principal.partner_id,
        col(PartnerGroupMembership.left_at).is_(None),
        in_packed(Contest.eligible_group_ids, func.lower(group_hex)),
    )


def _names_an_unreadable_group(principal: Principal) -> ColumnElement[bool]:
    """The contest's eligibility lists a group of its vendor the caller may not read."""
    group_hex = func.replace(cast(PartnerGroup.id, String), "-", "")
    return exists().where(
        col(PartnerGroup.vendor_id) == Contest.vendor_id,
        col(PartnerGroup.id).not_in(
            readable_groups(principal).with_only_columns(col(PartnerGroup.id))
        ),
        in_packed(Contest.eligible_group_ids, func.lower(group_hex)),
    )


def readable_contests(principal: Principal) -> SelectOfScalar[Contest]:
    stmt = select(Contest).where(Contest.vendor_id == principal.vendor_id)
    if principal.is_vendor_staff:
        return stmt.where(~_names_an_unreadable_group(principal))
    if principal.is_display:  # a screen: its own contests, once published
        return stmt.where(
            col(Contest.id).in_(list(principal.contest_ids)), Contest.status != ContestStatus.DRAFT
        )
    if principal.partner_id is None:
        return stmt.where(false())
    eligible = exists().where(
        and_(
            col(Partner.id) == principal.partner_id,
            col(Partner.vendor_id) == principal.vendor_id,
            _listed(Contest.eligible_tiers, Partner.tier),
            _listed(Contest.eligible_regions, Partner.region),
            _listed(Contest.eligible_partner_ids, literal(str(principal.partner_id))),
            or_(col(Contest.eligible_group_ids) == "", _in_a_listed_group(principal)),
        )
    )
    return stmt.where(Contest.status != ContestStatus.DRAFT, eligible)


async def get_readable_contest(
    session: AsyncSession, principal: Principal, contest_id: uuid.UUID, *, lock: bool = False
) -> Contest | None:
    """The contest if the caller may see it; with ``lock``, locked to change it
    (``infra.db.for_change``)."""
    statement = readable_contests(principal).where(Contest.id == contest_id)
    if lock:
        statement = for_change(statement, Contest)
    return (await session.exec(statement)).first()


async def may_see_participant(
    session: AsyncSession, principal: Principal, contest: Contest, participant_id: uuid.UUID
) -> bool:
    """Whether the caller may look into this participant's standing and credits: the
    participant (a partner, or a user of a partner) must be in the caller's partner scope,
    the same one every other read uses (all the vendor's partners for admins and finance,
    the assigned ones for a channel manager, its own for partner users)."""
    partner_ids = accessible_partner_ids(principal)
    if contest.participant_kind is ParticipantKind.PARTNER:
        found = select(Partner.id).where(
            Partner.id == participant_id, col(Partner.id).in_(partner_ids)
        )
    else:
        found = select(User.id).where(
            User.id == participant_id,
            User.vendor_id == principal.vendor_id,
            col(User.partner_id).in_(partner_ids),
        )
    return (await session.exec(found)).first() is not None


def own_participant_id(principal: Principal, contest: Contest) -> uuid.UUID | None:
    """Who a partner user is in this contest: its organisation, or itself (vendor staff
    take no part)."""
    if principal.is_vendor_staff:
        return None
    if contest.participant_kind is ParticipantKind.PARTNER:
        return principal.partner_id
    return principal.user_id


async def readable_participant(
    session: AsyncSession, principal: Principal, contest: Contest, requested: uuid.UUID | None
) -> uuid.UUID | None:
    """Whose standing the caller may read: vendor staff name a participant in their partner
    scope (a channel manager: its assigned partners); partner users read their own only
    (the default when they name none). None when out of scope, answered like unknown."""
    if principal.is_vendor_staff:
        if requested is None or not await may_see_participant(
            session, principal, contest, requested
        ):
            return None
        return requested
    own = own_participant_id(principal, contest)
    if requested is not None and requested != own:
        return None
    return own


async def contests_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Contest]:
    rows = await session.exec(readable_contests(principal).where(col(Contest.id).in_(ids)))
    return {c.id: c for c in rows}


async def scoring_contests(
    session: AsyncSession, vendor_id: uuid.UUID, instant: datetime
) -> Sequence[Contest]:
    """Published, unfrozen contests whose window contains ``instant``."""
    rows = await session.exec(
        select(Contest).where(
            Contest.vendor_id == vendor_id,
            Contest.status == ContestStatus.SCHEDULED,
            col(Contest.frozen_at).is_(None),
            Contest.starts_at <= instant,
            Contest.ends_at > instant,
        )
    )
    return rows.all()


async def started_unfrozen_contests(session: AsyncSession, now: datetime) -> Sequence[Contest]:
    """Published contests that have started and are not frozen yet (all vendors: for the
    closer, which acts for nobody in particular)."""
    rows = await session.exec(
        select(Contest).where(
            Contest.status == ContestStatus.SCHEDULED,
            col(Contest.frozen_at).is_(None),
            Contest.starts_at < now,
        )
    )
    return rows.all()


async def frozen_pairs(
    session: AsyncSession, pairs: Collection[tuple[uuid.UUID, str]]
) -> set[tuple[uuid.UUID, str]]:
    """Which of these (contest, period key) pairs are frozen."""
    found: set[tuple[uuid.UUID, str]] = set()
    wanted = set(pairs)
    for chunk in _chunks({contest_id for contest_id, _ in wanted}):
        rows = await session.exec(
            select(ContestPeriod.contest_id, ContestPeriod.period_key).where(
                col(ContestPeriod.contest_id).in_(chunk),
                col(ContestPeriod.period_key).in_(sorted({key for _, key in wanted})),
            )
        )
        found.update(pair for pair in rows if pair in wanted)
    return found


async def credits_pending(
    session: AsyncSession, vendor_id: uuid.UUID, types: Collection[str], *, before: datetime
) -> bool:
    """Whether events of these types recorded before ``before`` wait to be dispatched."""
    found = await session.exec(
        select(OutboxEvent.id)
        .where(
            col(OutboxEvent.dispatched_at).is_(None),
            OutboxEvent.vendor_id == vendor_id,
            col(OutboxEvent.type).in_(list(types)),
            OutboxEvent.occurred_at < before,
        )
        .limit(1)
    )
    return found.first() is not None


async def credits_of_event(session: AsyncSession, event_id: uuid.UUID) -> Sequence[ContestCredit]:
    rows = await session.exec(select(ContestCredit).where(ContestCredit.event_id == event_id))
    return rows.all()


IN_CHUNK = 500  # ids per IN (...) list: well inside SQLite's and asyncpg's parameter limits


def _chunks(ids: Collection[uuid.UUID]) -> list[list[uuid.UUID]]:
    ordered = list(ids)
    return [ordered[i : i + IN_CHUNK] for i in range(0, len(ordered), IN_CHUNK)]


async def scoring_contests_between(
    session: AsyncSession, vendor_ids: Collection[uuid.UUID], earliest: datetime, latest: datetime
) -> Sequence[Contest]:
    """Published, unfrozen contests of these vendors whose window overlaps [earliest,
    latest]: the candidates for a batch of events (each event still checks its instant)."""
    found: list[Contest] = []
    for chunk in _chunks(vendor_ids):
        rows = await session.exec(
            select(Contest).where(
                col(Contest.vendor_id).in_(chunk),
                Contest.status == ContestStatus.SCHEDULED,
                col(Contest.frozen_at).is_(None),
                Contest.starts_at <= latest,
                Contest.ends_at > earliest,
            )
        )
        found.extend(rows)
    return found


async def credits_of_events(
    session: AsyncSession, event_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[ContestCredit]]:
    out: dict[uuid.UUID, list[ContestCredit]] = {}
    for chunk in _chunks(event_ids):
        rows = await session.exec(
            select(ContestCredit).where(col(ContestCredit.event_id).in_(chunk))
        )
        for row in rows:
            out.setdefault(row.event_id, []).append(row)
    return out


async def contests_with_ids(
    session: AsyncSession, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Contest]:
    out: dict[uuid.UUID, Contest] = {}
    for chunk in _chunks(ids):
        rows = await session.exec(select(Contest).where(col(Contest.id).in_(chunk)))
        out.update({c.id: c for c in rows})
    return out


async def tiers_of(
    session: AsyncSession, partner_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Upper-cased tiers of these partners (the form eligibility lists use)."""
    out: dict[uuid.UUID, str] = {}
    for chunk in _chunks(partner_ids):
        rows = await session.exec(
            select(Partner.id, Partner.tier).where(col(Partner.id).in_(chunk))
        )
        out.update({pid: tier.upper() for pid, tier in rows})
    return out


async def credits_for(
    session: AsyncSession, contest_id: uuid.UUID, period_key: str, participant_id: uuid.UUID
) -> Sequence[ContestCredit]:
    rows = await session.exec(
        select(ContestCredit)
        .where(
            ContestCredit.contest_id == contest_id,
            ContestCredit.period_key == period_key,
            ContestCredit.participant_id == participant_id,
        )
        .order_by(col(ContestCredit.occurred_at), col(ContestCredit.id))
    )
    return rows.all()


async def revisions(
    session: AsyncSession, principal: Principal, contest_id: uuid.UUID
) -> list[ContestRevision]:
    """A contest's changes, oldest first, as the caller may read them: a group it may not
    read (``partners.groups.readable_groups``: a pilot's treatment arm, which the contest
    named before it was changed) is left out of the eligibility's changes, as if never named,
    and a change of nothing else but that group is no change (the revision stays, with no
    changes: its version is the contest's)."""
    rows = (
        await session.exec(
            select(ContestRevision)
            .where(ContestRevision.contest_id == contest_id)
            .order_by(col(ContestRevision.version))
        )
    ).all()
    named = {
        uuid.UUID(str(g))
        for r in rows
        for side in r.changes.get("eligible_group_ids", [])
        for g in side or []
    }
    if not named:
        return list(rows)
    found = await session.exec(readable_groups(principal).where(col(PartnerGroup.id).in_(named)))
    readable = {g.id.hex for g in found}
    out = []
    for row in rows:
        changes = dict(row.changes)
        if "eligible_group_ids" in changes:
            old, new = (
                None if side is None else [g for g in side if uuid.UUID(str(g)).hex in readable]
                for side in changes["eligible_group_ids"]
            )
            if old == new:
                del changes["eligible_group_ids"]
            else:
                changes["eligible_group_ids"] = [old, new]
        out.append(ContestRevision(**(row.model_dump() | {"changes": changes})))
    return out


async def frozen_period(
    session: AsyncSession, contest_id: uuid.UUID, period_key: str
) -> ContestPeriod | None:
    rows = await session.exec(
        select(ContestPeriod).where(
            ContestPeriod.contest_id == contest_id, ContestPeriod.period_key == period_key
        )
    )
    return rows.first()


async def frozen_periods(session: AsyncSession, contest_id: uuid.UUID) -> dict[str, ContestPeriod]:
    rows = await session.exec(select(ContestPeriod).where(ContestPeriod.contest_id == contest_id))
    return {p.period_key: p for p in rows}


def frozen_standings(contest_id: uuid.UUID, period_key: str) -> SelectOfScalar[ContestStanding]:
    return (
        select(ContestStanding)
        .where(ContestStanding.contest_id == contest_id, ContestStanding.period_key == period_key)
        .order_by(col(ContestStanding.position))
    )


async def names_of(
    session: AsyncSession, vendor_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Display names of participants (partner organisations or users) of one vendor."""
    if not ids:
        return {}
    partners = await session.exec(
        select(Partner.id, Partner.name).where(
            Partner.vendor_id == vendor_id, col(Partner.id).in_(ids)
        )
    )
    out = {pid: name for pid, name in partners}
    missing = [i for i in ids if i not in out]
    if missing:
        users = await session.exec(
            select(User.id, User.display_name).where(
                User.vendor_id == vendor_id, col(User.id).in_(missing)
            )
        )
        out.update({uid: name for uid, name in users})
    return out


def contests_in_status(
    principal: Principal, status: ContestStatus | None, now: datetime
) -> SelectOfScalar[Contest]:
    """Readable contests in the status (all when None). LIVE is a scheduled contest whose
    window contains ``now`` (the stored status says SCHEDULED until it ends)."""
    stmt = readable_contests(principal)
    if status is ContestStatus.LIVE:
        return stmt.where(
            Contest.status == ContestStatus.SCHEDULED,
            Contest.starts_at <= now,
            Contest.ends_at > now,
        )
    if status is not None:
        stmt = stmt.where(Contest.status == status)
    return stmt


async def groups_at(
    session: AsyncSession, contest: Contest, partner_id: uuid.UUID, at: datetime
) -> frozenset[str]:
    """The partner's groups at ``at`` (hex), read only for a contest that names groups."""
    if not contest.eligible_group_ids:
        return frozenset()
    return frozenset(g.hex for g in await groups_of(session, contest.vendor_id, partner_id, at))


async def winners_of(
    session: AsyncSession, contest_id: uuid.UUID, period_key: str | None = None
) -> Sequence[ContestWinner]:
    """A contest's recorded winners (of one period, or of all), by period then rank. The
    caller has read the contest through ``readable_contests``; what of each winner it may
    see is ``reads.Reader.winners``'s."""
    stmt = select(ContestWinner).where(ContestWinner.contest_id == contest_id)
    if period_key is not None:
        stmt = stmt.where(ContestWinner.period_key == period_key)
    rows = await session.exec(
        stmt.order_by(col(ContestWinner.period_key), col(ContestWinner.rank), col(ContestWinner.id))
    )
    return rows.all()


async def get_winner(
    session: AsyncSession, principal: Principal, winner_id: uuid.UUID
) -> ContestWinner | None:
    """A winner of a contest the caller may read (vendor staff: any of its vendor)."""
    rows = await session.exec(
        select(ContestWinner).where(
            ContestWinner.id == winner_id,
            col(ContestWinner.contest_id).in_(
                readable_contests(principal).with_only_columns(col(Contest.id))
            ),
        )
    )
    return rows.first()
