"""Endpoint administration: register, change, disable, enable, delete, rotate the secret.
Vendor admins only (``webhooks/policy.py``); every change is in the audit log (secrets
masked). The secret is answered once, when made (registration, rotation)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.audit import mask
from infra.clock import Clock
from infra.db import for_change
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem, identifier_problem
from partners.audit_log import AuditEntity, log_change
from partners.models import Vendor
from partners.roles import Principal
from webhooks import targets
from webhooks.errors import WebhookErrorCode
from webhooks.event_types import EVENT_TYPES
from webhooks.models import (
    DeliveryStatus,
    DisabledReason,
    EndpointStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.policy import WEBHOOKS, WebhookOp
from webhooks.repository import readable_endpoints
from webhooks.signing import new_secret

MAX_DESCRIPTION = 500
# Endpoints a vendor may have (enabled or disabled, not deleted): each event is sent to
# each of them, so an unbounded number was an unbounded fan-out of requests per event.
MAX_ENDPOINTS = 20
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and the secret just made for it: shown to the caller this once."""

    endpoint: WebhookEndpoint
    secret: str


def _event_types(values: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(v.strip() for v in values))
    if not chosen:
        raise DomainError(
            WebhookErrorCode.NO_EVENT_TYPES, "Subscribe to at least one event type.", "event_types"
        )
    unknown = [
        DomainError(
            WebhookErrorCode.UNKNOWN_EVENT_TYPE,
            f"{value!r} is not an event type (see webhookEventTypes).",
            f"event_types.{i}",
        )
        for i, value in enumerate(chosen)
        if value not in EVENT_TYPES
    ]
    if unknown:
        raise DomainErrors(unknown)
    return chosen


def _description(value: str) -> str:
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise DomainError(
            WebhookErrorCode.TOO_LONG, f"At most {MAX_DESCRIPTION} characters.", "description"
        )
    if problem := free_text_problem(text):
        raise DomainError(WebhookErrorCode.INVALID_CHARACTERS, problem, "description")
    return text


async def _url(value: str, policy: targets.TargetPolicy) -> str:
    try:
        return (await targets.check(value, policy)).url
    except targets.TargetRefused as refused:
        raise refused.as_domain_error("url") from refused


async def _new_url(value: str, policy: targets.TargetPolicy) -> str:
    """A URL given now: an identifier first (URL parsing drops tabs and line breaks and keeps
    bidi overrides in the path), then a target the worker may send to."""
    if problem := identifier_problem(value.strip()):
        raise DomainError(WebhookErrorCode.INVALID_CHARACTERS, problem, "url")
    return await _url(value, policy)


def _shown(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url, "event_types": list(endpoint.event_types),
        "description": endpoint.description, "status": endpoint.status,
    }  # fmt: skip


async def _readable(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """The endpoint to change, locked (``for_change``): two changes of one endpoint take
    turns, and the second sees what the first left (disabled, deleted, a new secret)."""
    found = (
        await session.exec(
            for_change(
                readable_endpoints(principal).where(WebhookEndpoint.id == endpoint_id),
                WebhookEndpoint,
            )
        )
    ).first()
    if found is None:
        raise DomainError(WebhookErrorCode.NOT_FOUND, "No such webhook endpoint.", "id")
    return found


async def _room_for_one_more(session: AsyncSession, principal: Principal) -> None:
    """TOO_MANY_ENDPOINTS at ``MAX_ENDPOINTS``; the vendor's row is locked first, so two
    registrations at once cannot both take the last place."""
    await session.exec(select(Vendor.id).where(Vendor.id == principal.vendor_id).with_for_update())
    count = (
        await session.exec(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(
                WebhookEndpoint.vendor_id == principal.vendor_id,
                col(WebhookEndpoint.deleted_at).is_(None),
            )
        )
    ).one()
    if count >= MAX_ENDPOINTS:
        raise DomainError(
            WebhookErrorCode.TOO_MANY_ENDPOINTS,
            f"A vendor has at most {MAX_ENDPOINTS} webhook endpoints; delete one first.",
        )


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    policy: targets.TargetPolicy,
    url: str,
    event_types: Sequence[str],
    description: str = "",
) -> WithSecret:
    WEBHOOKS.require(principal, WebhookOp.ENDPOINT_CREATE)
    errors: list[DomainError] = []
    checked: dict[str, Any] = {}
    for key, check in (
        ("event_types", lambda: _event_types(event_types)),
        ("description", lambda: _description(description)),
    ):
        try:
            checked[key] = check()
        except DomainError as error:
            errors.append(error)
        except DomainErrors as many:
            errors.extend(many.errors)
    try:
        checked["url"] = await _new_url(url, policy)
    except DomainError as error:
        errors.insert(0, error)
    if errors:
        raise DomainErrors(errors)
    await _room_for_one_more(session, principal)
    now = clock.now()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        vendor_id=principal.vendor_id, url=checked["url"], event_types=checked["event_types"],
        description=checked["description"], secret=secret, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(endpoint)
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.created",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=None,
        after={**_shown(endpoint), "secret": mask(secret)},
    )  # fmt: skip
    return WithSecret(endpoint, secret)


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    policy: targets.TargetPolicy,
    endpoint_id: uuid.UUID,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged)."""
    WEBHOOKS.require(principal, WebhookOp.ENDPOINT_UPDATE)
    endpoint = await _readable(session, principal, endpoint_id)
    before = _shown(endpoint)
    if url is not None:
        endpoint.url = await _new_url(url, policy)
    if event_types is not None:
        endpoint.event_types = _event_types(event_types)
    if description is not None:
        endpoint.description = _description(description)
    endpoint.updated_at = clock.now()
    session.add(endpoint)
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.updated",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=before,
        after=_shown(endpoint),
    )  # fmt: skip
    return endpoint


async def disable_endpoint(
    session: AsyncSession, principal: Principal, clock: Clock, *, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """Stop sending: pending deliveries wait (they go out once it is enabled again) and no
    new ones are made for events meanwhile (replay them after enabling)."""
    WEBHOOKS.require(principal, WebhookOp.ENDPOINT_DISABLE)
    endpoint = await _readable(session, principal, endpoint_id)
    if endpoint.status is EndpointStatus.DISABLED:
        raise DomainError(WebhookErrorCode.ALREADY_DISABLED, "It is disabled already.", "id")
    before = _shown(endpoint)
    now = clock.now()
    endpoint.status = EndpointStatus.DISABLED
    endpoint.disabled_reason = DisabledReason.MANUAL
    endpoint.disabled_at = endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.disabled",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=before,
        after={**_shown(endpoint), "disabled_reason": DisabledReason.MANUAL},
    )  # fmt: skip
    return endpoint


async def enable_endpoint(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    policy: targets.TargetPolicy,
    endpoint_id: uuid.UUID,
) -> WebhookEndpoint:
    """Send again: its pending deliveries are due now, with a fresh failure count for the
    automatic disabling. The URL is checked again (the rules may have changed)."""
    WEBHOOKS.require(principal, WebhookOp.ENDPOINT_ENABLE)
    endpoint = await _readable(session, principal, endpoint_id)
    if endpoint.status is EndpointStatus.ACTIVE:
        raise DomainError(WebhookErrorCode.ALREADY_ENABLED, "It is enabled already.", "id")
    await _url(endpoint.url, policy)
    before = {**_shown(endpoint), "disabled_reason": endpoint.disabled_reason}
    now = clock.now()
    endpoint.status = EndpointStatus.ACTIVE
    endpoint.disabled_reason = None
    endpoint.disabled_at = endpoint.failing_since = None
    endpoint.updated_at = now
    session.add(endpoint)
    await session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint.id,
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
        )
        .values(next_attempt_at=now)
    )
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.enabled",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=before,
        after={**_shown(endpoint), "disabled_reason": None},
    )  # fmt: skip
    return endpoint


async def delete_endpoint(
    session: AsyncSession, principal: Principal, clock: Clock, *, endpoint_id: uuid.UUID
) -> uuid.UUID:
    """Gone for the vendor: its secrets are wiped, its pending deliveries FAILED; its
    delivery log stays readable."""
    WEBHOOKS.require(principal, WebhookOp.ENDPOINT_DELETE)
    endpoint = await _readable(session, principal, endpoint_id)
    before = _shown(endpoint)
    now = clock.now()
    endpoint.deleted_at = endpoint.updated_at = now
    endpoint.status = EndpointStatus.DISABLED
    endpoint.secret = ""
    endpoint.previous_secret = None
    endpoint.previous_secret_expires_at = None
    session.add(endpoint)
    await session.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint.id,
            col(WebhookDelivery.status) == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.FAILED, next_attempt_at=None)
    )
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.deleted",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=before,
        after=None,
    )  # fmt: skip
    return endpoint.id


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    endpoint_id: uuid.UUID,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> WithSecret:
    """A new secret, signing from now on; the current one keeps signing beside it for
    ``overlap`` (0 to 7 days), so receivers switch without missing a message. A rotation
    during an overlap ends the older overlap: only the two newest secrets sign."""
    WEBHOOKS.require(principal, WebhookOp.SECRET_ROTATE)
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise DomainError(
            WebhookErrorCode.INVALID_OVERLAP,
            "The overlap is between 0 seconds and 7 days.",
            "overlap_seconds",
        )
    endpoint = await _readable(session, principal, endpoint_id)
    now = clock.now()
    old, secret = endpoint.secret, new_secret()
    endpoint.previous_secret = old if overlap > timedelta(0) else None
    endpoint.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    endpoint.secret = secret
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    await log_change(
        session, principal, clock, action="webhook_endpoint.secret_rotated",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id,
        before={"secret": mask(old)},
        after={"secret": mask(secret), "previous_secret_expires_at": _at(endpoint)},
    )  # fmt: skip
    return WithSecret(endpoint, secret)


def _at(endpoint: WebhookEndpoint) -> datetime | None:
    return endpoint.previous_secret_expires_at


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a request now: the current one, and the previous one during
    its overlap."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        found.append(endpoint.previous_secret)
    return found
