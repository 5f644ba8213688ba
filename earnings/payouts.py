"""Monthly payout statements: PENDING -> APPROVED -> PAID, or HELD with typed reasons.

A statement holds every entry booked in its month for one partner and currency; entries are
booked at the instant they are credited, so a month that has ended gets no new entries and
its statement total is final. Each decision (generate, hold, release, approve, pay) is an
immutable ``PayoutDecision`` with the data version (entry count and last entry id), the
program versions, the instant, the actor, the amount and the reason.

Status changes are conditional updates (``UPDATE ... WHERE status = expected``) issued as
the transaction's first write, so two finance users approving or paying at once produce
one decision and one error, never a double payment, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import booking, repository
from earnings.claims import ClaimSignals
from earnings.errors import EarningsErrorCode
from earnings.events import PayoutStatementStatusChanged
from earnings.ledger import record_change
from earnings.models import (
    CreditedSource,
    DecisionAction,
    EarningEntry,
    HoldReason,
    PayoutDecision,
    PayoutHold,
    PayoutPolicy,
    PayoutProfile,
    PayoutStatement,
    PayoutStatus,
    SourceType,
)
from earnings.policy import EARNINGS, EarningsOp
from earnings.rounding import BP, format_bp, ratio_bp
from infra import idempotency
from infra.audit import mask
from infra.clock import Clock
from infra.db import begin_write
from infra.errors import DomainError
from infra.money import Money
from infra.outbox import record_event
from infra.text import free_text_problem, name_problem
from partners.audit_log import AuditEntity, log_change
from partners.models import Partner
from partners.repository import get_readable_partner
from partners.roles import Principal

BANK_ACCOUNT = re.compile(r"^[A-Z0-9]{8,34}$")


def times(bp: int) -> str:
    """30000 -> '3x', 35000 -> '3.5x' (for notes)."""
    return format_bp(bp // 100).rstrip("%") + "x"


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(start: datetime) -> datetime:
    return (start - timedelta(days=1)).replace(day=1)


# ---------------------------------------------------------------------------- policy, profile


async def policy_for(session: AsyncSession, vendor_id: uuid.UUID) -> PayoutPolicy:
    found = (
        await session.exec(select(PayoutPolicy).where(PayoutPolicy.vendor_id == vendor_id))
    ).first()
    return found or PayoutPolicy(vendor_id=vendor_id, updated_at=datetime.now(UTC))


async def set_policy(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    above_average_factor_bp: int,
    trailing_statements: int = 3,
    review_days: int = 14,
) -> PayoutPolicy:
    EARNINGS.require(principal, EarningsOp.SET_POLICY)
    await begin_write(session)
    if not BP < above_average_factor_bp <= 100 * BP:
        raise DomainError(
            EarningsErrorCode.INVALID_FACTOR,
            "The factor is above 1x (10000 bp) and at most 100x.",
            "above_average_factor_bp",
        )
    if not 1 <= trailing_statements <= 24:
        raise DomainError(
            EarningsErrorCode.INVALID_FACTOR, "Compare with 1 to 24 statements.",
            "trailing_statements",
        )  # fmt: skip
    if not 1 <= review_days <= 90:
        raise DomainError(EarningsErrorCode.INVALID_FACTOR, "1 to 90 days.", "review_days")
    existing = (
        await session.exec(
            select(PayoutPolicy).where(PayoutPolicy.vendor_id == principal.vendor_id)
        )
    ).first()
    policy = existing or PayoutPolicy(vendor_id=principal.vendor_id, updated_at=clock.now())
    before = _policy_fields(existing) if existing is not None else None
    policy.above_average_factor_bp = above_average_factor_bp
    policy.trailing_statements = trailing_statements
    policy.review_days = review_days
    policy.updated_at = clock.now()
    session.add(policy)
    await session.flush()
    await log_change(
        session, principal, clock, action="payout_policy.updated",
        entity_type=AuditEntity.PAYOUT_POLICY, entity_id=policy.id, before=before,
        after=_policy_fields(policy),
    )  # fmt: skip
    return policy


def _policy_fields(policy: PayoutPolicy) -> dict[str, int]:
    return {
        "above_average_factor_bp": policy.above_average_factor_bp,
        "trailing_statements": policy.trailing_statements,
        "review_days": policy.review_days,
    }


def bank_fingerprint(account: str) -> str:
    return hashlib.sha256(account.encode()).hexdigest()


async def set_profile(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    tax_form_on_file: bool | None = None,
    bank_account: str | None = None,
) -> PayoutProfile:
    """Record a partner's tax form and bank account (only a fingerprint is kept)."""
    EARNINGS.require(principal, EarningsOp.SET_PROFILE)
    await begin_write(session)
    partner = await get_readable_partner(session, principal, partner_id)
    if partner is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such partner.", "partner_id")
    fingerprint = masked = None
    if bank_account is not None:
        normalised = re.sub(r"[\s-]", "", bank_account).upper()
        if not BANK_ACCOUNT.match(normalised):
            raise DomainError(
                EarningsErrorCode.INVALID_BANK_ACCOUNT,
                "A bank account (IBAN or account number) is 8-34 letters and digits.",
                "bank_account",
            )
        fingerprint = bank_fingerprint(normalised)
        masked = mask(normalised)  # the audit log's view: never the whole account
    existing = await profile_for(session, partner.id)
    profile = existing or PayoutProfile(
        vendor_id=partner.vendor_id, partner_id=partner.id, updated_at=clock.now()
    )
    before: dict[str, object] = {
        "tax_form_on_file": profile.tax_form_on_file,
        "bank_account": "****" if profile.bank_account_fingerprint else None,
    }
    after = dict(before)
    if tax_form_on_file is not None:
        profile.tax_form_on_file = tax_form_on_file
        after["tax_form_on_file"] = tax_form_on_file
    if fingerprint is not None:
        if fingerprint != profile.bank_account_fingerprint:
            after["bank_account"] = masked
        profile.bank_account_fingerprint = fingerprint
    profile.updated_at = clock.now()
    session.add(profile)
    await session.flush()
    await log_change(
        session, principal, clock, action="payout_profile.updated",
        entity_type=AuditEntity.PAYOUT_PROFILE, entity_id=profile.id,
        before=before if existing is not None else None,
        after={"partner_id": partner.id, **after} if existing is None else after,
    )  # fmt: skip
    if profile.tax_form_on_file:
        await _release_cleared_tax_holds(session, principal, clock, partner.id)
    return profile


async def profile_for(session: AsyncSession, partner_id: uuid.UUID) -> PayoutProfile | None:
    rows = await session.exec(select(PayoutProfile).where(PayoutProfile.partner_id == partner_id))
    return rows.first()


# ---------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class HoldFinding:
    reason: HoldReason
    internal_note: str
    risk_flags: tuple[str, ...] = ()
    expected_release_at: datetime | None = None
    partner_note: str = ""  # what the partner reads (REVIEW holds)


async def generate_statements(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    month: datetime,
    signals: ClaimSignals,
    idempotency_key: str | None = None,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
) -> list[PayoutStatement]:
    """Statements for every partner with entries booked in ``month`` (which must have
    ended), each checked for automatic holds. Statements that exist are left alone. With
    an idempotency key, the caller's retry is answered with the statements its first
    request made (an answer lost on its way is not an empty list the second time)."""
    EARNINGS.require(principal, EarningsOp.GENERATE_STATEMENTS)
    await begin_write(session)
    # No entry is booked into the month once it has statements: bookings under way commit
    # first, and later ones wait, then book into the first month still open.
    await booking.hold_for_statements(session, principal.vendor_id)
    start = month_start(month)
    end = next_month(start)
    now = clock.now()
    if end > now:
        raise DomainError(
            EarningsErrorCode.PERIOD_NOT_ENDED,
            f"{start:%B %Y} has not ended; statements are made for ended months.",
            "month",
        )
    taken = await _take(
        session, principal, GENERATE_SCOPE, idempotency_key, {"month": start}, now, key_retention
    )
    if taken is not None and taken.replay is not None:
        return await _made_with(session, principal, taken.replay)
    groups = await session.exec(
        select(
            EarningEntry.partner_id,
            EarningEntry.currency,
            func.sum(EarningEntry.amount_minor),
            func.count(),
        )
        .where(
            EarningEntry.vendor_id == principal.vendor_id,
            col(EarningEntry.booked_at) >= start,
            col(EarningEntry.booked_at) < end,
        )
        .group_by(col(EarningEntry.partner_id), col(EarningEntry.currency))
    )
    policy = await policy_for(session, principal.vendor_id)
    made: list[PayoutStatement] = []
    for partner_id, currency, total, count in list(groups):
        in_month = (
            EarningEntry.partner_id == partner_id,
            EarningEntry.currency == currency,
            col(EarningEntry.booked_at) >= start,
            col(EarningEntry.booked_at) < end,
        )
        last_id = await session.scalar(
            select(EarningEntry.id).where(*in_month).order_by(col(EarningEntry.id).desc()).limit(1)
        )
        versions = await session.exec(
            select(EarningEntry.program_version_id)
            .where(
                EarningEntry.partner_id == partner_id,
                EarningEntry.currency == currency,
                col(EarningEntry.booked_at) >= start,
                col(EarningEntry.booked_at) < end,
                col(EarningEntry.program_version_id).is_not(None),
            )
            .distinct()
        )
        statement = PayoutStatement(
            vendor_id=principal.vendor_id,
            partner_id=partner_id,
            currency=currency,
            period_start=start,
            period_end=end,
            total_minor=int(total or 0),
            entry_count=int(count),
            data_version=f"{int(count)}:{last_id}",
            program_version_ids=sorted(str(v) for v in versions),
            status=PayoutStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(statement)
                await session.flush()
        except IntegrityError:
            continue  # generated before (or by a concurrent run)
        _decide(session, principal.user_id, now, statement, DecisionAction.GENERATE)
        await record_status(session, clock, statement, None)
        for finding in await automatic_holds(session, statement, policy, now, signals):
            await _place_hold(session, principal.user_id, clock, statement, finding)
        made.append(statement)
        await record_change(session, clock, vendor_id=principal.vendor_id, partner_id=partner_id)
    await session.flush()
    if made:
        held = sum(1 for m in made if m.status is PayoutStatus.HELD)
        await log_change(
            session, principal, clock, action="payout_statements.generated",
            entity_type=AuditEntity.PAYOUT_STATEMENT, entity_id=f"{start:%Y-%m}", before=None,
            after={"month": f"{start:%Y-%m}", "statements": len(made), "held": held},
        )  # fmt: skip
    if taken is not None:
        await taken.done(session, made[0].id if made else NOTHING_MADE)
    return made


# Idempotency scopes (``infra.idempotency``) of the payout mutations.
GENERATE_SCOPE = "payoutStatementsGenerate"
PAY_SCOPE = "payoutMarkPaid"
# A generation's result, kept with its key: the first statement it made (the others were
# made with it, at the same instant), or this when it made none.
NOTHING_MADE = uuid.UUID(int=0)


async def _take(
    session: AsyncSession,
    principal: Principal,
    scope: str,
    key: str | None,
    request: dict[str, Any],
    now: datetime,
    retention: timedelta,
) -> idempotency.Taken | None:
    """``infra.idempotency.take`` for a payout mutation; None without a key (the demo
    seeder and other operators' calls send none: they are no user or API key to hold one)."""
    if not (key or "").strip():
        return None
    return await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=scope, key=key,
        request=request, now=now, codes=EarningsErrorCode, retention=retention,
    )  # fmt: skip


async def _made_with(
    session: AsyncSession, principal: Principal, first_id: uuid.UUID
) -> list[PayoutStatement]:
    """The statements a generation made, found from the first of them: the vendor's
    statements of that month made at the same instant (one generation holds the vendor's
    booking lock alone, so no other made any then), in the order they were made."""
    if first_id == NOTHING_MADE:
        return []
    first = await repository.get_readable_statement(session, principal, first_id)
    if first is None:  # pragma: no cover - statements are never deleted
        return []
    rows = await session.exec(
        select(PayoutStatement)
        .where(
            PayoutStatement.vendor_id == first.vendor_id,
            PayoutStatement.period_start == first.period_start,
            PayoutStatement.created_at == first.created_at,
        )
        .order_by(col(PayoutStatement.id))
    )
    return list(rows)


async def automatic_holds(
    session: AsyncSession,
    statement: PayoutStatement,
    policy: PayoutPolicy,
    now: datetime,
    signals: ClaimSignals,
) -> list[HoldFinding]:
    findings: list[HoldFinding] = []
    review_until = now + timedelta(days=policy.review_days)
    profile = await profile_for(session, statement.partner_id)
    if profile is None or not profile.tax_form_on_file:
        findings.append(HoldFinding(HoldReason.MISSING_TAX_FORM, "No tax form on file."))
    if profile is not None and profile.bank_account_fingerprint:
        sharing = await session.exec(
            select(Partner.name)
            .join(PayoutProfile, col(PayoutProfile.partner_id) == col(Partner.id))
            .where(
                PayoutProfile.vendor_id == statement.vendor_id,
                PayoutProfile.bank_account_fingerprint == profile.bank_account_fingerprint,
                PayoutProfile.partner_id != statement.partner_id,
            )
        )
        names = sorted(sharing)
        if names:
            findings.append(
                HoldFinding(
                    HoldReason.SHARED_BANK_ACCOUNT,
                    "The bank account is also on file for: " + ", ".join(names) + ".",
                )
            )
    previous = list(
        await session.exec(
            select(PayoutStatement.total_minor)
            .where(
                PayoutStatement.partner_id == statement.partner_id,
                PayoutStatement.currency == statement.currency,
                col(PayoutStatement.period_start) < statement.period_start,
            )
            .order_by(col(PayoutStatement.period_start).desc())
            .limit(policy.trailing_statements)
        )
    )
    if previous and sum(previous) > 0:
        count, past = len(previous), sum(previous)
        if statement.total_minor * BP * count > past * policy.above_average_factor_bp:
            ratio = ratio_bp(statement.total_minor * count, past) or 0
            average = Money(round(past / count), statement.currency).format()
            findings.append(
                HoldFinding(
                    HoldReason.ABOVE_TRAILING_AVERAGE,
                    f"{Money(statement.total_minor, statement.currency).format()} is "
                    f"{times(ratio)} the average of the last {count} statements ({average}); "
                    f"the policy holds above {times(policy.above_average_factor_bp)}.",
                    expected_release_at=review_until,
                )
            )
    claim_ids = [
        claim
        for claim in await session.exec(
            select(CreditedSource.subject_id)
            .join(EarningEntry, col(EarningEntry.source_id) == col(CreditedSource.id))
            .where(
                EarningEntry.partner_id == statement.partner_id,
                EarningEntry.currency == statement.currency,
                col(EarningEntry.booked_at) >= statement.period_start,
                col(EarningEntry.booked_at) < statement.period_end,
                col(CreditedSource.source_type).in_(
                    [SourceType.SALE_APPROVED, SourceType.SALE_REVERSED]
                ),
                col(CreditedSource.subject_id).is_not(None),
            )
            .distinct()
        )
        if claim is not None
    ]
    for review in await repository.active_reviews(session, statement.partner_id, now):
        findings.append(
            HoldFinding(
                HoldReason.REVIEW, review.internal_note, expected_release_at=review.ends_at,
                partner_note=review.partner_note,
            )
        )  # fmt: skip
    flags = await signals.risk_flags(session, statement.vendor_id, claim_ids)
    flagged = [f"claim {claim}: {flag}" for claim, fl in sorted(flags.items()) for flag in fl]
    if flagged:
        findings.append(
            HoldFinding(
                HoldReason.RISK_FLAGS,
                f"{sum(1 for c in flags if flags[c])} claim(s) in this statement are flagged.",
                tuple(flagged),
                review_until,
            )
        )
    return findings


async def record_status(
    session: AsyncSession,
    clock: Clock,
    statement: PayoutStatement,
    from_status: PayoutStatus | None,
    reason: HoldReason | None = None,
) -> None:
    """The statement's ``PayoutStatementStatusChanged`` event, in the caller's transaction
    (the statement's partner is its aggregate, like its ``EarningsChanged``)."""
    changed = PayoutStatementStatusChanged(
        statement_id=statement.id, partner_id=statement.partner_id,
        from_status=from_status.value if from_status else None, to_status=statement.status.value,
        reason=reason.value if reason else None, currency=statement.currency,
        total_minor=statement.total_minor, entry_count=statement.entry_count,
        period_start=statement.period_start, period_end=statement.period_end, at=clock.now(),
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=statement.vendor_id, type=changed.type,
        aggregate_id=statement.partner_id, payload=changed.to_payload(),
    )  # fmt: skip


async def _place_hold(
    session: AsyncSession,
    actor_user_id: uuid.UUID | None,
    clock: Clock,
    statement: PayoutStatement,
    finding: HoldFinding,
) -> PayoutHold:
    now = clock.now()
    statement = await _locked(session, statement)
    if statement.status is PayoutStatus.PAID:
        raise DomainError(
            EarningsErrorCode.INVALID_STATUS, "The statement is already paid.", "statement_id"
        )
    before = statement.status
    hold = PayoutHold(
        vendor_id=statement.vendor_id,
        statement_id=statement.id,
        partner_id=statement.partner_id,
        reason=finding.reason,
        internal_note=finding.internal_note[:2000],
        risk_flags=list(finding.risk_flags),
        expected_release_at=finding.expected_release_at,
        created_by_id=actor_user_id,
        created_at=now,
        partner_note=finding.partner_note[:500],
    )
    session.add(hold)
    statement.status = PayoutStatus.HELD
    statement.updated_at = now
    session.add(statement)
    await session.flush()
    _decide(
        session, actor_user_id, now, statement, DecisionAction.HOLD, reason=finding.reason,
        hold=hold, note=finding.internal_note,
    )  # fmt: skip
    if before is not PayoutStatus.HELD:
        await record_status(session, clock, statement, before, finding.reason)
    return hold


async def _locked(session: AsyncSession, statement: PayoutStatement) -> PayoutStatement:
    """The statement's row locked for the rest of the transaction and read anew. Whatever
    changes a statement's holds (placing one, releasing one) takes it first, as approving and
    paying do (their conditional update locks it): they take turns, and each sees what the
    one before it did. Before, a hold placed as the statement was paid read it APPROVED and
    wrote it HELD after the payment (a paid payout held, to be approved and paid again), and
    two releases of one hold both went through."""
    stmt = (
        select(PayoutStatement)
        .where(PayoutStatement.id == statement.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    locked: PayoutStatement = (await session.exec(stmt)).one()
    return locked


async def hold_statement(
    session: AsyncSession,
    actor_user_id: uuid.UUID | None,
    clock: Clock,
    statement: PayoutStatement,
    finding: HoldFinding,
) -> PayoutHold:
    """Place a hold on a statement, with its decision record (``earnings.reviews``)."""
    return await _place_hold(session, actor_user_id, clock, statement, finding)


def _decide(
    session: AsyncSession,
    actor_user_id: uuid.UUID | None,
    now: datetime,
    statement: PayoutStatement,
    action: DecisionAction,
    *,
    reason: HoldReason | None = None,
    hold: PayoutHold | None = None,
    note: str = "",
) -> PayoutDecision:
    decision = PayoutDecision(
        vendor_id=statement.vendor_id,
        statement_id=statement.id,
        partner_id=statement.partner_id,
        action=action,
        reason=reason,
        hold_id=hold.id if hold else None,
        actor_user_id=actor_user_id,
        amount_minor=statement.total_minor,
        currency=statement.currency,
        data_version=statement.data_version,
        program_version_ids=list(statement.program_version_ids),
        note=note[:2000],
        decided_at=now,
    )
    session.add(decision)
    return decision


# ---------------------------------------------------------------------------- decisions


async def _transition(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    statement_id: uuid.UUID,
    expected: PayoutStatus,
    new: PayoutStatus,
    **values: str,
) -> PayoutStatement:
    """The conditional status update, as the first write; a DomainError when the statement
    is not in ``expected`` (nothing changed)."""
    result = await session.execute(
        update(PayoutStatement)
        .where(
            col(PayoutStatement.id) == statement_id,
            col(PayoutStatement.vendor_id) == principal.vendor_id,
            col(PayoutStatement.status) == expected,
        )
        .values(status=new, updated_at=clock.now(), **values)
    )
    statement = await repository.get_readable_statement(session, principal, statement_id)
    if statement is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such statement.", "statement_id")
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if statement.status is PayoutStatus.HELD:
            raise DomainError(
                EarningsErrorCode.PAYOUT_HELD,
                "The payout is held; release every hold first.",
                "statement_id",
            )
        raise DomainError(
            EarningsErrorCode.INVALID_STATUS,
            f"The statement is {statement.status.value}, not {expected.value}.",
            "statement_id",
        )
    await session.refresh(statement)
    return statement


async def approve(
    session: AsyncSession, principal: Principal, clock: Clock, *, statement_id: uuid.UUID
) -> PayoutStatement:
    EARNINGS.require(principal, EarningsOp.APPROVE_PAYOUT)
    await begin_write(session)
    statement = await _transition(
        session, principal, clock, statement_id, PayoutStatus.PENDING, PayoutStatus.APPROVED
    )
    _decide(session, principal.user_id, clock.now(), statement, DecisionAction.APPROVE)
    await record_status(session, clock, statement, PayoutStatus.PENDING)
    await log_change(
        session, principal, clock, action="payout_statement.approved",
        entity_type=AuditEntity.PAYOUT_STATEMENT, entity_id=statement.id,
        before={"status": PayoutStatus.PENDING}, after={"status": PayoutStatus.APPROVED},
    )  # fmt: skip
    await record_change(
        session, clock, vendor_id=statement.vendor_id, partner_id=statement.partner_id
    )
    await session.flush()
    return statement


async def mark_paid(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    statement_id: uuid.UUID,
    reference: str = "",
    idempotency_key: str | None = None,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
) -> PayoutStatement:
    """APPROVED to PAID, once. With an idempotency key, the caller's retry is answered with
    the statement it paid (not INVALID_STATUS: an answer lost on its way)."""
    EARNINGS.require(principal, EarningsOp.MARK_PAID)
    # The partner reads the reference on the statement: one line (infra.text's name rule).
    if reference.strip() and (problem := name_problem(reference.strip())):
        raise DomainError(EarningsErrorCode.INVALID_CHARACTERS, problem, "reference")
    await begin_write(session)
    request = {"statement_id": statement_id, "reference": reference.strip()[:200]}
    taken = await _take(
        session, principal, PAY_SCOPE, idempotency_key, request, clock.now(), key_retention
    )
    if taken is not None and taken.replay is not None:
        paid = await repository.get_readable_statement(session, principal, taken.replay)
        if paid is None:  # pragma: no cover - statements are never deleted
            raise idempotency.gone(EarningsErrorCode)
        return paid
    statement = await _transition(
        session, principal, clock, statement_id, PayoutStatus.APPROVED, PayoutStatus.PAID,
        paid_reference=reference.strip()[:200],
    )  # fmt: skip
    _decide(
        session, principal.user_id, clock.now(), statement, DecisionAction.PAY,
        note=reference.strip(),
    )  # fmt: skip
    await record_status(session, clock, statement, PayoutStatus.APPROVED)
    await log_change(
        session, principal, clock, action="payout_statement.paid",
        entity_type=AuditEntity.PAYOUT_STATEMENT, entity_id=statement.id,
        before={"status": PayoutStatus.APPROVED},
        after={"status": PayoutStatus.PAID, "paid_reference": reference.strip()[:200]},
    )  # fmt: skip
    await record_change(
        session, clock, vendor_id=statement.vendor_id, partner_id=statement.partner_id
    )
    await session.flush()
    if taken is not None:
        await taken.done(session, statement.id)
    return statement


async def hold(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    statement_id: uuid.UUID,
    note: str,
    expected_release_at: datetime | None = None,
) -> PayoutHold:
    """A manual hold (by finance), with an internal note partners never see."""
    EARNINGS.require(principal, EarningsOp.HOLD)
    await begin_write(session)
    note = note.strip()
    if not note:
        raise DomainError(EarningsErrorCode.REQUIRED, "Say why (for the audit trail).", "note")
    _check_note(note)
    now = clock.now()
    if expected_release_at is not None and expected_release_at <= now:
        raise DomainError(
            EarningsErrorCode.INVALID_PERIOD,
            "The expected release must be in the future.",
            "expected_release_at",
        )
    statement = await repository.get_readable_statement(session, principal, statement_id)
    if statement is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such statement.", "statement_id")
    if statement.status is PayoutStatus.PAID:
        raise DomainError(
            EarningsErrorCode.INVALID_STATUS, "The statement is already paid.", "statement_id"
        )
    placed = await _place_hold(
        session, principal.user_id, clock, statement,
        HoldFinding(HoldReason.MANUAL, note, expected_release_at=expected_release_at),
    )  # fmt: skip
    await log_change(
        session, principal, clock, action="payout_hold.placed",
        entity_type=AuditEntity.PAYOUT_HOLD, entity_id=placed.id, before=None,
        after={"statement_id": statement.id, "reason": placed.reason,
        "expected_release_at": expected_release_at}, reason=note,
    )  # fmt: skip
    await record_change(
        session, clock, vendor_id=statement.vendor_id, partner_id=statement.partner_id
    )
    return placed


MAX_NOTE = 2000  # the hold's, the decision's and the audit entry's column


def _check_note(note: str) -> None:
    if len(note) > MAX_NOTE:
        raise DomainError(EarningsErrorCode.TOO_LONG, f"At most {MAX_NOTE} characters.", "note")
    if problem := free_text_problem(note):
        raise DomainError(EarningsErrorCode.INVALID_CHARACTERS, problem, "note")


async def release(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    hold_id: uuid.UUID,
    note: str = "",
) -> PayoutStatement:
    """Release one hold; when none remains the statement is PENDING again (to approve)."""
    EARNINGS.require(principal, EarningsOp.RELEASE_HOLD)
    await begin_write(session)
    _check_note(note.strip())
    found = (
        await session.exec(repository.readable_holds(principal).where(PayoutHold.id == hold_id))
    ).first()
    if found is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such hold.", "hold_id")
    if found.released_at is not None:
        raise DomainError(
            EarningsErrorCode.HOLD_ALREADY_RELEASED, "The hold was released before.", "hold_id"
        )
    if found.reason is HoldReason.MISSING_TAX_FORM:
        profile = await profile_for(session, found.partner_id)
        if profile is None or not profile.tax_form_on_file:
            raise DomainError(
                EarningsErrorCode.HOLD_CONDITION_PERSISTS,
                "There is still no tax form on file for this partner.",
                "hold_id",
            )
    statement = await _release_hold(session, principal, clock, found, note.strip())
    if statement is None:
        raise DomainError(
            EarningsErrorCode.HOLD_ALREADY_RELEASED, "The hold was released before.", "hold_id"
        )
    await _log_release(session, principal, clock, found, note.strip())
    await record_change(
        session, clock, vendor_id=statement.vendor_id, partner_id=statement.partner_id
    )
    await session.flush()
    return statement


TAX_FORM_RELEASE_NOTE = "Released automatically: the partner's tax form was recorded."


async def _release_cleared_tax_holds(
    session: AsyncSession, principal: Principal, clock: Clock, partner_id: uuid.UUID
) -> list[PayoutHold]:
    """Recording a tax form releases every open missing-tax-form hold of the partner, as
    the partner was told ("released once it is on file"); each release is a decision
    naming the cause, by the user who recorded the form. The other reasons need a person:
    a shared bank account is verified, a large payout or flagged sales are reviewed."""
    open_holds = list(
        await session.exec(
            select(PayoutHold)
            .where(
                PayoutHold.partner_id == partner_id,
                PayoutHold.reason == HoldReason.MISSING_TAX_FORM,
                col(PayoutHold.released_at).is_(None),
            )
            .order_by(col(PayoutHold.id))
        )
    )
    released = []
    for found in open_holds:
        if await _release_hold(session, principal, clock, found, TAX_FORM_RELEASE_NOTE):
            await _log_release(session, principal, clock, found, TAX_FORM_RELEASE_NOTE)
            released.append(found)
    if released:
        await record_change(session, clock, vendor_id=principal.vendor_id, partner_id=partner_id)
    return released


async def _log_release(
    session: AsyncSession, principal: Principal, clock: Clock, found: PayoutHold, note: str
) -> None:
    await log_change(
        session, principal, clock, action="payout_hold.released",
        entity_type=AuditEntity.PAYOUT_HOLD, entity_id=found.id, before={"released_at": None},
        after={"released_at": found.released_at, "statement_id": found.statement_id},
        reason=note,
    )  # fmt: skip


async def _release_hold(
    session: AsyncSession, principal: Principal, clock: Clock, found: PayoutHold, note: str
) -> PayoutStatement | None:
    """Mark one hold released, with its decision; the statement is PENDING (to approve)
    again when no other hold remains. None when the hold was released meanwhile (by a
    request that held the statement's lock first): nothing changed."""
    now = clock.now()
    statement = await session.get(PayoutStatement, found.statement_id)
    assert statement is not None
    statement = await _locked(session, statement)
    released = await session.execute(
        update(PayoutHold)
        .where(col(PayoutHold.id) == found.id, col(PayoutHold.released_at).is_(None))
        .values(released_at=now, released_by_id=principal.user_id, release_note=note[:2000])
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        return None  # released meanwhile, by a request that went first
    await session.refresh(found)
    remaining = await session.scalar(
        select(func.count()).where(
            PayoutHold.statement_id == statement.id, col(PayoutHold.released_at).is_(None)
        )
    )
    if not remaining and statement.status is PayoutStatus.HELD:
        statement.status = PayoutStatus.PENDING
        statement.updated_at = now
        session.add(statement)
        await record_status(session, clock, statement, PayoutStatus.HELD, found.reason)
    _decide(
        session, principal.user_id, now, statement, DecisionAction.RELEASE, reason=found.reason,
        hold=found, note=note,
    )  # fmt: skip
    return statement


# ---------------------------------------------------------------------------- partner words


def hold_explanation(hold: PayoutHold) -> tuple[str, str]:
    """(why, what clears it) in plain words a partner may read: no internal figures, flags
    or notes. For a released hold the second part says when it was released and why."""
    when = (
        f" We expect to release it by {hold.expected_release_at:%d %B %Y}."
        if hold.expected_release_at
        else ""
    )
    why, clears = _hold_words(hold.reason, when)
    if hold.reason is HoldReason.REVIEW and hold.partner_note:
        why = hold.partner_note.rstrip(".") + "." + when
    if hold.released_at is not None:
        words = release_words(hold)
        clears = words[0].upper() + words[1:]
    return why, clears


def release_words(hold: PayoutHold) -> str:
    assert hold.released_at is not None
    on = f"{hold.released_at:%d %B %Y}"
    if hold.reason is HoldReason.MISSING_TAX_FORM:  # released only once the form is on file
        return f"released on {on}, when your tax form was on file."
    return f"released by our finance team on {on}."


def _hold_words(reason: HoldReason, when: str) -> tuple[str, str]:
    match reason:
        case HoldReason.MISSING_TAX_FORM:
            return (
                "We need your tax form before we can pay you.",
                "Send your tax form to your channel manager; the hold is lifted as soon as "
                "it is on file, and the payout then goes through the usual approval.",
            )
        case HoldReason.ABOVE_TRAILING_AVERAGE:
            return (
                "This payout is much larger than your recent payouts, so our finance team "
                "checks it before paying." + when,
                "No action is needed from you; our finance team releases it after the check.",
            )
        case HoldReason.RISK_FLAGS:
            return (
                "Some sales in this payout are being reviewed." + when,
                "No action is needed unless we ask you for documents; our finance team "
                "releases the payout when the review is done.",
            )
        case HoldReason.SHARED_BANK_ACCOUNT:
            return (
                "The bank account on file needs to be verified before we pay into it.",
                "Confirm your bank details with your channel manager; our finance team "
                "releases the payout once they are verified.",
            )
        case HoldReason.REVIEW:
            return (
                "Our finance team reviews this payout before paying it." + when,
                "No action is needed from you; our finance team releases it after the review.",
            )
        case HoldReason.MANUAL:
            return (
                "Our finance team has paused this payout." + when,
                "Contact your channel manager if you have questions.",
            )
    return ("This payout is held.", "Contact your channel manager.")  # pragma: no cover


async def statement_of(session: AsyncSession, hold: PayoutHold) -> PayoutStatement:
    statement = await session.get(PayoutStatement, hold.statement_id)
    assert statement is not None  # a hold belongs to a statement (foreign key)
    return statement
