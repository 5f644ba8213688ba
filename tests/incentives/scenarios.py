"""Incentive rule scenarios: a vendor with a base program, a promotion group ("Boost") with
a bonus program targeting it, a second vendor admin (four eyes), and a partner whose
revenue grew 24 % week over week (1,000.00 USD the week before, 1,240.00 this week)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from earnings import programs
from earnings.models import ProgramKind
from earnings.programs import BaseRate, Rules
from infra.clock import OffsetClock
from infra.db import Database
from partners import groups
from partners import service as partners_service
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, gid

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
GROWTH = "revenue_growth_wow != null && revenue_growth_wow >= 0.2"


@dataclass
class Shop:
    tenant: Tenant
    author: User  # drafts rules
    approver: User  # the second vendor admin
    base_program_id: uuid.UUID
    boost_group_id: uuid.UUID
    boost_program_id: uuid.UUID

    def gid(self, kind: str) -> str:
        ids = {
            "base": ("EarningProgram", self.base_program_id),
            "group": ("PartnerGroup", self.boost_group_id),
            "boost": ("EarningProgram", self.boost_program_id),
        }
        type_name, row_id = ids[kind]
        return gid(type_name, row_id)


async def settle(services: Services) -> None:
    """Dispatch until the outbox is empty (credits, then signals, then rules)."""
    while await dispatch(services):
        pass


async def shop(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> Shop:
    """The vendor set up 40 days before T0, partner 0's sales a week apart (it grew 24 %),
    partner 1's one sale at T0 (no growth figure); the clock left at T0."""
    clock.freeze(T0 - timedelta(days=40))
    admin = tenant.principal(Role.VENDOR_ADMIN)

    async def setup(session: Any) -> tuple[User, uuid.UUID, uuid.UUID, uuid.UUID]:
        approver = await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id,
            email=f"second-admin-{uuid.uuid4().hex[:6]}@x.example", role=Role.VENDOR_ADMIN,
            display_name="Second Admin",
        )  # fmt: skip
        base = await programs.create_program(
            session, admin, clock, name="Partner Rewards", currency="USD",
            rules=Rules(base_rates=(BaseRate(rate_bp=800),)), effective_from=clock.now(),
        )  # fmt: skip
        group = await groups.create_group(session, admin, clock, name="Boost")
        boost = await programs.create_program(
            session, admin, clock, name="Boost bonus", currency="USD",
            rules=Rules(base_rates=(BaseRate(rate_bp=200),)), effective_from=clock.now(),
            kind=ProgramKind.BONUS, target_group_ids=[group.id],
        )  # fmt: skip
        return approver, base.program_id, group.id, boost.program_id

    approver, base_id, group_id, boost_id = await es.tx(db, setup)
    clock.freeze(T0 - timedelta(days=8))
    await es.sale(db, clock, tenant, 1_000_00, partner_index=0)
    await settle(services)
    clock.freeze(T0)
    await es.sale(db, clock, tenant, 1_240_00, partner_index=0)
    await es.sale(db, clock, tenant, 500_00, partner_index=1)
    await settle(services)
    return Shop(tenant, tenant.user(Role.VENDOR_ADMIN), approver, base_id, group_id, boost_id)
