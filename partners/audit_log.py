"""Who may read which audit entries, and the filters and the CSV export over them.

The table and ``record(...)`` live in ``infra.audit`` (every domain writes entries); this
module decides reading, as every domain's repository does for its rows:

- VENDOR_ADMIN reads every entry of its vendor;
- FINANCE reads only the entries about money settings (``MONEY_ENTITY_TYPES``: programs and
  their versions, payout policy and profiles, adjustments, holds, statements, sale claim
  settings, deal program settings);
- every other role is refused (``AuditOp.READ``), and no one reads another vendor's entries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra import audit
from infra.audit import AuditEntry
from infra.clock import Clock
from infra.csv_cells import csv_line
from infra.ranges import check_order
from partners.errors import AuditLogErrorCode
from partners.policy import FINANCE_OR_ADMIN, Policy
from partners.roles import Principal, Role


class AuditOp(StrEnum):
    READ = "auditLog"
    EXPORT = "auditLogExport"


AUDIT = Policy[AuditOp]({AuditOp.READ: FINANCE_OR_ADMIN, AuditOp.EXPORT: FINANCE_OR_ADMIN})


class AuditEntity(StrEnum):
    """The entity types the audit log names (``AuditEntry.entity_type``)."""

    API_KEY = "api_key"
    PROGRAM = "program"
    PROGRAM_VERSION = "program_version"
    PAYOUT_POLICY = "payout_policy"
    PAYOUT_PROFILE = "payout_profile"
    ADJUSTMENT = "adjustment"
    PAYOUT_HOLD = "payout_hold"
    PAYOUT_STATEMENT = "payout_statement"
    CONTEST = "contest"
    SALE_CLAIM_SETTINGS = "sale_claim_settings"
    DEAL_PROGRAM_SETTINGS = "deal_program_settings"
    SERIAL_IMPORT = "serial_import"
    SUBSCRIPTION_IMPORT = "subscription_import"
    PRODUCT = "product"
    OUTBOX_EVENT = "outbox_event"
    # Partner administration (partners/admin.py): create, update, suspend, reactivate,
    # archive, import, manager assignments.
    PARTNER = "partner"
    PARTNER_APPLICATION = "partner_application"
    # A contest winner's money prize approved by finance (leaderboards/winners.py).
    CONTEST_PRIZE = "contest_prize"
    DISPLAY_KEY = "display_key"
    WEBHOOK_ENDPOINT = "webhook_endpoint"  # webhooks/endpoints.py, webhooks/worker.py
    # Incentive rules (incentives/rules.py): drafts, approvals, pauses, rollbacks, budgets;
    # their firings are recorded by the rule itself (actor "rule:<id>").
    INCENTIVE_RULE = "incentive_rule"
    RULE_FIRING = "rule_firing"


# What FINANCE may read: the entries about money (what partners are paid, and on what terms).
MONEY_ENTITY_TYPES: frozenset[str] = frozenset(
    {
        AuditEntity.PROGRAM,
        AuditEntity.PROGRAM_VERSION,
        AuditEntity.PAYOUT_POLICY,
        AuditEntity.PAYOUT_PROFILE,
        AuditEntity.ADJUSTMENT,
        AuditEntity.PAYOUT_HOLD,
        AuditEntity.PAYOUT_STATEMENT,
        AuditEntity.SALE_CLAIM_SETTINGS,
        AuditEntity.DEAL_PROGRAM_SETTINGS,
        AuditEntity.CONTEST_PRIZE,
        AuditEntity.INCENTIVE_RULE,
        AuditEntity.RULE_FIRING,
    }
)


async def log_change(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    action: str,
    entity_type: str,
    entity_id: object,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None = None,
) -> AuditEntry:
    """``infra.audit.record`` for a change the caller made (its vendor, its caller id, now).
    Given both ``before`` and ``after``, fields with equal values on both sides are dropped."""
    if before is not None and after is not None:
        before, after = changed_fields(before, after)
    return await audit.record(
        session, vendor_id=principal.vendor_id, actor=actor_of(principal), action=action,
        entity_type=entity_type, entity_id=str(entity_id),
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None, reason=reason, at=clock.now(),
    )  # fmt: skip


def actor_of(principal: Principal) -> str:
    """``Principal.caller`` ("user:<id>", "api_key:<id>"), or "operator:<login>" for a
    command run without either ("operator:system" when it names no operator: the demo)."""
    if principal.user_id is not None or principal.api_key_id is not None:
        return principal.caller
    return f"operator:{principal.operator or 'system'}"


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drop the fields both sides name with equal values (compared as stored); a field only
    one side names (context, like the statement a released hold belongs to) stays there."""
    safe = audit.json_safe
    same = {k for k in before.keys() & after.keys() if safe(before[k]) == safe(after[k])}
    return (
        {k: v for k, v in before.items() if k not in same},
        {k: v for k, v in after.items() if k not in same},
    )


def readable_audit_entries(principal: Principal) -> SelectOfScalar[AuditEntry]:
    """The entries the caller may read (see the module's docstring)."""
    stmt = select(AuditEntry).where(AuditEntry.vendor_id == principal.vendor_id)
    match principal.role:
        case Role.VENDOR_ADMIN:
            return stmt
        case Role.FINANCE:
            return stmt.where(col(AuditEntry.entity_type).in_(sorted(MONEY_ENTITY_TYPES)))
    return select(AuditEntry).where(false())


def filtered(
    stmt: SelectOfScalar[AuditEntry],
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action_prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SelectOfScalar[AuditEntry]:
    """The entries of ``stmt`` that match every filter given (``until`` is exclusive, and
    must be after ``since``: an ``INVALID_RANGE`` DomainError otherwise)."""
    check_order(AuditLogErrorCode.INVALID_RANGE, since, until, names=("since", "until"))
    if entity_type is not None:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action_prefix:
        stmt = stmt.where(col(AuditEntry.action).startswith(action_prefix, autoescape=True))
    if since is not None:
        stmt = stmt.where(col(AuditEntry.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditEntry.at) < until)
    return stmt


def audit_entries_matching(
    principal: Principal, **filters: str | datetime | None
) -> SelectOfScalar[AuditEntry]:
    return filtered(readable_audit_entries(principal), **filters)  # type: ignore[arg-type]


def vendor_entries(
    vendor_id: uuid.UUID, *, since: datetime | None = None
) -> SelectOfScalar[AuditEntry]:
    """Every entry of one vendor (the operator's export, which has no principal)."""
    return filtered(select(AuditEntry).where(AuditEntry.vendor_id == vendor_id), since=since)


CSV_COLUMNS = (
    "id", "at", "actor", "action", "entity_type", "entity_id", "before", "after", "reason",
)  # fmt: skip


async def export_rows(
    session: AsyncSession, stmt: SelectOfScalar[AuditEntry], *, limit: int
) -> list[AuditEntry]:
    """The statement's entries, oldest first (a CSV reads as a history), at most ``limit``."""
    rows = await session.exec(stmt.order_by(col(AuditEntry.id)).limit(limit))
    return list(rows)


async def export_pages(
    session: AsyncSession, stmt: SelectOfScalar[AuditEntry], *, page: int = 5_000
) -> AsyncIterator[list[AuditEntry]]:
    """Every entry of the statement, oldest first, a page at a time (for exports of any
    size: keyset pages by id, never the whole log in memory)."""
    after: uuid.UUID | None = None
    while True:
        batch = stmt if after is None else stmt.where(col(AuditEntry.id) > after)
        rows = list(await session.exec(batch.order_by(col(AuditEntry.id)).limit(page)))
        if not rows:
            return
        yield rows
        after = rows[-1].id


def to_csv(entries: Iterable[AuditEntry], *, header: bool = True) -> str:
    """RFC 4180 CSV (with a header row unless ``header`` is false), written by
    ``infra.csv_cells`` (no cell a spreadsheet runs as a formula); before/after as compact
    JSON, times in ISO 8601 UTC."""
    lines = [csv_line(CSV_COLUMNS)] if header else []
    for e in entries:
        lines.append(
            csv_line([
                str(e.id), e.at.isoformat(), e.actor, e.action, e.entity_type, e.entity_id,
                _json(e.before), _json(e.after), e.reason or "",
            ])
        )  # fmt: skip
    return "".join(lines)


def _json(value: dict[str, object] | None) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


async def entries_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, AuditEntry]:
    rows = await session.exec(readable_audit_entries(principal).where(col(AuditEntry.id).in_(ids)))
    return {e.id: e for e in rows}
