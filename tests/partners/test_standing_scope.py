"""Whose standing a caller may look into: the partner scope every other read uses (a
channel manager: its assigned partners only), for `explainStanding` and `standingsAround`
alike, and for partner and rep contests."""

from __future__ import annotations

from typing import Any

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest, ParticipantKind
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, error_codes

EXPLAIN = """
query($id: ID!, $p: ID) {
  explainStanding(contestId: $id, participantId: $p) {
    standing { rank score } credits { eventType points description }
  }
}"""

AROUND = """
query($id: ID!, $p: ID) {
  standingsAround(contestId: $id, participantId: $p, radius: 1) { rank score }
}"""


def _participant(tenant: Tenant, kind: ParticipantKind, partner: int) -> str:
    if kind is ParticipantKind.PARTNER:
        return gid("Partner", tenant.partners[partner].id)
    return gid("User", tenant.user(Role.PARTNER_REP, partner).id)


async def _contest_with_sales(
    db: Database, services: Services, clock: OffsetClock, tenant: Tenant, kind: ParticipantKind
) -> Contest:
    contest = await create_contest(db, clock, tenant, participant_kind=kind)
    for partner, amount in ((0, 300_00), (1, 500_00)):
        rep = tenant.user(Role.PARTNER_REP, partner).id
        await approve_sale(db, clock, tenant, partner=partner, amount=amount, rep=rep)
    await dispatch(services)
    return contest


@pytest.mark.parametrize("kind", [ParticipantKind.PARTNER, ParticipantKind.REP])
@pytest.mark.parametrize("query", [EXPLAIN, AROUND])
async def test_vendor_staff_look_into_standings_of_their_partners_only(
    gql: GQL,
    db: Database,
    services: Services,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    kind: ParticipantKind,
    query: str,
) -> None:
    contest = await _contest_with_sales(db, services, clock, tenant, kind)
    contest_id = gid("Contest", contest.id)

    def ask(partner: int) -> dict[str, Any]:
        return {"id": contest_id, "p": _participant(tenant, kind, partner)}

    assert error_codes(await gql(query, ask(1))) == ["UNAUTHENTICATED"]
    manager = tenant.user(Role.CHANNEL_MANAGER)  # assigned to partner 0 only
    refused = await gql(query, ask(1), as_user=manager)
    assert error_codes(refused) == ["NOT_FOUND"]
    assert refused["data"] is None  # nothing of partner 1's sales or score
    # Answered exactly like a participant that does not exist.
    unknown = {"id": contest_id, "p": _participant(other_tenant, kind, 0)}
    assert (await gql(query, unknown, as_user=manager))["errors"][0]["message"] == refused[
        "errors"
    ][0]["message"]
    assert error_codes(await gql(query, ask(0), as_user=tenant.user(Role.PARTNER_REP, 1))) == [
        "NOT_FOUND"
    ]
    assert error_codes(await gql(query, ask(1), as_user=other_tenant.user(Role.VENDOR_ADMIN))) == [
        "NOT_FOUND"
    ]
    own = await gql.data(query, ask(0), as_user=manager)
    assert own
    for role in (Role.VENDOR_ADMIN, Role.FINANCE):
        assert await gql.data(query, ask(1), as_user=tenant.user(role))
    if query is EXPLAIN:
        explained = (await gql.data(query, ask(0), as_user=manager))["explainStanding"]
        assert explained["standing"]["score"] == 300_00
        assert [c["points"] for c in explained["credits"]] == [300_00]
