"""Two real uvicorn processes sharing the database and Redis: a change made through one
reaches a websocket subscriber connected to the other (Redis pub/sub)."""

from __future__ import annotations

import httpx
import pytest

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.processes import api_process
from tests.support import GQL, ws_client

pytestmark = pytest.mark.slow

LIVE = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score participant { name } } }
}"""


async def test_a_change_through_process_a_reaches_a_subscriber_on_process_b(
    settings: Settings, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=900_00, units=1)
    await approve_sale(db, clock, tenant, partner=1, amount=100_00, units=5)
    await dispatch(services)
    contest_id = gid("Contest", contest.id)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with api_process(settings) as a, api_process(settings) as b:
        async with ws_client(b, token) as on_b, ws_client(a, token) as on_a:
            await on_b.subscribe(LIVE, {"id": contest_id})
            await on_a.subscribe(LIVE, {"id": contest_id})
            first = (await on_b.data())["leaderboardChanged"]
            assert [r["score"] for r in first["rows"]] == [900_00, 100_00]
            await on_a.data()

            # Through process A's GraphQL API: rank by units instead (re-ranked from the ledger).
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://{a}/graphql",
                    json={
                        "query": "mutation($i: ContestUpdateInput!) { contestUpdate(input: $i) "
                        "{ contest { version } userErrors { code } } }",
                        "variables": {"i": {"id": contest_id, "metric": "UNITS"}},
                    },
                    headers={"authorization": f"Bearer {token}"},
                )
            assert response.json()["data"]["contestUpdate"]["userErrors"] == []
            while True:
                update = (await on_b.data())["leaderboardChanged"]
                if [r["score"] for r in update["rows"]] == [5, 1]:
                    break
            assert update["version"] > first["version"]
            assert update["rows"][0]["participant"]["name"] == tenant.partners[1].name

            # A sale approved elsewhere (recorded here, dispatched by whichever process
            # polls first) reaches both processes' subscribers.
            await approve_sale(db, clock, tenant, partner=0, amount=1, units=10)
            for client in (on_b, on_a):
                while True:
                    rows = (await client.data())["leaderboardChanged"]["rows"]
                    if [r["score"] for r in rows] == [11, 5]:
                        break
