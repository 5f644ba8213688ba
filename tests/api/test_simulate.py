"""`channelboard simulate` (a real subprocess against the test database and Redis): every
simulated sale is a real, approved sale claim on fresh serials, credited once to the demo
contests and to earnings, and a server watching the same stores sees it live."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select
from starlette.applications import Starlette

from api import migrations
from api.cli.demo import seed_demo
from api.settings import Settings
from deal_registration.sales.fanout import claim_channel
from deal_registration.sales.models import (
    CREDITED_STATES,
    DecisionAction,
    SaleClaim,
    SaleClaimDecision,
    SaleClaimSerial,
    Serial,
    SerialCredit,
    SerialOutcome,
)
from earnings.models import CreditedSource, EarningEntry, SourceType
from infra.db import Database
from infra.outbox import OutboxEvent
from infra.redis import redis_server_binary
from leaderboards.demo import DEMO_CONTEST, WEEKLY_CONTEST
from leaderboards.models import Contest, ContestCredit
from partners.models import Partner, User
from schema.context import Services
from tests.factories import gid
from tests.ports import free_port
from tests.private_postgres import PrivatePostgres
from tests.processes import cli_process
from tests.support import GQL, eventually, listening, live_server, ws_client

pytestmark = pytest.mark.slow

BOARD = """
query($id: ID!) {
  leaderboard(contestId: $id, first: 10) { version edges { node { score participant { name } } } }
}"""
LIVE = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score participant { name } } }
}"""
EARNINGS_LIVE = """
subscription($partnerId: ID) {
  earningsChanged(partnerId: $partnerId) { earned { amountMinor } }
}"""


async def _simulate(settings: Settings, *args: str) -> tuple[int, str]:
    async with cli_process(settings, "simulate", *args) as process:
        output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


async def _simulated_claims(db: Database) -> list[SaleClaim]:
    async with db.session() as session:
        return list(
            await session.exec(
                select(SaleClaim)
                .where(col(SaleClaim.invoice_number).startswith("SIM-"))
                .order_by(col(SaleClaim.created_at))
            )
        )


async def _scores(gql: GQL, db: Database) -> dict[tuple[str, str], int]:
    """(contest name, partner name) -> score, read through the API as the vendor admin."""
    async with db.session() as session:
        admin = (
            await session.exec(select(User).where(User.email == "admin@northwind.example"))
        ).one()
        contests = list(await session.exec(select(Contest)))
    scores: dict[tuple[str, str], int] = {}
    for contest in contests:
        data = await gql.data(BOARD, {"id": gid("Contest", contest.id)},
                              as_user=admin)  # fmt: skip
        for edge in data["leaderboard"]["edges"]:
            node = edge["node"]
            scores[(contest.name, node["participant"]["name"])] = int(node["score"])
    return scores


async def _revenue(db: Database) -> dict[str, int]:
    """Partner name -> qualified revenue credited to earnings."""
    async with db.session() as session:
        rows = await session.exec(
            select(Partner.name, func.sum(CreditedSource.revenue_minor))
            .join(Partner, col(Partner.id) == CreditedSource.partner_id)
            .group_by(Partner.name)
        )
        return {name: int(total or 0) for name, total in rows}


async def test_simulate_without_demo_data_says_so(settings: Settings, db: Database) -> None:
    code, output = await _simulate(settings, "--count", "1")
    assert code == 1, output
    assert "no demo data" in output
    assert "channelboard demo" in output


async def test_simulated_sales_are_real_approved_claims_credited_once(
    settings: Settings, db: Database, services: Services, gql: GQL
) -> None:
    await seed_demo(settings)
    await services.outbox.dispatch_pending()
    scores_before, revenue_before = await _scores(gql, db), await _revenue(db)

    # The app's dispatcher held: whatever was dispatched, the CLI dispatched itself.
    async with services.outbox.paused():
        code, output = await _simulate(settings, "--count", "5", "--rate", "50")
    assert code == 0, output
    assert "5 sales approved" in output

    claims = await _simulated_claims(db)
    assert len(claims) == 5
    event_ids = [c.approved_event_id for c in claims]
    assert all(c.state in CREDITED_STATES for c in claims)
    assert None not in event_ids
    async with db.session() as session:
        # The CLI dispatched its own events (to every handler): nothing is left pending.
        pending = await session.exec(
            select(OutboxEvent.type).where(col(OutboxEvent.dispatched_at).is_(None))
        )
        assert list(pending) == []
        lines = list(
            await session.exec(
                select(SaleClaimSerial).where(
                    col(SaleClaimSerial.claim_id).in_([c.id for c in claims])
                )
            )
        )
        credits = set(
            await session.exec(
                select(SerialCredit.serial).where(
                    col(SerialCredit.claim_id).in_([c.id for c in claims])
                )
            )
        )
        registered = {
            s.serial: s
            for s in await session.exec(
                select(Serial).where(col(Serial.serial).in_([x.serial for x in lines]))
            )
        }
        decisions = list(
            await session.exec(
                select(SaleClaimDecision).where(
                    col(SaleClaimDecision.claim_id).in_([c.id for c in claims])
                )
            )
        )
        contest_credits = Counter(
            (credit.contest_id, credit.event_id)
            for credit in await session.exec(
                select(ContestCredit).where(col(ContestCredit.event_id).in_(event_ids))
            )
        )
        contests = list(await session.exec(select(Contest)))
        earned = Counter(
            await session.exec(
                select(CreditedSource.source_event_id).where(
                    col(CreditedSource.source_event_id).in_(event_ids),
                    CreditedSource.source_type == SourceType.SALE_APPROVED,
                )
            )
        )
        revenue_by_event = {
            event_id: revenue
            for event_id, revenue in await session.exec(
                select(CreditedSource.source_event_id, CreditedSource.revenue_minor).where(
                    col(CreditedSource.source_event_id).in_(event_ids)
                )
            )
        }
        entries = set(
            await session.exec(
                select(EarningEntry.source_event_id).where(
                    col(EarningEntry.source_event_id).in_(event_ids)
                )
            )
        )
        partners = {p.id: p.name for p in await session.exec(select(Partner))}

    # Fresh serials, registered through the import, shipped to the claiming partner, each
    # valid and credited to its claim.
    assert len(lines) == len({x.serial for x in lines}) == len(credits)
    assert all(x.serial.startswith("SIM") and x.outcome is SerialOutcome.VALID for x in lines)
    by_claim = {c.id: c for c in claims}
    for line in lines:
        assert registered[line.serial].partner_id == by_claim[line.claim_id].partner_id
        assert registered[line.serial].shipped_at.date() < by_claim[line.claim_id].sale_date
    for claim in claims:
        assert claim.customer_name
        assert claim.invoice_number
        assert claim.sale_date == claim.created_at.date()
        actions = {d.action for d in decisions if d.claim_id == claim.id}
        assert DecisionAction.SUBMITTED in actions
        assert actions & {DecisionAction.APPROVED, DecisionAction.AUTO_APPROVED}

    # Each approval credited once to each demo contest and once to earnings.
    assert {c.name for c in contests} == {DEMO_CONTEST, WEEKLY_CONTEST}
    assert contest_credits == Counter({(c.id, e): 1 for c in contests for e in event_ids})
    assert earned == Counter({e: 1 for e in event_ids})
    assert entries == set(event_ids)
    assert revenue_by_event == {c.approved_event_id: c.amount_minor for c in claims}

    # Per partner, the contest scores and the earnings revenue moved by what was claimed.
    scores_after, revenue_after = await _scores(gql, db), await _revenue(db)
    amounts: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for claim in claims:
        amounts[partners[claim.partner_id]] += claim.amount_minor
        units[partners[claim.partner_id]] += sum(1 for x in lines if x.claim_id == claim.id)
    for name in partners.values():
        revenue_delta = revenue_after.get(name, 0) - revenue_before.get(name, 0)
        score_delta = scores_after.get((DEMO_CONTEST, name), 0) - scores_before.get(
            (DEMO_CONTEST, name), 0
        )
        units_delta = scores_after.get((WEEKLY_CONTEST, name), 0) - scores_before.get(
            (WEEKLY_CONTEST, name), 0
        )
        assert revenue_delta == score_delta == amounts[name], name
        assert units_delta == units[name], name


async def test_simulate_twice_never_reuses_a_serial(
    settings: Settings, db: Database, services: Services
) -> None:
    await seed_demo(settings)
    await services.outbox.dispatch_pending()
    for _ in range(2):
        code, output = await _simulate(settings, "--count", "4", "--rate", "50")
        assert code == 0, output
    claims = await _simulated_claims(db)
    assert len(claims) == 8
    assert all(c.state in CREDITED_STATES for c in claims)
    async with db.session() as session:
        lines = list(
            await session.exec(
                select(SaleClaimSerial).where(
                    col(SaleClaimSerial.claim_id).in_([c.id for c in claims])
                )
            )
        )
    serials = [x.serial for x in lines]
    assert len(serials) == len(set(serials))
    assert all(x.outcome is SerialOutcome.VALID for x in lines)
    # Two runs, two run ids: SIM<run><n>.
    assert len({s[3:11] for s in serials}) == 2


async def test_a_running_server_sees_simulated_sales_live(
    settings: Settings, db: Database, services: Services, gql: GQL, app: Starlette
) -> None:
    """The server learns of another process's sales through Redis pub/sub: leaderboard
    pushes and earnings notices arrive while `simulate` runs in its own process."""
    await seed_demo(settings)
    await services.outbox.dispatch_pending()
    async with db.session() as session:
        contest = (await session.exec(select(Contest).where(Contest.name == DEMO_CONTEST))).one()
        admin = (
            await session.exec(select(User).where(User.email == "admin@northwind.example"))
        ).one()
        # Northwind's (the demo's second vendor, Contoso, has its own and simulates nothing).
        partners = {
            p.id: p
            for p in await session.exec(select(Partner).where(Partner.vendor_id == admin.vendor_id))
        }
    async with (
        live_server(app) as address,
        ws_client(address, gql.token(admin)) as board,
        ws_client(address, gql.token(admin)) as earnings,
    ):
        await board.subscribe(LIVE, {"id": gid("Contest", contest.id)})
        first = (await board.data())["leaderboardChanged"]
        watched: dict[str, uuid.UUID] = {}
        initial: dict[uuid.UUID, int] = {}
        for partner_id in partners:
            op = await earnings.subscribe(EARNINGS_LIVE, {"partnerId": gid("Partner", partner_id)})
            watched[op] = partner_id
            message = await earnings.receive()
            initial[watched[message["id"]]] = _earned(message)

        # This server's dispatcher held: what it pushes, it heard from the CLI's process.
        async with services.outbox.paused():
            code, output = await _simulate(settings, "--count", "6", "--rate", "50")
        assert code == 0, output
        claims = await _simulated_claims(db)
        total = sum(c.amount_minor for c in claims)
        before = sum(int(r["score"]) for r in first["rows"])
        # Pushes are coalesced: read until the board shows every simulated sale.
        latest = first
        while sum(int(r["score"]) for r in latest["rows"]) < before + total:
            latest = (await board.data())["leaderboardChanged"]
        assert latest["version"] > first["version"]
        assert sum(int(r["score"]) for r in latest["rows"]) == before + total
        # Every partner that sold hears that its earnings changed.
        sellers = {c.partner_id for c in claims}
        heard: set[uuid.UUID] = set()
        while heard != sellers:
            message = await earnings.receive()
            assert message["type"] == "next", message
            partner_id = watched[message["id"]]
            assert _earned(message) > initial[partner_id]
            heard.add(partner_id)


def _earned(message: dict[str, Any]) -> int:
    return int(message["payload"]["data"]["earningsChanged"]["earned"]["amountMinor"])


async def test_simulate_waits_out_a_redis_restart_and_carries_on(
    settings: Settings, db: Database
) -> None:
    """Its Redis (a server of this test's own, without persistence) is killed under a
    running `simulate` and started again, empty, on the same port: it says once that Redis
    is out of reach, waits (before, it stopped), says once that it is back, and goes on
    approving sales, credited to boards rebuilt from the ledger."""
    await seed_demo(settings)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [shutil.which("redis-server") or redis_server_binary(), "--port", str(port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    redis = start_redis()
    try:
        async with cli_process(settings, "simulate", "--rate", "10", REDIS_URL=url) as process:
            output = _Output(process)

            async def approving(more_than: int) -> bool:
                assert process.returncode is None, output.text
                return len(await _simulated_claims(db)) > more_than

            await eventually(lambda: approving(3), within=60)
            redis.kill()
            redis.wait()
            await eventually(lambda: _true(output.count("out of reach") > 0), within=30)
            assert process.returncode is None, output.text
            redis = start_redis()
            before = len(await _simulated_claims(db))
            await eventually(lambda: approving(before + 5), within=60)
            await asyncio.sleep(0.5)  # (its last lines read)
            assert process.returncode is None, output.text
            assert output.count("Redis is out of reach") == 1, output.text
            assert output.count("Redis is back after") == 1, output.text
            assert "Traceback" not in output.text, output.text
    finally:
        redis.kill()
        redis.wait()


async def _true(value: bool) -> bool:
    return value


CLAIMS_LIVE = "subscription { saleClaimStateChanged { id state } }"


async def test_a_partner_hears_each_state_of_its_simulated_claims_once_in_order(
    settings: Settings, db: Database, services: Services, gql: GQL, app: Starlette
) -> None:
    await seed_demo(settings)
    await services.outbox.dispatch_pending()
    async with db.session() as session:
        admin = (await session.exec(select(User).where(User.email == "admin@acme.example"))).one()
    assert admin.partner_id is not None
    channel = claim_channel(services.hub, admin.partner_id)
    async with live_server(app) as address, ws_client(address, gql.token(admin)) as client:
        await client.subscribe(CLAIMS_LIVE, {})
        await listening(services, channel)
        # The server's dispatcher held: the notices come from the CLI's process, which
        # creates, reviews and only then dispatches (both changes published together).
        async with services.outbox.paused():
            code, output = await _simulate(settings, "--count", "12", "--rate", "100")
        assert code == 0, output
        async with db.session() as session:
            rows = await session.exec(
                select(SaleClaimDecision.claim_id, SaleClaimDecision.to_state)
                .join(SaleClaim, col(SaleClaim.id) == SaleClaimDecision.claim_id)
                .where(
                    SaleClaim.partner_id == admin.partner_id,
                    col(SaleClaim.invoice_number).startswith("SIM-"),
                )
                .order_by(col(SaleClaimDecision.decided_at), col(SaleClaimDecision.id))
            )
            expected: dict[str, list[str]] = {}
            for claim_id, state in rows:
                expected.setdefault(gid("SaleClaim", claim_id), []).append(state)
        heard: dict[str, list[str]] = {}
        for _ in range(sum(len(states) for states in expected.values())):
            change = (await client.data())["saleClaimStateChanged"]
            heard.setdefault(change["id"], []).append(change["state"])
        assert heard == expected


class _Output:
    """A running command's output lines, read as they come (the pipe never fills)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self.stdout = process.stdout
        self.lines: list[str] = []
        self.reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self.stdout.readline():
            self.lines.append(line.decode().rstrip())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def test_simulate_waits_out_a_database_restart_and_carries_on(
    settings: Settings, services: Services, private_postgres: PrivatePostgres
) -> None:
    """A PostgreSQL of the test's own restarts (a fast shutdown: the sessions are ended)
    under a running `simulate`: it says once that the database is out of reach, waits,
    says once that it is back, and goes on approving sales (before, it exited with a
    traceback). (``services``: the cleanup after the test deletes the boards it wrote in
    the run's Redis namespace.)"""
    await migrations.upgrade(private_postgres.url)
    own = settings.with_overrides(database_url=private_postgres.url)
    await seed_demo(own)
    db = Database(private_postgres.url)
    try:
        async with cli_process(own, "simulate", "--rate", "10") as process:
            output = _Output(process)

            async def approving(more_than: int) -> bool:
                assert process.returncode is None, output.text
                return len(await _simulated_claims(db)) > more_than

            await eventually(lambda: approving(3), within=60)
            await db.dispose()  # (our own connections would hold a smart stop)
            await asyncio.to_thread(private_postgres.pg_ctl, "-m", "fast", "-w", "restart")
            before = len(await _simulated_claims(db))
            await eventually(lambda: approving(before + 5), within=60)
            await asyncio.sleep(0.5)  # (its last lines read)
            assert process.returncode is None, output.text
            assert output.count("out of reach") == 1, output.text
            assert output.count("back after") == 1, output.text
            assert "Traceback" not in output.text, output.text
            claims = await _simulated_claims(db)
            # Every claim it made is approved: none left half done by the restart.
            assert all(c.state in CREDITED_STATES for c in claims[:-1]), output.text
    finally:
        await db.dispose()
