"""Automatic persisted queries over the websockets (both protocols, both paths of
graphql-transport-ws), as api.persisted_queries serves them over HTTP.

What the clients send in a `subscribe` (legacy: `start`) payload:
- Apollo Client's PersistedQueryLink before the split to GraphQLWsLink: the document and
  ``extensions.persistedQuery`` with its hash (``includeQuery: false`` is an HttpLink
  option), on every subscription. Its link retries with the document only on an HTTP
  error, never over a websocket; it never sends the hash alone here.
- urql's ``persistedExchange({enableForSubscriptions: true})``: the hash alone first
  (``query: ""`` through urql's documented ``forwardSubscription``: graphql-ws sends no
  subscribe without a query string), and on an `error` whose message is
  ``PersistedQueryNotFound`` the document with its hash, under a new id.

So a document sent with its hash is checked (``PERSISTED_QUERY_HASH_MISMATCH`` runs
nothing) and run; the hash alone runs the document kept under it, and an unknown hash is
``PersistedQueryNotFound`` (``PERSISTED_QUERY_NOT_FOUND``), which urql recovers from. Each
refusal is the protocol's for an operation refused before it runs: one `error` message
(legacy: with one error object), the socket stays open. A document sent with its hash that
passes the document checks and validation is kept, as over HTTP (shared with HTTP: one
store), once per process (``PersistedQueries.register(if_new=True)``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLError

from api.persisted_queries import PersistedQueries
from api.ws_limits import refusals
from api.ws_messages import names_by_hash

log = logging.getLogger("channelboard.http")


def by_hash(payload: Any) -> bool:
    """A payload the persisted-query protocol applies to (its shape checked already)."""
    return isinstance(payload, dict) and names_by_hash(payload)


async def serve(
    persisted: PersistedQueries,
    schema: Any,
    message: dict[str, Any],
    *,
    run: Callable[[dict[str, Any]], Awaitable[None]],
    refuse: Callable[[GraphQLError], Awaitable[None]],
) -> None:
    """A `subscribe` (legacy: `start`) ``message`` naming its document by hash, after the
    protocol's checks that come before the document: ``run`` it with the document in its
    payload and keep the document, or ``refuse`` it in the protocol's shape."""
    resolved = await resolve(persisted, message["payload"])
    if isinstance(resolved, GraphQLError):
        await refuse(resolved)
        return
    payload, digest = resolved
    await run({**message, "payload": payload})
    await keep(persisted, schema, digest, payload)


async def resolve(
    persisted: PersistedQueries, payload: dict[str, Any]
) -> tuple[dict[str, Any], str | None] | GraphQLError:
    """The payload with the document to run as its ``query``, and the hash to keep it under
    once it passes the checks (None: nothing to keep); or the error refusing it. An empty
    ``query`` is none (graphql-ws clients cannot leave it out)."""
    try:
        query, digest, refused = await persisted.resolve(
            payload.get("query") or None, payload["extensions"]
        )
    except Exception as exc:  # noqa: BLE001 - one operation refused, not the socket closed
        # (Redis out of reach is answered inside: the document is then not found.) Over
        # HTTP such a failure fails one request; here it would close every operation.
        log.error("persisted query lookup failed", exc_info=exc)
        return GraphQLError("Internal error.", extensions={"code": "INTERNAL_SERVER_ERROR"})
    if refused is not None:
        return refused
    return {**payload, "query": query}, digest


async def keep(
    persisted: PersistedQueries, schema: Any, digest: str | None, payload: dict[str, Any]
) -> None:
    """Keep a document sent with its hash if it passes the checks every operation gets (a
    refused one is answered by the operation, and not kept)."""
    query = payload["query"]
    if digest is None or persisted.has(digest):  # kept already: not checked again
        return
    if refusals(schema, query, payload.get("operationName")):
        return
    try:
        await persisted.register(digest, query, if_new=True)
    except Exception as exc:  # noqa: BLE001 - the operation runs; only the keeping failed
        log.error("persisted query not kept", exc_info=exc)
