"""leaderboardChanged over real websockets: the fast path agrees with strawberry's path,
versions, final and cancelled contests, auth; coalescing and slow consumers in the fan-out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette

from api.auth import issue_token
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import repository, service
from leaderboards.closing import close_due
from leaderboards.fanout import Snapshot, Subscriber
from leaderboards.reads import StandingView, viewer_for
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, WSClient, live_server, ws_client

pytestmark = pytest.mark.slow

LIVE = """
subscription($id: ID!, $first: Int) {
  leaderboardChanged(contestId: $id, first: $first) {
    version status final period
    rows { rank score gapToAbove participant { id name isYou } }
    mine: me { ...M rank nemesis { rank participant { name } } }
  }
}
fragment M on Standing { score gapToNext percentile tiedWith tieRule participant { name isYou } }
"""


async def test_fast_path_and_strawberry_path_send_the_same_data(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    token = gql.token(tenant.user(Role.PARTNER_REP, 1))
    variables = {"id": gid(contest), "first": 5}
    async with (
        live_server(app) as address,
        ws_client(address, token) as fast,
        ws_client(address, token, "graphql-ws") as legacy,
    ):
        await fast.subscribe(LIVE, variables)
        await legacy.subscribe(LIVE, variables)
        first_fast, first_legacy = await fast.data(), await legacy.data()
        assert first_fast == first_legacy
        snapshot = first_fast["leaderboardChanged"]
        assert snapshot["mine"]["rank"] == 2
        assert snapshot["mine"]["score"] == 0
        assert [r["score"] for r in snapshot["rows"]] == [300_00]

        await approve_sale(db, clock, tenant, partner=1, amount=500_00)
        await dispatch(services)
        pushed_fast, pushed_legacy = await fast.data(), await legacy.data()
        assert pushed_fast == pushed_legacy
        update = pushed_fast["leaderboardChanged"]
        assert update["version"] > snapshot["version"]
        assert update["mine"]["rank"] == 1
        assert update["mine"]["participant"]["isYou"]
        assert [r["score"] for r in update["rows"]] == [500_00, 300_00]


async def ended_with(client: WSClient) -> list[str]:
    """The codes of the errors an operation ended on: a push of no data but the errors,
    then `complete` (tests/api/test_ws_refusal_shapes.py)."""
    message = await client.receive()
    assert message["type"] == "next", message
    assert message["payload"]["data"] is None, message
    assert await client.receive() == {"id": message["id"], "type": "complete"}
    return [e["extensions"]["code"] for e in message["payload"]["errors"]]


async def test_subscription_errors_and_final_standings(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, other_tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    async with live_server(app) as address:
        # Unknown and invisible contests answer alike.
        stranger = gql.token(other_tenant.user(Role.VENDOR_ADMIN))
        async with ws_client(address, stranger) as client:
            await client.subscribe(LIVE, {"id": gid(contest)})
            assert await ended_with(client) == ["NOT_FOUND"]
        # A bad token never gets a connection.
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with ws_client(address, "not-a-token"):
                pass
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
        token = gql.token(tenant.user(Role.VENDOR_ADMIN))
        async with ws_client(address, token) as client:
            await client.subscribe(LIVE, {"id": gid(contest), "first": 101})
            assert await ended_with(client) == ["PAGE_SIZE_TOO_LARGE"]
            await client.subscribe(LIVE, {"id": gid(contest)})
            assert (await client.data())["leaderboardChanged"]["mine"] is None
            async with db.transaction() as session:
                await service.cancel_contest(
                    session, tenant.principal(Role.VENDOR_ADMIN), clock, contest_id=contest.id
                )
            await dispatch(services)
            assert await ended_with(client) == ["CONTEST_CANCELLED"]
            await client.subscribe(LIVE, {"id": gid(contest)})
            assert await ended_with(client) == ["CONTEST_CANCELLED"]


class Collector:
    """A renderer that records what the fan-out rendered (domain-level tests)."""

    def __init__(self) -> None:
        self.shared_calls = 0

    def shared(self, snapshot: Snapshot) -> Any:
        self.shared_calls += 1
        board = snapshot.board
        return (snapshot.version, [r.score for r in board.rows] if board else [])

    def message(self, sub: Subscriber, shared: Any, me: StandingView | None) -> Any:
        return shared

    def not_found(self) -> Any:
        return "not found"


async def test_changes_are_coalesced_and_slow_consumers_get_only_the_latest(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    fanout = services.fanout
    interval, fanout.interval = fanout.interval, 2.0
    principal = tenant.principal(Role.VENDOR_ADMIN)
    viewer = viewer_for(principal, contest)
    renderer = Collector()
    try:
        async with (
            fanout.subscribe(contest, viewer, first=3, renderer=renderer) as fast,
            fanout.subscribe(contest, viewer, first=3, renderer=renderer) as slow,
        ):
            assert (await fast.next())[1] == []
            feed = fanout.feeds[contest.id]
            before = feed.refreshes
            for _ in range(20):
                await approve_sale(db, clock, tenant, partner=0, amount=1)
            await dispatch(services)  # twenty credits, twenty notices
            seen = [await fast.next()]
            while seen[-1][1] != [20]:
                seen.append(await fast.next())
            # The first change is pushed at once, the other nineteen fold into one more.
            assert feed.refreshes - before <= 3
            assert len(seen) <= 3
            # The slow subscriber never read: it holds one message, the latest.
            latest = await slow.next()
            assert latest == seen[-1]
            assert slow.latest is None
            # Rendered once per change for the group, not once per subscriber.
            assert renderer.shared_calls <= 1 + (feed.refreshes - before)
    finally:
        fanout.interval = interval


async def test_a_slow_websocket_client_does_not_delay_others(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with (
        live_server(app) as address,
        ws_client(address, token) as reader,
        ws_client(address, token) as sleeper,
    ):
        await reader.subscribe(LIVE, {"id": gid(contest)})
        await sleeper.subscribe(LIVE, {"id": gid(contest)})
        await reader.data()
        for i in range(5):
            await approve_sale(db, clock, tenant, partner=i % 2, amount=100)
            await dispatch(services)
            while True:  # the reader keeps up while the sleeper reads nothing
                rows = (await reader.data())["leaderboardChanged"]["rows"]
                if sum(r["score"] for r in rows) == 100 * (i + 1):
                    break
        # The sleeper finally reads: the latest state arrives without it blocking anyone.
        messages = [await sleeper.data()]
        while sum(r["score"] for r in messages[-1]["leaderboardChanged"]["rows"]) != 500:
            messages.append(await sleeper.data())
        versions = [m["leaderboardChanged"]["version"] for m in messages]
        assert versions == sorted(versions)


async def test_a_finished_contest_sends_final_standings_then_completes(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=250)
    await dispatch(services)
    clock.advance(timedelta(hours=2))
    # PyJWT checks `iat` against the wall clock: issue at the real time, valid past the move.
    token = issue_token(
        gql.settings.jwt, tenant.user(Role.PARTNER_REP, 0), ttl=timedelta(hours=5),
        now=datetime.now(UTC),
    )  # fmt: skip
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        async with live_server(app) as address, ws_client(address, token, protocol) as client:
            await client.subscribe(LIVE, {"id": gid(contest)})
            # Ended: the standings are final once frozen (at once, or within seconds).
            pushes = await _until_final(client)
            assert {p["status"] for p in pushes} == {"FINISHED"}
            final = pushes[-1]
            assert [r["score"] for r in final["rows"]] == [250]
            assert final["mine"]["rank"] == 1
            assert (await client.receive())["type"] == "complete"


async def _until_final(client: Any) -> list[dict[str, Any]]:
    """Pushes up to and including the final one."""
    seen = [(await client.data())["leaderboardChanged"]]
    while not seen[-1]["final"]:
        seen.append((await client.data())["leaderboardChanged"])
    return seen


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_open_subscription_receives_the_end_then_completes(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, protocol: str,
) -> None:  # fmt: skip
    # graphql-transport-ws takes the fast path, graphql-ws strawberry's own.
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=250)
    await dispatch(services)
    token = issue_token(
        gql.settings.jwt, tenant.user(Role.PARTNER_REP, 1), ttl=timedelta(hours=5),
        now=datetime.now(UTC),
    )  # fmt: skip
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        await client.subscribe(LIVE, {"id": gid(contest)})
        live = (await client.data())["leaderboardChanged"]
        assert (live["final"], live["status"]) == (False, "LIVE")
        await approve_sale(db, clock, tenant, partner=1, amount=100)
        await dispatch(services)
        while len(live["rows"]) < 2:
            live = (await client.data())["leaderboardChanged"]
        assert [r["score"] for r in live["rows"]] == [250, 100]

        clock.advance(timedelta(hours=2))  # no event: the end is noticed by the clock alone
        pushes = await _until_final(client)
        final = pushes[-1]
        assert (final["final"], final["status"]) == (True, "FINISHED")
        assert [r["score"] for r in final["rows"]] == [250, 100]
        assert final["mine"]["rank"] == 2
        versions = [live["version"], *(p["version"] for p in pushes)]
        assert versions == sorted(versions)
        assert final["version"] > live["version"]
        assert (await client.receive())["type"] == "complete"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_open_subscription_moves_to_the_next_period_at_its_boundary(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, protocol: str,
) -> None:  # fmt: skip
    now = clock.now()
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    clock.advance(midnight - now - timedelta(minutes=5))  # five minutes before a new day
    contest = await create_contest(
        db, clock, tenant, recurrence="FREQ=DAILY",
        starts_at=midnight - timedelta(days=2), ends_at=midnight + timedelta(days=5),
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=0, amount=250)
    await dispatch(services)
    # The day before today is closed before anyone watches: frozen by the feed's first
    # pass instead, its new version would be announced, and that push of today's board
    # could come after the first one, where this test looks for tomorrow's.
    assert await close_due(services.leaderboards, contest.id) is True
    token = issue_token(
        gql.settings.jwt, tenant.user(Role.PARTNER_REP, 0), ttl=timedelta(days=2),
        now=datetime.now(UTC),
    )  # fmt: skip
    today = (midnight - timedelta(days=1)).date().isoformat()
    tomorrow = midnight.date().isoformat()
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        await client.subscribe(LIVE, {"id": gid(contest)})
        live = (await client.data())["leaderboardChanged"]
        assert (live["period"], [r["score"] for r in live["rows"]]) == (today, [250])

        clock.advance(timedelta(minutes=10))  # past midnight, with no event
        # A notice heard after midnight but before the day's close (as a late one on a
        # cluster's sharded pub/sub is): the next day's board waits for the close, which
        # freezes today and announces a new version.
        await services.leaderboards.notify(contest.id, live["version"])
        pushed = (await client.data())["leaderboardChanged"]
        assert (pushed["period"], pushed["rows"], pushed["final"]) == (tomorrow, [], False)
        assert pushed["mine"]["score"] == 0
        assert pushed["version"] > live["version"]
        async with db.session() as session:
            assert today in await repository.frozen_periods(session, contest.id)

        # The new period scores live; the closed one was frozen as it ended.
        await approve_sale(db, clock, tenant, partner=0, amount=40)
        await dispatch(services)
        update = pushed
        while not update["rows"]:  # (the rollover's own notice may still be in flight)
            update = (await client.data())["leaderboardChanged"]
        assert ([r["score"] for r in update["rows"]], update["period"]) == ([40], tomorrow)
        assert update["version"] > pushed["version"]
    async with db.session() as session:
        assert today in await repository.frozen_periods(session, contest.id)


async def test_a_subscriber_who_came_while_the_contest_froze_gets_the_final_push(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The closer froze the ended contest's last period (a new board version) and has not
    yet marked the contest frozen when a second subscriber comes: its first push is that
    version, not final. The contest's freeze keeps the version; the push after it must be
    rendered anew, final, not taken from the render of that version before (it said
    `final: false`, and `complete` followed: no final push)."""
    from leaderboards import rebuild  # noqa: PLC0415

    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=250)
    await dispatch(services)
    clock.advance(timedelta(hours=2))
    periods_frozen, go = asyncio.Event(), asyncio.Event()
    real = rebuild.freeze_period

    async def freeze_then_wait(*args: Any, **kwargs: Any) -> Any:
        frozen = await real(*args, **kwargs)
        periods_frozen.set()
        await go.wait()  # the contest is marked frozen after this returns
        return frozen

    monkeypatch.setattr(rebuild, "freeze_period", freeze_then_wait)
    token = issue_token(
        gql.settings.jwt, tenant.user(Role.PARTNER_REP, 0), ttl=timedelta(hours=5),
        now=datetime.now(UTC),
    )  # fmt: skip
    async with (
        live_server(app) as address,
        ws_client(address, token) as first,
        ws_client(address, token) as second,
    ):
        await first.subscribe(LIVE, {"id": gid(contest)})  # its board's end is due: closing
        assert (await first.data())["leaderboardChanged"]["final"] is False
        await asyncio.wait_for(periods_frozen.wait(), 15)
        await second.subscribe(LIVE, {"id": gid(contest)})
        assert (await second.data())["leaderboardChanged"]["final"] is False
        go.set()
        for client in (first, second):
            pushes = await _until_final(client)
            assert pushes[-1]["final"] is True
            assert [r["score"] for r in pushes[-1]["rows"]] == [250]
            assert (await client.receive())["type"] == "complete"
