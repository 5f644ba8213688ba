"""Fixtures: a migrated database (SQLite by default, PostgreSQL when
CHANNELBOARD_TEST_DATABASE_URL is set), a real Redis (embedded by default, or
CHANNELBOARD_TEST_REDIS_URL, or with CHANNELBOARD_TEST_REDIS_CLUSTER=1 a local Redis
Cluster of three masters and three replicas started for the run) under a key namespace of
its own, the app, and cleanup of both
stores after every test. Under pytest-xdist (`-n 2`) each worker has its own database,
embedded Redis and key namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from websockets.asyncio.client import connect

from api import migrations
from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from infra.redis import EmbeddedRedis
from schema.context import Services
from tests.factories import Tenant, create_tenant
from tests.private_postgres import PrivatePostgres, private_postgres_server
from tests.private_redis import RedisUnderTest
from tests.redis_cluster import LocalCluster
from tests.support import GQL, wipe

# websockets' client gives an opening handshake 10 s (``open_timeout``), then fails. Here it
# is a bound on a hang, not a measure of speed: on a loaded CI machine (load 13 on the 2
# cores) an in-process server busy with hundreds of other sockets took longer
# (test_isolation_ws). Every test's client, however it calls ``connect``, gets 60 s.
_CONNECT_DEFAULTS = connect.__init__.__kwdefaults__
assert _CONNECT_DEFAULTS is not None
assert "open_timeout" in _CONNECT_DEFAULTS
_CONNECT_DEFAULTS["open_timeout"] = 60


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        help="run the tests marked slow too (without it, and without -m, they are deselected)",
    )


# What a test reaches the suite's database or Redis through (every other fixture of them,
# ``settings``, ``app``, ``gql``, …, depends on one of these).
_BACKEND_FIXTURES = {"database_url", "redis_url"}


def _other_backend() -> str | None:
    """The backend this run was pointed at, when it is not the embedded default."""
    for name in ("CHANNELBOARD_TEST_DATABASE_URL", "CHANNELBOARD_TEST_REDIS_URL"):
        if os.environ.get(name):
            return name
    return "CHANNELBOARD_TEST_REDIS_CLUSTER" if cluster_selected() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The quick inner loop: tests marked slow (real processes, servers, browsers, or more
    than about 2 s) run only with --all (as CI runs them) or when -m selects by marker.

    Tests marked backend_free run the same whatever backend the run was pointed at, so a
    run pointed at another one (CI's PostgreSQL and cluster passes) leaves them out: CI
    runs them once, in the embedded pass. Marking one that reaches the suite's backend is
    a collection error."""
    for item in items:
        if item.get_closest_marker("backend_free") and (
            used := _BACKEND_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        ):
            raise pytest.UsageError(f"{item.nodeid} is marked backend_free but uses {used}")
    if config.getoption("markexpr"):
        return
    slow_out, free_out = not config.getoption("--all"), bool(_other_backend())
    kept, left_out = [], []
    for item in items:
        out = (slow_out and item.get_closest_marker("slow")) or (
            free_out and item.get_closest_marker("backend_free")
        )
        (left_out if out else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.getoption("markexpr"):
        return []
    lines = []
    if not config.getoption("--all"):
        lines.append("quick run: tests marked slow are deselected (./dev test --all runs them)")
    if backend := _other_backend():
        lines.append(f"{backend} is set: tests marked backend_free are deselected")
    return lines


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


def cluster_selected() -> bool:
    return os.environ.get("CHANNELBOARD_TEST_REDIS_CLUSTER", "") not in ("", "0")


@pytest.fixture(scope="session")
def local_cluster(var_dir: Path) -> Iterator[LocalCluster | None]:
    """The run's (under pytest-xdist: the worker's) local Redis Cluster, or None when the
    tests run on a single server."""
    if not cluster_selected():
        yield None
        return
    cluster = LocalCluster(var_dir / "redis-cluster").start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, to stop or restart (skips without initdb)."""
    with private_postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(var_dir: Path, local_cluster: LocalCluster | None) -> Iterator[str]:
    if local_cluster is not None:
        yield local_cluster.url
        return
    external = os.environ.get("CHANNELBOARD_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(var_dir / "redis")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
async def database_url(var_dir: Path, worker_id: str) -> AsyncIterator[str]:
    """SQLite in the run's (under pytest-xdist: the worker's) temporary folder, or
    CHANNELBOARD_TEST_DATABASE_URL; under pytest-xdist each worker gets a database of its
    own on that server, created here and dropped after the run."""
    external = os.environ.get("CHANNELBOARD_TEST_DATABASE_URL")
    if not external:
        yield f"sqlite+aiosqlite:///{var_dir / 'test.db'}"
        return
    if worker_id == "master":
        yield external
        return
    url = make_url(external)
    name = f"{url.database}_{worker_id}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    await migrations.upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def settings(
    var_dir: Path, database_url: str, redis_url: str, worker_id: str, migrated: str
) -> Settings:
    """The run's settings, on its database at the head of the migrations: a test that
    builds an app of its own from them (a ``/readyz`` probe) relied on an earlier test
    having migrated it, and failed when run alone or first on its worker."""
    # A key namespace per run, and per pytest-xdist worker within it (one Redis may be shared).
    namespace = (
        os.environ.get("CHANNELBOARD_TEST_REDIS_NAMESPACE") or f"cbtest-{uuid.uuid4().hex[:8]}"
    )
    if worker_id != "master":
        namespace = f"{namespace}-{worker_id}"
    return Settings.from_env(
        {
            "CHANNELBOARD_ENV": "test",
            "CHANNELBOARD_VAR_DIR": str(var_dir),
            "CHANNELBOARD_DATABASE_URL": database_url,
            "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_CLUSTER": "true" if cluster_selected() else "false",
            "CHANNELBOARD_REDIS_NAMESPACE": namespace,
            # Webhook tests deliver to receivers on loopback.
            "CHANNELBOARD_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            # The signal loops record events in the background: tests run them when they
            # mean to (signals.daily.take_all_due, the authenticator's active_users.flush).
            "CHANNELBOARD_SIGNALS_DAILY_INTERVAL_SECONDS": "0",
            "CHANNELBOARD_SIGNALS_ACTIVITY_FLUSH_SECONDS": "3600",
        }
    )


@pytest.fixture(scope="session")
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture(scope="session")
async def app(settings: Settings, clock: OffsetClock, migrated: str) -> AsyncIterator[Starlette]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def services(app: Starlette) -> Services:
    result: Services = app.state.services
    return result


@pytest.fixture
def db(services: Services) -> Database:
    return services.db


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest, clock: OffsetClock) -> AsyncIterator[None]:
    yield
    clock.reset()
    if "app" not in request.fixturenames:
        return
    services: Services = request.getfixturevalue("app").state.services
    await wipe(services)
    keys = [key async for key in services.redis.scan_iter(match=services.keys("*"), count=1000)]
    if keys:
        await services.redis.delete(*keys)  # a cluster client splits them by slot


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def gql(client: httpx.AsyncClient, settings: Settings, clock: OffsetClock) -> GQL:
    return GQL(client=client, settings=settings, clock=clock)


@pytest.fixture
async def tenant(db: Database, clock: OffsetClock) -> Tenant:
    async with db.transaction() as session:
        return await create_tenant(session, clock)


@pytest.fixture
async def other_tenant(db: Database, clock: OffsetClock) -> Tenant:
    async with db.transaction() as session:
        return await create_tenant(session, clock)


@pytest.fixture(params=["embedded", "external"])
def own_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisUnderTest]:
    """A Redis server the test may kill and start again (``tests.private_redis``), once
    embedded (its data kept) and once external (back empty)."""
    server = RedisUnderTest(request.param, tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def board_checks_held(services: Services) -> AsyncIterator[None]:
    """The app's board checks held off for the test: a loss it stages is for its own
    check to find, not for the minute's pass to mend first."""
    async with services.leaderboards.checks:
        yield
