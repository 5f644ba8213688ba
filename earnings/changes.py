"""What changed in the rules a partner earns by during a period, in plain language: a new
version of a program that applies to it (any field: base rates, window, tiers and their
gates, spiffs, deal bonus, clawback), a program that starts or stops applying to it because
its group membership changed, and each adjustment with its note.

Partner-safe by construction: a program is named, never the group that made it apply (group
names are vendor-internal, and a group may be a pilot's treatment arm), never why a
membership changed (its reason is the vendor's)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import programs
from earnings.explanations import Explanation, ExplanationKind
from earnings.models import EarningEntry, EntryKind, Program, ProgramKind, ProgramVersion
from earnings.programs import BaseRate, Recurring, Rules, Spiff, Tier
from earnings.rounding import format_bp
from infra.money import Money
from partners.group_models import PartnerGroupMembership

MAX_ADJUSTMENTS_EXPLAINED = 20


def _m(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def _day(at: datetime) -> str:
    return f"{at:%d %b %Y}"


# ------------------------------------------------------------------ rule differences


def _rate_target(rate: BaseRate) -> str:
    if rate.sku:
        return f"the base rate for {rate.sku}"
    if rate.category:
        return f"the base rate for the {rate.category} category"
    return "the base rate"


def _rate_key(rate: BaseRate) -> tuple[str, str]:
    return (rate.sku or "", "" if rate.sku else rate.category or "")


def _base_rates(before: Rules, after: Rules, currency: str) -> list[str]:
    old = {_rate_key(r): r for r in before.base_rates}
    new = {_rate_key(r): r for r in after.base_rates}
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None and b is not None:
            out.append(f"{_rate_target(b)} is now {b.describe(currency)} (new)")
        elif b is None and a is not None:
            out.append(f"{_rate_target(a)} of {a.describe(currency)} was removed")
        elif a is not None and b is not None and a.describe(currency) != b.describe(currency):
            out.append(f"{_rate_target(b)} is now {b.describe(currency)}, it was "
                       f"{a.describe(currency)}")  # fmt: skip
    return out


def _gate(value: int | None) -> str:
    return "none" if value is None else format_bp(value)


def _tiers(before: Rules, after: Rules, currency: str) -> list[str]:
    old = {t.name: t for t in before.tiers}
    new = {t.name: t for t in after.tiers}
    out = []
    for tier in after.tiers_ascending():
        if tier.name not in old:
            out.append(
                f"a new tier, {tier.name}, starts at {_m(tier.threshold_minor, currency)} of "
                f"qualified revenue and adds +{format_bp(tier.uplift_bp)}"
            )
            continue
        was: Tier = old[tier.name]
        if was.threshold_minor != tier.threshold_minor:
            out.append(
                f"{tier.name} now starts at {_m(tier.threshold_minor, currency)} of qualified "
                f"revenue, it was {_m(was.threshold_minor, currency)}"
            )
        if was.uplift_bp != tier.uplift_bp:
            out.append(
                f"{tier.name} now adds +{format_bp(tier.uplift_bp)}, it was "
                f"+{format_bp(was.uplift_bp)}"
            )
        if was.min_approved_share_bp != tier.min_approved_share_bp:
            out.append(
                f"{tier.name} now needs {_gate(tier.min_approved_share_bp)} of claims approved, "
                f"it was {_gate(was.min_approved_share_bp)}"
            )
        if was.max_refund_rate_bp != tier.max_refund_rate_bp:
            out.append(
                f"{tier.name} now allows a refund rate of {_gate(tier.max_refund_rate_bp)}, "
                f"it was {_gate(was.max_refund_rate_bp)}"
            )
    for name in sorted(old.keys() - new.keys()):
        out.append(f"the {name} tier was removed")
    return out


def _spiff(spiff: Spiff, currency: str) -> str:
    where = f" in {spiff.region}" if spiff.region else ""
    return (
        f"{_m(spiff.per_unit_minor, currency)} per unit of {spiff.sku}{where} from "
        f"{_day(spiff.starts_at)} until {_day(spiff.ends_at)}"
    )


def _spiffs(before: Rules, after: Rules, currency: str) -> list[str]:
    old, new = set(before.spiffs), set(after.spiffs)
    added = sorted(new - old, key=lambda s: (s.sku, s.starts_at))
    removed = sorted(old - new, key=lambda s: (s.sku, s.starts_at))
    return [f"a new spiff pays {_spiff(s, currency)}" for s in added] + [
        f"the spiff of {_spiff(s, currency)} was withdrawn" for s in removed
    ]


def _deal_bonus(rules: Rules, currency: str) -> str:
    parts = []
    if rules.deal_bonus_minor:
        parts.append(_m(rules.deal_bonus_minor, currency))
    if rules.deal_bonus_bp:
        parts.append(f"{format_bp(rules.deal_bonus_bp)} of the deal")
    return " plus ".join(parts) if parts else "nothing"


def _renewal_pay(terms: Recurring) -> str:
    if terms.renewal_schedule_bp:
        *first, last = (format_bp(bp) for bp in terms.renewal_schedule_bp)
        return ", ".join(first + [f"then {last} from then on"]) if first else last
    return format_bp(terms.renewal_rate_bp) if terms.renewal_rate_bp else "nothing"


def _renewal_cap(terms: Recurring) -> str:
    caps = []
    if terms.max_renewals is not None:
        caps.append(f"for the first {terms.max_renewals} renewals")
    if terms.max_months is not None:
        caps.append(f"for terms starting within {terms.max_months} months of the start")
    return " and ".join(caps) if caps else "without limit"


def _retention(terms: Recurring, currency: str) -> str:
    if not terms.retention_bonus_minor or terms.retention_months is None:
        return "nothing"
    return f"{_m(terms.retention_bonus_minor, currency)} once, {terms.retention_months} months in"


def _cancellations(terms: Recurring) -> str:
    days = terms.clawback_days
    if not days:
        return "never taken back"
    return f"taken back if it is cancelled within {days} days of the term's start"


def _recurring(before: Recurring | None, after: Recurring | None, currency: str) -> list[str]:
    """Subscriptions' terms; no terms pays as Recurring() does: nothing."""
    if before == after:
        return []
    if after is None:
        return ["subscriptions no longer earn recurring commissions"]
    was, now = before or Recurring(), after
    clauses = [
        ("each renewal of a subscription now earns {}, it was {}", _renewal_pay),
        ("renewals now earn {}, it was {}", _renewal_cap),
        (
            "a multi-year term now earns {} per year beyond the first, it was {}",
            lambda t: (
                f"+{format_bp(t.multi_year_escalator_bp)} more"
                if t.multi_year_escalator_bp
                else "nothing more"
            ),
        ),
        (
            "an expansion now earns {} of its net increase, it was {}",
            lambda t: format_bp(t.expansion_bonus_bp),
        ),
        ("an account still active now earns {}, it was {}", lambda t: _retention(t, currency)),
        (
            "what a subscription's renewal and expansions earned is now {}, it was {}",
            _cancellations,
        ),
    ]
    out = []
    for sentence, describe in clauses:
        a, b = describe(was), describe(now)
        if a != b:
            out.append(sentence.format(b, a))
    return out


def describe_changes(before: Rules, after: Rules, currency: str) -> list[str]:
    """Each difference between two versions' rules as a clause a partner can read."""
    out = _base_rates(before, after, currency)
    if before.window_days != after.window_days:
        out.append(
            f"tiers are now decided on {after.window_days} days of qualified revenue, it was "
            f"{before.window_days} days"
        )
    out += _tiers(before, after, currency)
    out += _spiffs(before, after, currency)
    if (before.deal_bonus_bp, before.deal_bonus_minor) != (
        after.deal_bonus_bp, after.deal_bonus_minor
    ):  # fmt: skip
        out.append(
            f"a won registered deal now earns {_deal_bonus(after, currency)}, it was "
            f"{_deal_bonus(before, currency)}"
        )
    if before.clawback != after.clawback:
        out.append(
            "a reversed sale now takes back what it earned"
            if after.clawback
            else "a reversed sale no longer takes back what it earned"
        )
    out += _recurring(before.recurring, after.recurring, currency)
    if not out and before != after:  # never "the same" when it is not
        out.append("some of its terms changed")
    return out


def _kind_words(program: Program) -> str:
    if program.kind is ProgramKind.BONUS:
        return "bonus program, paid on top of your base program"
    return "base program"


def _headline(rules: Rules, currency: str) -> str:
    default = rules.base_rate_for("", "")
    if default is None:
        return ""
    return f": {default.describe(currency)} of every sale"


# ------------------------------------------------------------------ what applied when


@dataclass(frozen=True)
class _Interval:
    group_id: uuid.UUID
    joined_at: datetime
    left_at: datetime | None

    def holds_at(self, at: datetime) -> bool:
        return self.joined_at <= at and (self.left_at is None or at < self.left_at)

    def held_just_before(self, at: datetime) -> bool:
        return self.joined_at < at and (self.left_at is None or at <= self.left_at)


async def _intervals(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, until: datetime
) -> list[_Interval]:
    rows = await session.exec(
        select(PartnerGroupMembership).where(
            PartnerGroupMembership.vendor_id == vendor_id,
            PartnerGroupMembership.partner_id == partner_id,
            col(PartnerGroupMembership.joined_at) < until,
        )
    )
    return [_Interval(r.group_id, r.joined_at, r.left_at) for r in rows]


def _groups_at(intervals: Sequence[_Interval], at: datetime) -> set[uuid.UUID]:
    return {i.group_id for i in intervals if i.holds_at(at)}


def _groups_before(intervals: Sequence[_Interval], at: datetime) -> set[uuid.UUID]:
    return {i.group_id for i in intervals if i.held_just_before(at)}


async def program_changes(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    currency: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Explanation]:
    """Versions of the currency's programs that took (or take) effect in ``[start, end)``
    for a program that applied to the partner then, and programs that started or stopped
    applying to it because its group membership changed in the period, in time order."""
    found = await programs.vendor_programs(session, vendor_id, currency)
    if not found:
        return []
    intervals = await _intervals(session, vendor_id, partner_id, end)
    versions = await session.exec(
        select(ProgramVersion)
        .where(
            ProgramVersion.vendor_id == vendor_id,
            col(ProgramVersion.program_id).in_([p.id for p in found]),
        )
        .order_by(col(ProgramVersion.program_id), col(ProgramVersion.number))
    )
    by_program: dict[uuid.UUID, list[ProgramVersion]] = {}
    for version in versions:
        by_program.setdefault(version.program_id, []).append(version)
    out: list[tuple[datetime, int, Explanation]] = []
    for program in found:
        history = by_program.get(program.id, [])
        for i, version in enumerate(history):
            at = version.effective_from
            if not start <= at < end:
                continue
            if not programs.applies_to(program, _groups_at(intervals, at)):
                continue
            out.append((at, version.number, _version_explanation(
                program, history[i - 1] if i else None, version, now
            )))  # fmt: skip
        targets = programs.targets_of(program)
        if not targets or not history:
            continue
        instants = sorted({
            t for i in intervals if i.group_id in targets
            for t in (i.joined_at, i.left_at) if t is not None and start <= t < end
        })  # fmt: skip
        for at in instants:
            in_force = programs.version_in_force(history, at)
            if in_force is None or at == history[0].effective_from:
                continue  # not started yet, or starting now: its first version says so
            was = bool(targets & _groups_before(intervals, at))
            is_ = bool(targets & _groups_at(intervals, at))
            if was == is_:
                continue
            out.append((at, 0, _membership_explanation(program, in_force, is_, at)))
    out.sort(key=lambda item: (item[0], item[1]))
    return [explanation for _, _, explanation in out]


def _version_explanation(
    program: Program, previous: ProgramVersion | None, version: ProgramVersion, now: datetime
) -> Explanation:
    rules = Rules.from_json(version.rules)
    when = _day(version.effective_from)
    if previous is None:
        text = (
            f"The {program.name} program ({_kind_words(program)}) applies to you from {when}"
            f"{_headline(rules, program.currency)}."
        )
        return Explanation(ExplanationKind.PROGRAM_STARTED, text)
    clauses = describe_changes(Rules.from_json(previous.rules), rules, program.currency)
    verb = "changed" if version.effective_from <= now else "changes"
    what = "; ".join(clauses) if clauses else "its rules are the same as before"
    return Explanation(
        ExplanationKind.PROGRAM_CHANGED,
        f"The {program.name} program {verb} on {when} (version {version.number}): {what}.",
    )


def _membership_explanation(
    program: Program, version: ProgramVersion, applies: bool, at: datetime
) -> Explanation:
    if applies:
        rules = Rules.from_json(version.rules)
        return Explanation(
            ExplanationKind.PROGRAM_NOW_APPLIES,
            f"From {_day(at)} the {program.name} program ({_kind_words(program)}) applies to "
            f"your sales{_headline(rules, program.currency)}.",
        )
    return Explanation(
        ExplanationKind.PROGRAM_NO_LONGER_APPLIES,
        f"From {_day(at)} the {program.name} program no longer applies to your sales; sales "
        "made before then keep what they earned under it.",
    )


# ------------------------------------------------------------------ adjustments


async def adjustments(session: AsyncSession, booked: list[Any], currency: str) -> list[Explanation]:
    """One explanation per adjustment booked in the period, with finance's note (the note
    is what the adjustment was made to tell the partner); the oldest first."""
    rows = list(
        await session.exec(
            select(EarningEntry)
            .where(*booked, EarningEntry.kind == EntryKind.ADJUSTMENT)
            .order_by(col(EarningEntry.booked_at), col(EarningEntry.id))
        )
    )
    out = []
    for entry in rows[:MAX_ADJUSTMENTS_EXPLAINED]:
        note = str(entry.inputs.get("note") or "").strip()
        amount = entry.amount_minor
        verb = (
            f"added {_m(amount, currency)} to your earnings"
            if amount > 0
            else f"took {_m(-amount, currency)} back from your earnings"
        )
        out.append(Explanation(
            ExplanationKind.ADJUSTMENT,
            f"Our finance team {verb} on {_day(entry.booked_at)}" + (f": {note}" if note
            else ".") + ("" if not note or note.endswith((".", "!", "?")) else "."),
            amount,
        ))  # fmt: skip
    rest = rows[MAX_ADJUSTMENTS_EXPLAINED:]
    if rest:
        total = sum(e.amount_minor for e in rest)
        out.append(Explanation(
            ExplanationKind.ADJUSTMENT,
            f"{len(rest)} more adjustments by our finance team came to {_m(total, currency)}.",
            total,
        ))  # fmt: skip
    return out
