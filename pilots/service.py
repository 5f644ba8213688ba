"""Creating, starting, extending and ending pilots. Every change is audited and runs in the
caller's transaction; bad input raises a coded ``DomainError`` before anything is written.

The treatment arm is a partner group (``treatment_group_id``) created with the pilot and
filled when it starts, so a BASE or BONUS program (``targetGroupIds``), or anything else
that targets groups, applies to the treatment only. Ending archives that group: every
membership closes at that instant and sales after it earn nothing more under the pilot."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import audit, passes
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem, name_problem
from partners.audit_log import changed_fields, log_change
from partners.group_models import MemberMode, PartnerGroup, PartnerGroupMember
from partners.groups import member_ids_at, readable_groups, refresh_memberships
from partners.models import Partner, PartnerStatus
from partners.roles import Principal
from pilots.assignment import MAX_SEED, Candidate, assign
from pilots.errors import PilotErrorCode
from pilots.models import Arm, Pilot, PilotAssignment, PilotStatus
from pilots.policy import PILOTS, PilotOp
from pilots.repository import get_readable_pilot

log = logging.getLogger(__name__)

LIVE = (PilotStatus.DRAFT, PilotStatus.RUNNING)
AUDIT_ENTITY = "pilot"


def treatment_group_name(name: str) -> str:
    return f"Pilot {name}: treatment"


# A pilot is an experiment with an end in sight: a longer one is a program, not a pilot
# (and an end in year 9999 a typo); extending one is bound the same way, from now.
MAX_RUN = timedelta(days=2 * 366)


def _check_end(ends_at: datetime, now: datetime, errors: list[DomainError]) -> None:
    if ends_at.tzinfo is None:
        errors.append(DomainError(PilotErrorCode.INVALID_DATE, "Give a timezone.", "ends_at"))
    elif ends_at <= now:
        errors.append(
            DomainError(PilotErrorCode.INVALID_DATE, "The end must be in the future.", "ends_at")
        )
    elif ends_at > now + MAX_RUN:
        errors.append(DomainError(
            PilotErrorCode.INVALID_DATE,
            f"A pilot ends within two years: by {(now + MAX_RUN).date().isoformat()}.",
            "ends_at",
        ))  # fmt: skip


def snapshot(pilot: Pilot) -> dict[str, Any]:
    return {
        "name": pilot.name,
        "status": pilot.status.value,
        "group_id": pilot.group_id,
        "treatment_group_id": pilot.treatment_group_id,
        "seed": pilot.seed,
        "ends_at": pilot.ends_at,
        "started_at": pilot.started_at,
        "ended_at": pilot.ended_at,
    }


async def _eligible_members(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, now: datetime
) -> tuple[PartnerGroup, list[Partner]]:
    group = (
        await session.exec(readable_groups(principal).where(PartnerGroup.id == group_id))
    ).first()
    if group is None:
        raise DomainError(PilotErrorCode.NOT_FOUND, "No such group.", "group_id")
    treatment_of = await session.exec(select(Pilot.id).where(Pilot.treatment_group_id == group.id))
    if group.archived_at is not None or treatment_of.first() is not None:
        raise DomainError(
            PilotErrorCode.INELIGIBLE_GROUP,
            "An archived group, or a pilot's own treatment group, cannot be piloted.",
            "group_id",
        )
    members = list(
        await session.exec(
            select(Partner)
            .where(
                col(Partner.id).in_(member_ids_at(group.id, now)),
                Partner.status == PartnerStatus.ACTIVE,
            )
            .order_by(col(Partner.id))
        )
    )
    if not members:
        raise DomainError(
            PilotErrorCode.EMPTY_GROUP, "The group has no active partners.", "group_id"
        )
    if len(members) < 2:
        raise DomainError(
            PilotErrorCode.TOO_FEW_PARTNERS,
            "A pilot needs two active partners at least: one for each arm.",
            "group_id",
        )
    return group, members


async def _overlap(
    session: AsyncSession, vendor_id: uuid.UUID, partner_ids: list[uuid.UUID]
) -> None:
    rows = list(
        await session.exec(
            select(Pilot.name, PilotAssignment.partner_id)
            .join(Pilot, col(Pilot.id) == col(PilotAssignment.pilot_id))
            .where(
                Pilot.vendor_id == vendor_id,
                col(Pilot.status).in_(LIVE),
                col(PilotAssignment.partner_id).in_(partner_ids),
            )
        )
    )
    if rows:
        names = sorted({name for name, _ in rows})
        raise DomainError(
            PilotErrorCode.OVERLAPPING_PILOT,
            f"{len({p for _, p in rows})} partners of this group are in a planned or running "
            f"pilot ({', '.join(names)}); end it first or pilot another group.",
            "group_id",
        )


async def create_pilot(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    group_id: uuid.UUID,
    ends_at: datetime,
    seed: int | None = None,
    description: str = "",
) -> Pilot:
    """A DRAFT pilot over the group's active members now, assigned to arms at random
    (stratified, from ``seed``, or a fresh one that is recorded)."""
    PILOTS.require(principal, PilotOp.CREATE)
    await begin_write(session)
    now = clock.now()
    name = name.strip()
    errors: list[DomainError] = []
    if not name:
        errors.append(DomainError(PilotErrorCode.REQUIRED, "Give the pilot a name.", "name"))
    elif len(name) > 150:
        errors.append(DomainError(PilotErrorCode.TOO_LONG, "At most 150 characters.", "name"))
    elif problem := name_problem(name):
        errors.append(DomainError(PilotErrorCode.INVALID_CHARACTERS, problem, "name"))
    if len(description) > 2000:
        errors.append(
            DomainError(PilotErrorCode.TOO_LONG, "At most 2000 characters.", "description")
        )
    elif problem := free_text_problem(description):
        errors.append(DomainError(PilotErrorCode.INVALID_CHARACTERS, problem, "description"))
    _check_end(ends_at, now, errors)
    if seed is not None and not 0 <= seed < MAX_SEED:
        errors.append(
            DomainError(PilotErrorCode.INVALID_SEED, f"A seed is 0 to {MAX_SEED - 1}.", "seed")
        )
    if errors:
        raise DomainErrors(errors)
    group, members = await _eligible_members(session, principal, group_id, now)
    await _overlap(session, principal.vendor_id, [p.id for p in members])
    taken = await session.exec(
        select(Pilot.id).where(Pilot.vendor_id == principal.vendor_id, Pilot.name == name)
    )
    group_taken = await session.exec(
        select(PartnerGroup.id).where(
            PartnerGroup.vendor_id == principal.vendor_id,
            PartnerGroup.name == treatment_group_name(name),
        )
    )
    if taken.first() is not None or group_taken.first() is not None:
        raise DomainError(PilotErrorCode.DUPLICATE_NAME, "A pilot with this name exists.", "name")
    seed = secrets.randbelow(MAX_SEED) if seed is None else seed
    treatment = PartnerGroup(
        vendor_id=principal.vendor_id, name=treatment_group_name(name),
        description=f"The treatment arm of pilot {name}; its members are the pilot's to set.",
        rule=[], managed_by="pilot", created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(treatment)
    await session.flush()
    pilot = Pilot(
        vendor_id=principal.vendor_id, name=name, description=description, group_id=group.id,
        treatment_group_id=treatment.id, seed=seed, status=PilotStatus.DRAFT, ends_at=ends_at,
        created_by=principal.caller[:100], created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(pilot)
    await session.flush()
    arms = assign((Candidate(p.id, p.region, p.tier) for p in members), seed)
    for partner_id, (arm, stratum) in sorted(arms.items()):
        session.add(PilotAssignment(
            vendor_id=pilot.vendor_id, pilot_id=pilot.id, partner_id=partner_id, arm=arm,
            stratum=stratum,
        ))  # fmt: skip
    await session.flush()
    counts = {arm.value: sum(1 for a, _ in arms.values() if a is arm) for arm in Arm}
    await log_change(
        session, principal, clock, action="pilot.created", entity_type=AUDIT_ENTITY,
        entity_id=pilot.id, before=None, after={**snapshot(pilot), "arms": counts},
    )  # fmt: skip
    return pilot


async def _pilot(session: AsyncSession, principal: Principal, pilot_id: uuid.UUID) -> Pilot:
    pilot = await get_readable_pilot(session, principal, pilot_id, lock=True)
    if pilot is None:
        raise DomainError(PilotErrorCode.NOT_FOUND, "No such pilot.", "id")
    return pilot


def _status(pilot: Pilot, allowed: tuple[PilotStatus, ...], verb: str) -> None:
    if pilot.status not in allowed:
        raise DomainError(
            PilotErrorCode.INVALID_STATUS, f"A {pilot.status.value} pilot cannot be {verb}.", "id"
        )


def _reason(reason: str | None, errors: list[DomainError]) -> None:
    """A reason is kept in the audit log, which people read: free text."""
    if reason and (problem := free_text_problem(reason)):
        errors.append(DomainError(PilotErrorCode.INVALID_CHARACTERS, problem, "reason"))


async def start_pilot(
    session: AsyncSession, principal: Principal, clock: Clock, *, pilot_id: uuid.UUID
) -> Pilot:
    """The treatment arm joins the treatment group now."""
    PILOTS.require(principal, PilotOp.START)
    await begin_write(session)
    pilot = await _pilot(session, principal, pilot_id)
    _status(pilot, (PilotStatus.DRAFT,), "started")
    now = clock.now()
    errors: list[DomainError] = []
    _check_end(pilot.ends_at, now, errors)
    if errors:
        raise DomainError(
            PilotErrorCode.INVALID_DATE,
            "The pilot's end has passed: extend it first."
            if pilot.ends_at <= now
            # A draft stored before ends were bounded: its end is moved in, not out.
            else "The pilot's end is more than two years ahead: give it an end within two "
            "years first (pilotExtend).",
            "id",
        )
    before = snapshot(pilot)
    treated = await session.exec(
        select(PilotAssignment.partner_id).where(
            PilotAssignment.pilot_id == pilot.id, PilotAssignment.arm == Arm.TREATMENT
        )
    )
    for partner_id in treated:
        session.add(PartnerGroupMember(
            vendor_id=pilot.vendor_id, group_id=pilot.treatment_group_id, partner_id=partner_id,
            mode=MemberMode.INCLUDE, created_at=now,
        ))  # fmt: skip
    pilot.status = PilotStatus.RUNNING
    pilot.started_at = pilot.updated_at = now
    session.add(pilot)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=pilot.vendor_id, group_ids=[pilot.treatment_group_id],
        reason=f"pilot {pilot.name} started", by=principal.caller,
    )  # fmt: skip
    await log_change(
        session, principal, clock, action="pilot.started", entity_type=AUDIT_ENTITY,
        entity_id=pilot.id, before=before, after=snapshot(pilot),
    )  # fmt: skip
    return pilot


async def extend_pilot(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    pilot_id: uuid.UUID,
    ends_at: datetime,
    reason: str | None = None,
) -> Pilot:
    """Move the planned end later (never earlier: end it instead); an end beyond the
    two-year bound (a pilot stored before it) may be moved in, within it."""
    PILOTS.require(principal, PilotOp.EXTEND)
    await begin_write(session)
    pilot = await _pilot(session, principal, pilot_id)
    _status(pilot, LIVE, "extended")
    errors: list[DomainError] = []
    _check_end(ends_at, clock.now(), errors)
    beyond = pilot.ends_at > clock.now() + MAX_RUN
    if not errors and not beyond and ends_at <= pilot.ends_at:
        errors.append(DomainError(
            PilotErrorCode.INVALID_DATE,
            f"The pilot already runs until {pilot.ends_at.isoformat()}; give a later end.",
            "ends_at",
        ))  # fmt: skip
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    before = snapshot(pilot)
    pilot.ends_at = ends_at
    pilot.updated_at = clock.now()
    session.add(pilot)
    await session.flush()
    await log_change(
        session, principal, clock, action="pilot.extended", entity_type=AUDIT_ENTITY,
        entity_id=pilot.id, before=before, after=snapshot(pilot), reason=reason,
    )  # fmt: skip
    return pilot


async def end_pilot(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    pilot_id: uuid.UUID,
    reason: str | None = None,
) -> Pilot:
    """End now: the treatment group is archived, so every membership in it closes."""
    PILOTS.require(principal, PilotOp.END)
    await begin_write(session)
    pilot = await _pilot(session, principal, pilot_id)
    _status(pilot, LIVE, "ended")
    errors: list[DomainError] = []
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    before = await _end(session, clock, pilot, by=principal.caller)
    await log_change(
        session, principal, clock, action="pilot.ended", entity_type=AUDIT_ENTITY,
        entity_id=pilot.id, before=before, after=snapshot(pilot), reason=reason,
    )  # fmt: skip
    return pilot


async def _end(session: AsyncSession, clock: Clock, pilot: Pilot, *, by: str) -> dict[str, Any]:
    """Archive the treatment group (its memberships close now) and mark the pilot ENDED;
    returns its snapshot before. The assignments stay, so the report still reads them."""
    now = clock.now()
    before = snapshot(pilot)
    group = await session.get(PartnerGroup, pilot.treatment_group_id)
    assert group is not None  # a foreign key
    group.archived_at = group.updated_at = now
    session.add(group)
    pilot.status = PilotStatus.ENDED
    pilot.ended_at = pilot.updated_at = now
    session.add(pilot)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=pilot.vendor_id, group_ids=[pilot.treatment_group_id],
        reason=f"pilot {pilot.name} ended", by=by,
    )  # fmt: skip
    return before


# ------------------------------------------------------------------ the planned end

CLOCK_ACTOR = "clock:pilot-end"  # who the audit log names for an end the clock made


async def end_due(db: Database, clock: Clock) -> int:
    """End every running pilot whose planned end has passed, each in its own transaction
    (``infra.passes.each``: one that fails is retried next pass, the others go on). A pilot
    another process ended first, or extended meanwhile, is left as it is. Returns how many
    were ended."""
    now = clock.now()
    async with db.session() as session:
        due = list(
            await session.exec(
                select(Pilot.id)
                .where(Pilot.status == PilotStatus.RUNNING, col(Pilot.ends_at) <= now)
                .order_by(col(Pilot.ends_at), col(Pilot.id))
            )
        )

    async def end(pilot_id: uuid.UUID) -> int:
        async with db.transaction() as session:
            await begin_write(session)
            pilot = (
                await session.exec(select(Pilot).where(Pilot.id == pilot_id).with_for_update())
            ).one()
            if pilot.status is not PilotStatus.RUNNING or pilot.ends_at > clock.now():
                return 0  # ended by hand, or extended, since the list was read
            before = await _end(session, clock, pilot, by=CLOCK_ACTOR)
            after = snapshot(pilot)
            before, after = changed_fields(before, after)
            await audit.record(
                session, vendor_id=pilot.vendor_id, actor=CLOCK_ACTOR, action="pilot.ended",
                entity_type=AUDIT_ENTITY, entity_id=str(pilot.id), before=dict(before),
                after=dict(after), reason="its planned end passed", at=clock.now(),
            )  # fmt: skip
            return 1

    return await passes.each("ending the pilot", due, end)


async def run_pilot_ends(db: Database, clock: Clock, interval: float = 5.0) -> None:
    """End pilots as the clock passes their planned end (inline in each API process, or in
    `channelboard dispatch`)."""
    while True:
        try:
            await end_due(db, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ending pilots failed; retrying")
        await asyncio.sleep(interval)
