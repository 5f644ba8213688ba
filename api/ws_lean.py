"""graphql-transport-ws on /graphql served from the outermost ASGI layer.

Thousands of idle subscribers per process make every object a connection keeps alive count
(issue 16: at most 20 KiB of server memory per idle subscriber). Through Starlette, each
connection's task waited for its next message about 20 coroutines deep (uvicorn → Starlette's
middleware and router → the view → strawberry's handler → its message iterator →
Starlette's WebSocket), and each leaderboard operation held a task of its own, six
coroutines deep, that woke only when its socket fell behind.

Here a websocket on /graphql whose chosen subprotocol (api.graphql.pick_subprotocol, as the
view picks it) is graphql-transport-ws skips the middleware and the router:
``App.__call__`` hands it to ``serve``, which does what strawberry's ``run`` does for one
(origin check, accept, context) and then reads uvicorn's ``receive`` itself, feeding each
message to strawberry's own ``handle_message`` on our ``TransportWSHandler`` (so every
protocol rule - connection_init timeout 4408, bad payload 4400, too many inits 4429,
duplicate ids 4409, ping/pong, complete, the limits of api.ws_limits, the credential checks
of api.ws_sessions - is the same code as on the ASGI path). The connection's task waits in
this one coroutine for its whole life (under uvicorn's two and ``App.__call__``). Once
accepted, ``infra.ws_direct.slim`` drops the handshake's request and response and swaps
uvicorn's ``asyncio.Queue`` and ``Event`` for smaller equivalents, and the request headers
are cleared (read only while accepting). A `leaderboardChanged` operation on the fan-out's
fast path is then a registered subscriber with no task while idle
(schema.leaderboards.live.DirectSink); every other operation runs in its task through
strawberry's schema, as before.

Nothing the middleware does applies to these connections: KeepWebSocketSend's job (the
server's own ``send``, for infra.ws_direct) is done here, BodySizeLimit concerns HTTP
bodies only (websocket messages have their own limit), and Starlette's error middleware
re-raises websocket errors (a failure after the handshake closes with 1011/1013 here as
``serve_closing_on_failure`` does on the ASGI path). The legacy `graphql-ws` subprotocol,
a handshake offering no subprotocol we speak, and everything else keep Starlette's path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.graphql import GraphQLView, TransportWSHandler, pick_subprotocol
from api.ws_limits import MESSAGE_TOO_BIG, LimitedWebSocketAdapter, too_big
from api.ws_sessions import close_after_failure
from infra.ws_direct import SCOPE_KEY, slim

PATH = "/graphql"


def chosen_subprotocol(view: GraphQLView, scope: Scope) -> str | None:
    """The subprotocol the view picks (api.graphql.pick_subprotocol)."""
    return pick_subprotocol(scope.get("subprotocols") or (), view.websocket_subprotocols)


class App(Starlette):
    """Starlette, with graphql-transport-ws connections on /graphql served before its
    middleware and router (``view`` is set once the lifespan has built it).

    ``outermost`` middleware wraps Starlette's whole stack, its error middleware included,
    so that it sees every HTTP response, a 500 too (api.cors: CORS headers)."""

    view: GraphQLView | None = None

    def __init__(self, *args: Any, outermost: Sequence[Middleware] = (), **kwargs: Any) -> None:
        self.outermost = list(outermost)
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outermost):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (a coroutine function: uvicorn tells ASGI 3 applications by that)
        view = self.view
        if (
            scope["type"] == "websocket"
            and view is not None
            and get_route_path(scope) == PATH  # (as Starlette's router matches it)
            and chosen_subprotocol(view, scope) == GRAPHQL_TRANSPORT_WS_PROTOCOL
        ):
            scope["app"] = self
            await serve(view, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def serve(view: GraphQLView, scope: Scope, receive: Receive, send: Send) -> None:
    """One graphql-transport-ws connection, in this one coroutine for its whole life: what
    strawberry's ``run`` does for one (origin check, accept, context) and its handler's
    ``handle`` (reading uvicorn's ``receive`` directly, with api.ws_limits' size check),
    and what ``GraphQLView.__call__`` adds on the ASGI path: a failure after the handshake
    closes with a code (api.ws_sessions.close_after_failure), the socket is forgotten."""
    scope[SCOPE_KEY] = send  # (KeepWebSocketSend's job on the ASGI path)
    ws = WebSocket(scope, receive, send)
    try:
        if not view._check_websocket_origin(ws):
            await view.reject_websocket(ws)
            return
        await ws.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL)
        slim(scope)
        handler = TransportWSHandler(
            view=cast(Any, view),
            websocket=LimitedWebSocketAdapter(cast(Any, view), ws, ws),
            context=await view.get_context(ws, response=ws),
            root_value=None,  # (strawberry's get_root_value: None)
            schema=view.schema,
            connection_init_wait_timeout=view.connection_init_wait_timeout,
            max_subscriptions_per_connection=view.max_subscriptions_per_connection,
        )
        # The upgrade request's headers were read (origin, host); credentials come in
        # connection_init and nothing reads them again: not kept for the connection's life.
        headers = scope.get("headers")
        if isinstance(headers, list):
            headers.clear()
        handler.on_request_accepted()
        limit = view.ws_max_message_bytes
        try:
            while ws.application_state != WebSocketState.DISCONNECTED:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break  # websocket.disconnect
                text = message.get("text")
                if text is None:
                    await handler.handle_invalid_message("WebSocket message type must be text")
                    break
                if too_big(text, limit):
                    await handler.websocket.close(
                        MESSAGE_TOO_BIG, f"Message larger than {limit} bytes"
                    )
                    break
                try:
                    data = view.decode_json(text)
                except json.JSONDecodeError:
                    await handler.handle_invalid_message("WebSocket message must be valid JSON")
                    break
                if not isinstance(data, dict):  # (strawberry's handler expects an object)
                    await handler.handle_invalid_message("WebSocket message must be an object")
                    break
                await handler.handle_message(cast(Any, data))
                # Not kept while waiting for the next one (a subscribe message holds its
                # query twice: ~1 KiB per idle connection).
                del message, text, data
        except WebSocketDisconnected:
            pass
        finally:
            await handler.shutdown()
    except Exception as exc:
        if ws.application_state != WebSocketState.CONNECTED:  # not accepted, or closed
            raise
        await close_after_failure(send, exc)
    finally:
        view.sockets.forget(scope)
