"""Demo contests, and a stream of demo sale approvals for `channelboard simulate`."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from deal_registration.events import Line, SaleApproved
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from leaderboards import service
from leaderboards.models import Contest, Metric, RankingStyle, VisibilityMode
from partners.models import Partner, User, Vendor
from partners.roles import Principal, Role

DEMO_CONTEST = "Northwind Q4 Sprint"
WEEKLY_CONTEST = "Weekly units race"


async def seed(session: AsyncSession, clock: Clock, vendor: Vendor) -> list[Contest]:
    """Two live contests (idempotent): revenue over 30 days, and a weekly units race in
    Europe/Berlin with an anonymised top 3 for partners."""
    admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
    now = clock.now()
    made = []
    for name, extra in (
        (DEMO_CONTEST, {"prizes": [{"from_rank": 1, "to_rank": 1, "prize": "Team trip"}]}),
        (
            WEEKLY_CONTEST,
            {
                "metric": Metric.UNITS, "recurrence": "FREQ=WEEKLY", "time_zone": "Europe/Berlin",
                "ranking_style": RankingStyle.FIRST_TO_REACH,
                "visibility": VisibilityMode.TOP_N, "visible_top_n": 3, "anonymise": True,
            },
        ),
    ):  # fmt: skip
        found = (
            await session.exec(
                select(Contest).where(Contest.vendor_id == vendor.id, Contest.name == name)
            )
        ).first()
        if found is None:
            settings = service.ContestSettings(
                name=name, starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30),
                description="Demo contest: run `channelboard simulate` and watch it move.",
                **extra,
            )  # fmt: skip
            found = await service.create_contest(session, admin, clock, settings=settings)
            found = await service.publish_contest(session, admin, clock, contest_id=found.id)
        made.append(found)
    return made


async def approve_demo_sale(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    partner: Partner,
    rep: User | None,
    product: Product,
    units: int,
) -> OutboxEvent:
    """Record an approved sale the way the sale-claim service does (a SaleApproved outbox
    event). When sale claims land, point this at the claim service's approve instead."""
    now = clock.now()
    amount = product.list_price_minor * units
    sale = SaleApproved(
        claim_id=uuid.uuid4(), partner_id=partner.id, rep_user_id=rep.id if rep else None,
        region=partner.region, currency=product.currency, amount_minor=amount,
        lines=[Line(sku=product.sku, units=units, amount_minor=amount)],
        sold_at=now - timedelta(days=random.randint(0, 3)), approved_at=now,
    )  # fmt: skip
    return await record_event(
        session, clock, vendor_id=vendor_id, type=SaleApproved.type, aggregate_id=sale.claim_id,
        payload=sale.to_payload(), occurred_at=now,
    )  # fmt: skip


async def simulate_one(db: Database, clock: Clock, vendor: Vendor) -> OutboxEvent | None:
    """One realistic random approval for the vendor's demo partners and products. Reads and
    the write use separate transactions (SQLite cannot upgrade a read transaction to a
    write once another process has written)."""
    async with db.session() as session:
        partners = list(await session.exec(select(Partner).where(Partner.vendor_id == vendor.id)))
        products = list(
            await session.exec(
                select(Product).where(Product.vendor_id == vendor.id, col(Product.active).is_(True))
            )
        )
        if not partners or not products:
            return None
        partner = random.choice(partners)
        reps = list(
            await session.exec(
                select(User).where(User.partner_id == partner.id, User.role == Role.PARTNER_REP)
            )
        )
    async with db.transaction() as session:
        return await approve_demo_sale(
            session, clock, vendor_id=vendor.id, partner=partner,
            rep=random.choice(reps) if reps else None,
            product=random.choice(products), units=random.choice((1, 1, 1, 2, 3, 5, 10)),
        )  # fmt: skip
