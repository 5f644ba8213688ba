"""The composition root: every process-wide service, store and outbox handler is built
here, once, from the settings, a database, a Redis and a clock, and passed explicitly to
whatever runs them: the app (``api.app.create_app``), the commands (``api.cli``) and the
dispatcher (``channelboard dispatch``). Nothing is wired by a module global or an import."""

from __future__ import annotations

from datetime import timedelta

from redis.asyncio import Redis

from api.settings import Settings
from deal_registration import handlers as deal_registration_handlers
from deal_registration.sales.signals import SaleClaimSignals
from deal_registration.storage import LocalStorage, S3Storage, Storage
from earnings import handlers as earnings_handlers
from earnings.claims import ClaimSignals
from infra.clock import Clock
from infra.db import Database
from infra.outbox import Dispatcher, Registration
from infra.pubsub import Hub
from infra.redis import Keys
from leaderboards import handlers as leaderboards_handlers
from leaderboards.boards import Boards
from leaderboards.fanout import Fanout
from leaderboards.runtime import Leaderboards
from partners.applications import ApplicationLimits
from schema.context import Services


def build_services(settings: Settings, *, db: Database, redis: Redis, clock: Clock) -> Services:
    """The process's services over an open database and Redis, with every outbox handler
    registered on its dispatcher (``handlers``), so that an event committed by any process
    is handled the same way by whichever process dispatches it."""
    keys = Keys(settings.redis_namespace)
    hub = Hub(redis, keys)
    outbox = Dispatcher(
        db,
        clock,
        max_attempts=settings.outbox_max_attempts,
        backoff_cap=timedelta(seconds=settings.outbox_backoff_cap_seconds),
        partitions=settings.outbox_partitions,
    )
    leaderboards = Leaderboards(db, Boards(redis, keys), clock, hub, dispatcher=outbox)
    services = Services(
        db=db,
        redis=redis,
        keys=keys,
        clock=clock,
        outbox=outbox,
        hub=hub,
        leaderboards=leaderboards,
        fanout=Fanout(leaderboards),
        claim_signals=build_claim_signals(),
        storage=build_storage(settings),
        max_page_size=settings.limits.max_page_size,
        max_upload_bytes=settings.limits.max_upload_bytes,
        production=settings.production,
        application_limits=ApplicationLimits(
            per_address=settings.apply_limit_per_address,
            per_email=settings.apply_limit_per_email,
        ),
    )
    outbox.register_all(handlers(services))
    return services


def handlers(services: Services) -> list[Registration]:
    """Every outbox handler, in the order the batch handlers of a run run: the cheap live
    ones first (deal and claim notices, contest scoring: a few ms a run), then earnings
    crediting (milliseconds a sale), which nothing here waits for."""
    return [
        *deal_registration_handlers.handlers(services.hub),
        *leaderboards_handlers.handlers(services.leaderboards),
        *earnings_handlers.handlers(
            services.db, services.clock, services.hub, services.claim_signals
        ),
    ]


def build_claim_signals() -> ClaimSignals:
    """What earnings reads of sale claims (risk flags, approval shares)."""
    return SaleClaimSignals()


def build_storage(settings: Settings) -> Storage:
    storage = settings.storage
    if storage.backend == "s3":
        assert storage.s3_bucket is not None  # Settings.validate
        return S3Storage(
            storage.s3_bucket,
            prefix=storage.s3_prefix,
            endpoint_url=storage.s3_endpoint_url,
            region=storage.s3_region,
        )
    return LocalStorage(storage.local_dir or settings.var_dir / "attachments")
