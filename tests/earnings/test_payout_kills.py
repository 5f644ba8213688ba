"""A payout run through a real API process killed with SIGKILL, then run again: statement
generation killed midway (PostgreSQL: held in a proxy before the third partner's statement,
two made in its open transaction) and after its commit, before its answer; a payment
killed after its commit, before its answer. Each time a new process takes over: no
statement is half made or made twice, every entry is in one statement, each statement is
paid once, and the totals are the ledger's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url
from sqlmodel import col, func, select

from api.settings import Settings
from earnings import ledger, payouts
from earnings.models import (
    DecisionAction,
    EarningEntry,
    PayoutDecision,
    PayoutStatement,
    PayoutStatus,
)
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.earnings.scenarios import tx
from tests.factories import Tenant, create_tenant, gid
from tests.processes import Server, api_server, killed_answering
from tests.redis_proxy import HoldingProxy
from tests.support import GQL, eventually, no_write_transaction_open

pytestmark = pytest.mark.slow

GENERATE = """mutation($input: PayoutStatementsGenerateInput!) {
  payoutStatementsGenerate(input: $input) { statements { id } userErrors { code } } }"""
APPROVE = """mutation($input: PayoutStatementInput!) {
  payoutApprove(input: $input) { statement { id } userErrors { code } } }"""
PAY = """mutation($input: PayoutMarkPaidInput!) {
  payoutMarkPaid(input: $input) { statement { id } userErrors { code } } }"""
PARTNERS = 4


@contextlib.asynccontextmanager
async def _servers(
    settings: Settings, count: int
) -> AsyncIterator[tuple[HoldingProxy | None, list[Server]]]:
    """``count`` API processes, started at once (each takes seconds), on the test's
    database: PostgreSQL through a proxy (passing everything until armed), SQLite as is."""
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        proxy = None
        url = make_url(settings.database_url)
        if url.get_backend_name() == "postgresql":
            proxy = HoldingProxy(f"postgresql://{url.host}:{url.port or 5432}", b"")
            proxy.release.set()
            port = await stack.enter_async_context(proxy.running())
            urls["DATABASE_URL"] = url.set(host="127.0.0.1", port=port).render_as_string(
                hide_password=False
            )
        servers = await asyncio.gather(
            *(
                stack.enter_async_context(api_server(settings, DISPATCH="external", **urls))
                for _ in range(count)
            )
        )
        yield proxy, list(servers)


async def _post(http: httpx.AsyncClient, token: str, query: str, variables: Any) -> Any:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _call(token: str, query: str, variables: Any) -> Callable[[httpx.AsyncClient], Awaitable[Any]]:
    return lambda http: _post(http, token, query, variables)


@dataclass(frozen=True)
class Books:
    entries: dict[uuid.UUID, tuple[int, int]]  # partner -> (entries, total) of the month
    statements: list[PayoutStatement]
    generated: int  # GENERATE decisions
    paid: dict[uuid.UUID, int]  # statement -> PAY decisions
    audited: int  # 'payout_statements.generated' entries


async def _books(db: Database, tenant: Tenant, month: Any) -> Books:
    start = payouts.month_start(month)
    async with db.session() as session:
        entries = await session.exec(
            select(EarningEntry.partner_id, func.count(), func.sum(EarningEntry.amount_minor))
            .where(
                EarningEntry.vendor_id == tenant.vendor.id,
                col(EarningEntry.booked_at) >= start,
                col(EarningEntry.booked_at) < payouts.next_month(start),
            )
            .group_by(col(EarningEntry.partner_id))
        )
        statements = await session.exec(
            select(PayoutStatement)
            .where(PayoutStatement.vendor_id == tenant.vendor.id)
            .order_by(col(PayoutStatement.id))
        )
        decisions = list(
            await session.exec(
                select(PayoutDecision).where(PayoutDecision.vendor_id == tenant.vendor.id)
            )
        )
        audited = await session.exec(
            select(func.count()).where(
                AuditEntry.vendor_id == tenant.vendor.id,
                AuditEntry.action == "payout_statements.generated",
            )
        )
        paid: dict[uuid.UUID, int] = {}
        for d in decisions:
            if d.action is DecisionAction.PAY:
                paid[d.statement_id] = paid.get(d.statement_id, 0) + 1
        return Books(
            entries={p: (int(n), int(t)) for p, n, t in entries},
            statements=list(statements),
            generated=sum(1 for d in decisions if d.action is DecisionAction.GENERATE),
            paid=paid,
            audited=int(audited.one()),
        )


def _statements_are_the_ledger(books: Books) -> None:
    """One statement per partner with entries, each holding every entry of its partner's
    month (count and total), made by one GENERATE decision."""
    assert len(books.entries) == PARTNERS
    assert {s.partner_id: (s.entry_count, s.total_minor) for s in books.statements} == books.entries
    assert len(books.statements) == PARTNERS  # none twice
    assert books.generated == PARTNERS


async def test_payout_run_killed_then_rerun_pays_every_entry_once(
    settings: Settings, db: Database, clock: OffsetClock, gql: GQL
) -> None:
    async with db.transaction() as session:
        tenant = await create_tenant(session, clock, partners=PARTNERS)
    finance = tenant.principal(Role.FINANCE)
    # Entries in the last month (ended: the server runs on the real clock).
    month = payouts.previous_month(payouts.month_start(clock.now())) + timedelta(days=9)
    clock.freeze(month)
    for i, partner in enumerate(tenant.partners):
        await tx(db, lambda s, p=partner.id: payouts.set_profile(
            s, finance, clock, partner_id=p, tax_form_on_file=True,
        ))  # fmt: skip
        for n in range(3):
            clock.advance(timedelta(hours=1))
            await tx(db, lambda s, p=partner.id, n=n, i=i: ledger.adjust(
                s, finance, clock, partner_id=p, amount_minor=10_000 * (i + 1) + n,
                currency="USD", note="bonus", idempotency_key=f"k-{p}-{n}",
            ))  # fmt: skip
    clock.reset()
    token = gql.token(tenant.user(Role.FINANCE), ttl=timedelta(hours=1))
    generate = {"input": {"month": month.isoformat()}}

    postgres = make_url(settings.database_url).get_backend_name() == "postgresql"
    async with _servers(settings, 4 if postgres else 3) as (proxy, servers):
        if proxy is not None:
            # Held as it first names the third partner: two statements made (with their
            # decisions, status events, holds checked), uncommitted.
            ids = [(p.id.bytes, str(p.id).encode()) for p in tenant.partners]
            named: set[int] = set()

            def third_partner(data: bytes) -> bool:
                named.update(i for i, forms in enumerate(ids) if any(f in data for f in forms))
                return len(named) >= 3

            proxy.carries = third_partner
            proxy.arm(b"")
            await killed_answering(servers.pop(0), _call(token, GENERATE, generate), proxy)
            proxy.carries = None
            books = await _books(db, tenant, month)
            assert (books.statements, books.generated, books.audited) == ([], 0, 0)

        # Killed after generating's commit, before its answer.
        await killed_answering(servers.pop(0), _call(token, GENERATE, generate))
        books = await _books(db, tenant, month)
        _statements_are_the_ledger(books)
        assert books.audited == 1

        server = servers.pop(0)
        async with httpx.AsyncClient(base_url=f"http://{server.address}", timeout=60) as http:
            again = await _post(http, token, GENERATE, generate)
            assert again["payoutStatementsGenerate"] == {"statements": [], "userErrors": []}
            for s in books.statements:
                assert s.status is PayoutStatus.PENDING
                answer = await _post(http, token, APPROVE, {"input": {"statementId": gid(s)}})
                assert answer["payoutApprove"]["userErrors"] == []
        # Killed after the first payment's commit, before its answer.
        first = books.statements[0]
        await killed_answering(
            server, _call(token, PAY, {"input": {"statementId": gid(first), "reference": "T-0"}})
        )

        [server] = servers
        async with httpx.AsyncClient(base_url=f"http://{server.address}", timeout=60) as http:
            for n, s in enumerate(books.statements):
                answer = await _post(
                    http, token, PAY, {"input": {"statementId": gid(s), "reference": f"T-{n}"}}
                )
                # The first was paid before its process died: paying it again is refused.
                expected = [{"code": "INVALID_STATUS"}] if n == 0 else []
                assert answer["payoutMarkPaid"]["userErrors"] == expected, answer

    books = await _books(db, tenant, month)
    _statements_are_the_ledger(books)
    assert books.audited == 1
    assert {s.status for s in books.statements} == {PayoutStatus.PAID}
    assert books.paid == {s.id: 1 for s in books.statements}
    assert sum(s.total_minor for s in books.statements) == sum(t for _, t in books.entries.values())

    await eventually(lambda: no_write_transaction_open(settings), within=30)
