"""Rev-share programs: the rules of a version, their validation, and the pure functions that
apply them (base rate, tier with quality gates, spiffs, deal bonus). Versions are stored as
JSON rules; a change is a new version effective from an instant, never an edit."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.errors import EarningsErrorCode, currency_error
from earnings.events import ProgramChanged
from earnings.models import PayoutStatement, PayoutStatus, Program, ProgramKind, ProgramVersion
from earnings.policy import EARNINGS, EarningsOp
from earnings.repository import readable_programs
from earnings.rounding import BP, apply_bp, format_bp
from infra.clock import Clock
from infra.db import begin_write, for_change
from infra.errors import DomainError, DomainErrors
from infra.money import Money
from infra.outbox import record_events
from infra.text import identifier_problem, name_problem
from partners.audit_log import AuditEntity, log_change
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.roles import Principal

MAX_RATE_BP = 10_000
MAX_AMOUNT_MINOR = 10**12


@dataclass(frozen=True)
class BaseRate:
    """A percentage (``rate_bp``) of the line amount, or an amount per unit; for one SKU,
    one category, or (neither given) everything else."""

    rate_bp: int | None = None
    per_unit_minor: int | None = None
    sku: str | None = None
    category: str | None = None

    def describe(self, currency: str) -> str:
        if self.per_unit_minor is not None:
            return f"{Money(self.per_unit_minor, currency).format()} per unit"
        return format_bp(self.rate_bp or 0)


@dataclass(frozen=True)
class Tier:
    """Applies when trailing qualified revenue reaches ``threshold_minor`` and the quality
    gates hold; adds ``uplift_bp`` to the rate."""

    name: str
    threshold_minor: int
    uplift_bp: int
    min_approved_share_bp: int | None = None
    max_refund_rate_bp: int | None = None


@dataclass(frozen=True)
class Spiff:
    """An amount per unit of ``sku`` sold in ``region`` (any region when empty) between
    ``starts_at`` (inclusive) and ``ends_at`` (exclusive)."""

    sku: str
    per_unit_minor: int
    starts_at: datetime
    ends_at: datetime
    region: str = ""

    def applies(self, sku: str, region: str, at: datetime) -> bool:
        return (
            self.sku == sku
            and (not self.region or self.region == region)
            and self.starts_at <= at < self.ends_at
        )


@dataclass(frozen=True)
class Recurring:
    """What a program pays on subscriptions (docs/recurring.md#recurring-commissions).

    - ``renewal_rate_bp`` of each renewed term's amount; ``renewal_schedule_bp`` (optional)
      declines it: renewal n pays ``schedule[n-1]``, the last entry from then on;
    - capped: no renewal after the ``max_renewals``-th, nor one whose term starts more than
      ``max_months`` after the subscription started (None: no cap);
    - ``multi_year_escalator_bp`` more per year beyond the first of a multi-year term;
    - ``expansion_bonus_bp`` of an expansion's net increase (above the highest amount the
      subscription had before);
    - ``retention_bonus_minor`` once the account is still active ``retention_months``
      after the start;
    - a cancellation within ``clawback_days`` of the current term's start takes back what
      that term's renewal and expansions earned (0: never)."""

    renewal_rate_bp: int = 0
    renewal_schedule_bp: tuple[int, ...] = ()
    max_renewals: int | None = None
    max_months: int | None = None
    multi_year_escalator_bp: int = 0
    expansion_bonus_bp: int = 0
    retention_months: int | None = None
    retention_bonus_minor: int = 0
    clawback_days: int = 0

    def renewal_rate(self, renewal_number: int) -> int:
        if self.renewal_schedule_bp:
            return self.renewal_schedule_bp[min(renewal_number, len(self.renewal_schedule_bp)) - 1]
        return self.renewal_rate_bp

    def escalator_bp(self, term_months: int) -> int:
        return self.multi_year_escalator_bp * max(term_months // 12 - 1, 0)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recurring:
        return cls(**{**data, "renewal_schedule_bp": tuple(data.get("renewal_schedule_bp", ()))})


@dataclass(frozen=True)
class Rules:
    base_rates: tuple[BaseRate, ...] = ()
    window_days: int = 30
    tiers: tuple[Tier, ...] = ()
    spiffs: tuple[Spiff, ...] = ()
    deal_bonus_bp: int = 0
    deal_bonus_minor: int = 0
    clawback: bool = True
    recurring: Recurring | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for spiff in data["spiffs"]:
            spiff["starts_at"] = spiff["starts_at"].isoformat()
            spiff["ends_at"] = spiff["ends_at"].isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rules:
        return cls(
            base_rates=tuple(BaseRate(**r) for r in data.get("base_rates", [])),
            window_days=int(data.get("window_days", 30)),
            tiers=tuple(Tier(**t) for t in data.get("tiers", [])),
            spiffs=tuple(
                Spiff(
                    sku=s["sku"],
                    per_unit_minor=s["per_unit_minor"],
                    starts_at=datetime.fromisoformat(s["starts_at"]),
                    ends_at=datetime.fromisoformat(s["ends_at"]),
                    region=s.get("region", ""),
                )
                for s in data.get("spiffs", [])
            ),
            deal_bonus_bp=int(data.get("deal_bonus_bp", 0)),
            deal_bonus_minor=int(data.get("deal_bonus_minor", 0)),
            clawback=bool(data.get("clawback", True)),
            recurring=Recurring.from_json(data["recurring"]) if data.get("recurring") else None,
        )

    def tiers_ascending(self) -> list[Tier]:
        return sorted(self.tiers, key=lambda t: t.threshold_minor)

    def base_rate_for(self, sku: str, category: str) -> BaseRate | None:
        """The most specific base rate: the SKU's, else the category's, else the default."""
        by_sku = next((r for r in self.base_rates if r.sku and r.sku == sku), None)
        if by_sku is not None:
            return by_sku
        by_category = next(
            (r for r in self.base_rates if not r.sku and r.category and r.category == category),
            None,
        )
        if by_category is not None:
            return by_category
        return next((r for r in self.base_rates if not r.sku and not r.category), None)


# ---------------------------------------------------------------------------- tiers


@dataclass(frozen=True)
class Standing:
    """The partner's trailing figures at one instant, which decide its tier."""

    qualified_revenue_minor: int
    approved_revenue_minor: int
    reversed_revenue_minor: int  # positive
    approved_share_bp: int | None = None

    @property
    def refund_rate_bp(self) -> int:
        if self.approved_revenue_minor <= 0:
            return 0
        return self.reversed_revenue_minor * BP // self.approved_revenue_minor


@dataclass(frozen=True)
class TierChoice:
    tier: Tier | None
    reached: Tier | None  # the highest tier whose threshold is met (gates aside)
    gate_failures: list[str] = field(default_factory=list)
    next_tier: Tier | None = None

    @property
    def uplift_bp(self) -> int:
        return self.tier.uplift_bp if self.tier else 0

    def amount_to_next(self, standing: Standing) -> int | None:
        if self.next_tier is None:
            return None
        return max(self.next_tier.threshold_minor - standing.qualified_revenue_minor, 0)


def gate_failures(tier: Tier, standing: Standing) -> list[str]:
    failures = []
    if tier.max_refund_rate_bp is not None and standing.refund_rate_bp > tier.max_refund_rate_bp:
        failures.append(
            f"your refund rate of {format_bp(standing.refund_rate_bp)} is above the "
            f"{format_bp(tier.max_refund_rate_bp)} {tier.name} allows"
        )
    if (
        tier.min_approved_share_bp is not None
        and standing.approved_share_bp is not None
        and standing.approved_share_bp < tier.min_approved_share_bp
    ):
        failures.append(
            f"{format_bp(standing.approved_share_bp)} of your claims were approved, below the "
            f"{format_bp(tier.min_approved_share_bp)} {tier.name} needs"
        )
    return failures


def select_tier(rules: Rules, standing: Standing) -> TierChoice:
    """The highest tier whose threshold is reached and whose quality gates hold. A gate
    whose figure is unknown (no claim statistics wired) does not block."""
    ascending = rules.tiers_ascending()
    reached_all = [t for t in ascending if t.threshold_minor <= standing.qualified_revenue_minor]
    reached = reached_all[-1] if reached_all else None
    failures: list[str] = []
    chosen: Tier | None = None
    for tier in reversed(reached_all):
        tier_failures = gate_failures(tier, standing)
        if not tier_failures:
            chosen = tier
            break
        failures.extend(tier_failures)
    above = [t for t in ascending if t.threshold_minor > standing.qualified_revenue_minor]
    next_tier = above[0] if above else None
    return TierChoice(tier=chosen, reached=reached, gate_failures=failures, next_tier=next_tier)


# ---------------------------------------------------------------------------- amounts


def base_amount(rate: BaseRate, line_amount_minor: int, units: int) -> int:
    if rate.per_unit_minor is not None:
        return rate.per_unit_minor * units
    return apply_bp(line_amount_minor, rate.rate_bp or 0)


def deal_bonus(rules: Rules, deal_amount_minor: int) -> int:
    return rules.deal_bonus_minor + apply_bp(deal_amount_minor, rules.deal_bonus_bp)


# ---------------------------------------------------------------------------- validation


def validate_rules(rules: Rules, prefix: str = "rules") -> list[DomainError]:
    code = EarningsErrorCode
    errors: list[DomainError] = []

    def err(c: EarningsErrorCode, message: str, path: str) -> None:
        errors.append(DomainError(c, message, f"{prefix}.{path}"))

    defaults = 0
    for i, rate in enumerate(rules.base_rates):
        path = f"base_rates.{i}"
        if (rate.rate_bp is None) == (rate.per_unit_minor is None):
            err(code.INVALID_RATE, "Give either a percentage or an amount per unit.", path)
        elif rate.rate_bp is not None and rate.rate_bp < 0:
            err(code.NEGATIVE_RATE, "A rate cannot be negative.", f"{path}.rate_bp")
        elif rate.rate_bp is not None and rate.rate_bp > MAX_RATE_BP:
            err(code.INVALID_RATE, "A rate is at most 100%.", f"{path}.rate_bp")
        elif rate.per_unit_minor is not None and rate.per_unit_minor < 0:
            err(code.NEGATIVE_RATE, "An amount per unit cannot be negative.", f"{path}.per_unit")
        if rate.sku and rate.category:
            err(code.INVALID_RATE, "A rate is for a SKU or a category, not both.", path)
        if not rate.sku and not rate.category:
            defaults += 1
        for key in ("sku", "category"):
            if (value := getattr(rate, key)) and (problem := identifier_problem(value)):
                err(code.INVALID_CHARACTERS, problem, f"{path}.{key}")
    if defaults > 1:
        err(code.INVALID_RATE, "Give at most one default rate.", "base_rates")
    skus = [r.sku for r in rules.base_rates if r.sku]
    cats = [r.category for r in rules.base_rates if r.category and not r.sku]
    if len(skus) != len(set(skus)) or len(cats) != len(set(cats)):
        err(code.INVALID_RATE, "Each SKU and category may have one rate.", "base_rates")
    if not 1 <= rules.window_days <= 366:
        err(code.INVALID_TIERS, "The window is 1 to 366 days.", "window_days")
    names: set[str] = set()
    thresholds: dict[int, str] = {}
    for i, tier in enumerate(rules.tiers):
        path = f"tiers.{i}"
        if not tier.name.strip():
            err(code.REQUIRED, "Give the tier a name.", f"{path}.name")
        elif problem := name_problem(tier.name):
            err(code.INVALID_CHARACTERS, problem, f"{path}.name")
        elif tier.name in names:
            err(code.OVERLAPPING_TIERS, f"Two tiers are named {tier.name}.", f"{path}.name")
        names.add(tier.name)
        if tier.threshold_minor < 0 or tier.threshold_minor > MAX_AMOUNT_MINOR:
            err(code.INVALID_AMOUNT, "A threshold is zero or more.", f"{path}.threshold")
        elif tier.threshold_minor in thresholds:
            err(
                code.OVERLAPPING_TIERS,
                f"{tier.name} starts at the same revenue as {thresholds[tier.threshold_minor]}.",
                f"{path}.threshold",
            )
        thresholds.setdefault(tier.threshold_minor, tier.name)
        if tier.uplift_bp < 0:
            err(code.NEGATIVE_RATE, "A tier uplift cannot be negative.", f"{path}.uplift_bp")
        elif tier.uplift_bp > MAX_RATE_BP:
            err(code.INVALID_RATE, "A tier uplift is at most 100%.", f"{path}.uplift_bp")
        for gate in ("min_approved_share_bp", "max_refund_rate_bp"):
            value = getattr(tier, gate)
            if value is not None and not 0 <= value <= BP:
                err(code.INVALID_GATE, "A gate is between 0% and 100%.", f"{path}.{gate}")
    ascending = rules.tiers_ascending()
    for lower, higher in zip(ascending, ascending[1:], strict=False):
        if higher.threshold_minor > lower.threshold_minor and higher.uplift_bp < lower.uplift_bp:
            i = rules.tiers.index(higher)
            err(
                code.INVALID_TIERS,
                f"{higher.name} needs more revenue than {lower.name} but adds less.",
                f"tiers.{i}.uplift_bp",
            )
    for i, spiff in enumerate(rules.spiffs):
        path = f"spiffs.{i}"
        if not spiff.sku.strip():
            err(code.REQUIRED, "A spiff is for one SKU.", f"{path}.sku")
        elif problem := identifier_problem(spiff.sku.strip()):
            err(code.INVALID_CHARACTERS, problem, f"{path}.sku")
        if spiff.region and (problem := identifier_problem(spiff.region.strip())):
            err(code.INVALID_CHARACTERS, problem, f"{path}.region")
        if spiff.per_unit_minor <= 0 or spiff.per_unit_minor > MAX_AMOUNT_MINOR:
            err(code.INVALID_SPIFF, "A spiff pays a positive amount per unit.", f"{path}.per_unit")
        if spiff.starts_at.tzinfo is None or spiff.ends_at.tzinfo is None:
            err(code.INVALID_SPIFF, "Give instants with a timezone.", path)
        elif spiff.ends_at <= spiff.starts_at:
            err(
                code.SPIFF_ENDS_BEFORE_START, "A spiff must end after it starts.", f"{path}.ends_at"
            )
    if rules.recurring is not None:
        errors.extend(validate_recurring(rules.recurring, prefix))
    if rules.deal_bonus_bp < 0 or rules.deal_bonus_minor < 0:
        err(code.NEGATIVE_RATE, "A deal bonus cannot be negative.", "deal_bonus")
    elif rules.deal_bonus_bp > MAX_RATE_BP or rules.deal_bonus_minor > MAX_AMOUNT_MINOR:
        err(code.INVALID_RATE, "The deal bonus is too large.", "deal_bonus")
    return errors


def validate_recurring(r: Recurring, prefix: str) -> list[DomainError]:
    code = EarningsErrorCode
    path = f"{prefix}.recurring"
    errors: list[DomainError] = []
    rates = {
        "renewal_rate_bp": r.renewal_rate_bp,
        "multi_year_escalator_bp": r.multi_year_escalator_bp,
        "expansion_bonus_bp": r.expansion_bonus_bp,
        **{f"renewal_schedule_bp.{i}": v for i, v in enumerate(r.renewal_schedule_bp)},
    }
    for name, value in rates.items():
        if value < 0:
            errors.append(
                DomainError(code.NEGATIVE_RATE, "A rate cannot be negative.", f"{path}.{name}")
            )
        elif value > MAX_RATE_BP:
            errors.append(
                DomainError(code.INVALID_RATE, "A rate is at most 100%.", f"{path}.{name}")
            )
    limits: dict[str, int | None] = {
        "max_renewals": r.max_renewals, "max_months": r.max_months,
        "retention_months": r.retention_months,
    }  # fmt: skip
    for name, limit in limits.items():
        if limit is not None and not 1 <= limit <= 600:
            errors.append(
                DomainError(code.INVALID_RECURRING, "Give 1 to 600, or nothing.", f"{path}.{name}")
            )
    if not 0 <= r.clawback_days <= 3650:
        errors.append(
            DomainError(code.INVALID_RECURRING, "0 to 3650 days.", f"{path}.clawback_days")
        )
    if r.retention_bonus_minor < 0:
        errors.append(
            DomainError(
                code.NEGATIVE_RATE, "A bonus cannot be negative.", f"{path}.retention_bonus"
            )
        )
    elif r.retention_bonus_minor > MAX_AMOUNT_MINOR:
        errors.append(DomainError(code.INVALID_AMOUNT, "Too large.", f"{path}.retention_bonus"))
    if r.retention_bonus_minor and r.retention_months is None:
        errors.append(
            DomainError(
                code.INVALID_RECURRING, "Say after how many months the retention bonus is paid.",
                f"{path}.retention_months",
            )
        )  # fmt: skip
    return errors


# ---------------------------------------------------------------------------- storage


async def versions_of(session: AsyncSession, program_id: uuid.UUID) -> list[ProgramVersion]:
    rows = await session.exec(
        select(ProgramVersion)
        .where(ProgramVersion.program_id == program_id)
        .order_by(col(ProgramVersion.number))
    )
    return list(rows)


async def vendor_programs(
    session: AsyncSession, vendor_id: uuid.UUID, currency: str | None = None
) -> list[Program]:
    stmt = select(Program).where(Program.vendor_id == vendor_id)
    if currency is not None:
        stmt = stmt.where(Program.currency == currency)
    return list(await session.exec(stmt.order_by(col(Program.id))))


async def version_at(
    session: AsyncSession, program_id: uuid.UUID, at: datetime
) -> ProgramVersion | None:
    """The version in force at ``at`` (a program has a handful of versions: all are read)."""
    return version_in_force(await versions_of(session, program_id), at)


def version_in_force(versions: list[ProgramVersion], at: datetime) -> ProgramVersion | None:
    """The latest version effective from ``at`` or before (of two effective from the same
    instant, the later number)."""
    effective = [v for v in versions if v.effective_from <= at]
    return max(effective, key=lambda v: (v.effective_from, v.number), default=None)


async def create_program(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    currency: str,
    rules: Rules,
    effective_from: datetime | None = None,
    kind: ProgramKind = ProgramKind.BASE,
    target_group_ids: list[uuid.UUID] | None = None,
) -> ProgramVersion:
    """A program and its first version. It applies to the partners of ``target_group_ids``
    at a sale's date (none given: every partner). A BASE program that would overlap
    another BASE program in the currency is refused (OVERLAPPING_BASE_PROGRAM); a BONUS
    program pays on top of whatever else applies."""
    EARNINGS.require(principal, EarningsOp.CREATE_PROGRAM)
    await begin_write(session)
    name = name.strip()
    currency = currency.strip().upper()
    errors = validate_rules(rules)
    targets = list(dict.fromkeys(target_group_ids or []))
    found = set(
        await session.exec(
            select(PartnerGroup.id).where(
                PartnerGroup.vendor_id == principal.vendor_id,
                col(PartnerGroup.id).in_(targets),
                col(PartnerGroup.archived_at).is_(None),
            )
        )
    ) if targets else set()  # fmt: skip
    for i, group_id in enumerate(targets):
        if group_id not in found:
            errors.append(
                DomainError(EarningsErrorCode.NOT_FOUND, "No such group.", f"target_group_ids.{i}")
            )
    if not name:
        errors.append(DomainError(EarningsErrorCode.REQUIRED, "Give the program a name.", "name"))
    elif len(name) > 200:
        errors.append(DomainError(EarningsErrorCode.TOO_LONG, "At most 200 characters.", "name"))
    elif problem := name_problem(name):
        errors.append(DomainError(EarningsErrorCode.INVALID_CHARACTERS, problem, "name"))
    if bad_currency := currency_error(currency):
        errors.append(bad_currency)
    if effective_from is not None and effective_from.tzinfo is None:
        errors.append(
            DomainError(EarningsErrorCode.INVALID_PERIOD, "Give a timezone.", "effective_from")
        )
    if errors:
        raise DomainErrors(errors)
    taken = await session.exec(
        select(Program.id).where(Program.vendor_id == principal.vendor_id, Program.name == name)
    )
    if taken.first() is not None:
        raise DomainError(
            EarningsErrorCode.DUPLICATE_NAME, "A program with this name exists.", "name"
        )
    now = clock.now()
    program = Program(
        vendor_id=principal.vendor_id, name=name, currency=currency, created_at=now, kind=kind,
        target_group_ids=[str(g) for g in targets],
    )  # fmt: skip
    await check_overlap(session, program)
    session.add(program)
    await session.flush()
    start = effective_from or now
    version = await _add_version(session, principal, clock, program, rules, start, 1)
    await log_change(
        session, principal, clock, action="program.created", entity_type=AuditEntity.PROGRAM,
        entity_id=program.id, before=None, after={"name": program.name,
        "currency": program.currency, "kind": program.kind.value,
        "target_group_ids": program.target_group_ids, "rules": version.rules,
        "effective_from": version.effective_from},
    )  # fmt: skip
    return version


def targets_of(program: Program) -> frozenset[uuid.UUID]:
    return frozenset(uuid.UUID(g) for g in program.target_group_ids)


def applies_to(program: Program, groups: set[uuid.UUID]) -> bool:
    """The program applies to a partner in ``groups`` (no targets: to every partner)."""
    targets = targets_of(program)
    return not targets or bool(targets & groups)


async def _ever_shared_partner(
    session: AsyncSession, left: frozenset[uuid.UUID], right: frozenset[uuid.UUID]
) -> bool:
    """Some partner was ever (or is) a member of a group of each set."""
    a = select(PartnerGroupMembership.partner_id).where(
        col(PartnerGroupMembership.group_id).in_(list(left))
    )
    b = select(PartnerGroupMembership.partner_id).where(
        col(PartnerGroupMembership.group_id).in_(list(right)),
        col(PartnerGroupMembership.partner_id).in_(a),
    )
    return (await session.exec(b.limit(1))).first() is not None


async def check_overlap(session: AsyncSession, program: Program) -> None:
    """Refuse a BASE program that would pay a partner on top of another BASE program of the
    currency. Programs run from their first version on without end, so any two overlap in
    time; their targets overlap when either targets every partner, they share a group, or
    some partner was ever in a group of each (conservative: membership may change)."""
    if program.kind is not ProgramKind.BASE:
        return
    others = await session.exec(
        select(Program)
        .where(
            Program.vendor_id == program.vendor_id,
            Program.currency == program.currency,
            Program.kind == ProgramKind.BASE,
            Program.id != program.id,
        )
        .order_by(col(Program.created_at), col(Program.id))
    )
    mine = targets_of(program)
    for other in others:
        theirs = targets_of(other)
        if (
            not mine
            or not theirs
            or mine & theirs
            or await _ever_shared_partner(session, mine, theirs)
        ):
            raise DomainError(
                EarningsErrorCode.OVERLAPPING_BASE_PROGRAM,
                f"The base program '{other.name}' already applies to some of these partners "
                f"in {program.currency}; target other groups or make this a BONUS program.",
                "target_group_ids",
            )


async def create_version(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    program_id: uuid.UUID,
    rules: Rules,
    effective_from: datetime | None = None,
) -> ProgramVersion:
    """A new version of the program's rules, in force from ``effective_from`` (now when
    omitted). Entries already computed keep the version they were computed under; it may
    not start before the latest version, nor inside a period that was already paid."""
    EARNINGS.require(principal, EarningsOp.CREATE_PROGRAM_VERSION)
    await begin_write(session)
    # Locked (``for_change``): two new versions at once take turns, the second numbered
    # after the first and checked against it.
    program = (
        await session.exec(
            for_change(
                (await readable_programs(session, principal)).where(Program.id == program_id),
                Program,
            )
        )
    ).first()
    if program is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such program.", "program_id")
    errors = validate_rules(rules)
    if errors:
        raise DomainErrors(errors)
    now = clock.now()
    start = effective_from or now
    if start.tzinfo is None:
        raise DomainError(EarningsErrorCode.INVALID_PERIOD, "Give a timezone.", "effective_from")
    await check_overlap(session, program)
    versions = await versions_of(session, program.id)
    latest = versions[-1]
    if start < latest.effective_from:
        raise DomainError(
            EarningsErrorCode.EFFECTIVE_BEFORE_CURRENT_VERSION,
            f"Version {latest.number} is in force from {latest.effective_from.isoformat()}; a "
            "new version cannot start before it.",
            "effective_from",
        )
    paid_until = await session.scalar(
        select(func.max(PayoutStatement.period_end)).where(
            PayoutStatement.vendor_id == program.vendor_id,
            PayoutStatement.currency == program.currency,
            col(PayoutStatement.status).in_([PayoutStatus.PAID, PayoutStatus.APPROVED]),
        )
    )
    if paid_until is not None and start < paid_until:
        raise DomainError(
            EarningsErrorCode.EFFECTIVE_BEFORE_PAID_PERIOD,
            f"Payouts up to {paid_until.date().isoformat()} are approved or paid; a change "
            "cannot take effect before that.",
            "effective_from",
        )
    version = await _add_version(
        session, principal, clock, program, rules, start, latest.number + 1
    )
    await log_change(
        session, principal, clock, action="program_version.created",
        entity_type=AuditEntity.PROGRAM_VERSION, entity_id=version.id,
        before={"number": latest.number, "rules": latest.rules,
        "effective_from": latest.effective_from},
        after={"program_id": program.id, "number": version.number, "rules": version.rules,
        "effective_from": version.effective_from},
    )  # fmt: skip
    return version


async def _add_version(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    program: Program,
    rules: Rules,
    effective_from: datetime,
    number: int,
) -> ProgramVersion:
    version = ProgramVersion(
        vendor_id=program.vendor_id,
        program_id=program.id,
        number=number,
        effective_from=effective_from,
        rules=rules.to_json(),
        created_by_id=principal.user_id,
        created_at=clock.now(),
    )
    session.add(version)
    await session.flush()
    changed = ProgramChanged(program.id, number, effective_from)
    await record_events(
        session, clock, [(program.vendor_id, changed.type, program.id, changed.to_payload())]
    )
    return version


@dataclass(frozen=True)
class TierStatus:
    """Where a partner stands in a program at one instant."""

    program_name: str
    version_number: int
    currency: str
    window_days: int
    base_rate_bp: int | None  # the default percentage rate, when the program has one
    qualified_revenue_minor: int
    tier: Tier | None
    reached: Tier | None
    gate_failures: list[str]
    next_tier: Tier | None
    amount_to_next_minor: int | None
    # Some tier has an approved-claims gate: the approved share (over the same window) can
    # then change the tier held.
    share_gated: bool = False

    @property
    def rate_bp(self) -> int | None:
        if self.base_rate_bp is None:
            return None
        return self.base_rate_bp + (self.tier.uplift_bp if self.tier else 0)


def status_from(
    program: Program, version: ProgramVersion, rules: Rules, standing: Standing
) -> TierStatus:
    choice = select_tier(rules, standing)
    default = rules.base_rate_for("", "")
    return TierStatus(
        program_name=program.name,
        version_number=version.number,
        currency=program.currency,
        window_days=rules.window_days,
        base_rate_bp=default.rate_bp if default is not None else None,
        qualified_revenue_minor=standing.qualified_revenue_minor,
        tier=choice.tier,
        reached=choice.reached,
        gate_failures=choice.gate_failures,
        next_tier=choice.next_tier,
        amount_to_next_minor=choice.amount_to_next(standing),
        share_gated=any(t.min_approved_share_bp is not None for t in rules.tiers),
    )
