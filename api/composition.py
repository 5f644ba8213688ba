"""The composition root: every process-wide service, store and outbox handler is built
here, once, from the settings, a database, a Redis and a clock, and passed explicitly to
whatever runs them: the app (``api.app.create_app``), the commands (``api.cli``) and the
dispatcher (``channelboard dispatch``). Nothing is wired by a module global or an import."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from api.settings import Settings
from deal_registration import handlers as deal_registration_handlers
from deal_registration.attachments import run_orphan_sweep
from deal_registration.sales.signals import SaleClaimSignals
from deal_registration.storage import LocalStorage, S3Storage, Storage
from earnings import handlers as earnings_handlers
from earnings.claims import ClaimSignals
from earnings.prizes import PrizeAward, credit_prizes
from earnings.recurring import run_retention_checks
from forecasts import handlers as forecasts_handlers
from forecasts.accuracy import run_forecast_closer
from forecasts.renewals import subscription_renewals
from incentives import handlers as incentives_handlers
from incentives.daily import run_daily as run_rules_daily
from incentives.events import RULE_FIRED
from infra.clock import Clock
from infra.db import Database
from infra.idempotency import run_pruning
from infra.outbox import Dispatcher, OutboxEvent, Registration, batch
from infra.pubsub import Hub
from infra.redis import AnyRedis, Keys
from leaderboards import handlers as leaderboards_handlers
from leaderboards.boards import Boards
from leaderboards.closing import run_closer
from leaderboards.events import CONTEST_PRIZE_APPROVED, ContestPrizeApproved
from leaderboards.fanout import Fanout
from leaderboards.integrity import run_board_checks
from leaderboards.runtime import Leaderboards
from next_actions import handlers as next_actions_handlers
from next_actions import sources as next_action_sources
from notifications import handlers as notifications_handlers
from notifications.delivery import Trigger
from notifications.rules import next_action_trigger
from notifications.runtime import Notifier
from notifications.sender import MailSender
from partners.applications import ApplicationLimits
from pilots.service import run_pilot_ends
from schema.context import Services
from signals import handlers as signals_handlers
from signals.daily import run_daily as run_signals_daily
from subscriptions import handlers as subscriptions_handlers
from webhooks import handlers as webhooks_handlers
from webhooks.targets import TargetPolicy
from webhooks.worker import DeliveryWorker


def build_services(settings: Settings, *, db: Database, redis: AnyRedis, clock: Clock) -> Services:
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
    claim_signals = build_claim_signals()
    services = Services(
        db=db,
        redis=redis,
        keys=keys,
        clock=clock,
        outbox=outbox,
        hub=hub,
        leaderboards=leaderboards,
        fanout=Fanout(leaderboards),
        claim_signals=claim_signals,
        storage=build_storage(settings),
        notifier=build_notifier(
            settings,
            db=db,
            clock=clock,
            hub=hub,
            leaderboards=leaderboards,
            next_actions=next_action_trigger(
                next_action_sources.BUILT_IN, claim_signals, leaderboards
            ),
        ),  # fmt: skip
        webhooks=DeliveryWorker(
            db,
            clock,
            policy=TargetPolicy(allow_private=settings.webhooks_allow_private_targets),
            timeout=settings.webhooks_timeout_seconds,
            concurrency=settings.webhooks_concurrency,
        ),
        max_page_size=settings.limits.max_page_size,
        max_upload_bytes=settings.limits.max_upload_bytes,
        production=settings.production,
        idempotency_key_retention=settings.idempotency_key_retention,
        application_limits=ApplicationLimits(
            per_address=settings.apply_limit_per_address,
            per_email=settings.apply_limit_per_email,
        ),
        renewals_due=subscription_renewals,
        # Built-in sources and the incentives domain's rule recommendations.
        next_action_sources=next_action_sources.BUILT_IN,
    )
    outbox.register_all(handlers(services))
    return services


def handlers(services: Services) -> list[Registration]:
    """Every outbox handler, in the order the batch handlers of a run run: the cheap live
    ones first (deal and claim notices, contest scoring: a few ms a run; registered
    ``live``, so that what commits during a pass is also handled by them at once:
    ``infra.outbox.Dispatcher``), then earnings
    crediting (milliseconds a sale), which nothing here waits for, then what reads the
    credited ledger (prizes, concentration guardrails, the signal facts and snapshots, the
    incentive rules that read them), then notifications and the webhook deliveries (one
    SQL pass a run; the sending happens in the delivery worker)."""
    return [
        *deal_registration_handlers.handlers(services.hub),
        *next_actions_handlers.handlers(services.hub),
        *leaderboards_handlers.handlers(services.leaderboards),
        *subscriptions_handlers.handlers(services.db, services.clock),
        *earnings_handlers.handlers(
            services.db, services.clock, services.hub, services.claim_signals
        ),
        *prize_handlers(services),
        # After crediting: concentration guardrails read the credited revenue.
        *forecasts_handlers.handlers(services.db, services.clock),
        # After crediting: a day's facts read the ledger rows the credit wrote.
        *signals_handlers.handlers(services.db, services.clock),
        *incentives_handlers.handlers(services.db, services.clock),
        # After crediting: a credit's TierChanged is handled in the same pass.
        *notifications_handlers.handlers(services.notifier),
        *webhooks_handlers.handlers(services.db, services.clock, services.webhooks),
    ]


def clock_jobs(settings: Settings, services: Services) -> dict[str, Coroutine[Any, Any, None]]:
    """The jobs the clock drives (no event marks their instants), by task name: they run
    wherever the outbox is dispatched, inline in the app or in ``channelboard dispatch``,
    and each is safe to run in several processes at once."""
    jobs = {
        "contest-closer": run_closer(services.leaderboards),
        # boards a Redis failover or restart left missing writes (at start, each minute)
        "board-checks": run_board_checks(services.leaderboards),
        # deal protection about to expire, the mail queue and its daily digests
        "notifier": services.notifier.run(),
        # recurring commissions' retention bonuses, due when an account has stayed N months
        "retention-checks": run_retention_checks(services.db, services.clock),
        # a quarter's forecast accuracy, once its sales have been credited
        "forecast-closer": run_forecast_closer(services.db, services.clock),
        # webhook deliveries due (first attempts and retries), sent from their rows
        "webhook-deliveries": services.webhooks.run(),
        # incentive rules are evaluated once a day as well as when the signals they read change
        "daily-rule-run": run_rules_daily(services.db, services.clock),
        # pilots end by themselves when their planned end passes
        "pilot-ends": run_pilot_ends(services.db, services.clock),
    }
    # proof files left by a process killed before its transaction committed
    jobs["attachment-sweep"] = run_orphan_sweep(services.db, services.storage)
    # idempotency keys past their retention, deleted in small batches (the table stays bounded)
    jobs["idempotency-prune"] = run_pruning(
        services.db, services.clock, retention=settings.idempotency_key_retention
    )
    if interval := settings.signals_daily_interval_seconds:  # 0: off in this process
        # the day's signal snapshots (windows move and days-since grow without an event)
        jobs["signals-daily"] = run_signals_daily(services.db, services.clock, interval)
    return jobs


def prize_handlers(services: Services) -> list[Registration]:
    """Approved contest prizes (leaderboards) credited to earnings: the two domains do not
    know each other, so the approval event is translated here."""

    async def credit(events: list[OutboxEvent]) -> None:
        awards = []
        for event in events:
            approved = ContestPrizeApproved.parse(event.payload)
            awards.append(
                PrizeAward(
                    event_id=event.id,
                    vendor_id=approved.vendor_id,
                    partner_id=approved.partner_id,
                    rep_user_id=approved.rep_user_id,
                    contest_id=approved.contest_id,
                    contest_name=approved.contest_name,
                    period=approved.period,
                    rank=approved.rank,
                    prize=approved.prize,
                    amount_minor=approved.amount_minor,
                    currency=approved.currency,
                    won_at=approved.period_ends_at,
                )  # fmt: skip
            )
        await credit_prizes(services.db, services.clock, awards)

    return [batch([CONTEST_PRIZE_APPROVED], credit)]


def build_notifier(
    settings: Settings,
    *,
    db: Database,
    clock: Clock,
    hub: Hub,
    leaderboards: Leaderboards,
    next_actions: Trigger,
) -> Notifier:
    """The inbox and e-mail notifier; e-mail only when an SMTP host is configured. A rule's
    firing also tells the partner's users of the next best action it added."""
    smtp = settings.smtp
    sender = MailSender(db, clock, smtp) if smtp is not None else None
    return Notifier(
        db, clock, hub, sender=sender, boards=leaderboards.boards,
        invitation_url=settings.invitation_url, extra_triggers={RULE_FIRED: next_actions},
    )  # fmt: skip


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
