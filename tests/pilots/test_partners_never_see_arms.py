"""Partners never learn that they are in a pilot, let alone in its control arm (issue 13,
item 4): a partner in control and one in treatment (same stratum) get the same answers to
every partner-facing read — their organisation, groups, earnings and their explanations, the
pilot's own queries and node ids, error messages — except the treatment program itself: it
is listed to (and its effect explained to) the treatment partner only; to the control partner
it is as absent as a program that does not exist, by list and by node id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.clock import OffsetClock
from infra.db import Database
from partners.events import GROUP_MEMBERSHIPS_CHANGED, GroupMembershipsChanged
from partners.models import Partner
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.pilots import scenarios as ps
from tests.pilots.test_pilots_api import PROGRAM, create, pilot_uuid
from tests.support import GQL, recorded

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARTNER_READS = """query($me: ID!, $pilot: ID!, $group: ID!, $treatment: ID!, $offer: ID!,
    $missing: ID!) {
  me { role partner { name tier programTier region status } }
  partner(id: $me) { name region tier groups { name } }
  mine: node(id: $me) { id }
  x1: node(id: $pilot) { id }
  x2: node(id: $group) { id }
  x3: node(id: $treatment) { id }
  programs: earningPrograms { edges { node { name kind } } }
  offer: node(id: $offer) { id }
  missing: node(id: $missing) { id }
  earnings { earned { amountMinor } pending { amountMinor } held { amountMinor }
    tier { currentTier rate nextTier } explanations { kind text } }
}"""
REFUSED = [
    "{ pilots { edges { node { id } } } }",
    "{ partnerGroups { edges { node { name } } } }",
]


def scrubbed(payload: dict[str, Any], partner: Partner, index: int) -> str:
    """The answer with the caller's own name and ids replaced, so that two partners' answers
    compare equal when they tell nothing apart."""
    text = json.dumps(payload, sort_keys=True)
    for own in (gid(partner), partner.name, str(partner.id)):
        text = text.replace(own, "<me>")
    return text.replace(f"Partner_admin {index}", "<user>")


async def test_a_control_partner_and_a_treatment_partner_see_nothing_that_tells_them_apart(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    clock.freeze(T0)
    tenant: Tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(PROGRAM, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": {"baseRates": [{"rateBp": 800}]}}}, as_user=admin)  # fmt: skip
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="3"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    treatment_group = pilot["treatmentGroup"]["id"]
    offer = await gql.data(PROGRAM, {"input": {"name": "Spring offer", "currency": "USD",
                   "kind": "BONUS", "rules": {"baseRates": [{"rateBp": 300}]},
                   "targetGroupIds": [treatment_group]}}, as_user=admin)  # fmt: skip
    clock.freeze(T0 + timedelta(hours=1))
    await gql.data(ps.START, {"input": {"id": pilot["id"]}}, as_user=admin)
    clock.freeze(T0 + timedelta(days=2))
    arms = await ps.arms(db, pilot_uuid(pilot["id"]))
    # The first stratum's two partners: one in each arm.
    same_stratum = [i for i, p in enumerate(tenant.partners) if i % len(ps.STRATA) == 0]
    by_arm = {arms[tenant.partners[i].id]: i for i in same_stratum}
    assert set(by_arm) == {"TREATMENT", "CONTROL"}

    offer_id = offer["earningProgramCreate"]["program"]["id"]
    missing_id = gid("EarningProgram", uuid.uuid4())

    async def seen(arm: str, role: Role) -> tuple[str, list[str], str, list[Any]]:
        index = by_arm[arm]
        partner = tenant.partners[index]
        user = tenant.user(role, index)
        variables = {"me": gid(partner), "pilot": pilot["id"], "group": group,
                     "treatment": treatment_group, "offer": offer_id,
                     "missing": missing_id}  # fmt: skip
        answer = await gql(PARTNER_READS, variables, as_user=user)
        # The program the partner's arm gets: set aside, compared below.
        programs = [answer["data"].pop("programs"), answer["data"].pop("offer")]
        texts = [
            e["text"] for e in answer["data"]["earnings"]["explanations"]
            if e["kind"] == "PROGRAM_NOW_APPLIES"
        ]  # fmt: skip
        answer["data"]["earnings"]["explanations"] = [
            e for e in answer["data"]["earnings"]["explanations"]
            if e["kind"] != "PROGRAM_NOW_APPLIES"
        ]  # fmt: skip
        refused = [await gql(q, as_user=user) for q in REFUSED]
        report = await gql(ps.REPORT, {"id": pilot["id"]}, as_user=user)
        everything = {"reads": answer, "refused": refused, "report": report}
        # What the server wrote (data and error messages), not the paths the caller sent.
        said = json.dumps([answer["data"], *(
            [e["message"] for e in r.get("errors", [])] for r in (answer, *refused, report)
        )])  # fmt: skip
        return scrubbed(everything, partner, index), texts, said, programs

    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        control, control_effect, said, control_programs = await seen("CONTROL", role)
        treatment, treatment_effect, _, treatment_programs = await seen("TREATMENT", role)
        assert control == treatment
        # The control partner sees the programs that apply to it, as if the offer did not
        # exist (its node answers as a missing id does); the treatment partner sees the offer.
        base = {"name": "Partner Rewards", "kind": "BASE"}
        assert control_programs == [{"edges": [{"node": base}]}, None]
        assert treatment_programs[1] == {"id": offer_id}
        assert [e["node"]["name"] for e in treatment_programs[0]["edges"]] == [
            "Partner Rewards", "Spring offer",
        ]  # fmt: skip
        # The one difference: the program's effect, named by the program alone.
        assert control_effect == []
        assert treatment_effect == [
            "From 02 Mar 2026 the Spring offer program (bonus program, paid on top of your "
            "base program) applies to your sales: 3% of every sale."
        ]
        for word in ("pilot", "control", "treatment", "boost test", " arm"):
            assert word not in said.lower(), word


async def test_a_pilots_start_and_end_tell_of_its_treatment_partners_only(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    """The membership events of a pilot's start and end (which push those partners' live
    next actions) name the treatment partners only: a control partner hears nothing, like
    a partner outside the pilot."""
    clock.freeze(T0)
    tenant: Tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="3"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    told_before = len(await _memberships_told(db))
    clock.freeze(T0 + timedelta(hours=1))
    await gql.data(ps.START, {"input": {"id": pilot["id"]}}, as_user=admin)
    clock.freeze(T0 + timedelta(days=1))
    await gql.data(ps.END, {"input": {"id": pilot["id"]}}, as_user=admin)
    arms = await ps.arms(db, pilot_uuid(pilot["id"]))
    treated = sorted(p for p, arm in arms.items() if arm == "TREATMENT")
    assert 0 < len(treated) < len(arms)
    started, ended = (await _memberships_told(db))[told_before:]
    assert sorted(started.partner_ids) == sorted(ended.partner_ids) == treated


async def _memberships_told(db: Database) -> list[GroupMembershipsChanged]:
    return [GroupMembershipsChanged.parse(p) for p in await recorded(db, GROUP_MEMBERSHIPS_CHANGED)]
