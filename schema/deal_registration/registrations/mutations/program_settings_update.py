from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from deal_registration.registrations import program_settings
from deal_registration.registrations.models import DealProgramSettings
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.registrations.inputs import DealProgramSettingsUpdateInput
from schema.deal_registration.registrations.mutations.payloads import DealRegistrationError
from schema.deal_registration.registrations.types import DealProgramSettingsType
from schema.mutations import Payload, Write, run
from schema.permissions import allowed


@strawberry.type
class DealProgramSettingsUpdatePayload(Payload[DealProgramSettings], errors=DealRegistrationError):
    settings: DealProgramSettingsType | None = None
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: DealProgramSettings, write: Write) -> Self:
        return cls(settings=DealProgramSettingsType.from_model(result))


@strawberry.type
class DealProgramSettingsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.UPDATE_SETTINGS)],
        description="Change the vendor's deal registration rules (omitted values stay).",
    )
    async def deal_program_settings_update(
        self, info: Info[Context, None], input: DealProgramSettingsUpdateInput
    ) -> DealProgramSettingsUpdatePayload:
        async def update(m: Write) -> DealProgramSettings:
            threshold = m.optional_money(input.big_deal_threshold, "big_deal_threshold")
            change = program_settings.SettingsChange(
                big_deal_threshold_minor=threshold.minor if threshold else None,
                currency=threshold.currency if threshold else None,
                similarity_threshold=input.similarity_threshold,
                protection_days=input.protection_days, extension_days=input.extension_days,
                max_extensions=input.max_extensions, review_sla_days=input.review_sla_days,
            )  # fmt: skip
            return await program_settings.update_settings(
                m.session, m.principal, m.clock, change=change
            )

        return await run(info, DealProgramSettingsUpdatePayload, update)
