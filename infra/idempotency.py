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
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Column, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.db import UTCDateTime
from infra.errors import DomainError
from infra.ids import new_id

MAX_KEY_LENGTH = 128
FIELD = "idempotency_key"


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
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


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
) -> Taken | None:
    """Take ``key`` for this request, or find the caller's first request with it. None
    without a key. ``codes`` is the domain's error-code enum; its TOO_LONG and
    IDEMPOTENCY_KEY_REUSED members report a bad key and a key reused for another request.
    Call it in a write transaction, before writing anything the request creates."""
    key = (key or "").strip() or None
    if key is None:
        return None
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(codes["TOO_LONG"], f"At most {MAX_KEY_LENGTH} characters.", FIELD)
    mine = fingerprint(scope, request)
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
            found = await _find(session, vendor_id, caller, scope, key)
            if found is None:  # pragma: no cover - the conflict was on something else
                raise
    if found.fingerprint is not None and found.fingerprint != mine:
        raise DomainError(
            codes["IDEMPOTENCY_KEY_REUSED"],
            "You used this idempotency key for a different request; use a new key.",
            FIELD,
        )
    assert found.result_id is not None, "a committed key always has its result"
    return Taken(replay=found.result_id)


async def first_result(
    session: AsyncSession, *, vendor_id: uuid.UUID, caller: str, scope: str, key: str
) -> uuid.UUID | None:
    """What the caller's first request with ``key`` created, whatever that request was
    (for seeders that rerun with today's dates)."""
    found = await _find(session, vendor_id, caller, scope, key.strip())
    return found.result_id if found is not None else None


async def _find(
    session: AsyncSession, vendor_id: uuid.UUID, caller: str, scope: str, key: str
) -> IdempotencyKey | None:
    rows = await session.exec(
        select(IdempotencyKey).where(
            IdempotencyKey.vendor_id == vendor_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    return rows.first()
