"""Relay cursor connections as clients page through them (Apollo's relayStylePagination,
urql's relayPagination: `first`, then `after: pageInfo.endCursor` until `hasNextPage` is
false) and as an attacker feeds them: the order a connection promises holds across pages
(a connection sorted by name or by a date too, ties included, the same on SQLite and
PostgreSQL), rows that come and go between pages make nobody skip or repeat an item,
pageInfo tells the truth at the start, middle and end, and a cursor this connection did
not issue is refused with INVALID_CURSOR (never a 500, never another tenant's rows)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from infra.clock import OffsetClock
from infra.db import Database
from partners import service as partners_service
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, create_contest, gid
from tests.pilots import scenarios as pilot_scenarios
from tests.subscriptions import scenarios as subscription_scenarios
from tests.support import GQL, error_codes

PAGE = "totalCount edges { cursor node { id name } } pageInfo { hasNextPage hasPreviousPage " \
    "startCursor endCursor }"  # fmt: skip
MEMBERS = f"""query($id: ID!, $first: Int, $after: String) {{ partnerGroup(id: $id) {{
  members(first: $first, after: $after) {{ {PAGE} }} }} }}"""
PARTNERS = f"""query($first: Int, $after: String) {{ partners(first: $first, after: $after) {{
  {PAGE} }} }}"""
GROUP_CREATE = """mutation($input: PartnerGroupCreateInput!) { partnerGroupCreate(input: $input) {
  partnerGroup { id } userErrors { code } } }"""
MEMBERS_REMOVE = """mutation($input: PartnerGroupMembersInput!) {
  partnerGroupMembersRemove(input: $input) { userErrors { code } } }"""
ASSIGNMENTS = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Pilot {
  assignments(first: $first, after: $after) { totalCount edges { cursor node { stratum
  partner { id } } } pageInfo { hasNextPage hasPreviousPage endCursor } } } } }"""
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Created in this order (ids ascend), sorted by name otherwise: upper case before lower case
# (code point order on both databases, whatever PostgreSQL's collation). A vendor's partner
# names are unique as people read them (no two differ by case alone); ties in a sort key are
# the assignments' strata below.
NAMES = ["delta", "Bravo", "alpha", "Charlie", "Alpine", "echo", "bravissimo", "ALPS"]


async def add_partners(db: Database, clock: OffsetClock, tenant: Tenant, names: list[str]) -> None:
    async with db.transaction() as session:
        for name in names:
            tenant.partners.append(
                await partners_service.create_partner(
                    session, clock, vendor_id=tenant.vendor.id, name=name, region="APAC"
                )
            )


async def apac_group(gql: GQL, tenant: Tenant, name: str = "APAC") -> str:
    """A group of the APAC partners (each write of it is an audit entry too)."""
    made = await gql.data(
        GROUP_CREATE,
        {"input": {"name": name, "rule": [{"attribute": "region", "op": "IN",
                                           "values": ["APAC"]}]}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert made["partnerGroupCreate"]["userErrors"] == []
    return str(made["partnerGroupCreate"]["partnerGroup"]["id"])


async def walk(
    gql: GQL, tenant: Tenant, query: str, variables: dict[str, Any], first: int, dig: Any
) -> list[dict[str, Any]]:
    """Every page a client reads, `after` its previous page's endCursor, till the end."""
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        data = await gql.data(
            query, {**variables, "first": first, "after": after},
            as_user=tenant.user(Role.VENDOR_ADMIN),
        )  # fmt: skip
        page = dig(data)
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        assert len(pages) < 50, "the pages never end"
        after = page["pageInfo"]["endCursor"]


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def members_of(data: dict[str, Any]) -> dict[str, Any]:
    return data["partnerGroup"]["members"]  # type: ignore[no-any-return]


async def test_a_connection_sorted_by_name_pages_through_every_item_once_in_its_order(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """`members` promises name order; the cursor used to be the row id, so the next page
    started after the id, not after the name (items skipped and repeated)."""
    await add_partners(db, clock, tenant, NAMES)
    group = await apac_group(gql, tenant)
    whole = members_of(await gql.data(MEMBERS, {"id": group, "first": 100},
                                      as_user=tenant.user(Role.VENDOR_ADMIN)))  # fmt: skip
    in_order = [e["node"]["name"] for e in whole["edges"]]
    assert in_order == sorted(NAMES)
    ids = [e["node"]["id"] for e in whole["edges"]]
    for first in (1, 2, 4):
        pages = await walk(gql, tenant, MEMBERS, {"id": group}, first, members_of)
        assert [e["node"]["id"] for p in pages for e in p["edges"]] == ids
        assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False] + [True] * (
            len(pages) - 1
        )
        for page in pages:
            info, edges = page["pageInfo"], page["edges"]
            assert page["totalCount"] == len(NAMES)
            assert (info["startCursor"], info["endCursor"]) == (
                edges[0]["cursor"], edges[-1]["cursor"]
            )  # fmt: skip


async def test_rows_that_leave_or_arrive_between_pages_make_nobody_skip_or_repeat(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The cursor of a row that has left the connection still marks its place."""
    await add_partners(db, clock, tenant, NAMES)
    group = await apac_group(gql, tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)
    first = members_of(await gql.data(MEMBERS, {"id": group, "first": 3}, as_user=admin))
    seen = [e["node"]["name"] for e in first["edges"]]
    assert seen == ["ALPS", "Alpine", "Bravo"]
    # The page's last row leaves the group, and so does the first row of the next page.
    leaving = [first["edges"][-1]["node"]["id"]]
    whole = members_of(await gql.data(MEMBERS, {"id": group, "first": 100}, as_user=admin))
    leaving.append(whole["edges"][3]["node"]["id"])
    removed = await gql.data(
        MEMBERS_REMOVE, {"input": {"id": group, "partnerIds": leaving, "reason": "moved"}},
        as_user=admin,
    )  # fmt: skip
    assert removed["partnerGroupMembersRemove"]["userErrors"] == []
    after = first["pageInfo"]["endCursor"]
    rest = members_of(
        await gql.data(MEMBERS, {"id": group, "first": 100, "after": after}, as_user=admin)
    )
    assert [e["node"]["name"] for e in rest["edges"]] == ["alpha", "bravissimo", "delta", "echo"]
    assert rest["pageInfo"]["hasPreviousPage"] is True

    # The cursor of the very first row, once it has left: nothing before it any more.
    gone = first["edges"][0]
    await gql.data(
        MEMBERS_REMOVE,
        {"input": {"id": group, "partnerIds": [gone["node"]["id"]], "reason": "moved"}},
        as_user=admin,
    )  # fmt: skip
    rest = members_of(
        await gql.data(MEMBERS, {"id": group, "first": 100, "after": gone["cursor"]},
                       as_user=admin)
    )  # fmt: skip
    assert [e["node"]["name"] for e in rest["edges"]][:2] == ["Alpine", "alpha"]
    assert rest["pageInfo"]["hasPreviousPage"] is False


async def test_a_connection_sorted_by_a_text_column_and_a_foreign_id_pages_in_its_order(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    """A pilot's assignments, by stratum then partner: eight partners in four strata."""
    clock.freeze(T0)
    tenant = await pilot_scenarios.pilot_tenant(db, clock)
    group = gid("PartnerGroup", await pilot_scenarios.group_id(db, tenant, "Resellers"))
    made = await gql.data(
        pilot_scenarios.CREATE,
        {"input": pilot_scenarios.create_input(group, T0 + timedelta(days=30))},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    pilot = made["pilotCreate"]["pilot"]["id"]
    await gql.data(pilot_scenarios.START, {"input": {"id": pilot}},
                   as_user=tenant.user(Role.VENDOR_ADMIN))  # fmt: skip

    def assignments(data: dict[str, Any]) -> dict[str, Any]:
        return data["node"]["assignments"]  # type: ignore[no-any-return]

    whole = await walk(gql, tenant, ASSIGNMENTS, {"id": pilot}, 100, assignments)
    expected = [(e["node"]["stratum"], e["node"]["partner"]["id"]) for e in whole[0]["edges"]]
    assert len(expected) == 8
    for first in (1, 3):
        pages = await walk(gql, tenant, ASSIGNMENTS, {"id": pilot}, first, assignments)
        got = [
            (e["node"]["stratum"], e["node"]["partner"]["id"]) for p in pages for e in p["edges"]
        ]
        assert got == expected


async def test_a_connection_sorted_by_a_date_with_ties_pages_in_its_order(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Subscriptions, soonest end first: a three-year term sold before two one-year terms
    (ties) and another three-year one. Paged by id, a page went on from the wrong place."""
    clock.freeze(subscription_scenarios.T0)
    await subscription_scenarios.seed(db, clock, tenant)
    for customer, sku in (("Initech", "NW-CLOUD-3Y"), ("Globex", "NW-CLOUD-1Y"),
                          ("Umbrella", "NW-CLOUD-1Y"), ("Hooli", "NW-CLOUD-3Y")):  # fmt: skip
        await subscription_scenarios.first_sale(
            db, clock, tenant, services, customer=customer, sku=sku,
            amount=300_000 if sku.endswith("3Y") else 120_000,
        )  # fmt: skip
    await subscription_scenarios.settle(services)
    query = """query($first: Int, $after: String) { subscriptions(first: $first, after: $after) {
      totalCount edges { cursor node { id endsAt account { name } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""

    def subscriptions(data: dict[str, Any]) -> dict[str, Any]:
        return data["subscriptions"]  # type: ignore[no-any-return]

    whole = await walk(gql, tenant, query, {}, 100, subscriptions)
    names = [e["node"]["account"]["name"] for e in whole[0]["edges"]]
    assert names == ["Globex", "Umbrella", "Initech", "Hooli"]
    for first in (1, 3):
        pages = await walk(gql, tenant, query, {}, first, subscriptions)
        assert [e["node"]["account"]["name"] for p in pages for e in p["edges"]] == names


async def test_first_zero_says_whether_there_is_anything_to_read(gql: GQL, tenant: Tenant) -> None:
    """The spec's hasNextPage: true when more edges than `first` follow, so `first: 0` over a
    non-empty connection has a next page (it said false, with a totalCount of 2)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(PARTNERS, {"first": 0}, as_user=admin)
    assert data["partners"]["edges"] == []
    assert data["partners"]["totalCount"] == 2
    assert data["partners"]["pageInfo"] == {
        "hasNextPage": True, "hasPreviousPage": False, "startCursor": None, "endCursor": None,
    }  # fmt: skip
    empty = await gql.data(
        "{ apiKeys(first: 0) { totalCount pageInfo { hasNextPage } } }", as_user=admin
    )
    assert empty["apiKeys"] == {"totalCount": 0, "pageInfo": {"hasNextPage": False}}


async def test_the_end_and_an_empty_connection(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    last = await gql.data(PARTNERS, {"first": 2}, as_user=admin)
    assert last["partners"]["pageInfo"]["hasNextPage"] is False
    beyond = await gql.data(
        PARTNERS, {"first": 2, "after": last["partners"]["pageInfo"]["endCursor"]}, as_user=admin
    )
    assert beyond["partners"]["edges"] == []
    assert beyond["partners"]["pageInfo"] == {
        "hasNextPage": False, "hasPreviousPage": True, "startCursor": None, "endCursor": None,
    }  # fmt: skip
    empty = await gql.data(
        "{ apiKeys { edges { cursor } pageInfo { hasNextPage hasPreviousPage startCursor "
        "endCursor } } }",
        as_user=admin,
    )
    assert empty["apiKeys"] == {"edges": [], "pageInfo": {
        "hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None,
    }}  # fmt: skip


async def test_page_sizes_out_of_range_are_coded_errors(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    for first, code in ((-1, "BAD_USER_INPUT"), (101, "PAGE_SIZE_TOO_LARGE")):
        payload = await gql(PARTNERS, {"first": first}, as_user=admin)
        assert error_codes(payload) == [code]
        assert payload["data"] == {"partners": None}
    for first in (2**31, "ten", 1.5, True):
        payload = await gql(PARTNERS, {"first": first}, as_user=admin)
        assert error_codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "data" not in payload


async def test_a_cursor_this_connection_did_not_issue_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Garbage, base64 of garbage, a cursor of another connection (another table, or the
    same table in another order): INVALID_CURSOR. It used to read any 16 bytes as a row id,
    so another list's cursor silently started the page somewhere."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    await add_partners(db, clock, tenant, ["x-ray", "yankee"])
    group = await apac_group(gql, tenant)
    members = await gql.data(MEMBERS, {"id": group, "first": 1}, as_user=admin)
    member_cursor = members_of(members)["edges"][0]["cursor"]
    users = await gql.data("{ users(first: 1) { edges { cursor } } }", as_user=admin)
    user_cursor = users["users"]["edges"][0]["cursor"]
    partners = await gql.data(PARTNERS, {"first": 1}, as_user=admin)
    partner_cursor = partners["partners"]["edges"][0]["cursor"]
    tag, partner_id = json.loads(b64decode(partner_cursor))
    legacy = b64encode(b"c:" + uuid.UUID(hex=partner_id).bytes)
    edited = [b64encode(json.dumps([tag, value]).encode()) for value in ("zz", 7, None)]
    for cursor in ("", "!!", "bm90IGEgY3Vyc29y", "W10", "WyJ4Il0", "x" * 5000,
                   b64encode(b"[" * 1500), *edited, user_cursor, member_cursor):  # fmt: skip
        payload = await gql(PARTNERS, {"first": 1, "after": cursor}, as_user=admin)
        assert error_codes(payload) == ["INVALID_CURSOR"], cursor
        assert payload["data"] == {"partners": None}
    # The partners' cursor where members (the same rows, by name) are read: refused too.
    # So is a cursor of an earlier version (a bare id) there; the lists in id order read it.
    for cursor in (partner_cursor, legacy):
        payload = await gql(MEMBERS, {"id": group, "after": cursor}, as_user=admin)
        assert error_codes(payload) == ["INVALID_CURSOR"]
    went_on = await gql.data(PARTNERS, {"first": 100, "after": legacy}, as_user=admin)
    again = await gql.data(PARTNERS, {"first": 100, "after": partner_cursor}, as_user=admin)
    assert went_on == again
    assert len(again["partners"]["edges"]) == len(tenant.partners) - 1


async def test_another_vendors_cursor_marks_a_place_and_reads_only_ones_own_rows(
    gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A cursor holds a place in the order, not a right: the rows after it are still the
    caller's readable ones (and an id-ordered cursor reveals nothing the global id does not)."""
    theirs = await gql.data(PARTNERS, {"first": 1}, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    cursor = theirs["partners"]["edges"][0]["cursor"]
    mine = await gql.data(
        PARTNERS, {"first": 100, "after": cursor}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    own = {gid(p) for p in tenant.partners}
    assert {e["node"]["id"] for e in mine["partners"]["edges"]} <= own


async def test_a_leaderboard_cursor_past_any_rank_is_refused_not_a_500(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A board's cursors are ranks; one past 2**63 reached Redis and came back as an
    INTERNAL_SERVER_ERROR. Only the form the board writes is read."""
    contest = await create_contest(db, clock, tenant, name="Open")
    admin = tenant.user(Role.VENDOR_ADMIN)
    query = """query($id: ID!, $after: String) { leaderboard(contestId: $id, first: 5,
      after: $after) { totalCount edges { cursor } } }"""

    def board_cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    near = await gql.data(query, {"id": gid(contest), "after": board_cursor("lb:2147483645")},
                          as_user=admin)  # fmt: skip
    assert near["leaderboard"]["edges"] == []
    for text in ("lb:99999999999999999999", "lb:9223372036854775806", "lb:-1", "lb: 1",
                 "lb:1_0", "lb:01", "lb:", "lb:²"):  # fmt: skip
        payload = await gql(query, {"id": gid(contest), "after": board_cursor(text)},
                            as_user=admin)  # fmt: skip
        assert error_codes(payload) == ["INVALID_CURSOR"], text
    partners = await gql.data(PARTNERS, {"first": 1}, as_user=admin)
    payload = await gql(
        query, {"id": gid(contest), "after": partners["partners"]["edges"][0]["cursor"]},
        as_user=admin,
    )  # fmt: skip
    assert error_codes(payload) == ["INVALID_CURSOR"]


async def test_a_newest_first_list_read_while_it_grows_repeats_and_skips_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The audit log, newest first: entries written between two pages come before the
    reader's place; the pages go on with exactly the entries that were there."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    for name in ("one", "two", "three", "four", "five"):
        await apac_group(gql, tenant, name)
    query = """query($first: Int, $after: String) { auditLog(first: $first, after: $after) {
      totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
    before = await gql.data(query, {"first": 100}, as_user=admin)
    expected = [e["node"]["id"] for e in before["auditLog"]["edges"]]
    assert len(expected) >= 5
    seen: list[str] = []
    after = None
    while True:
        page = (await gql.data(query, {"first": 2, "after": after}, as_user=admin))["auditLog"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        await apac_group(gql, tenant, f"meanwhile {len(seen)}")
        after = page["pageInfo"]["endCursor"]
    assert seen == expected


async def test_a_cursor_with_sort_keys_no_row_can_have_is_refused_not_a_500(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A cursor's sort key values are the client's to edit: an instant that is a datetime
    in its own offset but none in UTC (year 1 at +14:00, year 9999 at -14:00: the database
    type's conversion overflowed), text the database cannot hold (a lone surrogate, a NUL):
    INVALID_CURSOR, not INTERNAL_SERVER_ERROR."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    clock.freeze(subscription_scenarios.T0)
    await subscription_scenarios.seed(db, clock, tenant)
    await subscription_scenarios.first_sale(
        db, clock, tenant, services, customer="Initech", sku="NW-CLOUD-1Y", amount=120_000
    )
    await subscription_scenarios.settle(services)
    query = """query($first: Int, $after: String) { subscriptions(first: $first, after: $after) {
      edges { cursor } } }"""
    first = await gql.data(query, {"first": 1}, as_user=admin)
    tag, _ends, row = json.loads(b64decode(first["subscriptions"]["edges"][0]["cursor"]))
    for instant in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        cursor = b64encode(json.dumps([tag, instant, row]).encode())
        payload = await gql(query, {"first": 1, "after": cursor}, as_user=admin)
        assert error_codes(payload) == ["INVALID_CURSOR"], (instant, payload)
    await add_partners(db, clock, tenant, ["x-ray", "yankee"])
    group = await apac_group(gql, tenant)
    members = await gql.data(MEMBERS, {"id": group, "first": 1}, as_user=admin)
    tag, _name, row = json.loads(b64decode(members_of(members)["edges"][0]["cursor"]))
    for name in ("\ud800", "a\u0000b"):
        cursor = b64encode(json.dumps([tag, name, row]).encode())
        payload = await gql(MEMBERS, {"id": group, "first": 1, "after": cursor}, as_user=admin)
        assert error_codes(payload) == ["INVALID_CURSOR"], (repr(name), payload)


async def test_a_page_after_a_cursor_starts_its_index_scan_at_the_cursor(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A page in (ends_at, id) order after a cursor is one range of the subscriptions'
    (vendor_id, ends_at) index from the cursor's end date on: the page's condition bounds
    the first sort key by itself. (As `ends_at > x OR (ends_at = x AND id > y)` alone,
    PostgreSQL read the index from the vendor's first subscription, filtering.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans")
    clock.freeze(subscription_scenarios.T0)
    await subscription_scenarios.seed(db, clock, tenant)
    for customer in ("Initech", "Globex"):
        await subscription_scenarios.first_sale(
            db, clock, tenant, services, customer=customer, sku="NW-CLOUD-1Y", amount=120_000
        )
    await subscription_scenarios.settle(services)
    query = """query($first: Int, $after: String) { subscriptions(first: $first, after: $after) {
      edges { cursor } } }"""
    admin = tenant.user(Role.VENDOR_ADMIN)
    cursor = (await gql.data(query, {"first": 1}, as_user=admin))["subscriptions"]["edges"][0]
    pages: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "ORDER BY subscription.ends_at" in statement:
            pages.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        await gql.data(query, {"first": 1, "after": cursor["cursor"]}, as_user=admin)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    ((statement, params),) = pages
    async with db.session() as session:
        conn = await session.connection()
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = (await conn.exec_driver_sql(f"EXPLAIN {statement}", params)).all()
    text = "\n".join(row[0] for row in plan)
    conds = [line for line in text.splitlines() if "Index Cond" in line]
    assert any("ends_at >=" in line for line in conds), text
