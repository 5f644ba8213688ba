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
leases rows of ``outbox_partition`` (``holder``, ``expires_at``). At the start of each pass,
and between a pass's segments at most every ``HEARTBEAT`` (a pass lasts as long as a
backlog or a steady stream: a newcomer must not wait for its end), it counts the live
dispatchers, releases what it holds beyond its fair share (``ceil(P / live)``), and takes
free or expired partitions up to it with ``SELECT … FOR UPDATE SKIP LOCKED`` (two takers
never block on, or both get, one row). A heartbeat extends its leases every
``HEARTBEAT``; a dispatcher that dies stops extending them, and after ``LEASE`` the others
take its partitions at their next claim. Real time, like the single lease: it is about
processes, not the business day; and the database's clock (``db_now``), so that hosts
whose clocks disagree still agree on when a lease expires.

Fencing. A dispatcher that froze past ``LEASE`` may resume mid-segment after another took
its partition: marking or charging events locks their partitions' rows (``fence``) and is
refused unless it still holds them, so a stale holder never writes over the new one's
state, and learns at once that its pass must end.

One mode at a time. The single lease (``outbox_lease``, ``CHANNELBOARD_OUTBOX_PARTITIONS=1``)
and the partition leases exclude each other: the single lease is not taken while a
partition lease is live, and a partitioned dispatcher takes and extends nothing while the
single lease is held (its heartbeat then gives its partitions up and ends its pass). Each
side reads the other's leases only after locking the single lease's row (``FOR UPDATE``
to take it, ``FOR SHARE`` here), so the two checks never pass at once."""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
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


# The single lease's row (``infra.outbox.OutboxLease``; by name: that module imports this).
SINGLE_LEASE_NAME = "dispatch"


async def db_now(conn: AsyncConnection) -> datetime:
    """Now, by the clock every dispatcher shares: PostgreSQL's ``clock_timestamp()`` (the
    actual time, not the transaction's start), so a host whose clock is off neither takes
    live leases nor lets its own lapse. SQLite is one file on one host: every process on it
    reads the same clock, so it is this process's."""
    if conn.dialect.name == "postgresql":
        value = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    return datetime.now(UTC)


async def single_lease_holder(conn: AsyncConnection) -> str | None:
    """Who holds the single lease now, if anyone (locks its row ``FOR SHARE`` first: see
    the module docstring)."""
    await conn.execute(
        text("SELECT name FROM outbox_lease WHERE name = :name FOR SHARE"),
        {"name": SINGLE_LEASE_NAME},
    )
    now = await db_now(conn)
    found = (
        await conn.execute(
            text(
                "SELECT holder FROM outbox_lease WHERE name = :name AND holder IS NOT NULL "
                "AND expires_at >= :now"
            ),
            {"name": SINGLE_LEASE_NAME, "now": now},
        )
    ).first()
    return None if found is None else str(found[0])


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
        # What the last claim took that was not live ours already: a pass under way has
        # not read those partitions' events from their start.
        self.taken: tuple[int, ...] = ()
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
            # The single lease's row, free, so that there is always a row to lock.
            await conn.execute(
                text(
                    "INSERT INTO outbox_lease (name, passes) VALUES (:name, 0) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                {"name": SINGLE_LEASE_NAME},
            )
        self._rows_ready = True

    async def claim(self, *, join: bool = True) -> tuple[int, ...]:
        """Heartbeat, then hold this dispatcher's fair share of partitions: release the
        excess, take free or expired ones (``taken``). Only with nothing of ours in flight on
        the partitions it may release: between passes, or between a pass's segments with
        the live lane held (``Dispatcher``). Returns the partitions held.

        ``join=False``: a one-off pass (a CLI command dispatching what it recorded), not a
        dispatcher: it is not counted among the live ones, and takes nothing while one
        runs (that one dispatches the events), giving back what it took when one starts;
        the caller releases what it took."""
        await self._ensure_rows()
        self.taken = ()
        p, d = self.partition_table, self.dispatcher_table
        async with self.db.engine.begin() as conn:
            single = await single_lease_holder(conn)
            now = await db_now(conn)
            if join:
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
            if single is not None:
                # A dispatcher with CHANNELBOARD_OUTBOX_PARTITIONS=1 is in a pass over
                # every event: stand aside (the setting belongs in every process alike).
                log.warning("outbox: a single-lease dispatcher (%s) is running", single)
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
            if not join and live:
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
                self.taken = tuple(free)
                mine = sorted([*mine, *self.taken])
            if mine:
                await conn.execute(
                    update(p)
                    .where(p.c.partition.in_(mine))
                    .values(holder=self.holder, expires_at=now + LEASE)
                )
        self.held = tuple(mine)
        return self.held

    async def renew(self) -> bool:
        """Extend the leases held (the heartbeat); False when one was lost: it expired
        (another dispatcher may have taken it), or a single-lease dispatcher took the
        outbox, and then this one gives up all it holds. Either way the pass must end."""
        p, d = self.partition_table, self.dispatcher_table
        held = self.held
        async with self.db.engine.begin() as conn:
            single = await single_lease_holder(conn) if held else None
            now = await db_now(conn)
            await conn.execute(update(d).where(d.c.holder == self.holder).values(seen_at=now))
            if not held:
                return True
            if single is not None:
                log.warning("outbox: a single-lease dispatcher (%s) took over", single)
                await self._release_all(conn)
                self.held = ()
                return False
            # Rows locked in partition order first, as ``fence`` locks them: the pass's marks
            # and this heartbeat run at once, and an UPDATE locks rows in whatever order its
            # scan meets them (two orders can deadlock, and PostgreSQL aborts one side).
            await conn.execute(
                select(p.c.partition)
                .where(p.c.partition.in_(held), p.c.holder == self.holder)
                .order_by(p.c.partition)
                .with_for_update(key_share=True)
            )
            # Only leases still live: an expired one may be another's already.
            result = await conn.execute(
                update(p)
                .where(p.c.partition.in_(held), p.c.holder == self.holder, p.c.expires_at >= now)
                .values(expires_at=now + LEASE)
            )
        # A claim that ran meanwhile (releasing some) is no loss: it renewed them itself.
        return bool(result.rowcount == len(held)) or self.held != held

    async def fence(self, session: AsyncSession, partitions: Iterable[int]) -> bool:
        """Whether this dispatcher still holds ``partitions``, in the caller's transaction,
        their rows locked ``FOR SHARE`` until it ends: a claim skips locked rows, so none
        changes hands before the caller's writes commit. Held, not live: a lease that
        lapsed but that nobody took is still nobody else's."""
        wanted = set(partitions)
        p = self.partition_table
        found = await session.execute(
            select(p.c.partition)
            .where(p.c.partition.in_(wanted), p.c.holder == self.holder)
            .order_by(p.c.partition)  # (in the order ``renew`` locks them)
            .with_for_update(read=True)
        )
        return set(found.scalars()) == wanted

    async def release(self) -> None:
        """Leave: the others take these partitions at their next pass, not after LEASE."""
        async with self.db.engine.begin() as conn:
            released = await self._release_all(conn)
            d = self.dispatcher_table
            await conn.execute(delete(d).where(d.c.holder == self.holder))
            if released:
                # A pass ended: a single-lease dispatcher that read its events before it
                # must read them again before it takes the lease (``_Lease.take``).
                await conn.execute(
                    text("UPDATE outbox_lease SET passes = passes + 1 WHERE name = :name"),
                    {"name": SINGLE_LEASE_NAME},
                )
        self.held = ()

    async def _release_all(self, conn: Any) -> int:
        p = self.partition_table
        result = await conn.execute(
            update(p).where(p.c.holder == self.holder).values(holder=None, expires_at=None)
        )
        return int(result.rowcount)
