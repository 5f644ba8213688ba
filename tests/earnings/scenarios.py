"""Earnings scenarios: the worked-example program and its catalogue, sales as the earnings
tests see them (by a partner's rep, without lines unless given), and payout statements
(a tax form on file, last month's statements and their holds)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay

from deal_registration.events import Line
from deal_registration.sales import review
from deal_registration.sales.models import RejectReason
from earnings import payouts, programs
from earnings.claims import ClaimSignals
from earnings.models import PayoutHold, PayoutStatement, ProgramVersion
from earnings.programs import BaseRate, Rules, Spiff, Tier
from infra.clock import Clock, OffsetClock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Product, Tenant, add_products, approve_sale, dispatch
from tests.support import GQL

__all__ = ["BaseRate", "Rules", "Spiff", "Tier", "programs"]

T = TypeVar("T")

# The worked example's catalogue: a category per base rate, a margin per product.
PRODUCTS = (
    Product("NW-AP-6E", 45_900, name="NW-AP-6E", category="wireless", margin_rate_bp=3_500),
    Product("NW-FW-500", 459_900, name="NW-FW-500", category="security", margin_rate_bp=5_100),
    Product("NW-CARE-3Y", 39_900, name="NW-CARE-3Y", category="services", margin_rate_bp=7_000),
)


def worked_rules(spiff_start: datetime, spiff_days: int = 14) -> Rules:
    """8% by default, 10% on security, 50.00 per unit of NW-CARE-3Y; Silver at 10,000.00
    (+1%), Gold at 25,000.00 (+2%, refund rate at most 10%) over 30 days; a 25.00 spiff per
    NW-AP-6E in EMEA; 250.00 + 1% per won registered deal; clawback on."""
    return Rules(
        base_rates=(
            BaseRate(rate_bp=800),
            BaseRate(rate_bp=1_000, category="security"),
            BaseRate(per_unit_minor=5_000, sku="NW-CARE-3Y"),
        ),
        window_days=30,
        tiers=(
            Tier("Silver", 1_000_000, 100),
            Tier("Gold", 2_500_000, 200, max_refund_rate_bp=1_000),
        ),
        spiffs=(
            Spiff(
                sku="NW-AP-6E",
                per_unit_minor=2_500,
                starts_at=spiff_start,
                ends_at=spiff_start + timedelta(days=spiff_days),
                region="EMEA",
            ),
        ),  # fmt: skip
        deal_bonus_bp=100,
        deal_bonus_minor=25_000,
    )


async def seed_products(db: Database, clock: Clock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, PRODUCTS)


async def make_program(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    rules: Rules,
    *,
    name: str = "Partner Rewards",
    effective_from: datetime | None = None,
) -> ProgramVersion:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        return await programs.create_program(
            session, admin, clock, name=name, currency="USD", rules=rules,
            effective_from=effective_from or clock.now() - timedelta(days=365),
        )  # fmt: skip


async def sale(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    amount_minor: int,
    *,
    partner_index: int = 0,
    lines: list[Line] | None = None,
    rep: bool = True,
    region: str = "EMEA",
    sold_at: datetime | None = None,
) -> OutboxEvent:
    """A sale approved now, by the partner's rep (unless ``rep`` is false)."""
    rep_user = tenant.user(Role.PARTNER_REP, partner_index) if rep else None
    return await approve_sale(
        db, clock, tenant, partner=partner_index, amount=amount_minor, lines=lines or [],
        rep=rep_user.id if rep_user else None, region=region, sold_at=sold_at,
    )  # fmt: skip


async def tx(db: Database, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with db.transaction() as session:
        await begin_write(session)
        return await action(session)


async def tax_form(db: Database, clock: OffsetClock, tenant: Tenant, index: int = 0) -> None:
    await tx(
        db,
        lambda s: payouts.set_profile(
            s, tenant.principal(Role.FINANCE), clock, partner_id=tenant.partners[index].id,
            tax_form_on_file=True,
        ),
    )  # fmt: skip


async def generate(
    db: Database, clock: OffsetClock, tenant: Tenant, signals: ClaimSignals
) -> list[PayoutStatement]:
    month = payouts.previous_month(payouts.month_start(clock.now()))
    return await tx(
        db,
        lambda s: payouts.generate_statements(
            s, tenant.principal(Role.FINANCE), clock, month=month, signals=signals
        ),
    )


async def holds_of(db: Database, statement: PayoutStatement) -> list[PayoutHold]:
    async with db.session() as session:
        rows = await session.exec(select(PayoutHold).where(PayoutHold.statement_id == statement.id))
        return list(rows)


# Silver needs half of the partner's decided claims (made in the 30-day window) approved.
SHARE_GATED = Rules(
    base_rates=(BaseRate(rate_bp=800),), window_days=30,
    tiers=(Tier("Silver", 1_000_000, 100, min_approved_share_bp=5_000),
           Tier("Gold", 2_500_000, 200)),
)  # fmt: skip


async def share_gated_partner(
    db: Database, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services, t0: datetime
) -> uuid.UUID:
    """Partner 0 under ``SHARE_GATED`` at ``t0``: a claim of its rep made and rejected at
    t0 - 20 days (0 % approved: Silver's gate shut until the claim leaves the window at
    t0 + 10 days) and a 12,000.00 sale at t0 - 5 days (Silver's line), credited. The clock
    is left at t0 - 5 days. Returns the claim's id."""
    clock.freeze(t0 - timedelta(days=40))
    await make_program(db, clock, tenant, SHARE_GATED)
    await seed_registry(db, clock, tenant, 4)
    clock.freeze(t0 - timedelta(days=20))
    made = await gql.data(CREATE, {"input": claim_input(["SN000001"], clock)},
                          as_user=tenant.user(Role.PARTNER_REP, 0))  # fmt: skip
    claim_id = uuid.UUID(relay.GlobalID.from_id(made["saleClaimCreate"]["saleClaim"]["id"]).node_id)

    async def reject(session: AsyncSession) -> None:
        await review.reject(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, claim_id=claim_id,
            reason=RejectReason.OTHER,
        )  # fmt: skip

    await tx(db, reject)
    clock.freeze(t0 - timedelta(days=5))
    await sale(db, clock, tenant, 1_200_000)  # in the window until t0 + 25 days
    await dispatch(services)
    return claim_id
