"""GraphQL over HTTP: media types, status codes, methods, and the request limits."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import jwt
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from api.app import create_app
from api.settings import DEVELOPMENT_SECRET, Settings
from infra.clock import OffsetClock
from infra.db import Database, is_sqlite
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, error_codes

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_get_runs_queries(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_get_refuses_mutations_with_405(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { apiKeyCreate(input: {name: "x"}) { secret } }'},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("name", ["Nope", ""])
@pytest.mark.parametrize("document", ["query A { __typename }", "{ __typename }"])
async def test_an_operation_name_the_document_lacks_is_one_coded_refusal(
    client: httpx.AsyncClient, name: str, document: str
) -> None:
    """An empty name too: no operation can have it (it was taken for no name by the
    document checks and then refused by the executor, as BAD_REQUEST)."""
    response = await client.post(
        "/graphql",
        json={"query": document, "operationName": name},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": f"Unknown operation named '{name}'.",
                "extensions": {"code": "OPERATION_NOT_FOUND"},
            }
        ]
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/graphql", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/graphql", 405, "METHOD_NOT_ALLOWED"),
        ("OPTIONS", "/graphql", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/healthz", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/no-such-path", 404, "NOT_FOUND"),
        ("GET", "/tv/assets/no-such-file.js", 404, "NOT_FOUND"),
    ],
)
async def test_routing_refusals_are_coded_json(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    """A method a route does not take, or a path not served: coded JSON as every other
    error, the 405 with its Allow header (Starlette's plain text "Method Not Allowed" had
    no code; found by the fuzz campaign's hand probes)."""
    response = await client.request(method, path, content=b"{}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    if status == 405:
        assert "POST" in response.headers["allow"] or "GET" in response.headers["allow"]


async def test_get_without_a_query_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_malformed_json_is_400_with_a_json_body(client: httpx.AsyncClient) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await client.post(
            "/graphql",
            content=b'{"query": "{ __typename }"',
            headers={"content-type": "application/json", "accept": accept},
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith(accept)
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_unsupported_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/graphql", content=b'{"query":"{ __typename }"}', headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/jsonl",
        "application/json-patch+json",
        "xapplication/json",
        "application/json; charset=iso-8859-1",
        "application/json; charset=windows-1252",
    ],
)
async def test_a_body_of_another_media_type_or_charset_is_415_not_read_as_json(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """Only application/json itself (and multipart/form-data) is read: strawberry matched
    "application/json" anywhere in the type ("application/jsonl", "xapplication/json" ran)
    and read a body declared Latin-1 as UTF-8 (its 'é' a malformed-JSON 400, or ASCII text
    run as if nothing had been declared)."""
    response = await client.post(
        "/graphql", content=b'{"query":"{ __typename }"}', headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    "content_type",
    [
        "Application/JSON",
        "APPLICATION/JSON; charset=UTF-8",
        'application/json;charset="utf-8"',
        "application/json ; Charset=utf-8",
    ],
)
async def test_media_types_and_charsets_are_case_insensitive(
    gql: GQL, tenant: Tenant, content_type: str
) -> None:
    """RFC 9110 (8.3.1): type, subtype, parameter names and the charset's value are
    case-insensitive. A client writing the type in capitals got 415, and its answer was
    kept out of the response memo."""
    response = await gql.client.post(
        "/graphql",
        content=b'{"query":"{ me { role } }"}',
        headers={
            "content-type": content_type,
            "authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"role": "VENDOR_ADMIN"}}}


async def test_a_multipart_type_in_capitals_is_read(gql: GQL, tenant: Tenant) -> None:
    operations = json.dumps({"query": "{ me { role } }"}).encode()
    body = (
        b'--cut\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        + operations
        + b'\r\n--cut\r\nContent-Disposition: form-data; name="map"\r\n\r\n{}\r\n--cut--\r\n'
    )
    response = await gql.client.post(
        "/graphql",
        content=body,
        headers={
            "content-type": "Multipart/Form-Data; boundary=cut",
            "authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"role": "VENDOR_ADMIN"}}}


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"accept": "application/xml"}
    )
    assert response.status_code == 406


async def test_media_type_negotiation(client: httpx.AsyncClient) -> None:
    body = {"query": "{ __typename }"}
    plain = await client.post("/graphql", json=body, headers={"accept": "application/json"})
    assert plain.headers["content-type"].startswith("application/json")
    modern = await client.post(
        "/graphql", json=body, headers={"accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"}
    )
    assert modern.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    anything = await client.post("/graphql", json=body, headers={"accept": "*/*"})
    assert anything.headers["content-type"].startswith("application/json")


async def test_request_errors_have_no_data_and_400_under_graphql_response_json(
    client: httpx.AsyncClient,
) -> None:
    body = {"query": "{ noSuchField }"}
    legacy = await client.post("/graphql", json=body, headers={"accept": "application/json"})
    assert legacy.status_code == 200  # application/json keeps 200, per the spec
    assert "data" not in legacy.json()
    assert error_codes(legacy.json()) == ["GRAPHQL_VALIDATION_FAILED"]

    modern = await client.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    assert modern.status_code == 400
    assert "data" not in modern.json()

    syntax = await client.post(
        "/graphql", json={"query": "{ me {"}, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert syntax.status_code == 400
    assert error_codes(syntax.json()) == ["GRAPHQL_PARSE_FAILED"]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "subscription",
    [
        "subscription { notificationReceived { id } }",
        'subscription { leaderboardChanged(contestId: "Q29udGVzdDp4") { version } }',
    ],
)
async def test_subscriptions_over_http_are_a_request_error(
    gql: GQL, tenant: Tenant, method: str, subscription: str
) -> None:
    """Subscriptions are served over the websockets only: over HTTP (Apollo's HttpLink when a
    client's split sends one there) a request error that says so, never an execution of the
    subscription as a query (a masked INTERNAL_SERVER_ERROR)."""
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    for accept, status in ((GRAPHQL_RESPONSE, 400), ("application/json", 200)):
        headers = {"accept": accept, "authorization": f"Bearer {token}"}
        if method == "GET":
            response = await gql.client.get(
                "/graphql", params={"query": subscription}, headers=headers
            )
        else:
            response = await gql.client.post(
                "/graphql", json={"query": subscription}, headers=headers
            )
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(accept)
        body = response.json()
        assert "data" not in body
        assert error_codes(body) == ["OPERATION_NOT_ALLOWED"]
        assert "websockets" in body["errors"][0]["message"]


async def test_field_errors_keep_200_and_data(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ me { role } }"}, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"me": None}


async def test_variables_must_be_an_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }", "variables": [1, 2]})
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"query": 1}, "`query` must be a string"),
        ({"query": "{ __typename }", "variables": "x"}, "`variables` must be an object"),
        ({"query": "{ __typename }", "extensions": [1]}, "`extensions` must be an object"),
        ([{"query": "{ __typename }"}], "Batching is not enabled"),
        ({"query": "{ __typename }", "operationName": {"a": 1}}, "`operationName` must be a"),
        ({"query": "{ __typename }", "operationName": 7}, "`operationName` must be a"),
    ],
)
async def test_request_fields_of_the_wrong_kind_are_400(
    client: httpx.AsyncClient, content_type: str, body: object, what: str
) -> None:
    response = await client.post(
        "/graphql", content=json.dumps(body), headers={"content-type": content_type}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert what in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("body", [b"5", b'"{ __typename }"', b"true", b"null"])
@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_a_body_that_is_json_but_no_object_is_400(
    client: httpx.AsyncClient, body: bytes, accept: str
) -> None:
    """A JSON number, string, boolean or null as the whole body was asked for its "query"
    (an AttributeError: a 500, found by tests/api/test_fuzz.py's probes)."""
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json", "accept": accept}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert "must be a JSON object" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert (await client.post("/graphql", json={"query": "{ __typename }"})).status_code == 200


async def test_an_operation_name_that_is_not_a_string_is_400_in_a_multipart_request(
    client: httpx.AsyncClient,
) -> None:
    operations = {"query": "{ __typename }", "variables": {}, "operationName": ["x"]}
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": "{}"},
        files={"unused": ("a.txt", b"x", "text/plain")},
        headers={"apollo-require-preflight": "1"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert "`operationName` must be a" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("kind", ["multipart", "json"])
async def test_a_client_gone_mid_body_ends_the_request_quietly(
    app: Starlette, gql: GQL, tenant: Tenant, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that goes away while sending its body (an upload cancelled on a phone): the
    request ends there, no error is logged and nothing is sent. Starlette's ClientDisconnect
    went up out of the app: uvicorn logged "Exception in ASGI application" with a traceback,
    once per cancelled upload."""
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    if kind == "multipart":
        content_type = b"multipart/form-data; boundary=cut"
        first = (
            b'--cut\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            b'{"query":"mutation($f: Upload!) { saleClaimAttachProof(input: {id: \\"x\\", '
            b'file: $f}) { userErrors { code } } }","variables":{"f":null}}\r\n'
            b'--cut\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"1":["variables.f"]}'
            b'\r\n--cut\r\nContent-Disposition: form-data; name="1"; filename="a.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\n" + b" " * 65536
        )
    else:
        content_type = b"application/json"
        first = b'{"query": "{ me { role } }", "variables": {"pad": "' + b" " * 4096
    messages = [
        {"type": "http.request", "body": first, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"), (b"content-type", content_type),
            (b"content-length", b"200000"), (b"authorization", f"Bearer {token}".encode()),
        ],
    }  # fmt: skip
    with caplog.at_level(logging.WARNING):
        await app(scope, receive, send)
    assert sent == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def _too_many_fields() -> bytes:
    parts = [
        f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
        for i in range(1001)
    ]
    return b"".join(parts) + b"--b--\r\n"


@pytest.mark.parametrize(
    ("content_type", "body", "what"),
    [
        ("multipart/form-data", b"x", "Missing boundary"),
        ("multipart/form-data; boundary=b", _too_many_fields(), "Too many fields"),
    ],
    ids=["no-boundary", "too-many-fields"],
)
async def test_a_multipart_body_the_form_parser_refuses_is_a_coded_400(
    client: httpx.AsyncClient, content_type: str, body: bytes, what: str
) -> None:
    """Starlette's form parser refuses these with its own HTTPException: it was a
    plain-text 400 with no code (found by tests/api/test_fuzz.py's probes)."""
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": content_type, "apollo-require-preflight": "1"},
    )
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["message"].startswith("Malformed multipart request: " + what)
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_responses_are_compact_utf8_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename s: __typename }"},
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.content == b'{"data":{"__typename":"Query","s":"Query"}}'
    unknown = await client.post("/graphql", json={"query": '{ __typename @skip(if: "café") }'})
    assert r"caf\u00e9" not in unknown.text  # not escaped: UTF-8
    assert "café" in unknown.json()["errors"][0]["message"]


async def test_body_size_limit(client: httpx.AsyncClient) -> None:
    padding = "#" + "x" * (1 << 20) + "\n"
    response = await client.post("/graphql", json={"query": padding + "{ __typename }"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_chunked_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        payload = json.dumps({"query": "#" + "y" * (2 << 20) + "\n{ __typename }"}).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.fixture
async def limited(settings: Settings, clock: OffsetClock) -> AsyncIterator[GQL]:
    """The same service with small limits, so real queries can reach them."""
    limits = replace(settings.limits, max_query_depth=4, max_aliases=2, max_tokens=60)
    app = create_app(settings.with_overrides(limits=limits), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield GQL(client=client, settings=settings, clock=clock)


async def test_depth_limit(limited: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    ok = await limited("{ users { edges { node { id } } } }", as_user=admin)
    assert "errors" not in ok
    too_deep = "{ users { edges { node { partner { id } } } } }"
    payload = await limited(too_deep, as_user=admin)
    assert error_codes(payload) == ["QUERY_TOO_DEEP"]
    assert "data" not in payload
    # Fragments do not hide depth.
    hidden = "query Q { users { edges { node { ...U } } } } fragment U on User { partner { id } }"
    assert error_codes(await limited(hidden, as_user=admin)) == ["QUERY_TOO_DEEP"]


async def test_alias_limit(limited: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert "errors" not in await limited("{ a: me { role } b: me { role } }", as_user=admin)
    payload = await limited("{ a: me { role } b: me { role } c: me { role } }", as_user=admin)
    assert error_codes(payload) == ["TOO_MANY_ALIASES"]


async def test_token_limit(limited: GQL) -> None:
    fields = " ".join(["__typename"] * 70)
    response = await limited.post("{ " + fields + " }")
    payload = response.json()
    assert error_codes(payload) == ["TOO_MANY_TOKENS"]
    assert "data" not in payload


async def test_page_size_is_capped(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert "errors" not in await gql("{ partners(first: 100) { totalCount } }", as_user=admin)
    payload = await gql("{ partners(first: 101) { totalCount } }", as_user=admin)
    assert error_codes(payload) == ["PAGE_SIZE_TOO_LARGE"]
    payload = await gql('{ partners(after: "bogus") { totalCount } }', as_user=admin)
    assert error_codes(payload) == ["INVALID_CURSOR"]
    payload = await gql("{ partners(first: -1) { totalCount } }", as_user=admin)
    assert error_codes(payload) == ["BAD_USER_INPUT"]


async def test_pagination_walks_every_row_once(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    query = """query($after: String) { users(first: 3, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { email } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql.data(query, {"after": after}, as_user=admin))["users"]
        assert page["totalCount"] == 7
        seen += [e["node"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 7


async def test_unexpected_errors_are_masked_and_coded(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    async with db.transaction() as session:  # a row the code cannot read: a bug, not input
        await session.execute(
            text("UPDATE partner SET status = 'BOGUS' WHERE id = :id"),
            {"id": tenant.partners[1].id.hex if is_sqlite(db.url) else tenant.partners[1].id},
        )
    payload = await gql(
        "{ me { role } partners { edges { node { name } } } }",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    assert payload["data"]["me"] == {"role": "VENDOR_ADMIN"}  # the rest of the answer stands
    assert payload["data"]["partners"] is None
    [error] = payload["errors"]
    assert error["message"] == "Internal error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "BOGUS" not in json.dumps(payload)
    assert "partner" not in error["message"].lower()


async def test_a_database_outage_is_503_not_a_stack_trace(
    settings: Settings, clock: OffsetClock
) -> None:
    broken = settings.with_overrides(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/x")
    app = create_app(broken, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/graphql",
                json={"query": "{ me { role } }"},
                headers={"authorization": f"Bearer {signed_token_for_nobody()}"},
            )
    assert response.status_code == 503
    assert error_codes(response.json()) == ["SERVICE_UNAVAILABLE"]
    assert "Traceback" not in response.text


def signed_token_for_nobody() -> str:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iss": "channelboard-dev", "aud": "channelboard",
              "iat": now, "exp": now + 60}  # fmt: skip
    return jwt.encode(claims, DEVELOPMENT_SECRET, algorithm="HS256")
