"""A serial is credited once: two partners claiming the same serial at the same moment end
with exactly one credit, on SQLite and on PostgreSQL (whichever the run uses)."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import timedelta

from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales import repository, serials, submission
from deal_registration.sales.models import SaleClaim, SerialCredit, SerialOutcome
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Principal, Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import SKU, WIDGET, claim_input, csv_bytes
from tests.factories import Tenant, add_products, blocked_on_a_lock
from tests.support import GQL

CREATE = """
mutation($input: SaleClaimCreateInput!) {
  saleClaimCreate(input: $input) { saleClaim { serials { outcome } } userErrors { code } }
}"""


async def _unassigned_serials(db: Database, clock: OffsetClock, tenant: Tenant, n: int) -> None:
    """Serials whose channel is unknown: any partner of the vendor may claim them."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    shipped = (clock.now() - timedelta(days=30)).date().isoformat()
    rows = [(f"RACE{i:04d}", SKU, "", "EMEA", shipped, "") for i in range(n)]
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))
        await serials.import_serials(session, admin, clock, source=io.BytesIO(csv_bytes(rows)))
    clock.advance(timedelta(days=2))


async def _credits(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.exec(
            select(SerialCredit.serial, func.count()).group_by(SerialCredit.serial)
        )
        return {serial: int(n) for serial, n in rows}


async def test_concurrent_claims_over_http_credit_each_serial_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _unassigned_serials(db, clock, tenant, 5)
    reps = [tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)]
    for i in range(5):
        serial = f"RACE{i:04d}"
        results = await asyncio.gather(
            *(gql.data(CREATE, {"input": claim_input([serial], clock)}, as_user=r) for r in reps)
        )
        outcomes = sorted(
            r["saleClaimCreate"]["saleClaim"]["serials"][0]["outcome"] for r in results
        )
        assert outcomes == ["ALREADY_CLAIMED", "VALID"], serial
    assert await _credits(db) == {f"RACE{i:04d}": 1 for i in range(5)}


async def test_second_claim_waits_for_the_first_and_loses(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The first claim holds its (uncommitted) credit while the second runs into it: the
    second must come out ALREADY_CLAIMED, never a second credit and never an error."""
    await _unassigned_serials(db, clock, tenant, 1)
    storage = services.storage
    assert storage is not None
    p0 = tenant.principal(Role.PARTNER_REP, 0)
    p1 = tenant.principal(Role.PARTNER_REP, 1)

    sale_date = clock.now().date()

    async def claim(session: AsyncSession, principal: Principal) -> SaleClaim:
        return await submission.create_claim(
            session, principal, clock, storage, serial_numbers=["RACE0000"],
            customer_name="Initech", invoice_number=f"INV-{principal.partner_id}",
            sale_date=sale_date, amount_minor=100_00, currency="USD",
        )  # fmt: skip

    async with db.session() as first, db.session() as second:
        won = await claim(first, p0)
        racing = asyncio.create_task(claim(second, p1))
        await blocked_on_a_lock(first, racing)  # the second waits for the first's row
        await first.commit()
        lost = await racing
        await second.commit()
    first_serials = await _serial_outcomes(db, won.id)
    second_serials = await _serial_outcomes(db, lost.id)
    assert first_serials == [SerialOutcome.VALID]
    assert second_serials == [SerialOutcome.ALREADY_CLAIMED]
    assert await _credits(db) == {"RACE0000": 1}


async def _serial_outcomes(db: Database, claim_id: uuid.UUID) -> list[SerialOutcome]:
    async with db.session() as session:
        return [s.outcome for s in await repository.claim_serials(session, claim_id)]


async def test_overlapping_multi_serial_claims_neither_deadlock_nor_double_credit(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _unassigned_serials(db, clock, tenant, 6)
    reps = [tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)]
    forward = [f"RACE{i:04d}" for i in range(6)]
    results = await asyncio.gather(
        gql.data(CREATE, {"input": claim_input(forward, clock)}, as_user=reps[0]),
        gql.data(CREATE, {"input": claim_input(forward[::-1], clock)}, as_user=reps[1]),
    )
    valid = [
        [s["outcome"] == "VALID" for s in r["saleClaimCreate"]["saleClaim"]["serials"]]
        for r in results
    ]
    assert sum(map(sum, valid)) == 6  # every serial credited exactly once
    assert await _credits(db) == {serial: 1 for serial in forward}


async def test_concurrent_retries_with_one_idempotency_key_make_one_claim(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _unassigned_serials(db, clock, tenant, 1)
    rep = tenant.user(Role.PARTNER_REP, 0)
    body = {"input": claim_input(["RACE0000"], clock, idempotencyKey="same-key")}
    query = CREATE.replace("saleClaim {", "saleClaim { id")
    results = await asyncio.gather(*(gql.data(query, body, as_user=rep) for _ in range(3)))
    ids = {r["saleClaimCreate"]["saleClaim"]["id"] for r in results}
    assert len(ids) == 1
    async with db.session() as session:
        claims = await session.scalar(select(func.count()).select_from(SaleClaim))
    assert claims == 1
