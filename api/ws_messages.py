"""The shapes of graphql-transport-ws messages from a client, as the protocol defines them
(and as the reference server's ``validateMessage`` checks them): a message of another
format closes the socket with 4400. The legacy ``graphql-ws`` protocol's ``start`` and
``stop`` have the shapes of ``subscribe`` and ``complete``, and are checked the same way.
One liberty: a payload whose ``extensions`` name the document by its hash
(``persistedQuery``, api.persisted_queries) may leave ``query`` out (or null), as the
persisted-query protocol does over HTTP; graphql-ws clients send ``""`` instead.

strawberry's handler reads the fields it needs and turns only a missing key into 4400; a
``payload`` that is a string or an ``id`` that is a list raised ``TypeError`` inside it,
which closed the socket with 1011 and logged a server error with a traceback for every such
message a client cared to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# For each field of a subscribe payload, the JSON types it may have (NoneType: null or
# absent), and how to say so.
_SUBSCRIBE_PAYLOAD: dict[str, tuple[tuple[type, ...], str]] = {
    "query": ((str,), "a string"),
    "variables": ((dict, type(None)), "an object or null"),
    "operationName": ((str, type(None)), "a string or null"),
    "extensions": ((dict, type(None)), "an object or null"),
}


_LEGACY = {"start": "subscribe", "stop": "complete"}


def malformed(message: Any, *, legacy: bool = False) -> str | None:
    """Why the message is not a protocol message, or None when its shape is right (an
    unknown ``type`` is left to the handler, which answers it as the protocol says)."""
    if not isinstance(message, Mapping):  # (the legacy handler is given any JSON)
        return "A message must be a JSON object"
    name = message.get("type")
    if not isinstance(name, str):
        return "The message's type must be a string"
    kind = _LEGACY.get(name, name) if legacy else name
    if kind in ("connection_init", "ping", "pong"):
        if not isinstance(message.get("payload"), dict | None):
            return f"The {name} message's payload must be an object"
        return None
    if kind not in ("subscribe", "complete"):
        return None
    if not isinstance(message.get("id"), str) or not message["id"]:
        return f"The {name} message's id must be a non-empty string"
    if kind == "complete":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return f"The {name} message's payload must be an object"
    for field, (types, described) in _SUBSCRIBE_PAYLOAD.items():
        value = payload.get(field)
        if field == "query" and value is None and names_by_hash(payload):
            continue  # the document named by its hash (api.persisted_queries)
        if not isinstance(value, types):
            return f"The {name} payload's {field} must be {described}"
    return None


def names_by_hash(payload: Mapping[str, Any]) -> bool:
    """A subscribe (start) payload asking for an automatic persisted query: its
    ``extensions`` hold ``persistedQuery``, and its ``query`` may be empty or absent."""
    extensions = payload.get("extensions")
    return isinstance(extensions, dict) and "persistedQuery" in extensions
