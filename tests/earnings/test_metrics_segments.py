"""`earningsMetrics(segmentBy:)` (issue 14, item 5): revenue by partner region, product line
(catalogue category, split across a source's lines) and partner group, each with its share
of the total and its top partner's share; vendor roles only, a channel manager's segments
hold only its assigned partners."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from deal_registration.events import Line
from infra.clock import OffsetClock
from infra.db import Database
from partners.models import Partner
from partners.roles import Role
from schema.context import Services
from tests.factories import Product, Tenant, add_products, approve_sale, dispatch, reverse_sale
from tests.support import GQL, error_codes

METRICS = """query($by: EarningsSegmentation, $p: EarningsPeriodInput) {
  earningsMetrics(segmentBy: $by, period: $p) { segmentedBy total { revenue { amountMinor } }
  segments { key label revenue { amountMinor } earnings { amountMinor } partners shareBp
             concentrationBp } } }"""


async def test_revenue_by_region_product_line_and_group(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (
            Product("NW-ROUTER-X1", 60_000, category="Routing"),
            Product("NW-SWITCH-48", 40_000, category="Switching"),
            Product("NW-AP-6E", 50_000),
        ))  # fmt: skip
        await session.exec(
            update(Partner).where(Partner.id == tenant.partners[1].id).values(region="NA")
        )  # type: ignore[call-overload]
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(
        """mutation { partnerGroupCreate(input: {name: "Europe",
           rule: [{attribute: "region", op: "IN", values: ["EMEA"]}]}) { partnerGroup { id } } }""",
        as_user=admin,
    )
    sale = await approve_sale(db, clock, tenant, partner=0, amount=1_000_00, lines=[
        Line("NW-ROUTER-X1", 1, 600_00), Line("NW-SWITCH-48", 1, 400_00)])  # fmt: skip
    await approve_sale(db, clock, tenant, partner=1, amount=500_00,
                       lines=[Line("NW-AP-6E", 1, 500_00)])  # fmt: skip
    await reverse_sale(db, clock, tenant, sale, amount=100_00)  # names the sale's lines
    while await dispatch(services):
        pass
    period = {"start": (clock.now() - timedelta(days=1)).isoformat(),
              "end": (clock.now() + timedelta(days=1)).isoformat()}  # fmt: skip

    async def segments(by: str, role: Role = Role.VENDOR_ADMIN) -> list[tuple[Any, ...]]:
        data = await gql.data(METRICS, {"by": by, "p": period}, as_user=tenant.user(role))
        metrics = data["earningsMetrics"]
        assert metrics["segmentedBy"] == by
        return [
            (s["label"], s["revenue"]["amountMinor"], s["shareBp"], s["concentrationBp"],
             s["partners"], s["earnings"])
            for s in metrics["segments"]
        ]  # fmt: skip

    assert await segments("REGION") == [
        ("EMEA", 90_000, 6_429, 10_000, 1, {"amountMinor": 0}),
        ("NA", 50_000, 3_571, 10_000, 1, {"amountMinor": 0}),
    ]  # fmt: skip
    # The 100.00 reversal splits 60/40 across the sale's lines.
    assert await segments("PRODUCT_LINE") == [
        ("Routing", 54_000, 3_857, 10_000, 1, None),
        ("Other", 50_000, 3_571, 10_000, 1, None),
        ("Switching", 36_000, 2_571, 10_000, 1, None),
    ]  # fmt: skip
    assert await segments("GROUP") == [("Europe", 90_000, 6_429, 10_000, 1, {"amountMinor": 0})]
    assert await segments("REGION", Role.CHANNEL_MANAGER) == [
        ("EMEA", 90_000, 10_000, 10_000, 1, {"amountMinor": 0}),
    ]  # fmt: skip
    plain = await gql.data(METRICS, {"p": period}, as_user=admin)
    assert plain["earningsMetrics"]["segments"] == []
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        refused = await gql(METRICS, {"by": "REGION"}, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"]
