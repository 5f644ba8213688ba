"""Time alone moves a partner's tier: ``tier_moves_at`` names the instant the next sale or,
under an approved-claims gate, the next decided claim leaves the trailing window, and the
tier read one tick before it and at it differ (the live next actions wake then:
tests/next_actions/test_live.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry import relay

from api.composition import build_claim_signals
from deal_registration.sales import review
from deal_registration.sales.models import RejectReason, SaleClaim
from earnings import service
from earnings.programs import BaseRate, Rules, Tier
from earnings.repository import Scope
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch
from tests.support import GQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GATED = Rules(
    base_rates=(BaseRate(rate_bp=800),), window_days=30,
    tiers=(Tier("Silver", 1_000_000, 100, min_approved_share_bp=5_000),
           Tier("Gold", 2_500_000, 200)),
)  # fmt: skip


async def test_a_rejected_claim_leaving_the_window_frees_the_gate_at_the_instant_named(
    db: Database, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(T0 - timedelta(days=40))
    await es.make_program(db, clock, tenant, GATED)
    await seed_registry(db, clock, tenant, 4)
    clock.freeze(T0 - timedelta(days=20))
    made = await gql.data(CREATE, {"input": claim_input(["SN000001"], clock)},
                          as_user=tenant.user(Role.PARTNER_REP, 0))  # fmt: skip
    claim_id = uuid.UUID(relay.GlobalID.from_id(made["saleClaimCreate"]["saleClaim"]["id"]).node_id)

    async def reject(session: Any) -> None:
        await review.reject(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, claim_id=claim_id,
            reason=RejectReason.OTHER,
        )  # fmt: skip

    await es.tx(db, reject)
    clock.freeze(T0 - timedelta(days=5))
    await es.sale(db, clock, tenant, 1_200_000)  # Silver's line, in the window until T0 + 25 d
    await dispatch(services)  # credited
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
