"""The events partner administration records in the outbox (``infra.events.Event``).

Integrations (webhooks) and notifications consume them; they carry what the vendor's own
staff may read about the partner or the application, nothing of another vendor.
``GroupMembershipsChanged`` is internal (no webhook, no notification): it names pilots'
treatment groups, which a partner must never learn of."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.events import Event, uuid_or_none
from infra.outbox import record_event, record_events
from partners.group_models import PartnerGroupMembership
from partners.models import Partner, PartnerApplication

PARTNER_APPLIED = "PartnerApplied"
PARTNER_ENROLLED = "PartnerEnrolled"
GROUP_MEMBERSHIPS_CHANGED = "GroupMembershipsChanged"


@dataclass(frozen=True)
class PartnerApplied(Event):
    """A company applied to the vendor's program (``partnerApply``). Recorded only for an
    application to a real vendor: one to an unknown slug belongs to nobody."""

    type: ClassVar[str] = PARTNER_APPLIED
    application_id: uuid.UUID
    reference: str
    company: str
    contact_name: str
    contact_email: str
    country: str
    applied_at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            application_id=uuid.UUID(payload["application_id"]),
            reference=payload["reference"],
            company=payload["company"],
            contact_name=payload["contact_name"],
            contact_email=payload["contact_email"],
            country=payload["country"],
            applied_at=datetime.fromisoformat(payload["applied_at"]),
        )


@dataclass(frozen=True)
class PartnerEnrolled(Event):
    """A partner joined the vendor's program: created by staff (``via`` CREATED), by an
    approved application (APPLICATION, with its id) or by a CSV import (IMPORT)."""

    type: ClassVar[str] = PARTNER_ENROLLED
    partner_id: uuid.UUID
    name: str
    region: str
    country: str | None
    tier: str
    via: str
    application_id: uuid.UUID | None
    enrolled_at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            partner_id=uuid.UUID(payload["partner_id"]),
            name=payload["name"],
            region=payload["region"],
            country=payload.get("country"),
            tier=payload["tier"],
            via=payload["via"],
            application_id=uuid_or_none(payload.get("application_id")),
            enrolled_at=datetime.fromisoformat(payload["enrolled_at"]),
        )


@dataclass(frozen=True)
class MemberChange:
    partner_id: uuid.UUID
    joined: list[uuid.UUID]  # group ids
    left: list[uuid.UUID]


@dataclass(frozen=True)
class GroupMembershipsChanged(Event):
    """Partners joined or left groups at ``at`` (one change-set: a group's members or rule,
    a partner's attributes, a pilot's start or end): what reads a partner's groups (its
    BASE program, so its next tier) re-reads for these partners."""

    type: ClassVar[str] = GROUP_MEMBERSHIPS_CHANGED
    changes: list[MemberChange]
    at: datetime

    @property
    def partner_ids(self) -> list[uuid.UUID]:
        return [c.partner_id for c in self.changes]

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            changes=[
                MemberChange(
                    partner_id=uuid.UUID(c["partner_id"]),
                    joined=[uuid.UUID(g) for g in c["joined"]],
                    left=[uuid.UUID(g) for g in c["left"]],
                )
                for c in payload["changes"]
            ],
            at=datetime.fromisoformat(payload["at"]),
        )


# Partners per GroupMembershipsChanged: a rule over 10,000 partners is 20 events, inserted
# in one statement, each of a bounded size (not one event per partner, nor one huge one).
MEMBERSHIP_CHUNK = 500


async def record_memberships_changed(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    intervals: Iterable[PartnerGroupMembership],
) -> int:
    """The change-set of membership intervals just opened (``left_at`` null) or closed,
    as few events as ``MEMBERSHIP_CHUNK`` allows; returns how many were recorded."""
    by_partner: dict[uuid.UUID, MemberChange] = {}
    for interval in intervals:
        change = by_partner.setdefault(
            interval.partner_id, MemberChange(interval.partner_id, [], [])
        )
        (change.joined if interval.left_at is None else change.left).append(interval.group_id)
    changes = [by_partner[p] for p in sorted(by_partner)]
    now = clock.now()
    # The vendor is the aggregate: its change-sets are dispatched in the order they were made.
    events = [
        (vendor_id, GROUP_MEMBERSHIPS_CHANGED, vendor_id,
         GroupMembershipsChanged(changes=changes[i : i + MEMBERSHIP_CHUNK], at=now).to_payload())
        for i in range(0, len(changes), MEMBERSHIP_CHUNK)
    ]  # fmt: skip
    return await record_events(session, clock, events, now)


async def record_applied(
    session: AsyncSession, clock: Clock, application: PartnerApplication
) -> None:
    if application.vendor_id is None:
        return
    applied = PartnerApplied(
        application_id=application.id, reference=application.reference,
        company=application.company, contact_name=application.contact_name,
        contact_email=application.contact_email, country=application.country,
        applied_at=application.created_at,
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=application.vendor_id, type=applied.type,
        aggregate_id=application.id, payload=applied.to_payload(),
    )  # fmt: skip


async def record_enrolled(
    session: AsyncSession,
    clock: Clock,
    partner: Partner,
    *,
    via: str,
    application_id: uuid.UUID | None = None,
) -> None:
    enrolled = PartnerEnrolled(
        partner_id=partner.id, name=partner.name, region=partner.region,
        country=partner.country, tier=partner.tier, via=via, application_id=application_id,
        enrolled_at=partner.created_at,
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=partner.vendor_id, type=enrolled.type,
        aggregate_id=partner.id, payload=enrolled.to_payload(),
    )  # fmt: skip
