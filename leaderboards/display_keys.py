"""Display keys: read-only, long-lived credentials for office screens (the TV page).

A display key names one contest or a rotation of contests. Its screen authenticates as a
``DISPLAY`` principal limited to those contests (``Principal.contest_ids``): it reads their
boards and winners exactly as a partner viewer sees them (anonymised stays anonymised, and
no row is "you"), subscribes to their ``leaderboardChanged``, and nothing else (every policy
table refuses the role, and ``schema.permissions`` admits it only to the screen's fields).
The secret is shown once and stored as a hash, the way API keys are
(``partners.service.hash_secret``); revoking a key writes the table principals are read
from, which closes its screens' websockets (``api.ws_sessions``).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.clock import Clock
from infra.db import for_change
from infra.errors import DomainError, DomainErrors
from infra.text import name_problem
from leaderboards.errors import ContestErrorCode as Code
from leaderboards.models import Contest, DisplayKey
from leaderboards.policy import CONTESTS, ContestOp
from leaderboards.repository import readable_contests
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal, Role
from partners.service import hash_secret

DISPLAY_KEY_PREFIX = "cbd_"
MAX_CONTESTS = 20
ROTATE_SECONDS = (10, 600)


@dataclass(frozen=True)
class IssuedDisplayKey:
    key: DisplayKey
    secret: str  # shown once; only its hash is stored


def readable_display_keys(principal: Principal) -> SelectOfScalar[DisplayKey]:
    if not CONTESTS.allows(principal, ContestOp.DISPLAY_KEYS_READ):
        return select(DisplayKey).where(false())
    return select(DisplayKey).where(DisplayKey.vendor_id == principal.vendor_id)


async def create_display_key(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    label: str,
    contest_ids: list[uuid.UUID],
    expires_at: datetime | None = None,
    rotate_seconds: int = 30,
) -> IssuedDisplayKey:
    CONTESTS.require(principal, ContestOp.DISPLAY_KEY_CREATE)
    now = clock.now()
    label = label.strip()
    errors: list[DomainError] = []
    if not label:
        errors.append(DomainError(Code.REQUIRED, "Give the screen a label.", "label"))
    elif len(label) > 100:
        errors.append(DomainError(Code.TOO_LONG, "At most 100 characters.", "label"))
    elif problem := name_problem(label):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "label"))
    ordered = list(dict.fromkeys(contest_ids))  # rotation order, each once
    if not ordered:
        errors.append(DomainError(Code.REQUIRED, "Name at least one contest.", "contestIds"))
    elif len(ordered) > MAX_CONTESTS:
        errors.append(
            DomainError(
                Code.TOO_MANY_CONTESTS, f"A screen rotates at most {MAX_CONTESTS} contests.",
                "contestIds",
            )
        )  # fmt: skip
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        errors.append(
            DomainError(Code.INVALID_EXPIRY, "Expiry must be a future instant.", "expiresAt")
        )
    if not ROTATE_SECONDS[0] <= rotate_seconds <= ROTATE_SECONDS[1]:
        errors.append(
            DomainError(
                Code.INVALID_ROTATION,
                f"Show each contest {ROTATE_SECONDS[0]} to {ROTATE_SECONDS[1]} seconds.",
                "rotateSeconds",
            )
        )
    if errors:
        raise DomainErrors(errors)
    found = set(
        await session.exec(
            select(Contest.id).where(
                Contest.vendor_id == principal.vendor_id, col(Contest.id).in_(ordered)
            )
        )
    )
    if found != set(ordered):
        raise DomainError(Code.NOT_FOUND, "One of the contests does not exist.", "contestIds")
    prefix = secrets.token_hex(6)
    secret = f"{DISPLAY_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = DisplayKey(
        vendor_id=principal.vendor_id, label=label, prefix=prefix,
        secret_hash=hash_secret(secret), contest_ids=[str(c) for c in ordered],
        rotate_seconds=rotate_seconds, created_by_id=principal.user_id, created_at=now,
        expires_at=expires_at,
    )  # fmt: skip
    session.add(key)
    await session.flush()
    await log_change(
        session, principal, clock, action="display_key.created",
        entity_type=AuditEntity.DISPLAY_KEY, entity_id=key.id, before=None,
        after={"label": label, "prefix": prefix, "contest_ids": key.contest_ids,
               "expires_at": expires_at},
    )  # fmt: skip
    return IssuedDisplayKey(key=key, secret=secret)


async def revoke_display_key(
    session: AsyncSession, principal: Principal, clock: Clock, *, key_id: uuid.UUID
) -> DisplayKey:
    CONTESTS.require(principal, ContestOp.DISPLAY_KEY_REVOKE)
    key = (
        await session.exec(
            for_change(
                select(DisplayKey).where(
                    DisplayKey.id == key_id, DisplayKey.vendor_id == principal.vendor_id
                ),
                DisplayKey,
            )
        )
    ).first()
    if key is None:
        raise DomainError(Code.NOT_FOUND, "No such display key.", "id")
    if key.revoked_at is not None:
        raise DomainError(Code.ALREADY_REVOKED, "This key is already revoked.", "id")
    key.revoked_at = clock.now()
    session.add(key)
    await session.flush()
    await log_change(
        session, principal, clock, action="display_key.revoked",
        entity_type=AuditEntity.DISPLAY_KEY, entity_id=key.id, before={"revoked_at": None},
        after={"revoked_at": key.revoked_at},
    )  # fmt: skip
    return key


async def verify_display_key(session: AsyncSession, secret: str) -> DisplayKey | None:
    """The key behind a presented secret, revoked or expired alike (the caller tells them
    apart), or None when unknown or malformed."""
    if not secret.startswith(DISPLAY_KEY_PREFIX):
        return None
    prefix, _, _rest = secret[len(DISPLAY_KEY_PREFIX) :].partition("_")
    key = (await session.exec(select(DisplayKey).where(DisplayKey.prefix == prefix))).first()
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        return None
    return key


async def display_keys_by_ids(
    session: AsyncSession, ids: set[uuid.UUID]
) -> dict[uuid.UUID, DisplayKey]:
    """Keys by id, whoever asks (authentication's re-check of open screens)."""
    rows = await session.exec(select(DisplayKey).where(col(DisplayKey.id).in_(ids)))
    return {k.id: k for k in rows}


async def readable_display_keys_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DisplayKey]:
    rows = await session.exec(readable_display_keys(principal).where(col(DisplayKey.id).in_(ids)))
    return {k.id: k for k in rows}


async def screen_of(
    session: AsyncSession, principal: Principal
) -> tuple[DisplayKey, list[Contest]] | None:
    """A display key's own row and the contests it may show now (the published ones), in
    rotation order; None for any other caller."""
    if not principal.is_display or principal.display_key_id is None:
        return None
    key = await session.get(DisplayKey, principal.display_key_id)
    if key is None:
        return None
    rows = await session.exec(readable_contests(principal))
    found = {c.id: c for c in rows}
    return key, [found[c] for c in (uuid.UUID(i) for i in key.contest_ids) if c in found]


def principal_of(key: DisplayKey) -> Principal:
    """The principal a live display key authenticates as."""
    return Principal(
        vendor_id=key.vendor_id, role=Role.DISPLAY, display_key_id=key.id,
        contest_ids=frozenset(uuid.UUID(c) for c in key.contest_ids), expires_at=key.expires_at,
    )  # fmt: skip
