"""The CSV imports (`channelboard serials|subscriptions|partners import`, real processes)
killed with SIGKILL mid-import, then run again on the same file.

Three moments, each found without sleeping: (1) while it reads the file (serials; the
others on SQLite): the file is a FIFO, and the command is killed once it has taken in every
byte written so far and waits for more (nothing in the pipe, its main thread blocked in a
pipe read), the serial import with a batch already staged and the write lock held; (2) on
PostgreSQL, as it writes: a proxy before the database holds a statement (the serials'
merge, the subscriptions' merge after their changes and events were copied in, the 50th
partner's insert) and the command is killed there; (3) after its commit, before it could
report: its notice to the running servers (a Redis PUBLISH after the commit) is held in a
proxy; for serials, an API process taking the file as an upload (`serialsImport`), its
answer held in a proxy. After (1) and (2) the database holds none of the import's effects
and no lock of it; after (3) all of them; either way the next run completes at once, with
the exact totals, and adds nothing twice."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import os
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url
from sqlmodel import col, func, select

from api.settings import Settings
from deal_registration.sales import serials
from deal_registration.sales.models import Serial, SerialImport
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import Partner
from partners.roles import Role
from schema.context import Services
from subscriptions.models import Subscription, SubscriptionChange
from tests.deal_registration.sales.scenarios import WIDGET, csv_bytes, registry_rows
from tests.factories import Tenant, add_products
from tests.processes import api_server, cli_process, kill, killed_answering
from tests.redis_proxy import HoldingProxy
from tests.subscriptions import scenarios as ss
from tests.support import GQL, eventually, no_write_transaction_open

pytestmark = pytest.mark.slow

SERIALS_IMPORT = """mutation($input: SerialsImportInput!) {
  serialsImport(input: $input) { result { inserted } userErrors { code } } }"""


async def _run(settings: Settings, *args: str, **extra: str) -> str:
    """Run ``channelboard ARGS`` to its end; its output (it must succeed)."""
    async with cli_process(settings, *args, **extra) as process:
        assert process.stdout is not None
        output = (await asyncio.wait_for(process.stdout.read(), 120)).decode()
        assert await process.wait() == 0, output
    return output


def _unread(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _waits_on_pipe(pid: int) -> bool:
    """The process's main thread is blocked reading a pipe (it wants more of the file)."""
    try:
        return "pipe_read" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


async def _killed_reading(
    settings: Settings, tmp_path: Path, command: str, slug: str, head: bytes
) -> None:
    """``channelboard COMMAND import`` reading a FIFO fed ``head`` (no end of file),
    SIGKILLed once it has taken all of it in and waits for more."""
    fifo = tmp_path / f"{command}-stream.csv"
    os.mkfifo(fifo)
    async with cli_process(settings, command, "import", str(fifo), "--vendor", slug) as process:
        # Opening the write end waits for the command to open the file; writing waits
        # while the pipe is full.
        fd = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        try:
            view = memoryview(head)
            while view:
                view = view[await asyncio.to_thread(os.write, fd, view) :]

            async def waits_for_more() -> bool:
                assert process.returncode is None, "the import ended before it was killed"
                return _unread(fd) == 0 and _waits_on_pipe(process.pid)

            await eventually(waits_for_more, within=120)
            if command == "serials" and make_url(settings.database_url).drivername.startswith(
                "sqlite"
            ):  # the others write nothing before the file has ended (or a batch is full)
                assert not await no_write_transaction_open(
                    settings
                )  # killed holding the write lock
            await kill(process)
        finally:
            os.close(fd)
    await eventually(lambda: no_write_transaction_open(settings), within=30)


async def _killed_writing(
    settings: Settings, command: str, file: Path, slug: str, marker: bytes
) -> bool:
    """On PostgreSQL: ``channelboard COMMAND import FILE`` through a proxy that holds the
    first statement carrying ``marker``, SIGKILLed there (the statement then reaches the
    server from a dead client, as it would have). False on SQLite (nothing done)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        return False
    proxy = HoldingProxy(f"postgresql://{url.host}:{url.port or 5432}", marker, hold_marker=True)
    async with proxy.running() as port:
        through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        async with cli_process(
            settings, command, "import", str(file), "--vendor", slug, DATABASE_URL=through
        ) as process:
            ended = asyncio.create_task(process.wait())
            held = asyncio.create_task(proxy.holding.wait())
            await asyncio.wait({ended, held}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            assert held.done(), "the import ended unheld"
            await kill(process)
            proxy.release.set()
    await eventually(lambda: no_write_transaction_open(settings), within=30)
    return True


@contextlib.asynccontextmanager
async def _held_after_commit(settings: Settings) -> AsyncIterator[HoldingProxy]:
    """A proxy before the Redis a command tells of its commits: the first PUBLISH (the
    notice sent after the commit) is held."""
    assert settings.redis_url is not None
    proxy = HoldingProxy(settings.redis_url, b"PUBLISH", hold_marker=True)
    async with proxy.running():
        yield proxy


async def _killed_after_commit(settings: Settings, command: str, file: Path, slug: str) -> None:
    async with _held_after_commit(settings) as proxy:
        port = proxy.server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with cli_process(
            settings, command, "import", str(file), "--vendor", slug,
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
        ) as process:  # fmt: skip
            await asyncio.wait_for(proxy.holding.wait(), 120)
            await kill(process)
            proxy.release.set()
    # (Eventually: a background transaction of the test's own app may be between statements.)
    await eventually(lambda: no_write_transaction_open(settings), within=30)


async def _count(db: Database, statement: object) -> int:
    async with db.session() as session:
        return int((await session.exec(statement)).one())  # type: ignore[call-overload]


async def _audited(db: Database, tenant: Tenant, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(AuditEntry.vendor_id == tenant.vendor.id, AuditEntry.action == action)
            .order_by(col(AuditEntry.id))
        )
        return list(rows)


def _skip_on_cluster(settings: Settings) -> None:
    if settings.redis_cluster:
        pytest.skip("the proxy stands before one Redis node")


async def test_serial_import_killed_mid_write_then_rerun(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL,
    tmp_path: Path,
) -> None:  # fmt: skip
    _skip_on_cluster(settings)
    clock.reset()  # the command runs on the real clock
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))
    count = serials.BATCH_SIZE + 2_000  # a whole batch is staged before the kill
    data = csv_bytes(registry_rows(tenant, clock, count, prefix="KILL"))
    file = tmp_path / "shipments.csv"
    file.write_bytes(data)
    slug = tenant.vendor.slug
    mine = select(func.count()).select_from(Serial).where(Serial.vendor_id == tenant.vendor.id)
    imports = select(SerialImport).where(SerialImport.vendor_id == tenant.vendor.id)

    await _killed_reading(settings, tmp_path, "serials", slug, data[: data.rindex(b"\n", 0, -1)])
    assert await _count(db, mine) == 0
    async with db.session() as session:
        assert list(await session.exec(imports)) == []
    assert await _audited(db, tenant, "serial_import.applied") == []

    # Killed as it merges the staged rows into the registry.
    if await _killed_writing(settings, "serials", file, slug, b"INSERT INTO serial ("):
        assert await _count(db, mine) == 0
        assert await _audited(db, tenant, "serial_import.applied") == []

    # An API process taking the file as an upload, killed after its commit, before its
    # answer.
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))

    async def upload(http: httpx.AsyncClient) -> httpx.Response:
        form = {
            "operations": json.dumps(
                {"query": SERIALS_IMPORT, "variables": {"input": {"file": None}}}
            ),
            "map": json.dumps({"0": ["variables.input.file"]}),
        }
        return await http.post(
            "/graphql", data=form, files={"0": (file.name, data, "text/csv")},
            headers={"authorization": f"Bearer {token}"},
        )  # fmt: skip

    async with api_server(settings, DISPATCH="external") as server:
        await killed_answering(server, upload)
    assert await _count(db, mine) == count  # committed whole, though never answered

    output = await _run(settings, "serials", "import", str(file), "--vendor", slug)
    assert "Serial import" in output
    assert await _count(db, mine) == count
    async with db.session() as session:
        done = list(await session.exec(imports.order_by(col(SerialImport.imported_at))))
    assert [(i.rows, i.inserted, i.updated, i.unchanged, i.rejected) for i in done] == [
        (count, count, 0, 0, 0),
        (count, 0, 0, count, 0),
    ]
    assert len(await _audited(db, tenant, "serial_import.applied")) == 2


async def test_subscription_import_killed_mid_write_then_rerun(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, services: Services,
    tmp_path: Path,
) -> None:  # fmt: skip
    _skip_on_cluster(settings)
    clock.reset()
    await ss.seed(db, clock, tenant)
    _, a = await ss.first_sale(db, clock, tenant, services)
    _, b = await ss.first_sale(db, clock, tenant, services, partner=1, customer="Globex AG")
    await ss.settle(services)
    now = clock.now().isoformat()
    data = (
        "external_id,subscription,kind,effective_at,amount,currency,term_months\n"
        f"r-1,{a.id},RENEWED,{now},,,\n"
        f"x-1,{a.id},EXPANDED,{now},1500.00,USD,\n"
        f"r-2,{b.id},RENEWED,{now},1300.00,,24\n"
    ).encode()
    file = tmp_path / "billing.csv"
    file.write_bytes(data)
    slug = tenant.vendor.slug
    changes = select(func.count()).select_from(SubscriptionChange)
    events = select(func.count()).where(col(OutboxEvent.type).startswith("Subscription"))
    changes_before, events_before = await _count(db, changes), await _count(db, events)

    async def states() -> list[tuple[int, int, int | None]]:
        async with db.session() as session:
            found = [await session.get(Subscription, s.id) for s in (a, b)]
        return [(s.renewals, s.amount_minor, s.term_months) for s in found if s is not None]

    before = await states()
    # Killed as it merges the subscriptions' new states (its changes and their outbox
    # events written, uncommitted); on SQLite, while it reads the file.
    if not await _killed_writing(settings, "subscriptions", file, slug, b"UPDATE subscription SET"):
        await _killed_reading(settings, tmp_path, "subscriptions", slug, data)
    assert await _count(db, changes) == changes_before
    assert await _count(db, events) == events_before
    assert await states() == before
    assert await _audited(db, tenant, "subscription_import.applied") == []

    await _killed_after_commit(settings, "subscriptions", file, slug)
    after = [(1, 150_000, before[0][2]), (1, 130_000, 24)]
    assert await states() == after

    await _run(settings, "subscriptions", "import", str(file), "--vendor", slug)
    assert await states() == after
    assert await _count(db, changes) == changes_before + 3
    assert await _count(db, events) == events_before + 3
    applied = await _audited(db, tenant, "subscription_import.applied")
    assert [(e.after or {}).get("changes") for e in applied] == [3, 0]
    assert [(e.after or {}).get("unchanged") for e in applied] == [0, 3]


async def test_partner_import_killed_mid_write_then_rerun(
    settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    _skip_on_cluster(settings)
    rows = [f"Kill Reseller {i:04d},EMEA,KR-{i:04d},kill;reseller" for i in range(1, 201)]
    data = ("name,region,external_ref,tags\n" + "\n".join(rows) + "\n").encode()
    file = tmp_path / "partners.csv"
    file.write_bytes(data)
    slug = tenant.vendor.slug
    partners = (
        select(func.count()).select_from(Partner).where(Partner.vendor_id == tenant.vendor.id)
    )
    enrolled = select(func.count()).where(OutboxEvent.type == "PartnerEnrolled")
    enrolled_before = await _count(db, enrolled)

    # Killed as it creates the 50th partner (49 made, audited and enrolled, uncommitted);
    # on SQLite, while it reads the file.
    if not await _killed_writing(settings, "partners", file, slug, b"Kill Reseller 0050"):
        await _killed_reading(settings, tmp_path, "partners", slug, data)
    assert await _count(db, partners) == len(tenant.partners)
    assert await _count(db, enrolled) == enrolled_before
    assert await _audited(db, tenant, "partner.created") == []

    await _killed_after_commit(settings, "partners", file, slug)
    assert await _count(db, partners) == len(tenant.partners) + len(rows)

    await _run(settings, "partners", "import", str(file), "--vendor", slug)
    assert await _count(db, partners) == len(tenant.partners) + len(rows)
    assert len(await _audited(db, tenant, "partner.created")) == len(rows)
    assert await _audited(db, tenant, "partner.updated") == []
    assert await _count(db, enrolled) == enrolled_before + len(rows)
