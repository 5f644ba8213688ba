"""The error and payload types every deal registration mutation shares, and the one helper
that runs a service action on a registration id and maps the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import Info

from deal_registration.registrations.errors import DealRegistrationErrorCode
from deal_registration.registrations.models import DealRegistration
from infra.errors import DomainError
from partners.roles import Principal
from schema.context import Context
from schema.deal_registration.types import DealRegistrationType
from schema.errors import UserError, user_errors
from schema.mutations import mutate
from schema.relay import parse_global_id


@strawberry.type
class DealRegistrationError(UserError):
    code: DealRegistrationErrorCode


@strawberry.type
class DealRegistrationPayload:
    deal_registration: DealRegistrationType | None = None
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)


def errors_payload(errors: list[DomainError]) -> DealRegistrationPayload:
    return DealRegistrationPayload(
        user_errors=user_errors(errors, DealRegistrationError, DealRegistrationErrorCode)
    )


def not_found() -> DealRegistrationPayload:
    return errors_payload(
        [DomainError(DealRegistrationErrorCode.NOT_FOUND, "No such deal registration.", "id")]
    )


Action = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[DealRegistration]]


async def run_on_registration(
    info: Info[Context, None], raw_id: strawberry.ID, action: Action
) -> DealRegistrationPayload:
    """Decode the id (a malformed or foreign id is answered like a missing registration),
    run the action in the operation's transaction, and map the result."""
    ctx = info.context
    principal = ctx.principal
    assert principal is not None
    registration_id = parse_global_id(raw_id, "DealRegistration")
    if registration_id is None:
        return not_found()
    outcome = await mutate(ctx, lambda s: action(s, principal, registration_id))
    if outcome.result is None:
        return errors_payload(outcome.errors)
    return DealRegistrationPayload(
        deal_registration=DealRegistrationType.from_model(outcome.result, ctx.services.clock.now())
    )
