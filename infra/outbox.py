"""The outbox: state changes other parts react to, recorded in the same SQL transaction.

A domain service calls ``record_event`` next to its state change, so the event exists if
and only if the change committed. After commit, the dispatcher hands each event to the
handlers registered for its type (apply to Redis, publish) and marks it dispatched.
Handlers must be idempotent: a crash between a handler and the mark re-runs it.

Batch handlers (``register_batch``) take a list of events in commit order instead, for
consumers whose cost is per call rather than per event (one SQL pass, one Redis round
trip). A run of consecutive events that have a batch handler is dispatched as a segment:
each event's per-event handlers in order, then every batch handler with its events, then
one transaction marks the whole segment dispatched. A failure or crash part-way leaves the
whole segment pending, so a rerun re-runs it (idempotent handlers credit nothing twice).

Where it runs: in each API process (``CHANNELBOARD_DISPATCH=inline``), or in a process of
its own (``channelboard dispatch``) that the API processes wake over pub/sub (``hand_off``
and ``listen``). Either way a poll catches events whose wake-up was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.db import Database, UTCDateTime
from infra.ids import new_id
from infra.pubsub import Hub

log = logging.getLogger(__name__)


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_pending", "dispatched_at", "id"),
        Index("ix_outbox_event_aggregate", "aggregate_id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    type: str = Field(max_length=64, index=True)
    aggregate_id: uuid.UUID
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    dispatched_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


async def record_event(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    now = clock.now()
    event = OutboxEvent(
        vendor_id=vendor_id,
        type=type,
        aggregate_id=aggregate_id,
        payload=payload,
        occurred_at=occurred_at or now,
        recorded_at=now,
    )
    session.add(event)
    await session.flush()
    return event


# Wake-ups for a dispatcher in another process (``CHANNELBOARD_DISPATCH=external``).
WAKE_CHANNEL = "outbox"

Handler = Callable[[OutboxEvent], Awaitable[None]]
BatchHandler = Callable[[list[OutboxEvent]], Awaitable[None]]


class Dispatcher:
    """Runs registered handlers for committed events; one per process."""

    def __init__(self, db: Database, clock: Clock, *, batch_size: int = 500) -> None:
        self.db = db
        self.clock = clock
        self.batch_size = batch_size
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._batch_handlers: list[tuple[frozenset[str], BatchHandler]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._dispatched_by: Hub | None = None

    def register(self, event_type: str, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def register_batch(self, event_types: Iterable[str], handler: BatchHandler) -> None:
        """``handler`` receives lists of events of these types, in commit order. It must
        cope with order inside the list itself (e.g. a reversal after its approval)."""
        self._batch_handlers.append((frozenset(event_types), handler))

    def _batched(self, event_type: str) -> bool:
        return any(event_type in types for types, _ in self._batch_handlers)

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
        await hub.watch(hub.channel(WAKE_CHANNEL), lambda _message: self._wake.set())

    def notify(self) -> None:
        """Something committed events: dispatch soon (the poll loop catches the rest)."""
        if self._dispatched_by is not None:
            self._dispatched_by.publish_soon(self._dispatched_by.channel(WAKE_CHANNEL), b"")
        else:
            self._wake.set()

    async def dispatch_pending(self) -> int:
        """Dispatch every pending event in commit order; returns how many were dispatched."""
        done = 0
        async with self._lock:
            while True:
                # Read the batch and end that read transaction before any handler runs: a
                # handler that writes in a transaction of its own would otherwise leave this
                # session's snapshot stale, and SQLite refuses a write from a stale snapshot
                # ("database is locked") however long it waits.
                async with self.db.session() as session:
                    rows = await session.exec(
                        select(OutboxEvent)
                        .where(col(OutboxEvent.dispatched_at).is_(None))
                        .order_by(col(OutboxEvent.id))
                        .limit(self.batch_size)
                    )
                    events = list(rows)
                if not events:
                    return done
                for segment in self._segments(events):
                    await self._dispatch_segment(segment)
                    done += len(segment)

    def _segments(self, events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
        """Split at every event without a batch handler: those run alone, as before, and
        everything stays in commit order across segments."""
        segments: list[list[OutboxEvent]] = []
        run: list[OutboxEvent] = []
        for event in events:
            if self._batched(event.type):
                run.append(event)
                continue
            if run:
                segments.append(run)
                run = []
            segments.append([event])
        if run:
            segments.append(run)
        return segments

    async def _dispatch_segment(self, segment: list[OutboxEvent]) -> None:
        for event in segment:
            for handler in self._handlers.get(event.type, ()):
                await handler(event)
        for types, batch_handler in self._batch_handlers:
            wanted = [e for e in segment if e.type in types]
            if wanted:
                await batch_handler(wanted)
        # Only after every handler succeeded, and all at once: a failure above leaves the
        # whole segment pending for the next pass.
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.id).in_([e.id for e in segment]))
                .values(dispatched_at=self.clock.now())
            )

    async def run(self, poll_interval: float = 1.0) -> None:
        """Dispatch forever: right after a local commit, and on a poll for other processes'
        events and for anything a crash left behind."""
        while True:
            try:
                await self.dispatch_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox dispatch failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
