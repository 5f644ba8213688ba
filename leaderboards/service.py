"""Contest rules: create, change (versioned and audited, re-ranked from the ledger),
publish, cancel; and the scoring ledger rewrite that a change or a publish triggers.

Numeric settings are held to ``infra.limits`` (weights, targets, money prizes: ``TOO_LARGE``),
so no contest can make one event worth more than a score holds exactly.

Services flush and never commit. Redis is touched only after commit, by the outbox handler
for ``ContestChanged`` (api wiring) or by rebuild.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import (
    SALE_REVERSED,
    SaleReversed,
)
from infra import limits
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.outbox import OutboxEvent, record_event
from infra.text import free_text_problem, listed_identifier_problem, name_problem
from leaderboards import repository
from leaderboards.errors import ContestErrorCode as Code
from leaderboards.events import ContestChanged
from leaderboards.models import (
    Contest,
    ContestCredit,
    ContestRevision,
    ContestStatus,
    Metric,
    ParticipantKind,
    RankingStyle,
    VisibilityMode,
    pack,
    unpack,
)
from leaderboards.policy import CONTESTS, ContestOp
from leaderboards.recurrence import RecurrenceError, parse_recurrence, zone
from leaderboards.scoring import SCORED_EVENT_TYPES, event_instant, parse_source, plan_credit
from partners.audit_log import AuditEntity, log_change
from partners.group_models import PartnerGroup
from partners.models import Partner
from partners.roles import Principal

MAX_WINDOW = timedelta(days=728)  # first-to-reach ticks (minutes) fit in 20 bits
WEIGHT_KEYS = ("revenue_per_major_unit", "per_unit", "per_claim", "per_won_deal")
# Bounds of a points contest's weights (infra.limits: one event stays far inside 2**53).
MAX_WEIGHTS = {
    "revenue_per_major_unit": limits.MAX_REVENUE_WEIGHT,
    "per_unit": limits.MAX_WEIGHT,
    "per_claim": limits.MAX_WEIGHT,
    "per_won_deal": limits.MAX_WEIGHT,
}


@dataclass
class ContestSettings:
    name: str
    starts_at: datetime
    ends_at: datetime
    description: str = ""
    time_zone: str = "UTC"
    recurrence: str | None = None
    participant_kind: ParticipantKind = ParticipantKind.PARTNER
    metric: Metric = Metric.REVENUE
    currency: str = "USD"
    weights: dict[str, int] = field(default_factory=dict)
    eligible_tiers: list[str] = field(default_factory=list)
    eligible_regions: list[str] = field(default_factory=list)
    eligible_partner_ids: list[str] = field(default_factory=list)
    eligible_group_ids: list[str] = field(default_factory=list)  # UUID hex
    eligible_skus: list[str] = field(default_factory=list)
    targets: dict[str, int] = field(default_factory=dict)
    ranking_style: RankingStyle = RankingStyle.COMPETITION
    visibility: VisibilityMode = VisibilityMode.FULL
    visible_top_n: int = 10
    anonymise: bool = False
    prizes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, contest: Contest) -> ContestSettings:
        return cls(
            name=contest.name, starts_at=contest.starts_at, ends_at=contest.ends_at,
            description=contest.description, time_zone=contest.time_zone,
            recurrence=contest.recurrence, participant_kind=contest.participant_kind,
            metric=contest.metric, currency=contest.currency, weights=dict(contest.weights),
            eligible_tiers=unpack(contest.eligible_tiers),
            eligible_regions=unpack(contest.eligible_regions),
            eligible_partner_ids=unpack(contest.eligible_partner_ids),
            eligible_group_ids=unpack(contest.eligible_group_ids),
            eligible_skus=unpack(contest.eligible_skus), targets=dict(contest.targets),
            ranking_style=contest.ranking_style, visibility=contest.visibility,
            visible_top_n=contest.visible_top_n, anonymise=contest.anonymise,
            prizes=[dict(p) for p in contest.prizes],
        )  # fmt: skip


def effective_status(contest: Contest, now: datetime) -> ContestStatus:
    if contest.status is ContestStatus.SCHEDULED:
        if contest.frozen_at is not None or now >= contest.ends_at:
            return ContestStatus.FINISHED
        if now >= contest.starts_at:
            return ContestStatus.LIVE
    return contest.status


def validate(s: ContestSettings) -> ContestSettings:
    """Normalise and check settings; raises DomainErrors listing every problem."""
    errors: list[DomainError] = []
    s.name = s.name.strip()
    if not s.name:
        errors.append(DomainError(Code.REQUIRED, "Give the contest a name.", "name"))
    elif len(s.name) > 200:
        errors.append(DomainError(Code.TOO_LONG, "At most 200 characters.", "name"))
    elif problem := name_problem(s.name):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "name"))
    if len(s.description) > 4000:
        errors.append(DomainError(Code.TOO_LONG, "At most 4000 characters.", "description"))
    elif problem := free_text_problem(s.description):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "description"))
    if s.starts_at.tzinfo is None or s.ends_at.tzinfo is None:
        errors.append(
            DomainError(Code.INVALID_WINDOW, "Give instants with a time zone.", "ends_at")
        )
    elif s.ends_at <= s.starts_at:
        errors.append(
            DomainError(Code.INVALID_WINDOW, "The window must end after it starts.", "ends_at")
        )
    elif s.ends_at - s.starts_at > MAX_WINDOW:
        errors.append(
            DomainError(Code.INVALID_WINDOW, "A contest window is at most 728 days.", "ends_at")
        )
    try:
        zone(s.time_zone)
    except RecurrenceError:
        errors.append(
            DomainError(
                Code.INVALID_TIME_ZONE, "Use an IANA time zone like Europe/Berlin.", "time_zone"
            )
        )
    try:
        rec = parse_recurrence(s.recurrence)
        s.recurrence = str(rec) if rec else None
    except RecurrenceError as exc:
        errors.append(DomainError(Code.INVALID_RECURRENCE, f"{exc}.", "recurrence"))
    s.currency = s.currency.strip().upper()
    if not is_currency(s.currency):
        errors.append(DomainError(Code.INVALID_CURRENCY, "Use an ISO 4217 code.", "currency"))
    if set(s.weights) - set(WEIGHT_KEYS) or any(
        isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in s.weights.values()
    ):
        errors.append(
            DomainError(
                Code.INVALID_WEIGHTS,
                f"Weights are whole numbers from 0 for {', '.join(WEIGHT_KEYS)}.",
                "weights",
            )
        )
    elif any(w > MAX_WEIGHTS[k] for k, w in s.weights.items()):
        errors.append(
            DomainError(
                Code.TOO_LARGE,
                f"Weights are at most {limits.MAX_REVENUE_WEIGHT} per major unit of revenue "
                f"and {limits.MAX_WEIGHT} per unit, claim or won deal (one sale must stay "
                "far inside the range a score holds exactly).",
                "weights",
            )
        )
    elif s.metric is Metric.POINTS and not any(s.weights.values()):
        errors.append(
            DomainError(Code.INVALID_WEIGHTS, "A points contest needs a weight.", "weights")
        )
    for pid, target in s.targets.items():
        try:
            uuid.UUID(pid)
        except ValueError:
            errors.append(
                DomainError(Code.INVALID_TARGET, "Targets are per participant id.", "targets")
            )
            break
        if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
            errors.append(DomainError(Code.INVALID_TARGET, "Targets must be positive.", "targets"))
            break
        if target > limits.MAX_TARGET:
            errors.append(
                DomainError(Code.TOO_LARGE, f"A target is at most {limits.MAX_TARGET}.", "targets")
            )
            break
    if s.visibility is VisibilityMode.TOP_N and not 1 <= s.visible_top_n <= 100:
        errors.append(
            DomainError(
                Code.INVALID_VISIBILITY, "Show partners between 1 and 100 rows.", "visible_top_n"
            )
        )
    ranges: list[tuple[int, int]] = []
    for prize in s.prizes:
        lo, hi = int(prize.get("from_rank", 0)), int(prize.get("to_rank", 0))
        if lo < 1 or hi < lo or not str(prize.get("prize", "")).strip():
            errors.append(
                DomainError(
                    Code.INVALID_PRIZE, "A prize covers ranks from..to (from >= 1).", "prizes"
                )
            )
            break
        if len(str(prize["prize"]).strip()) > 200:
            errors.append(
                DomainError(Code.TOO_LONG, "A prize is at most 200 characters.", "prizes")
            )
            break
        if problem := name_problem(str(prize["prize"]).strip()):
            errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "prizes"))
            break
        amount = prize.get("amount_minor")
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
        ):
            errors.append(
                DomainError(Code.INVALID_PRIZE, "A prize's amount must be positive.", "prizes")
            )
            break
        if amount is not None and amount > limits.MAX_SALE_AMOUNT_MINOR:
            errors.append(
                DomainError(
                    Code.TOO_LARGE,
                    f"A prize is at most {limits.MAX_SALE_AMOUNT_MINOR} minor units.",
                    "prizes",
                )
            )
            break
        if amount is not None and prize.get("currency", s.currency) != s.currency:
            errors.append(
                DomainError(
                    Code.INVALID_PRIZE, "A prize is paid in the contest's currency.", "prizes"
                )
            )
            break
        prize.pop("currency", None)  # the contest's: kept once, on the contest
        ranges.append((lo, hi))
    ranges.sort()
    if any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False)):
        errors.append(DomainError(Code.OVERLAPPING_PRIZES, "Prize ranges overlap.", "prizes"))
    s.eligible_tiers = sorted({t.strip().upper() for t in s.eligible_tiers if t.strip()})
    s.eligible_regions = sorted({r.strip().upper() for r in s.eligible_regions if r.strip()})
    s.eligible_skus = sorted({k.strip().upper() for k in s.eligible_skus if k.strip()})
    for key in ("tiers", "regions", "skus"):
        for value in getattr(s, f"eligible_{key}"):
            if problem := listed_identifier_problem(value):
                errors.append(DomainError(Code.INVALID_CHARACTERS, problem, f"eligibility.{key}"))
                break
    if errors:
        raise DomainErrors(errors)
    return s


# Rules added after contests were saved (the score bounds, the identifier rule): a value
# a contest already holds is kept through an edit of its other settings, so a vendor can
# still rename or extend it; a change of that setting itself must meet them.
_LATER_RULES = {Code.TOO_LARGE, Code.INVALID_CHARACTERS}
_SETTING_OF_FIELD = {
    "weights": "weights", "targets": "targets", "prizes": "prizes", "name": "name",
    "description": "description", "eligibility.tiers": "eligible_tiers",
    "eligibility.regions": "eligible_regions", "eligibility.skus": "eligible_skus",
}  # fmt: skip


def _kept_from_before(error: DomainError, before: ContestSettings, after: ContestSettings) -> bool:
    """``error`` is a later rule's, about a setting this edit leaves as it was."""
    setting = _SETTING_OF_FIELD.get(error.field or "")
    return (
        error.code in _LATER_RULES
        and setting is not None
        and getattr(before, setting) == getattr(after, setting)
    )


def _as_edited(error: DomainError, before: ContestSettings, after: ContestSettings) -> DomainError:
    """A window rule broken by moving the start alone names the start: the field the caller
    gave (``validate`` names the end, which is right when both are given)."""
    if (
        error.code is Code.INVALID_WINDOW
        and error.field == "ends_at"
        and after.ends_at == before.ends_at
        and after.starts_at != before.starts_at
    ):
        return DomainError(error.code, error.message, "starts_at")
    return error


def _apply(contest: Contest, s: ContestSettings) -> None:
    contest.name = s.name
    contest.description = s.description
    contest.starts_at = s.starts_at
    contest.ends_at = s.ends_at
    contest.time_zone = s.time_zone
    contest.recurrence = s.recurrence
    contest.participant_kind = s.participant_kind
    contest.metric = s.metric
    contest.currency = s.currency
    contest.weights = dict(s.weights)
    contest.eligible_tiers = pack(s.eligible_tiers)
    contest.eligible_regions = pack(s.eligible_regions)
    contest.eligible_partner_ids = pack(s.eligible_partner_ids)
    contest.eligible_group_ids = pack(s.eligible_group_ids)
    contest.eligible_skus = pack(s.eligible_skus)
    contest.targets = dict(s.targets)
    contest.ranking_style = s.ranking_style
    contest.visibility = s.visibility
    contest.visible_top_n = s.visible_top_n
    contest.anonymise = s.anonymise
    contest.prizes = [dict(p) for p in s.prizes]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


async def _validate_partners(
    session: AsyncSession, principal: Principal, s: ContestSettings
) -> None:
    ids: list[uuid.UUID] = []
    for raw in s.eligible_partner_ids:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            ids.append(uuid.UUID(int=0))
    if ids:
        found = await session.exec(
            select(Partner.id).where(
                Partner.vendor_id == principal.vendor_id, col(Partner.id).in_(ids)
            )
        )
        if len(set(found)) != len(set(ids)):
            raise DomainError(
                Code.NOT_FOUND,
                "One of the partners does not exist.",
                "eligibility.partner_ids",
            )
        s.eligible_partner_ids = sorted(str(i) for i in set(ids))


async def _validate_groups(session: AsyncSession, principal: Principal, s: ContestSettings) -> None:
    ids: list[uuid.UUID] = []
    for raw in s.eligible_group_ids:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            ids.append(uuid.UUID(int=0))
    if ids:
        found = await session.exec(
            select(PartnerGroup.id).where(
                PartnerGroup.vendor_id == principal.vendor_id,
                col(PartnerGroup.id).in_(ids),
                col(PartnerGroup.archived_at).is_(None),
            )
        )
        if len(set(found)) != len(set(ids)):
            raise DomainError(
                Code.NOT_FOUND, "One of the partner groups does not exist.",
                "eligibility.group_ids",
            )  # fmt: skip
    s.eligible_group_ids = sorted({i.hex for i in ids})


async def create_contest(
    session: AsyncSession, principal: Principal, clock: Clock, *, settings: ContestSettings
) -> Contest:
    CONTESTS.require(principal, ContestOp.CREATE)
    s = validate(settings)
    await _validate_partners(session, principal, s)
    await _validate_groups(session, principal, s)
    now = clock.now()
    contest = Contest(
        vendor_id=principal.vendor_id, name=s.name, starts_at=s.starts_at, ends_at=s.ends_at,
        created_at=now, updated_at=now,
    )  # fmt: skip
    _apply(contest, s)
    session.add(contest)
    await session.flush()
    session.add(
        ContestRevision(
            vendor_id=principal.vendor_id,
            contest_id=contest.id,
            version=1,
            changed_by_id=principal.user_id,
            changes={f.name: [None, _jsonable(getattr(s, f.name))] for f in fields(s)},
            created_at=now,
        )  # fmt: skip
    )
    await session.flush()
    await log_change(
        session, principal, clock, action="contest.created", entity_type=AuditEntity.CONTEST,
        entity_id=contest.id, before=None,
        after={f.name: _jsonable(getattr(s, f.name)) for f in fields(s)},
    )  # fmt: skip
    return contest


async def _get(session: AsyncSession, principal: Principal, contest_id: uuid.UUID) -> Contest:
    contest = await repository.get_readable_contest(session, principal, contest_id, lock=True)
    if contest is None:
        raise DomainError(Code.NOT_FOUND, "No such contest.", "id")
    return contest


async def update_contest(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    contest_id: uuid.UUID,
    changes: dict[str, Any],
) -> Contest:
    """Change settings. Allowed while DRAFT, SCHEDULED or LIVE; every change is a new
    version with an audit row; on a published contest the ledger is re-scored under the new
    rules and the standings are rebuilt (after commit) from it."""
    CONTESTS.require(principal, ContestOp.UPDATE)
    contest = await _get(session, principal, contest_id)
    now = clock.now()
    status = effective_status(contest, now)
    if status in (ContestStatus.FINISHED, ContestStatus.CANCELLED):
        raise DomainError(Code.NOT_EDITABLE, f"A {status.value.lower()} contest is final.", "id")
    before = ContestSettings.of(contest)
    after = ContestSettings.of(contest)
    for key, value in changes.items():
        setattr(after, key, value)
    try:
        after = validate(after)
    except DomainErrors as problems:
        if left := [e for e in problems.errors if not _kept_from_before(e, before, after)]:
            raise DomainErrors([_as_edited(e, before, after) for e in left]) from None
    await _validate_partners(session, principal, after)
    await _validate_groups(session, principal, after)
    if status is ContestStatus.LIVE and after.starts_at != before.starts_at:
        raise DomainError(Code.NOT_EDITABLE, "A live contest's start cannot move.", "starts_at")
    if status is ContestStatus.LIVE and after.ends_at <= now:
        raise DomainError(Code.INVALID_WINDOW, "A live contest cannot end in the past.", "ends_at")
    diff = {
        f.name: [_jsonable(getattr(before, f.name)), _jsonable(getattr(after, f.name))]
        for f in fields(after)
        if getattr(before, f.name) != getattr(after, f.name)
    }
    if not diff:
        return contest
    _apply(contest, after)
    contest.version += 1
    contest.updated_at = now
    session.add(contest)
    session.add(
        ContestRevision(
            vendor_id=contest.vendor_id,
            contest_id=contest.id,
            version=contest.version,
            changed_by_id=principal.user_id,
            changes=diff,
            live_at_change=status is ContestStatus.LIVE,
            created_at=now,
        )  # fmt: skip
    )
    await session.flush()
    await log_change(
        session, principal, clock, action="contest.updated", entity_type=AuditEntity.CONTEST,
        entity_id=contest.id, before={k: v[0] for k, v in diff.items()},
        after={k: v[1] for k, v in diff.items()},
    )  # fmt: skip
    if contest.status is ContestStatus.SCHEDULED:
        await rescore(session, clock, contest)
    return contest


async def publish_contest(
    session: AsyncSession, principal: Principal, clock: Clock, *, contest_id: uuid.UUID
) -> Contest:
    CONTESTS.require(principal, ContestOp.PUBLISH)
    contest = await _get(session, principal, contest_id)
    if contest.status is not ContestStatus.DRAFT:
        raise DomainError(Code.INVALID_STATE, "Only a draft can be published.", "id")
    if contest.ends_at <= clock.now():
        raise DomainError(Code.INVALID_WINDOW, "The window has already ended.", "ends_at")
    contest.status = ContestStatus.SCHEDULED
    contest.updated_at = clock.now()
    session.add(contest)
    await session.flush()
    await log_change(
        session, principal, clock, action="contest.published", entity_type=AuditEntity.CONTEST,
        entity_id=contest.id, before={"status": ContestStatus.DRAFT},
        after={"status": ContestStatus.SCHEDULED},
    )  # fmt: skip
    await rescore(session, clock, contest)
    return contest


async def cancel_contest(
    session: AsyncSession, principal: Principal, clock: Clock, *, contest_id: uuid.UUID
) -> Contest:
    CONTESTS.require(principal, ContestOp.CANCEL)
    contest = await _get(session, principal, contest_id)
    status = effective_status(contest, clock.now())
    if status in (ContestStatus.FINISHED, ContestStatus.CANCELLED):
        raise DomainError(
            Code.INVALID_STATE, f"The contest is already {status.value.lower()}.", "id"
        )
    contest.status = ContestStatus.CANCELLED
    contest.updated_at = clock.now()
    session.add(contest)
    await _changed(session, clock, contest)
    await log_change(
        session, principal, clock, action="contest.cancelled", entity_type=AuditEntity.CONTEST,
        entity_id=contest.id, before={"status": status},
        after={"status": ContestStatus.CANCELLED},
    )  # fmt: skip
    return contest


async def _changed(session: AsyncSession, clock: Clock, contest: Contest) -> None:
    changed = ContestChanged(contest_id=contest.id, version=contest.version)
    await record_event(
        session, clock, vendor_id=contest.vendor_id, type=changed.type, aggregate_id=contest.id,
        payload=changed.to_payload(),
    )  # fmt: skip


async def partner_tiers(session: AsyncSession, vendor_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.exec(
        select(Partner.id, Partner.tier).where(Partner.vendor_id == vendor_id)
    )
    return {pid: tier.upper() for pid, tier in rows}


def ledger_row(
    contest: Contest,
    event: OutboxEvent,
    *,
    tier: str,
    groups: frozenset[str] = frozenset(),
    original: ContestCredit | None,
    now: datetime,
) -> ContestCredit | None:
    """The credit one source event earns in this contest, or None. A reversal takes back
    exactly what its sale credited (``original``), if it happens before that period closes."""
    if event.type == SALE_REVERSED:
        return reversal_credit(contest, event, original, now) if original else None
    payload = parse_source(event.type, event.payload)
    credit = plan_credit(
        contest, event.type, payload, event.occurred_at, partner_tier=tier, partner_groups=groups
    )
    if credit is None:
        return None
    return ContestCredit(
        contest_id=contest.id, event_id=event.id, event_type=event.type,
        period_key=credit.period.key, participant_id=credit.participant_id,
        delta=credit.delta, tick=credit.tick, occurred_at=credit.occurred_at,
        description=credit.description, created_at=now,
    )  # fmt: skip


def partner_of(event: OutboxEvent) -> uuid.UUID:
    return uuid.UUID(str(event.payload["partner_id"]))


def reversal_credit(
    contest: Contest, event: OutboxEvent, original: ContestCredit, now: datetime
) -> ContestCredit | None:
    """The negative credit of a reversal, or None when the sale's period has closed."""
    from leaderboards.recurrence import find_period  # noqa: PLC0415

    reversal = SaleReversed.parse(event.payload)
    when = reversal.reversed_at or event.occurred_at
    period = find_period(
        parse_recurrence(contest.recurrence), contest.time_zone,
        (contest.starts_at, contest.ends_at), original.period_key,
    )  # fmt: skip
    if period is None or when >= period.ends_at or when < original.occurred_at:
        return None
    tick = min(int((when - period.starts_at).total_seconds() // 60), (1 << 20) - 1)
    return ContestCredit(
        contest_id=contest.id, event_id=event.id, event_type=event.type,
        period_key=original.period_key, participant_id=original.participant_id,
        delta=-original.delta, tick=tick, occurred_at=when,
        description=f"reversal: {reversal.reason}"[:400], created_at=now,
    )  # fmt: skip


async def rescore(session: AsyncSession, clock: Clock, contest: Contest) -> int:
    """Rewrite the contest's credit ledger from the source events under its current rules;
    the standings are rebuilt from it after commit (ContestChanged). Returns the credits."""
    await session.exec(delete(ContestCredit).where(col(ContestCredit.contest_id) == contest.id))
    tiers = await partner_tiers(session, contest.vendor_id)
    events = (
        await session.exec(
            select(OutboxEvent)
            .where(
                OutboxEvent.vendor_id == contest.vendor_id,
                col(OutboxEvent.type).in_(SCORED_EVENT_TYPES),
            )
            .order_by(col(OutboxEvent.id))
        )
    ).all()
    now = clock.now()
    count = 0
    originals: dict[uuid.UUID, ContestCredit] = {}
    for event in events:
        original = None
        if event.type == SALE_REVERSED:
            original = originals.pop(SaleReversed.parse(event.payload).reverses_event_id, None)
        groups: frozenset[str] = frozenset()
        if contest.eligible_group_ids and event.type != SALE_REVERSED:
            payload = parse_source(event.type, event.payload)
            instant = event_instant(event.type, payload, event.occurred_at)
            groups = await repository.groups_at(session, contest, partner_of(event), instant)
        row = ledger_row(
            contest, event, tier=tiers.get(partner_of(event), ""), groups=groups,
            original=original, now=now,
        )  # fmt: skip
        if row is None:
            continue
        if event.type != SALE_REVERSED:
            originals[event.id] = row
        session.add(row)
        count += 1
    await session.flush()
    await _changed(session, clock, contest)
    return count
