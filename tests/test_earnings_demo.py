"""The demo data gives a new user realistic numbers and explanations right away."""

from __future__ import annotations

from catalogue import demo as catalogue_demo
from earnings import demo as earnings_demo
from infra.clock import OffsetClock
from infra.db import Database
from partners import demo as partners_demo
from schema.context import Services
from tests.support import GQL

QUERY = """{ earnings { earned { amount } tier { currentTier rate nextTier }
  explanations { kind text } }
  payouts { edges { node { status total { amount } holds { explanation } } } } }"""


async def test_demo_history_for_acme_and_globex(
    gql: GQL, db: Database, clock: OffsetClock, services: Services
) -> None:
    for _ in range(2):  # seeding twice changes nothing
        async with db.transaction() as session:
            tenancy = await partners_demo.seed(session, clock)
            await catalogue_demo.seed(session, clock, tenancy.vendor)
            await earnings_demo.seed(session, clock, tenancy)
    await services.outbox.dispatch_pending()  # the recorded events are already credited
    acme = await gql.data(QUERY, as_user=tenancy.users["admin@acme.example"])
    statuses = [e["node"]["status"] for e in acme["payouts"]["edges"]]
    assert "PAID" in statuses
    assert acme["earnings"]["tier"]["currentTier"] in ("Silver", "Gold")
    kinds = {e["kind"] for e in acme["earnings"]["explanations"]}
    assert kinds & {"EARNINGS_ROSE", "EARNINGS_FELL", "EARNINGS_UNCHANGED"}
    globex = await gql.data(QUERY, as_user=tenancy.users["admin@globex.example"])
    assert {e["node"]["status"] for e in globex["payouts"]["edges"]} == {"HELD"}
    hold_texts = [e["text"] for e in globex["earnings"]["explanations"] if e["kind"] == "HOLD"]
    assert hold_texts
    assert all("tax form" in t for t in hold_texts)
