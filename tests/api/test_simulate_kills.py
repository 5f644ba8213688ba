"""`channelboard simulate` SIGKILLed between a sale's two transactions (its claim committed,
waiting for review; its approval not yet run), then run again. Before, the rerun made new
claims and the killed run's claim stayed open in the demo vendor's review queue for good,
its serials taken: the sale was never approved. Now a run first carries on with the claims a
stopped run left open (approves them: each counts as one of its sales), so the books are
those of an uninterrupted run: every simulated claim approved, each once, credited once."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import col, select

from api.cli.demo import seed_demo
from api.settings import Settings
from deal_registration.sales import claim_settings
from deal_registration.sales.models import (
    CREDITED_STATES,
    OPEN_STATES,
    DecisionAction,
    SaleClaim,
    SaleClaimDecision,
)
from deal_registration.sales.simulate import VENDOR_ADMIN
from earnings.models import CreditedSource, SourceType
from infra.clock import OffsetClock
from infra.db import Database
from partners.models import User
from partners.roles import Principal
from schema.context import Services
from tests.api.test_simulate import _simulate, _simulated_claims
from tests.processes import KILLED, cli_killed_at

pytestmark = pytest.mark.slow


async def test_a_simulate_killed_between_claim_and_approval_is_carried_on_by_the_next_run(
    settings: Settings, db: Database, clock: OffsetClock, services: Services
) -> None:
    clock.reset()  # the command runs on the real clock
    await seed_demo(settings)
    await services.outbox.dispatch_pending()
    async with db.transaction() as session:
        admin = (await session.exec(select(User).where(User.email == VENDOR_ADMIN))).one()
        principal = Principal(vendor_id=admin.vendor_id, role=admin.role, user_id=admin.id)
        # Every claim waits for review: a sale is two transactions (claim, approval).
        await claim_settings.update_settings(session, principal, clock, auto_approve_limit_minor=0)

    async with services.outbox.paused():
        # Commits: the serials shipped (1), the claim (2); killed before its approval.
        code, output = await cli_killed_at(
            settings, "commit", 2, "simulate", "--count", "1", "--rate", "50"
        )
        assert code == KILLED, output
        [left] = await _simulated_claims(db)
        assert left.state in OPEN_STATES

        code, output = await _simulate(settings, "--count", "2", "--rate", "50")
    assert code == 0, output
    assert "2 sales approved" in output

    claims = await _simulated_claims(db)
    assert len(claims) == 2
    assert claims[0].id == left.id  # carried on with, not left open beside new ones
    assert all(c.state in CREDITED_STATES for c in claims), [c.state for c in claims]
    await services.outbox.dispatch_pending()
    async with db.session() as session:
        approvals = Counter(
            await session.exec(
                select(SaleClaimDecision.claim_id).where(
                    col(SaleClaimDecision.claim_id).in_([c.id for c in claims]),
                    SaleClaimDecision.action == DecisionAction.APPROVED,
                )
            )
        )
        fresh = {
            c.id: c
            for c in await session.exec(
                select(SaleClaim).where(col(SaleClaim.id).in_([c.id for c in claims]))
            )
        }
        events = [fresh[c.id].approved_event_id for c in claims]
        credited = Counter(
            await session.exec(
                select(CreditedSource.source_event_id).where(
                    col(CreditedSource.source_event_id).in_(events),
                    CreditedSource.source_type == SourceType.SALE_APPROVED,
                )
            )
        )
    assert approvals == {c.id: 1 for c in claims}
    assert None not in events
    assert credited == {e: 1 for e in events}
