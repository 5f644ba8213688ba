"""Protection: one protected registration per customer (also under concurrent approvals, on
whichever database the run uses), overrides, expiry by the injected clock, extensions, and
the events approval and WON record."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deal_registration.events import (
    DEAL_APPROVED,
    DEAL_PROTECTION_CHANGED,
    DEAL_WON,
    DealApproved,
    DealProtectionChanged,
    DealWon,
)
from deal_registration.registrations import (
    expiry,
    extensions,
    outcome,
    repository,
    review,
    submission,
)
from deal_registration.registrations.models import (
    DealAction,
    DealRegistration,
    DealStatus,
)
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from infra.outbox import OutboxEvent
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import (
    APPROVE,
    DEALS,
    DECIDE_EXTENSION,
    REQUEST_EXTENSION,
    SUBMIT,
    register,
    registration_input,
    snapshot,
    submit_input,
)
from tests.factories import Tenant, add_products, gid, principal_of
from tests.support import GQL, error_codes


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


async def protected_rows(db: Database, domain: str) -> list[DealRegistration]:
    async with db.session() as session:
        rows = await session.exec(
            select(DealRegistration).where(
                DealRegistration.customer_domain == domain,
                DealRegistration.status == DealStatus.APPROVED,
                col(DealRegistration.is_protected).is_(True),
            )
        )
        return list(rows)


# --- the race ----------------------------------------------------------------------------


async def test_concurrent_approvals_leave_exactly_one_protected(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """Two reviewers approve conflicting registrations at the same moment, several times
    over: every time exactly one ends protected and the other is told to override."""
    t = catalogue
    admin, manager = t.user(Role.VENDOR_ADMIN), t.user(Role.CHANNEL_MANAGER)
    for word in ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"):
        domain = f"{word.lower()}.example"
        a = await register(
            db, clock, t.user(Role.PARTNER_REP, 0), review_as=manager,
            customer_name=f"{word} Inc", customer_domain=domain,
        )  # fmt: skip
        b = await register(
            db, clock, t.user(Role.PARTNER_REP, 1), review_as=admin,
            customer_name=f"{word} LLC", customer_domain=f"www.{domain}",
        )  # fmt: skip

        async def approve(reviewer: Any, registration: DealRegistration) -> str:
            try:
                async with db.transaction() as session:
                    await review.approve(
                        session, principal_of(reviewer), clock, registration_id=registration.id
                    )
            except DomainError as error:
                return error.code.value
            return "APPROVED"

        outcomes = await asyncio.gather(approve(manager, a), approve(admin, b))
        assert sorted(outcomes) == ["APPROVED", "OVERRIDE_REQUIRED"], outcomes
        assert len(await protected_rows(db, domain)) == 1
        async with db.session() as session:
            loser = a if outcomes[1] == "APPROVED" else b
            fresh = await session.get(DealRegistration, loser.id)
            assert fresh is not None
            assert fresh.status is DealStatus.UNDER_REVIEW  # rolled back, unchanged


async def test_concurrent_approvals_over_http(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    admin, manager = t.user(Role.VENDOR_ADMIN), t.user(Role.CHANNEL_MANAGER)
    a = await register(db, clock, t.user(Role.PARTNER_REP, 0), review_as=manager)
    b = await register(db, clock, t.user(Role.PARTNER_REP, 1), review_as=admin)
    results = await asyncio.gather(
        gql.data(APPROVE, {"input": {"id": gid(a)}}, as_user=manager),
        gql.data(APPROVE, {"input": {"id": gid(b)}}, as_user=admin),
    )
    codes = sorted(
        [e["code"] for e in r["dealRegistrationApprove"]["userErrors"]] or ["OK"] for r in results
    )
    assert codes == [["OK"], ["OVERRIDE_REQUIRED"]]
    assert len(await protected_rows(db, "acme.com")) == 1


async def test_the_database_refuses_a_second_protected_registration(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """The partial unique index is the last line: even code that skipped the service could
    not protect the same customer twice."""
    t = catalogue
    first = await register(db, clock, t.user(Role.PARTNER_REP, 0), approve_as=t.user(
        Role.VENDOR_ADMIN))  # fmt: skip
    second = await register(db, clock, t.user(Role.PARTNER_REP, 1))
    assert first.is_protected
    async with db.session() as session:
        row = await session.get(DealRegistration, second.id)
        assert row is not None
        row.status = DealStatus.APPROVED
        row.is_protected = True
        session.add(row)
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()


# --- override ----------------------------------------------------------------------------

OVERRIDE_FIELDS = "query($id: ID!) { deal(id: $id) { status protected overrideReason } }"


async def test_approving_a_conflict_of_a_protected_registration_needs_an_override(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    admin = t.user(Role.VENDOR_ADMIN)
    await register(db, clock, t.user(Role.PARTNER_REP, 0), approve_as=admin)
    # A different domain, but the same company by name: the name rule finds it.
    rival = await register(
        db, clock, t.user(Role.PARTNER_REP, 1), review_as=admin,
        customer_name="ACME Corporation", customer_domain="acme-corp.net",
    )  # fmt: skip
    before = await snapshot(db, rival.id)
    refused = await gql.data(APPROVE, {"input": {"id": gid(rival)}}, as_user=admin)
    [error] = refused["dealRegistrationApprove"]["userErrors"]
    assert (error["field"], error["code"]) == ("overrideReason", "OVERRIDE_REQUIRED")
    assert t.partners[0].name in error["message"]  # reviewers may know who holds it
    assert await snapshot(db, rival.id) == before

    done = await gql.data(
        APPROVE,
        {"input": {"id": gid(rival), "reason": "Approved as co-sell.",
                   "overrideReason": "Customer asked for both resellers."}},
        as_user=admin,
    )  # fmt: skip
    deal = done["dealRegistrationApprove"]["dealRegistration"]
    assert deal["status"] == "APPROVED"
    assert deal["protected"] is False
    assert deal["history"][-1]["reason"] == "Approved as co-sell."
    assert len(await protected_rows(db, "acme.com")) == 1

    staff = await gql.data(OVERRIDE_FIELDS, {"id": gid(rival)}, as_user=admin)
    assert staff["deal"]["overrideReason"] == "Customer asked for both resellers."
    partner = await gql(
        OVERRIDE_FIELDS,
        {"id": gid(rival)},
        as_user=t.user(Role.PARTNER_REP, 1),
    )
    assert error_codes(partner) == ["FORBIDDEN"]
    assert "Customer asked" not in str(partner)


# --- expiry ------------------------------------------------------------------------------


async def test_protection_ends_on_time_for_queries_and_conflict_checks_alike(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    clock.freeze()
    t = catalogue
    admin = t.user(Role.VENDOR_ADMIN)
    rep1 = t.user(Role.PARTNER_REP, 1)
    holder = await register(db, clock, t.user(Role.PARTNER_REP, 0), approve_as=admin)
    assert holder.expires_at == clock.now() + timedelta(days=90)

    async def status_of(user: Any) -> dict[str, Any]:
        data = await gql.data(
            "query($id: ID!) { deal(id: $id) { status protected } }", {"id": gid(holder)},
            as_user=user,
        )  # fmt: skip
        result: dict[str, Any] = data["deal"]
        return result

    clock.advance(timedelta(days=90) - timedelta(seconds=1))
    assert await status_of(admin) == {"status": "APPROVED", "protected": True}
    blocked = await gql.data(SUBMIT, {"input": submit_input(clock)}, as_user=rep1)
    assert blocked["dealRegistrationSubmit"]["dealRegistration"]["conflictReasons"] == [
        "DOMAIN", "NAME"
    ]  # fmt: skip
    withdrawn = await gql.data(
        "mutation($input: DealRegistrationActionInput!) { dealRegistrationWithdraw(input: $input)"
        " { userErrors { code } } }",
        {"input": {"id": blocked["dealRegistrationSubmit"]["dealRegistration"]["id"]}},
        as_user=rep1,
    )  # fmt: skip
    assert withdrawn["dealRegistrationWithdraw"]["userErrors"] == []

    clock.advance(timedelta(seconds=1))  # the instant protection ends; nobody acts
    for user in (admin, t.user(Role.PARTNER_REP, 0)):
        assert await status_of(user) == {"status": "EXPIRED", "protected": False}
    expired = await gql.data(DEALS, {"filter": {"status": ["EXPIRED"]}}, as_user=admin)
    assert [e["node"]["id"] for e in expired["deals"]["edges"]] == [gid(holder)]
    approved = await gql.data(DEALS, {"filter": {"status": ["APPROVED"]}}, as_user=admin)
    assert approved["deals"]["totalCount"] == 0
    # The customer is free: a new registration meets no conflict, and approval protects it.
    free = await gql.data(SUBMIT, {"input": submit_input(clock, notes="second try")}, as_user=rep1)
    new = free["dealRegistrationSubmit"]["dealRegistration"]
    assert new["conflictReasons"] == []
    await gql.data(
        "mutation($input: DealRegistrationIdInput!) { dealRegistrationStartReview(input: $input) "
        "{ userErrors { code } } }", {"input": {"id": new["id"]}}, as_user=admin,
    )  # fmt: skip
    result = await gql.data(APPROVE, {"input": {"id": new["id"]}}, as_user=admin)
    assert result["dealRegistrationApprove"]["userErrors"] == []
    assert result["dealRegistrationApprove"]["dealRegistration"]["protected"] is True
    # The approval wrote the old expiry down, as a system transition.
    async with db.session() as session:
        history = await repository.history_of(session, holder.id)
    assert (history[-1].action, history[-1].actor_role) == (DealAction.EXPIRE, "SYSTEM")
    assert history[-1].at == clock.now()


async def test_the_sweep_writes_expiries_down_once(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    clock.freeze()
    t = catalogue
    reg = await register(db, clock, t.user(Role.PARTNER_REP), approve_as=t.user(Role.VENDOR_ADMIN))
    async with db.transaction() as session:
        assert await expiry.expire_due(session, clock) == 0
    clock.advance(timedelta(days=91))
    async with db.transaction() as session:
        assert await expiry.expire_due(session, clock) == 1
    async with db.transaction() as session:
        assert await expiry.expire_due(session, clock) == 0
    async with db.session() as session:
        row = await session.get(DealRegistration, reg.id)
        assert row is not None
        assert row.status is DealStatus.EXPIRED
        transitions = await repository.history_of(session, reg.id)
    assert [tr.action for tr in transitions].count(DealAction.EXPIRE) == 1


# --- extensions --------------------------------------------------------------------------


async def test_extensions_requested_by_partners_decided_by_reviewers(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    clock.freeze()
    t = catalogue
    rep, manager = t.user(Role.PARTNER_REP), t.user(Role.CHANNEL_MANAGER)
    reg = await register(db, clock, rep, approve_as=manager)
    original = reg.expires_at
    assert original is not None

    async def ask(reason: str = "Board meeting moved.") -> dict[str, Any]:
        data = await gql.data(
            REQUEST_EXTENSION,
            {"input": {"id": gid(reg), "reason": reason}},
            as_user=rep,
        )
        result: dict[str, Any] = data["dealRegistrationExtensionRequest"]
        return result

    async def decide(grant: bool, reason: str = "", user: Any = manager) -> dict[str, Any]:
        data = await gql.data(
            DECIDE_EXTENSION, {"input": {"id": gid(reg), "grant": grant, "reason": reason}},
            as_user=user,
        )  # fmt: skip
        result: dict[str, Any] = data["dealRegistrationExtensionDecide"]
        return result

    def codes(result: dict[str, Any]) -> list[str]:
        return [e["code"] for e in result["userErrors"]]

    assert codes(await decide(True)) == ["NO_PENDING_EXTENSION"]
    assert codes(await ask("")) == ["REQUIRED"]
    assert codes(await ask()) == []
    assert codes(await ask()) == ["EXTENSION_PENDING"]
    partner_decides = await gql(
        DECIDE_EXTENSION,
        {"input": {"id": gid(reg), "grant": True}},
        as_user=rep,
    )
    assert error_codes(partner_decides) == ["FORBIDDEN"]
    assert codes(await decide(False)) == ["REQUIRED"]
    granted = await decide(True)
    assert granted["dealRegistration"]["extensionsGranted"] == 1

    # Past the original end, the registration is still approved and protected.
    clock.advance(timedelta(days=95))
    assert codes(await ask()) == []
    assert codes(await decide(False, "Enough.")) == []
    assert codes(await ask()) == []
    second = await decide(True)
    assert second["dealRegistration"]["status"] == "APPROVED"
    assert second["dealRegistration"]["extensionsGranted"] == 2
    # The vendor allows two.
    before = await snapshot(db, reg.id)
    assert codes(await ask()) == ["EXTENSION_LIMIT_REACHED"]
    assert await snapshot(db, reg.id) == before
    async with db.session() as session:
        row = await session.get(DealRegistration, reg.id)
        history = await repository.history_of(session, reg.id)
    assert row is not None
    assert row.expires_at == original + timedelta(days=60)
    assert [h.action for h in history if "EXTENSION" in h.action.value] == [
        DealAction.REQUEST_EXTENSION, DealAction.GRANT_EXTENSION,
        DealAction.REQUEST_EXTENSION, DealAction.REFUSE_EXTENSION,
        DealAction.REQUEST_EXTENSION, DealAction.GRANT_EXTENSION,
    ]  # fmt: skip


# --- events ------------------------------------------------------------------------------


async def events_of(db: Database, type_: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == type_).order_by(col(OutboxEvent.id))
        )
        return list(rows)


async def test_approval_and_won_record_events(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    clock.freeze()
    t = catalogue
    rep = t.user(Role.PARTNER_REP)
    reg = await register(
        db, clock, rep, approve_as=t.user(Role.VENDOR_ADMIN), estimated_value_minor=1_000_001,
        lines=[submission.LineInput("NW-ROUTER-X1", 2), submission.LineInput("NW-AP-6E", 3)],
    )  # fmt: skip
    [approved] = await events_of(db, DEAL_APPROVED)
    event = DealApproved.parse(approved.payload)
    assert event.registration_id == reg.id
    assert event.partner_id == t.partners[0].id
    assert event.rep_user_id == rep.id
    assert event.customer_domain == "acme.com"
    assert event.approved_at == clock.now()
    assert event.protected_until == clock.now() + timedelta(days=90)

    async with db.transaction() as session:
        await outcome.mark_won(session, principal_of(rep), clock, registration_id=reg.id)
    [won] = await events_of(db, DEAL_WON)
    deal_won = DealWon.parse(won.payload)
    assert deal_won.amount_minor == 1_000_001
    assert deal_won.currency == "USD"
    assert deal_won.region == t.partners[0].region
    assert sum(line.amount_minor for line in deal_won.lines) == 1_000_001
    assert {(line.sku, line.units) for line in deal_won.lines} == {
        ("NW-ROUTER-X1", 2), ("NW-AP-6E", 3)
    }  # fmt: skip
    assert won.aggregate_id == reg.id


async def test_concurrent_retries_with_one_idempotency_key_create_one_registration(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP)
    data = registration_input(clock)

    async def attempt() -> DealRegistration:
        async with db.transaction() as session:
            return await submission.submit_registration(
                session, principal_of(rep), clock, data=data, idempotency_key="double-click"
            )

    results = await asyncio.gather(*(attempt() for _ in range(4)))
    assert len({r.id for r in results}) == 1
    async with db.session() as session:
        rows = list(await session.exec(select(DealRegistration)))
    assert len(rows) == 1


async def test_a_granted_extension_records_the_moved_protection_end(
    db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """The status stays APPROVED, so no DealStatusChanged: DealProtectionChanged tells what
    reads the end (next actions, webhooks). A refusal moves nothing and records nothing."""
    clock.freeze()
    t = catalogue
    rep, manager = principal_of(t.user(Role.PARTNER_REP)), t.user(Role.CHANNEL_MANAGER)
    reg = await register(db, clock, t.user(Role.PARTNER_REP), approve_as=manager)
    assert reg.expires_at is not None
    for grant in (False, True):
        async with db.transaction() as session:
            await extensions.request_extension(
                session, rep, clock, registration_id=reg.id, reason="Board meeting moved."
            )
            await extensions.decide_extension(
                session, principal_of(manager), clock, registration_id=reg.id, grant=grant,
                reason="" if grant else "Not yet.",
            )  # fmt: skip
    [event] = await events_of(db, DEAL_PROTECTION_CHANGED)
    changed = DealProtectionChanged.parse(event.payload)
    assert (changed.registration_id, changed.partner_id) == (reg.id, reg.partner_id)
    assert changed.previous_until == reg.expires_at
    assert changed.protected_until == reg.expires_at + timedelta(days=30)
    assert (changed.action, changed.at) == ("GRANT_EXTENSION", clock.now())
