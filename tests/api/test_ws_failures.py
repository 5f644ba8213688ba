"""A websocket whose credential cannot be checked (the database is unreachable) is closed
with a code saying so (1013, try again later), as HTTP answers 503: never dropped without a
close frame (1006), and never mistaken for bad credentials (4403)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import text

from api import migrations
from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.factories import create_contest, create_tenant, gid
from tests.support import close_code, live_server, make_token, ws_client

pytestmark = pytest.mark.slow

UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # nothing listens on port 1


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_authentication_without_a_database_closes_with_1013(
    settings: Settings, clock: OffsetClock, protocol: str
) -> None:
    app = create_app(settings.with_overrides(database_url=UNREACHABLE), clock=clock)
    token = make_token(None)  # well signed: only the user lookup needs the database
    async with app.router.lifespan_context(app), live_server(app) as address:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://{address}/graphql",
                json={"query": "{ me { role } }"},
                headers={"authorization": f"Bearer {token}"},
            )
        assert response.status_code == 503
        async with websockets.connect(
            f"ws://{address}/graphql",
            subprotocols=[protocol],  # type: ignore[list-item]
        ) as ws:
            init = {"Authorization": f"Bearer {token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert await close_code(ws) == 1013


async def test_a_fast_path_failure_answers_a_coded_error(
    settings: Settings, clock: OffsetClock, tmp_path: Path
) -> None:
    """A leaderboard subscription the fast path cannot serve (here: the contest table is gone
    from under a running server) gets a coded error and is logged; it never waits in
    silence (it did: strawberry's own path catches errors, the fast path's escaped into
    the operation task and were dropped). It is told as strawberry's path tells the same
    failure: no data, the masked error at the field, then `complete` (it was an `error`
    message)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'broken.db'}"
    await migrations.upgrade(url)
    db = Database(url)
    try:
        async with db.transaction() as session:
            tenant = await create_tenant(session, clock)
        contest = await create_contest(db, clock, tenant)
        app = create_app(settings.with_overrides(database_url=url), clock=clock)
        token = make_token(tenant.user(Role.PARTNER_REP))
        told = []
        async with app.router.lifespan_context(app), live_server(app) as address:
            async with (
                ws_client(address, f"Bearer {token}") as fast,
                ws_client(address, f"Bearer {token}") as resolver,
            ):
                async with db.engine.begin() as conn:
                    await conn.execute(text("ALTER TABLE contest RENAME TO contest_gone"))
                for client, document in ((fast, BOARD), (resolver, OFF_THE_FAST_PATH)):
                    await client.subscribe(document, {"id": gid(contest)})
                    told.append([await client.receive(), await client.receive()])
        assert told[0] == told[1]
        internal = {
            "message": "Internal error.",
            "locations": [{"line": 1, "column": 26}],  # the field's, on both paths
            "path": ["leaderboardChanged"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
        assert told[0] == [
            {"id": "1", "type": "next", "payload": {"data": None, "errors": [internal]}},
            {"id": "1", "type": "complete"},
        ]
        assert "contest_gone" not in json.dumps(told)  # masked: no SQL, no table names
    finally:
        await db.dispose()


BOARD = "subscription($id: ID!) { leaderboardChanged(contestId: $id) { version rows { rank } } }"
# The same data, left to strawberry's path (a fragment at the field's level).
OFF_THE_FAST_PATH = """subscription($id: ID!) { leaderboardChanged(contestId: $id) {
  version rows { rank } ... on LeaderboardUpdate { version } } }"""
