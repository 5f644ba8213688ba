from __future__ import annotations

from datetime import datetime

import strawberry

from schema.money import MoneyInput


@strawberry.input(description="A change the billing system reports.")
class SubscriptionChangeInput:
    subscription_id: strawberry.ID
    external_id: str = strawberry.field(
        description="The billing system's id of this change: reporting it again changes nothing."
    )
    effective_at: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.input
class SubscriptionRenewInput(SubscriptionChangeInput):
    amount: MoneyInput | None = strawberry.field(
        default=None, description="The new term's amount (default: unchanged)."
    )
    term_months: int | None = strawberry.field(
        default=None, description="The new term's length (default: unchanged)."
    )


@strawberry.input
class SubscriptionAmountChangeInput(SubscriptionChangeInput):
    amount: MoneyInput = strawberry.field(description="The new recurring amount per term.")


@strawberry.input
class SubscriptionCancelInput(SubscriptionChangeInput):
    pass
