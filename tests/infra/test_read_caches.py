"""The process-local read caches (infra.cache, leaderboards.pages): hot reads skip SQL and
Redis, and every change is seen at once - in this process, and in another one through
Redis pub/sub - with nothing served from the caches while pub/sub is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import RedisCluster
from sqlmodel import col, update
from starlette.applications import Starlette

from api.settings import Settings
from infra.cache import ReadCache, SingleFlight, TableEpochs
from infra.clock import OffsetClock
from infra.db import UNTRACKED, Database, ReadOnlySessionError
from infra.pubsub import Hub
from infra.redis import connect, is_cluster
from partners.models import Partner, PartnerStatus, User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import (
    WIDGET,
    csv_bytes,
    registry_rows,
)
from tests.factories import Tenant, add_products, approve_sale, create_contest, dispatch, gid
from tests.leaderboards.scenarios import BOARD
from tests.processes import cli_process
from tests.support import (
    GQL,
    drop_pubsub,
    error_codes,
    eventually,
    redis_commands,
    sql_statements,
)

TYPENAME = "{ __typename }"
ME = "{ me { role } }"


async def reason(gql: GQL, token: str) -> str | None:
    payload = await gql(ME, token=token)
    if "errors" not in payload:
        return None
    value: str = payload["errors"][0]["extensions"].get("reason")
    return value


@contextlib.asynccontextmanager
async def other_process(db: Database, services: Services) -> AsyncIterator[Database]:
    """A second Database with its own epochs and Hub on the same Redis: what another API
    process is, as far as the caches can tell."""
    other = Database(db.url)
    redis = connect(_url(services), cluster=is_cluster(services.redis))
    hub = Hub(redis, services.keys)
    await other.epochs.share(hub)
    try:
        yield other
    finally:
        await hub.drain()  # its last notices go out, as a process that stays up sends them
        await hub.close()
        await redis.aclose()
        await other.dispose()


def _url(services: Services) -> str:
    if isinstance(services.redis, RedisCluster):  # any node: the others are discovered
        node = services.redis.get_default_node()
        return f"redis://{node.host}:{node.port}/0"
    kwargs = services.redis.get_connection_kwargs()
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host, port = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


async def deactivated_elsewhere(
    gql: GQL, token: str, user: User, db: Database, services: Services
) -> None:
    """Another process deactivates ``user``; this process must refuse ``token`` soon."""
    async with other_process(db, services) as other:
        async with other.transaction() as session:
            await session.execute(update(User).where(col(User.id) == user.id).values(active=False))

    async def refused() -> bool:
        return await reason(gql, token) == "USER_DEACTIVATED"

    await eventually(refused)


async def test_a_known_token_costs_no_sql(gql: GQL, tenant: Tenant, db: Database) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    assert "errors" not in await gql(ME, token=token)
    with sql_statements(db) as seen:
        assert "errors" not in await gql(TYPENAME, token=token)
    assert seen == []


async def test_deactivation_and_suspension_apply_to_cached_principals(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP)
    admin_token, rep_token = gql.token(admin), gql.token(rep)
    assert await reason(gql, admin_token) is None
    assert await reason(gql, rep_token) is None
    async with db.transaction() as session:
        await session.execute(update(User).where(col(User.id) == admin.id).values(active=False))
    assert await reason(gql, admin_token) == "USER_DEACTIVATED"
    async with db.transaction() as session:
        partner = await session.get(Partner, rep.partner_id)
        assert partner is not None
        partner.status = PartnerStatus.SUSPENDED
        session.add(partner)
    assert await reason(gql, rep_token) == "PARTNER_INACTIVE"


async def test_a_cached_token_still_expires(gql: GQL, tenant: Tenant, clock: OffsetClock) -> None:
    token = gql.token(tenant.user(Role.FINANCE), ttl=timedelta(minutes=5))
    assert await reason(gql, token) is None
    clock.advance(timedelta(minutes=6))
    assert await reason(gql, token) == "TOKEN_EXPIRED"


async def test_revoked_api_key_is_refused_at_once(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    created = await gql.data(
        """mutation { apiKeyCreate(input: {name: "ci", role: VENDOR_ADMIN}) {
             apiKey { id } secret userErrors { code } } }""",
        as_user=admin,
    )
    key = created["apiKeyCreate"]
    assert await reason(gql, key["secret"]) is None
    assert await reason(gql, key["secret"]) is None  # served from the cache
    revoked = await gql.data(
        "mutation($id: ID!) { apiKeyRevoke(input: {id: $id}) { userErrors { code } } }",
        {"id": key["apiKey"]["id"]},
        as_user=admin,
    )
    assert revoked["apiKeyRevoke"]["userErrors"] == []
    assert await reason(gql, key["secret"]) == "INVALID_API_KEY"


async def test_another_process_change_reaches_this_process_cache(
    gql: GQL, tenant: Tenant, db: Database, services: Services
) -> None:
    rep = tenant.user(Role.PARTNER_REP)
    token = gql.token(rep)
    assert await reason(gql, token) is None
    await deactivated_elsewhere(gql, token, rep, db, services)


async def test_caches_survive_a_lost_pubsub_connection(
    gql: GQL, tenant: Tenant, db: Database, services: Services
) -> None:
    rep = tenant.user(Role.PARTNER_REP)
    token = gql.token(rep)
    assert await reason(gql, token) is None
    reconnects = services.hub.reconnects
    await drop_pubsub(services, services.hub)

    async def resubscribed() -> bool:
        return services.hub.reconnects > reconnects and services.hub.subscribed

    await eventually(resubscribed, within=10)
    await deactivated_elsewhere(gql, token, rep, db, services)


async def test_nothing_is_served_while_changes_cannot_be_heard(db: Database) -> None:
    epochs = TableEpochs()  # never shared: another process's change would go unheard
    cache: ReadCache[str, str] = ReadCache(epochs, ("partner",))
    cache.put("a", "Acme", cache.stamp())
    assert cache.get("a") is None
    epochs.hearing = lambda: True  # as when subscribed
    stamp = cache.stamp()
    epochs.changed(["partner"])  # a commit while the value was being read
    cache.put("a", "Acme", stamp)
    assert cache.get("a") is None
    cache.put("a", "Acme", cache.stamp())
    assert cache.get("a") == "Acme"
    epochs.changed_everything()  # the subscription was lost and made again
    assert cache.get("a") is None


async def test_concurrent_misses_of_one_credential_read_the_user_once(
    app: Starlette, tenant: Tenant, db: Database, gql: GQL
) -> None:
    """A burst of requests with one credential whose entry just expired shares one lookup
    (each running its own queued them: p99 of 236-443 ms for `{ __typename }` under wrk)."""
    token = gql.token(tenant.user(Role.PARTNER_REP))
    authenticator = app.state.authenticator
    with sql_statements(db) as seen:
        outcomes = await asyncio.gather(
            *(authenticator.authenticate(f"Bearer {token}") for _ in range(20))
        )
    assert {o.user_id for o in outcomes} == {tenant.user(Role.PARTNER_REP).id}
    assert len([s for s in seen if "FROM user_account" in s]) == 1


async def test_a_shared_load_is_joined_only_while_nothing_changed() -> None:
    epochs = TableEpochs()
    cache: ReadCache[str, str] = ReadCache(epochs, ("partner",))
    flights: SingleFlight[str, str] = SingleFlight(cache)
    loads: list[str] = []
    release = asyncio.Event()

    async def load(value: str) -> str:
        loads.append(value)
        await release.wait()
        if value == "fails":
            raise ConnectionError("the database went away")
        return value

    first = asyncio.create_task(flights.run("a", lambda: load("old")))
    await asyncio.sleep(0)
    joined = asyncio.create_task(flights.run("a", lambda: load("unused")))
    await asyncio.sleep(0)
    epochs.changed(["partner"])  # a commit: a request from now on must read for itself
    fresh = asyncio.create_task(flights.run("a", lambda: load("new")))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, joined, fresh) == ["old", "old", "new"]
    assert loads == ["old", "new"]

    # A failed load is not shared: whoever joined it loads for itself.
    release.clear()
    loads.clear()
    failing = asyncio.create_task(flights.run("b", lambda: load("fails")))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("b", lambda: load("own")))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionError):
        await failing
    assert await follower == "own"
    assert loads == ["fails", "own"]


async def test_leaderboard_pages_come_from_memory_until_the_board_changes(
    app: Starlette,
    gql: GQL,
    tenant: Tenant,
    db: Database,
    clock: OffsetClock,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Entries also expire after 10 s: on a loaded machine the two reads below could
    # straddle that (CI, stop 29: the principal reloaded). Only changes should count here.
    monkeypatch.setattr(app.state.authenticator._principals, "ttl", 3600.0)
    monkeypatch.setattr(services.leaderboards.pages._pages, "ttl", 3600.0)
    contest = await create_contest(db, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP)
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    variables = {"id": gid(contest), "first": 10}
    with redis_commands() as sent:  # a miss: the board's script runs
        first = await gql.data(BOARD, variables, as_user=rep)
    assert "EVALSHA" in sent, sent
    assert [e["node"]["score"] for e in first["leaderboard"]["edges"]] == [10000]
    async with services.outbox.paused():  # no credit attempt in the background meanwhile
        # Pausing waits for the dispatcher's run, which may write to the principal's
        # tables: read once more first, so only the page cache is measured below.
        assert await gql.data(BOARD, variables, as_user=rep) == first
        with sql_statements(db) as seen, redis_commands() as sent:
            again = await gql.data(BOARD, variables, as_user=rep)
        assert again == first
        assert not {"EVALSHA", "EVAL"} & set(sent), sent  # no Redis script ran
        assert seen == []  # nor any SQL

    await approve_sale(db, clock, tenant, partner=1, amount=250_00)
    await dispatch(services)

    async def moved() -> bool:
        board = await gql.data(BOARD, variables, as_user=rep)
        return [e["node"]["score"] for e in board["leaderboard"]["edges"]] == [25000, 10000]

    await eventually(moved)


async def test_renames_and_visibility_changes_show_at_once(
    gql: GQL, tenant: Tenant, db: Database, clock: OffsetClock, services: Services
) -> None:
    contest = await create_contest(db, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP)
    await approve_sale(db, clock, tenant, partner=1, amount=300_00)
    await dispatch(services)
    variables = {"id": gid(contest), "first": 10}
    board = await gql.data(BOARD, variables, as_user=rep)
    other_name = tenant.partners[1].name
    assert board["leaderboard"]["edges"][0]["node"]["participant"]["name"] == other_name

    async with db.transaction() as session:
        await session.execute(
            update(Partner).where(col(Partner.id) == tenant.partners[1].id).values(name="Renamed")
        )
    board = await gql.data(BOARD, variables, as_user=rep)
    assert board["leaderboard"]["edges"][0]["node"]["participant"]["name"] == "Renamed"

    admin = tenant.user(Role.VENDOR_ADMIN)
    updated = await gql.data(
        """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
             userErrors { code } } }""",
        {
            "input": {
                "id": gid(contest),
                "visibility": {"mode": "FULL", "anonymised": True},
            }
        },
        as_user=admin,
    )
    assert updated["contestUpdate"]["userErrors"] == []
    board = await gql.data(BOARD, variables, as_user=rep)
    top = board["leaderboard"]["edges"][0]["node"]["participant"]
    assert top["name"] != "Renamed"
    assert top["id"] is None
    assert error_codes(await gql(BOARD, {"id": gid(contest), "first": 101}, as_user=rep)) == [
        "PAGE_SIZE_TOO_LARGE"
    ]


def memo_hits(app: Starlette) -> int:
    hits: int = app.state.response_memo.hits
    return hits


async def test_a_repeated_read_of_an_unchanged_board_is_answered_from_the_memo(
    app: Starlette, gql: GQL, tenant: Tenant, db: Database, clock: OffsetClock,
    services: Services,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    rep, other_rep = tenant.user(Role.PARTNER_REP), tenant.user(Role.PARTNER_ADMIN)
    variables = {"id": gid(contest), "first": 10}
    await gql.data(BOARD, variables, as_user=rep)  # fills the caches (reads SQL: not kept)
    first = await gql.data(BOARD, variables, as_user=rep)
    hits = memo_hits(app)
    assert await gql.data(BOARD, variables, as_user=rep) == first
    assert memo_hits(app) == hits + 1

    # Another caller, or another question, is never answered from this caller's memo.
    assert await gql.data(BOARD, variables, as_user=other_rep) == first
    mixed = BOARD.replace("leaderboard(", "me { role } leaderboard(")
    await gql.data(mixed, variables, as_user=rep)
    await gql.data(mixed, variables, as_user=rep)
    assert memo_hits(app) == hits + 1

    # The clock alone changes the answer when the contest ends.
    clock.advance(timedelta(hours=2))
    ended = await gql.data(BOARD, variables, as_user=rep)
    assert ended["leaderboard"]["status"] == "FINISHED"
    assert memo_hits(app) == hits + 1


async def test_the_memo_never_answers_for_a_refused_caller(
    gql: GQL, tenant: Tenant, db: Database, clock: OffsetClock, services: Services
) -> None:
    contest = await create_contest(db, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP)
    token = gql.token(rep)
    variables = {"id": gid(contest), "first": 10}
    for _ in range(3):
        assert "errors" not in await gql(BOARD, variables, token=token)
    async with db.transaction() as session:
        await session.execute(update(User).where(col(User.id) == rep.id).values(active=False))
    refused = await gql(BOARD, variables, token=token)
    assert refused["errors"][0]["extensions"]["reason"] == "USER_DEACTIVATED"


@pytest.mark.slow
async def test_a_command_line_import_reaches_a_running_servers_caches_at_once(
    settings: Settings, tenant: Tenant, db: Database, clock: OffsetClock, services: Services,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`channelboard serials import` (like `demo` and `deals expire`) tells the running
    server which tables it changed, rather than leaving its caches to the TTL."""
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))
    shipped = tmp_path / "shipped.csv"
    shipped.write_bytes(csv_bytes(registry_rows(tenant, clock, 4)))
    before = services.db.epochs.stamp(("serial",))
    args = ("serials", "import", str(shipped), "--vendor", tenant.vendor.slug)
    async with cli_process(settings, *args) as command:
        output, _ = await asyncio.wait_for(command.communicate(), 120)
    assert command.returncode == 0, output.decode()

    async def heard() -> bool:  # published before the command exited
        return services.db.epochs.stamp(("serial",)) != before

    await eventually(heard)


async def test_only_the_commit_tells_of_a_transaction_s_writes(
    db: Database, tenant: Tenant
) -> None:
    """A savepoint released is no commit: nothing is told of it (before, its release told
    every process of the tables written so far, and the commit then of those written after
    it only: a process that read meanwhile kept the old rows under the new epoch; and a
    process killed before its commit had told of changes that never were). A savepoint
    rolled back leaves the transaction's earlier writes to be told at its commit (before,
    they went untold)."""
    tables = ("partner", "user_account")
    before = db.epochs.stamp(tables)
    async with db.transaction() as session:
        partner = await session.get(Partner, tenant.partners[0].id)
        assert partner is not None
        partner.name = "Renamed in a transaction"
        session.add(partner)
        await session.flush()
        async with session.begin_nested():
            user = await session.get(User, tenant.user(Role.FINANCE).id)
            assert user is not None
            user.display_name = "Renamed in a savepoint"
            session.add(user)
        assert db.epochs.stamp(tables) == before  # not committed: nothing told
    after = db.epochs.stamp(tables)
    assert after[1] > before[1]
    assert after[2] > before[2]

    async with db.transaction() as session:
        partner = await session.get(Partner, tenant.partners[1].id)
        assert partner is not None
        partner.name = "Renamed before a savepoint rolled back"
        session.add(partner)
        await session.flush()
        savepoint = await session.begin_nested()
        await session.execute(
            update(User)
            .where(col(User.id) == tenant.user(Role.FINANCE).id)
            .values(display_name="Never")
        )
        await savepoint.rollback()
    assert db.epochs.stamp(("partner",))[1] > after[1]


async def test_a_write_on_the_session_s_connection_is_told_and_refused_when_read_only(
    db: Database, tenant: Tenant
) -> None:
    """A statement run on ``session.connection()`` passes the session's events by: its
    write of a cached table went untold unless its writer remembered ``wrote`` (another
    process kept serving the old row, a deactivated user's principal say, until the TTL),
    and a read-only session took it."""
    table = User.__table__  # type: ignore[attr-defined]
    rename = (
        update(table)
        .where(table.c.id == tenant.user(Role.FINANCE).id)
        .values(display_name="Renamed on the connection")
    )
    before = db.epochs.stamp(("user_account",))
    async with db.transaction() as session:
        await (await session.connection()).execute(rename)
    assert db.epochs.stamp(("user_account",))[1] > before[1]
    async with db.read_session() as session:
        connection = await session.connection()
        with pytest.raises(ReadOnlySessionError):
            await connection.execute(rename)
    quiet = db.epochs.stamp(("user_account",))
    async with db.transaction() as session:  # a write told nobody by choice (a key's use)
        await (await session.connection()).execute(rename, execution_options={UNTRACKED: True})
    assert db.epochs.stamp(("user_account",)) == quiet
