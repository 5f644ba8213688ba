"""Cross-origin requests (api/cors.py) through HTTP: preflights, the headers on every kind of
answer of an allowed origin (data, each error class, the response memo, uploads, downloads,
a 500), none for other origins or without the setting, and websocket handshakes from other
origins. tests/api/test_cors_browser.py does the same from a real browser."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from api.app import create_app
from api.cors import MAX_AGE_SECONDS
from api.graphql import GraphQLView
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import PDF, Tenant, approve_sale, create_contest, dispatch, gid
from tests.leaderboards.scenarios import BOARD
from tests.support import GQL, live_server, multipart

PORTAL = "https://portal.example.com"
EVIL = "https://evil.example"
GRAPHQL_RESPONSE = "application/graphql-response+json"
ATTACH = """
mutation($input: SaleClaimAttachProofInput!) {
  saleClaimAttachProof(input: $input) {
    saleClaim { attachments { downloadUrl } } userErrors { code } } }"""
# What a browser asks before Apollo Client or apollo-upload-client posts with a token.
CLIENT_HEADERS = (
    "authorization,content-type,apollographql-client-name,apollographql-client-version,"
    "apollo-require-preflight,x-apollo-operation-name"
)


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        # A 500 is answered (by Starlette's error middleware), not raised into the test.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            yield c


def app_with(settings: Settings, clock: OffsetClock, **cors: Any) -> Starlette:
    return create_app(settings.with_overrides(**cors), clock=clock)


@pytest.fixture(scope="module")
async def cors_app(
    settings: Settings, clock: OffsetClock, migrated: str
) -> AsyncIterator[Starlette]:
    app = app_with(settings, clock, cors_origins=f"{PORTAL}, http://localhost:5173")
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def cors(cors_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cors_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.fixture
def cors_gql(cors: httpx.AsyncClient, settings: Settings, clock: OffsetClock) -> GQL:
    return GQL(client=cors, settings=settings, clock=clock)


def preflight(
    method: str = "POST", headers: str = CLIENT_HEADERS, origin: str = PORTAL
) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


def allowed(response: httpx.Response, origin: str = PORTAL) -> bool:
    """The answer is readable by a page on ``origin``, and caches keep it apart."""
    assert "origin" in vary(response), response.headers
    return bool(response.headers.get("access-control-allow-origin") == origin)


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in ",".join(response.headers.get_list("vary")).split(",")}


# ------------------------------------------------------------------------------ preflights


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_preflight_from_an_allowed_origin_allows_what_graphql_clients_send(
    cors: httpx.AsyncClient, method: str
) -> None:
    response = await cors.options("/graphql", headers=preflight(method))
    assert response.status_code == 200
    assert allowed(response)
    assert {m.strip() for m in response.headers["access-control-allow-methods"].split(",")} >= {
        "GET",
        "POST",
    }
    granted = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert set(CLIENT_HEADERS.split(",")) <= granted
    assert response.headers["access-control-max-age"] == str(MAX_AGE_SECONDS)
    assert {"access-control-request-method", "access-control-request-headers"} <= vary(response)
    assert "access-control-allow-credentials" not in response.headers


async def test_a_preflight_for_an_upload_and_a_download_is_allowed(cors: httpx.AsyncClient) -> None:
    # apollo-upload-client: multipart/form-data (safelisted), its token and its CSRF header.
    upload = await cors.options(
        "/graphql", headers=preflight("POST", "authorization,apollo-require-preflight")
    )
    assert upload.status_code == 200
    assert allowed(upload)
    download = await cors.options("/attachments/x", headers=preflight("GET", "authorization"))
    assert download.status_code == 200
    assert allowed(download)


async def test_a_preflight_from_another_origin_is_refused(cors: httpx.AsyncClient) -> None:
    for origin in (EVIL, "http://portal.example.com", "https://portal.example.com:8443", "null"):
        response = await cors.options("/graphql", headers=preflight(origin=origin))
        assert response.status_code == 400, origin
        assert "access-control-allow-origin" not in response.headers
        assert "origin" in vary(response)


async def test_a_preflight_for_a_header_or_method_not_allowed_is_refused(
    cors: httpx.AsyncClient,
) -> None:
    header = await cors.options("/graphql", headers=preflight("POST", "authorization,x-admin"))
    assert header.status_code == 400
    method = await cors.options("/graphql", headers=preflight("DELETE", "authorization"))
    assert method.status_code == 400


# ------------------------------------------------------------------- actual requests: data


async def test_a_query_over_post_and_get_is_readable_by_an_allowed_origin(
    cors_gql: GQL, tenant: Tenant
) -> None:
    response = await cors_gql.post(
        "{ me { role } }", as_user=tenant.user(Role.PARTNER_REP, 0), headers={"origin": PORTAL}
    )
    assert response.json() == {"data": {"me": {"role": "PARTNER_REP"}}}
    assert allowed(response)
    got = await cors_gql.client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"origin": PORTAL}
    )
    assert got.json() == {"data": {"__typename": "Query"}}
    assert allowed(got)
    local = await cors_gql.client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"origin": "http://localhost:5173"}
    )
    assert allowed(local, "http://localhost:5173")


async def test_an_answer_from_the_response_memo_is_readable_too(
    cors_gql: GQL, cors_app: Starlette, tenant: Tenant, db: Database, clock: OffsetClock,
    services: Services,
) -> None:  # fmt: skip
    """A repeated leaderboard read is answered from the memo before the view runs anything
    (api/graphql.py): the grant is added around it, per request, never stored with it."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    rep = tenant.user(Role.PARTNER_REP)
    variables = {"id": gid(contest), "first": 10}
    memo = cors_app.state.response_memo
    for _ in range(2):  # fills the caches, then the memo
        first = await cors_gql.post(BOARD, variables, as_user=rep, headers={"origin": PORTAL})
    hits = memo.hits
    again = await cors_gql.post(BOARD, variables, as_user=rep, headers={"origin": PORTAL})
    assert memo.hits == hits + 1
    assert again.content == first.content
    assert allowed(again)
    # The memo keys on the request, not the origin: another page gets no grant from it.
    other = await cors_gql.post(BOARD, variables, as_user=rep, headers={"origin": EVIL})
    assert memo.hits == hits + 2
    assert "access-control-allow-origin" not in other.headers
    assert "origin" in vary(other)


async def test_every_error_answer_is_readable_by_an_allowed_origin(
    cors: httpx.AsyncClient, cors_gql: GQL, tenant: Tenant
) -> None:
    origin = {"origin": PORTAL}
    json_body = {**origin, "content-type": "application/json"}
    answers = {
        400: await cors.post("/graphql", content=b'{"query": ', headers=json_body),
        401: await cors.get("/attachments/00000000-0000-7000-8000-000000000000", headers=origin),
        405: await cors.get(
            "/graphql",
            params={"query": "mutation { __typename }"},
            headers={**origin, "accept": GRAPHQL_RESPONSE},
        ),
        406: await cors.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**origin, "accept": "text/xml"}
        ),
        413: await cors.post("/graphql", content=b" " * (2 << 20), headers=json_body),
        415: await cors.post(
            "/graphql", content=b"{}", headers={**origin, "content-type": "text/plain"}
        ),
    }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert allowed(response), status
    # A request error under application/graphql-response+json (400) and an auth failure.
    invalid = await cors.post(
        "/graphql", json={"query": "{ nope }"}, headers={**origin, "accept": GRAPHQL_RESPONSE}
    )
    assert invalid.status_code == 400
    assert allowed(invalid)
    anonymous = await cors.post("/graphql", json={"query": "{ me { role } }"}, headers=origin)
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert allowed(anonymous)


async def test_an_unexpected_failure_500_is_readable_too(
    cors: httpx.AsyncClient, tenant: Tenant, gql: GQL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that escapes the view is answered by Starlette's error middleware, which the
    CORS layer wraps: the page sees the 500, not an opaque network error."""

    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(GraphQLView, "_memo_key", broken)
    response = await cors.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={
            "origin": PORTAL,
            "authorization": f"Bearer {gql.token(tenant.user(Role.PARTNER_REP, 0))}",
        },
    )
    assert response.status_code == 500
    assert allowed(response)


async def test_an_upload_and_its_download_are_readable_and_the_file_name_exposed(
    cors_gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 6)
    rep = tenant.user(Role.PARTNER_REP, 0)
    token = cors_gql.token(rep)
    created = await cors_gql.data(CREATE, {"input": claim_input(["SN000001"], clock)}, as_user=rep)
    claim_id = created["saleClaimCreate"]["saleClaim"]["id"]
    upload = await multipart(
        cors_gql, ATTACH, {"input": {"id": claim_id, "file": None}},
        {"variables.input.file": ("invoice.pdf", PDF, "application/pdf")},
        token=token, headers={"origin": PORTAL, "apollo-require-preflight": "true"},
    )  # fmt: skip
    assert upload.status_code == 200, upload.text
    assert allowed(upload)
    result = upload.json()["data"]["saleClaimAttachProof"]
    assert result["userErrors"] == []
    [attachment] = result["saleClaim"]["attachments"]
    download = await cors_gql.client.get(
        attachment["downloadUrl"], headers={"origin": PORTAL, "authorization": f"Bearer {token}"}
    )
    assert download.content == PDF
    assert allowed(download)
    exposed = download.headers["access-control-expose-headers"].lower()
    assert "content-disposition" in exposed
    missing = await cors_gql.client.get(
        "/attachments/00000000-0000-7000-8000-000000000000",
        headers={"origin": PORTAL, "authorization": f"Bearer {token}"},
    )
    assert missing.status_code == 404
    assert allowed(missing)


# ---------------------------------------------------------------- who gets no permission


async def test_another_origin_gets_no_permission_and_caches_keep_them_apart(
    cors: httpx.AsyncClient,
) -> None:
    query = {"query": "{ __typename }"}
    evil = await cors.post("/graphql", json=query, headers={"origin": EVIL})
    assert evil.status_code == 200  # (the browser, not the server, withholds the answer)
    assert "access-control-allow-origin" not in evil.headers
    assert "origin" in vary(evil)
    # Without Origin (a server, curl, a same-origin GET): no grant, and Vary: Origin still,
    # so a shared cache never hands this answer to a page of an allowed origin or back.
    plain = await cors.get("/graphql", params=query)
    assert "access-control-allow-origin" not in plain.headers
    assert "origin" in vary(plain)


async def test_without_the_setting_there_is_no_cross_origin_access(
    client: httpx.AsyncClient,
) -> None:
    """The default: same-origin only, as before the setting existed."""
    response = await client.options("/graphql", headers=preflight())
    assert response.status_code == 405
    assert not any(h.startswith("access-control-") for h in response.headers)
    answer = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"origin": PORTAL}
    )
    assert answer.status_code == 200
    assert not any(h.startswith("access-control-") for h in answer.headers)


# --------------------------------------------------------------- any origin; credentials


async def test_any_origin_is_allowed_without_credentials(
    settings: Settings, clock: OffsetClock, migrated: str
) -> None:
    async with serving(app_with(settings, clock, cors_origins="*")) as client:
        pre = await client.options("/graphql", headers=preflight(origin=EVIL))
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "*"
        answer = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"origin": EVIL}
        )
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        assert "origin" in vary(answer)


async def test_credentials_are_allowed_for_listed_origins_only(
    settings: Settings, clock: OffsetClock, migrated: str
) -> None:
    app = app_with(settings, clock, cors_origins=PORTAL, cors_allow_credentials=True)
    async with serving(app) as client:
        pre = await client.options("/graphql", headers=preflight())
        assert pre.headers["access-control-allow-origin"] == PORTAL
        assert pre.headers["access-control-allow-credentials"] == "true"
        answer = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"origin": PORTAL}
        )
        assert allowed(answer)
        assert answer.headers["access-control-allow-credentials"] == "true"
        evil = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"origin": EVIL}
        )
        assert "access-control-allow-origin" not in evil.headers


# ------------------------------------------------------------------------------ websockets


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_handshakes_from_other_origins_follow_the_same_list(
    cors_app: Starlette, app: Starlette, protocol: str
) -> None:
    """Browsers send Origin on a websocket handshake and apply no CORS to it: the server
    decides. Both paths (the lean graphql-transport-ws one, served before the middleware,
    and Starlette's for graphql-ws) accept an allowed origin, the page's own origin and a
    client that sends none, and refuse any other origin with 403 before accepting."""
    async with live_server(cors_app) as address:
        url = f"ws://{address}/graphql"
        for origin in (PORTAL, f"http://{address}", None):
            async with handshake(url, protocol, origin) as ws:
                assert ws.subprotocol == protocol, origin
        with pytest.raises(InvalidStatus) as refused:
            await handshake(url, protocol, EVIL)
        assert refused.value.response.status_code == 403
    async with live_server(app) as address:  # the default: another origin is refused
        with pytest.raises(InvalidStatus) as refused:
            await handshake(f"ws://{address}/graphql", protocol, PORTAL)
        assert refused.value.response.status_code == 403


def handshake(url: str, protocol: str, origin: str | None) -> websockets.connect:
    return websockets.connect(
        url, subprotocols=[Subprotocol(protocol)], origin=Origin(origin) if origin else None
    )
