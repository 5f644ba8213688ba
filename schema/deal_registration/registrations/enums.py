"""The domain's enums as GraphQL enums, declared once before any type or input uses them."""

from __future__ import annotations

import strawberry

from deal_registration.registrations.models import (
    ConflictRule,
    ConflictStage,
    DealAction,
    DealStatus,
    ExtensionStatus,
)

DealStatusEnum = strawberry.enum(
    DealStatus,
    description="Where a registration is in its lifecycle. APPROVED registrations become "
    "EXPIRED the instant their protection period ends.",
)
DealActionEnum = strawberry.enum(DealAction, description="What happened to a registration.")
ConflictRuleEnum = strawberry.enum(
    ConflictRule,
    description="Why two registrations look like the same customer: DOMAIN (the same "
    "registrable web domain) or NAME (similar company names after normalisation).",
)
ConflictStageEnum = strawberry.enum(ConflictStage)
ExtensionStatusEnum = strawberry.enum(ExtensionStatus)
