"""The demo data gives a new user realistic numbers and explanations right away, whatever
the date it is seeded on (its history is three calendar months, so the day of the month,
month lengths and month boundaries must not change what it shows)."""

from __future__ import annotations

from datetime import datetime

import pytest

from catalogue import demo as catalogue_demo
from earnings import demo as earnings_demo
from infra.clock import OffsetClock
from infra.db import Database
from partners import demo as partners_demo
from schema.context import Services
from tests.support import DEMO_DATES, GQL

QUERY = """{ earnings { earned { amount } tier { currentTier rate nextTier }
  explanations { kind text } }
  payouts { edges { node { status total { amount } holds { explanation } } } } }"""


async def _seed_and_check(gql: GQL, db: Database, clock: OffsetClock, services: Services) -> None:
    for _ in range(2):  # seeding twice changes nothing
        async with db.transaction() as session:
            tenancy = await partners_demo.seed(session, clock)
            await catalogue_demo.seed(session, clock, tenancy.vendor)
            await earnings_demo.seed(session, clock, tenancy, signals=services.claim_signals)
    await services.outbox.dispatch_pending()  # the recorded events are already credited
    acme = await gql.data(QUERY, as_user=tenancy.users["admin@acme.example"])
    # Three ended months: the older two paid, the last one pending (no hold of any kind).
    statuses = sorted(e["node"]["status"] for e in acme["payouts"]["edges"])
    assert statuses == ["PAID", "PAID", "PENDING"]
    assert all(not e["node"]["holds"] for e in acme["payouts"]["edges"])
    assert acme["earnings"]["tier"]["currentTier"] in ("Silver", "Gold")
    kinds = {e["kind"] for e in acme["earnings"]["explanations"]}
    assert kinds & {"EARNINGS_ROSE", "EARNINGS_FELL", "EARNINGS_UNCHANGED"}
    assert "HOLD" not in kinds
    globex = await gql.data(QUERY, as_user=tenancy.users["admin@globex.example"])
    # Three ended months, each held for the missing tax form and nothing else.
    edges = globex["payouts"]["edges"]
    assert [e["node"]["status"] for e in edges] == ["HELD"] * 3
    assert all(len(e["node"]["holds"]) == 1 for e in edges)
    assert all("tax form" in e["node"]["holds"][0]["explanation"] for e in edges)
    hold_texts = [e["text"] for e in globex["earnings"]["explanations"] if e["kind"] == "HOLD"]
    assert len(hold_texts) == 3
    assert all("tax form" in t for t in hold_texts)


async def test_demo_history_for_acme_and_globex(
    gql: GQL, db: Database, clock: OffsetClock, services: Services
) -> None:
    await _seed_and_check(gql, db, clock, services)


@pytest.mark.slow
@pytest.mark.parametrize("when", DEMO_DATES, ids=lambda d: f"{d:%Y-%m-%dT%H:%M}")
async def test_demo_history_is_the_same_on_every_date(
    when: datetime, gql: GQL, db: Database, clock: OffsetClock, services: Services
) -> None:
    clock.freeze(when)
    await _seed_and_check(gql, db, clock, services)
