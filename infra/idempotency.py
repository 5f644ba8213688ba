"""Idempotency keys, with Stripe's semantics, for every mutation that takes one.

A key belongs to its caller (one user or one API key, of one vendor) and to one operation
(the mutation's name, the ``scope``). The first request with a key records a fingerprint
of the request (the scope and its canonical input, without the key) and, before it
commits, the id of what it created:

- the same caller sending the same request again gets that first result, and nothing is
  written (``Taken.replay``);
- the same caller sending a different request under the key is refused
  (``IDEMPOTENCY_KEY_REUSED``);
- another caller's use of the same key string is none of this caller's business: its own
  key, its own record. A key never answers with somebody else's result.

Keys are rows of ``idempotency_key``, written in the caller's transaction: a request that
fails (a DomainError rolls the transaction back) leaves no key behind, so a corrected retry
goes through. Concurrent retries meet at the unique (vendor, caller, scope, key)
constraint: the loser waits for the winner's commit (PostgreSQL) or for the write lock
(SQLite), then answers with the winner's result.

Keys are kept for a retention (``DEFAULT_RETENTION``, 7 days; the setting
``CHANNELBOARD_IDEMPOTENCY_KEY_RETENTION_HOURS``, at least 24 hours as Stripe promises):
a retry within it replays; from then on the key is forgotten, and a request under it is a
new request (whatever it asks), which takes over the key's row (one row per key, whatever
its age). ``prune`` deletes expired rows in small batches (the clock job
``idempotency-prune`` and ``channelboard idempotency prune``), so the table holds about a
retention's worth of keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Column, CursorResult, UniqueConstraint, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import passes
from infra.clock import Clock
from infra.db import Database, UTCDateTime
from infra.errors import DomainError
from infra.ids import new_id

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 128
FIELD = "idempotency_key"
# How long a key replays (the setting's default). Stripe keeps keys at least 24 hours; a
# week covers a client that retries after a weekend outage or a queue drained days later.
DEFAULT_RETENTION = timedelta(days=7)
# Rows deleted per transaction by ``prune`` (each batch holds its locks for milliseconds).
PRUNE_BATCH = 1_000
# Seconds between the clock job's passes.
PRUNE_INTERVAL = 900.0
# Attempts at taking a key that concurrent requests (or a prune) keep changing under us.
_ATTEMPTS = 5


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("vendor_id", "caller", "scope", "key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    caller: str = Field(max_length=64, description="user:<id> or api_key:<id>")
    scope: str = Field(max_length=64, description="The operation, e.g. saleClaimCreate.")
    key: str = Field(max_length=MAX_KEY_LENGTH)
    # Null for keys carried over from before this table (their requests were not kept):
    # such a key replays its result to its caller whatever the request.
    fingerprint: str | None = Field(default=None, max_length=64)
    result_id: uuid.UUID | None = None
    # When the key was (last) taken: it replays until created_at + the retention. Indexed
    # for ``prune`` (migration 0038).
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


def fingerprint(scope: str, request: Mapping[str, Any]) -> str:
    """SHA-256 of the operation and its canonical input (keys sorted; ids, dates and enums
    as text)."""
    body = json.dumps(
        {"scope": scope, "request": request}, sort_keys=True, separators=(",", ":"),
        default=_plain,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def _plain(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return str(value.value)
    raise TypeError(f"not canonical: {type(value).__name__}")


@dataclass
class Taken:
    """A key taken by this request (``replay`` None: go ahead, then call ``done``), or the
    result of the caller's first request with it (``replay``: answer with that)."""

    replay: uuid.UUID | None
    _row: IdempotencyKey | None = None

    async def done(self, session: AsyncSession, result_id: uuid.UUID) -> None:
        """Remember what this request created (in its transaction, before commit)."""
        assert self._row is not None, "a replay creates nothing"
        self._row.result_id = result_id
        session.add(self._row)
        await session.flush()


async def take(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    caller: str,
    scope: str,
    key: str | None,
    request: Mapping[str, Any],
    now: datetime,
    codes: type[Enum],
    retention: timedelta = DEFAULT_RETENTION,
) -> Taken | None:
    """Take ``key`` for this request, or find the caller's first request with it. None
    without a key. ``codes`` is the domain's error-code enum; its TOO_LONG and
    IDEMPOTENCY_KEY_REUSED members report a bad key and a key reused for another request.
    A key taken ``retention`` or longer before ``now`` is expired: this request takes it
    over, as a new request. Call it in a write transaction, before writing anything the
    request creates."""
    key = (key or "").strip() or None
    if key is None:
        return None
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(codes["TOO_LONG"], f"At most {MAX_KEY_LENGTH} characters.", FIELD)
    mine = fingerprint(scope, request)
    for _ in range(_ATTEMPTS):
        found = await _find(session, vendor_id, caller, scope, key)
        if found is None:
            row = IdempotencyKey(
                vendor_id=vendor_id, caller=caller, scope=scope, key=key, fingerprint=mine,
                created_at=now,
            )  # fmt: skip
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
                return Taken(replay=None, _row=row)
            except IntegrityError:
                # A concurrent request with this key committed first: answer as its retry.
                if await _find(session, vendor_id, caller, scope, key) is None:
                    raise  # pragma: no cover - the conflict was on something else
                continue
        if expired(found.created_at, now, retention):
            if await _renew(session, found, fingerprint=mine, now=now):
                return Taken(replay=None, _row=found)
            # A concurrent request renewed it first (or a prune deleted it): look again.
            continue
        if found.fingerprint is not None and found.fingerprint != mine:
            raise DomainError(
                codes["IDEMPOTENCY_KEY_REUSED"],
                "You used this idempotency key for a different request; use a new key.",
                FIELD,
            )
        assert found.result_id is not None, "a committed key always has its result"
        return Taken(replay=found.result_id)
    # Five concurrent changes of one key within one request: not seen; masked if it is.
    raise RuntimeError(f"idempotency key {scope}/{key!r} kept changing; giving up")


def expired(created_at: datetime, now: datetime, retention: timedelta) -> bool:
    """A key taken at ``created_at`` no longer replays at ``now``: it was kept for the whole
    retention (a retry exactly one retention later is a new request)."""
    return created_at <= now - retention


def gone(codes: type[Enum]) -> DomainError:
    """The answer to a replay whose first result the caller can no longer read (its record
    left the caller's view): NOT_FOUND on the key, never a new record under it (that would
    make the first request's record twice) nor a word about who holds it now."""
    return DomainError(
        codes["NOT_FOUND"],
        "What your first request with this idempotency key made is no longer there for "
        "you; send the request with a new key to make it again.",
        FIELD,
    )


async def _renew(
    session: AsyncSession, found: IdempotencyKey, *, fingerprint: str, now: datetime
) -> bool:
    """Take over an expired key's row for this request, unless a concurrent request did so
    first (or a prune deleted it): the update applies only to the row as read. On
    PostgreSQL a concurrent renewal holds the row until it commits, then this one matches
    nothing (READ COMMITTED re-reads the row) and the caller finds the new holder; on SQLite
    writers take turns, so the second one reads the renewed row."""
    renewed = await session.exec(
        update(IdempotencyKey)
        .where(
            col(IdempotencyKey.id) == found.id,
            col(IdempotencyKey.created_at) == found.created_at,
        )
        .values(fingerprint=fingerprint, result_id=None, created_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(renewed, CursorResult)
    if renewed.rowcount != 1:
        return False
    await session.refresh(found)
    return True


async def first_result(
    session: AsyncSession, *, vendor_id: uuid.UUID, caller: str, scope: str, key: str
) -> uuid.UUID | None:
    """What the caller's first request with ``key`` created, whatever that request was, as
    long as its row is kept (an expired key's too, until it is pruned): nothing may count on
    a key to find a record later."""
    found = await _find(session, vendor_id, caller, scope, key.strip())
    return found.result_id if found is not None else None


async def _find(
    session: AsyncSession, vendor_id: uuid.UUID, caller: str, scope: str, key: str
) -> IdempotencyKey | None:
    rows = await session.exec(
        select(IdempotencyKey)
        .where(
            IdempotencyKey.vendor_id == vendor_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
        # Read afresh: a retry that lost a race reads the winner's row, not the stale copy
        # this session holds.
        .execution_options(populate_existing=True)
    )
    return rows.first()


async def prune(
    db: Database,
    clock: Clock,
    *,
    retention: timedelta = DEFAULT_RETENTION,
    batch: int = PRUNE_BATCH,
) -> int:
    """Delete the keys expired at ``clock.now()``, oldest first, ``batch`` rows per short
    transaction, until none is left; returns how many. Safe beside requests and other
    prunes: on PostgreSQL a row a request is renewing (or another prune deleting) is
    skipped (``SKIP LOCKED``), and the delete re-checks the age of what it removes; SQLite's
    writers take turns, one batch at a time."""
    cutoff = clock.now() - retention
    removed = 0
    while True:
        oldest = (
            select(IdempotencyKey.id)
            .where(col(IdempotencyKey.created_at) <= cutoff)
            .order_by(col(IdempotencyKey.created_at))
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        async with db.transaction() as session:
            result = await session.exec(
                delete(IdempotencyKey).where(
                    col(IdempotencyKey.id).in_(oldest.scalar_subquery()),
                    col(IdempotencyKey.created_at) <= cutoff,
                )
            )
        assert isinstance(result, CursorResult)
        removed += result.rowcount
        if result.rowcount < batch:
            return removed
        await asyncio.sleep(0)  # let waiting writers in between batches


async def run_pruning(
    db: Database,
    clock: Clock,
    *,
    retention: timedelta = DEFAULT_RETENTION,
    interval: float = PRUNE_INTERVAL,
) -> None:
    """``prune`` every ``interval`` seconds (a clock job: inline in each API process, or in
    ``channelboard dispatch``). The first pass waits a random part of the interval, so
    processes started together do not prune at once."""

    async def one_pass() -> None:
        if removed := await prune(db, clock, retention=retention):
            log.info("pruned %d expired idempotency key(s)", removed)

    await passes.every("idempotency key pruning", interval, one_pass)
