"""Outbox partitions: several dispatchers share the events (PostgreSQL only).

Every outbox event carries a slot (``slot_of`` its ordering key, fixed when it is recorded);
with ``CHANNELBOARD_OUTBOX_PARTITIONS=P`` above 1, slot ``s`` belongs to partition
``s % P``, and a dispatcher dispatches only the events of the partitions it holds a lease
on. One partition has one holder at a time, so no event is dispatched by two dispatchers at
once, and the events of one ordering key run in commit order (one holder, in id order).

The ordering key (``ordering_key``) is the partner, when the event names one: a sale's
approval, reversal and state notices, a deal's notices and win, a partner's earnings
notice; otherwise the event's aggregate (a contest's settings change). What that gives each
handler is in ``docs/dispatchers.md``.

Leases. Each dispatcher keeps a row in ``outbox_dispatcher`` (heartbeat ``seen_at``) and
leases rows of ``outbox_partition`` (``holder``, ``expires_at``). At the start of each pass
it counts the live dispatchers, releases what it holds beyond its fair share
(``ceil(P / live)``), and takes free or expired partitions up to it with ``SELECT … FOR
UPDATE SKIP LOCKED`` (two takers never block on, or both get, one row). A heartbeat
extends its leases every ``HEARTBEAT``; a dispatcher that dies stops extending them, and
after ``LEASE`` the others take its partitions at their next pass. Real time, like the
single lease: it is about processes, not the business day."""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Field, SQLModel

from infra.db import Database, UTCDateTime

log = logging.getLogger(__name__)

# Slots are fixed when an event is recorded; partitions group them (slot % P), so P can
# change between deployments without re-keying events (see docs/dispatchers.md).
SLOTS = 1024
LEASE = timedelta(seconds=5)
HEARTBEAT = 1.0  # seconds
# A dispatcher row not seen for this long is deleted (it only counts while live anyway).
FORGET = timedelta(minutes=10)


def slot_of(key: uuid.UUID) -> int:
    """The event slot of an ordering key: stable across processes and releases."""
    return zlib.crc32(key.bytes) % SLOTS


def ordering_key(aggregate_id: uuid.UUID, payload: dict[str, Any]) -> uuid.UUID:
    """The partner the event concerns, or else its aggregate (see the module docstring)."""
    partner = payload.get("partner_id")
    return uuid.UUID(str(partner)) if partner else aggregate_id


class OutboxPartition(SQLModel, table=True):
    """Who dispatches one partition's events, and until when (extended by heartbeats)."""

    __tablename__ = "outbox_partition"

    partition: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    holder: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class OutboxDispatcher(SQLModel, table=True):
    """A running dispatcher in partition mode: its partition count and last heartbeat."""

    __tablename__ = "outbox_dispatcher"

    holder: str = Field(primary_key=True, max_length=200)
    partitions: int
    seen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PartitionLeases:
    """This dispatcher's leases on ``partitions`` partitions (see the module docstring).
    Core statements in short transactions of their own, like the single lease."""

    partition_table = OutboxPartition.__table__  # type: ignore[attr-defined]
    dispatcher_table = OutboxDispatcher.__table__  # type: ignore[attr-defined]

    def __init__(self, db: Database, partitions: int) -> None:
        self.db = db
        self.partitions = partitions
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: tuple[int, ...] = ()
        self._rows_ready = False

    async def _ensure_rows(self) -> None:
        if self._rows_ready:
            return
        async with self.db.engine.begin() as conn:
            await conn.execute(
                insert(self.partition_table)
                .values([{"partition": p} for p in range(self.partitions)])
                .on_conflict_do_nothing(index_elements=["partition"])
            )
        self._rows_ready = True

    async def claim(self) -> tuple[int, ...]:
        """Heartbeat, then hold this dispatcher's fair share of partitions: release the
        excess, take free or expired ones. Called between passes only (a released partition
        must have nothing of ours in flight). Returns the partitions held."""
        await self._ensure_rows()
        now = datetime.now(UTC)
        p, d = self.partition_table, self.dispatcher_table
        async with self.db.engine.begin() as conn:
            await conn.execute(
                insert(d)
                .values(holder=self.holder, partitions=self.partitions, seen_at=now)
                .on_conflict_do_update(
                    index_elements=["holder"],
                    set_={"seen_at": now, "partitions": self.partitions},
                )
            )
            await conn.execute(delete(d).where(d.c.seen_at < now - FORGET))
            live = (
                await conn.execute(
                    select(d.c.holder, d.c.partitions).where(d.c.seen_at >= now - LEASE)
                )
            ).all()
            others = {count for _, count in live if count != self.partitions}
            single = (
                await conn.execute(
                    text(
                        "SELECT holder FROM outbox_lease WHERE holder IS NOT NULL "
                        "AND expires_at >= :now"
                    ),
                    {"now": now},
                )
            ).first()
            if single is not None:
                # A dispatcher with CHANNELBOARD_OUTBOX_PARTITIONS=1 is in a pass over
                # every event: stand aside (the setting belongs in every process alike).
                log.warning("outbox: a single-lease dispatcher (%s) is running", single[0])
                await self._release_all(conn)
                self.held = ()
                return self.held
            if others:
                # Two partition counts at once would split one key's events over two
                # partitions: dispatch nothing until the deployment agrees.
                log.error(
                    "outbox dispatchers disagree on CHANNELBOARD_OUTBOX_PARTITIONS (%d here, "
                    "%s elsewhere): this one dispatches nothing until they agree",
                    self.partitions, sorted(others),
                )  # fmt: skip
                await self._release_all(conn)
                self.held = ()
                return self.held
            share = math.ceil(self.partitions / max(len(live), 1))
            mine = sorted(
                (
                    await conn.execute(
                        select(p.c.partition)
                        .where(p.c.holder == self.holder, p.c.expires_at >= now)
                        .with_for_update()
                    )
                ).scalars()
            )
            if len(mine) > share:
                await conn.execute(
                    update(p)
                    .where(p.c.partition.in_(mine[share:]), p.c.holder == self.holder)
                    .values(holder=None, expires_at=None)
                )
                mine = mine[:share]
            elif len(mine) < share:
                free = (
                    await conn.execute(
                        select(p.c.partition)
                        .where((p.c.holder.is_(None)) | (p.c.expires_at < now))
                        .order_by(p.c.partition)
                        .limit(share - len(mine))
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
                mine = sorted([*mine, *free])
            if mine:
                await conn.execute(
                    update(p)
                    .where(p.c.partition.in_(mine))
                    .values(holder=self.holder, expires_at=now + LEASE)
                )
        self.held = tuple(mine)
        return self.held

    async def renew(self) -> bool:
        """Extend the leases held (the heartbeat); False when one was lost (it expired
        and another dispatcher took it: the pass must end)."""
        now = datetime.now(UTC)
        p, d = self.partition_table, self.dispatcher_table
        held = self.held
        async with self.db.engine.begin() as conn:
            await conn.execute(update(d).where(d.c.holder == self.holder).values(seen_at=now))
            if not held:
                return True
            result = await conn.execute(
                update(p)
                .where(p.c.partition.in_(held), p.c.holder == self.holder)
                .values(expires_at=now + LEASE)
            )
        # A claim that ran meanwhile (releasing some) is no loss: it renewed them itself.
        return bool(result.rowcount == len(held)) or self.held != held

    async def release(self) -> None:
        """Leave: the others take these partitions at their next pass, not after LEASE."""
        async with self.db.engine.begin() as conn:
            await self._release_all(conn)
            d = self.dispatcher_table
            await conn.execute(delete(d).where(d.c.holder == self.holder))
        self.held = ()

    async def _release_all(self, conn: Any) -> None:
        p = self.partition_table
        await conn.execute(
            update(p).where(p.c.holder == self.holder).values(holder=None, expires_at=None)
        )
