"""Display keys (office screens): vendor admins create, list and revoke them; a key reads
its contests' boards exactly as a partner viewer does (anonymised stays anonymised, nobody
is "you") and is refused everything else with a code; revoked and expired keys are refused,
and revoking one closes its screens' websockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select
from starlette.applications import Starlette

from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest, DisplayKey, VisibilityMode
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.processes import cli_process
from tests.support import GQL, close_frame, error_codes, live_server, ws_client

CREATE = """
mutation($input: DisplayKeyCreateInput!) {
  displayKeyCreate(input: $input) {
    displayKey { id label prefix contestIds rotateSeconds expiresAt revokedAt }
    secret
    userErrors { field code }
  }
}"""
REVOKE = """
mutation($id: ID!) { displayKeyRevoke(input: {id: $id}) {
  displayKey { id revokedAt } userErrors { field code } } }"""
KEYS = "query { displayKeys { totalCount edges { node { id label prefix revokedAt } } } }"
SCREEN = "query { screen { label rotateSeconds contests { id name status } } }"
BOARD = """
query($id: ID!) { leaderboard(contestId: $id, first: 10) {
  totalCount edges { node { rank score participant { id name isYou } } } } }"""
WINNERS = """
query { screen { contests { winners { rank participant { id name isYou } prize } } } }"""
LIVE = """subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score participant { id } } } }"""


async def key_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(DisplayKey)) or 0)


async def create_key(
    gql: GQL, tenant: Tenant, contests: list[Contest], **extra: Any
) -> tuple[str, str]:
    """(id, secret) of a new display key for ``contests``."""
    data = await gql.data(
        CREATE,
        {"input": {"label": "Sales floor", "contestIds": [gid(c) for c in contests], **extra}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    result = data["displayKeyCreate"]
    assert result["userErrors"] == []
    return result["displayKey"]["id"], result["secret"]


async def test_a_vendor_admin_creates_lists_and_revokes_display_keys(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    first = await create_contest(db, clock, tenant, name="First")
    second = await create_contest(db, clock, tenant, name="Second")
    admin = tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(
        CREATE,
        {"input": {"label": " Lobby TV ", "contestIds": [gid(second), gid(first), gid(second)],
                   "rotateSeconds": 20}},
        as_user=admin,
    )  # fmt: skip
    created = data["displayKeyCreate"]
    key = created["displayKey"]
    assert created["secret"].startswith("cbd_" + key["prefix"] + "_")
    assert (key["label"], key["contestIds"], key["rotateSeconds"]) == (
        "Lobby TV", [gid(second), gid(first)], 20,
    )  # fmt: skip
    listed = await gql.data(KEYS, as_user=admin)
    assert listed["displayKeys"]["edges"] == [
        {"node": {"id": key["id"], "label": "Lobby TV", "prefix": key["prefix"], "revokedAt": None}}
    ]
    async with db.session() as session:
        [row] = await session.exec(select(DisplayKey))
    assert created["secret"] not in row.secret_hash  # only a hash is kept
    revoked = await gql.data(REVOKE, {"id": key["id"]}, as_user=admin)
    assert revoked["displayKeyRevoke"]["displayKey"]["revokedAt"] is not None
    again = await gql.data(REVOKE, {"id": key["id"]}, as_user=admin)
    assert again["displayKeyRevoke"]["userErrors"] == [{"field": "id", "code": "ALREADY_REVOKED"}]


@pytest.mark.parametrize(
    "role",
    [Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP],
    ids=lambda r: r.value,
)
async def test_only_vendor_admins_manage_display_keys(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL, role: Role
) -> None:
    contest = await create_contest(db, clock, tenant)
    key_id, _ = await create_key(gql, tenant, [contest])
    user = tenant.user(role)
    create = await gql(
        CREATE, {"input": {"label": "x", "contestIds": [gid(contest)]}}, as_user=user
    )
    assert error_codes(create) == ["FORBIDDEN"]
    assert error_codes(await gql(REVOKE, {"id": key_id}, as_user=user)) == ["FORBIDDEN"]
    assert error_codes(await gql(KEYS, as_user=user)) == ["FORBIDDEN"]
    assert error_codes(await gql(CREATE, {"input": {"label": "x", "contestIds": []}})) == [
        "UNAUTHENTICATED"
    ]
    assert await key_count(db) == 1
    listed = await gql.data(KEYS, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert listed["displayKeys"]["edges"][0]["node"]["revokedAt"] is None


async def test_bad_display_key_input_is_coded_and_creates_nothing(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, gql: GQL
) -> None:
    contest = await create_contest(db, clock, tenant)
    theirs = await create_contest(db, clock, other_tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)
    many = [await create_contest(db, clock, tenant, publish=False) for _ in range(21)]
    cases: list[tuple[dict[str, Any], list[dict[str, str]]]] = [
        ({"label": " ", "contestIds": [gid(contest)]}, [{"field": "label", "code": "REQUIRED"}]),
        ({"label": "x" * 101, "contestIds": [gid(contest)]},
         [{"field": "label", "code": "TOO_LONG"}]),
        ({"label": "TV", "contestIds": []}, [{"field": "contestIds", "code": "REQUIRED"}]),
        ({"label": "TV", "contestIds": [gid(c) for c in many]},
         [{"field": "contestIds", "code": "TOO_MANY_CONTESTS"}]),
        ({"label": "TV", "contestIds": [gid(theirs)]},
         [{"field": "contestIds", "code": "NOT_FOUND"}]),
        ({"label": "TV", "contestIds": ["not-an-id"]},
         [{"field": "contestIds", "code": "NOT_FOUND"}]),
        ({"label": "TV", "contestIds": [gid(contest)],
          "expiresAt": (clock.now() - timedelta(minutes=1)).isoformat()},
         [{"field": "expiresAt", "code": "INVALID_EXPIRY"}]),
        ({"label": "TV", "contestIds": [gid(contest)], "rotateSeconds": 5},
         [{"field": "rotateSeconds", "code": "INVALID_ROTATION"}]),
    ]  # fmt: skip
    for value, errors in cases:
        data = await gql.data(CREATE, {"input": value}, as_user=admin)
        assert data["displayKeyCreate"]["userErrors"] == errors, value
        assert data["displayKeyCreate"]["secret"] is None
    assert await key_count(db) == 0
    key_id, _ = await create_key(gql, tenant, [contest])
    other_admin = other_tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(REVOKE, {"id": key_id}, as_user=other_admin)
    assert data["displayKeyRevoke"]["userErrors"] == [{"field": "id", "code": "NOT_FOUND"}]
    assert (await gql.data(KEYS, as_user=other_admin))["displayKeys"]["totalCount"] == 0


async def test_a_screen_sees_its_boards_as_a_partner_viewer_does(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    hidden = await create_contest(db, clock, tenant, name="Hidden", anonymise=True)
    top = await create_contest(
        db, clock, tenant, name="Top", visibility=VisibilityMode.TOP_N, visible_top_n=1
    )
    draft = await create_contest(db, clock, tenant, name="Draft", publish=False)
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    _, secret = await create_key(gql, tenant, [hidden, draft, top], rotateSeconds=15)
    screen = (await gql(SCREEN, token=secret))["data"]["screen"]
    assert screen["label"] == "Sales floor"
    assert screen["rotateSeconds"] == 15
    assert [c["name"] for c in screen["contests"]] == ["Hidden", "Top"]  # drafts wait
    board = (await gql(BOARD, {"id": gid(hidden)}, token=secret))["data"]["leaderboard"]
    assert [e["node"] for e in board["edges"]] == [
        {"rank": 1, "score": 700,
         "participant": {"id": None, "name": "Participant at rank 1", "isYou": False}},
        {"rank": 2, "score": 500,
         "participant": {"id": None, "name": "Participant at rank 2", "isYou": False}},
    ]  # fmt: skip
    partner = await gql.data(BOARD, {"id": gid(hidden)}, as_user=tenant.user(Role.PARTNER_REP, 1))
    assert [e["node"]["participant"]["name"] for e in partner["leaderboard"]["edges"]] == [
        tenant.partners[1].name, "Participant at rank 2",
    ]  # fmt: skip
    board = (await gql(BOARD, {"id": gid(top)}, token=secret))["data"]["leaderboard"]
    assert board["totalCount"] == 1
    assert [e["node"]["participant"]["name"] for e in board["edges"]] == [tenant.partners[1].name]
    assert error_codes(await gql(BOARD, {"id": gid(draft)}, token=secret)) == ["NOT_FOUND"]


async def test_a_display_key_is_refused_everything_but_its_boards(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    mine = await create_contest(db, clock, tenant, name="Mine")
    other = await create_contest(db, clock, tenant, name="Other")
    _, secret = await create_key(gql, tenant, [mine])
    assert error_codes(await gql(BOARD, {"id": gid(other)}, token=secret)) == ["NOT_FOUND"]
    for query, variables in [
        ("query { contests { totalCount } }", None),
        ("query($id: ID!) { contest(id: $id) { name } }", {"id": gid(mine)}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": gid(mine)}),
        ("query { me { role } }", None),
        ("query { partners { totalCount } }", None),
        ("query($id: ID!) { myStanding(contestId: $id) { rank } }", {"id": gid(mine)}),
        ("query { displayKeys { totalCount } }", None),
        ('mutation { contestCreate(input: {name: "x", startsAt: "2030-01-01T00:00:00Z", '
         'endsAt: "2030-02-01T00:00:00Z"}) { contest { id } } }', None),
    ]:  # fmt: skip
        payload = await gql(query, variables, token=secret)
        assert error_codes(payload) == ["FORBIDDEN"], query
        assert payload["errors"][0]["extensions"]["reason"] == "DISPLAY_KEY_SCOPE"
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contest)) == 2
    # Its contests' private fields stay closed as they are to partners.
    payload = await gql(
        "query { screen { contests { name targets weights revisions { version } } } }",
        token=secret,
    )
    assert payload["data"]["screen"]["contests"] == [
        {"name": "Mine", "targets": None, "weights": None, "revisions": None}
    ]
    # `screen` is a display key's own.
    refused = await gql(SCREEN, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_unknown_revoked_and_expired_keys_are_refused_with_their_reason(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    contest = await create_contest(db, clock, tenant)
    key_id, secret = await create_key(gql, tenant, [contest])
    _, expiring = await create_key(
        gql, tenant, [contest], expiresAt=(clock.now() + timedelta(days=1)).isoformat()
    )

    async def reason(token: str) -> str | None:
        payload = await gql(SCREEN, token=token)
        assert error_codes(payload) == ["UNAUTHENTICATED"], payload
        reason: str | None = payload["errors"][0]["extensions"]["reason"]
        return reason

    assert (await gql(SCREEN, token=expiring))["data"]["screen"] is not None
    assert await reason(secret[:-2] + "xx") == "INVALID_DISPLAY_KEY"
    assert await reason("cbd_nosuchprefix_secret") == "INVALID_DISPLAY_KEY"
    await gql.data(REVOKE, {"id": key_id}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert await reason(secret) == "DISPLAY_KEY_REVOKED"
    clock.advance(timedelta(days=1, minutes=5))
    assert await reason(expiring) == "DISPLAY_KEY_EXPIRED"


async def test_a_screen_reads_its_contests_winners_as_partners_do(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    from leaderboards.closing import close_due  # noqa: PLC0415

    contest = await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(hours=1), anonymise=True,
        prizes=[{"from_rank": 1, "to_rank": 1, "prize": "Trophy"}],
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    _, secret = await create_key(
        gql, tenant, [contest], expiresAt=(clock.now() + timedelta(days=30)).isoformat()
    )
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, contest.id)
    data = (await gql(WINNERS, token=secret))["data"]
    assert data["screen"]["contests"] == [
        {"winners": [{"rank": 1, "prize": "Trophy",
                      "participant": {"id": None, "name": "Participant at rank 1",
                                      "isYou": False}}]}
    ]  # fmt: skip


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_revoking_a_display_key_closes_its_screens(
    server: str, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    gql: GQL, protocol: str,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant, anonymise=True)
    other = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    doomed_id, doomed = await create_key(gql, tenant, [contest])
    _, kept = await create_key(gql, tenant, [contest])
    async with (
        ws_client(server, doomed, protocol) as screen,
        ws_client(server, kept, protocol) as two,
    ):
        await screen.subscribe(LIVE, {"id": gid(contest)})
        first = await screen.receive()
        assert first["payload"]["data"]["leaderboardChanged"]["rows"] == [
            {"score": 500, "participant": {"id": None}}
        ]
        refused_id = await two.subscribe(LIVE, {"id": gid(other)})
        refused = await two.receive()  # (no data, the error, then complete)
        assert refused["id"] == refused_id
        assert refused["payload"]["data"] is None
        assert [e["extensions"]["code"] for e in refused["payload"]["errors"]] == ["NOT_FOUND"]
        assert await two.receive() == {"id": refused_id, "type": "complete"}
        # Any other subscription is refused (the socket stays open for its own board).
        other_id = await screen.subscribe(
            "subscription { dealRegistrationStatusChanged { registrationId } }", {}
        )
        message = await screen.receive()
        while message.get("id") != other_id:
            message = await screen.receive()
        # (Refused by the field's permission as the stream is made: a result, as
        # graphql-ws's reference server tells one, at the field's path.)
        assert message["type"] == ("next" if protocol == "graphql-transport-ws" else "data")
        errors = message["payload"]["errors"]
        assert [e["extensions"].get("reason") for e in errors] == ["DISPLAY_KEY_SCOPE"]
        assert [e["path"] for e in errors] == [["dealRegistrationStatusChanged"]]
        await gql.data(REVOKE, {"id": doomed_id}, as_user=tenant.user(Role.VENDOR_ADMIN))
        assert await close_frame(screen.ws) == (4403, "DISPLAY_KEY_REVOKED")
        live_id = await two.subscribe(LIVE, {"id": gid(contest)})
        message = await two.receive()
        while message.get("id") != live_id:  # (the legacy protocol completes the refusal)
            message = await two.receive()
        assert message["type"] in ("next", "data")  # the other key still works


@pytest.mark.slow
async def test_the_command_line_prints_a_screens_url_with_a_new_key(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    contest = await create_contest(db, clock, tenant, name="Lobby contest")
    await create_contest(db, clock, tenant, name="Draft", publish=False)
    args = ("leaderboards", "display-key", "--vendor", tenant.vendor.slug, "--label", "Lobby",
            "--base-url", "http://tv.example:8000/")  # fmt: skip
    async with cli_process(settings, *args) as process:
        out, _ = await process.communicate()
    assert process.returncode == 0, out
    url = out.decode().strip().splitlines()[-1]
    assert url.startswith("http://tv.example:8000/tv#key=cbd_")
    secret = url.split("#key=", 1)[1]
    screen = (await gql(SCREEN, token=secret))["data"]["screen"]
    assert (screen["label"], [c["id"] for c in screen["contests"]]) == ("Lobby", [gid(contest)])
    async with db.session() as session:
        [entry] = await session.exec(
            select(AuditEntry).where(AuditEntry.action == "display_key.created")
        )
    assert entry.actor.startswith("operator:")
    async with cli_process(settings, "leaderboards", "display-key", "--vendor", "nope") as process:
        await process.communicate()
    assert process.returncode == 2
