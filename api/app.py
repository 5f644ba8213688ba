"""The Starlette application: settings, database, Redis, the services of the composition
root (``api/composition.py``), the schema and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from api import graphiql, tv
from api.attachments import download_attachment
from api.auth import Authenticator
from api.composition import build_services, clock_jobs
from api.cors import cors_middleware
from api.exports import download_export
from api.graphql import GraphQLView, error_body, status_code_name
from api.health import healthz, readyz
from api.limits import BodySizeLimit
from api.settings import Limits, Settings
from api.ws_lean import App
from api.ws_sessions import SocketSessions
from infra import tasks
from infra.clock import Clock, SystemClock
from infra.db import Database
from infra.heap import freeze_startup_heap
from infra.redis import EmbeddedRedis, connect
from infra.ws_direct import KeepWebSocketSend
from schema.document_limits import DocumentLimits
from schema.root import build_schema

log = logging.getLogger("channelboard")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    limits = settings.limits
    schema = build_schema(limits=document_limits(limits), production=settings.production)
    graphql_endpoint = _ViewSlot()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.var_dir / "redis")
            redis_url = embedded.start()  # main thread: see EmbeddedRedis._die_with_parent
        db = Database(settings.database_url, waits=settings.database_waits)
        redis = connect(redis_url, cluster=settings.redis_cluster)
        services = build_services(settings, db=db, redis=redis, clock=clock)
        outbox = services.outbox
        sharing = asyncio.create_task(db.epochs.share(services.hub), name="table-epochs")
        app.state.services = services
        app.state.settings = settings
        app.state.authenticator = Authenticator(
            settings.jwt, db, clock, activity_flush_seconds=settings.signals_activity_flush_seconds
        )
        sockets = SocketSessions(
            app.state.authenticator,
            db.epochs,
            clock,
            max_per_principal=limits.ws_max_connections_per_principal,
        )
        graphql_endpoint.view = GraphQLView(
            schema,
            services=services,
            authenticator=app.state.authenticator,
            sockets=sockets,
            graphql_ide=None if settings.production else "graphiql",
            connection_init_wait_timeout=timedelta(seconds=limits.ws_init_timeout_seconds),
            max_subscriptions_per_connection=limits.ws_max_subscriptions,
            # `ka` on the legacy graphql-ws protocol (graphql-transport-ws has ping/pong).
            keep_alive=limits.ws_legacy_keep_alive_seconds > 0,
            keep_alive_interval=limits.ws_legacy_keep_alive_seconds or 1,
            ws_max_message_bytes=limits.ws_max_message_bytes,
            max_document_bytes=limits.max_document_bytes,
            multipart_uploads_enabled=True,
            # Cross-origin websocket handshakes (a browser's Origin naming another site)
            # from the origins CORS allows; same-origin pages and clients sending no Origin
            # always connect.
            allowed_origins=settings.cors.origins,
        )
        app.state.response_memo = graphql_endpoint.view.memo
        cast(App, app).view = graphql_endpoint.view
        key_usage = app.state.authenticator.key_usage
        active_users = app.state.authenticator.active_users
        background = [
            sharing,
            asyncio.create_task(key_usage.run(), name="api-key-usage"),
            asyncio.create_task(active_users.run(), name="active-users"),
            asyncio.create_task(sockets.run(), name="websocket-rechecks"),
        ]
        if settings.dispatch == "inline":
            background.append(asyncio.create_task(outbox.run(), name="outbox-dispatcher"))
            background += [
                asyncio.create_task(job, name=name)
                for name, job in clock_jobs(settings, services).items()
            ]
        else:
            outbox.hand_off(services.hub)
        freeze_startup_heap()
        try:
            yield
        finally:
            # Every job has ended (its transaction rolled back, its connection returned)
            # before the engine is disposed of.
            await tasks.stop(background)
            await key_usage.flush()  # the uses noted since the last flush
            await active_users.flush()
            await services.hub.drain()  # table-change notices of the last commits
            await services.hub.close()
            await redis.aclose()
            await db.dispose()
            if embedded is not None:
                embedded.stop()

    async def root(_: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    # GraphiQL's pinned assets, served here so the IDE needs no internet (no IDE in production).
    graphiql_routes = (
        [] if settings.production else [Mount(graphiql.PREFIX, graphiql.static_files())]
    )

    return App(
        routes=[
            Route("/", root),
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/attachments/{attachment_id}", download_attachment, methods=["GET"]),
            # The TV page for office screens (display keys), in production too.
            Route("/tv", tv.tv_page, methods=["GET"]),
            Mount(tv.PREFIX, tv.static_files()),
            Route("/exports/{kind}.csv", download_export, methods=["GET"]),
            *graphiql_routes,
        ],
        middleware=[
            Middleware(KeepWebSocketSend),
            Middleware(
                BodySizeLimit,
                max_bytes=limits.max_body_bytes,
                max_multipart_bytes=limits.max_upload_bytes + (1 << 20),
            ),
        ],
        # Around everything, Starlette's error middleware included: every HTTP response of
        # an allowed origin carries the CORS headers (api.cors).
        outermost=cors_middleware(settings.cors),
        exception_handlers={HTTPException: http_refusal},
        lifespan=lifespan,
    )


async def http_refusal(request: Request, exc: Exception) -> Response:
    """A refusal by the routing itself (a path we do not serve, a method a route does not
    take: PUT on /graphql), coded as every other error of the API rather than Starlette's
    plain text; its headers kept (the 405's Allow)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse(
        error_body(exc.detail, status_code_name(exc.status_code)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def document_limits(limits: Limits) -> DocumentLimits:
    return DocumentLimits(
        max_bytes=limits.max_document_bytes,
        max_tokens=limits.max_tokens,
        max_depth=limits.max_query_depth,
        max_introspection_depth=limits.max_introspection_depth,
        max_aliases=limits.max_aliases,
        max_selections=limits.max_selections,
        max_repeated_fields=limits.max_repeated_fields,
    )


class _ViewSlot:
    """The /graphql ASGI endpoint; the view needs services, which exist only once the
    lifespan has started."""

    view: GraphQLView | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.view is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        await self.view(scope, receive, send)
