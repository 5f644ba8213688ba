from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import program_settings
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.policy import DEALS, DealOp
from infra.errors import DomainError
from schema.context import Context
from schema.deal_registration.inputs import DealProgramSettingsUpdateInput
from schema.deal_registration.mutations.payloads import DealRegistrationError
from schema.deal_registration.types import DealProgramSettingsType
from schema.errors import user_errors
from schema.mutations import mutate
from schema.permissions import allowed


@strawberry.type
class DealProgramSettingsUpdatePayload:
    settings: DealProgramSettingsType | None = None
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)


def _errors(errors: list[DomainError]) -> DealProgramSettingsUpdatePayload:
    return DealProgramSettingsUpdatePayload(
        user_errors=user_errors(errors, DealRegistrationError, Code)
    )


@strawberry.type
class DealProgramSettingsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.UPDATE_SETTINGS)],
        description="Change the vendor's deal registration rules (omitted values stay).",
    )
    async def deal_program_settings_update(
        self, info: Info[Context, None], input: DealProgramSettingsUpdateInput
    ) -> DealProgramSettingsUpdatePayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        threshold = currency = None
        if input.big_deal_threshold is not None:
            currency = input.big_deal_threshold.currency
            try:
                threshold = input.big_deal_threshold.to_minor()
            except ValueError as exc:
                return _errors(
                    [
                        DomainError(
                            Code.INVALID_SETTING,
                            f"Not a valid amount: {exc}.",
                            "big_deal_threshold",
                        )
                    ]
                )
        change = program_settings.SettingsChange(
            big_deal_threshold_minor=threshold,
            currency=currency,
            similarity_threshold=input.similarity_threshold,
            protection_days=input.protection_days,
            extension_days=input.extension_days,
            max_extensions=input.max_extensions,
            review_sla_days=input.review_sla_days,
        )
        outcome = await mutate(
            ctx,
            lambda s: program_settings.update_settings(
                s, principal, ctx.services.clock, change=change
            ),
        )
        if outcome.result is None:
            return _errors(outcome.errors)
        return DealProgramSettingsUpdatePayload(
            settings=DealProgramSettingsType.from_model(outcome.result)
        )
