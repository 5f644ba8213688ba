"""Live feeds across Redis faults: a real uvicorn process on a Redis of the test's own
(the embedded one, which keeps its data, and an external redis-server without
persistence, whose restart loses everything), killed and started again under open
websocket subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import START_REVIEW, SUBMIT, submit_input
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, approve_sale, create_contest, dispatch, gid
from tests.private_redis import RedisUnderTest
from tests.processes import api_process
from tests.support import GQL, WSClient, eventually, ws_client

pytestmark = pytest.mark.slow

BOARD = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score participant { name } } }
}"""
CLAIMS = "subscription { saleClaimStateChanged { id state } }"
EARNINGS = "subscription { earningsChanged { earned { amountMinor } } }"
DEALS = "subscription { dealRegistrationStatusChanged { registrationId status } }"
LEADERBOARD = "query($id: ID!) { leaderboard(contestId: $id) { version } }"
APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { state } userErrors { code } } }"""


@contextlib.asynccontextmanager
async def only_the_process_dispatches(services: Services) -> AsyncIterator[None]:
    """The test run's own app dispatches from the same database to another Redis: hold it,
    so the outbox is applied by the process under test (to the Redis under test)."""
    async with services.outbox.paused():
        yield


async def next_data(client: WSClient, field: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.data())[field]
    return data


async def errors_of(client: WSClient) -> list[dict[str, Any]]:
    message = await client.receive()
    if message["type"] == "error":
        errors = message["payload"]
        errors = errors if isinstance(errors, list) else [errors]
    else:
        assert message["type"] in ("next", "data"), message
        errors = message["payload"].get("errors") or []
    return list(errors)


async def post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip
    result: dict[str, Any] = response.json()
    return result


async def until_rows(client: WSClient, scores: list[int], at_least: int = 0) -> dict[str, Any]:
    """Board pushes until the rows have these scores; every version on the way is at least
    ``at_least`` and never lower than the one before."""
    while True:
        update = await next_data(client, "leaderboardChanged")
        assert update["version"] >= at_least, (at_least, update)
        at_least = update["version"]
        if sorted(r["score"] for r in update["rows"]) == sorted(scores):
            return update


async def test_open_subscriptions_resume_with_current_state_after_redis_returns(
    own_redis: RedisUnderTest, settings: Settings, services: Services, gql: GQL, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    await seed_registry(db, clock, tenant, 10, settle=False)
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now() - timedelta(days=1)))
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP, 0)
    vendor = gql.token(tenant.user(Role.VENDOR_ADMIN))
    manager = gql.token(tenant.user(Role.CHANNEL_MANAGER))

    async with (
        only_the_process_dispatches(services),
        api_process(settings, REDIS_URL=own_redis.url, REDIS_CLUSTER="false") as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        contest = await create_contest(db, clock, tenant)
        contest_id = gid("Contest", contest.id)
        await approve_sale(db, clock, tenant, partner=1, amount=100_00)
        async with (
            ws_client(address, vendor) as board,
            ws_client(address, vendor, "graphql-ws") as legacy_board,
            ws_client(address, gql.token(rep)) as claims,
            ws_client(address, gql.token(tenant.user(Role.PARTNER_ADMIN, 0))) as earnings,
            ws_client(address, gql.token(rep)) as deals,
        ):
            await deals.subscribe(DEALS, {})
            await board.subscribe(BOARD, {"id": contest_id})
            await legacy_board.subscribe(BOARD, {"id": contest_id})
            await claims.subscribe(CLAIMS, {})
            await earnings.subscribe(EARNINGS, {})
            before = await until_rows(board, [100_00])
            legacy = await until_rows(legacy_board, [100_00])
            assert (await next_data(earnings, "earningsChanged"))["earned"]["amountMinor"] == 0
            claim_of = {"input": claim_input(["SN000001"], clock)}
            created = await post(http, CREATE, claim_of, gql.token(rep))
            claim = created["data"]["saleClaimCreate"]["saleClaim"]
            assert (await next_data(claims, "saleClaimStateChanged"))["id"] == claim["id"]
            submitted = await post(http, SUBMIT, {"input": submit_input(clock)}, gql.token(rep))
            deal = submitted["data"]["dealRegistrationSubmit"]["dealRegistration"]["id"]
            assert (await next_data(deals, "dealRegistrationStatusChanged"))[
                "status"
            ] == "SUBMITTED"

            own_redis.kill()
            # The claim is approved and the deal taken into review while Redis is down
            # (both commit in SQL; the board, earnings and notices wait in the outbox).
            approved = await post(http, APPROVE, {"input": {"id": claim["id"]}}, manager)
            assert approved["data"]["saleClaimApprove"]["userErrors"] == [], approved
            review = await post(http, START_REVIEW, {"input": {"id": deal}}, manager)
            assert review["data"]["dealRegistrationStartReview"]["userErrors"] == [], review

            # Unready meanwhile: Redis unreachable, live feeds not subscribed.
            async def down() -> bool:
                response = await http.get("/readyz")
                checks = response.json()["checks"]
                return response.status_code == 503 and checks["live"] != "ok"

            await eventually(down, within=10)
            # Down for longer than the reader used to wait before giving up (0.5 s).
            await asyncio.sleep(3)
            own_redis.start()
            await own_redis.wait_ready()

            # Ready again once the process hears its live feeds (tests/infra/
            # test_readiness_live.py shows the state in between: PING answers, not yet).
            async def ready() -> bool:
                response = await http.get("/readyz")
                live = response.json()["checks"]["live"]
                return response.status_code == 200 and live == "ok"

            await eventually(ready, within=15)

            # Every open subscription resumes with the current state; versions only rise
            # (the external Redis came back empty: the board was rebuilt from SQL).
            after = await until_rows(board, [100_00, 150_00], at_least=before["version"])
            assert after["version"] > before["version"]
            await until_rows(legacy_board, [100_00, 150_00], at_least=legacy["version"])
            while (await next_data(claims, "saleClaimStateChanged"))["state"] != "APPROVED":
                pass
            # The resumed state may come before the dispatcher has credited the approval
            # (it waited for Redis too): then 0 again, and the credit follows.
            while (await next_data(earnings, "earningsChanged"))["earned"]["amountMinor"] == 0:
                pass
            while True:
                change = await next_data(deals, "dealRegistrationStatusChanged")
                if (change["registrationId"], change["status"]) == (deal, "UNDER_REVIEW"):
                    break

            # A read serves the current version, never the one from before the loss.
            read = await post(http, LEADERBOARD, {"id": contest_id}, vendor)
            assert read["data"]["leaderboard"]["version"] >= after["version"], read

            # A change made now is pushed: heard through the process's new subscription.
            await approve_sale(db, clock, tenant, partner=0, amount=1)
            await until_rows(board, [100_00, 150_01], at_least=after["version"])


async def test_while_redis_is_down_reads_and_new_subscriptions_answer_a_coded_error(
    settings: Settings, services: Services, gql: GQL, db: Database, clock: OffsetClock,
    tenant: Tenant, tmp_path: Path,
) -> None:  # fmt: skip
    own_redis = RedisUnderTest("external", tmp_path)
    own_redis.start()
    await seed_registry(db, clock, tenant, 10, settle=False)
    rep = tenant.user(Role.PARTNER_REP, 0)
    vendor = gql.token(tenant.user(Role.VENDOR_ADMIN))
    try:
        async with (
            only_the_process_dispatches(services),
            api_process(settings, REDIS_URL=own_redis.url, REDIS_CLUSTER="false") as address,
            httpx.AsyncClient(base_url=f"http://{address}") as http,
        ):
            contest = await create_contest(db, clock, tenant)
            contest_id = gid("Contest", contest.id)
            claim_of = {"input": claim_input(["SN000001"], clock)}
            created = await post(http, CREATE, claim_of, gql.token(rep))
            claim = created["data"]["saleClaimCreate"]["saleClaim"]
            assert (await http.get("/readyz")).json()["checks"]["redis"] == "ok"

            own_redis.kill()

            # /readyz names what is down.
            async def redis_reported_down() -> bool:
                response = await http.get("/readyz")
                return response.status_code == 503 and response.json()["checks"]["redis"] != "ok"

            await eventually(redis_reported_down, within=10)

            # Reads that need Redis: a coded error with a retry hint, not a masked one.
            async def read_is_unavailable() -> bool:
                errors = (await post(http, LEADERBOARD, {"id": contest_id}, vendor)).get("errors")
                if not errors:
                    return False
                assert errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", errors
                assert errors[0]["extensions"]["retryAfterSeconds"] > 0
                # At the field, as every field error (its locations were left out).
                assert errors[0]["path"] == ["leaderboard"], errors
                assert errors[0]["locations"] == [{"line": 1, "column": 19}], errors
                return True

            await eventually(read_is_unavailable, within=10)

            # A new subscription gets a coded error frame, on either protocol, for every
            # feed, at its field (the leaderboard's on the fast path, the others on
            # strawberry's, the legacy protocol's board on strawberry's too).
            for protocol in ("graphql-transport-ws", "graphql-ws"):
                for token, query, variables, field, at in (
                    (vendor, BOARD, {"id": contest_id}, "leaderboardChanged", (3, 3)),
                    (gql.token(rep), CLAIMS, {}, "saleClaimStateChanged", (1, 16)),
                    (
                        gql.token(tenant.user(Role.PARTNER_ADMIN, 0)), EARNINGS, {},
                        "earningsChanged", (1, 16),
                    ),
                ):  # fmt: skip
                    async with ws_client(address, token, protocol) as late:
                        await late.subscribe(query, variables)
                        [error] = await errors_of(late)
                        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", query
                        assert error["path"] == [field], error
                        line, column = at
                        assert error["locations"] == [{"line": line, "column": column}], error

            # Nothing is lost: an approval made now shows on the board once Redis is back.
            approve = {"input": {"id": claim["id"]}}
            approved = await post(
                http, APPROVE, approve, gql.token(tenant.user(Role.CHANNEL_MANAGER))
            )
            assert approved["data"]["saleClaimApprove"]["userErrors"] == [], approved
            own_redis.start()
            await own_redis.wait_ready()
            board = "query($id: ID!) { leaderboard(contestId: $id) { edges { node { score } } } }"

            async def approval_on_the_board() -> bool:
                read = await post(http, board, {"id": contest_id}, vendor)
                if "errors" in read:
                    return False
                scores = [e["node"]["score"] for e in read["data"]["leaderboard"]["edges"]]
                return scores == [150_00]

            await eventually(approval_on_the_board, within=15)
    finally:
        own_redis.stop()


async def test_a_board_redis_lost_never_goes_back_to_an_older_version_or_page(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A flush (or a restart without data) of this run's keys under a process that has
    the board's pages cached and heard its versions."""
    contest = await create_contest(db, clock, tenant)
    contest_id = gid("Contest", contest.id)
    query = """query($id: ID!) { leaderboard(contestId: $id) {
      version edges { node { score } } } }"""
    vendor = tenant.user(Role.VENDOR_ADMIN)
    seen = 0

    async def shows(scores: list[int]) -> bool:
        nonlocal seen
        board = (await gql.data(query, {"id": contest_id}, as_user=vendor))["leaderboard"]
        assert board["version"] >= seen, (seen, board)
        seen = board["version"]
        return [e["node"]["score"] for e in board["edges"]] == scores

    for amount in (10, 20):
        await approve_sale(db, clock, tenant, partner=0, amount=amount)
        await dispatch(services)
    await eventually(lambda: shows([30]))

    async for key in services.redis.scan_iter(match=services.keys("*"), count=1000):
        await services.redis.delete(key)

    total = 0
    for amount in (1, 2, 4, 8):
        total += amount
        await approve_sale(db, clock, tenant, partner=1, amount=amount)
        await dispatch(services)
        expected = sorted([30, total], reverse=True)
        await eventually(lambda expected=expected: shows(expected))
