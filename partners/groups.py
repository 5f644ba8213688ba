"""Partner groups: rules, explicit members, membership history, and program tiers.

Membership of a partner in a group is ``(explicit INCLUDE or the rule matches) and not an
explicit EXCLUDE``, for groups that are not archived. ``refresh_memberships`` brings the
interval table (``PartnerGroupMembership``) in line with that, in the caller's
transaction; it runs when members are added or removed, when a rule changes, when a group
is archived, and when a partner's attributes change (its program tier here; its region,
country or tags in ``partners.admin`` — partnerCreate, partnerUpdate, application approval —
and ``partners.imports``, through ``admin.refresh_partner_groups``, in the same
transaction; any new service that changes them must do the same). ``groups_of`` answers
membership at an instant: money and contests read it at the sale's date."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.clock import Clock
from infra.codes import is_country
from infra.db import begin_write, for_change
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem, identifier_problem, name_problem
from partners.access import accessible_partner_ids
from partners.audit_log import log_change
from partners.errors import GroupErrorCode
from partners.events import record_memberships_changed
from partners.group_models import (
    MemberMode,
    PartnerGroup,
    PartnerGroupMember,
    PartnerGroupMembership,
    PartnerTierChange,
)
from partners.group_policy import GROUPS, MANAGED_GROUP_READERS, GroupOp
from partners.models import Partner
from partners.roles import Principal

# ------------------------------------------------------------------------------ rules


class RuleOp(StrEnum):
    IN = "IN"
    NOT_IN = "NOT_IN"
    EQ = "EQ"


# The partner attributes a rule may name. ``tier`` is the program tier (``Partner.tier``);
# ``tags`` holds several values: IN = has any of them, NOT_IN = has none, EQ = has it.
ATTRIBUTES = ("region", "country", "tags", "tier")
MAX_CONDITIONS = 20
MAX_VALUES = 100
MAX_VALUE_LENGTH = 64


@dataclass(frozen=True)
class Condition:
    attribute: str
    op: RuleOp
    values: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "op": self.op.value, "values": list(self.values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Condition:
        return cls(str(data["attribute"]), RuleOp(data["op"]), tuple(data["values"]))


def _norm(attribute: str, value: str) -> str:
    return value.strip().casefold() if attribute == "tags" else value.strip().upper()


def parse_rule(raw: Iterable[tuple[str, str, list[str]]], field: str = "rule") -> list[Condition]:
    """Validate ``(attribute, op, values)`` conditions; raise every problem at once."""
    errors: list[DomainError] = []
    out: list[Condition] = []
    items = list(raw)
    if len(items) > MAX_CONDITIONS:
        raise DomainError(
            GroupErrorCode.INVALID_RULE, f"At most {MAX_CONDITIONS} conditions.", field
        )
    for i, (attribute, op, values) in enumerate(items):
        path = f"{field}.{i}"
        name = attribute.strip().lower()
        if name not in ATTRIBUTES:
            errors.append(DomainError(
                GroupErrorCode.UNKNOWN_ATTRIBUTE,
                f"A rule can name {', '.join(ATTRIBUTES)}; not '{attribute[:50]}'.",
                f"{path}.attribute",
            ))  # fmt: skip
            continue
        try:
            rule_op = RuleOp(op.strip().upper())
        except ValueError:
            errors.append(DomainError(
                GroupErrorCode.INVALID_RULE, "Use IN, NOT_IN or EQ.", f"{path}.op"
            ))  # fmt: skip
            continue
        cleaned = sorted({_norm(name, v) for v in values if v.strip()})
        if not cleaned:
            message = "Give at least one value."
        elif rule_op is RuleOp.EQ and len(cleaned) != 1:
            message = "EQ takes exactly one value."
        elif len(cleaned) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in cleaned):
            message = f"At most {MAX_VALUES} values of {MAX_VALUE_LENGTH} characters."
        elif name == "country" and not all(is_country(v) for v in cleaned):
            message = "Countries are ISO 3166-1 alpha-2 codes like DE."
        elif problem := next(filter(None, map(identifier_problem, cleaned)), None):
            errors.append(DomainError(GroupErrorCode.INVALID_CHARACTERS, problem, f"{path}.values"))
            continue
        else:
            out.append(Condition(name, rule_op, tuple(cleaned)))
            continue
        errors.append(DomainError(GroupErrorCode.INVALID_RULE, message, f"{path}.values"))
    if errors:
        raise DomainErrors(errors)
    return out


def partner_attributes(partner: Partner) -> dict[str, set[str]]:
    """A partner's rule attributes, normalised. ``country`` and ``tags`` are read when the
    partner table has them (they arrive with partner editing)."""
    country = getattr(partner, "country", None) or ""
    tags = getattr(partner, "tags", None) or []
    return {
        "region": {_norm("region", partner.region)} if partner.region else set(),
        "country": {_norm("country", country)} if country else set(),
        "tags": {_norm("tags", t) for t in tags if t},
        "tier": {_norm("tier", partner.tier)} if partner.tier else set(),
    }


def matches(rule: list[Condition], attributes: dict[str, set[str]]) -> bool:
    """Every condition holds. An empty rule matches nobody (explicit members only)."""
    if not rule:
        return False
    for condition in rule:
        have = attributes.get(condition.attribute, set())
        wanted = set(condition.values)
        if condition.op is RuleOp.NOT_IN:
            ok = not (have & wanted)
        else:  # IN, EQ: has one of the values
            ok = bool(have & wanted)
        if not ok:
            return False
    return True


# ------------------------------------------------------------------ membership history


async def refresh_memberships(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID] | None = None,
    group_ids: Collection[uuid.UUID] | None = None,
    reason: str,
    by: str,
) -> list[PartnerGroupMembership]:
    """Open and close membership intervals so that they match groups' rules and explicit
    members now, for the given partners (all of the vendor's when None) in the given groups
    (all when None). Returns the intervals opened or closed. Runs in the caller's
    transaction; idempotent. The change-set is recorded (``GroupMembershipsChanged``)."""
    now = clock.now()
    groups_stmt = select(PartnerGroup).where(PartnerGroup.vendor_id == vendor_id)
    partners_stmt = select(Partner).where(Partner.vendor_id == vendor_id)
    members_stmt = select(PartnerGroupMember).where(PartnerGroupMember.vendor_id == vendor_id)
    open_stmt = select(PartnerGroupMembership).where(
        PartnerGroupMembership.vendor_id == vendor_id,
        col(PartnerGroupMembership.left_at).is_(None),
    )
    if group_ids is not None:
        groups_stmt = groups_stmt.where(col(PartnerGroup.id).in_(list(group_ids)))
        members_stmt = members_stmt.where(col(PartnerGroupMember.group_id).in_(list(group_ids)))
        open_stmt = open_stmt.where(col(PartnerGroupMembership.group_id).in_(list(group_ids)))
    if partner_ids is not None:
        partners_stmt = partners_stmt.where(col(Partner.id).in_(list(partner_ids)))
        members_stmt = members_stmt.where(col(PartnerGroupMember.partner_id).in_(list(partner_ids)))
        open_stmt = open_stmt.where(col(PartnerGroupMembership.partner_id).in_(list(partner_ids)))
    groups = list(await session.exec(groups_stmt))
    partners = list(await session.exec(partners_stmt))
    explicit = {(m.group_id, m.partner_id): m.mode for m in await session.exec(members_stmt)}
    current = {(m.group_id, m.partner_id): m for m in await session.exec(open_stmt)}

    wanted: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for group in groups:
        if group.archived_at is not None:
            continue
        rule = [Condition.from_json(c) for c in group.rule]
        for partner in partners:
            mode = explicit.get((group.id, partner.id))
            if mode is MemberMode.EXCLUDE:
                continue
            if mode is MemberMode.INCLUDE or matches(rule, partner_attributes(partner)):
                wanted.add((group.id, partner.id))

    changed: list[PartnerGroupMembership] = []
    for key, interval in current.items():
        if key not in wanted:
            interval.left_at = now
            interval.left_reason = reason[:500]
            interval.left_by = by[:100]
            session.add(interval)
            changed.append(interval)
    # An archived group's timed windows end too (a pilot's end, an archived promotion).
    archived = [g.id for g in groups if g.archived_at is not None]
    if archived:
        timed = select(PartnerGroupMembership).where(
            col(PartnerGroupMembership.group_id).in_(archived),
            col(PartnerGroupMembership.left_at) > now,
        )
        if partner_ids is not None:
            timed = timed.where(col(PartnerGroupMembership.partner_id).in_(list(partner_ids)))
        for interval in await session.exec(timed):
            interval.left_at = max(now, interval.joined_at)
            interval.left_reason = reason[:500]
            interval.left_by = by[:100]
            session.add(interval)
            changed.append(interval)
    for group_id, partner_id in sorted(wanted - set(current)):
        interval = PartnerGroupMembership(
            vendor_id=vendor_id, group_id=group_id, partner_id=partner_id, joined_at=now,
            join_reason=reason[:500], joined_by=by[:100],
        )  # fmt: skip
        session.add(interval)
        changed.append(interval)
    await session.flush()
    # Every membership change but a timed window's goes through here: one place to tell
    # (a window is told by its rule's events, and its end is a time boundary).
    await record_memberships_changed(session, clock, vendor_id=vendor_id, intervals=changed)
    return changed


async def open_window(
    session: AsyncSession,
    clock: Clock,
    *,
    group: PartnerGroup,
    partner_id: uuid.UUID,
    until: datetime,
    reason: str,
    by: str,
) -> PartnerGroupMembership:
    """A timed membership: the partner is in the group from now until ``until`` (a
    promotion tier placed by an incentive rule), whatever the group's rule says; programs
    targeting the group pay it during the window. ``refresh_memberships`` never touches
    it (it keeps only the open-ended intervals). Raises NOT_FOUND for an archived group (the
    caller has read ``group`` as the partner's vendor's)."""
    if group.archived_at is not None:
        raise DomainError(GroupErrorCode.NOT_FOUND, "No such group.", "group_id")
    if group.managed_by is not None:  # a pilot's arm: its members are the pilot's to set
        raise DomainError(
            GroupErrorCode.MANAGED, f"This group is managed by a {group.managed_by}.", "group_id"
        )
    interval = PartnerGroupMembership(
        vendor_id=group.vendor_id, group_id=group.id, partner_id=partner_id,
        joined_at=clock.now(),
        left_at=until, join_reason=reason[:500], joined_by=by[:100],
        left_reason="window ended", left_by=by[:100],
    )  # fmt: skip
    session.add(interval)  # flushed by the caller (a rule run flushes its firings at once)
    return interval


async def close_windows(
    session: AsyncSession,
    clock: Clock,
    *,
    membership_ids: Collection[uuid.UUID],
    reason: str,
    by: str,
) -> list[PartnerGroupMembership]:
    """End now the timed memberships among ``membership_ids`` that are still running."""
    if not membership_ids:
        return []
    now = clock.now()
    rows = list(
        await session.exec(
            select(PartnerGroupMembership).where(
                col(PartnerGroupMembership.id).in_(list(membership_ids)),
                col(PartnerGroupMembership.left_at) > now,
            )
        )
    )
    for interval in rows:
        interval.left_at = max(now, interval.joined_at)
        interval.left_reason = reason[:500]
        interval.left_by = by[:100]
        session.add(interval)
    await session.flush()
    return rows


async def groups_of(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, at: datetime
) -> set[uuid.UUID]:
    """The groups the partner was in at ``at`` (intervals are ``[joined_at, left_at)``;
    none after its group was archived)."""
    rows = await session.exec(
        select(PartnerGroupMembership.group_id)
        .join(PartnerGroup, col(PartnerGroup.id) == col(PartnerGroupMembership.group_id))
        .where(
            _not_archived_at(at),
            PartnerGroupMembership.vendor_id == vendor_id,
            PartnerGroupMembership.partner_id == partner_id,
            col(PartnerGroupMembership.joined_at) <= at,
            or_(
                col(PartnerGroupMembership.left_at).is_(None),
                col(PartnerGroupMembership.left_at) > at,
            ),
        )
    )
    return set(rows)


def _not_archived_at(at: datetime) -> ColumnElement[bool]:
    return or_(col(PartnerGroup.archived_at).is_(None), col(PartnerGroup.archived_at) > at)


def member_ids_at(group_id: uuid.UUID, at: datetime) -> SelectOfScalar[uuid.UUID]:
    """The group's members at ``at`` (none after it was archived)."""
    return (
        select(PartnerGroupMembership.partner_id)
        .join(PartnerGroup, col(PartnerGroup.id) == col(PartnerGroupMembership.group_id))
        .where(
            _not_archived_at(at),
            PartnerGroupMembership.group_id == group_id,
            col(PartnerGroupMembership.joined_at) <= at,
            or_(
                col(PartnerGroupMembership.left_at).is_(None),
                col(PartnerGroupMembership.left_at) > at,
            ),
        )
    )


# ----------------------------------------------------------------------- reading


def readable_groups(principal: Principal) -> SelectOfScalar[PartnerGroup]:
    """Vendor staff read their vendor's groups, but for a pilot's treatment arm, which only
    vendor admins and finance read (``MANAGED_GROUP_READERS``); partner roles read none."""
    if not GROUPS.allows(principal, GroupOp.READ):
        return select(PartnerGroup).where(false())
    stmt = select(PartnerGroup).where(PartnerGroup.vendor_id == principal.vendor_id)
    if principal.role not in MANAGED_GROUP_READERS:
        stmt = stmt.where(col(PartnerGroup.managed_by).is_(None))
    return stmt


def readable_members(
    principal: Principal, group_id: uuid.UUID, at: datetime
) -> SelectOfScalar[Partner]:
    """The members at ``at`` the caller may read (a channel manager: its assigned ones)."""
    if not GROUPS.allows(principal, GroupOp.READ):
        return select(Partner).where(false())
    return (
        select(Partner)
        .where(col(Partner.id).in_(member_ids_at(group_id, at)))
        .where(col(Partner.id).in_(accessible_partner_ids(principal)))
        .order_by(col(Partner.name), col(Partner.id))
    )


async def groups_by_ids(
    session: AsyncSession, principal: Principal, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, PartnerGroup]:
    rows = await session.exec(readable_groups(principal).where(col(PartnerGroup.id).in_(ids)))
    return {g.id: g for g in rows}


async def partner_groups_now(
    session: AsyncSession, principal: Principal, partner_id: uuid.UUID, at: datetime
) -> list[PartnerGroup]:
    """The groups a partner is in at ``at``, as the caller may read them."""
    ids = await groups_of(session, principal.vendor_id, partner_id, at)
    found = await groups_by_ids(session, principal, ids)
    return sorted(found.values(), key=lambda g: g.name)


async def tier_history(
    session: AsyncSession, principal: Principal, partner_id: uuid.UUID
) -> list[PartnerTierChange]:
    if not GROUPS.allows(principal, GroupOp.READ):
        return []
    rows = await session.exec(
        select(PartnerTierChange)
        .where(
            PartnerTierChange.vendor_id == principal.vendor_id,
            PartnerTierChange.partner_id == partner_id,
            col(PartnerTierChange.partner_id).in_(accessible_partner_ids(principal)),
        )
        .order_by(col(PartnerTierChange.changed_at), col(PartnerTierChange.id))
    )
    return list(rows)


# ----------------------------------------------------------------------- writing


def _name(name: str, errors: list[DomainError]) -> str:
    name = name.strip()
    if not name:
        errors.append(DomainError(GroupErrorCode.REQUIRED, "Give the group a name.", "name"))
    elif len(name) > 200:
        errors.append(DomainError(GroupErrorCode.TOO_LONG, "At most 200 characters.", "name"))
    elif problem := name_problem(name):
        errors.append(DomainError(GroupErrorCode.INVALID_CHARACTERS, problem, "name"))
    return name


def _description(description: str, errors: list[DomainError]) -> str:
    if len(description) > 2000:
        errors.append(
            DomainError(GroupErrorCode.TOO_LONG, "At most 2000 characters.", "description")
        )
    elif problem := free_text_problem(description):
        errors.append(DomainError(GroupErrorCode.INVALID_CHARACTERS, problem, "description"))
    return description


async def _name_taken(
    session: AsyncSession, vendor_id: uuid.UUID, name: str, but: uuid.UUID | None = None
) -> None:
    stmt = select(PartnerGroup.id).where(
        PartnerGroup.vendor_id == vendor_id, PartnerGroup.name == name
    )
    if but is not None:
        stmt = stmt.where(PartnerGroup.id != but)
    if (await session.exec(stmt)).first() is not None:
        raise DomainError(GroupErrorCode.DUPLICATE_NAME, "A group with this name exists.", "name")


def snapshot(group: PartnerGroup) -> dict[str, Any]:
    return {
        "name": group.name,
        "description": group.description,
        "rule": group.rule,
        "archived_at": group.archived_at.isoformat() if group.archived_at else None,
    }


async def _group(session: AsyncSession, principal: Principal, group_id: uuid.UUID) -> PartnerGroup:
    """The group to change, locked (``for_change``: two changes of one group take turns):
    refused when another domain manages its members."""
    group = (
        await session.exec(
            for_change(readable_groups(principal).where(PartnerGroup.id == group_id), PartnerGroup)
        )
    ).first()
    if group is None:
        raise DomainError(GroupErrorCode.NOT_FOUND, "No such group.", "id")
    if group.managed_by is not None:
        raise DomainError(
            GroupErrorCode.MANAGED,
            f"This group is managed by a {group.managed_by} (its treatment arm): start, extend "
            "or end the pilot instead.",
            "id",
        )
    return group


async def create_group(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    description: str = "",
    rule: list[tuple[str, str, list[str]]] | None = None,
) -> PartnerGroup:
    GROUPS.require(principal, GroupOp.CREATE)
    await begin_write(session)
    errors: list[DomainError] = []
    name = _name(name, errors)
    description = _description(description, errors)
    conditions: list[Condition] = []
    try:
        conditions = parse_rule(rule or [])
    except DomainErrors as bad:
        errors.extend(bad.errors)
    except DomainError as bad:
        errors.append(bad)
    if errors:
        raise DomainErrors(errors)
    await _name_taken(session, principal.vendor_id, name)
    now = clock.now()
    group = PartnerGroup(
        vendor_id=principal.vendor_id, name=name, description=description,
        rule=[c.to_json() for c in conditions], created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(group)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=group.vendor_id, group_ids=[group.id],
        reason="group created", by=principal.caller,
    )  # fmt: skip
    await _audit(session, principal, clock, "partner_group.created", group, None, snapshot(group))
    return group


def _reason(reason: str | None, errors: list[DomainError]) -> None:
    """A reason is kept in membership history and the audit log: free text."""
    if reason and (problem := free_text_problem(reason)):
        errors.append(DomainError(GroupErrorCode.INVALID_CHARACTERS, problem, "reason"))


async def update_group(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    group_id: uuid.UUID,
    name: str | None = None,
    description: str | None = None,
    rule: list[tuple[str, str, list[str]]] | None = None,
    reason: str | None = None,
) -> PartnerGroup:
    """Change what was given; a new rule recomputes every partner's membership now."""
    GROUPS.require(principal, GroupOp.UPDATE)
    await begin_write(session)
    group = await _group(session, principal, group_id)
    if group.archived_at is not None:
        raise DomainError(GroupErrorCode.ARCHIVED, "This group is archived.", "id")
    before = snapshot(group)
    errors: list[DomainError] = []
    new_name = _name(name, errors) if name is not None else group.name
    new_description = _description(description, errors) if description is not None else None
    _reason(reason, errors)
    conditions: list[Condition] | None = None
    if rule is not None:
        try:
            conditions = parse_rule(rule)
        except DomainErrors as bad:
            errors.extend(bad.errors)
        except DomainError as bad:
            errors.append(bad)
    if errors:
        raise DomainErrors(errors)
    if new_name != group.name:
        await _name_taken(session, group.vendor_id, new_name, but=group.id)
    group.name = new_name
    if new_description is not None:
        group.description = new_description
    if conditions is not None:
        group.rule = [c.to_json() for c in conditions]
    group.updated_at = clock.now()
    session.add(group)
    await session.flush()
    if conditions is not None:
        await refresh_memberships(
            session, clock, vendor_id=group.vendor_id, group_ids=[group.id],
            reason=reason or "group rule changed", by=principal.caller,
        )  # fmt: skip
    await _audit(
        session, principal, clock, "partner_group.updated", group, before, snapshot(group),
        reason,
    )  # fmt: skip
    return group


async def archive_group(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    group_id: uuid.UUID,
    reason: str | None = None,
) -> PartnerGroup:
    """Archive (the "delete"): every membership ends now; history stays readable."""
    GROUPS.require(principal, GroupOp.DELETE)
    await begin_write(session)
    group = await _group(session, principal, group_id)
    if group.archived_at is not None:
        raise DomainError(GroupErrorCode.ARCHIVED, "This group is already archived.", "id")
    errors: list[DomainError] = []
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    before = snapshot(group)
    group.archived_at = group.updated_at = clock.now()
    session.add(group)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=group.vendor_id, group_ids=[group.id],
        reason=reason or "group archived", by=principal.caller,
    )  # fmt: skip
    await _audit(
        session, principal, clock, "partner_group.archived", group, before, snapshot(group),
        reason,
    )  # fmt: skip
    return group


async def _readable_partner_ids(
    session: AsyncSession, principal: Principal, partner_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    found = set(
        await session.exec(
            select(Partner.id).where(
                col(Partner.id).in_(partner_ids),
                col(Partner.id).in_(accessible_partner_ids(principal)),
            )
        )
    )
    missing = [i for i, p in enumerate(partner_ids) if p not in found]
    if missing:
        raise DomainErrors([
            DomainError(GroupErrorCode.NOT_FOUND, "No such partner.", f"partner_ids.{i}")
            for i in missing
        ])  # fmt: skip
    return list(dict.fromkeys(partner_ids))


async def set_members(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    group_id: uuid.UUID,
    partner_ids: list[uuid.UUID],
    mode: MemberMode,
    reason: str | None = None,
) -> PartnerGroup:
    """Add (INCLUDE) or remove (EXCLUDE) partners explicitly: an explicit decision wins
    over the rule, and the latest decision for a partner replaces the earlier one."""
    GROUPS.require(
        principal, GroupOp.MEMBERS_ADD if mode is MemberMode.INCLUDE else GroupOp.MEMBERS_REMOVE
    )
    await begin_write(session)
    group = await _group(session, principal, group_id)
    if group.archived_at is not None:
        raise DomainError(GroupErrorCode.ARCHIVED, "This group is archived.", "id")
    if not partner_ids:
        raise DomainError(GroupErrorCode.REQUIRED, "Name at least one partner.", "partner_ids")
    errors: list[DomainError] = []
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    ids = await _readable_partner_ids(session, principal, partner_ids)
    existing = {
        m.partner_id: m
        for m in await session.exec(
            select(PartnerGroupMember).where(
                PartnerGroupMember.group_id == group.id,
                col(PartnerGroupMember.partner_id).in_(ids),
            )
        )
    }
    now = clock.now()
    for partner_id in ids:
        member = existing.get(partner_id) or PartnerGroupMember(
            vendor_id=group.vendor_id, group_id=group.id, partner_id=partner_id, mode=mode,
            created_at=now,
        )  # fmt: skip
        member.mode = mode
        member.created_at = now
        session.add(member)
    await session.flush()
    verb = "added" if mode is MemberMode.INCLUDE else "removed"
    await refresh_memberships(
        session, clock, vendor_id=group.vendor_id, partner_ids=ids, group_ids=[group.id],
        reason=reason or f"{verb} explicitly", by=principal.caller,
    )  # fmt: skip
    await _audit(
        session, principal, clock, f"partner_group.members_{verb}", group, None,
        {"partner_ids": [str(i) for i in ids], "mode": mode.value}, reason,
    )  # fmt: skip
    return group


async def set_program_tier(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    tier: str,
    reason: str,
) -> Partner:
    """Set a partner's program tier (the partner-program level the vendor awards; not the
    earnings tier a rev-share program computes), keep its history, and recompute the
    partner's rule memberships (rules may name ``tier``)."""
    GROUPS.require(principal, GroupOp.TIER_SET)
    await begin_write(session)
    partner = (
        await session.exec(
            select(Partner).where(
                Partner.id == partner_id,
                col(Partner.id).in_(accessible_partner_ids(principal)),
            )
        )
    ).first()
    if partner is None:
        raise DomainError(GroupErrorCode.NOT_FOUND, "No such partner.", "partner_id")
    new_tier = tier.strip().upper()
    errors: list[DomainError] = []
    if not new_tier or len(new_tier) > 32 or not all(c.isalnum() or c in "_-" for c in new_tier):
        errors.append(DomainError(
            GroupErrorCode.INVALID_TIER, "A tier is 1-32 letters, digits, '-' or '_'.", "tier"
        ))  # fmt: skip
    if not reason.strip():
        errors.append(DomainError(GroupErrorCode.REQUIRED, "Say why the tier changes.", "reason"))
    elif len(reason) > 500:
        errors.append(DomainError(GroupErrorCode.TOO_LONG, "At most 500 characters.", "reason"))
    elif problem := free_text_problem(reason):
        errors.append(DomainError(GroupErrorCode.INVALID_CHARACTERS, problem, "reason"))
    if errors:
        raise DomainErrors(errors)
    if new_tier == partner.tier:
        raise DomainError(GroupErrorCode.UNCHANGED, f"The tier is already {new_tier}.", "tier")
    now = clock.now()
    session.add(PartnerTierChange(
        vendor_id=partner.vendor_id, partner_id=partner.id, from_tier=partner.tier,
        to_tier=new_tier, reason=reason.strip(), changed_by=principal.caller, changed_at=now,
    ))  # fmt: skip
    before = {"tier": partner.tier}
    partner.tier = new_tier
    session.add(partner)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=partner.vendor_id, partner_ids=[partner.id],
        reason=f"program tier changed to {new_tier}", by=principal.caller,
    )  # fmt: skip
    await _record(
        session, principal, clock, "partner.tier_changed", "partner", str(partner.id), before,
        {"tier": new_tier}, reason.strip(),
    )  # fmt: skip
    return partner


async def _audit(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    action: str,
    group: PartnerGroup,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None = None,
) -> None:
    await _record(
        session, principal, clock, action, "partner_group", str(group.id), before, after, reason
    )


async def _record(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None,
) -> None:
    await log_change(
        session, principal, clock, action=action, entity_type=entity_type, entity_id=entity_id,
        before=before, after=after, reason=reason,
    )  # fmt: skip
