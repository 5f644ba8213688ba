"""The vendor's forecast roll-up for a quarter: per partner, region or partner group, the
partners' commit and best case (latest revisions), their open pipeline closing in the
quarter (full and stage-weighted: ``stages``), and the revenue so far. Vendor staff only
(a channel manager: its assigned partners). Group rows use membership now; a partner in
several groups counts in each, one in none under no group row."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration
from earnings.rounding import BP, divide_rounded
from forecasts.actuals import revenue_by_partner
from forecasts.errors import ForecastErrorCode as Code
from forecasts.models import PartnerForecast
from forecasts.pipeline import is_open, probability_bp
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.quarters import Quarter
from infra.clock import Clock
from infra.codes import is_currency
from infra.errors import DomainError
from partners.access import accessible_partner_ids
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.groups import readable_groups
from partners.models import Partner
from partners.roles import Principal


class RollupBy(StrEnum):
    PARTNER = "PARTNER"
    REGION = "REGION"
    GROUP = "GROUP"


@dataclass
class RollupRow:
    key: str
    label: str
    partners: int = 0
    forecasts: int = 0
    commit_minor: int = 0
    best_case_minor: int = 0
    open_deals: int = 0
    pipeline_minor: int = 0
    weighted_pipeline_minor: int = 0
    actual_minor: int = 0

    def add(self, other: RollupRow) -> None:
        self.partners += other.partners
        self.forecasts += other.forecasts
        self.commit_minor += other.commit_minor
        self.best_case_minor += other.best_case_minor
        self.open_deals += other.open_deals
        self.pipeline_minor += other.pipeline_minor
        self.weighted_pipeline_minor += other.weighted_pipeline_minor
        self.actual_minor += other.actual_minor


@dataclass
class Rollup:
    quarter: Quarter
    currency: str
    by: RollupBy
    total: RollupRow
    rows: list[RollupRow] = field(default_factory=list)


def parse_quarter(text: str) -> Quarter:
    quarter = Quarter.parse(text)
    if quarter is None:
        raise DomainError(
            Code.INVALID_QUARTER, "Give the quarter as YYYY-Qn, e.g. 2027-Q1.", "quarter"
        )
    return quarter


def parse_currency(text: str) -> str:
    code = text.strip().upper()
    if not is_currency(code):
        raise DomainError(
            Code.INVALID_CURRENCY, "Use an ISO 4217 currency code like USD.", "currency"
        )
    return code


@dataclass(frozen=True)
class PartnerKey:
    id: uuid.UUID
    name: str
    region: str


async def partner_rows(
    session: AsyncSession, principal: Principal, clock: Clock, quarter: Quarter, currency: str
) -> dict[uuid.UUID, tuple[PartnerKey, RollupRow]]:
    """One row per partner the caller may read (four grouped queries; columns only, no
    partner objects: at 10,000 partners their loading would cost more than the sums)."""
    visible = accessible_partner_ids(principal)
    partners = await session.exec(
        select(Partner.id, Partner.name, Partner.region).where(col(Partner.id).in_(visible))
    )
    rows = {
        pid: (PartnerKey(pid, name, region), RollupRow(key=str(pid), label=name, partners=1))
        for pid, name, region in partners
    }
    forecasts = await session.exec(
        select(
            PartnerForecast.partner_id,
            PartnerForecast.commit_minor,
            PartnerForecast.best_case_minor,
        ).where(
            PartnerForecast.vendor_id == principal.vendor_id,
            PartnerForecast.quarter == quarter.key,
            PartnerForecast.currency == currency,
            col(PartnerForecast.partner_id).in_(visible),
        )
    )
    for pid, commit, best in forecasts:
        if pid in rows:
            row = rows[pid][1]
            row.forecasts, row.commit_minor, row.best_case_minor = 1, commit, best
    value = col(DealRegistration.estimated_value_minor)
    deals = await session.exec(
        select(
            DealRegistration.partner_id, func.count(), func.sum(value),
            func.sum(value * probability_bp()),
        )
        .where(
            DealRegistration.vendor_id == principal.vendor_id,
            DealRegistration.currency == currency,
            col(DealRegistration.expected_close_date) >= quarter.starts_at.date(),
            col(DealRegistration.expected_close_date) < quarter.ends_at.date(),
            is_open(clock.now()),
            col(DealRegistration.partner_id).in_(visible),
        )
        .group_by(col(DealRegistration.partner_id))
    )  # fmt: skip
    for pid, count, total, weighted in deals:
        if pid in rows:
            row = rows[pid][1]
            row.open_deals = int(count)
            row.pipeline_minor = int(total or 0)
            row.weighted_pipeline_minor = divide_rounded(int(weighted or 0), BP)
    actual = await revenue_by_partner(
        session, vendor_id=principal.vendor_id, currency=currency, start=quarter.starts_at,
        end=quarter.ends_at,
    )  # fmt: skip
    for pid, amount in actual.items():
        if pid in rows:
            rows[pid][1].actual_minor = amount
    return rows


async def rollup(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    quarter: str,
    currency: str,
    by: RollupBy = RollupBy.PARTNER,
) -> Rollup:
    FORECASTS.require(principal, ForecastOp.ROLLUP)
    q = parse_quarter(quarter)
    code = parse_currency(currency)
    per = await partner_rows(session, principal, clock, q, code)
    total = RollupRow(key="", label="Total")
    for _, row in per.values():
        total.add(row)
    result = Rollup(quarter=q, currency=code, by=by, total=total)
    if by is RollupBy.PARTNER:
        result.rows = sorted((r for _, r in per.values()), key=lambda r: (r.label, r.key))
        return result
    buckets: dict[str, RollupRow] = {}
    if by is RollupBy.REGION:
        for partner, row in per.values():
            bucket = buckets.setdefault(
                partner.region, RollupRow(key=partner.region, label=partner.region)
            )
            bucket.add(row)
    else:
        now = clock.now()
        members: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        memberships = await session.exec(
            select(PartnerGroupMembership.group_id, PartnerGroupMembership.partner_id).where(
                PartnerGroupMembership.vendor_id == principal.vendor_id,
                col(PartnerGroupMembership.partner_id).in_(accessible_partner_ids(principal)),
                col(PartnerGroupMembership.joined_at) <= now,
                (col(PartnerGroupMembership.left_at).is_(None))
                | (col(PartnerGroupMembership.left_at) > now),
            )
        )
        for group_id, partner_id in memberships:
            members[group_id].add(partner_id)
        # The groups the caller may read (a pilot's treatment arm only for the roles that
        # read pilots): a row for one it may not read would tell who is in the arm.
        groups = await session.exec(
            readable_groups(principal).where(col(PartnerGroup.archived_at).is_(None))
        )
        for group in groups:
            bucket = RollupRow(key=str(group.id), label=group.name)
            for pid in members.get(group.id, ()):
                if pid in per:
                    bucket.add(per[pid][1])
            buckets[bucket.key] = bucket
    result.rows = sorted(buckets.values(), key=lambda r: (r.label, r.key))
    return result
