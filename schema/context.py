"""The per-request context every resolver reads: who is calling, and the process services."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from graphql import GraphQLError

from deal_registration.storage import Storage
from earnings.claims import ClaimSignals
from forecasts.renewals import RenewalsDue
from infra.clock import Clock
from infra.db import Database, DbSession, read_only
from infra.idempotency import DEFAULT_RETENTION
from infra.memo import Recording
from infra.outbox import Dispatcher
from infra.pubsub import Hub
from infra.redis import AnyRedis, Keys
from infra.tasks import to_completion
from leaderboards.fanout import Fanout
from leaderboards.runtime import Leaderboards
from next_actions.actions import Source
from next_actions.sources import BUILT_IN
from notifications.runtime import Notifier
from partners.applications import ApplicationLimits
from partners.invitations import Identity
from partners.roles import Principal
from webhooks.worker import DeliveryWorker


@dataclass(frozen=True)
class Services:
    """Process-wide resources the schema reads, built once by the composition root
    (``api/composition.py``: the app, every command and the dispatcher build them there)
    and shared by every request."""

    db: Database
    redis: AnyRedis
    keys: Keys
    clock: Clock
    outbox: Dispatcher
    hub: Hub
    leaderboards: Leaderboards
    fanout: Fanout  # live leaderboard feeds (one per process)
    claim_signals: ClaimSignals  # what earnings reads of sale claims
    storage: Storage  # uploaded files (proof)
    notifier: Notifier  # the inbox, e-mail and their triggers
    webhooks: DeliveryWorker  # sends webhook deliveries; its target policy checks URLs
    max_page_size: int
    max_upload_bytes: int
    production: bool
    # How long an idempotency key replays its first result (the setting; infra.idempotency).
    idempotency_key_retention: timedelta = DEFAULT_RETENTION
    # Partner applications (partners/applications.py): the unauthenticated throttle.
    application_limits: ApplicationLimits = ApplicationLimits()
    # Renewals due, read by the forecast pre-fill (forecasts/renewals.py): the subscriptions
    # domain's read function once merged; None until then (deals only).
    renewals_due: RenewalsDue | None = None
    # Where next best actions come from: the built-in sources, and other domains' (the
    # incentives domain's rule recommendations) as the composition root lists them.
    next_action_sources: tuple[Source, ...] = BUILT_IN


class OperationScope:
    __slots__ = ("closed", "loaders", "session", "writable")

    def __init__(self) -> None:
        self.session: DbSession | None = None
        self.loaders: dict[str, Any] = {}
        self.closed = False
        # Only a mutation's session may write (set by the SessionScope extension once the
        # operation's type is known); every other operation's session is read-only.
        self.writable = False


# One box per GraphQL operation (set by the SessionScope extension). A contextvar rather
# than a context attribute because a websocket connection shares one context between the
# operations it runs concurrently, each in its own task.
# (A subscription's stream may be closed from another task, so the scope is closed through
# the object itself rather than by resetting the variable.)
_operation_scope: contextvars.ContextVar[OperationScope | None] = contextvars.ContextVar(
    "operation_scope", default=None
)


def current_operation_scope() -> OperationScope | None:
    return _operation_scope.get()


def open_operation_scope() -> OperationScope:
    scope = OperationScope()
    _operation_scope.set(scope)
    return scope


async def close_operation_scope(scope: OperationScope) -> None:
    """Close the operation's session, to its end even if the operation's task is cancelled
    meanwhile: a websocket closed by its client right after a query's `next` cancels the
    operation as its scope closes, and a close cut off left the session's connection checked
    out of the pool until the garbage collector found it (SQLAlchemy logs that at ERROR)."""
    scope.closed = True
    if scope.session is not None:
        session, scope.session = scope.session, None
        await to_completion(session.close())


@dataclass
class Context:
    services: Services
    principal: Principal | None = None
    auth_failure: str | None = None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    # Set for HTTP queries: what the operation read (infra.memo); None elsewhere.
    recording: Recording | None = None
    # A valid identity-provider token whose subject is bound to no user (principal None,
    # auth_failure UNKNOWN_USER): only invitationAccept reads it.
    identity: Identity | None = None

    @property
    def caller(self) -> Principal:
        """The authenticated principal. Permission classes refuse anonymous callers before a
        resolver runs, so this raises only for a field that forgot its permission class."""
        if self.principal is None:
            raise GraphQLError("Authentication required.", extensions={"code": "UNAUTHENTICATED"})
        return self.principal

    @property
    def loaders(self) -> dict[str, Any]:
        """DataLoaders of the current operation, by name (fresh for every operation, so
        nothing cached leaks between operations or users)."""
        return self._scope().loaders

    def _scope(self) -> OperationScope:
        scope = _operation_scope.get()
        if scope is None or scope.closed:
            raise RuntimeError("no open operation scope: is the SessionScope extension on?")
        return scope

    @property
    def session(self) -> DbSession:
        """The operation's database session, opened on first use, closed when it ends.
        Mutations commit it through ``schema.mutations.run``; in any other operation it is
        read-only (``infra.db.read_only``): a query that tries to write fails loudly."""
        if self.recording is not None:
            self.recording.taint()  # SQL is not tracked: this answer is not reusable
        scope = self._scope()
        if scope.session is None:
            session = self.services.db.new_session()
            scope.session = session if scope.writable else read_only(session)
        return scope.session
