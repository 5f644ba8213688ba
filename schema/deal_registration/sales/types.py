"""GraphQL types for sale registration: claims, their serials, proof, decisions, flags."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry import Info, relay
from strawberry.scalars import JSON

from deal_registration import attachments as attachment_store
from deal_registration.attachments import Attachment
from deal_registration.sales import repository
from deal_registration.sales.models import (
    ClaimState,
    DecisionAction,
    RejectReason,
    ReverseReason,
    RiskKind,
    SaleClaim,
    SaleClaimSerial,
    SalesSettings,
    Serial,
    SerialOutcome,
    SerialStatus,
)
from infra.db import DbSession
from infra.outbox import OutboxEvent
from partners import repository as partners_repository
from partners.models import Partner
from schema.attachments import AttachmentType
from schema.context import Context
from schema.deal_registration.sales import loaders
from schema.money import MoneyType
from schema.partners.types import PartnerType
from schema.permissions import VendorStaff
from schema.relay import visible_nodes

SerialOutcomeEnum = strawberry.enum(
    SerialOutcome,
    description="How a claimed serial was judged. ALREADY_CLAIMED never says by whom.",
)
ClaimStateEnum = strawberry.enum(ClaimState, description="Where a sale claim stands.")
RejectReasonEnum = strawberry.enum(RejectReason)
ReverseReasonEnum = strawberry.enum(ReverseReason)
DecisionActionEnum = strawberry.enum(DecisionAction, name="SaleClaimDecisionAction")
RiskKindEnum = strawberry.enum(RiskKind, description="Vendor-internal risk signals.")
SerialStatusEnum = strawberry.enum(SerialStatus)


@strawberry.type(name="ClaimedSerial", description="A serial on a claim and its judgement.")
class ClaimedSerialType:
    serial: str = strawberry.field(description="Normalised: upper case, no spaces or dashes.")
    sku: str | None = strawberry.field(
        description="The product, when the serial is known and shipped to your channel."
    )
    outcome: SerialOutcome

    @classmethod
    def from_model(cls, row: SaleClaimSerial) -> ClaimedSerialType:
        return cls(serial=row.serial, sku=row.sku, outcome=row.outcome)


@strawberry.type(name="SaleClaimDecision", description="A state change: what, who and when.")
class DecisionType:
    action: DecisionAction
    from_state: ClaimState | None
    to_state: ClaimState
    reason: str | None
    note: str
    decided_at: datetime
    decided_by_name: str | None = strawberry.field(
        description="The person who decided; null for the system (automatic decisions)."
    )


@strawberry.type(name="RiskFlag", description="A vendor-internal warning on a claim.")
class RiskFlagType:
    kind: RiskKind
    detail: str
    created_at: datetime


@dataclass
class _Loaded:
    """Nested data read up front (subscriptions read in a short session of their own)."""

    serials: list[SaleClaimSerial]
    attachments: list[Attachment]
    partner: Partner | None


@strawberry.type(name="SaleClaim", description="A partner's claim of a sale, by serial numbers.")
class SaleClaimType(relay.Node):
    id: relay.NodeID[str]
    state: ClaimState
    customer_name: str
    invoice_number: str
    sale_date: date
    amount: MoneyType
    region: str
    reject_reason: RejectReason | None
    reverse_reason: ReverseReason | None
    created_at: datetime
    updated_at: datetime
    _claim_id: strawberry.Private[uuid.UUID]
    _partner_id: strawberry.Private[uuid.UUID]
    _loaded: strawberry.Private[_Loaded | None] = None

    @strawberry.field(description="The serials claimed, in the order given, with outcomes.")
    async def serials(self, info: Info[Context, None]) -> list[ClaimedSerialType]:
        rows = (
            self._loaded.serials
            if self._loaded
            else await loaders.claim_serials(info.context).load(self._claim_id)
        )
        return [ClaimedSerialType.from_model(r) for r in rows]

    @strawberry.field(description="Proof files attached to the claim.")
    async def attachments(self, info: Info[Context, None]) -> list[AttachmentType]:
        rows = (
            self._loaded.attachments
            if self._loaded
            else await loaders.claim_attachments(info.context).load(self._claim_id)
        )
        return [AttachmentType.from_model(r) for r in rows]

    @strawberry.field(description="The partner organisation that claims the sale.")
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        if self._loaded is not None:
            return PartnerType.from_model(self._loaded.partner) if self._loaded.partner else None
        principal = info.context.principal
        if principal is None:
            return None
        found = await partners_repository.get_readable_partner(
            info.context.session, principal, self._partner_id
        )
        return PartnerType.from_model(found) if found else None

    @strawberry.field(
        description="Every state change with who and when. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    async def decisions(self, info: Info[Context, None]) -> list[DecisionType] | None:
        session = info.context.session
        rows = await repository.claim_decisions(session, self._claim_id)
        names = await _user_names(session, {r.decided_by_id for r in rows if r.decided_by_id})
        return [
            DecisionType(
                action=r.action,
                from_state=r.from_state,
                to_state=r.to_state,
                reason=r.reason,
                note=r.note,
                decided_at=r.decided_at,
                decided_by_name=names.get(r.decided_by_id) if r.decided_by_id else None,
            )  # fmt: skip
            for r in rows
        ]

    @strawberry.field(
        description="Internal risk flags. Vendor roles only.", permission_classes=[VendorStaff]
    )
    async def risk_flags(self, info: Info[Context, None]) -> list[RiskFlagType] | None:
        principal = info.context.caller
        rows = await repository.claim_risk_flags(info.context.session, principal, self._claim_id)
        return [RiskFlagType(kind=r.kind, detail=r.detail, created_at=r.created_at) for r in rows]

    @classmethod
    def from_model(cls, claim: SaleClaim, loaded: _Loaded | None = None) -> SaleClaimType:
        return cls(
            id=str(claim.id), state=claim.state, customer_name=claim.customer_name,
            invoice_number=claim.invoice_number, sale_date=claim.sale_date,
            amount=MoneyType.of(claim.amount_minor, claim.currency), region=claim.region,
            reject_reason=claim.reject_reason, reverse_reason=claim.reverse_reason,
            created_at=claim.created_at, updated_at=claim.updated_at,
            _claim_id=claim.id, _partner_id=claim.partner_id, _loaded=loaded,
        )  # fmt: skip

    def as_of(self, state: ClaimState | None, at: datetime | None) -> SaleClaimType:
        """The claim as a change to ``state`` left it (live notices: the claim may have
        moved on since). A reason shows only with the state it explains."""
        if state is None or state is self.state:
            return self
        return dataclasses.replace(
            self, state=state, updated_at=at or self.updated_at,
            reject_reason=self.reject_reason if state is ClaimState.REJECTED else None,
            reverse_reason=self.reverse_reason if state is ClaimState.REVERSED else None,
        )  # fmt: skip

    @classmethod
    async def loaded(cls, session: DbSession, claim: SaleClaim) -> SaleClaimType:
        return cls.from_model(
            claim,
            _Loaded(
                serials=await repository.claim_serials(session, claim.id),
                attachments=await attachment_store.attachments_of(
                    session, repository.CLAIM_OWNER, claim.id
                ),
                partner=await partners_repository.get_partner(session, claim.partner_id),
            ),
        )

    resolve_nodes = visible_nodes(repository.claims_by_ids)


async def _user_names(session: DbSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    names = {}
    for user_id in ids:
        user = await partners_repository.get_user(session, user_id)
        if user is not None:
            names[user_id] = user.display_name
    return names


@strawberry.type(name="SerialRecord", description="A serial in the vendor's shipment registry.")
class SerialRecordType:
    serial: str
    sku: str
    region: str
    shipped_at: datetime
    status: SerialStatus
    _partner_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The partner it was shipped to, when known.")
    async def shipped_to(self, info: Info[Context, None]) -> PartnerType | None:
        if self._partner_id is None or info.context.principal is None:
            return None
        found = await partners_repository.get_readable_partner(
            info.context.session, info.context.principal, self._partner_id
        )
        return PartnerType.from_model(found) if found else None

    @classmethod
    def from_model(cls, row: Serial) -> SerialRecordType:
        return cls(
            serial=row.serial, sku=row.sku, region=row.region, shipped_at=row.shipped_at,
            status=row.status, _partner_id=row.partner_id,
        )  # fmt: skip


@strawberry.type(name="SerialCheck", description="How a serial would be judged if you claimed it.")
class SerialCheckType:
    serial: str = strawberry.field(description="The serial, normalised.")
    outcome: SerialOutcome
    sku: str | None = strawberry.field(
        description="The product, when the serial is known and shipped to your channel."
    )
    _record: strawberry.Private[Serial | None]

    @strawberry.field(
        description="The registry entry. Vendor roles only.", permission_classes=[VendorStaff]
    )
    def record(self) -> SerialRecordType | None:
        return SerialRecordType.from_model(self._record) if self._record else None


@strawberry.type(name="SalesSettings", description="A vendor's rules for sale claims.")
class SalesSettingsType:
    claim_window_days: int = strawberry.field(
        description="Claims are accepted up to this many days after the sale."
    )
    auto_approve_limit: MoneyType = strawberry.field(
        description="Fully valid claims up to this amount are approved at once."
    )
    proof_required: bool = strawberry.field(description="Claims need a proof file before approval.")
    max_serials_per_claim: int

    @classmethod
    def from_model(cls, row: SalesSettings) -> SalesSettingsType:
        return cls(
            claim_window_days=row.claim_window_days,
            auto_approve_limit=MoneyType.of(
                row.auto_approve_limit_minor, row.auto_approve_currency
            ),
            proof_required=row.proof_required,
            max_serials_per_claim=row.max_serials_per_claim,
        )


@strawberry.type(name="SaleEvent", description="A SaleApproved or SaleReversed outbox event.")
class SaleEventType(relay.Node):
    id: relay.NodeID[str]
    type: str
    claim_id: strawberry.ID
    occurred_at: datetime
    payload: JSON

    @classmethod
    def from_model(cls, event: OutboxEvent) -> SaleEventType:
        payload: Any = event.payload
        return cls(
            id=str(event.id), type=event.type,
            claim_id=strawberry.ID(str(relay.GlobalID("SaleClaim", str(event.aggregate_id)))),
            occurred_at=event.occurred_at, payload=payload,
        )  # fmt: skip

    resolve_nodes = visible_nodes(None)  # reachable through `saleEvents` only
