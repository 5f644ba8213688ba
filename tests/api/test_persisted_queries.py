"""Automatic persisted queries over HTTP (api.persisted_queries): the protocol Apollo
Client's PersistedQueryLink and urql's persistedExchange speak. conformance/apollo.mjs runs
Apollo's own link against a served app."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from api.persisted_queries import PersistedQueries
from infra.redis import Keys
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant
from tests.ports import free_port
from tests.support import GQL

GRAPHQL_RESPONSE = "application/graphql-response+json"
ME = "query Me { me { role user { email } } }"
CREATE_KEY = 'mutation { apiKeyCreate(input: {name: "by hash"}) { apiKey { name } } }'
KEYS = "{ apiKeys(first: 50) { edges { node { name } } } }"


def fresh(document: str) -> str:
    """``document`` under a hash no test has used: the app (one per test run) keeps the
    documents it ran in a cache of its process, which the cleanup between tests (tables and
    Redis) does not empty, so a test asking that a hash is not known yet must not depend
    on the tests before it (run in another order, they had run it)."""
    return f"{document}\n# {uuid.uuid4()}"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def _post(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    token: str | None = None,
    accept: str = "application/json",
) -> httpx.Response:
    headers = {"accept": accept}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=body, headers=headers)


def _code(response: httpx.Response) -> str:
    payload = response.json()
    assert "data" not in payload, payload  # refused before execution: no data at all
    code: str = payload["errors"][0]["extensions"]["code"]
    return code


async def test_a_hash_is_found_once_its_document_ran(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_ADMIN))
    doc = fresh(ME)
    # First the hash alone, as the clients do: not known yet, so the client sends the text.
    for accept, status in (("application/json", 200), (GRAPHQL_RESPONSE, 400)):
        missing = await _post(client, {"extensions": persisted(sha(doc))}, token, accept)
        assert missing.status_code == status
        assert missing.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        assert _code(missing) == "PERSISTED_QUERY_NOT_FOUND"
    full = await _post(client, {"query": doc, "extensions": persisted(sha(doc))}, token)
    assert "data" in full.json(), full.text
    me = full.json()["data"]["me"]
    assert me["role"] == "PARTNER_ADMIN"
    # Then the hash alone runs it, by POST and by GET (which a CDN may cache), for this
    # caller and for another (the document is shared; what it reads is the caller's own).
    again = await _post(client, {"extensions": persisted(sha(doc).upper())}, token)
    assert again.json() == {"data": {"me": me}}
    got = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(sha(doc))), "operationName": "Me"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert got.status_code == 200
    assert got.json() == {"data": {"me": me}}
    rep = gql.token(tenant.user(Role.PARTNER_REP))
    other = await _post(client, {"extensions": persisted(sha(doc))}, rep)
    assert other.json()["data"]["me"]["role"] == "PARTNER_REP"


async def test_a_kept_document_is_shared_through_redis(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, app: Starlette
) -> None:
    services: Services = app.state.services
    token = gql.token(tenant.user(Role.PARTNER_ADMIN))
    await _post(client, {"query": ME, "extensions": persisted(sha(ME))}, token)
    assert await services.redis.get(services.keys("apq", sha(ME))) == ME.encode()
    # Another API process (its own cache empty) finds it in Redis.
    other = PersistedQueries(services.redis, services.keys, max_document_bytes=32 << 10)
    assert await other.resolve(None, persisted(sha(ME))) == (ME, None, None)
    # A stored text that is not the hash's (the store is shared, not trusted) is not used.
    await services.redis.set(services.keys("apq", sha("{ x }")), "{ me { email } }")
    query, _, refused = await other.resolve(None, persisted(sha("{ x }")))
    assert query is None
    assert refused is not None
    assert refused.extensions == {"code": "PERSISTED_QUERY_NOT_FOUND"}


async def test_a_wrong_hash_runs_nothing(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    keys, create_key = fresh(KEYS), fresh(CREATE_KEY)
    before = await _post(client, {"query": keys}, token)
    wrong = await _post(client, {"query": create_key, "extensions": persisted(sha(keys))}, token)
    assert _code(wrong) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert (await _post(client, {"query": keys}, token)).json() == before.json()
    # ... and keeps nothing under either hash.
    for digest in (sha(keys), sha(create_key)):
        missing = await _post(client, {"extensions": persisted(digest)}, token)
        assert _code(missing) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (persisted(sha(ME), version=2), "PERSISTED_QUERY_NOT_SUPPORTED"),
        ({"persistedQuery": "yes"}, "PERSISTED_QUERY_NOT_SUPPORTED"),
        ({"persistedQuery": {"version": 1}}, "BAD_REQUEST"),
        (persisted("abc"), "BAD_REQUEST"),
        (persisted(sha(ME) + "0"), "BAD_REQUEST"),
        ({"persistedQuery": {"version": 1, "sha256Hash": 7}}, "BAD_REQUEST"),
    ],
)
async def test_malformed_persisted_query_extensions_are_coded(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, extensions: dict[str, Any], code: str
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_ADMIN))
    for body in ({"extensions": extensions}, {"query": ME, "extensions": extensions}):
        response = await _post(client, body, token, GRAPHQL_RESPONSE)
        assert response.status_code == 400
        assert _code(response) == code
        if code == "PERSISTED_QUERY_NOT_SUPPORTED":  # the message clients match, exactly
            assert response.json()["errors"][0]["message"] == "PersistedQueryNotSupported"


async def test_what_is_kept(client: httpx.AsyncClient, gql: GQL, tenant: Tenant) -> None:
    """Only a document that ran, sent by an authenticated caller, is kept."""
    token = gql.token(tenant.user(Role.PARTNER_ADMIN))
    anonymous = fresh("{ __typename }")
    ran = await _post(client, {"query": anonymous, "extensions": persisted(sha(anonymous))})
    assert ran.json() == {"data": {"__typename": "Query"}}
    invalid = "{ me { noSuchField } }"
    refused = await _post(client, {"query": invalid, "extensions": persisted(sha(invalid))}, token)
    assert _code(refused) == "GRAPHQL_VALIDATION_FAILED"
    for digest in (sha(anonymous), sha(invalid)):
        missing = await _post(client, {"extensions": persisted(digest)}, token)
        assert _code(missing) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_kept_mutation_is_not_run_by_get(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    made = await _post(
        client, {"query": CREATE_KEY, "extensions": persisted(sha(CREATE_KEY))}, token
    )
    assert made.json()["data"]["apiKeyCreate"]["apiKey"]["name"] == "by hash"
    before = await _post(client, {"query": KEYS}, token)
    got = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(sha(CREATE_KEY)))},
        headers={"authorization": f"Bearer {token}", "accept": GRAPHQL_RESPONSE},
    )
    assert got.status_code == 405
    assert (await _post(client, {"query": KEYS}, token)).json() == before.json()


async def test_redis_out_of_reach_degrades_to_full_documents() -> None:
    """A lookup finds nothing (the client then sends the document) and a registration is
    skipped: no request fails for it."""
    gone = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        store = PersistedQueries(gone, Keys("apq-test"), max_document_bytes=32 << 10)
        query, register, refused = await store.resolve(ME, persisted(sha(ME)))
        assert (query, register, refused) == (ME, sha(ME), None)
        await store.register(sha(ME), ME)  # kept in this process only
        assert await store.resolve(None, persisted(sha(ME))) == (ME, None, None)
        _, _, refused = await store.resolve(None, persisted(sha("{ other }")))
        assert refused is not None
        assert refused.message == "PersistedQueryNotFound"
    finally:
        await gone.aclose()
