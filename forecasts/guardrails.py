"""Concentration guardrails: vendor-set limits on how much of a basis (revenue; recurring
revenue once subscriptions are merged) the largest partner, or the largest N partners
together, may hold in a quarter, overall or within a region or partner group.

    share(top N) = Σ basis of the N partners with the most ÷ Σ basis of every partner in scope

Bases: revenue effective in the quarter so far, or annual recurring revenue of the
subscriptions live now. Shares are in basis points, rounded half away from zero (partners
with a negative total count as 0;
no share while the total is 0). A share strictly above the threshold's ``max_share_bp``
crosses it: one ``ConcentrationAlert`` per threshold and quarter (whatever happens later in
the quarter) and a ``ConcentrationAlerted`` event, in the same transaction. Checked for the
quarter to date whenever a partner's earnings change and when a threshold is set
(``forecasts.handlers``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.rounding import ratio_bp
from forecasts.actuals import revenue_by_partner
from forecasts.errors import GuardrailErrorCode as Code
from forecasts.events import ConcentrationAlerted, ConcentrationThresholdChanged
from forecasts.models import (
    ConcentrationAlert,
    ConcentrationThreshold,
    GuardrailScope,
    ShareBasis,
    ShareMetric,
)
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.quarters import Quarter
from infra.clock import Clock
from infra.codes import is_currency
from infra.db import for_change
from infra.errors import DomainError, DomainErrors
from infra.outbox import record_event
from infra.text import free_text_problem, identifier_problem
from partners.audit_log import log_change
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.models import Partner
from partners.roles import Principal
from subscriptions.events import arr_of
from subscriptions.models import Subscription, SubscriptionStatus

AUDIT_ENTITY = "concentration_threshold"


async def _revenue(
    session: AsyncSession, *, vendor_id: uuid.UUID, currency: str, start: datetime, end: datetime
) -> dict[uuid.UUID, int]:
    return await revenue_by_partner(
        session, vendor_id=vendor_id, currency=currency, start=start, end=end
    )


async def _recurring(
    session: AsyncSession, *, vendor_id: uuid.UUID, currency: str, start: datetime, end: datetime
) -> dict[uuid.UUID, int]:
    """Annual recurring revenue (``subscriptions.events.arr_of``) of the subscriptions live
    at ``end`` (active, started, their term not over), per partner."""
    rows = await session.exec(
        select(Subscription).where(
            Subscription.vendor_id == vendor_id,
            Subscription.currency == currency,
            Subscription.status == SubscriptionStatus.ACTIVE,
            col(Subscription.starts_at) <= end,
            col(Subscription.ends_at) > end,
        )
    )
    out: dict[uuid.UUID, int] = {}
    for sub in rows:
        out[sub.partner_id] = out.get(sub.partner_id, 0) + arr_of(sub.amount_minor, sub.term_months)
    return out


# One reader per basis.
BASES: dict[ShareBasis, Callable[..., Awaitable[dict[uuid.UUID, int]]]] = {
    ShareBasis.REVENUE: _revenue,
    ShareBasis.RECURRING_REVENUE: _recurring,
}


@dataclass(frozen=True)
class Share:
    share_bp: int | None
    top_partner_ids: list[uuid.UUID]
    top_minor: int
    total_minor: int


def top_share(per_partner: dict[uuid.UUID, int], top_n: int) -> Share:
    amounts = {pid: max(v, 0) for pid, v in per_partner.items()}
    ranked = sorted(amounts, key=lambda pid: (-amounts[pid], str(pid)))[:top_n]
    top = sum(amounts[pid] for pid in ranked)
    total = sum(amounts.values())
    return Share(
        share_bp=ratio_bp(top, total) if total > 0 else None,
        top_partner_ids=[pid for pid in ranked if amounts[pid] > 0],
        top_minor=top,
        total_minor=total,
    )


async def partners_in_scope(
    session: AsyncSession, vendor_id: uuid.UUID, scope: GuardrailScope, value: str, at: datetime
) -> set[uuid.UUID] | None:
    """The partners a scope covers (None: every partner of the vendor)."""
    if scope is GuardrailScope.OVERALL:
        return None
    if scope is GuardrailScope.REGION:
        rows = await session.exec(
            select(Partner.id).where(Partner.vendor_id == vendor_id, Partner.region == value)
        )
        return set(rows)
    rows = await session.exec(
        select(PartnerGroupMembership.partner_id).where(
            PartnerGroupMembership.vendor_id == vendor_id,
            PartnerGroupMembership.group_id == uuid.UUID(value),
            col(PartnerGroupMembership.joined_at) <= at,
            or_(
                col(PartnerGroupMembership.left_at).is_(None),
                col(PartnerGroupMembership.left_at) > at,
            ),
        )
    )
    return set(rows)


async def share_of(
    session: AsyncSession, threshold: ConcentrationThreshold, quarter: Quarter, at: datetime
) -> Share:
    per = await BASES[threshold.basis](
        session, vendor_id=threshold.vendor_id, currency=threshold.currency,
        start=quarter.starts_at, end=min(quarter.ends_at, max(at, quarter.starts_at)),
    )  # fmt: skip
    members = await partners_in_scope(
        session, threshold.vendor_id, threshold.scope, threshold.scope_value, at
    )
    if members is not None:
        per = {pid: v for pid, v in per.items() if pid in members}
    return top_share(per, threshold.top_n)


async def evaluate(
    session: AsyncSession, clock: Clock, vendor_id: uuid.UUID, *, quarter: Quarter | None = None,
    threshold_ids: Collection[uuid.UUID] | None = None,
) -> list[ConcentrationAlert]:  # fmt: skip
    """Check the vendor's thresholds for the quarter (default: the current one, to date);
    record an alert for each newly crossed one. Idempotent per threshold and quarter."""
    now = clock.now()
    q = quarter or Quarter.of(now)
    stmt = select(ConcentrationThreshold).where(
        ConcentrationThreshold.vendor_id == vendor_id,
        col(ConcentrationThreshold.archived_at).is_(None),
    )
    if threshold_ids is not None:
        stmt = stmt.where(col(ConcentrationThreshold.id).in_(list(threshold_ids)))
    thresholds = list(await session.exec(stmt.order_by(col(ConcentrationThreshold.id))))
    if not thresholds:
        return []
    fired = set(
        await session.exec(
            select(ConcentrationAlert.threshold_id).where(
                col(ConcentrationAlert.threshold_id).in_([t.id for t in thresholds]),
                ConcentrationAlert.quarter == q.key,
            )
        )
    )
    created = []
    for threshold in thresholds:
        if threshold.id in fired:
            continue
        share = await share_of(session, threshold, q, now)
        if share.share_bp is None or share.share_bp <= threshold.max_share_bp:
            continue
        alert = ConcentrationAlert(
            vendor_id=vendor_id, threshold_id=threshold.id, quarter=q.key,
            share_bp=share.share_bp, max_share_bp=threshold.max_share_bp,
            top_revenue_minor=share.top_minor, total_revenue_minor=share.total_minor,
            currency=threshold.currency, top_partner_ids=[str(p) for p in share.top_partner_ids],
            fired_at=now,
        )  # fmt: skip
        try:
            async with session.begin_nested():
                session.add(alert)
                await session.flush()
        except IntegrityError:
            continue  # raised meanwhile by another dispatcher (its event is recorded there)
        event = ConcentrationAlerted(
            alert_id=alert.id, threshold_id=threshold.id, quarter=q.key,
            metric=threshold.metric.value, top_n=threshold.top_n, basis=threshold.basis.value,
            scope=threshold.scope.value, scope_value=threshold.scope_value,
            currency=threshold.currency, share_bp=share.share_bp,
            max_share_bp=threshold.max_share_bp, top_partner_ids=alert.top_partner_ids,
        )  # fmt: skip
        await record_event(
            session, clock, vendor_id=vendor_id, type=event.type, aggregate_id=threshold.id,
            payload=event.to_payload(),
        )  # fmt: skip
        created.append(alert)
    return created


async def alerts_fired(
    session: AsyncSession, vendor_id: uuid.UUID, quarters: Collection[str], until: datetime
) -> list[ConcentrationAlert]:
    """The vendor's alerts of ``quarters`` raised before ``until`` (a read for the signal
    feed: which partners an alert of the quarter names)."""
    rows = await session.exec(
        select(ConcentrationAlert).where(
            ConcentrationAlert.vendor_id == vendor_id,
            col(ConcentrationAlert.quarter).in_(list(quarters)),
            col(ConcentrationAlert.fired_at) < until,
        )
    )
    return list(rows)


# ------------------------------------------------------------------- administration


def snapshot(t: ConcentrationThreshold) -> dict[str, Any]:
    return {
        "metric": t.metric.value, "top_n": t.top_n, "basis": t.basis.value,
        "scope": t.scope.value, "scope_value": t.scope_value, "currency": t.currency,
        "max_share_bp": t.max_share_bp, "archived": t.archived_at is not None,
    }  # fmt: skip


def _reason(reason: str | None, errors: list[DomainError]) -> None:
    """A reason is kept in the audit log people read: free text (infra.text)."""
    if reason and (problem := free_text_problem(reason)):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "reason"))


async def set_threshold(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    metric: ShareMetric,
    basis: ShareBasis,
    scope: GuardrailScope,
    max_share_bp: int,
    currency: str,
    top_n: int | None = None,
    scope_value: str = "",
    reason: str | None = None,
) -> ConcentrationThreshold:
    """Create, or change the limit of, the vendor's threshold for this metric, basis, scope
    and currency (audited; checked against the quarter so far once committed)."""
    FORECASTS.require(principal, ForecastOp.THRESHOLD_SET)
    errors: list[DomainError] = []
    n = 1 if top_n is None and metric is ShareMetric.TOP_PARTNER_SHARE else (top_n or 0)
    if metric is ShareMetric.TOP_PARTNER_SHARE and n != 1:
        errors.append(
            DomainError(Code.INVALID_TOP_N, "The top partner's share has N = 1.", "top_n")
        )
    elif not 1 <= n <= 100:
        errors.append(DomainError(Code.INVALID_TOP_N, "N is between 1 and 100.", "top_n"))
    if not 1 <= max_share_bp <= 10_000:
        errors.append(DomainError(
            Code.INVALID_SHARE, "The limit is between 1 and 10000 basis points.", "max_share_bp"
        ))  # fmt: skip
    code = currency.strip().upper()
    if not is_currency(code):
        errors.append(DomainError(
            Code.INVALID_CURRENCY, "Use an ISO 4217 currency code like USD.", "currency"
        ))  # fmt: skip
    value = scope_value.strip()
    if scope is GuardrailScope.OVERALL and value:
        errors.append(DomainError(
            Code.SCOPE_VALUE_NOT_ALLOWED, "An overall threshold names no region or group.",
            "scope_value",
        ))  # fmt: skip
    elif scope is not GuardrailScope.OVERALL and not value:
        errors.append(DomainError(
            Code.SCOPE_VALUE_REQUIRED, "Name the region or the group.", "scope_value"
        ))  # fmt: skip
    elif scope is GuardrailScope.REGION and len(value) > 32:
        errors.append(
            DomainError(
                Code.SCOPE_VALUE_REQUIRED, "A region has at most 32 characters.", "scope_value"
            )
        )
    elif scope is GuardrailScope.REGION and (problem := identifier_problem(value)):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "scope_value"))
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    if scope is GuardrailScope.GROUP:
        value = await _group_id(session, principal, value)
    now = clock.now()
    found = await session.exec(
        select(ConcentrationThreshold).where(
            ConcentrationThreshold.vendor_id == principal.vendor_id,
            ConcentrationThreshold.metric == metric,
            ConcentrationThreshold.top_n == n,
            ConcentrationThreshold.basis == basis,
            ConcentrationThreshold.scope == scope,
            ConcentrationThreshold.scope_value == value,
            ConcentrationThreshold.currency == code,
        )
    )
    threshold = found.first()
    before = None if threshold is None else snapshot(threshold)
    if threshold is None:
        threshold = ConcentrationThreshold(
            vendor_id=principal.vendor_id, metric=metric, top_n=n, basis=basis, scope=scope,
            scope_value=value, currency=code, max_share_bp=max_share_bp, created_at=now,
            updated_at=now,
        )  # fmt: skip
    else:
        threshold.max_share_bp = max_share_bp
        threshold.archived_at = None
        threshold.updated_at = now
    session.add(threshold)
    await session.flush()
    await log_change(
        session, principal, clock, action="concentrationThresholdSet", entity_type=AUDIT_ENTITY,
        entity_id=threshold.id, before=before, after=snapshot(threshold), reason=reason,
    )  # fmt: skip
    changed = ConcentrationThresholdChanged(threshold_id=threshold.id)
    await record_event(
        session, clock, vendor_id=principal.vendor_id, type=changed.type,
        aggregate_id=threshold.id, payload=changed.to_payload(),
    )  # fmt: skip
    return threshold


async def _group_id(session: AsyncSession, principal: Principal, raw: str) -> str:
    try:
        group_id = uuid.UUID(raw)
    except ValueError:
        group_id = None
    group = None
    if group_id is not None:
        group = (
            await session.exec(
                select(PartnerGroup).where(
                    PartnerGroup.id == group_id,
                    PartnerGroup.vendor_id == principal.vendor_id,
                    col(PartnerGroup.archived_at).is_(None),
                )
            )
        ).first()
    if group is None:
        raise DomainError(Code.UNKNOWN_GROUP, "No such partner group.", "scope_value")
    if group.managed_by is not None:
        # A pilot's treatment arm: thresholds and their alerts are read by every vendor role,
        # and would tell channel managers who is in the arm (partners.group_policy).
        raise DomainError(
            Code.MANAGED_GROUP,
            f"This group is managed by a {group.managed_by}; it is not a guardrail's scope.",
            "scope_value",
        )
    return str(group.id)


async def remove_threshold(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    threshold_id: uuid.UUID,
    reason: str | None = None,
) -> ConcentrationThreshold:
    """Stop checking a threshold (kept, with its alerts; setting it again revives it)."""
    FORECASTS.require(principal, ForecastOp.THRESHOLD_REMOVE)
    found = await session.exec(
        for_change(
            select(ConcentrationThreshold).where(
                ConcentrationThreshold.id == threshold_id,
                ConcentrationThreshold.vendor_id == principal.vendor_id,
                col(ConcentrationThreshold.archived_at).is_(None),
            ),
            ConcentrationThreshold,
        )
    )
    threshold = found.first()
    if threshold is None:
        raise DomainError(Code.NOT_FOUND, "No such threshold.", "id")
    errors: list[DomainError] = []
    _reason(reason, errors)
    if errors:
        raise DomainErrors(errors)
    before = snapshot(threshold)
    threshold.archived_at = clock.now()
    threshold.updated_at = clock.now()
    session.add(threshold)
    await session.flush()
    await log_change(
        session, principal, clock, action="concentrationThresholdRemove",
        entity_type=AUDIT_ENTITY, entity_id=threshold.id, before=before,
        after=snapshot(threshold), reason=reason,
    )  # fmt: skip
    return threshold
