"""The /graphql endpoint: strawberry's ASGI view with our context, authentication, and the
GraphQL-over-HTTP details (media types, status codes, JSON error bodies) the spec asks for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from api import graphiql, ws_persisted
from api.auth import Authenticator, AuthFailure
from api.multipart import parse_multipart
from api.persisted_queries import PersistedQueries
from api.ws_limits import (
    LegacyOperationLimits,
    LimitedWebSocketAdapter,
    TransportOperationLimits,
    refusals,
)
from api.ws_messages import malformed
from api.ws_sessions import (
    AuthUnavailable,
    SocketSessions,
    serve_closing_on_failure,
    socket_gone,
)
from infra.memo import MemoKey, ResponseMemo
from infra.outages import is_unavailable, to_run_again
from partners.roles import Principal
from schema.context import Context, Services
from schema.extensions import service_unavailable_error
from schema.leaderboards.live import Plan, end_with_errors

log = logging.getLogger("channelboard.http")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# What a legacy graphql-ws client may send.
LEGACY_CLIENT_TYPES = frozenset({"connection_init", "start", "stop", "connection_terminate"})
WS_AUTH_KEYS = ("Authorization", "authorization", "authToken", "token")
# What each method may run over HTTP; subscriptions are served over the websockets only.
HTTP_OPERATIONS = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


def pick_subprotocol(requested: Sequence[str], spoken: Sequence[str]) -> str | None:
    """The websocket subprotocol for a handshake: graphql-transport-ws whenever the client
    offers it, else the client's first one we speak (None: none, strawberry refuses 4406).

    A client offering both protocols (gql's WebsocketsTransport and AIOHTTPWebsocketsTransport
    send ``graphql-ws, graphql-transport-ws`` and speak whichever the server picks) gets the
    maintained one, which the lean path (api.ws_lean) serves. (When the legacy protocol
    carried subscriptions only, the client's first choice left gql's default transport
    unable to run a query.) RFC 6455 leaves the choice to the server."""
    if GRAPHQL_TRANSPORT_WS_PROTOCOL in requested and GRAPHQL_TRANSPORT_WS_PROTOCOL in spoken:
        return GRAPHQL_TRANSPORT_WS_PROTOCOL
    return next((p for p in requested if p in spoken), None)


def subscription_over_http_error() -> GraphQLError:
    return GraphQLError(
        "Subscriptions are served over websockets (graphql-transport-ws at /graphql), "
        "not over HTTP.",
        extensions={"code": "OPERATION_NOT_ALLOWED"},
    )


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


# An escape of a surrogate (\\uD800 to \\uDFFF) in JSON text: paired (valid) or lone (not).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STATUS_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "SERVICE_UNAVAILABLE",
}


MULTIPART = "multipart/form-data"
# The charsets a JSON body may declare: the Unicode encodings JSON allows (decode_json reads
# each from the bytes themselves).
JSON_CHARSETS = frozenset(
    {"utf-8", "utf8", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le", "utf-32be"}
)
UNSUPPORTED_MEDIA_TYPE = "Send the request as application/json (or multipart/form-data)."


def body_content_type(value: str | None) -> str | None:
    """A POST's Content-Type with its media type in lower case, or None for a body not read
    here (415): one of another media type, or JSON declared in a charset JSON does not allow.
    RFC 9110 makes type, subtype, parameter names and the charset case-insensitive; strawberry
    matched "application/json" anywhere in the type (``application/jsonl``,
    ``xapplication/json`` were read as JSON), in lower case only (``Application/JSON`` was
    415), and read a body declared Latin-1 as UTF-8. The parameters are kept as sent (a
    multipart boundary is case-sensitive)."""
    media, sep, params = (value or "").partition(";")
    media = media.strip().lower()
    if media not in (JSON, MULTIPART):
        return None
    if media == JSON:
        for param in params.split(";"):
            name, _, charset = param.partition("=")
            if name.strip().lower() == "charset":
                if charset.strip().strip('"').lower() not in JSON_CHARSETS:
                    return None
    return media + sep + params


def status_code_name(status: int) -> str:
    """The error code of an HTTP refusal (``BAD_REQUEST`` for a 4xx not listed)."""
    return _STATUS_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR")


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None when we can offer none."""
    if not accept:
        return JSON
    offered: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(param[2:])
        media = media.lower()
        if q <= 0:
            continue
        if media == GRAPHQL_RESPONSE:
            offered.append((q, -index, GRAPHQL_RESPONSE))
        elif media in (JSON, "application/*", "*/*"):
            offered.append((q, -index, JSON))
    return max(offered)[2] if offered else None


def _errors(response: GraphQLHTTPResponse) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = cast(list[dict[str, Any]], response.get("errors") or [])
    return errors


def _add_codes(response: GraphQLHTTPResponse) -> None:
    add_codes(_errors(response))


def add_ws_codes(errors: list[Any]) -> None:
    """The codes of ``add_codes`` for the errors of a websocket message: the variable
    errors graphql-core reports before a subscription runs came without one (over HTTP:
    GRAPHQL_VALIDATION_FAILED). One with a ``path`` (a field's) is left as it is."""
    add_codes([e for e in errors if isinstance(e, dict) and "path" not in e])


def add_result_codes(payload: Any) -> None:
    """``add_ws_codes`` for the errors of a result (`next`, legacy `data`): those of an
    operation that ended on its variables come in one (schema.Schema._stream)."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if errors and isinstance(errors, list):
        add_ws_codes(errors)


def add_codes(errors: list[dict[str, Any]]) -> None:
    """A code for each of graphql-core's own errors (parse, validation, variables), which
    carry none."""
    for error in errors:
        ext = error.setdefault("extensions", {})
        if "code" in ext:
            continue
        message = error.get("message", "")
        if message.startswith("Syntax Error: Document contains more than"):
            ext["code"] = "TOO_MANY_TOKENS"
        elif message.startswith("Syntax Error"):
            ext["code"] = "GRAPHQL_PARSE_FAILED"
        elif "path" not in error:
            ext["code"] = "GRAPHQL_VALIDATION_FAILED"


def is_request_error(response: GraphQLHTTPResponse) -> bool:
    """Failed before execution (parse, validation, variables): the spec says no `data`."""
    errors = _errors(response)
    return response.get("data") is None and bool(errors) and all("path" not in e for e in errors)


class LegacyGraphQLWSHandler(LegacyOperationLimits, BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol (subscriptions-transport-ws) with every operation
    type it carries and its keep-alives (`ka`), under graphql-transport-ws's rules: bad credentials
    close with 4403, no connection_init in time with 4408, a second one with 4429, and a
    message that is not one of the protocol's (a binary frame, text that is not JSON, a
    type it does not define, fields of the wrong shape) with 4400. strawberry closed a
    binary frame with 1002 and skipped invalid JSON and unknown types in silence, re-ran
    the authentication on a second connection_init (the running operations then served
    whoever it named), closed a refusal with 1011, and enforced no init timeout."""

    connection_init_received = False

    async def handle_message(self, message: Any) -> None:
        problem = malformed(message, legacy=True)
        if problem is None and message["type"] not in LEGACY_CLIENT_TYPES:
            problem = f"Unknown message type: {message['type']}"
        if problem is not None:  # (strawberry raised on some: 1011 and a logged error)
            await self.websocket.close(code=4400, reason=problem)
            return
        await super().handle_message(message)

    async def handle(self) -> None:
        # strawberry's, with the message rules above for frames that are not JSON text.
        timeout = asyncio.create_task(self._close_unless_initialised())
        try:
            try:
                async for message in self.websocket.iter_json():
                    await self.handle_message(message)
            except NonTextMessageReceived:
                await self.websocket.close(code=4400, reason="WebSocket message type must be text")
            except NonJsonMessageReceived:
                await self.websocket.close(code=4400, reason="WebSocket message must be valid JSON")
        except WebSocketDisconnected:
            pass
        finally:
            timeout.cancel()
            with contextlib.suppress(BaseException):  # the client may be gone already
                await timeout
            if self.keep_alive_task:
                self.keep_alive_task.cancel()
                with contextlib.suppress(BaseException):
                    await self.keep_alive_task
            await self.cleanup()

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error" and isinstance(message.get("payload"), dict):
            add_ws_codes([message["payload"]])  # (this protocol's error payload is one error)
        elif message.get("type") == "data":
            add_result_codes(message.get("payload"))
        await super().send_message(message)

    async def handle_start(self, message: Any) -> None:
        # The document named by its hash (api.ws_persisted), after the checks that come
        # before the document (acknowledged: else 4401; the operation limit).
        payload, op_id = message["payload"], message["id"]
        limit = self.max_subscriptions_per_connection
        if (
            not ws_persisted.by_hash(payload)
            or not self.connection_acknowledged
            or (limit is not None and op_id not in self.tasks and len(self.tasks) >= limit)
        ):
            await super().handle_start(message)
            return

        async def refuse(error: GraphQLError) -> None:
            await self.send_message({"type": "error", "id": op_id, "payload": error.formatted})

        persisted = cast(GraphQLView, self.view).persisted
        await ws_persisted.serve(
            persisted, self.schema, message, run=super().handle_start, refuse=refuse
        )

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """An operation's task: strawberry's, with every operation type the protocol
        carries (subscriptions-transport-ws runs queries and mutations too: one `data`,
        then `complete`). strawberry's ran ``schema.subscribe``, which refuses the others
        ("mutations are not allowed"); ``schema.stream`` runs each through the same
        extensions as graphql-transport-ws (session scope, document limits, masking)."""
        # The task takes itself off `tasks` as it ends: an error raised out of it after
        # that (a send to the closed socket) was retrieved by no one.
        try:
            try:
                results = await self.schema.stream(
                    query=query,
                    variable_values=variables,
                    context_value=self.context,
                    root_value=self.root_value,
                    operation_name=operation_name,
                )
                self.subscriptions[operation_id] = results
                async with contextlib.aclosing(results):
                    first = True
                    async for result in results:
                        if not isinstance(result, ExecutionResult):  # @defer/@stream frames
                            error = GraphQLError(
                                "Incremental delivery is not supported over graphql-ws.",
                                extensions={"code": "OPERATION_NOT_ALLOWED"},
                            ).formatted
                            await self.send_message(
                                {"type": "error", "id": operation_id, "payload": error}
                            )
                            return
                        if first and isinstance(result, PreExecutionError):
                            assert result.errors
                            error = result.errors[0].formatted
                            await self.send_message(
                                {"type": "error", "id": operation_id, "payload": error}
                            )
                            return
                        await self.send_data_message(result, operation_id)
                        first = False
                await self.send_message({"type": "complete", "id": operation_id})
            except asyncio.CancelledError:
                await self.send_message({"type": "complete", "id": operation_id})
            finally:
                self.subscriptions.pop(operation_id, None)
                self.tasks.pop(operation_id, None)
        except Exception as exc:
            if not socket_gone(self.websocket.ws, exc):  # type: ignore[attr-defined]
                raise

    async def handle_keep_alive(self) -> None:
        """`ka` right after connection_ack, then every ``keep_alive_interval`` seconds, as
        subscriptions-transport-ws's server does (clients time out without them: gql's
        ``keep_alive_timeout``, SubscriptionClient's ``timeout``, counted from the first
        ``ka``; its ``inactivityTimeout`` is for a socket with no operation). Ends quietly
        once the socket is gone (``handle`` cancels it as the connection ends)."""
        interval = self.keep_alive_interval
        assert interval
        try:
            while True:
                await self.send_message({"type": "ka"})
                await asyncio.sleep(interval)
        except Exception as exc:
            # (Awaited quietly as the connection ends: a failure other than the socket gone
            # is logged here, or it would pass unseen while clients time out.)
            if not socket_gone(self.websocket.ws, exc):  # type: ignore[attr-defined]
                log.error("legacy keep-alive failed", exc_info=exc)

    async def _close_unless_initialised(self) -> None:
        wait = cast(GraphQLView, self.view).connection_init_wait_timeout.total_seconds()
        await asyncio.sleep(wait)
        if not self.connection_init_received:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        if self.connection_init_received:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.send_message({"type": "connection_error"})
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as rejection:
            await self.send_message({"type": "connection_error", "payload": rejection.payload})
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        if isinstance(ack, UnsetType) or ack is None:
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack})
        self.connection_acknowledged = True
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())


class TransportWSHandler(TransportOperationLimits, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with the schema's fast subscription paths: an operation one of
    them recognises is served by it (e.g. executed once per group of subscribers), anything
    else by strawberry as usual."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fast-path operations joined to their feed with no task (see schema.leaderboards.live
        # DirectSink), by operation id; they are in `operations` too.
        self.parked: dict[str, Any] = {}

    async def cleanup_operation(self, operation_id: str) -> None:
        parked = self.parked.pop(operation_id, None)
        if parked is None:
            await super().cleanup_operation(operation_id)
            return
        self.operations.pop(operation_id, None)  # (it has no task to cancel)
        await parked.stop()

    async def shutdown(self) -> None:
        await super().shutdown()
        for parked in list(self.parked.values()):  # any no longer listed in `operations`
            await parked.stop()

    async def handle_message(self, message: Any) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)  # closes with 4400
            return
        await super().handle_message(message)

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error" and isinstance(message.get("payload"), list):
            add_ws_codes(message["payload"])
        elif message.get("type") == "next":
            add_result_codes(message.get("payload"))
        await super().send_message(message)

    async def handle_subscribe(self, message: Any) -> None:
        # The document named by its hash (api.ws_persisted), after the checks that come
        # before the document (acknowledged: else 4401; a duplicate id: 4409; the
        # operation limit). The refusal is an `error` for the id, as for TOO_MANY_OPERATIONS.
        payload, op_id = message["payload"], message["id"]
        limit = self.max_subscriptions_per_connection
        if (
            not ws_persisted.by_hash(payload)
            or not self.connection_acknowledged
            or op_id in self.operations
            or (limit is not None and len(self.operations) >= limit)
        ):
            await super().handle_subscribe(message)
            return

        async def refuse(error: GraphQLError) -> None:
            await self.send_message({"id": op_id, "type": "error", "payload": [error.formatted]})

        persisted = cast(GraphQLView, self.view).persisted
        await ws_persisted.serve(
            persisted, self.schema, message, run=super().handle_subscribe, refuse=refuse
        )

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_init_received and self.connection_init_timeout_task is not None:
            # strawberry cancels the timeout but keeps the task, and with it the
            # cancellation's traceback and frames, for the connection's lifetime.
            self.connection_init_timeout_task = None

    async def handle_task_exception(self, error: Exception) -> None:
        # (strawberry's operation tasks report their errors here, then end with them)
        if not socket_gone(self.websocket.ws, error):  # type: ignore[attr-defined]
            await super().handle_task_exception(error)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        try:
            errors = refusals(self.schema, operation.query, operation.operation_name)
            if errors:
                await operation.send_initial_errors(errors)
                return
            for fast in getattr(self.view, "fast_subscriptions", ()):
                plan = fast.plan(operation.query, operation.variables, operation.operation_name)
                if plan is None:
                    continue
                parked = False
                try:
                    parked = await fast.run(self, operation, plan)
                except Exception as exc:  # (answered while the operation is still registered)
                    await _fail_operation(operation, exc, running=plan)
                finally:
                    # (A parked one stays until it completes.) Only this operation: the
                    # client may have completed it and reused its id for a new one already.
                    if not parked and self.operations.get(operation.id) is operation:
                        del self.operations[operation.id]
                return
        except Exception as exc:  # strawberry's own path logs, masks and answers; so do we
            await _fail_operation(operation, exc)
            return
        await super().run_operation(operation)


class GraphQLView(GraphQL[Context, None]):
    graphql_ws_handler_class = LegacyGraphQLWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter

    def __init__(
        self,
        *args: Any,
        services: Services,
        authenticator: Authenticator,
        ws_max_message_bytes: int = 0,
        sockets: SocketSessions,
        max_document_bytes: int = 32 << 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.services = services
        self.persisted = PersistedQueries(
            services.redis, services.keys, max_document_bytes=max_document_bytes
        )
        self.authenticator = authenticator
        self.ws_max_message_bytes = ws_max_message_bytes
        # Open websockets, closed when their credential expires or stops authenticating.
        self.sockets = sockets
        from schema.root import FAST_SUBSCRIPTIONS  # noqa: PLC0415

        self.fast_subscriptions = [make(self.schema, services) for make in FAST_SUBSCRIPTIONS]
        self.memo = ResponseMemo(services.db.epochs)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """strawberry's (a GET with no query, from a browser or `*/*`), unless the GET names
        its document by hash (``extensions``): that is an operation, not a visit."""
        return super().should_render_graphql_ide(request) and not request.query_params.get(
            "extensions"
        )

    async def pick_websocket_subprotocol(self, request: Any) -> str | None:
        return pick_subprotocol(request["subprotocols"], self.websocket_subprotocols)

    async def render_graphql_ide(self, request: Request) -> Response:
        """Our GraphiQL page: its assets come from this app, not a CDN (works offline)."""
        return HTMLResponse(graphiql.page())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await serve_closing_on_failure(super().__call__, scope, receive, send)
            finally:
                self.sockets.forget(scope)
            return
        content_type: str | None = ""
        if scope["method"] == "POST":
            content_type = _normalise_content_type(scope)
        request = Request(scope, receive)
        try:
            media = negotiate(request.headers.get("accept"))
            wants_ide = request.method == "GET" and "text/html" in request.headers.get("accept", "")
            if media is None and not wants_ide:
                raise HTTPException(406, f"Accept {JSON} or {GRAPHQL_RESPONSE}.")
            request.state.media_type = media or JSON
            if content_type is None:
                raise HTTPException(415, UNSUPPORTED_MEDIA_TYPE)
            try:
                context = await self.http_context(request)
            except Exception as exc:  # the database behind authentication is down
                log.exception("authentication could not reach the database")
                raise HTTPException(503, "The service is temporarily unavailable.") from exc
            key = await self._memo_key(request, context)
            if key is not None:
                body = self.memo.get(key, self.services.clock.now())
                if body is not None:
                    await Response(body, media_type=request.state.media_type)(scope, receive, send)
                    return
                context.recording = self.memo.start()
            response = await self.run(request, context=context)
            _finish_http_response(request, response)
            fields = getattr(request.state, "root_fields", 0)
            if key is not None and context.recording is not None and response.status_code == 200:
                self.memo.put(key, context.recording, fields, bytes(response.body))
        except HTTPException as exc:
            response = self.error_response(exc.status_code, exc.reason, request)
        except ClientDisconnect:
            # Gone while sending its body (an upload cancelled): no one to answer, no bug.
            # (Uncaught, uvicorn logged "Exception in ASGI application" for each.)
            log.info("the client went away before its request body was complete")
            return
        await response(scope, receive, send)

    async def _memo_key(self, request: Request, context: Context) -> MemoKey | None:
        """Authenticated JSON POSTs may be answered from the memo (infra.memo)."""
        if (
            context.principal is None
            or request.method != "POST"
            or not request.headers.get("content-type", "").startswith(JSON)
        ):
            return None
        credential = request.headers.get("authorization", "")
        return (credential, await request.body(), request.state.media_type)

    def error_response(self, status: int, reason: str, request: Request) -> Response:
        headers = {"Allow": "GET, POST"} if status == 405 else None
        media = getattr(request.state, "media_type", None) or JSON
        if status == 400 and reason == "Unsupported content type":
            status, reason = 415, UNSUPPORTED_MEDIA_TYPE
        return JSONResponse(
            error_body(reason, status_code_name(status)),
            status_code=status,
            headers=headers,
            media_type=media,
        )

    async def http_context(self, request: Request) -> Context:
        outcome = await self.authenticator.authenticate(request.headers.get("authorization"))
        if isinstance(outcome, Principal):
            return Context(services=self.services, principal=outcome, request=request)
        return Context(
            services=self.services,
            auth_failure=outcome.reason,
            identity=outcome.identity,
            request=request,
        )

    async def get_context(self, request: Any, response: Any) -> Context:
        # Only websockets get here (HTTP passes its context to `run`); they authenticate in
        # on_ws_connect from the connection_init payload.
        return Context(
            services=self.services,
            auth_failure="MISSING_CREDENTIALS",
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        credential = next((params[k] for k in WS_AUTH_KEYS if isinstance(params.get(k), str)), None)
        if credential is not None and " " not in credential.strip():
            credential = f"Bearer {credential.strip()}"
        since = self.sockets.generation
        try:
            outcome = await self.authenticator.authenticate(credential)
        except Exception as exc:  # the database behind authentication is down
            raise AuthUnavailable from exc
        if isinstance(outcome, AuthFailure):
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED", "reason": outcome.reason})
        context.principal = outcome
        context.auth_failure = None
        context.connection_params = None  # the credential is not kept per connection
        self.sockets.open(context.request, outcome, since=since)
        return cast(UnsetType, UNSET)

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, with the operation types HTTP serves here: queries (GET, POST) and
        mutations (POST), and the document named by its hash (``api.persisted_queries``,
        kept once it ran). A mutation over GET is 405, as the spec says. A subscription is a
        request error (no data; 400 under application/graphql-response+json): no HTTP
        streaming transport is offered, and strawberry, which allows subscriptions over
        both methods, ran one as a query (its resolver's stream is no value: a masked
        INTERNAL_SERVER_ERROR and a logged bug)."""
        method = request_adapter.method
        query, register = request_data.query, None
        if PersistedQueries.requested(request_data.extensions):
            query, register, refused = await self.persisted.resolve(
                query, cast(dict[str, Any], request_data.extensions)
            )
            if refused is not None:
                return ExecutionResult(data=None, errors=[refused])
        try:
            result = await self.schema.execute(
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=HTTP_OPERATIONS[method],
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                return ExecutionResult(data=None, errors=[subscription_over_http_error()])
            raise HTTPException(405, exc.as_http_error_reason(method)) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc
        ran = result.data is not None or any(e.path for e in result.errors or ())
        if register is not None and query is not None and context.principal is not None and ran:
            await self.persisted.register(register, query)
        return result

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        _add_codes(response)
        if is_request_error(response):
            response.pop("data", None)
            request.state.request_error = True
        elif not response.get("errors"):
            request.state.root_fields = len(response.get("data") or {})
        return response

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """strawberry's, with a short way for the common request: a POST of plain
        `application/json` asking for no streamed transport (strawberry parses every
        Content-Type with the email package, ~10 us). Anything else goes strawberry's way."""
        content_type = request.content_type
        if (
            request.method != "POST"
            or content_type is None
            or content_type.partition(";")[0].strip() != JSON  # (strawberry: case-sensitive)
        ):
            return _named(await super().parse_http_body(request))
        data = self.parse_json(await request.get_body())
        if not isinstance(data, dict | list):
            # A number, string, boolean or null: strawberry would ask it for its "query"
            # (an AttributeError, a 500).
            raise HTTPException(
                400, 'The request body must be a JSON object, e.g. {"query": "{ me { role } }"}.'
            )
        if isinstance(data, list) or self._get_stream_transport_from_headers(request.headers):
            # Batches (strawberry refuses them) and streamed transports go strawberry's way.
            return _named(await super().parse_http_body(request))
        query, variables, extensions = (data.get(k) for k in ("query", "variables", "extensions"))
        for value, what, kinds in (
            (query, "`query` must be a string", str),
            (variables, "`variables` must be an object", dict),
            (extensions, "`extensions` must be an object", dict),
        ):
            if value is not None and not isinstance(value, kinds):
                raise HTTPException(400, f"The GraphQL operation's {what} or null, if provided.")
        return _named(
            GraphQLRequestData(
                query=query,
                variables=variables,
                operation_name=data.get("operationName"),
                extensions=extensions,
                protocol="http",
            )
        )

    async def parse_multipart(self, request: Any) -> dict[str, Any]:
        return await parse_multipart(self, request)

    def decode_json(self, data: str | bytes) -> object:
        """JSON of a body, a multipart field or a websocket message. Nesting too deep for
        the decoder (a few hundred KB of brackets), bytes that are not UTF-8 (or the UTF-16
        or -32 JSON allows) and a lone surrogate (an escape such as \\ud800 not part of a
        pair: no text, so no database or client can store it) and an integer longer than
        Python converts (4300 digits: a plain ValueError from the decoder) are malformed
        JSON like any other: a 400 over HTTP, close 4400 over websockets, never an uncaught
        error (a 500) here or where the string is written. So are NaN, Infinity and
        -Infinity, which Python's decoder reads and RFC 8259 (and every JavaScript client)
        does not."""
        try:
            # json.loads would decode bytes with "surrogatepass": a lone surrogate got in.
            text = data if isinstance(data, str) else data.decode(json.detect_encoding(data))
            decoded = json.loads(text, parse_constant=_not_json)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "", 0) from None
        except json.JSONDecodeError:
            raise
        except UnicodeDecodeError:
            raise json.JSONDecodeError("not UTF-8", "", 0) from None
        except ValueError:
            raise json.JSONDecodeError("an integer with too many digits", "", 0) from None
        if _SURROGATE_ESCAPE.search(text):
            try:  # (only then: a pair is an emoji, a lone one no text)
                json.dumps(decoded, ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise json.JSONDecodeError("a lone surrogate", "", 0) from None
        return decoded

    def encode_json(self, data: object) -> str:
        """Compact UTF-8 JSON (orjson: a tenth of the json module's time for a page of a
        leaderboard). What orjson refuses (an integer beyond 64 bits) goes to json."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _not_json(constant: str) -> NoReturn:
    raise json.JSONDecodeError(f"{constant} is not JSON", "", 0)


def _finish_http_response(request: Request, response: Response) -> None:
    """Apply the negotiated media type, and 400 for request errors under
    application/graphql-response+json (application/json keeps 200, as the spec says)."""
    if response.media_type != JSON:
        return  # GraphiQL's HTML, or a streamed response
    media = getattr(request.state, "media_type", JSON)
    response.headers["content-type"] = media
    request_error = getattr(request.state, "request_error", False)
    if media == GRAPHQL_RESPONSE and request_error and response.status_code == 200:
        response.status_code = 400


async def _fail_operation(
    operation: Operation[Context, None], exc: Exception, *, running: Plan | None = None
) -> None:
    """An operation the fast path could not serve: a coded error (never silence), and the
    bug in the log (a lost Redis or database is no bug: SERVICE_UNAVAILABLE, as elsewhere).
    A send to the closed socket (api.ws_sessions.socket_gone) is neither. ``running``: it
    failed in its execution (of this plan), answered as strawberry's path answers a
    resolver that raised (`next` with the error located at the field, then `complete`);
    otherwise while it was being checked (an `error` message)."""
    if socket_gone(operation.handler.websocket.ws, exc):  # type: ignore[attr-defined]
        return
    if is_unavailable(exc) or to_run_again(exc):
        log.warning("websocket operation %s: unavailable: %s", operation.id, exc)
        error = service_unavailable_error()
    else:
        log.error("websocket operation %s failed", operation.id, exc_info=exc)
        error = GraphQLError("Internal error.", extensions={"code": "INTERNAL_SERVER_ERROR"})
    with contextlib.suppress(Exception):  # the client may be gone already
        if running is not None:
            await end_with_errors(operation, [running.locate(error)])
        else:
            await operation.send_initial_errors([error])


def _normalise_content_type(scope: Scope) -> str | None:
    """A POST's Content-Type as ``body_content_type`` gives it, written back into the
    request's headers for the parsers after us (strawberry's, Starlette's form parser, the
    memo); None when the body is not one read here."""
    headers: list[tuple[bytes, bytes]] = list(scope["headers"])
    for index, (name, value) in enumerate(headers):
        if name == b"content-type":
            content_type = body_content_type(value.decode("latin-1"))
            if content_type is not None:
                headers[index] = (name, content_type.encode("latin-1"))
                scope["headers"] = headers
            return content_type
    return None


def _named(
    data: GraphQLRequestData | list[GraphQLRequestData],
) -> GraphQLRequestData | list[GraphQLRequestData]:
    """A request whose `operationName` is not a string (or null) is malformed, whichever
    way its body came (JSON, multipart): a 400, before anything keys a cache on it."""
    for one in data if isinstance(data, list) else [data]:
        if one.operation_name is not None and not isinstance(one.operation_name, str):
            raise HTTPException(
                400,
                "The GraphQL operation's `operationName` must be a string or null, if provided.",
            )
    return data
