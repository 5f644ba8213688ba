"""Demo contests (`channelboard simulate` makes them move: deal_registration.sales.simulate)."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from deal_registration.events import Line, SaleApproved
from infra.clock import Clock
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
    """A bare SaleApproved outbox event with no sale claim behind it, for the leaderboard
    benchmark's load generator only (the event stream without the claim path's cost).
    `channelboard simulate` makes real claims: deal_registration.sales.simulate."""
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
