from __future__ import annotations

from typing import ClassVar, Self

import strawberry
from strawberry import Info

from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.permissions import allowed
from schema.subscriptions.inputs import (
    SubscriptionAmountChangeInput,
    SubscriptionCancelInput,
    SubscriptionChangeInput,
    SubscriptionRenewInput,
)
from schema.subscriptions.types import SubscriptionType
from subscriptions import service
from subscriptions.errors import SubscriptionErrorCode
from subscriptions.models import ChangeKind, Subscription
from subscriptions.policy import SUBSCRIPTIONS, SubscriptionOp


@strawberry.type
class SubscriptionError(UserError):
    code: SubscriptionErrorCode
    amount_code: ClassVar = SubscriptionErrorCode.INVALID_AMOUNT


@strawberry.type
class SubscriptionChangePayload(Payload[Subscription], errors=SubscriptionError):
    subscription: SubscriptionType | None = None
    user_errors: list[SubscriptionError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Subscription, write: Write) -> Self:
        return cls(subscription=SubscriptionType.from_model(result))


async def _report(
    info: Info[Context, None],
    kind: ChangeKind,
    input: SubscriptionChangeInput,
    amount: object = None,
    term_months: int | None = None,
) -> SubscriptionChangePayload:
    async def action(m: Write) -> Subscription:
        money = m.optional_money(amount, "amount")  # type: ignore[arg-type]
        return await service.report_change(
            m.session, m.principal, m.clock,
            subscription_id=m.id(input.subscription_id, "CustomerSubscription"), kind=kind,
            external_id=input.external_id, effective_at=input.effective_at,
            amount_minor=money.minor if money else None,
            currency=money.currency if money else None, term_months=term_months,
        )  # fmt: skip

    return await run(info, SubscriptionChangePayload, action)


@strawberry.type
class SubscriptionsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.RENEW)],
        description="The billing system reports a renewal: the next term, from the current end.",
    )
    async def subscription_renew(
        self, info: Info[Context, None], input: SubscriptionRenewInput
    ) -> SubscriptionChangePayload:
        return await _report(info, ChangeKind.RENEWED, input, input.amount, input.term_months)

    @strawberry.mutation(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.EXPAND)],
        description="The billing system reports an expansion: a higher recurring amount.",
    )
    async def subscription_expand(
        self, info: Info[Context, None], input: SubscriptionAmountChangeInput
    ) -> SubscriptionChangePayload:
        return await _report(info, ChangeKind.EXPANDED, input, input.amount)

    @strawberry.mutation(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.CONTRACT)],
        description="The billing system reports a contraction: a lower recurring amount.",
    )
    async def subscription_contract(
        self, info: Info[Context, None], input: SubscriptionAmountChangeInput
    ) -> SubscriptionChangePayload:
        return await _report(info, ChangeKind.CONTRACTED, input, input.amount)

    @strawberry.mutation(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.CANCEL)],
        description="The billing system reports a cancellation.",
    )
    async def subscription_cancel(
        self, info: Info[Context, None], input: SubscriptionCancelInput
    ) -> SubscriptionChangePayload:
        return await _report(info, ChangeKind.CANCELLED, input)
