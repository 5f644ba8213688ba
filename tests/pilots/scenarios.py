"""Pilot scenarios: a vendor with eight partners in four strata (region x program tier) and
a group of all of them; the GraphQL documents the pilot tests send."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import func, select

from infra.clock import Clock
from infra.db import Database
from partners import groups
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.roles import Role
from pilots.models import Pilot, PilotAssignment
from tests.factories import Tenant, create_tenant

STRATA = [("EMEA", "REGISTERED"), ("EMEA", "PREMIER"), ("AMER", "REGISTERED"), ("AMER", "PREMIER")]

CREATE = """mutation($input: PilotCreateInput!) { pilotCreate(input: $input) {
  pilot { id name status seed endsAt startedAt endedAt group { name }
          treatmentGroup { id name } }
  userErrors { code field message } } }"""
START = """mutation($input: PilotInput!) { pilotStart(input: $input) {
  pilot { id status startedAt } userErrors { code field message } } }"""
EXTEND = """mutation($input: PilotExtendInput!) { pilotExtend(input: $input) {
  pilot { id endsAt } userErrors { code field message } } }"""
END = """mutation($input: PilotInput!) { pilotEnd(input: $input) {
  pilot { id status endedAt } userErrors { code field message } } }"""
ASSIGNMENTS = """query($id: ID!) { node(id: $id) { ... on Pilot { assignments(first: 100) {
  edges { node { arm stratum partner { id name } } } } } } }"""
REPORT = """query($id: ID!, $currency: String) { pilotReport(pilotId: $id, currency: $currency) {
  windowStart windowEnd currency confidenceLevel
  revenue { ...lift } margin { ...lift } payoutCost { ...lift }
  activation { treatmentActivated treatmentEligible controlActivated controlEligible
               treatmentRate controlRate difference intervalLow intervalHigh notes } } }
fragment lift on PilotMeanLift { treatmentPartners controlPartners treatmentMean { amountMinor }
  controlMean { amountMinor } difference { amountMinor } intervalLow { amountMinor }
  intervalHigh { amountMinor } relativeLift pValue notes }"""


async def pilot_tenant(db: Database, clock: Clock, partners: int = 8) -> Tenant:
    """Partners spread round-robin over the four strata; a group "Resellers" of them all."""
    async with db.transaction() as session:
        tenant = await create_tenant(session, clock, partners=partners)
        for i, partner in enumerate(tenant.partners):
            partner.region, partner.tier = STRATA[i % len(STRATA)]
            session.add(partner)
        await session.flush()
        await groups.create_group(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Resellers",
            rule=[("region", "IN", ["EMEA", "AMER"])],
        )  # fmt: skip
    return tenant


async def group_id(db: Database, tenant: Tenant, name: str) -> uuid.UUID:
    async with db.session() as session:
        return (
            await session.exec(
                select(PartnerGroup.id).where(
                    PartnerGroup.vendor_id == tenant.vendor.id, PartnerGroup.name == name
                )
            )
        ).one()


async def counts(db: Database) -> tuple[int, ...]:
    """Rows of what a pilot change writes (pilots, arms, groups, memberships)."""
    async with db.session() as session:
        out = []
        for table in (Pilot, PilotAssignment, PartnerGroup, PartnerGroupMembership):
            out.append(int((await session.exec(select(func.count()).select_from(table))).one()))
        return tuple(out)


async def arms(db: Database, pilot_id: uuid.UUID) -> dict[uuid.UUID, str]:
    async with db.session() as session:
        rows = await session.exec(
            select(PilotAssignment.partner_id, PilotAssignment.arm).where(
                PilotAssignment.pilot_id == pilot_id
            )
        )
        return {p: a.value for p, a in rows}


def create_input(group: str, ends_at: datetime, **extra: Any) -> dict[str, Any]:
    return {"name": "Boost test", "groupId": group, "endsAt": ends_at.isoformat(), **extra}
