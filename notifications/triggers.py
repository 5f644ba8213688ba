"""Which outbox events notify whom, and with what: one function per event type, each
reading what the message needs in the handler's session and returning ``Notice``s keyed by
the event's id (so a re-run of the handler delivers nothing twice).

Recipients: a partner's news goes to the partner's admins and, for what a rep did (a
claim, a deal), to that rep; vendor news (a partner applied, a webhook endpoint disabled)
goes to the vendor's admins (a rule's budget loosening or draft version: to its admins but
the one who acted, ``notifications.rules``). Nobody is told of another partner's or
vendor's records."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from deal_registration.registrations.models import DealRegistration, DealStatus
from deal_registration.sales.models import ClaimState, SaleClaim, SaleClaimDecision
from earnings.events import (
    PAYOUT_STATEMENT_STATUS_CHANGED,
    TIER_CHANGED,
    PayoutStatementStatusChanged,
    TierChanged,
)
from earnings.models import HoldReason, PayoutHold, PayoutStatus
from forecasts.events import CONCENTRATION_ALERTED
from incentives.events import (
    RULE_BUDGET_CHANGE_DECIDED,
    RULE_BUDGET_CHANGE_REQUESTED,
    RULE_FIRED,
    RULE_VERSION_DECIDED,
    RULE_VERSION_DRAFTED,
)
from infra.outbox import OutboxEvent
from leaderboards.events import CONTEST_FINISHED
from notifications.contests import contest_finished
from notifications.delivery import Notice, Trigger, partner_admins, to_each, vendor_admins
from notifications.forecasts import concentration_alerted
from notifications.models import Category
from notifications.rules import (
    budget_change_decided,
    budget_change_requested,
    rule_fired,
    version_decided,
    version_drafted,
)
from partners.events import PARTNER_APPLIED, PartnerApplied

_CLAIM_KINDS = {
    ClaimState.APPROVED: "claim_approved",
    ClaimState.AUTO_APPROVED: "claim_approved",
    ClaimState.REJECTED: "claim_rejected",
    ClaimState.REVERSED: "claim_reversed",
    ClaimState.NEEDS_PROOF: "claim_proof_requested",
}


async def claim_state_changed(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A claim decided (approved, rejected, reversed) or proof requested: to the rep who
    claimed it and the partner's admins. A claim's first state, which its submitter read in
    the answer to the submission, notifies nobody."""
    state = ClaimState(event.payload["state"])
    kind = _CLAIM_KINDS.get(state)
    claim = await session.get(SaleClaim, uuid.UUID(event.payload["claim_id"]))
    if kind is None or claim is None:
        return []
    decision = (
        await session.exec(
            select(SaleClaimDecision)
            .where(
                SaleClaimDecision.claim_id == claim.id,
                SaleClaimDecision.to_state == state,
                SaleClaimDecision.decided_at == event.occurred_at,
            )
            .order_by(col(SaleClaimDecision.id).desc())
        )
    ).first()
    if decision is None or decision.from_state is None:
        return []
    reason: StrEnum | None = claim.reject_reason if state is ClaimState.REJECTED else None
    if state is ClaimState.REVERSED:
        reason = claim.reverse_reason
    params = {
        "customer": claim.customer_name, "invoice": claim.invoice_number,
        "amount_minor": claim.amount_minor, "currency": claim.currency,
        "reason": reason.value.replace("_", " ").lower() if reason else None,
    }  # fmt: skip
    admins = await partner_admins(session, claim.partner_id)
    return to_each([claim.rep_user_id, *admins], event, Category.CLAIM, kind, params, claim.id)


async def deal_status_changed(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A deal registration approved or rejected: to the rep who registered it and the
    partner's admins."""
    to_status = event.payload["to_status"]
    kinds = {DealStatus.APPROVED.value: "deal_approved", DealStatus.REJECTED.value: "deal_rejected"}
    kind = kinds.get(to_status)
    deal = await session.get(DealRegistration, uuid.UUID(event.payload["registration_id"]))
    if kind is None or deal is None:
        return []
    params = {
        "customer": deal.customer_name, "value_minor": deal.estimated_value_minor,
        "currency": deal.currency, "reason": deal.decision_reason or None,
        "protected_until": deal.expires_at if deal.is_protected else None,
    }  # fmt: skip
    admins = await partner_admins(session, deal.partner_id)
    return to_each([deal.registered_by_id, *admins], event, Category.DEAL, kind, params, deal.id)


def _hold_told(hold: PayoutHold) -> dict[str, Any]:
    """What a partner's notice tells of a hold: its reason, expected release and (a
    review's) words written for the partner only; never the internal note or flags."""
    return {
        "reason": hold.reason.value,
        "expected_release_at": hold.expected_release_at,
        "partner_note": hold.partner_note if hold.reason is HoldReason.REVIEW else "",
    }


async def payout_status_changed(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A payout statement held (with what clears each open hold), released (back from
    HELD) or paid: to the partner's admins (statements are the organisation's)."""
    changed = PayoutStatementStatusChanged.parse(event.payload)
    params: dict[str, Any] = {
        "period_start": changed.period_start, "amount_minor": changed.total_minor,
        "currency": changed.currency, "at": changed.at,
    }  # fmt: skip
    if changed.to_status == PayoutStatus.HELD.value:
        kind = "payout_held"
        holds = list(
            await session.exec(
                select(PayoutHold)
                .where(
                    PayoutHold.statement_id == changed.statement_id,
                    col(PayoutHold.released_at).is_(None),
                )
                .order_by(col(PayoutHold.created_at))
            )
        )
        if not holds:
            # Released before this notice was sent: the hold as it was placed (the latest
            # of the event's reason by then).
            placed = await session.exec(
                select(PayoutHold)
                .where(
                    PayoutHold.statement_id == changed.statement_id,
                    col(PayoutHold.reason) == HoldReason(changed.reason or HoldReason.MANUAL),
                    col(PayoutHold.created_at) <= changed.at,
                )
                .order_by(col(PayoutHold.created_at).desc())
                .limit(1)
            )
            holds = list(placed)
        params["holds"] = [_hold_told(h) for h in holds] or [
            {"reason": changed.reason or "MANUAL", "expected_release_at": None, "partner_note": ""}
        ]
    elif changed.from_status == PayoutStatus.HELD.value:
        kind = "payout_released"
    elif changed.to_status == PayoutStatus.PAID.value:
        kind = "payout_paid"
    else:
        return []
    admins = await partner_admins(session, changed.partner_id)
    return to_each(list(admins), event, Category.PAYOUT, kind, params, changed.statement_id)


async def tier_changed(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A tier reached or lost: to the partner's admins."""
    changed = TierChanged.parse(event.payload)
    params = {
        "program": changed.program_name, "tier": changed.to_tier,
        "previous_tier": changed.from_tier, "threshold_minor": changed.threshold_minor,
        "revenue_minor": changed.qualified_revenue_minor, "window_days": changed.window_days,
        "currency": changed.currency,
    }  # fmt: skip
    kind = "tier_reached" if changed.reached else "tier_lost"
    admins = await partner_admins(session, changed.partner_id)
    return to_each(list(admins), event, Category.TIER, kind, params, changed.program_id)


async def partner_applied(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A company applied to the vendor's program: to the vendor's admins."""
    applied = PartnerApplied.parse(event.payload)
    contact = " ".join(p for p in (applied.contact_name, f"<{applied.contact_email}>") if p)
    params = {"company": applied.company, "contact": contact}
    admins = await vendor_admins(session, event.vendor_id)
    return to_each(
        list(admins), event, Category.PARTNER_APPLICATION, "partner_applied", params,
        applied.application_id,
    )  # fmt: skip


# Recorded by the webhooks package (``webhooks.events.WebhookEndpointDisabled``: endpoint_id,
# url, failing_since, disabled_at, last_error_class). Webhooks and notifications are
# independent layers, so its payload is read here by that contract, not through its class.
WEBHOOK_ENDPOINT_DISABLED = "WebhookEndpointDisabled"


async def webhook_endpoint_disabled(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """An endpoint disabled after persistent delivery failure: to the vendor's admins."""
    payload = event.payload
    params = {"url": str(payload["url"]), "reason": payload.get("last_error_class") or None}
    admins = await vendor_admins(session, event.vendor_id)
    endpoint_id = uuid.UUID(str(payload["endpoint_id"]))
    return to_each(
        list(admins), event, Category.WEBHOOK, "webhook_disabled", params, endpoint_id
    )  # fmt: skip


TRIGGERS: dict[str, Trigger] = {
    CLAIM_STATE_CHANGED: claim_state_changed,
    DEAL_STATUS_CHANGED: deal_status_changed,
    PAYOUT_STATEMENT_STATUS_CHANGED: payout_status_changed,
    TIER_CHANGED: tier_changed,
    PARTNER_APPLIED: partner_applied,
    CONTEST_FINISHED: contest_finished,
    WEBHOOK_ENDPOINT_DISABLED: webhook_endpoint_disabled,
    RULE_FIRED: rule_fired,
    RULE_BUDGET_CHANGE_REQUESTED: budget_change_requested,
    RULE_BUDGET_CHANGE_DECIDED: budget_change_decided,
    RULE_VERSION_DRAFTED: version_drafted,
    RULE_VERSION_DECIDED: version_decided,
    CONCENTRATION_ALERTED: concentration_alerted,
}

__all__ = ["TRIGGERS", "Trigger"]
