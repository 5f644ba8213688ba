"""Helpers for the earnings tests: a worked-example program, source events recorded through
the outbox exactly as the sales and deal services will record them, and crediting."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from catalogue import service as catalogue_service
from deal_registration.events import DealWon, Line, SaleApproved, SaleReversed
from earnings import programs
from earnings.models import ProgramVersion
from earnings.programs import BaseRate, Rules, Spiff, Tier

__all__ = ["BaseRate", "Rules", "Spiff", "Tier", "programs"]
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent, record_event
from partners.roles import Principal, Role
from schema.context import Services
from tests.support import Tenant

PRODUCTS = (
    # sku, category, list price, margin bp
    ("NW-AP-6E", "wireless", 45_900, 3_500),
    ("NW-FW-500", "security", 459_900, 5_100),
    ("NW-CARE-3Y", "services", 39_900, 7_000),
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


def admin(tenant: Tenant) -> Principal:
    user = tenant.user(Role.VENDOR_ADMIN)
    return Principal(vendor_id=tenant.vendor.id, role=Role.VENDOR_ADMIN, user_id=user.id)


def finance(tenant: Tenant) -> Principal:
    user = tenant.user(Role.FINANCE)
    return Principal(vendor_id=tenant.vendor.id, role=Role.FINANCE, user_id=user.id)


def principal_of(tenant: Tenant, role: Role, partner_index: int = 0) -> Principal:
    user = tenant.user(role, partner_index)
    return Principal(
        vendor_id=tenant.vendor.id, role=role, user_id=user.id, partner_id=user.partner_id
    )


async def seed_products(db: Database, clock: Clock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await begin_write(session)
        for sku, category, price, margin in PRODUCTS:
            await catalogue_service.upsert_product(
                session, admin(tenant), clock, sku=sku, name=sku, list_price_minor=price,
                currency="USD", category=category, margin_rate_bp=margin,
            )  # fmt: skip


async def make_program(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    rules: Rules,
    *,
    name: str = "Partner Rewards",
    effective_from: datetime | None = None,
) -> ProgramVersion:
    async with db.transaction() as session:
        return await programs.create_program(
            session, admin(tenant), clock, name=name, currency="USD", rules=rules,
            effective_from=effective_from or clock.now() - timedelta(days=365),
        )  # fmt: skip


async def record(
    db: Database, clock: Clock, tenant: Tenant, event: Any, aggregate_id: uuid.UUID
) -> OutboxEvent:
    async with db.transaction() as session:
        return await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=event.type,
            aggregate_id=aggregate_id, payload=event.to_payload(),
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
    claim_id = uuid.uuid4()
    rep_user = tenant.user(Role.PARTNER_REP, partner_index) if rep else None
    event = SaleApproved(
        claim_id=claim_id,
        partner_id=tenant.partners[partner_index].id,
        rep_user_id=rep_user.id if rep_user else None,
        region=region,
        currency="USD",
        amount_minor=amount_minor,
        lines=lines or [],
        sold_at=sold_at or clock.now(),
        approved_at=clock.now(),
    )
    return await record(db, clock, tenant, event, claim_id)


async def reversal(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    original: OutboxEvent,
    amount_minor: int | None = None,
    reason: str = "refund",
) -> OutboxEvent:
    sold = SaleApproved.parse(original.payload)
    event = SaleReversed(
        claim_id=sold.claim_id,
        partner_id=sold.partner_id,
        rep_user_id=sold.rep_user_id,
        region=sold.region,
        currency=sold.currency,
        amount_minor=sold.amount_minor if amount_minor is None else amount_minor,
        reverses_event_id=original.id,
        reason=reason,
        lines=sold.lines,
        sold_at=sold.sold_at,
        reversed_at=clock.now(),
    )
    return await record(db, clock, tenant, event, sold.claim_id)


async def deal_won(
    db: Database, clock: Clock, tenant: Tenant, amount_minor: int, *, partner_index: int = 0
) -> OutboxEvent:
    registration_id = uuid.uuid4()
    event = DealWon(
        registration_id=registration_id,
        partner_id=tenant.partners[partner_index].id,
        rep_user_id=tenant.user(Role.PARTNER_REP, partner_index).id,
        region="EMEA",
        currency="USD",
        amount_minor=amount_minor,
        won_at=clock.now(),
    )
    return await record(db, clock, tenant, event, registration_id)


async def credit_all(services: Services) -> int:
    """Run the outbox as the application does after a commit."""
    return await services.outbox.dispatch_pending()
