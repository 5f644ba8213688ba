"""Websocket limits, the same on both protocols (graphql-transport-ws and legacy graphql-ws):
message size, operations per connection, connections per principal, and the document checks
of schema.document_limits before an operation starts.

What a client sees at each limit:
- a message over CHANNELBOARD_WS_MAX_MESSAGE_BYTES: close 1009 ("Message Too Big", RFC 6455);
- more than CHANNELBOARD_WS_MAX_CONNECTIONS_PER_PRINCIPAL open connections of one user or API
  key on one process: the new connection is closed with 4429 after `connection_init` (legacy
  protocol: `connection_error` with payload code TOO_MANY_CONNECTIONS first);
- more than CHANNELBOARD_WS_MAX_SUBSCRIPTIONS operations at once: an `error` message for that
  operation, code TOO_MANY_OPERATIONS;
- a document over a limit (tokens, depth, aliases, selections, …), several operations
  without `operationName`, or an invalid document: an `error` message with the limit's code
  (or GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from json import JSONDecodeError
from typing import Any, cast

from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

from schema.document_limits import refusals as document_refusals

MESSAGE_TOO_BIG = 1009
# A close frame's reason: at most 123 bytes of UTF-8 (RFC 6455, 5.5: a control frame's
# payload is at most 125 bytes, two of them the code).
MAX_CLOSE_REASON_BYTES = 123
TOO_MANY_CONNECTIONS = 4429
_CLOSE_OVERRIDE = "channelboard.close_override"


class LimitedWebSocketAdapter(ASGIWebSocketAdapter):
    """Refuses messages over the size limit before decoding them, lets a connection
    refusal choose its close code (strawberry closes every refusal with 4403), and keeps a
    close reason within a close frame (``close_reason``)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        # strawberry's ASGIWebSocketAdapter.iter_json, with the size check before decoding.
        limit: int = getattr(self.view, "ws_max_message_bytes", 0)
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if too_big(text, limit):
                    await self.close(MESSAGE_TOO_BIG, f"Message larger than {limit} bytes")
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as e:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from e
        except KeyError as e:
            raise NonTextMessageReceived from e
        except WebSocketDisconnect:
            pass

    async def close(self, code: int, reason: str) -> None:
        code, reason = self.ws.scope.pop(_CLOSE_OVERRIDE, (code, reason))
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        await super().close(code, close_reason(reason))


def close_reason(reason: str) -> str:
    """``reason`` cut to fit a close frame. Reasons may quote what the client sent (an
    operation id, a message type); one over 123 bytes made uvicorn raise as it closed, and
    the client saw the connection dropped without a close frame (1006)."""
    if len(reason.encode()) <= MAX_CLOSE_REASON_BYTES:
        return reason
    ellipsis = "…"  # (3 bytes)
    cut = MAX_CLOSE_REASON_BYTES - len(ellipsis.encode())
    return reason.encode()[:cut].decode(errors="ignore") + ellipsis


def too_big(text: str, limit: int) -> bool:
    """A message over the size limit in bytes (0: none); counted only when it may be."""
    return bool(limit) and len(text) * 4 > limit and len(text.encode()) > limit


def refuse_connection(websocket: WebSocket, limit: int) -> ConnectionRejectionError:
    """The refusal of a connection over the per-principal limit: close 4429 (code
    TOO_MANY_CONNECTIONS) instead of strawberry's 4403 for every refusal."""
    reason = f"Too many connections (at most {limit} per user or key)"
    websocket.scope[_CLOSE_OVERRIDE] = (TOO_MANY_CONNECTIONS, reason)
    return ConnectionRejectionError(
        {"code": "TOO_MANY_CONNECTIONS", "reason": reason, "maxConnections": limit}
    )


def too_many_operations(limit: int) -> GraphQLError:
    return GraphQLError(
        f"Subscription limit reached: at most {limit} operations at once on one connection.",
        extensions={"code": "TOO_MANY_OPERATIONS", "maxOperations": limit},
    )


class LegacyOperationLimits:
    """For the legacy graphql-ws handler: the operation limit (coded) and the document
    checks, before strawberry starts an operation."""

    connection_acknowledged: bool
    max_subscriptions_per_connection: int | None
    schema: Any
    tasks: dict[str, Any]

    async def handle_start(self, message: Any) -> None:
        if self.connection_acknowledged:
            op_id = message["id"]
            limit = self.max_subscriptions_per_connection
            if limit is not None and op_id not in self.tasks and len(self.tasks) >= limit:
                errors = [too_many_operations(limit)]
            else:
                payload = message.get("payload")
                payload = payload if isinstance(payload, dict) else {}
                errors = refusals(self.schema, payload.get("query"), payload.get("operationName"))
            if errors:  # the legacy protocol's error payload is one error
                error = {"type": "error", "id": op_id, "payload": errors[0].formatted}
                await cast(Any, self).send_message(error)
                return
        await super().handle_start(message)  # type: ignore[misc]


class TransportOperationLimits:
    """For the graphql-transport-ws handler: the operation limit with a code (strawberry's
    error has none). The document checks run in its run_operation, before the fast path."""

    connection_acknowledged: bool
    max_subscriptions_per_connection: int | None
    operations: dict[str, Any]

    async def handle_subscribe(self, message: Any) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and limit is not None
            and len(self.operations) >= limit
        ):
            payload = [too_many_operations(limit).formatted]
            error = {"id": message["id"], "type": "error", "payload": payload}
            await cast(Any, self).send_message(error)
            return
        await super().handle_subscribe(message)  # type: ignore[misc]


def refusals(schema: Any, query: Any, operation_name: Any) -> list[GraphQLError]:
    """schema.document_limits' checks and validation for a websocket operation's payload."""
    if not isinstance(query, str) or not query:
        return [GraphQLError("The operation has no query.", extensions={"code": "BAD_REQUEST"})]
    if operation_name is not None and not isinstance(operation_name, str):
        return [GraphQLError("operationName must be a string.", extensions={"code": "BAD_REQUEST"})]
    return document_refusals(schema, query, operation_name)
