"""The demo's tenancy: built through the operator's and the admins' services (vendor,
invitations accepted by demo identities), idempotent, and with a second vendor that sees
nothing of the first (nor the first of it)."""

from __future__ import annotations

import json
from pathlib import Path

from infra.clock import OffsetClock
from infra.db import Database
from partners import demo as partners_demo
from tests.support import GQL, make_token

PARTNERS = "{ partners { edges { node { name } } } }"
USERS = "{ users(first: 100) { edges { node { email } } } }"


async def test_the_demo_seeds_two_vendors_that_see_nothing_of_each_other(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    for _ in range(2):  # seeding twice changes nothing
        async with db.transaction() as session:
            northwind = await partners_demo.seed(session, clock)
            contoso = await partners_demo.seed_second_vendor(session, clock)
    assert northwind.vendor.id != contoso.vendor.id
    assert set(contoso.users) == {e for e, *_ in partners_demo.SECOND_VENDOR_USERS}

    def names(data: dict[str, object]) -> set[str]:
        edges = data["partners"]["edges"]  # type: ignore[index]
        return {e["node"]["name"] for e in edges}

    contoso_admin = contoso.users["admin@contoso.example"]
    northwind_admin = northwind.users["admin@northwind.example"]
    assert names(await gql.data(PARTNERS, as_user=contoso_admin)) == {"Fabrikam Solutions"}
    assert names(await gql.data(PARTNERS, as_user=northwind_admin)) == {
        "Acme Resellers", "Globex Systems"
    }  # fmt: skip
    contoso_users = await gql.data(USERS, as_user=contoso_admin)
    assert {e["node"]["email"] for e in contoso_users["users"]["edges"]} == set(contoso.users)
    northwind_users = json.dumps(await gql.data(USERS, as_user=northwind_admin))
    assert not any(email in northwind_users for email in contoso.users)
    rep = contoso.users["rep@fabrikam.example"]
    assert names(await gql.data(PARTNERS, as_user=rep)) == {"Fabrikam Solutions"}
    # Every demo user accepted an invitation with a demo identity: that subject signs in too.
    me = await gql(
        "{ me { role vendor { slug } } }", token=make_token(None, sub="demo|rep@fabrikam.example")
    )
    assert me == {"data": {"me": {"role": "PARTNER_REP", "vendor": {"slug": "contoso"}}}}


def test_the_readmes_demo_users_table_lists_the_demo_users() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Demo users", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and "@" in line
    ]
    listed = {(email, role.split()[0]) for email, _vendor, role, _partner in rows}
    seeded = {(email, role.value) for email, _name, role, _ in partners_demo.DEMO_USERS} | {
        (email, role.value) for email, _name, role, _ in partners_demo.SECOND_VENDOR_USERS
    }
    assert listed == seeded
