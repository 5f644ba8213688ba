"""The error and payload types the deal registration mutations share."""

from __future__ import annotations

from typing import ClassVar, Self

import strawberry

from deal_registration.registrations.errors import DealRegistrationErrorCode
from deal_registration.registrations.models import DealRegistration
from schema.deal_registration.registrations.types import DealRegistrationType
from schema.errors import UserError
from schema.mutations import Payload, Write


@strawberry.type
class DealRegistrationError(UserError):
    code: DealRegistrationErrorCode
    amount_code: ClassVar = DealRegistrationErrorCode.INVALID_VALUE


@strawberry.type
class DealRegistrationPayload(Payload[DealRegistration], errors=DealRegistrationError):
    deal_registration: DealRegistrationType | None = None
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: DealRegistration, write: Write) -> Self:
        return cls(deal_registration=DealRegistrationType.from_model(result, write.clock.now()))
