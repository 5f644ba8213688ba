"""The document checks every path applies before validation (schema.document_limits), over
HTTP; tests/api/test_ws_limits.py runs the same documents over both websocket protocols."""

from __future__ import annotations

import json

import httpx
import pytest

from partners.roles import Role
from schema.document_limits import CACHE_MAX_TEXT, DocumentGate, DocumentLimits
from tests.factories import Tenant
from tests.support import GQL, error_codes

# The document: one field repeated 490 times (1,963 tokens, over a second of CPU in
# the overlapping-fields rule before these checks).
REPEATED = "query { " + " ".join(["saleClaims { totalCount }"] * 490) + " }"


def refused(payload: dict[str, object], code: str) -> None:
    assert error_codes(payload) == [code], payload
    assert "data" not in payload


async def test_a_field_repeated_hundreds_of_times_is_refused_before_validation(
    gql: GQL, tenant: Tenant
) -> None:
    refused(await gql(REPEATED, as_user=tenant.user(Role.VENDOR_ADMIN)), "TOO_MANY_REPEATED_FIELDS")
    # Anonymous callers have smaller budgets: the same document is not even parsed.
    refused(await gql(REPEATED), "DOCUMENT_TOO_LARGE")
    # Repeats merged one level down count too (`a { x } a { x }` merges the x's).
    nested = "{ " + " ".join(["saleClaims { edges { node { id } } }"] * 11) + " }"
    refused(await gql(nested, as_user=tenant.user(Role.VENDOR_ADMIN)), "TOO_MANY_REPEATED_FIELDS")
    few = "{ " + " ".join(["saleClaims { totalCount }"] * 3) + " }"
    assert "errors" not in await gql(few, as_user=tenant.user(Role.VENDOR_ADMIN))


async def test_operations_that_do_not_run_and_unused_fragments_are_measured_too(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    """graphql validates the whole document, whichever operation runs."""
    headers = {"authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}"}
    twenty = " ".join(["saleClaims { totalCount }"] * 20)
    for document in (
        f"query A {{ me {{ role }} }} query B {{ {twenty} }}",
        f"query A {{ me {{ role }} }} fragment Unused on Query {{ {twenty} }}",
    ):
        body = {"query": document, "operationName": "A"}
        response = await client.post("/graphql", json=body, headers=headers)
        refused(response.json(), "TOO_MANY_REPEATED_FIELDS")


async def test_a_long_document_is_refused_before_parsing(gql: GQL, tenant: Tenant) -> None:
    # Few tokens, but lexing costs per character: a long comment or string literal.
    for padding in ("#" + "x" * (40 << 10) + "\n", f'query($s: String = "{"y" * (40 << 10)}") '):
        document = padding + "{ __typename }"
        refused(await gql(document, as_user=tenant.user(Role.VENDOR_ADMIN)), "DOCUMENT_TOO_LARGE")


async def test_introspection_counts_toward_depth(gql: GQL) -> None:
    def of_type(levels: int) -> str:
        inner = "name"
        for _ in range(levels):
            inner = f"ofType {{ {inner} }}"
        return "{ __schema { types { " + inner + " } } }"

    assert "errors" not in await gql(of_type(12))  # 15 levels: the introspection allowance
    refused(await gql(of_type(13)), "QUERY_TOO_DEEP")


SCHEMA_FIELDS = (
    "__schema { types { name kind description fields { name description isDeprecated "
    "deprecationReason args { name description defaultValue } type { name kind ofType { name } "
    "} } inputFields { name } interfaces { name } enumValues { name } possibleTypes { name } } }"
)


async def test_fragments_are_expanded_for_the_selection_budget(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    # 27 selections, 20 times: over the 500 budget although every limit by itself holds.
    wide = "{ " + " ".join(f"a{i}: {SCHEMA_FIELDS}" for i in range(20)) + " }"
    refused(await gql(wide, as_user=admin), "TOO_MANY_SELECTIONS")
    assert "errors" not in await gql("{ " + SCHEMA_FIELDS + " }", as_user=admin)
    # Each fragment spreads the next twice: 2**12 selections from a few hundred bytes.
    defs = " ".join(f"fragment B{i} on Query {{ ...B{i + 1} ...B{i + 1} }}" for i in range(12))
    bomb = f"query {{ ...B0 }} {defs} fragment B12 on Query {{ me {{ role }} }}"
    refused(await gql(bomb, as_user=admin), "TOO_MANY_REPEATED_FIELDS")
    # Aliases hidden in a fragment spread many times count every time.
    aliased = "fragment A on Query { a: me { role } b: me { role } c: me { role } }"
    spreads = " ".join(f"x{i}: me {{ role }}" for i in range(15))
    many = f"query {{ ...A ...A {spreads} }} {aliased}"
    refused(await gql(many, as_user=tenant.user(Role.VENDOR_ADMIN)), "TOO_MANY_ALIASES")


async def test_several_operations_need_an_operation_name(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    headers = {"authorization": f"Bearer {token}"}
    document = "query A { me { role } } query B { __typename }"
    response = await client.post("/graphql", json={"query": document}, headers=headers)
    refused(response.json(), "OPERATION_NAME_REQUIRED")
    response = await client.post(
        "/graphql", json={"query": document, "operationName": "B"}, headers=headers
    )
    assert response.json() == {"data": {"__typename": "Query"}}


MALFORMED_MAPS: list[tuple[object, object]] = [
    ({"query": "{ __typename }", "variables": {"file": None}}, ["variables.file"]),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"0": "variables.file"}),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"0": []}),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"0": [7]}),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"0": ["variables.nothing.x"]}),
    ({"query": "{ __typename }", "variables": {"files": [None]}}, {"0": ["variables.files.x"]}),
    ({"query": "{ __typename }", "variables": {"files": [None]}}, {"0": ["variables.files.5"]}),
    ({"query": "{ __typename }", "variables": {"files": [None]}}, {"0": ["variables.files.-1"]}),
    ({"query": "{ __typename }", "variables": {"file": "text"}}, {"0": ["variables.file.x"]}),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"1": ["variables.file"]}),
    ({"query": "{ __typename }", "variables": {"file": None}}, {"0": ["query"]}),
    (["not", "an", "object"], {"0": ["variables.file"]}),
    ("a string", {"0": ["variables.file"]}),
]


@pytest.mark.parametrize(("operations", "files_map"), MALFORMED_MAPS)
async def test_a_malformed_multipart_request_is_a_400_with_a_code(
    client: httpx.AsyncClient, operations: object, files_map: object
) -> None:
    form = {"operations": json.dumps(operations), "map": json.dumps(files_map)}
    upload = {"0": ("proof.pdf", b"%PDF-1.7\n", "application/pdf")}
    response = await client.post("/graphql", data=form, files=upload)
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]


DEEP = "[" * 200_000 + "]" * 200_000  # 400 KB, under the body limit, too deep to decode


@pytest.mark.parametrize("where", ["body", "multipart operations", "multipart map"])
async def test_json_nested_too_deeply_is_a_400_with_a_code(
    client: httpx.AsyncClient, where: str
) -> None:
    """Anonymous, under the size limits: it used to raise RecursionError out of the app (a
    plain-text 500)."""
    if where == "body":
        body = '{"query": "{ __typename }", "variables": {"a": ' + DEEP + "}}"
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    else:
        operations = '{"query": "{ __typename }", "variables": {"a": ' + DEEP + "}}"
        form = (
            {"operations": operations, "map": "{}"}
            if where == "multipart operations"
            else {"operations": '{"query": "{ __typename }"}', "map": DEEP}
        )
        upload = {"0": ("proof.pdf", b"%PDF-1.7\n", "application/pdf")}
        response = await client.post("/graphql", data=form, files=upload)
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]


def test_the_document_caches_are_bounded_by_the_text_they_remember() -> None:
    """A caller cycling distinct maximal documents (a parsed document is ~200 times its
    text) must not pin hundreds of megabytes: each cache keeps at most CACHE_MAX_TEXT
    characters of documents."""
    gate = DocumentGate(DocumentLimits())
    field = "saleClaims { totalCount } " * 9  # under the repeated-field limit
    for n in range(400):
        query = f"query Q{n} {{ {field} }}" + " " * 2000
        gate.check(query, None)
    for cache in (gate._parsed, gate._checked):
        assert sum(len(key[0]) for key in cache) <= CACHE_MAX_TEXT
        assert len(cache) < 400
