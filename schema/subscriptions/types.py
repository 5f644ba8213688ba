from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import Info, relay
from strawberry.dataloader import DataLoader

from infra.limits import int_output
from infra.money import Money
from schema.context import Context
from schema.money import MoneyType
from schema.relay import visible_nodes
from subscriptions import repository
from subscriptions.events import arr_of
from subscriptions.models import (
    ChangeKind,
    ChangeSource,
    CustomerAccount,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.probability import Factor
from subscriptions.renewals import RenewalDue
from subscriptions.retention import Retention

SubscriptionStatusEnum = strawberry.enum(SubscriptionStatus, name="CustomerSubscriptionStatus")
SubscriptionChangeKindEnum = strawberry.enum(ChangeKind, name="SubscriptionChangeKind")
SubscriptionChangeSourceEnum = strawberry.enum(ChangeSource, name="SubscriptionChangeSource")


def _accounts(ctx: Context) -> DataLoader[uuid.UUID, CustomerAccount | None]:
    loader: DataLoader[uuid.UUID, CustomerAccount | None] | None = ctx.loaders.get(
        "subscriptions.accounts"
    )
    if loader is None:

        async def load(ids: list[uuid.UUID]) -> list[CustomerAccount | None]:
            found = await repository.accounts_by_ids(ctx.session, ids)
            return [found.get(i) for i in ids]

        loader = DataLoader(load_fn=load, cache=False)
        ctx.loaders["subscriptions.accounts"] = loader
    return loader


@strawberry.type(name="CustomerAccount", description="A customer of the vendor.")
class CustomerAccountType:
    name: str
    domain: str

    @classmethod
    def from_model(cls, account: CustomerAccount) -> CustomerAccountType:
        return cls(name=account.name, domain=account.domain)


@strawberry.type(
    name="SubscriptionChange",
    description="One change of a subscription, as applied: a start, renewal, expansion, "
    "contraction or cancellation.",
)
class SubscriptionChangeType:
    kind: ChangeKind
    source: ChangeSource
    external_id: str = strawberry.field(description="The billing system's id of the change.")
    effective_at: datetime
    amount_before: MoneyType
    amount_after: MoneyType
    term_months: int
    term_start: datetime
    term_end: datetime
    renewal_number: int

    @classmethod
    def from_model(cls, c: SubscriptionChange) -> SubscriptionChangeType:
        return cls(
            kind=c.kind, source=c.source, external_id=c.external_id,
            effective_at=c.effective_at,
            amount_before=MoneyType.of(c.amount_before_minor, c.currency),
            amount_after=MoneyType.of(c.amount_after_minor, c.currency),
            term_months=c.term_months, term_start=c.term_start, term_end=c.term_end,
            renewal_number=c.renewal_number,
        )  # fmt: skip


@strawberry.type(
    name="CustomerSubscription",
    description="A customer's subscription, attributed to a partner (docs/recurring.md).",
)
class SubscriptionType(relay.Node):
    id: relay.NodeID[str]
    partner_id: relay.GlobalID
    sku: str
    status: SubscriptionStatus
    amount: MoneyType = strawberry.field(description="What the customer pays for one term.")
    annual_recurring_revenue: MoneyType = strawberry.field(
        description="amount x 12 / termMonths, rounded half away from zero; 0 once cancelled."
    )
    term_months: int
    renewals: int
    starts_at: datetime
    term_start: datetime
    ends_at: datetime
    cancelled_at: datetime | None
    _account_id: strawberry.Private[uuid.UUID]
    _row_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The customer account.")
    async def account(self, info: Info[Context, None]) -> CustomerAccountType | None:
        found = await _accounts(info.context).load(self._account_id)
        return CustomerAccountType.from_model(found) if found else None

    @strawberry.field(description="Every change, oldest first.")
    async def history(self, info: Info[Context, None]) -> list[SubscriptionChangeType]:
        changes = await repository.history_of(
            info.context.session, info.context.caller, self._row_id
        )
        return [SubscriptionChangeType.from_model(c) for c in changes]

    @classmethod
    def from_model(cls, s: Subscription) -> SubscriptionType:
        live = s.status is SubscriptionStatus.ACTIVE
        return cls(
            id=str(s.id), partner_id=relay.GlobalID("Partner", str(s.partner_id)), sku=s.sku,
            status=s.status, amount=MoneyType.of(s.amount_minor, s.currency),
            annual_recurring_revenue=MoneyType.of(
                arr_of(s.amount_minor, s.term_months) if live else 0, s.currency
            ),
            term_months=s.term_months, renewals=s.renewals, starts_at=s.starts_at,
            term_start=s.term_start, ends_at=s.ends_at, cancelled_at=s.cancelled_at,
            _account_id=s.account_id, _row_id=s.id,
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.subscriptions_by_ids)


@strawberry.type(
    name="RenewalProbabilityFactor",
    description="One input of the renewal-probability model and what it did.",
)
class FactorType:
    code: str
    effect: float = strawberry.field(description="Its effect on the log-odds (0 for the base).")
    explanation: str

    @classmethod
    def of(cls, f: Factor) -> FactorType:
        return cls(code=f.code, effect=round(f.effect, 4), explanation=f.text)


@strawberry.type(
    name="RenewalDue",
    description="A subscription whose term ends soon, with the chance it renews.",
)
class RenewalDueType:
    subscription: SubscriptionType
    account: CustomerAccountType
    probability_bp: int = strawberry.field(description="0-10000 (basis points).")
    base_probability_bp: int = strawberry.field(
        description="The starting point from the renewal history, before the adjustments."
    )
    expected_amount: MoneyType = strawberry.field(
        description="The term amount x the probability, rounded half away from zero."
    )
    factors: list[FactorType]

    @classmethod
    def of(cls, due: RenewalDue) -> RenewalDueType:
        s = due.subscription
        return cls(
            subscription=SubscriptionType.from_model(s),
            account=CustomerAccountType.from_model(due.account),
            probability_bp=due.estimate.probability_bp, base_probability_bp=due.estimate.base_bp,
            expected_amount=MoneyType.of(due.expected_amount_minor, s.currency),
            factors=[FactorType.of(f) for f in due.estimate.factors],
        )  # fmt: skip


@strawberry.type(
    name="NetRevenueRetention",
    description="Net revenue retention over the last 12 months, in one currency "
    "(docs/recurring.md#net-revenue-retention).",
)
class NetRevenueRetentionType:
    currency: str
    window_start: datetime
    window_end: datetime
    accounts: int
    subscriptions: int
    starting_arr: MoneyType
    expansion: MoneyType
    contraction: MoneyType
    churn: MoneyType
    ending_arr: MoneyType
    nrr_bp: int | None = strawberry.field(
        description="endingArr / startingArr in basis points (10000 = 100%); null without "
        "a starting ARR. "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    explanation: str

    @classmethod
    def of(cls, r: Retention) -> NetRevenueRetentionType:
        c = r.currency

        def m(v: int) -> MoneyType:
            return MoneyType.of(v, c)

        def f(v: int) -> str:
            return Money(v, c).format()

        pct = "n/a" if r.nrr_bp is None else f"{r.nrr_bp / 100:.1f}%"
        text = (
            f"Your accounts' subscriptions that were live on {r.window_start:%Y-%m-%d} brought "
            f"{f(r.starting_arr_minor)} a year then and "
            f"{f(r.ending_arr_minor)} now: {pct} net revenue retention "
            f"(+{f(r.expansion_minor)} expansion, "
            f"-{f(r.contraction_minor)} contraction, "
            f"-{f(r.churn_minor)} churn)."
        )
        return cls(
            currency=c, window_start=r.window_start, window_end=r.window_end,
            accounts=r.accounts, subscriptions=r.subscriptions,
            starting_arr=m(r.starting_arr_minor), expansion=m(r.expansion_minor),
            contraction=m(r.contraction_minor), churn=m(r.churn_minor),
            ending_arr=m(r.ending_arr_minor), nrr_bp=int_output(r.nrr_bp), explanation=text,
        )  # fmt: skip
