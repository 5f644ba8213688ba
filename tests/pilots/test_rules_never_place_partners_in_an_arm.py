"""A rule's group window never targets a pilot's treatment group (it would put partners in
the treatment that the draw put in control): refused with a code, nothing changed, whether
through GraphQL or the groups service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from incentives.models import IncentiveRule
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners import groups
from partners.errors import GroupErrorCode
from partners.group_models import PartnerGroup
from partners.roles import Role
from pilots.models import Pilot
from tests.factories import gid
from tests.incentives.test_bad_input_and_roles import CREATE
from tests.pilots import scenarios as ps
from tests.pilots.test_pilots_api import create, pilot_uuid
from tests.support import GQL

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


async def test_a_group_window_into_a_treatment_group_is_refused(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="7"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    await gql.data(ps.START, {"input": {"id": pilot["id"]}}, as_user=admin)
    async with db.session() as session:
        stored = await session.get(Pilot, pilot_uuid(pilot["id"]))
        assert stored is not None
        treatment = stored.treatment_group_id
    before = await ps.counts(db)
    refused = await gql.data(CREATE, {"input": {
        "name": "Sneak in", "condition": "revenue_30d >= 0",
        "actions": [{"kind": "GROUP_WINDOW", "groupId": gid("PartnerGroup", treatment)}],
    }}, as_user=admin)  # fmt: skip
    result = refused["incentiveRuleCreate"]
    assert result["rule"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("MANAGED_GROUP", "actions.0.groupId")
    ]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(IncentiveRule)) == 0
    # The groups service refuses a window into it too (a rule drafted before this check).
    async with db.transaction() as session:
        arm = await session.get(PartnerGroup, treatment)
        assert arm is not None
        with pytest.raises(DomainError) as raised:
            await groups.open_window(
                session, clock, group=arm, partner_id=tenant.partners[0].id,
                until=T0 + timedelta(days=3), reason="Rule x", by="rule:x",
            )  # fmt: skip
    assert raised.value.code == GroupErrorCode.MANAGED
    assert await ps.counts(db) == before
