"""The webhook event types: which outbox events become which messages, and what each
message carries.

Every source maps one committed outbox event (``infra.events.Event`` classes, parsed
through their own ``parse``) to zero or more messages. A message's ``data`` holds what the
endpoint's vendor may read about its own partners (it is that vendor's data); never another
vendor's (deliveries go only to the event's own vendor) and never secrets. Keys are
camelCase, as in the GraphQL API; ids are the UUIDs inside the API's global ids; money is
integer minor units with its currency; instants ISO 8601 UTC.

Adding an event type is one ``Source`` in ``SOURCES``: the outbox type, the webhook type
names it produces with their descriptions, and the mapper. Nothing else changes: the
handler, the registration checks and the ``webhookEventTypes`` query all read
``SOURCES``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deal_registration.events import (
    CLAIM_STATE_CHANGED,
    DEAL_PROTECTION_CHANGED,
    DEAL_STATUS_CHANGED,
    SALE_APPROVED,
    SALE_REVERSED,
    DealProtectionChanged,
    SaleApproved,
    SaleReversed,
)
from earnings.events import (
    EARNINGS_CHANGED,
    PAYOUT_STATEMENT_STATUS_CHANGED,
    EarningsChanged,
    PayoutStatementStatusChanged,
)
from incentives.events import RULE_FIRED, RuleFired
from infra.outbox import OutboxEvent
from leaderboards.events import CONTEST_FINISHED, ContestFinished
from partners.events import PARTNER_APPLIED, PARTNER_ENROLLED, PartnerApplied, PartnerEnrolled


@dataclass(frozen=True)
class Message:
    """One webhook message: ``message_id`` is its ``webhook-id`` (the outbox event's id, or
    for one of several messages of an event, the id of the record it is about)."""

    message_id: uuid.UUID
    type: str
    data: dict[str, Any]


Mapper = Callable[[OutboxEvent], list[Message]]


@dataclass(frozen=True)
class Source:
    outbox_type: str
    types: dict[str, str]  # webhook type -> what it means (the webhookEventTypes query)
    mapper: Mapper


_CAMEL = re.compile(r"_([a-z0-9])")


def camel(value: Any) -> Any:
    """Payload keys as the API spells them (``amount_minor`` -> ``amountMinor``)."""
    if isinstance(value, dict):
        return {_CAMEL.sub(lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _one(type_: str, fields: Callable[[dict[str, Any]], dict[str, Any]]) -> Mapper:
    """A mapper to one message with the event's id, its data built from the payload."""

    def mapper(event: OutboxEvent) -> list[Message]:
        return [Message(event.id, type_, camel(fields(event.payload)))]

    return mapper


def _sale_approved(payload: dict[str, Any]) -> dict[str, Any]:
    sale = SaleApproved.parse(payload)
    return {
        "sale_claim_id": str(sale.claim_id), "partner_id": str(sale.partner_id),
        "rep_user_id": str(sale.rep_user_id) if sale.rep_user_id else None,
        "region": sale.region, "amount_minor": sale.amount_minor, "currency": sale.currency,
        "lines": [vars(line) for line in sale.lines],
        "sold_at": _iso(sale.sold_at), "approved_at": _iso(sale.approved_at),
    }  # fmt: skip


def _sale_reversed(payload: dict[str, Any]) -> dict[str, Any]:
    rev = SaleReversed.parse(payload)
    return {
        "sale_claim_id": str(rev.claim_id), "partner_id": str(rev.partner_id),
        "rep_user_id": str(rev.rep_user_id) if rev.rep_user_id else None,
        "region": rev.region, "amount_minor": rev.amount_minor, "currency": rev.currency,
        "reason": rev.reason, "lines": [vars(line) for line in rev.lines],
        "reversed_at": _iso(rev.reversed_at),
    }  # fmt: skip


def _claim_rejected(event: OutboxEvent) -> list[Message]:
    if event.payload.get("state") != "REJECTED":
        return []  # approvals and reversals have messages of their own
    data = {
        "sale_claim_id": event.payload["claim_id"], "partner_id": event.payload["partner_id"],
        "rep_user_id": event.payload.get("rep_user_id"), "state": "REJECTED",
        "rejected_at": event.occurred_at.isoformat(),
    }  # fmt: skip
    return [Message(event.id, "sale_claim.rejected", camel(data))]


def _deal_status(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "deal_registration_id": payload["registration_id"], "partner_id": payload["partner_id"],
        "from_status": payload.get("from_status"), "to_status": payload["to_status"],
        "at": payload["at"],
    }  # fmt: skip


def _deal_protection(payload: dict[str, Any]) -> dict[str, Any]:
    changed = DealProtectionChanged.parse(payload)
    return {
        "deal_registration_id": str(changed.registration_id),
        "partner_id": str(changed.partner_id), "previous_until": _iso(changed.previous_until),
        "protected_until": _iso(changed.protected_until), "action": changed.action,
        "at": _iso(changed.at),
    }  # fmt: skip


def _statement(payload: dict[str, Any]) -> dict[str, Any]:
    changed = PayoutStatementStatusChanged.parse(payload)
    return {
        "payout_statement_id": str(changed.statement_id), "partner_id": str(changed.partner_id),
        "from_status": changed.from_status, "to_status": changed.to_status,
        "reason": changed.reason, "amount_minor": changed.total_minor,
        "currency": changed.currency, "entry_count": changed.entry_count,
        "period_start": _iso(changed.period_start), "period_end": _iso(changed.period_end),
        "at": _iso(changed.at),
    }  # fmt: skip


def _entries(event: OutboxEvent) -> list[Message]:
    changed = EarningsChanged.parse(event.payload)
    return [
        Message(
            entry.entry_id,
            "earnings_entry.created",
            camel(
                {
                    "earnings_entry_id": str(entry.entry_id),
                    "partner_id": str(changed.partner_id),
                    "rep_user_id": str(entry.rep_user_id) if entry.rep_user_id else None,
                    "kind": entry.kind,
                    "amount_minor": entry.amount_minor,
                    "currency": entry.currency,
                    "explanation": entry.explanation,
                    "program_id": str(entry.program_id) if entry.program_id else None,
                    "effective_at": _iso(entry.effective_at),
                    "booked_at": _iso(entry.booked_at),
                }
            ),
        )  # fmt: skip
        for entry in changed.entries
    ]


def _applied(payload: dict[str, Any]) -> dict[str, Any]:
    applied = PartnerApplied.parse(payload)
    return {
        "partner_application_id": str(applied.application_id),
        "reference": applied.reference, "company": applied.company,
        "contact_name": applied.contact_name, "contact_email": applied.contact_email,
        "country": applied.country, "applied_at": _iso(applied.applied_at),
    }  # fmt: skip


def _enrolled(payload: dict[str, Any]) -> dict[str, Any]:
    enrolled = PartnerEnrolled.parse(payload)
    return {
        "partner_id": str(enrolled.partner_id), "name": enrolled.name,
        "region": enrolled.region, "country": enrolled.country, "tier": enrolled.tier,
        "via": enrolled.via,
        "partner_application_id": str(enrolled.application_id)
        if enrolled.application_id else None,
        "enrolled_at": _iso(enrolled.enrolled_at),
    }  # fmt: skip


def _contest(payload: dict[str, Any]) -> dict[str, Any]:
    finished = ContestFinished.parse(payload)
    return {
        "contest_id": str(finished.contest_id), "contest_name": finished.contest_name,
        "period": finished.period, "period_starts_at": _iso(finished.period_starts_at),
        "period_ends_at": _iso(finished.period_ends_at), "final": finished.final,
        "anonymised": finished.anonymised,
        "winners": [
            {
                "rank": w.rank, "participant_id": str(w.participant_id),
                "partner_id": str(w.partner_id), "score": w.score, "prize": w.prize,
                "prize_minor": w.prize_minor, "currency": w.currency,
            }
            for w in finished.winners
        ],
    }  # fmt: skip


def _rule_fired(payload: dict[str, Any]) -> dict[str, Any]:
    # The firing's own facts only: not the signal values read (they may include vendor-only
    # signals of the partner) and not the staff message (internal to the vendor's staff).
    fired = RuleFired.parse(payload)
    return {
        "rule_firing_id": str(fired.firing_id), "rule_id": str(fired.rule_id),
        "rule_name": fired.rule_name, "rule_version_id": str(fired.version_id),
        "version": fired.version_number, "partner_id": str(fired.partner_id),
        "actions": list(fired.actions), "estimated_cost_minor": fired.estimated_cost_minor,
        "currency": fired.currency, "fired_at": _iso(fired.fired_at),
    }  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


SOURCES: tuple[Source, ...] = (
    Source(
        SALE_APPROVED,
        {
            "sale_claim.approved": "A sale claim was approved (by a reviewer or automatically): "
            "the amount, currency and lines it credits."
        },
        _one("sale_claim.approved", _sale_approved),
    ),
    Source(
        CLAIM_STATE_CHANGED,
        {"sale_claim.rejected": "A sale claim was rejected."},
        _claim_rejected,
    ),
    Source(
        SALE_REVERSED,
        {
            "sale_claim.reversed": "An approved sale was refunded or returned: what it takes "
            "back, and why."
        },
        _one("sale_claim.reversed", _sale_reversed),
    ),
    Source(
        DEAL_STATUS_CHANGED,
        {
            "deal_registration.status_changed": "A deal registration changed status (submitted, "
            "approved, rejected, won, lost, expired, ...)."
        },
        _one("deal_registration.status_changed", _deal_status),
    ),
    Source(
        DEAL_PROTECTION_CHANGED,
        {
            "deal_registration.protection_changed": "An approved deal registration's protection "
            "end moved with no change of status (an extension granted)."
        },
        _one("deal_registration.protection_changed", _deal_protection),
    ),
    Source(
        PAYOUT_STATEMENT_STATUS_CHANGED,
        {
            "payout_statement.status_changed": "A payout statement was generated (fromStatus "
            "null), held (with the hold reason), released, approved or paid."
        },
        _one("payout_statement.status_changed", _statement),
    ),
    Source(
        EARNINGS_CHANGED,
        {
            "earnings_entry.created": "A ledger entry was booked for a partner (commission, "
            "uplift, spiff, deal bonus, adjustment, clawback), with the explanation the partner "
            "reads. One message per entry (its webhook-id is the entry's id)."
        },
        _entries,
    ),
    Source(
        CONTEST_FINISHED,
        {
            "contest.finished": "A contest (or one period of a recurring contest) ended: its "
            "winners with rank, score and prize. `anonymised` says the contest hides "
            "participants from partners: show these ids to partners only as the board does."
        },
        _one("contest.finished", _contest),
    ),
    Source(
        PARTNER_APPLIED,
        {"partner.applied": "A company applied to your partner program."},
        _one("partner.applied", _applied),
    ),
    Source(
        PARTNER_ENROLLED,
        {
            "partner.enrolled": "A partner joined your program: created by staff (via CREATED), "
            "from an approved application (APPLICATION) or by an import (IMPORT)."
        },
        _one("partner.enrolled", _enrolled),
    ),
    Source(
        RULE_FIRED,
        {
            "rule.fired": "An incentive rule fired for a partner: the rule and version, the "
            "action kinds it applied and their estimated incentive cost over their windows."
        },
        _one("rule.fired", _rule_fired),
    ),
)

# Webhook type -> description, in the order above.
EVENT_TYPES: dict[str, str] = {name: text for s in SOURCES for name, text in s.types.items()}
MAPPERS: dict[str, Mapper] = {s.outbox_type: s.mapper for s in SOURCES}


def messages_of(event: OutboxEvent) -> list[Message]:
    mapper = MAPPERS.get(event.type)
    return mapper(event) if mapper is not None else []
