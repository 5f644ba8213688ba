"""The outbox: state changes other parts react to, recorded in the same SQL transaction.

A domain service calls ``record_event`` next to its state change, so the event exists if
and only if the change committed. After commit, the dispatcher hands each event to the
handlers registered for its type (apply to Redis, publish) and marks it dispatched.
Handlers must be idempotent: a crash between a handler and the mark re-runs it.

Batch handlers (``register_batch``) take a list of events in commit order instead, for
consumers whose cost is per call rather than per event (one SQL pass, one Redis round
trip). A run of consecutive events that have a batch handler is dispatched as a segment:
each event's per-event handlers in order, then every batch handler with its events, then
one transaction marks the whole segment dispatched.

Failures. An infrastructure fault (Redis or the database unreachable, a lock timeout:
``is_transient``) ends the pass and leaves everything pending, uncharged, for the next
one: an outage is not the events' fault, and nothing is lost while it lasts. Any other
error is the event's: when a segment fails, it is re-run in halves down to single events,
so only an event that fails alone is charged an attempt (its neighbours are dispatched). A
charged event waits (exponential backoff from 1 s, capped) and after ``max_attempts``
is dead-lettered (``dead_at``), with the last error's type and message (credentials in
URLs redacted). ``channelboard outbox retry`` re-queues it, ``discard`` sets it aside for
good; both record who and when in the row.

Ordering. A poison event is set aside, not a wall: events after it are dispatched. Order
is kept per ordering key (``infra.outbox_partitions.ordering_key``: the partner the event
concerns, else its aggregate: a contest), because a later event of the same key may
depend on an earlier one: a reversal takes back what its approval credited, a claim's
state notice follows its approval, and a partner's sale is credited at the tier its
earlier sales reached (two approvals are two aggregates: held per aggregate, a sale
credited while the partner's earlier one waited for a retry missed that one's volume and
kept the lower tier for good). So the events of a key whose earlier event waits or is
dead wait behind it, uncharged, until it is dispatched, retried through or discarded
(``held``: the aggregate too, should an aggregate's events ever name different keys).
Events of other keys do not depend on each other's order (contest credits are keyed by
event and commutative, see docs/dispatchers.md).

Where it runs: in each API process (``CHANNELBOARD_DISPATCH=inline``), or in a process of
its own (``channelboard dispatch``) that the API processes wake over pub/sub (``hand_off``
and ``listen``). Either way a poll catches events whose wake-up was lost. However many
dispatchers run, one at a time dispatches: a pass holds a lease row (``outbox_lease``),
so no two dispatch the same event and commit order holds; a dispatcher that dies
mid-pass loses the lease after ``LEASE`` and the others take over.

Several dispatchers at once (PostgreSQL, ``CHANNELBOARD_OUTBOX_PARTITIONS`` above 1): the
events are split into partitions by their ordering key (the partner, else the aggregate;
``infra.outbox_partitions``), each dispatcher leases its share of the partitions, and a
pass dispatches only the events of the partitions it holds. Per aggregate, everything
above holds within a partition (an aggregate's events share its ordering key).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import JSON, Column, ColumnElement, Index, and_, func, insert, or_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import aliased
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import audit
from infra.clock import Clock
from infra.db import Database, UTCDateTime, execute_core
from infra.ids import new_id
from infra.outages import (
    Outage,
    database_unreachable,
    is_unavailable,
    to_run_again,
)
from infra.outbox_partitions import (
    HEARTBEAT,
    SINGLE_LEASE_NAME,
    OutboxPartition,
    PartitionLeases,
    db_now,
    ordering_key,
    slot_of,
)
from infra.pubsub import Hub
from infra.redis import redis_unreachable
from infra.tasks import wind_down

log = logging.getLogger(__name__)


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_pending", "dispatched_at", "id"),
        Index("ix_outbox_event_aggregate", "aggregate_id"),
        Index("ix_outbox_event_dead", "dead_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    type: str = Field(max_length=64, index=True)
    aggregate_id: uuid.UUID
    # ``slot_of`` the event's ordering key: its partition when several dispatchers share
    # the outbox (``infra.outbox_partitions``). No default, in Python or in the database:
    # build events with ``new_event`` (or ``record_event(s)``), which derive it; a row
    # inserted without one fails (NOT NULL) rather than put a partner's events in
    # partition 0, out of order with the rest of its events.
    partition_slot: int
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    dispatched_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Failures charged to this event (see the module docstring) and when it may run again.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_error_type: str | None = Field(default=None, max_length=200)
    last_error: str | None = Field(default=None, max_length=1000)
    dead_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Operator actions (``channelboard outbox retry|discard``): who and when.
    retried_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    retried_by: str | None = Field(default=None, max_length=200)
    discarded_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    discarded_by: str | None = Field(default=None, max_length=200)


class OutboxLease(SQLModel, table=True):
    """Which dispatcher may dispatch now (one row per lease name), and until when."""

    __tablename__ = "outbox_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Passes completed: a dispatcher takes the lease only if no pass ended since it read
    # its events, so it never dispatches from a page another pass has since dispatched.
    passes: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class EventState(enum.StrEnum):
    PENDING = "PENDING"  # not tried yet
    RETRYING = "RETRYING"  # failed, waiting for its next attempt
    DEAD = "DEAD"  # failed max_attempts times: set aside until an operator acts
    DISPATCHED = "DISPATCHED"
    DISCARDED = "DISCARDED"


def state_of(event: OutboxEvent) -> EventState:
    if event.dispatched_at is not None:
        return EventState.DISPATCHED
    if event.discarded_at is not None:
        return EventState.DISCARDED
    if event.dead_at is not None:
        return EventState.DEAD
    return EventState.RETRYING if event.attempts > 0 else EventState.PENDING


def in_states(states: Iterable[EventState]) -> ColumnElement[bool]:
    """A WHERE clause for events in any of ``states`` (mirrors ``state_of``)."""
    undispatched = col(OutboxEvent.dispatched_at).is_(None)
    kept = and_(undispatched, col(OutboxEvent.discarded_at).is_(None))
    live = and_(kept, col(OutboxEvent.dead_at).is_(None))
    clauses = {
        EventState.DISPATCHED: col(OutboxEvent.dispatched_at).is_not(None),
        EventState.DISCARDED: and_(undispatched, col(OutboxEvent.discarded_at).is_not(None)),
        EventState.DEAD: and_(kept, col(OutboxEvent.dead_at).is_not(None)),
        EventState.RETRYING: and_(live, col(OutboxEvent.attempts) > 0),
        EventState.PENDING: and_(live, col(OutboxEvent.attempts) == 0),
    }
    return or_(*(clauses[s] for s in dict.fromkeys(states)))


async def record_event(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
    occurred_at: datetime | None = None,
    order_key: uuid.UUID | None = None,
) -> OutboxEvent:
    """Record an event. ``order_key``: the events whose relative order handlers rely on
    (default: the payload's ``partner_id``, else the aggregate; see
    ``infra.outbox_partitions.ordering_key``)."""
    now = clock.now()
    event = new_event(
        vendor_id=vendor_id, type=type, aggregate_id=aggregate_id, payload=payload,
        occurred_at=occurred_at or now, recorded_at=now, order_key=order_key,
    )  # fmt: skip
    session.add(event)
    await session.flush()
    return event


def new_event(
    *,
    vendor_id: uuid.UUID,
    type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
    occurred_at: datetime,
    recorded_at: datetime,
    order_key: uuid.UUID | None = None,
) -> OutboxEvent:
    """An event row, its slot derived from its ordering key (``record_event``), for code
    that adds many to a session at once."""
    key = order_key if order_key is not None else ordering_key(aggregate_id, payload)
    return OutboxEvent(
        vendor_id=vendor_id,
        type=type,
        aggregate_id=aggregate_id,
        partition_slot=slot_of(key),
        payload=payload,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
    )


# ``record_events``'s statement (a Core insert, built once).
_INSERT = insert(OutboxEvent.__table__)  # type: ignore[attr-defined]


async def record_events(
    session: AsyncSession,
    clock: Clock,
    events: Sequence[tuple[uuid.UUID, str, uuid.UUID, dict[str, Any]]],
    at: datetime | None = None,
) -> int:
    """``record_event`` for many events at once, as ``(vendor_id, type, aggregate_id,
    payload)``: one INSERT past the ORM, no ORM object per event (a rule run records one
    per firing; a signal handler's run one per partner whose signals moved), occurred and
    recorded ``at`` (default: now). Returns how many were recorded."""
    if not events:
        return 0
    await execute_core(session, _INSERT, event_rows(clock, events, at))
    return len(events)


def event_rows(
    clock: Clock,
    events: Sequence[tuple[uuid.UUID, str, uuid.UUID, dict[str, Any]]],
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """``record_events``'s rows of ``outbox_event``, for a caller that inserts them in a
    statement of its own (``signals.store.Writes``: with other rows, in one statement on
    PostgreSQL), in the transaction of the change they tell of. Each event's id is taken
    here, in the order given (the dispatcher's order among events of one commit)."""
    now = at or clock.now()
    return [
        {"id": new_id(), "vendor_id": vendor_id, "type": type_, "aggregate_id": aggregate,
         "partition_slot": slot_of(ordering_key(aggregate, payload)), "payload": payload,
         "occurred_at": now, "recorded_at": now, "attempts": 0}
        for vendor_id, type_, aggregate, payload in events
    ]  # fmt: skip


# Wake-ups for a dispatcher in another process (``CHANNELBOARD_DISPATCH=external``).
WAKE_CHANNEL = "outbox"

Handler = Callable[[OutboxEvent], Awaitable[None]]
BatchHandler = Callable[[list[OutboxEvent]], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    """One handler a domain's ``handlers(...)`` returns: the composition root registers
    them, domain by domain, in its declared order (``Dispatcher.register_all``)."""

    event_types: tuple[str, ...]
    handler: Handler | BatchHandler
    batched: bool
    live: bool = False


def batch(event_types: Iterable[str], handler: BatchHandler, *, live: bool = False) -> Registration:
    """Runs of consecutive events of these types, in commit order (preferred: see
    ``Dispatcher.register_batch``). ``live``: someone watches its effect as it happens (a
    leaderboard's push): it runs in the live lane too (``Dispatcher`` docstring)."""
    return Registration(tuple(event_types), handler, batched=True, live=live)


def each(event_type: str, handler: Handler) -> Registration:
    """Every event of this type on its own (it is then dispatched alone)."""
    return Registration((event_type,), handler, batched=False)


# Faults of the infrastructure rather than of an event: they end the pass uncharged.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
)


def is_transient(exc: BaseException) -> bool:
    """An infrastructure fault, not the event's: one of ``TRANSIENT_ERRORS``, Redis out of
    reach as ``infra.redis`` defines it (one list: a replica answering READONLY during a
    failover was charged to the events here, and a failover of minutes dead-lettered their
    credits), a database connection lost whatever its error class, or a transaction the
    database ended for contention: rolled back to break a deadlock or a serialization
    conflict, a lock or statement timeout, a session ended for sitting idle in its
    transaction (``infra.outages.to_run_again``; asyncpg's adapter reports these as bare
    DBAPIErrors, so the class alone missed them and a lock timeout was charged)."""
    return (
        isinstance(exc, TRANSIENT_ERRORS)
        or redis_unreachable(exc)
        or database_unreachable(exc)
        or to_run_again(exc)
    )


BACKOFF_BASE = timedelta(seconds=1)
# The most pending events the live lane looks at: with more, the dispatcher is behind, the
# pass has a backlog to clear, and a lane reading it at every commit would slow it; it
# stands aside for LIVE_REST seconds.
LIVE_PAGE = 500
LIVE_REST = 1.0
# How long a pass may hold the dispatch lease without renewing it (renewed every page of
# events): after a dispatcher dies mid-pass, the others wait this long at most.
LEASE = timedelta(seconds=30)
LEASE_NAME = SINGLE_LEASE_NAME

_URL_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]*(:[^/\s@]*)?@")
_KEY_VALUE_SECRETS = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)(\s*[=:]\s*)\S+"
)


def describe(exc: BaseException) -> tuple[str, str]:
    """An error as stored in the row (and shown to the vendor's admins): its type and a
    one-line message, without the SQL and parameters a database error carries, credentials
    redacted, truncated. What an operator needs to recognise it, not a stack trace."""
    shown: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        shown = exc.orig  # the driver's message, not "[SQL: ...] [parameters: ...]"
    message = " ".join(str(shown).split()) or type(shown).__name__
    message = _URL_CREDENTIALS.sub(r"\1***@", message)
    message = _KEY_VALUE_SECRETS.sub(r"\1\2***", message)
    return type(exc).__qualname__[:200], message[:1000]


def _contention(exc: BaseException) -> str:
    """A transaction ended for contention, in a few words: the database's SQLSTATE and
    message (``describe``), not the SQL."""
    shown: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        shown = exc.orig
    code = getattr(shown, "sqlstate", None) or getattr(shown, "pgcode", None)
    message = describe(exc)[1][:200]
    return f"the database ended a transaction ({code}: {message})" if code else message


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """The wait after the ``attempts``-th failure: 1 s, 2 s, 4 s, … up to ``cap``."""
    wait: timedelta = BACKOFF_BASE * 2 ** min(attempts - 1, 30)
    return min(wait, cap)


class LeaseLost(Exception):
    """The events this dispatcher was about to mark or charge are no longer its to write
    (``Dispatcher._fence``): another dispatcher holds the lease now."""


class PartitionLost(LeaseLost):
    """The same, in partition mode: the events' partitions are another's now."""


class _Lease:
    """One row that says which dispatcher may dispatch. Taken by a conditional UPDATE (free,
    expired, or already ours; and no pass ended since the taker read its events), so exactly
    one of several contenders gets it, on SQLite and on PostgreSQL alike; never while a
    partitioned dispatcher holds a partition lease (``infra.outbox_partitions``: one mode at
    a time). Real time, not the injectable clock: it is about processes, not the business
    day (and a test's shifted clock must not keep it forever); the database's (``db_now``),
    so hosts whose clocks disagree agree on when it expires. Core statements: cheaper than
    ORM ones (a pass takes and releases the lease), and the lease is no table the read
    caches need to hear of."""

    table = OutboxLease.__table__  # type: ignore[attr-defined]

    def __init__(self, db: Database) -> None:
        self.db = db
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def passes(self, session: AsyncSession) -> int | None:
        """Passes completed so far (None: no dispatcher ever took the lease)."""
        found = await session.execute(
            select(self.table.c.passes).where(self.table.c.name == LEASE_NAME)
        )
        value = found.scalar_one_or_none()
        return None if value is None else int(value)

    async def take(self, seen: int | None) -> bool:
        """Take the lease, if no pass ended since ``passes()`` returned ``seen`` and no
        partition lease is live."""
        t = self.table
        p = OutboxPartition.__table__  # type: ignore[attr-defined]
        try:
            # The write comes first, so on SQLite the transaction simply queues for the
            # write lock (no read snapshot to go stale). On PostgreSQL the row is locked
            # first, so the partition leases are read after any claim in progress commits.
            async with self.db.engine.begin() as conn:
                if conn.dialect.name == "postgresql" and seen is not None:
                    await conn.execute(
                        select(t.c.name).where(t.c.name == LEASE_NAME).with_for_update()
                    )
                now = await db_now(conn)
                partitioned = (
                    select(p.c.partition)
                    .where(p.c.holder.is_not(None), p.c.expires_at >= now)
                    .exists()
                )
                if seen is None:
                    if (
                        conn.dialect.name == "postgresql"
                        and (await conn.execute(select(partitioned))).scalar()
                    ):
                        return False
                    await conn.execute(
                        t.insert().values(
                            name=LEASE_NAME, holder=self.holder, expires_at=now + LEASE, passes=0
                        )
                    )
                    return True
                free = or_(t.c.holder.is_(None), t.c.holder == self.holder, t.c.expires_at < now)
                result = await conn.execute(
                    update(t)
                    .where(t.c.name == LEASE_NAME, t.c.passes == seen, free, ~partitioned)
                    .values(holder=self.holder, expires_at=now + LEASE)
                )
                return bool(result.rowcount == 1)
        except sa_exc.IntegrityError:  # another dispatcher inserted the row first
            return False

    async def held(self, session: AsyncSession) -> bool:
        """Whether this dispatcher still holds the lease, in the caller's transaction, the
        row locked ``FOR SHARE`` until it ends (PostgreSQL; SQLite's write lock is the
        transaction's): a taker's UPDATE waits, so the lease does not change hands before
        the caller's writes commit. Held, not live: a lease that lapsed but that nobody took
        is still nobody else's."""
        t = self.table
        found = await session.execute(
            select(t.c.name)
            .where(t.c.name == LEASE_NAME, t.c.holder == self.holder)
            .with_for_update(read=True)
        )
        return found.first() is not None

    async def renew(self) -> bool:
        t = self.table
        async with self.db.engine.begin() as conn:
            now = await db_now(conn)
            result = await conn.execute(
                update(t)
                .where(t.c.name == LEASE_NAME, t.c.holder == self.holder)
                .values(expires_at=now + LEASE)
            )
            return bool(result.rowcount == 1)

    async def release(self) -> None:
        t = self.table
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(t)
                .where(t.c.name == LEASE_NAME, t.c.holder == self.holder)
                .values(holder=None, expires_at=None, passes=t.c.passes + 1)
            )


def _key(event: OutboxEvent) -> uuid.UUID:
    """The event's ordering key; its aggregate when the payload names no valid partner (a
    malformed event is the handlers' to refuse, not the pass's)."""
    try:
        return ordering_key(event.aggregate_id, event.payload)
    except (ValueError, TypeError, AttributeError):
        return event.aggregate_id


def _hold(event: OutboxEvent, held: set[uuid.UUID]) -> None:
    """Hold back the later events of ``event``'s ordering key (and of its aggregate)."""
    held.add(event.aggregate_id)
    held.add(_key(event))


def _is_held(event: OutboxEvent, held: set[uuid.UUID]) -> bool:
    return event.aggregate_id in held or _key(event) in held


class Dispatcher:
    """Runs registered handlers for committed events; one per process.

    The live lane. A pass runs every handler of a segment before it reads the next page,
    so an event committed during a pass would wait for all of it (earnings crediting, the
    signals, the rules) before its leaderboard moved. While ``run`` holds the outbox (its
    lease or partitions) and a pass is under way, each wake-up (a commit) therefore also
    runs the ``live`` batch handlers at once over the events not yet given them, in commit
    order, with the pass's ordering rules (an aggregate with an event waiting, dead or
    retried, or one the pass is handling, is left to the pass); the pass then skips those
    handlers for them. A live handler that fails in the lane is run again by the pass,
    which charges the failure as it does any other (so live handlers must be idempotent,
    as every handler is). One lock orders the lane's runs and the pass's live steps, so a
    contest still scores its events in commit order. docs/dispatchers.md, "The live lane".
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        batch_size: int = 500,
        max_attempts: int = 10,
        backoff_cap: timedelta = timedelta(minutes=5),
        partitions: int = 1,
    ) -> None:
        self.db = db
        self.clock = clock
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._batch_handlers: list[tuple[frozenset[str], BatchHandler]] = []
        self._live_handlers: list[tuple[frozenset[str], BatchHandler]] = []
        self._wake = asyncio.Event()
        # The live lane (class docstring): its wake-up, its lock, and the events of the
        # current pass that have had their live handlers.
        self._live_wake = asyncio.Event()
        self._live_lock = asyncio.Lock()
        self._live_done: set[uuid.UUID] = set()
        self._live_held: set[uuid.UUID] = set()  # aggregates the lane failed on this pass
        # The pass's aggregates the lane must leave alone: those of the segment it is
        # handling (until marked or charged), and those it holds (a failure this pass).
        self._in_pass: set[uuid.UUID] = set()
        self._pass_held: set[uuid.UUID] = set()
        self._renewed_at = 0.0  # when the single lease was last taken or renewed
        self._live_types: frozenset[str] = frozenset()
        self._lane_on = False
        self._lock = asyncio.Lock()
        self._lease = _Lease(db)
        self._lease_busy = False
        self._next_retry: datetime | None = None
        self._dispatched_by: Hub | None = None
        # Partition mode (PostgreSQL): this dispatcher's share of the outbox.
        self.partitions = partitions
        self._partitions = PartitionLeases(db, partitions) if partitions > 1 else None
        self._partitions_lost = False
        self._claimed_at = 0.0  # when it last claimed (``_rebalance``)
        # In ``run``: the live lane runs during its passes, and in partition mode its
        # heartbeat keeps the leases between passes.
        self._running = False

    def register(self, event_type: str, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def register_batch(
        self, event_types: Iterable[str], handler: BatchHandler, *, live: bool = False
    ) -> None:
        """``handler`` receives lists of events of these types, in commit order. It must
        cope with order inside the list itself (e.g. a reversal after its approval).
        ``live``: it runs in the live lane too (class docstring), and first in a segment."""
        handlers = self._live_handlers if live else self._batch_handlers
        handlers.append((frozenset(event_types), handler))
        if live:
            self._live_types |= frozenset(event_types)

    def register_all(self, registrations: Iterable[Registration]) -> None:
        """Register in the given order (batch handlers of a run run in that order)."""
        for r in registrations:
            if r.batched:
                self.register_batch(r.event_types, cast(BatchHandler, r.handler), live=r.live)
            else:
                self.register(r.event_types[0], cast(Handler, r.handler))

    def _batched(self, event_type: str) -> bool:
        return any(
            event_type in types for types, _ in (*self._live_handlers, *self._batch_handlers)
        )

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold dispatching (in this process) while the block runs, e.g. while a test wipes
        the tables the handlers write to."""
        async with self._lock:
            yield

    def hand_off(self, hub: Hub) -> None:
        """Events committed here are dispatched by a dispatcher process (``channelboard
        dispatch``), not by this one: ``notify`` wakes that process over pub/sub instead.
        API processes do this so that handlers (earnings crediting costs milliseconds a
        sale) never run on the event loop that serves requests and live pushes."""
        self._dispatched_by = hub

    async def listen(self, hub: Hub) -> None:
        """Wake on other processes' ``notify`` (their commits); the poll still catches what
        a lost notice or a crash left behind."""
        await hub.watch(hub.channel(WAKE_CHANNEL), lambda _message: self._woken())

    def notify(self) -> None:
        """Something committed events: dispatch soon (the poll loop catches the rest)."""
        if self._dispatched_by is not None:
            self._dispatched_by.publish_soon(self._dispatched_by.channel(WAKE_CHANNEL), b"")
        else:
            self._woken()

    def _woken(self) -> None:
        self._wake.set()
        self._live_wake.set()

    def _undispatched(self) -> list[ColumnElement[bool]]:
        """Events not dispatched or discarded; in partition mode, of the partitions this
        dispatcher holds."""
        where: list[ColumnElement[bool]] = [
            col(OutboxEvent.dispatched_at).is_(None),
            col(OutboxEvent.discarded_at).is_(None),
        ]
        if self._partitions is not None:
            slot = col(OutboxEvent.partition_slot)
            where.append((slot % self.partitions).in_(self._partitions.held))
        return where

    def _select_page(self, after: uuid.UUID | None) -> Any:
        """Undispatched events after ``after`` in commit order, dead and waiting ones
        included (they hold back later events of their ordering key)."""
        stmt = select(OutboxEvent).where(*self._undispatched())
        if after is not None:
            stmt = stmt.where(col(OutboxEvent.id) > after)
        return stmt.order_by(col(OutboxEvent.id)).limit(self.batch_size)

    # Each read ends its transaction before any handler runs: a handler that writes in a
    # transaction of its own would otherwise leave the reading session's snapshot stale,
    # and SQLite refuses a write from a stale snapshot ("database is locked") however long
    # it waits.

    async def _page(self, after: uuid.UUID | None) -> list[OutboxEvent]:
        async with self.db.session() as session:
            return list(await session.exec(self._select_page(after)))

    async def _first_page(self) -> tuple[int | None, list[OutboxEvent]]:
        """The lease's pass count, then the first page: read in this order, a pass that
        ends after the count was read (and might have dispatched this page) fails our
        ``take``, on SQLite's snapshot and PostgreSQL's read-committed alike."""
        async with self.db.session() as session:
            seen = await self._lease.passes(session)
            return seen, list(await session.exec(self._select_page(None)))

    def _due(
        self, events: list[OutboxEvent], held: set[uuid.UUID], now: datetime
    ) -> list[OutboxEvent]:
        """The events that may run now; the keys of dead, waiting and held ones are added
        to ``held``."""
        due: list[OutboxEvent] = []
        for event in events:
            waiting = event.next_attempt_at is not None and event.next_attempt_at > now
            if waiting and event.dead_at is None:
                self._retry_at(event.next_attempt_at)
            if event.dead_at is not None or waiting or _is_held(event, held):
                _hold(event, held)
            else:
                due.append(event)
        return due

    def _retry_at(self, when: datetime | None) -> None:
        """Remember the earliest retry that falls due, so ``run`` wakes for it."""
        if when is not None and (self._next_retry is None or when < self._next_retry):
            self._next_retry = when

    async def dispatch_pending(self, *, wait: bool = True) -> int:
        """Dispatch every event that is due, in commit order (per aggregate, see the
        module docstring); returns how many this call dispatched. When another dispatcher
        holds the lease, wait for its pass to end and look again (``wait=False``: return 0
        at once, as the poll loop does)."""
        async with self._lock:
            self._lease_busy = False
            self._next_retry = None
            if self._partitions is not None:
                return await self._dispatch_partitions(self._partitions)
            while True:
                seen, first = await self._first_page()
                if not first:
                    return 0
                if len(first) < self.batch_size and not self._due(first, set(), self.clock.now()):
                    return 0  # all wait for a retry, or behind a dead letter: no lease needed
                asked = time.monotonic()  # (before: the lease runs from the database's now)
                if await self._lease.take(seen):
                    self._renewed_at = asked
                    break
                if not wait:
                    self._lease_busy = True
                    return 0
                await asyncio.sleep(0.05)
            try:
                return await self._dispatch_all(first)
            finally:
                with contextlib.suppress(Exception):  # it expires anyway
                    await self._lease.release()

    async def _dispatch_partitions(self, leases: PartitionLeases) -> int:
        """A pass over the partitions this dispatcher holds (taken, or rebalanced, first:
        the events are read after the leases, so never from a page another holder has since
        dispatched)."""
        if self._running:
            if not await self._claim(leases):
                return 0
            return await self._dispatch_all(await self._page(None))
        # A one-off pass (a CLI command dispatching what it recorded): it leaves the events
        # to the running dispatchers if there are any (they poll every HEARTBEAT), else
        # takes the partitions with a heartbeat while it runs and hands them back after it,
        # so that no dispatcher waits LEASE for them.
        heartbeat = asyncio.create_task(self.heartbeat(), name="outbox-heartbeat")
        try:
            if not await self._claim(leases):
                return 0
            return await self._dispatch_all(await self._page(None))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):  # they expire anyway
                await leases.release()

    async def _claim(self, leases: PartitionLeases) -> tuple[int, ...]:
        self._claimed_at = time.monotonic()
        held = await leases.claim(join=self._running)
        self._partitions_lost = False
        return held

    async def _rebalance(self, leases: PartitionLeases) -> bool:
        """Between a pass's segments (nothing of the pass in flight), at most every
        ``HEARTBEAT``: the claim of a pass's start, so that a dispatcher that joins gets its
        share during a long pass (a backlog, a steady stream), not after it. The lane's lock
        is held across it, so no live handler runs on a partition given up, and the lane
        checks what it read against the partitions still held. True when it took a
        partition: the pass never read that one's events before its cursor, and must
        read again from the start."""
        if time.monotonic() - self._claimed_at < HEARTBEAT:
            return False
        async with self._live_lock:
            await self._claim(leases)
        return bool(leases.taken)

    def _holds(self, event: OutboxEvent) -> bool:
        if self._partitions is None:
            return True
        return event.partition_slot % self.partitions in self._partitions.held

    async def heartbeat(self) -> None:
        """Partition mode: extend this dispatcher's leases every ``HEARTBEAT`` while it runs
        (however long a pass takes), so only a dead or frozen dispatcher loses them."""
        assert self._partitions is not None
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                if not await self._partitions.renew():
                    log.warning("outbox partition lease lost (expired); the pass ends")
                    self._partitions_lost = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox partition heartbeat failed; retrying")

    async def _dispatch_all(self, events: list[OutboxEvent]) -> int:
        if not (self._running and self._live_handlers):
            return await self._dispatch_pass(events)
        # (A wake-up left from before the pass is not cleared: one may have come after the
        # pass read its first page, and an extra look costs one read.)
        stop = asyncio.Event()
        self._lane_on = True
        lane = asyncio.create_task(self._live_lane(stop), name="outbox-live-lane")
        try:
            return await self._dispatch_pass(events)
        finally:
            self._lane_on = False
            stop.set()
            self._live_wake.set()
            try:
                # The lane's run in progress finishes (a handler cut off half-way would
                # leave, say, its Redis connection mid-reply), unless the process stops.
                if await wind_down(lane) is not None:
                    log.error("outbox live lane failed", exc_info=lane.exception())
            finally:
                self._live_done.clear()
                self._live_held.clear()

    async def _live_lane(self, stop: asyncio.Event) -> None:
        """For as long as a pass runs: the live handlers of what commits meanwhile."""
        rest_until = 0.0
        while True:
            await self._live_wake.wait()
            self._live_wake.clear()
            if stop.is_set():
                return
            if (rest := rest_until - time.monotonic()) > 0:  # then one look for all since
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rest)
                if stop.is_set():
                    return
            try:
                if not await self._live_run():
                    rest_until = time.monotonic() + LIVE_REST  # behind: stand aside a while
            except Exception as exc:  # noqa: BLE001 - the pass runs and charges them
                log.info("outbox live lane left events to the pass: %s", describe(exc)[0])

    async def _live_run(self) -> bool:
        """The live handlers of the pending events that have not had them, in commit order,
        but for aggregates with an event dead, waiting or retried, in the pass's hands, or
        failed in the lane: one narrow read, then the rows of the events to run (usually
        the one just committed). False when the dispatcher is behind (``LIVE_PAGE`` events
        or more pending)."""
        if not self._owns_outbox():
            return True
        e, h = OutboxEvent, aliased(OutboxEvent)
        # The aggregates with an event dead, waiting or retried: a list found once through
        # the pending index (correlated per event, it would walk each aggregate's history,
        # dispatched events included: a busy partner's EarningsChanged grow without end).
        held = select(col(h.aggregate_id)).where(
            col(h.dispatched_at).is_(None),
            col(h.discarded_at).is_(None),
            or_(col(h.attempts) > 0, col(h.dead_at).is_not(None)),
        )
        async with self.db.session() as session:
            heads = (
                await session.execute(
                    select(col(e.id), col(e.aggregate_id), col(e.type))
                    .where(
                        *self._undispatched(),
                        in_states([EventState.PENDING]),
                        col(e.aggregate_id).not_in(held),
                    )
                    .order_by(col(e.id))
                    .limit(LIVE_PAGE)
                )
            ).all()
            if len(heads) == LIVE_PAGE:
                return False  # the pass has a backlog to clear: reading it would slow it
            ready: list[uuid.UUID] = []
            for head in heads:
                if head.type in self._handlers:
                    # An event handled on its own (a contest's settings changed: its board
                    # is rebuilt) is not overtaken: what follows may be scored against it.
                    break
                if (
                    head.type in self._live_types
                    and head.id not in self._live_done
                    and not self._left_to_pass(head.aggregate_id)
                ):
                    ready.append(head.id)
            if not ready:
                return True
            events = list(
                await session.exec(select(e).where(col(e.id).in_(ready)).order_by(col(e.id)))
            )
        try:
            await self._live_step(events, lane=True)
        except Exception:
            # Left to the pass, which charges the failure: the lane does not try these
            # aggregates again this pass (nor re-publish the notices that went out).
            self._live_held.update(event.aggregate_id for event in events)
            raise
        return True

    def _left_to_pass(self, aggregate_id: uuid.UUID) -> bool:
        return (
            aggregate_id in self._in_pass
            or aggregate_id in self._pass_held
            or aggregate_id in self._live_held
        )

    def _owns_outbox(self) -> bool:
        """The lane runs only while this dispatcher surely holds what its pass dispatches."""
        if self._partitions is not None:
            return not self._partitions_lost
        return time.monotonic() - self._renewed_at < LEASE.total_seconds() * 0.9

    async def _live_step(self, events: list[OutboxEvent], *, lane: bool = False) -> None:
        """The live handlers of those of ``events`` that have not had them this pass. From
        the lane (``lane``), what it read is checked again under the lock: the pass may
        have handled, marked or charged some of them meanwhile (it never waits for this
        lock inside a transaction, so reading here cannot deadlock)."""
        if not self._live_handlers:
            return
        async with self._live_lock:
            todo = [e for e in events if e.id not in self._live_done]
            if lane and todo:
                todo = await self._still_pending(todo)
            for types, handler in self._live_handlers:
                wanted = [e for e in todo if e.type in types]
                if wanted:
                    await handler(wanted)
            if self._lane_on:  # (else no lane: nothing to skip, nothing to remember)
                self._live_done.update(e.id for e in todo if e.type in self._live_types)

    async def _still_pending(self, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Those of ``events`` still fresh and undispatched, of a partition still held, and
        not in the pass's hands."""
        e = OutboxEvent
        async with self.db.session() as session:
            pending = set(
                (
                    await session.execute(
                        select(col(e.id)).where(
                            col(e.id).in_([event.id for event in events]),
                            in_states([EventState.PENDING]),
                            *self._undispatched(),  # (of the partitions still held)
                        )
                    )
                ).scalars()
            )
        return [
            event
            for event in events
            if event.id in pending and not self._left_to_pass(event.aggregate_id)
        ]

    async def _dispatch_pass(self, events: list[OutboxEvent]) -> int:
        done = 0
        # Aggregates whose earlier event waits, is dead, or failed in this pass.
        held: set[uuid.UUID] = set()
        self._pass_held = held
        while events:
            after: uuid.UUID | None = events[-1].id
            for segment in self._segments(self._due(events, held, self.clock.now())):
                if self._partitions_lost:  # another dispatcher holds one of them now
                    return done
                if self._partitions is not None and await self._rebalance(self._partitions):
                    after = None  # read again from the start (what it held back stays held)
                    break
                ready = [e for e in segment if not _is_held(e, held) and self._holds(e)]
                if ready:
                    self._in_pass = {e.aggregate_id for e in ready}
                    try:
                        done += await self._dispatch_segment(ready, held)
                    except LeaseLost as lost:
                        what = "partition" if isinstance(lost, PartitionLost) else "lease"
                        log.warning("outbox %s taken by another dispatcher; pass ends", what)
                        return done
                    finally:
                        self._in_pass = set()
            # The lease is renewed every page (a page of the batch size, or a third of
            # LEASE since the last renewal: under a steady stream a pass reads small pages
            # for as long as the stream lasts).
            renew = len(events) == self.batch_size or (
                self._partitions is None
                and time.monotonic() - self._renewed_at > LEASE.total_seconds() / 3
            )
            if renew and not await self._renew():
                log.warning("outbox dispatch lease lost mid-pass (overran it); pass ends")
                return done
            # The next page: further events, or those handlers recorded meanwhile.
            events = await self._page(after)
        return done

    async def _renew(self) -> bool:
        if self._partitions is not None:
            return await self._partitions.renew()
        asked = time.monotonic()  # (before: the lease runs from the database's now)
        if renewed := await self._lease.renew():
            self._renewed_at = asked
        return renewed

    def _segments(self, events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
        """Split at every event without a batch handler, and at every event that failed
        before (a retry runs alone, so a poison event does not re-run and fail its
        neighbours' run each time): those run alone, and everything stays in commit order
        across segments."""
        segments: list[list[OutboxEvent]] = []
        run: list[OutboxEvent] = []
        for event in events:
            if self._batched(event.type) and event.attempts == 0:
                run.append(event)
                continue
            if run:
                segments.append(run)
                run = []
            segments.append([event])
        if run:
            segments.append(run)
        return segments

    async def _run_handlers(self, segment: list[OutboxEvent]) -> None:
        await self._live_step(segment)
        for event in segment:
            for handler in self._handlers.get(event.type, ()):
                await handler(event)
        for types, batch_handler in self._batch_handlers:
            wanted = [e for e in segment if e.type in types]
            if wanted:
                await batch_handler(wanted)

    async def _dispatch_segment(self, segment: list[OutboxEvent], held: set[uuid.UUID]) -> int:
        """Run the segment's handlers and mark it dispatched; returns how many events were.
        A transient fault propagates (the pass ends, nothing charged); an event's own error
        is isolated by re-running the segment in halves down to single events."""
        try:
            await self._run_handlers(segment)
        except Exception as exc:  # noqa: BLE001 - charged to the event, below
            if is_transient(exc):
                raise
            if len(segment) == 1:
                await self._charge(segment[0], exc)
                _hold(segment[0], held)
                return 0
            # Halves, in order, until the failing events are alone: a run of 500 with one
            # poison event costs about 2 * log2(500) re-runs, not 500.
            done = 0
            middle = len(segment) // 2
            for half in (segment[:middle], segment[middle:]):
                ready = [e for e in half if not _is_held(e, held)]
                if ready:
                    done += await self._dispatch_segment(ready, held)
            return done
        # Only after every handler succeeded, and all at once: a failure above leaves the
        # whole segment pending.
        await self._mark_dispatched(segment)
        return len(segment)

    async def _mark_dispatched(self, events: Sequence[OutboxEvent]) -> None:
        async with self.db.transaction() as session:
            await self._fence(session, events)
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.id).in_([e.id for e in events]))
                .values(dispatched_at=self.clock.now(), next_attempt_at=None)
            )
        self._live_done.difference_update(e.id for e in events)  # a pass may last for hours

    async def _fence(self, session: AsyncSession, events: Sequence[OutboxEvent]) -> None:
        """Refuse to write the events' state unless this dispatcher still holds the lease,
        or in partition mode their partitions: one that froze past its lease may resume
        mid-segment after another took over and ran those events again. The caller's
        transaction rolls back and the pass ends."""
        if self._partitions is None:
            if not await self._lease.held(session):
                raise LeaseLost()
            return
        partitions = {e.partition_slot % self.partitions for e in events}
        if not await self._partitions.fence(session, partitions):
            self._partitions_lost = True
            raise PartitionLost(sorted(partitions))

    async def _charge(self, event: OutboxEvent, exc: Exception) -> None:
        """One more failed attempt: wait (backoff), or dead-letter it at ``max_attempts``."""
        now = self.clock.now()
        attempts = event.attempts + 1
        error_type, message = describe(exc)
        dead = attempts >= self.max_attempts
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_error_type": error_type,
            "last_error": message,
            "next_attempt_at": None if dead else now + backoff(attempts, self.backoff_cap),
            "dead_at": now if dead else None,
        }
        self._retry_at(values["next_attempt_at"])
        async with self.db.transaction() as session:
            await self._fence(session, [event])
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.id) == event.id, col(OutboxEvent.dispatched_at).is_(None))
                .values(**values)
            )
        self._live_done.discard(event.id)
        if dead:
            log.error(
                "outbox event %s (%s) dead-lettered after %d attempts: %s: %s",
                event.id, event.type, attempts, error_type, message,
            )  # fmt: skip
        else:
            log.warning(
                "outbox event %s (%s) failed (attempt %d of %d), retrying at %s: %s: %s",
                event.id, event.type, attempts, self.max_attempts, values["next_attempt_at"],
                error_type, message,
            )  # fmt: skip

    async def run(self, poll_interval: float = 1.0) -> None:
        """Dispatch forever: right after a local commit, and on a poll for other processes'
        events, for retries that fall due, and for anything a crash left behind."""
        partitions = self._partitions
        heartbeat = (
            None
            if partitions is None
            else asyncio.create_task(self.heartbeat(), name="outbox-heartbeat")
        )
        self._running = True
        try:
            await self._run(poll_interval)
        finally:
            self._running = False
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if partitions is not None:
                with contextlib.suppress(Exception):  # they expire anyway
                    await partitions.release()

    async def _run(self, poll_interval: float) -> None:
        # Redis or the database out of reach ends each pass until it is back: one line when
        # it goes and one when it is back, not a traceback a poll.
        outage = Outage(lambda line: log.warning("outbox dispatcher: %s", line))
        while True:
            try:
                await self.dispatch_pending(wait=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    outage.met(exc)
                elif to_run_again(exc):
                    # Contention (a deadlock broken, a lock timeout, ...): nothing was
                    # charged, the next pass runs the events again. One line, no traceback.
                    log.warning("outbox dispatcher: %s; the pass ends, retried", _contention(exc))
                else:
                    log.exception("outbox dispatch failed; retrying")
            else:
                outage.over()
            # Another dispatcher held the lease: it may have finished its pass just before
            # our events committed, so look again soon rather than a whole poll later.
            timeout = min(poll_interval, 0.2) if self._lease_busy else poll_interval
            if self._partitions is not None:  # take over a dead one's partitions promptly
                timeout = min(timeout, HEARTBEAT)
            if self._next_retry is not None:  # and wake for a retry that falls due sooner
                until = (self._next_retry - self.clock.now()).total_seconds()
                timeout = min(timeout, max(until, 0.05))
            with contextlib.suppress(TimeoutError):  # (wait_for may swallow a cancel)
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()


# Operator actions, for ``channelboard outbox``.


async def retry_event(
    db: Database, clock: Clock, event_id: uuid.UUID, *, by: str
) -> OutboxEvent | None:
    """Re-queue an undispatched event (dead or waiting): due now, with a fresh set of
    attempts. None when there is no such event (unknown, dispatched or discarded)."""
    return await _act(
        db, clock, event_id, [EventState.DEAD, EventState.RETRYING, EventState.PENDING],
        "outbox_event.retried", by,
        attempts=0, next_attempt_at=None, dead_at=None, retried_at=clock.now(), retried_by=by,
    )  # fmt: skip


async def discard_event(
    db: Database, clock: Clock, event_id: uuid.UUID, *, by: str
) -> OutboxEvent | None:
    """Set an undispatched event aside for good: no handler will run for it, and later
    events of its aggregate go ahead. None when there is no such event."""
    return await _act(
        db, clock, event_id, [EventState.DEAD, EventState.RETRYING, EventState.PENDING],
        "outbox_event.discarded", by,
        discarded_at=clock.now(), discarded_by=by, next_attempt_at=None,
    )  # fmt: skip


async def _act(
    db: Database,
    clock: Clock,
    event_id: uuid.UUID,
    states: list[EventState],
    action: str,
    by: str,
    **values: Any,
) -> OutboxEvent | None:
    """The conditional update, and its audit entry (an operator's act, by ``by``)."""
    async with db.transaction() as session:
        found = await session.get(OutboxEvent, event_id)
        before = {"state": state_of(found), "attempts": found.attempts} if found else None
        result = await session.execute(
            update(OutboxEvent)
            .where(col(OutboxEvent.id) == event_id, in_states(states))
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        event = await session.get(OutboxEvent, event_id, populate_existing=True)
        assert event is not None
        await audit.record(
            session, vendor_id=event.vendor_id, actor=f"operator:{by}", action=action,
            entity_type="outbox_event", entity_id=str(event.id),
            before=before,
            after={"state": state_of(event), "attempts": event.attempts}, reason=None,
            at=clock.now(),
        )  # fmt: skip
        return event


async def backlog(session: AsyncSession, now: datetime) -> dict[str, float | int]:
    """For /readyz: events not yet dispatched (waiting ones included), the age of the
    oldest, and dead letters (set aside until an operator retries or discards them)."""
    waiting = in_states([EventState.PENDING, EventState.RETRYING])
    pending, oldest = (
        await session.exec(select(func.count(), func.min(OutboxEvent.recorded_at)).where(waiting))
    ).one()
    dead = (await session.exec(select(func.count()).where(in_states([EventState.DEAD])))).one()
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "pending": int(pending),
        "oldestSeconds": round(max(age, 0.0), 1),
        "deadLetters": int(dead),
    }
