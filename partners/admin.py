"""Partner administration: create, update, suspend, reactivate, archive, and channel manager
assignments. See docs/partners.md for what each status means.

- **ACTIVE**: the partner's users sign in and submit deals and claims.
- **SUSPENDED** (with a reason): its users are refused at authentication
  (``PARTNER_INACTIVE``, open sockets closed at once), so it submits nothing new and sees
  nothing. What it had already submitted stays in review: vendor reviewers may still approve
  or reject it, and an approved sale keeps crediting its earnings — money already earned is
  not taken away by a suspension. Reactivation restores access at once.
- **ARCHIVED**: as suspended, and final: hidden from the default ``partners`` list, it
  takes no new activity (no update, no suspension, no manager assignment, no re-import),
  and its history (claims, deals, earnings, assignments) is kept.

Every change here is an administrative change recorded in the audit log.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import audit as infra_audit
from infra import codes
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.text import (
    free_text_problem,
    identifier_problem,
    listed_identifier_problem,
    name_problem,
)
from partners import repository
from partners.access import accessible_partner_ids
from partners.audit_log import AuditEntity, actor_of
from partners.errors import PartnerErrorCode
from partners.events import record_enrolled
from partners.groups import refresh_memberships
from partners.models import ManagerAssignment, Partner, PartnerStatus, User
from partners.names import MAX_NAME_KEY, name_key
from partners.policy import PARTNERS, REVIEWERS, PartnerOp
from partners.roles import Principal, Role

MAX_CONTACTS = 10
MAX_TAGS = 20
TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# What a channel manager may change on its assigned partners; the rest is the vendor admin's.
MANAGER_EDITABLE = frozenset({"contacts", "tags"})
# The fields partner-group rules read (partners/groups.py ATTRIBUTES; ``tier`` is the program
# tier, changed only by partnerTierSet): a change of any of them re-evaluates the partner's
# rule memberships in the same transaction.
GROUP_RULE_FIELDS = frozenset({"region", "country", "tags"})


async def refresh_partner_groups(
    session: AsyncSession,
    clock: Clock,
    partners: Sequence[Partner],
    *,
    reason: str,
    by: str,
) -> None:
    """Bring these partners' group memberships in line with their attributes now."""
    by_vendor: dict[uuid.UUID, list[uuid.UUID]] = {}
    for partner in partners:
        by_vendor.setdefault(partner.vendor_id, []).append(partner.id)
    for vendor_id, ids in by_vendor.items():
        await refresh_memberships(
            session, clock, vendor_id=vendor_id, partner_ids=ids, reason=reason, by=by
        )


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    phone: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "phone": self.phone}


@dataclass(frozen=True)
class PartnerFields:
    """The editable fields of a partner; None leaves a field unchanged (on update)."""

    name: str | None = None
    legal_name: str | None = None
    region: str | None = None
    country: str | None = None
    contacts: Sequence[Contact] | None = None
    tags: Sequence[str] | None = None
    external_ref: str | None = None

    def given(self) -> set[str]:
        return {k for k, v in self.__dict__.items() if v is not None}


def clean(fields: PartnerFields, *, prefix: str = "") -> tuple[dict[str, Any], list[DomainError]]:
    """The fields normalised to their stored form, and every problem found (one per field)."""
    out: dict[str, Any] = {}
    errors: list[DomainError] = []

    def bad(code: PartnerErrorCode, message: str, field: str) -> None:
        errors.append(DomainError(code, message, prefix + field))

    if fields.name is not None:
        name = unicodedata.normalize("NFC", fields.name.strip())
        if not name:
            bad(PartnerErrorCode.REQUIRED, "Give the partner a name.", "name")
        elif len(name) > 200:
            bad(PartnerErrorCode.TOO_LONG, "A name has at most 200 characters.", "name")
        elif problem := name_problem(name):
            bad(PartnerErrorCode.INVALID_CHARACTERS, problem, "name")
        elif len(name_key(name)) > MAX_NAME_KEY:
            bad(
                PartnerErrorCode.TOO_LONG,
                "This name is too long once its compatibility characters are spelled out.",
                "name",
            )
        out["name"] = name
    if fields.legal_name is not None:
        legal = fields.legal_name.strip()
        if len(legal) > 200:
            bad(PartnerErrorCode.TOO_LONG, "A legal name has at most 200 characters.", "legal_name")
        elif legal and (problem := name_problem(legal)):
            bad(PartnerErrorCode.INVALID_CHARACTERS, problem, "legal_name")
        out["legal_name"] = legal
    if fields.region is not None:
        region = fields.region.strip().upper()
        if not region:
            bad(PartnerErrorCode.REQUIRED, "Give the partner's region, e.g. EMEA.", "region")
        elif len(region) > 32:
            bad(PartnerErrorCode.TOO_LONG, "A region has at most 32 characters.", "region")
        elif problem := listed_identifier_problem(region):
            bad(PartnerErrorCode.INVALID_CHARACTERS, problem, "region")
        out["region"] = region
    if fields.country is not None:
        country = fields.country.strip().upper()
        if country and not codes.is_country(country):
            bad(
                PartnerErrorCode.INVALID_COUNTRY,
                "The country is an ISO 3166-1 alpha-2 code, e.g. DE.",
                "country",
            )
        out["country"] = country or None
    if fields.external_ref is not None:
        ref = fields.external_ref.strip()
        if len(ref) > 100:
            bad(
                PartnerErrorCode.TOO_LONG,
                "An external reference has at most 100 characters.",
                "external_ref",
            )
        elif problem := identifier_problem(ref):
            bad(PartnerErrorCode.INVALID_CHARACTERS, problem, "external_ref")
        out["external_ref"] = ref or None
    if fields.contacts is not None:
        if len(fields.contacts) > MAX_CONTACTS:
            bad(PartnerErrorCode.TOO_MANY, f"At most {MAX_CONTACTS} contacts.", "contacts")
        contacts = []
        for i, contact in enumerate(fields.contacts):
            name = contact.name.strip()
            email = contact.email.strip().lower()
            phone = contact.phone.strip()
            if not name:
                bad(PartnerErrorCode.REQUIRED, "Give the contact's name.", f"contacts.{i}.name")
            elif len(name) > 200:
                bad(PartnerErrorCode.TOO_LONG, "At most 200 characters.", f"contacts.{i}.name")
            elif problem := name_problem(name):
                bad(PartnerErrorCode.INVALID_CHARACTERS, problem, f"contacts.{i}.name")
            if problem := identifier_problem(email):
                bad(PartnerErrorCode.INVALID_CHARACTERS, problem, f"contacts.{i}.email")
            elif len(email) > 254 or not EMAIL.match(email):
                bad(
                    PartnerErrorCode.INVALID_EMAIL,
                    "Not an e-mail address.",
                    f"contacts.{i}.email",
                )
            if len(phone) > 40:
                bad(PartnerErrorCode.TOO_LONG, "At most 40 characters.", f"contacts.{i}.phone")
            elif problem := identifier_problem(phone):
                bad(PartnerErrorCode.INVALID_CHARACTERS, problem, f"contacts.{i}.phone")
            contacts.append(Contact(name=name, email=email, phone=phone).to_json())
        out["contacts"] = contacts
    if fields.tags is not None:
        tags: list[str] = []
        for tag in (t.strip().lower() for t in fields.tags):
            if not TAG.match(tag):
                bad(
                    PartnerErrorCode.INVALID_TAG,
                    "A tag is 1-40 lower-case letters, digits, '-' or '_'.",
                    "tags",
                )
                break
            if tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            bad(PartnerErrorCode.TOO_MANY, f"At most {MAX_TAGS} tags.", "tags")
        out["tags"] = sorted(tags)
    return out, errors


def snapshot(partner: Partner, fields: Sequence[str]) -> dict[str, Any]:
    """The named fields of a partner as JSON-safe values (for the audit log)."""
    values: dict[str, Any] = {}
    for name in fields:
        value = getattr(partner, name)
        values[name] = value.value if isinstance(value, PartnerStatus) else value
    return values


async def _unique(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    values: dict[str, Any],
    *,
    exclude: uuid.UUID | None = None,
    prefix: str = "",
) -> None:
    base = select(Partner.id).where(Partner.vendor_id == vendor_id)
    if exclude is not None:
        base = base.where(Partner.id != exclude)
    if "name" in values:
        # One look-up in the (vendor_id, name_key) index. Of two look-alikes written at once
        # (PostgreSQL) both pass this; the index refuses the second, whose transaction is run
        # again (schema.mutations.run) and then stops here.
        same = base.where(Partner.name_key == name_key(values["name"]))
        if (await session.exec(same)).first() is not None:
            raise DomainError(
                PartnerErrorCode.DUPLICATE_NAME,
                "Another partner of your vendor has this name.",
                prefix + "name",
            )
    if values.get("external_ref"):
        same = base.where(Partner.external_ref == values["external_ref"])
        if (await session.exec(same)).first() is not None:
            raise DomainError(
                PartnerErrorCode.DUPLICATE_EXTERNAL_REF,
                "Another partner of your vendor has this external reference.",
                prefix + "external_ref",
            )


async def _readable(session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> Partner:
    """The partner to change, locked: two changes of one partner take turns, and the
    second checks the status the first left (suspended, archived)."""
    partner = await repository.get_readable_partner(session, principal, partner_id, lock=True)
    if partner is None:
        raise DomainError(PartnerErrorCode.NOT_FOUND, "No such partner.", "id")
    return partner


def _not_archived(partner: Partner) -> None:
    if partner.status is PartnerStatus.ARCHIVED:
        raise DomainError(
            PartnerErrorCode.ARCHIVED, "This partner is archived: it takes no changes.", "id"
        )


@dataclass(frozen=True)
class Change:
    """What an administrative change did: the row, and before/after of the changed fields."""

    partner: Partner
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None = None


async def create_partner(
    session: AsyncSession, principal: Principal, clock: Clock, *, fields: PartnerFields
) -> Change:
    PARTNERS.require(principal, PartnerOp.PARTNER_CREATE)
    return await add_partner(session, principal, clock, fields=fields)


async def add_partner(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    fields: PartnerFields,
    application_id: uuid.UUID | None = None,
) -> Change:
    """Create a partner in the caller's vendor, audited, with its ``PartnerEnrolled`` event.
    The caller's operation has been authorised already (``partnerCreate``, or
    ``partnerApplicationApprove``, which channel managers may perform too, passing the
    application's id)."""
    values, errors = clean(fields)
    if fields.name is None:
        errors.append(DomainError(PartnerErrorCode.REQUIRED, "Give the partner a name.", "name"))
    if fields.region is None:
        errors.append(DomainError(PartnerErrorCode.REQUIRED, "Give the region.", "region"))
    if errors:
        raise DomainErrors(errors)
    await _unique(session, principal.vendor_id, values)
    partner = Partner(vendor_id=principal.vendor_id, created_at=clock.now(), **values)
    session.add(partner)
    await session.flush()
    change = Change(partner, "partner.created", None, snapshot(partner, sorted(values)))
    await audit(session, principal, clock, change)
    await record_enrolled(
        session, clock, partner, via="APPLICATION" if application_id else "CREATED",
        application_id=application_id,
    )  # fmt: skip
    await refresh_partner_groups(
        session, clock, [partner], reason="partner created", by=actor_of(principal)
    )
    return change


async def update_partner(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    fields: PartnerFields,
) -> Change:
    PARTNERS.require(principal, PartnerOp.PARTNER_UPDATE)
    partner = await _readable(session, principal, partner_id)
    if principal.role is not Role.VENDOR_ADMIN:
        beyond = sorted(fields.given() - MANAGER_EDITABLE)
        if beyond:
            raise DomainErrors(
                [
                    DomainError(
                        PartnerErrorCode.FIELD_NOT_EDITABLE,
                        "A channel manager may change only contacts and tags.",
                        field,
                    )
                    for field in beyond
                ]
            )
    _not_archived(partner)
    values, errors = clean(fields)
    if errors:
        raise DomainErrors(errors)
    await _unique(session, partner.vendor_id, values, exclude=partner.id)
    changed = sorted(k for k, v in values.items() if getattr(partner, k) != v)
    before = snapshot(partner, changed)
    for key in changed:
        setattr(partner, key, values[key])
    if changed:
        session.add(partner)
        await session.flush()
    change = Change(partner, "partner.updated", before, snapshot(partner, changed))
    if changed:
        await audit(session, principal, clock, change)
    if GROUP_RULE_FIELDS.intersection(changed):
        await refresh_partner_groups(
            session, clock, [partner], reason="partner updated", by=actor_of(principal)
        )
    return change


async def _set_status(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    partner: Partner,
    status: PartnerStatus,
    action: str,
    reason: str | None,
) -> Change:
    before = snapshot(partner, ["status", "status_reason"])
    partner.status = status
    partner.status_reason = reason
    partner.status_changed_at = clock.now()
    session.add(partner)
    await session.flush()
    change = Change(partner, action, before, snapshot(partner, ["status", "status_reason"]), reason)
    await audit(session, principal, clock, change)
    return change


def _reason(reason: str, *, required: bool) -> str | None:
    text = reason.strip()
    if required and not text:
        raise DomainError(PartnerErrorCode.REQUIRED, "Say why.", "reason")
    if len(text) > 500:
        raise DomainError(
            PartnerErrorCode.TOO_LONG, "A reason has at most 500 characters.", "reason"
        )
    if problem := free_text_problem(text):
        raise DomainError(PartnerErrorCode.INVALID_CHARACTERS, problem, "reason")
    return text or None


async def suspend_partner(
    session: AsyncSession, principal: Principal, clock: Clock, *, partner_id: uuid.UUID, reason: str
) -> Change:
    PARTNERS.require(principal, PartnerOp.PARTNER_SUSPEND)
    partner = await _readable(session, principal, partner_id)
    _not_archived(partner)
    text = _reason(reason, required=True)
    if partner.status is not PartnerStatus.ACTIVE:
        raise DomainError(PartnerErrorCode.NOT_ACTIVE, "Only an active partner is suspended.", "id")
    return await _set_status(
        session, principal, clock, partner, PartnerStatus.SUSPENDED, "partner.suspended", text
    )


async def reactivate_partner(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    reason: str = "",
) -> Change:
    PARTNERS.require(principal, PartnerOp.PARTNER_REACTIVATE)
    partner = await _readable(session, principal, partner_id)
    _not_archived(partner)
    text = _reason(reason, required=False)
    if partner.status is not PartnerStatus.SUSPENDED:
        raise DomainError(
            PartnerErrorCode.NOT_SUSPENDED, "Only a suspended partner is reactivated.", "id"
        )
    return await _set_status(
        session, principal, clock, partner, PartnerStatus.ACTIVE, "partner.reactivated", text
    )


async def archive_partner(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    reason: str = "",
) -> Change:
    PARTNERS.require(principal, PartnerOp.PARTNER_ARCHIVE)
    partner = await _readable(session, principal, partner_id)
    _not_archived(partner)
    text = _reason(reason, required=False)
    return await _set_status(
        session, principal, clock, partner, PartnerStatus.ARCHIVED, "partner.archived", text
    )


# --- channel manager assignment ---


@dataclass(frozen=True)
class Assignment:
    partner: Partner
    manager: User
    assigned: bool


async def _manager(session: AsyncSession, principal: Principal, manager_id: uuid.UUID) -> User:
    manager = await repository.get_user(session, manager_id)
    if (
        manager is None
        or manager.vendor_id != principal.vendor_id
        or manager.role is not Role.CHANNEL_MANAGER
        or not manager.active
    ):
        raise DomainError(
            PartnerErrorCode.MANAGER_NOT_FOUND,
            "No active channel manager of your vendor has this id.",
            "manager_id",
        )
    return manager


async def assign_manager(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    manager_id: uuid.UUID,
) -> Assignment:
    """The manager sees the partner (its deals, claims, earnings, internal metrics) and
    reviews its submissions from the moment this commits."""
    PARTNERS.require(principal, PartnerOp.MANAGER_ASSIGN)
    partner = await _readable(session, principal, partner_id)
    _not_archived(partner)
    manager = await _manager(session, principal, manager_id)
    existing = await session.exec(
        select(ManagerAssignment).where(
            ManagerAssignment.manager_id == manager.id, ManagerAssignment.partner_id == partner.id
        )
    )
    if existing.first() is not None:
        raise DomainError(
            PartnerErrorCode.ALREADY_ASSIGNED, "This manager already looks after it.", "manager_id"
        )
    session.add(
        ManagerAssignment(
            vendor_id=partner.vendor_id,
            manager_id=manager.id,
            partner_id=partner.id,
            created_at=clock.now(),
        )
    )
    await session.flush()
    await audit(
        session, principal, clock,
        Change(partner, "partner.manager_assigned", None, {"manager_id": str(manager.id)}),
    )  # fmt: skip
    return Assignment(partner, manager, True)


async def unassign_manager(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    manager_id: uuid.UUID,
) -> Assignment:
    """The manager stops seeing the partner from the moment this commits."""
    PARTNERS.require(principal, PartnerOp.MANAGER_UNASSIGN)
    partner = await _readable(session, principal, partner_id)
    manager = await _manager(session, principal, manager_id)
    found = (
        await session.exec(
            select(ManagerAssignment).where(
                ManagerAssignment.manager_id == manager.id,
                ManagerAssignment.partner_id == partner.id,
            )
        )
    ).first()
    if found is None:
        raise DomainError(
            PartnerErrorCode.NOT_ASSIGNED, "This manager does not look after it.", "manager_id"
        )
    await session.delete(found)
    await session.flush()
    await audit(
        session, principal, clock,
        Change(partner, "partner.manager_unassigned", {"manager_id": str(manager.id)}, None),
    )  # fmt: skip
    return Assignment(partner, manager, False)


async def managers_of(
    session: AsyncSession, principal: Principal, partner_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[User]]:
    """The channel managers assigned to each of the given (readable) partners; vendor admins
    and channel managers read them (``Partner.managers``), other roles nothing."""
    if principal.role not in REVIEWERS:
        return {}
    rows = await session.exec(
        select(ManagerAssignment.partner_id, User)
        .join(User, col(User.id) == ManagerAssignment.manager_id)
        .where(
            col(ManagerAssignment.partner_id).in_(list(partner_ids)),
            col(ManagerAssignment.partner_id).in_(accessible_partner_ids(principal)),
        )
        .order_by(col(User.display_name))
    )
    found: dict[uuid.UUID, list[User]] = {}
    for partner_id, user in rows:
        found.setdefault(partner_id, []).append(user)
    return found


async def audit(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    change: Change,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    """Record an administrative change in the audit log, in the same transaction. ``actor``
    overrides ``actor_of(principal)`` (user, API key, or ``operator:<login>``). Every partner
    action, manager assignments included, is an entry about the partner (entity type
    ``partner``), so a partner's history reads in one filter."""
    await infra_audit.record(
        session, vendor_id=change.partner.vendor_id, actor=actor or actor_of(principal),
        action=change.action, entity_type=AuditEntity.PARTNER, entity_id=str(change.partner.id),
        before=change.before, after=change.after, reason=reason or change.reason,
        at=clock.now(),
    )  # fmt: skip
