"""A hold whose condition clears is released as the partner was told: recording the tax
form lifts every missing-tax-form hold at once (October and November here), with a decision
naming the cause, and the partner reads what happened. Holds that need a person (a manual
one here) stay until finance releases them, and the partner's text says so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from earnings import payouts
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tx
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL

OCTOBER = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

PAYOUTS = """{ payouts { edges { node {
  id periodStart status
  holds { explanation clears releasedAt }
} } } }"""

FINANCE_VIEW = """{ payouts { edges { node {
  periodStart status
  holds { reason releasedAt }
  decisions { action reason note actorId }
} } } }"""

SUMMARY = """{ earnings { holds { explanation clears } explanations { kind text } } }"""

PROFILE = """mutation($p: ID!) { payoutProfileSet(input: {partnerId: $p, taxFormOnFile: true}) {
  taxFormOnFile userErrors { code } } }"""


def by_month(data: dict[str, Any]) -> dict[str, Any]:
    return {e["node"]["periodStart"][:7]: e["node"] for e in data["payouts"]["edges"]}


async def test_recording_the_tax_form_releases_every_tax_hold_with_a_decision(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    finance = tenant.principal(Role.FINANCE)
    for sold, made in ((OCTOBER, datetime(2026, 11, 2, tzinfo=UTC)), (NOVEMBER, DECEMBER)):
        clock.freeze(sold)
        await es.sale(db, clock, tenant, 100_000)  # earns 100.00
        await dispatch(services)
        clock.freeze(made)
        await tx(
            db,
            lambda s, m=sold: payouts.generate_statements(
                s, finance, clock, month=m, signals=services.claim_signals
            ),
        )
    partner_admin = tenant.user(Role.PARTNER_ADMIN)
    fin = tenant.user(Role.FINANCE)
    statements = by_month(await gql.data(PAYOUTS, as_user=partner_admin))
    assert {m: s["status"] for m, s in statements.items()} == {
        "2026-10": "HELD", "2026-11": "HELD"
    }  # fmt: skip
    told = statements["2026-10"]["holds"][0]["clears"]
    assert "lifted as soon as it is on file" in told
    # November is also held by finance, for a reason a tax form does not clear.
    november_id = statements["2026-11"]["id"]
    held = await gql.data(
        """mutation($id: ID!) { payoutHold(input: {statementId: $id, note: "check"}) {
             userErrors { code } } }""",
        {"id": november_id},
        as_user=fin,
    )
    assert held["payoutHold"]["userErrors"] == []

    recorded = await gql.data(PROFILE, {"p": gid(tenant.partners[0])}, as_user=fin)
    assert recorded["payoutProfileSet"] == {"taxFormOnFile": True, "userErrors": []}

    view = by_month(await gql.data(FINANCE_VIEW, as_user=fin))
    assert view["2026-10"]["status"] == "PENDING"  # released: on to the usual approval
    assert view["2026-11"]["status"] == "HELD"  # the manual hold remains
    for month in ("2026-10", "2026-11"):
        holds = {h["reason"]: h["releasedAt"] for h in view[month]["holds"]}
        assert holds["MISSING_TAX_FORM"] is not None
        releases = [d for d in view[month]["decisions"] if d["action"] == "RELEASE"]
        assert releases == [
            {
                "action": "RELEASE",
                "reason": "MISSING_TAX_FORM",
                "note": payouts.TAX_FORM_RELEASE_NOTE,
                "actorId": gid("User", fin.id),
            }
        ]
    assert view["2026-11"]["holds"][1]["releasedAt"] is None

    # The partner reads what happened, on the statement and in December's explanations.
    mine = by_month(await gql.data(PAYOUTS, as_user=partner_admin))
    october_hold = mine["2026-10"]["holds"][0]
    assert october_hold["clears"] == "Released on 05 December 2026, when your tax form was on file."
    summary = (await gql.data(SUMMARY, as_user=partner_admin))["earnings"]
    assert [h["explanation"] for h in summary["holds"]] == [
        "Our finance team has paused this payout."
    ]
    released = [e["text"] for e in summary["explanations"] if e["kind"] == "HOLD_RELEASED"]
    assert released == [
        "The hold on your payout for October 2026 (100.00 USD) was released on 05 December "
        "2026, when your tax form was on file. It now goes through the usual approval before "
        "it is paid.",
        "The hold on your payout for November 2026 (100.00 USD) was released on 05 December "
        "2026, when your tax form was on file. It is still held for another reason.",
    ]
    # Nothing is left for finance to release by hand, and October can be approved.
    approve = await gql.data(
        """mutation($id: ID!) { payoutApprove(input: {statementId: $id}) {
             statement { status } userErrors { code } } }""",
        {"id": statements["2026-10"]["id"]},
        as_user=fin,
    )
    assert approve["payoutApprove"] == {"statement": {"status": "APPROVED"}, "userErrors": []}
