"""Every change of group memberships records ``GroupMembershipsChanged`` (who joined or left
which group) in the change's transaction: one event per change-set, split only past
``MEMBERSHIP_CHUNK`` partners and inserted in one statement, so a rule over thousands of
partners writes a handful of rows, not one per partner."""

from __future__ import annotations

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from partners import events, groups
from partners.events import GROUP_MEMBERSHIPS_CHANGED, GroupMembershipsChanged
from partners.group_models import MemberMode
from partners.roles import Role
from tests.factories import create_tenant
from tests.support import recorded


async def changes(db: Database) -> list[GroupMembershipsChanged]:
    return [GroupMembershipsChanged.parse(p) for p in await recorded(db, GROUP_MEMBERSHIPS_CHANGED)]


async def test_membership_changes_are_recorded_per_change_set_in_bounded_events(
    db: Database, clock: OffsetClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "MEMBERSHIP_CHUNK", 2)
    clock.freeze()
    async with db.transaction() as session:
        tenant = await create_tenant(session, clock, partners=5)  # all in EMEA
    admin = tenant.principal(Role.VENDOR_ADMIN)
    everyone = sorted(p.id for p in tenant.partners)
    made = await changes(db)  # creating partners joins no group: nothing recorded

    # A rule group over five partners: three events (2 + 2 + 1), each partner once.
    async with db.transaction() as session:
        group = await groups.create_group(
            session, admin, clock, name="EMEA", rule=[("region", "IN", ["EMEA"])]
        )
    created = (await changes(db))[len(made) :]
    assert [len(c.changes) for c in created] == [2, 2, 1]
    assert [p for c in created for p in c.partner_ids] == everyone
    assert all(m.joined == [group.id] and m.left == [] for c in created for m in c.changes)

    # One partner removed explicitly: one event, that partner leaving.
    async with db.transaction() as session:
        await groups.set_members(session, admin, clock, group_id=group.id,
                                 partner_ids=[everyone[0]], mode=MemberMode.EXCLUDE)  # fmt: skip
    [removed] = (await changes(db))[len(made) + 3 :]
    assert [(m.partner_id, m.joined, m.left) for m in removed.changes] == [
        (everyone[0], [], [group.id])
    ]
    assert removed.at == clock.now()

    # Nothing changes: nothing recorded.
    async with db.transaction() as session:
        await groups.refresh_memberships(
            session, clock, vendor_id=tenant.vendor.id, reason="again", by="test"
        )
    assert len(await changes(db)) == len(made) + 4
