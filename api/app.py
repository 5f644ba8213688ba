"""The Starlette application: wiring of settings, database, Redis, schema and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from api.auth import Authenticator
from api.graphql import GraphQLView
from api.health import healthz, readyz
from api.limits import BodySizeLimit
from api.settings import Settings
from infra.clock import Clock, SystemClock
from infra.db import Database
from infra.outbox import Dispatcher
from infra.pubsub import Hub
from infra.redis import EmbeddedRedis, Keys, connect
from schema import build_schema
from schema.context import Services
from schema.leaderboards.runtime import leaderboards_runtime

log = logging.getLogger("channelboard")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    limits = settings.limits
    schema = build_schema(
        max_depth=limits.max_query_depth,
        max_aliases=limits.max_aliases,
        max_tokens=limits.max_tokens,
        production=settings.production,
    )
    graphql_endpoint = _ViewSlot()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.var_dir / "redis")
            redis_url = await asyncio.to_thread(embedded.start)
        db = Database(settings.database_url)
        redis = connect(redis_url)
        outbox = Dispatcher(db, clock)
        keys = Keys(settings.redis_namespace)
        services = Services(
            db=db,
            redis=redis,
            keys=keys,
            clock=clock,
            outbox=outbox,
            hub=Hub(redis, keys),
            max_page_size=limits.max_page_size,
            production=settings.production,
        )
        register_event_handlers(services)
        app.state.services = services
        app.state.settings = settings
        graphql_endpoint.view = GraphQLView(
            schema,
            services=services,
            authenticator=Authenticator(settings.jwt, db, clock),
            graphql_ide=None if settings.production else "graphiql",
            connection_init_wait_timeout=timedelta(seconds=limits.ws_init_timeout_seconds),
            max_subscriptions_per_connection=limits.ws_max_subscriptions,
            multipart_uploads_enabled=True,
        )
        dispatcher_task = asyncio.create_task(outbox.run(), name="outbox-dispatcher")
        try:
            yield
        finally:
            dispatcher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher_task
            await services.hub.close()
            await redis.aclose()
            await db.dispose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    async def root(_: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    return Starlette(
        routes=[
            Route("/", root),
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=[
            Middleware(
                BodySizeLimit,
                max_bytes=limits.max_body_bytes,
                max_multipart_bytes=limits.max_upload_bytes + (1 << 20),
            )
        ],
        lifespan=lifespan,
    )


class _ViewSlot:
    """The /graphql ASGI endpoint; the view needs services, which exist only once the
    lifespan has started."""

    view: GraphQLView | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.view is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        await self.view(scope, receive, send)


def register_event_handlers(services: Services) -> None:
    """Domains that react to outbox events register their handlers here."""
    leaderboards_runtime(services).register(services.outbox.register)
