"""The demo's forecasts: a threshold, Acme's forecast for next quarter with two revisions
(pre-filled from its registered deals) and Globex's; seeding twice changes nothing."""

from __future__ import annotations

from catalogue import demo as catalogue_demo
from deal_registration.registrations import demo as deals_demo
from forecasts import demo as forecasts_demo
from infra.clock import OffsetClock
from infra.db import Database
from partners import demo as partners_demo
from tests.support import GQL

QUERY = """{ forecasts { edges { node { quarter revision lines { productLine }
  revisions { note } } } } }"""


async def test_the_demo_seeds_forecasts_once(gql: GQL, db: Database, clock: OffsetClock) -> None:
    for _ in range(2):
        async with db.transaction() as session:
            tenancy = await partners_demo.seed(session, clock)
            await catalogue_demo.seed(session, clock, tenancy.vendor)
            await deals_demo.seed(session, clock, tenancy)
            await forecasts_demo.seed(session, clock, tenancy)
    admin = tenancy.users["admin@northwind.example"]
    listed = await gql.data(QUERY, as_user=admin)
    forecasts = sorted((e["node"] for e in listed["forecasts"]["edges"]),
                       key=lambda f: f["revision"])  # fmt: skip
    assert [f["revision"] for f in forecasts] == [1, 2]
    acme = forecasts[1]
    assert [r["note"] for r in acme["revisions"]] == [
        "From the pipeline review", "Firewall refresh at a bank added",
    ]  # fmt: skip
    assert {"networking", "security"} <= {ln["productLine"] for ln in acme["lines"]}
    thresholds = await gql.data("{ concentrationThresholds { totalCount } }", as_user=admin)
    assert thresholds["concentrationThresholds"]["totalCount"] == 1
    own = await gql.data(QUERY, as_user=tenancy.users["admin@acme.example"])
    assert [e["node"]["revision"] for e in own["forecasts"]["edges"]] == [2]
