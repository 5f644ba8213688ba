"""Pilots through GraphQL (issue 13, item 4): create (random, stratified, recorded arms from a
seed), start (the treatment arm joins its group, so a program targeting it pays the
treatment only), extend, end, the report; bad input coded and changing nothing; who may do
what, and that a refused call changes nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlmodel import col, func, select

from earnings.models import CreditedSource
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners import groups
from partners.group_models import MemberMode
from partners.roles import Role
from pilots.models import Pilot
from schema.context import Services
from schema.relay import parse_global_id
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, gid
from tests.pilots import scenarios as ps
from tests.pilots.scenarios import ASSIGNMENTS, CREATE, END, EXTEND, REPORT, START
from tests.support import GQL, error_codes, names_input_field

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROGRAM = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id } userErrors { code field } } }"""


def pilot_uuid(global_id: str) -> uuid.UUID:
    found = parse_global_id(global_id, "Pilot")
    assert found is not None
    return found


async def create(gql: GQL, tenant: Tenant, input: dict[str, object]) -> dict[str, object]:
    data = await gql.data(CREATE, {"input": input}, as_user=tenant.user(Role.VENDOR_ADMIN))
    return data["pilotCreate"]  # type: ignore[no-any-return]


async def test_arms_are_drawn_at_random_stratified_recorded_and_reproducible(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="42"))
    assert made["userErrors"] == []
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    assert (pilot["status"], pilot["seed"], pilot["group"]) == (
        "DRAFT",
        "42",
        {"name": "Resellers"},
    )
    assert pilot["treatmentGroup"]["name"] == "Pilot Boost test: treatment"
    data = await gql.data(ASSIGNMENTS, {"id": pilot["id"]}, as_user=tenant.user(Role.FINANCE))
    rows = [e["node"] for e in data["node"]["assignments"]["edges"]]
    assert len(rows) == 8
    per_stratum = Counter((r["stratum"], r["arm"]) for r in rows)
    for region, tier in ps.STRATA:
        assert per_stratum[(f"{region}|{tier}", "TREATMENT")] == 1
        assert per_stratum[(f"{region}|{tier}", "CONTROL")] == 1
    first = await ps.arms(db, pilot_uuid(pilot["id"]))
    # End it; the same seed over the same members draws the same arms again.
    await gql.data(END, {"input": {"id": pilot["id"]}}, as_user=tenant.user(Role.VENDOR_ADMIN))
    again = await create(gql, tenant, {**ps.create_input(group, T0 + timedelta(days=30),
                                       seed="42"), "name": "Again"})  # fmt: skip
    assert again["userErrors"] == []
    assert isinstance(again["pilot"], dict)
    assert await ps.arms(db, pilot_uuid(again["pilot"]["id"])) == first
    # Without a seed, one is drawn and recorded.
    await gql.data(END, {"input": {"id": again["pilot"]["id"]}},
                   as_user=tenant.user(Role.VENDOR_ADMIN))  # fmt: skip
    drawn = await create(gql, tenant, {**ps.create_input(group, T0 + timedelta(days=30)),
                                       "name": "Drawn"})  # fmt: skip
    assert isinstance(drawn["pilot"], dict)
    assert int(drawn["pilot"]["seed"]) >= 0


async def test_a_program_on_the_treatment_arm_pays_the_treatment_only_and_the_report_sees_it(
    gql: GQL, db: Database, clock: OffsetClock, services: Services
) -> None:
    clock.freeze(T0 - timedelta(days=40))
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(PROGRAM, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": {"baseRates": [{"rateBp": 800}]}}}, as_user=admin)  # fmt: skip
    # Two partners sold before the pilot: they cannot "activate" in it.
    await es.sale(db, clock, tenant, 100_00, partner_index=0, rep=False)
    await es.sale(db, clock, tenant, 100_00, partner_index=1, rep=False)
    await dispatch(services)
    clock.freeze(T0)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="7"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    boost = await gql.data(PROGRAM, {"input": {
        "name": "Boost", "currency": "USD", "kind": "BONUS",
        "rules": {"baseRates": [{"rateBp": 500}]},
        "targetGroupIds": [pilot["treatmentGroup"]["id"]],
    }}, as_user=admin)  # fmt: skip
    assert boost["earningProgramCreate"]["userErrors"] == []
    started = await gql.data(START, {"input": {"id": pilot["id"]}}, as_user=admin)
    assert started["pilotStart"]["pilot"]["status"] == "RUNNING"
    # Who it applies to: the arm for those who read pilots; for a channel manager, not an
    # empty list (that reads "every partner") but null, as for a group it may not read.
    targets = "query($id: ID!) { node(id: $id) { ... on EarningProgram { targetGroups { id } } } }"
    program = {"id": boost["earningProgramCreate"]["program"]["id"]}
    for role, expected in (
        (Role.VENDOR_ADMIN, [{"id": pilot["treatmentGroup"]["id"]}]),
        (Role.FINANCE, [{"id": pilot["treatmentGroup"]["id"]}]),
        (Role.CHANNEL_MANAGER, None),
    ):
        read = await gql.data(targets, program, as_user=tenant.user(role))
        assert read["node"]["targetGroups"] == expected, role
    arms = await ps.arms(db, pilot_uuid(pilot["id"]))
    index = {p.id: i for i, p in enumerate(tenant.partners)}
    clock.freeze(T0 + timedelta(days=1))
    for partner_id in arms:
        amount = 1_000_00 + 100_00 * index[partner_id]
        await es.sale(db, clock, tenant, amount, partner_index=index[partner_id], rep=False)
    await dispatch(services)
    clock.freeze(T0 + timedelta(days=10))
    data = await gql.data(REPORT, {"id": pilot["id"]}, as_user=tenant.user(Role.FINANCE))
    report = data["pilotReport"]
    assert report["windowStart"] == T0.isoformat()
    assert report["windowEnd"] == (T0 + timedelta(days=10)).isoformat()
    assert report["currency"] == "USD"
    assert report["confidenceLevel"] == 0.95
    revenue = {arm: [] for arm in ("TREATMENT", "CONTROL")}  # type: dict[str, list[int]]
    for partner_id, arm in arms.items():
        revenue[arm].append(1_000_00 + 100_00 * index[partner_id])
    cost = report["payoutCost"]
    expected_t = sum(r * 13 // 100 for r in revenue["TREATMENT"]) / 4  # 8% + 5% bonus
    expected_c = sum(r * 8 // 100 for r in revenue["CONTROL"]) / 4
    assert cost["treatmentMean"]["amountMinor"] == round(expected_t)
    assert cost["controlMean"]["amountMinor"] == round(expected_c)
    assert cost["difference"]["amountMinor"] == round(expected_t - expected_c)
    low, high = cost["intervalLow"]["amountMinor"], cost["intervalHigh"]["amountMinor"]
    assert low < cost["difference"]["amountMinor"] < high
    assert (cost["treatmentPartners"], cost["controlPartners"]) == (4, 4)
    assert any("Small sample" in note for note in cost["notes"])
    assert report["revenue"]["treatmentMean"]["amountMinor"] == sum(revenue["TREATMENT"]) // 4
    # Contribution margin: the catalogue margin less what each partner earned.
    async with db.session() as session:
        gross = dict(
            (await session.exec(
                select(CreditedSource.partner_id, func.sum(CreditedSource.margin_minor))
                .group_by(col(CreditedSource.partner_id))
            )).all()
        )  # fmt: skip
    for arm, rate in (("TREATMENT", 13), ("CONTROL", 8)):
        members = [p for p, a in arms.items() if a == arm]
        left = [gross[p] - (1_000_00 + 100_00 * index[p]) * rate // 100 for p in members]
        key = "treatmentMean" if arm == "TREATMENT" else "controlMean"
        assert report["margin"][key]["amountMinor"] == round(sum(left) / len(left))
    # Activation: six partners had never sold; all six sold in the window.
    activation = report["activation"]
    assert activation["treatmentEligible"] + activation["controlEligible"] == 6
    assert activation["treatmentActivated"] == activation["treatmentEligible"]
    assert activation["controlActivated"] == activation["controlEligible"]
    assert activation["difference"] == 0.0
    assert activation["intervalLow"] < 0 < activation["intervalHigh"]
    # Extend, then end: the treatment stops earning the bonus from the end on.
    extended = await gql.data(EXTEND, {"input": {"id": pilot["id"], "endsAt": (
        T0 + timedelta(days=60)).isoformat(), "reason": "more data"}}, as_user=admin)  # fmt: skip
    assert extended["pilotExtend"]["pilot"]["endsAt"] == (T0 + timedelta(days=60)).isoformat()
    ended = await gql.data(END, {"input": {"id": pilot["id"]}}, as_user=admin)
    assert ended["pilotEnd"]["pilot"]["status"] == "ENDED"
    treated = next(i for p, i in index.items() if arms[p] == "TREATMENT")
    clock.freeze(T0 + timedelta(days=11))
    after = await es.sale(db, clock, tenant, 1_000_00, partner_index=treated, rep=False)
    await dispatch(services)
    from tests.earnings.test_program_targets import credited  # noqa: PLC0415

    assert [name for name, _, _ in await credited(db, after.id)] == ["Partner Rewards"]
    final = await gql.data(REPORT, {"id": pilot["id"]}, as_user=admin)
    assert final["pilotReport"]["windowEnd"] == (T0 + timedelta(days=10)).isoformat()
    async with db.session() as session:
        actions = list(await session.exec(
            select(AuditEntry.action).where(AuditEntry.entity_type == "pilot")
            .order_by(col(AuditEntry.id))
        ))  # fmt: skip
    assert actions == ["pilot.created", "pilot.started", "pilot.extended", "pilot.ended"]


async def test_bad_input_is_coded_and_changes_nothing(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.principal(Role.VENDOR_ADMIN)
    resellers = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    empty = await es.tx(db, lambda s: groups.create_group(s, admin, clock, name="Empty"))
    single = await es.tx(db, lambda s: groups.create_group(s, admin, clock, name="Single"))
    await es.tx(db, lambda s: groups.set_members(
        s, admin, clock, group_id=single.id, partner_ids=[tenant.partners[0].id],
        mode=MemberMode.INCLUDE,
    ))  # fmt: skip
    later = T0 + timedelta(days=30)
    before = await ps.counts(db)
    cases = [
        (ps.create_input(gid("PartnerGroup", empty.id), later), "EMPTY_GROUP", "groupId"),
        (ps.create_input(gid("PartnerGroup", single.id), later), "TOO_FEW_PARTNERS", "groupId"),
        (ps.create_input(resellers, T0 - timedelta(days=1)), "INVALID_DATE", "endsAt"),
        (ps.create_input(resellers, T0), "INVALID_DATE", "endsAt"),
        (ps.create_input(resellers, T0 + timedelta(days=733)), "INVALID_DATE", "endsAt"),
        (ps.create_input(resellers, later, seed="-3"), "INVALID_SEED", "seed"),
        (ps.create_input(resellers, later, seed="x"), "INVALID_SEED", "seed"),
        ({**ps.create_input(resellers, later), "name": " "}, "REQUIRED", "name"),
        (ps.create_input(gid("PartnerGroup", uuid.uuid4()), later), "NOT_FOUND", "groupId"),
    ]
    for input, code, field in cases:
        result = await create(gql, tenant, input)
        assert result["pilot"] is None
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, field)], input
    assert await ps.counts(db) == before
    # A pilot exists; another on the same partners overlaps, its treatment group is no
    # eligible group, a second pilot of the same name is refused.
    made = await create(gql, tenant, ps.create_input(resellers, later))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    before = await ps.counts(db)
    single_id = gid("PartnerGroup", single.id)
    for input, code in (
        ({**ps.create_input(single_id, later), "name": "Other"}, "TOO_FEW_PARTNERS"),
        ({**ps.create_input(resellers, later), "name": "Other"}, "OVERLAPPING_PILOT"),
        ({**ps.create_input(pilot["treatmentGroup"]["id"], later), "name": "O"},
         "INELIGIBLE_GROUP"),
    ):  # fmt: skip
        result = await create(gql, tenant, input)
        assert [e["code"] for e in result["userErrors"]] == [code]
    # Half the partners in another group: still overlapping.
    half = await es.tx(db, lambda s: groups.create_group(
        s, admin, clock, name="Half", rule=[("region", "IN", ["AMER"])]
    ))  # fmt: skip
    result = await create(gql, tenant, {**ps.create_input(gid("PartnerGroup", half.id), later),
                                        "name": "Half pilot"})  # fmt: skip
    assert [e["code"] for e in result["userErrors"]] == ["OVERLAPPING_PILOT"]
    assert "4 partners" in result["userErrors"][0]["message"]
    assert (await ps.counts(db))[:2] == before[:2]
    # Report before start; extend to an earlier end; end a draft twice; start an ended one.
    vendor_admin = tenant.user(Role.VENDOR_ADMIN)
    early = await gql(REPORT, {"id": pilot["id"]}, as_user=vendor_admin)
    assert error_codes(early) == ["NOT_STARTED"]
    assert early["errors"][0]["extensions"]["field"] == "pilotId"  # the argument's name
    bad_extend = await gql.data(EXTEND, {"input": {"id": pilot["id"], "endsAt": (
        T0 + timedelta(days=10)).isoformat()}}, as_user=vendor_admin)  # fmt: skip
    assert [e["code"] for e in bad_extend["pilotExtend"]["userErrors"]] == ["INVALID_DATE"]
    too_far = await gql.data(EXTEND, {"input": {"id": pilot["id"], "endsAt": (
        "9000-01-01T00:00:00Z")}}, as_user=vendor_admin)  # fmt: skip
    assert [e["code"] for e in too_far["pilotExtend"]["userErrors"]] == ["INVALID_DATE"]
    clock.freeze(later + timedelta(days=1))
    late_start = await gql.data(START, {"input": {"id": pilot["id"]}}, as_user=vendor_admin)
    assert [e["code"] for e in late_start["pilotStart"]["userErrors"]] == ["INVALID_DATE"]
    before = await ps.counts(db)
    await gql.data(END, {"input": {"id": pilot["id"]}}, as_user=vendor_admin)
    for mutation, name in ((END, "pilotEnd"), (START, "pilotStart")):
        again = await gql.data(mutation, {"input": {"id": pilot["id"]}}, as_user=vendor_admin)
        assert [e["code"] for e in again[name]["userErrors"]] == ["INVALID_STATUS"]
    bad_currency = await gql(REPORT, {"id": pilot["id"], "currency": "XX"}, as_user=vendor_admin)
    assert error_codes(bad_currency) == ["NOT_STARTED"]  # a draft that ended never started
    assert (await ps.counts(db))[:2] == before[:2]


async def test_the_treatment_group_is_the_pilots_to_fill(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    """The group mutations refuse to change a pilot's treatment group (MANAGED): moving a
    partner between arms by hand would break the random assignment."""
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    resellers = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(resellers, T0 + timedelta(days=30)))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(START, {"input": {"id": pilot["id"]}}, as_user=admin)
    treatment = pilot["treatmentGroup"]["id"]
    before = await ps.counts(db)
    members = {"id": treatment, "partnerIds": [gid(p) for p in tenant.partners]}
    for mutation, input in (
        ("partnerGroupMembersAdd(input: $input)", members),
        ("partnerGroupMembersRemove(input: $input)", members),
        ("partnerGroupUpdate(input: $input)", {"id": treatment, "rule": []}),
        ("partnerGroupDelete(input: $input)", {"id": treatment}),
    ):
        kind = {
            "partnerGroupMembersAdd": "PartnerGroupMembersInput",
            "partnerGroupMembersRemove": "PartnerGroupMembersInput",
            "partnerGroupUpdate": "PartnerGroupUpdateInput",
            "partnerGroupDelete": "PartnerGroupDeleteInput",
        }[mutation.split("(")[0]]
        query = f"mutation($input: {kind}!) {{ {mutation} {{ userErrors {{ code field }} }} }}"
        data = await gql.data(query, {"input": input}, as_user=admin)
        [result] = data.values()
        assert result["userErrors"] == [{"code": "MANAGED", "field": "id"}], mutation
    assert await ps.counts(db) == before
    listed = await gql.data(
        "query($id: ID!) { partnerGroup(id: $id) { managedBy members { edges { node { id } } } } }",
        {"id": treatment}, as_user=admin,
    )  # fmt: skip
    assert listed["partnerGroup"]["managedBy"] == "pilot"
    assert len(listed["partnerGroup"]["members"]["edges"]) == 4


GROUP_READS = (
    "{ partnerGroups(includeArchived: true) { edges { node { id name } } } }",
    "query($id: ID!) { partnerGroup(id: $id) { id name description managedBy } }",
    "query($id: ID!) { node(id: $id) { id ... on PartnerGroup { name } } }",
)

THRESHOLD_SET = """mutation($input: ConcentrationThresholdSetInput!) {
  concentrationThresholdSet(input: $input) { threshold { id } userErrors { field code } } }"""
BY_GROUP = (
    "{ earningsMetrics(segmentBy: GROUP) { segments { key label } } }",
    '{ forecastRollup(quarter: "2026-Q1", by: GROUP) { rows { key label } } }',
)


async def test_a_channel_manager_reads_no_treatment_group(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    """The treatment group tells who is in a pilot's arm: like the pilot, only vendor admins
    and finance read it. A channel manager, who reads the vendor's other groups, gets the
    answer it would get about a group that does not exist, running or ended, and no
    segment of it in the figures by partner group."""
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    resellers = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(resellers, T0 + timedelta(days=30)))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(START, {"input": {"id": pilot["id"]}}, as_user=admin)
    treatment = pilot["treatmentGroup"]["id"]
    missing = gid("PartnerGroup", uuid.UUID(int=1))
    for step in ("running", "ended"):
        for role in (Role.VENDOR_ADMIN, Role.FINANCE):
            read = await gql.data(GROUP_READS[1], {"id": treatment}, as_user=tenant.user(role))
            assert read["partnerGroup"]["managedBy"] == "pilot", (step, role)
        manager = tenant.user(Role.CHANNEL_MANAGER)
        listed = await gql.data(GROUP_READS[0], as_user=manager)
        assert resellers in [e["node"]["id"] for e in listed["partnerGroups"]["edges"]]
        assert treatment not in str(listed), step
        for query in GROUP_READS[1:]:
            about = await gql(query, {"id": treatment}, as_user=manager)
            nothing = await gql(query, {"id": missing}, as_user=manager)
            assert about == nothing, (step, query, about)
        # Nor do the figures by partner group show a segment (a row) of the arm.
        arm = str(parse_global_id(treatment))
        # (A vendor admin sees it while the arm has members: the check reaches the arm.)
        running = step == "running"
        for role, sees in ((Role.VENDOR_ADMIN, running), (Role.CHANNEL_MANAGER, False)):
            for query in BY_GROUP:
                keys = str(await gql.data(query, as_user=tenant.user(role)))
                assert (arm in keys or treatment in keys) is sees, (step, role, query, keys)
                assert ("treatment" in keys) is sees, (step, role, query, keys)
        # A vendor admin cannot make the arm a guardrail's scope: thresholds and their
        # alerts (which name the partners in scope) are read by every vendor role.
        threshold = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 5_000, "scope": "GROUP"}
        set_on_arm = await gql.data(
            THRESHOLD_SET, {"input": {**threshold, "scopeValue": treatment}}, as_user=admin
        )
        payload = set_on_arm["concentrationThresholdSet"]
        code = "MANAGED_GROUP" if running else "UNKNOWN_GROUP"  # (archived once ended)
        assert payload["userErrors"] == [{"field": "scopeValue", "code": code}], step
        assert payload["threshold"] is None
        await gql.data(END, {"input": {"id": pilot["id"]}}, as_user=admin)


async def test_who_may_do_what_and_refusals_change_nothing(
    gql: GQL, db: Database, clock: OffsetClock, other_tenant: Tenant
) -> None:
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    resellers = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    later = T0 + timedelta(days=30)
    made = await create(gql, tenant, ps.create_input(resellers, later))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    before = await ps.counts(db)
    writes = [
        (CREATE, {**ps.create_input(resellers, later), "name": "X"}),
        (START, {"id": pilot["id"]}),
        (EXTEND, {"id": pilot["id"], "endsAt": (later + timedelta(days=5)).isoformat()}),
        (END, {"id": pilot["id"]}),
    ]
    reads = [
        ("{ pilots { edges { node { id } } } }", {}),
        (REPORT, {"id": pilot["id"]}),
    ]
    for mutation, input in writes:
        assert error_codes(await gql(mutation, {"input": input})) == ["UNAUTHENTICATED"]
        for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
            refused = await gql(mutation, {"input": input}, as_user=tenant.user(role))
            assert error_codes(refused) == ["FORBIDDEN"], (mutation, role)
    for query, variables in reads:
        assert error_codes(await gql(query, variables)) == ["UNAUTHENTICATED"]
        for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
            refused = await gql(query, variables, as_user=tenant.user(role))
            assert error_codes(refused) == ["FORBIDDEN"], (query, role)
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP, Role.CHANNEL_MANAGER):
        node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": pilot["id"]},
                         as_user=tenant.user(role))  # fmt: skip
        assert node["data"]["node"] is None
    # The other vendor: the pilot does not exist for it.
    other = other_tenant.user(Role.VENDOR_ADMIN)
    for mutation, input in writes[1:]:
        data = await gql.data(mutation, {"input": input}, as_user=other)
        [(name, result)] = data.items()
        assert [e["code"] for e in result["userErrors"]] == ["NOT_FOUND"], mutation
        assert names_input_field(name, result["userErrors"][0]["field"]), mutation
    foreign = await gql.data(CREATE, {"input": {**ps.create_input(resellers, later),
                             "name": "Y"}}, as_user=other)  # fmt: skip
    assert [(e["code"], e["field"]) for e in foreign["pilotCreate"]["userErrors"]] == [
        ("NOT_FOUND", "groupId")
    ]
    assert (await gql.data(REPORT, {"id": pilot["id"]}, as_user=other))["pilotReport"] is None
    assert (await gql.data("{ pilots { edges { node { id } } } }", as_user=other))[
        "pilots"]["edges"] == []  # fmt: skip
    assert await ps.counts(db) == before
    # Allowed: finance reads the list.
    listed = await gql.data("{ pilots { edges { node { id } } } }",
                            as_user=tenant.user(Role.FINANCE))  # fmt: skip
    assert [e["node"]["id"] for e in listed["pilots"]["edges"]] == [pilot["id"]]


async def test_a_pilot_ends_by_itself_when_its_planned_end_passes_and_keeps_its_report(
    gql: GQL, db: Database, clock: OffsetClock, services: Services
) -> None:
    from pilots.service import end_due  # noqa: PLC0415
    from tests.earnings.test_program_targets import credited  # noqa: PLC0415

    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(PROGRAM, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": {"baseRates": [{"rateBp": 800}]}}}, as_user=admin)  # fmt: skip
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=10), seed="7"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    boost = await gql.data(PROGRAM, {"input": {
        "name": "Boost", "currency": "USD", "kind": "BONUS",
        "rules": {"baseRates": [{"rateBp": 500}]},
        "targetGroupIds": [pilot["treatmentGroup"]["id"]],
    }}, as_user=admin)  # fmt: skip
    assert boost["earningProgramCreate"]["userErrors"] == []
    assert (await gql.data(START, {"input": {"id": pilot["id"]}}, as_user=admin))[
        "pilotStart"]["pilot"]["status"] == "RUNNING"  # fmt: skip
    arms = await ps.arms(db, pilot_uuid(pilot["id"]))
    index = {p.id: i for i, p in enumerate(tenant.partners)}
    treated = next(index[p] for p, arm in arms.items() if arm == "TREATMENT")
    clock.freeze(T0 + timedelta(days=1))
    during = await es.sale(db, clock, tenant, 1_000_00, partner_index=treated, rep=False)
    await dispatch(services)
    assert sorted(n for n, _, _ in await credited(db, during.id)) == ["Boost", "Partner Rewards"]

    # Before the planned end nothing happens; once the clock passes it, the pilot ends.
    clock.freeze(T0 + timedelta(days=10) - timedelta(seconds=1))
    await end_due(db, clock)
    report = await gql.data(REPORT, {"id": pilot["id"]}, as_user=admin)
    node = """query($id: ID!) { node(id: $id) { ... on Pilot { status endedAt } } }"""
    assert (await gql.data(node, {"id": pilot["id"]}, as_user=admin))["node"]["status"] == (
        "RUNNING"
    )
    clock.freeze(T0 + timedelta(days=10, seconds=1))
    await end_due(db, clock)  # (the app's clock job may have been first)
    assert await end_due(db, clock) == 0  # ended once
    ended = (await gql.data(node, {"id": pilot["id"]}, as_user=admin))["node"]
    assert ended["status"] == "ENDED"
    assert ended["endedAt"] is not None
    assert ended["endedAt"] >= (T0 + timedelta(days=10)).isoformat()
    # The treatment is back to normal: its sales earn the base program only.
    clock.freeze(T0 + timedelta(days=11))
    after = await es.sale(db, clock, tenant, 1_000_00, partner_index=treated, rep=False)
    await dispatch(services)
    assert [n for n, _, _ in await credited(db, after.id)] == ["Partner Rewards"]
    # The report is kept: the same window and figures as at the planned end.
    final = await gql.data(REPORT, {"id": pilot["id"]}, as_user=admin)
    assert final["pilotReport"]["windowEnd"] == (T0 + timedelta(days=10)).isoformat()
    assert final["pilotReport"]["payoutCost"] == report["pilotReport"]["payoutCost"]
    async with db.session() as session:
        entries = list(await session.exec(
            select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.entity_type == "pilot")
            .order_by(col(AuditEntry.id))
        ))  # fmt: skip
    assert entries[-1] == ("pilot.ended", "clock:pilot-end")


async def test_a_draft_stored_with_an_end_beyond_two_years_is_told_so_and_can_be_brought_in(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    """A pilot created before ends were bounded (967ef9d) may end in year 9000: starting
    it said its end had passed and to extend it, and extending refused any end before
    year 9000. It is told what is wrong, and its end can be brought within the bound."""
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    resellers = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    pilot = await create(gql, tenant, ps.create_input(resellers, T0 + timedelta(days=30)))
    async with db.transaction() as session:  # as stored before the bound
        for row in await session.exec(select(Pilot)):
            row.ends_at = row.ends_at.replace(year=9000)
            session.add(row)
    pilot_id = pilot["pilot"]["id"]  # type: ignore[index]
    refused = await gql.data(START, {"input": {"id": pilot_id}}, as_user=admin)
    [error] = refused["pilotStart"]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_DATE", "id")
    assert "more than two years ahead" in error["message"]
    end = (T0 + timedelta(days=60)).isoformat()
    brought = await gql.data(EXTEND, {"input": {"id": pilot_id, "endsAt": end}}, as_user=admin)
    assert brought["pilotExtend"]["userErrors"] == []
    started = await gql.data(START, {"input": {"id": pilot_id}}, as_user=admin)
    assert started["pilotStart"]["userErrors"] == []
