"""Idempotency keys through GraphQL, the same for every mutation that takes one: a retry
returns the first result only to the caller that sent it, with the same request; the same
key with another request is IDEMPOTENCY_KEY_REUSED; anyone else's use of the key string is
their own key (their own record), never an answer with somebody else's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from deal_registration.registrations.models import DealRegistration
from deal_registration.sales.models import SaleClaim
from earnings.models import EarningEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.idempotency import IdempotencyKey
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import future
from tests.deal_registration.sales.scenarios import seed_registry
from tests.factories import Tenant, add_products, gid
from tests.support import GQL, error_codes


@dataclass(frozen=True)
class Spec:
    mutation: str
    record: str  # the payload's result field
    model: Any  # rows counted
    fields: str  # selected on the record; includes what would leak
    input_type: str
    setup: Callable[[Database, OffsetClock, Tenant], Awaitable[None]]
    body: Callable[[OffsetClock, Tenant, int], dict[str, Any]]  # variant: another request
    first: tuple[Role, int]
    colleague: tuple[Role, int]  # same organisation, another caller
    other: tuple[Role, int] | None  # a user of another partner
    denied: tuple[Role, ...]

    @property
    def query(self) -> str:
        return (
            f"mutation($input: {self.input_type}!) {{ {self.mutation}(input: $input) {{ "
            f"{self.record} {{ id {self.fields} }} userErrors {{ code field }} }} }}"
        )


async def _registry(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    await seed_registry(db, clock, tenant, 4)


async def _catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)


async def _nothing(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    return None


def _claim(clock: OffsetClock, tenant: Tenant, variant: int) -> dict[str, Any]:
    return {
        "serials": ["SN000001"],
        "customerName": f"Secret Customer {variant}",
        "invoiceNumber": f"INV-{variant}",
        "saleDate": clock.now().date().isoformat(),
        "amount": {"amount": f"{150 + variant}.00", "currency": "USD"},
        "idempotencyKey": "shared-key",
    }


def _deal(clock: OffsetClock, tenant: Tenant, variant: int) -> dict[str, Any]:
    return {
        "customer": {"name": f"Secret Customer {variant}", "domain": f"c{variant}.example",
                     "country": "US"},
        "estimatedValue": {"amount": "10000.00", "currency": "USD"},
        "expectedCloseDate": future(clock),
        "lines": [{"sku": "NW-ROUTER-X1", "quantity": 5 + variant}],
        "idempotencyKey": "shared-key",
    }  # fmt: skip


def _adjustment(clock: OffsetClock, tenant: Tenant, variant: int) -> dict[str, Any]:
    return {
        "partnerId": gid("Partner", tenant.partners[0].id),
        "amount": {"amount": f"-{12 + variant}.50", "currency": "USD"},
        "note": f"secret correction {variant}",
        "idempotencyKey": "shared-key",
    }


SPECS = [
    Spec("saleClaimCreate", "saleClaim", SaleClaim, "customerName", "SaleClaimCreateInput",
         _registry, _claim, (Role.PARTNER_ADMIN, 0), (Role.PARTNER_REP, 0),
         (Role.PARTNER_REP, 1), (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE)),
    Spec("dealRegistrationSubmit", "dealRegistration", DealRegistration, "customer { name }",
         "DealRegistrationSubmitInput", _catalogue, _deal, (Role.PARTNER_ADMIN, 0),
         (Role.PARTNER_REP, 0), (Role.PARTNER_REP, 1), (Role.FINANCE,)),
    Spec("earningAdjustmentCreate", "entry", EarningEntry, "rule", "EarningAdjustmentCreateInput",
         _nothing, _adjustment, (Role.FINANCE, 0), (Role.VENDOR_ADMIN, 0), None,
         (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP)),
]  # fmt: skip
IDS = [s.mutation for s in SPECS]


async def _count(db: Database, model: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _counts(db: Database, spec: Spec) -> tuple[int, int]:
    return await _count(db, spec.model), await _count(db, IdempotencyKey)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
async def test_a_key_answers_its_own_caller_with_the_same_request_only(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, spec: Spec
) -> None:
    await spec.setup(db, clock, tenant)
    await spec.setup(db, clock, other_tenant)
    before = await _counts(db, spec)

    async def send(user_of: tuple[Role, int], body: dict[str, Any], on: Tenant = tenant) -> Any:
        return await gql(spec.query, {"input": body}, as_user=on.user(*user_of))

    def result(payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = payload["data"][spec.mutation]
        return out

    body = spec.body(clock, tenant, 0)
    # Refused callers change nothing (no record, no key taken).
    assert error_codes(await gql(spec.query, {"input": body})) == ["UNAUTHENTICATED"]
    for role in spec.denied:
        assert error_codes(await send((role, 0), body)) == ["FORBIDDEN"]
    assert await _counts(db, spec) == before

    first = result(await send(spec.first, body))
    assert first["userErrors"] == []
    first_id = first[spec.record]["id"]
    after_first = await _counts(db, spec)
    assert after_first[1] == before[1] + 1

    # The same caller, the same request: the first result, nothing written.
    again = result(await send(spec.first, body))
    assert again[spec.record] == first[spec.record]
    assert await _counts(db, spec) == after_first

    # The same caller, another request: refused, nothing written.
    reused = result(await send(spec.first, spec.body(clock, tenant, 1)))
    assert reused == {
        spec.record: None,
        "userErrors": [{"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}],
    }
    assert await _counts(db, spec) == after_first

    # Anyone else's use of the key string is their own key: a record of their own (its
    # retry answers with it), never the first caller's record, whatever they send.
    seen = {first_id}
    others = [(spec.colleague, tenant, 0), (spec.first, other_tenant, 0)]
    if spec.other is not None:
        others.append((spec.other, tenant, 2))
    for user_of, on, variant in others:
        sent = spec.body(clock, on, variant)
        mine = result(await send(user_of, sent, on))
        assert mine["userErrors"] == [], (user_of, mine)
        assert mine[spec.record]["id"] not in seen
        seen.add(mine[spec.record]["id"])
        retried = result(await send(user_of, sent, on))
        assert retried[spec.record] == mine[spec.record]
    assert len(seen) == 1 + len(others)


async def test_a_partner_rep_sending_its_admins_key_never_gets_the_admins_claim(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The reported probe: the rep's request (another body, the admin's key) used to be
    answered with the admin's claim in full, though `saleClaim(id)` is null to the rep."""
    spec = SPECS[0]
    await spec.setup(db, clock, tenant)
    admin, rep = tenant.user(Role.PARTNER_ADMIN), tenant.user(Role.PARTNER_REP)
    body = spec.body(clock, tenant, 0)
    admins = await gql.data(spec.query, {"input": body}, as_user=admin)
    admin_claim = admins[spec.mutation][spec.record]
    probe = await gql(spec.query, {"input": spec.body(clock, tenant, 7)}, as_user=rep)
    assert "Secret Customer 0" not in str(probe)
    assert probe["data"][spec.mutation][spec.record]["id"] != admin_claim["id"]
    read = await gql.data(
        "query($id: ID!) { saleClaim(id: $id) { id } }", {"id": admin_claim["id"]}, as_user=rep
    )
    assert read == {"saleClaim": None}


async def test_an_api_key_is_a_caller_of_its_own(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    spec = SPECS[2]
    created = await gql.data(
        'mutation { apiKeyCreate(input: {name: "ERP", role: FINANCE}) { secret } }',
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    secret = created["apiKeyCreate"]["secret"]
    body = {"input": spec.body(clock, tenant, 0)}
    by_user = await gql.data(spec.query, body, as_user=tenant.user(Role.FINANCE))
    by_key = await gql(spec.query, body, token=secret)
    assert (
        by_key["data"][spec.mutation][spec.record]["id"]
        != (by_user[spec.mutation][spec.record]["id"])
    )
    again = await gql(spec.query, body, token=secret)
    assert again == by_key


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
async def test_concurrent_retries_make_one_record(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, spec: Spec
) -> None:
    await spec.setup(db, clock, tenant)
    before = await _counts(db, spec)
    body = {"input": spec.body(clock, tenant, 0)}
    user = tenant.user(*spec.first)
    results = await asyncio.gather(*(gql.data(spec.query, body, as_user=user) for _ in range(4)))
    assert len({r[spec.mutation][spec.record]["id"] for r in results}) == 1
    assert await _counts(db, spec) == (before[0] + 1, before[1] + 1)
