"""GraphQL types for deal registrations. Vendor-internal parts (conflict evidence, the
override reason) are fields with the VendorStaff permission; partners get the reason codes
of conflicts with earlier registrations only."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import strawberry
from strawberry import Info, relay

from catalogue import repository as catalogue
from deal_registration.registrations import repository
from deal_registration.registrations.models import (
    ConflictRule,
    ConflictStage,
    DealAction,
    DealConflict,
    DealExtensionRequest,
    DealProgramSettings,
    DealRegistration,
    DealRegistrationLine,
    DealStatus,
    DealTransition,
    ExtensionStatus,
)
from deal_registration.registrations.repository import REGISTRATION_OWNER
from partners import repository as partners
from schema.attachments import AttachmentType, owner_attachments
from schema.catalogue.types import ProductType
from schema.context import Context
from schema.money import MoneyType
from schema.partners.types import PartnerType
from schema.permissions import VendorStaff
from schema.relay import to_global_id, visible_nodes

# The domain's enums as GraphQL enums, declared before any type or input uses them.
DealStatusEnum = strawberry.enum(
    DealStatus,
    description="Where a registration is in its lifecycle. APPROVED registrations become "
    "EXPIRED the instant their protection period ends.",
)
DealActionEnum = strawberry.enum(DealAction, description="What happened to a registration.")
ConflictRuleEnum = strawberry.enum(
    ConflictRule,
    description="Why two registrations look like the same customer: DOMAIN (the same "
    "registrable web domain) or NAME (similar company names after normalisation).",
)
ConflictStageEnum = strawberry.enum(ConflictStage)
ExtensionStatusEnum = strawberry.enum(ExtensionStatus)


@strawberry.type(description="The end customer of a registered deal.")
class DealCustomer:
    name: str
    domain: str = strawberry.field(description="Registrable domain, e.g. 'acme.co.uk'.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code.")
    region: str


@strawberry.type(description="The customer's contact for the deal.")
class DealContact:
    name: str
    email: str


@strawberry.type(description="A product and quantity in a registered deal.")
class DealLine:
    sku: str
    quantity: int
    _product_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The catalogue product; null when no longer visible.")
    async def product(self, info: Info[Context, None]) -> ProductType | None:
        principal = info.context.principal
        if principal is None:
            return None
        found = await catalogue.get_readable_product(
            info.context.session, principal, self._product_id
        )
        return ProductType.from_model(found) if found else None

    @classmethod
    def from_model(cls, line: DealRegistrationLine) -> DealLine:
        return cls(sku=line.sku, quantity=line.quantity, _product_id=line.product_id)


@strawberry.type(
    name="DealTransition", description="One recorded step in a registration's history."
)
class DealTransitionType:
    action: DealAction
    from_status: DealStatus | None
    to_status: DealStatus
    actor_role: str = strawberry.field(description="The role that acted, or SYSTEM.")
    reason: str
    at: datetime

    @classmethod
    def from_model(cls, t: DealTransition) -> DealTransitionType:
        return cls(
            action=t.action,
            from_status=t.from_status,
            to_status=t.to_status,
            actor_role=t.actor_role,
            reason=t.reason,
            at=t.at,
        )


@strawberry.type(
    name="DealExtensionRequest",
    description="A request to extend an approved registration's protection.",
)
class DealExtensionRequestType:
    status: ExtensionStatus
    reason: str
    requested_at: datetime
    decided_at: datetime | None
    decision_reason: str

    @classmethod
    def from_model(cls, r: DealExtensionRequest) -> DealExtensionRequestType:
        return cls(
            status=r.status,
            reason=r.reason,
            requested_at=r.requested_at,
            decided_at=r.decided_at,
            decision_reason=r.decision_reason,
        )


@strawberry.type(description="The other registration in a conflict (vendor staff only).")
class DealConflictParty:
    id: relay.GlobalID
    partner_name: str
    customer_name: str
    customer_domain: str
    customer_country: str
    status: DealStatus
    submitted_at: datetime | None
    protected: bool


@strawberry.type(description="Evidence that two registrations name the same customer.")
class DealConflictEvidence:
    rules: list[ConflictRule]
    score: int = strawberry.field(
        description="0-100; raised by shared products and the same country, 100 for a domain match."
    )
    name_score: int = strawberry.field(description="0-100 similarity of normalised names.")
    shared_skus: list[str]
    same_country: bool
    stage: ConflictStage
    detected_at: datetime
    other_is_earlier: bool
    other: DealConflictParty


@strawberry.type(name="DealRegistration", description="A partner's registration of a deal.")
class DealRegistrationType(relay.Node):
    id: relay.NodeID[str]
    status: DealStatus
    customer: DealCustomer
    contact: DealContact | None
    estimated_value: MoneyType
    expected_close_date: date
    notes: str
    big_deal: bool = strawberry.field(description="At or above the vendor's big-deal threshold.")
    protected: bool = strawberry.field(
        description="Holds the vendor's protection for this customer (until expiresAt)."
    )
    submitted_at: datetime | None
    review_due_at: datetime | None = strawberry.field(
        description="When the review is due under the vendor's SLA (business days)."
    )
    overdue: bool = strawberry.field(description="Awaiting review past its due time.")
    decided_at: datetime | None
    decision_reason: str
    approved_at: datetime | None
    expires_at: datetime | None = strawberry.field(
        description="When the approval (and any protection) ends."
    )
    extensions_granted: int
    created_at: datetime
    _model: strawberry.Private[DealRegistration]

    @strawberry.field(description="The registering partner organisation.")
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        principal = info.context.principal
        if principal is None:
            return None
        found = await partners.get_readable_partner(
            info.context.session, principal, self._model.partner_id
        )
        return PartnerType.from_model(found) if found else None

    @strawberry.field(description="Who registered it (null for an integration).")
    async def registered_by_name(self, info: Info[Context, None]) -> str | None:
        if self._model.registered_by_id is None:
            return None
        user = await partners.get_user(info.context.session, self._model.registered_by_id)
        return user.display_name if user else None

    @strawberry.field
    async def lines(self, info: Info[Context, None]) -> list[DealLine]:
        found = await repository.lines_of(info.context.session, [self._model.id])
        return [DealLine.from_model(li) for li in found[self._model.id]]

    @strawberry.field(description="Every transition, oldest first.")
    async def history(self, info: Info[Context, None]) -> list[DealTransitionType]:
        rows = await repository.history_of(info.context.session, self._model.id)
        return [DealTransitionType.from_model(t) for t in rows]

    @strawberry.field(description="Proof files (invoices) attached to the registration.")
    async def attachments(self, info: Info[Context, None]) -> list[AttachmentType]:
        rows = await owner_attachments(info.context, REGISTRATION_OWNER).load(self._model.id)
        return [AttachmentType.from_model(r) for r in rows]

    @strawberry.field
    async def extension_requests(self, info: Info[Context, None]) -> list[DealExtensionRequestType]:
        rows = await repository.extension_requests_of(info.context.session, self._model.id)
        return [DealExtensionRequestType.from_model(r) for r in rows]

    @strawberry.field(
        description="Why this registration conflicts with earlier registrations (reason "
        "codes only; empty when it does not)."
    )
    async def conflict_reasons(self, info: Info[Context, None]) -> list[ConflictRule]:
        rows = await repository.conflicts_with_earlier(info.context.session, self._model.id)
        reasons = {ConflictRule(rule) for row in rows for rule in row.rules}
        return sorted(reasons, key=lambda r: r.value)

    @strawberry.field(
        description="Full conflict evidence, in both directions. Vendor roles only (null with "
        "a FORBIDDEN error for partners).",
        permission_classes=[VendorStaff],
    )
    async def conflicts(self, info: Info[Context, None]) -> list[DealConflictEvidence] | None:
        session = info.context.session
        rows = await repository.conflicts_involving(session, self._model.id)
        other_ids = {
            r.other_registration_id if r.registration_id == self._model.id else r.registration_id
            for r in rows
        }
        others = await repository.registrations_by_vendor_ids(
            session, self._model.vendor_id, list(other_ids)
        )
        names = await repository.partner_names(session, {o.partner_id for o in others.values()})
        now = info.context.services.clock.now()
        return [_evidence(r, self._model.id, others, names, now) for r in rows]

    @strawberry.field(
        description="Why the reviewer approved despite another protected registration. "
        "Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def override_reason(self) -> str | None:
        return self._model.override_reason

    @classmethod
    def from_model(cls, r: DealRegistration, now: datetime) -> DealRegistrationType:
        status = repository.effective_status(r, now)
        return cls(
            id=str(r.id),
            status=status,
            customer=DealCustomer(
                name=r.customer_name,
                domain=r.customer_domain,
                country=r.customer_country,
                region=r.customer_region,
            ),
            contact=DealContact(name=r.contact_name, email=r.contact_email)
            if r.contact_name or r.contact_email
            else None,
            estimated_value=MoneyType.of(r.estimated_value_minor, r.currency),
            expected_close_date=r.expected_close_date,
            notes=r.notes,
            big_deal=r.big_deal,
            protected=r.is_protected and status is DealStatus.APPROVED,
            submitted_at=r.submitted_at,
            review_due_at=r.review_due_at,
            overdue=status in repository.REVIEW_STATUSES
            and r.review_due_at is not None
            and r.review_due_at <= now,
            decided_at=r.decided_at,
            decision_reason=r.decision_reason,
            approved_at=r.approved_at,
            expires_at=r.expires_at,
            extensions_granted=r.extensions_granted,
            created_at=r.created_at,
            _model=r,
        )

    resolve_nodes = visible_nodes(
        repository.registrations_by_ids,
        lambda cls, row, ctx: cls.from_model(row, ctx.services.clock.now()),
    )


def _evidence(
    row: DealConflict,
    this_id: uuid.UUID,
    others: dict[uuid.UUID, DealRegistration],
    names: dict[uuid.UUID, str],
    now: datetime,
) -> DealConflictEvidence:
    forward = row.registration_id == this_id
    other = others[row.other_registration_id if forward else row.registration_id]
    status = repository.effective_status(other, now)
    return DealConflictEvidence(
        rules=[ConflictRule(rule) for rule in row.rules],
        score=row.score,
        name_score=row.name_score,
        shared_skus=list(row.shared_skus),
        same_country=row.same_country,
        stage=row.stage,
        detected_at=row.detected_at,
        other_is_earlier=row.other_is_earlier if forward else not row.other_is_earlier,
        other=DealConflictParty(
            id=to_global_id("DealRegistration", other.id),
            partner_name=names.get(other.partner_id, ""),
            customer_name=other.customer_name,
            customer_domain=other.customer_domain,
            customer_country=other.customer_country,
            status=status,
            submitted_at=other.submitted_at,
            protected=other.is_protected and status is DealStatus.APPROVED,
        ),
    )


@strawberry.type(name="DealProgramSettings", description="A vendor's deal registration rules.")
class DealProgramSettingsType:
    big_deal_threshold: MoneyType = strawberry.field(
        description="Registrations at or above this value are big deals and need a contact."
    )
    similarity_threshold: int = strawberry.field(
        description="Conflict score (0-100) from which similar names count as a conflict."
    )
    protection_days: int
    extension_days: int
    max_extensions: int
    review_sla_days: int = strawberry.field(description="Business days to review a submission.")
    updated_at: datetime | None

    @classmethod
    def from_model(cls, s: DealProgramSettings) -> DealProgramSettingsType:
        return cls(
            big_deal_threshold=MoneyType.of(s.big_deal_threshold_minor, s.currency),
            similarity_threshold=s.similarity_threshold,
            protection_days=s.protection_days,
            extension_days=s.extension_days,
            max_extensions=s.max_extensions,
            review_sla_days=s.review_sla_days,
            updated_at=s.updated_at,
        )


@strawberry.type(description="A registration you may see changed status.")
class DealStatusChange:
    registration_id: relay.GlobalID
    customer_name: str
    from_status: DealStatus | None = strawberry.field(
        description="Null for a new registration, and when the change is re-sent after the "
        "server's connection to its message broker was restored (the status it came from "
        "is not known then; `toStatus` is the current status)."
    )
    to_status: DealStatus
    status: DealStatus = strawberry.field(description="The registration's status now.")
    changed_at: datetime
