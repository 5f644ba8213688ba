"""Time alone moves a partner's tier: ``tier_moves_at`` names the instant the next sale or,
under an approved-claims gate, the next decided claim leaves the trailing window, and the
tier read one tick before it and at it differ (the live next actions wake then:
tests/next_actions/test_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.composition import build_claim_signals
from deal_registration.sales.models import SaleClaim
from earnings import service
from earnings.repository import Scope
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant
from tests.support import GQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_a_rejected_claim_leaving_the_window_frees_the_gate_at_the_instant_named(
    db: Database, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    claim_id = await es.share_gated_partner(db, gql, clock, tenant, services, T0)
    scope, signals = Scope(tenant.vendor.id, tenant.partners[0].id), build_claim_signals()
    async with db.session() as session:
        made_at = (await session.get(SaleClaim, claim_id)).created_at  # type: ignore[union-attr]

        async def tier_at(at: datetime) -> str | None:
            status = await service.tier_status(session, scope, "USD", at, signals)
            assert status is not None
            return status.tier.name if status.tier else None

        status = await service.tier_status(session, scope, "USD", T0, signals)
        assert status is not None
        moves = await service.tier_moves_at(session, scope, "USD", T0, status, signals)
        assert moves == made_at + timedelta(days=30) + service.TICK  # before the sale's
        assert await tier_at(moves - service.TICK) is None  # 0 % approved: Silver's gate shut
        assert await tier_at(moves) == "Silver"  # no decided claim left: the gate holds
