"""Program rule inputs. Amounts are decimal strings in the program's currency."""

from __future__ import annotations

from datetime import datetime

import strawberry

from earnings.errors import EarningsErrorCode
from earnings.models import ProgramKind
from earnings.programs import BaseRate, Recurring, Rules, Spiff, Tier
from infra.errors import DomainError, DomainErrors
from infra.money import parse_decimal
from schema.earnings import types  # noqa: F401 - registers the GraphQL enums first
from schema.money import MoneyInput


@strawberry.input(name="EarningBaseRateInput", description="Give rateBp or perUnit.")
class BaseRateInput:
    rate_bp: int | None = strawberry.field(default=None, description="800 = 8% of the amount.")
    per_unit: str | None = strawberry.field(default=None, description="Amount per unit sold.")
    sku: str | None = strawberry.field(default=None, description="Only this SKU.")
    category: str | None = strawberry.field(default=None, description="Only this category.")


@strawberry.input(name="EarningTierInput")
class TierInput:
    name: str
    threshold: str = strawberry.field(description="Trailing qualified revenue that reaches it.")
    uplift_bp: int = strawberry.field(description="Added to the rate, e.g. 200 = +2%.")
    min_approved_share_bp: int | None = strawberry.field(
        default=None, description="Gate: minimum share of the partner's claims approved."
    )
    max_refund_rate_bp: int | None = strawberry.field(
        default=None, description="Gate: maximum share of revenue refunded in the window."
    )


@strawberry.input(name="EarningSpiffInput")
class SpiffInput:
    sku: str
    per_unit: str
    starts_at: datetime
    ends_at: datetime
    region: str = strawberry.field(default="", description="Empty for every region.")


@strawberry.input(name="EarningProgramRecurringInput")
class RecurringInput:
    renewal_rate_bp: int = strawberry.field(
        default=0, description="Paid on each renewed term's amount (1000 = 10%)."
    )
    renewal_schedule_bp: list[int] = strawberry.field(
        default_factory=list,
        description="A declining schedule: renewal n pays entry n (the last entry after).",
    )
    max_renewals: int | None = strawberry.field(
        default=None, description="Pay no renewal after this many."
    )
    max_months: int | None = strawberry.field(
        default=None, description="Pay no renewal whose term starts this many months in."
    )
    multi_year_escalator_bp: int = strawberry.field(
        default=0, description="Added per year beyond the first of a multi-year term."
    )
    expansion_bonus_bp: int = strawberry.field(
        default=0, description="Of an expansion's net increase above the previous peak."
    )
    retention_months: int | None = None
    retention_bonus: str = strawberry.field(
        default="0", description="Paid once the account is still active after retentionMonths."
    )
    clawback_days: int = strawberry.field(
        default=0,
        description="A cancellation within this many days of the term's start "
        "takes back that term's recurring earnings (0: never).",
    )


@strawberry.input(name="EarningProgramRulesInput")
class ProgramRulesInput:
    base_rates: list[BaseRateInput]
    window_days: int = 30
    tiers: list[TierInput] = strawberry.field(default_factory=list)
    spiffs: list[SpiffInput] = strawberry.field(default_factory=list)
    deal_bonus_bp: int = 0
    deal_bonus: str = strawberry.field(default="0", description="Flat bonus per won deal.")
    clawback: bool = strawberry.field(default=True, description="Take back reversed sales.")
    recurring: RecurringInput | None = strawberry.field(
        default=None, description="What the program pays on subscriptions (docs/recurring.md)."
    )

    def to_rules(self, currency: str) -> Rules:
        """Raises DomainErrors for amounts that are not decimals in the currency."""
        errors: list[DomainError] = []

        def amount(text: str, field: str) -> int:
            try:
                return parse_decimal(text, currency)
            except ValueError as exc:
                errors.append(
                    DomainError(
                        EarningsErrorCode.INVALID_AMOUNT,
                        f"Not a valid amount: {exc}.",
                        f"rules.{field}",
                    )
                )
                return 0

        rules = Rules(
            base_rates=tuple(
                BaseRate(
                    rate_bp=r.rate_bp,
                    per_unit_minor=amount(r.per_unit, f"base_rates.{i}.per_unit")
                    if r.per_unit is not None
                    else None,
                    sku=r.sku.strip().upper() if r.sku else None,
                    category=r.category.strip() if r.category else None,
                )
                for i, r in enumerate(self.base_rates)
            ),
            window_days=self.window_days,
            tiers=tuple(
                Tier(
                    name=t.name.strip(),
                    threshold_minor=amount(t.threshold, f"tiers.{i}.threshold"),
                    uplift_bp=t.uplift_bp,
                    min_approved_share_bp=t.min_approved_share_bp,
                    max_refund_rate_bp=t.max_refund_rate_bp,
                )
                for i, t in enumerate(self.tiers)
            ),
            spiffs=tuple(
                Spiff(
                    sku=s.sku.strip().upper(),
                    per_unit_minor=amount(s.per_unit, f"spiffs.{i}.per_unit"),
                    starts_at=s.starts_at,
                    ends_at=s.ends_at,
                    region=s.region.strip(),
                )
                for i, s in enumerate(self.spiffs)
            ),
            deal_bonus_bp=self.deal_bonus_bp,
            deal_bonus_minor=amount(self.deal_bonus, "deal_bonus"),
            clawback=self.clawback,
            recurring=None
            if self.recurring is None
            else Recurring(
                renewal_rate_bp=self.recurring.renewal_rate_bp,
                renewal_schedule_bp=tuple(self.recurring.renewal_schedule_bp),
                max_renewals=self.recurring.max_renewals,
                max_months=self.recurring.max_months,
                multi_year_escalator_bp=self.recurring.multi_year_escalator_bp,
                expansion_bonus_bp=self.recurring.expansion_bonus_bp,
                retention_months=self.recurring.retention_months,
                retention_bonus_minor=amount(
                    self.recurring.retention_bonus, "recurring.retention_bonus"
                ),
                clawback_days=self.recurring.clawback_days,
            ),
        )
        if errors:
            raise DomainErrors(errors)
        return rules


@strawberry.input
class EarningProgramCreateInput:
    name: str
    currency: str
    rules: ProgramRulesInput
    effective_from: datetime | None = strawberry.field(default=None, description="Now if null.")
    kind: ProgramKind = strawberry.field(
        default=ProgramKind.BASE,
        description="BASE: at most one applies to a partner (an overlapping one is refused "
        "with OVERLAPPING_BASE_PROGRAM); BONUS: paid on top of whatever else applies.",
    )
    target_group_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="The partner groups it applies to, by membership at each sale's date; "
        "empty: every partner.",
    )


@strawberry.input
class EarningProgramVersionCreateInput:
    program_id: strawberry.ID
    rules: ProgramRulesInput
    effective_from: datetime | None = strawberry.field(
        default=None,
        description="Now if null. Not before the current version, nor inside a period "
        "already approved or paid.",
    )


@strawberry.input
class PayoutStatementsGenerateInput:
    month: datetime = strawberry.field(description="Any instant in the (ended) month.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the statements the first request "
        "made, and makes nothing.",
    )


@strawberry.input
class PayoutStatementInput:
    statement_id: strawberry.ID


@strawberry.input
class PayoutMarkPaidInput:
    statement_id: strawberry.ID
    reference: str = strawberry.field(default="", description="The bank transfer reference.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the statement the first request "
        "paid (not INVALID_STATUS), and changes nothing.",
    )


@strawberry.input
class PayoutHoldInput:
    statement_id: strawberry.ID
    note: str = strawberry.field(description="Internal: partners never see it.")
    expected_release_at: datetime | None = None


@strawberry.input
class PayoutHoldReleaseInput:
    hold_id: strawberry.ID
    note: str = ""


@strawberry.input
class PayoutProfileSetInput:
    partner_id: strawberry.ID
    tax_form_on_file: bool | None = None
    bank_account: str | None = strawberry.field(
        default=None, description="IBAN or account number; only a fingerprint is stored."
    )


@strawberry.input
class PayoutPolicySetInput:
    above_average_factor_bp: int = strawberry.field(
        description="Hold a statement above this multiple of the trailing average (30000 = 3x)."
    )
    trailing_statements: int = 3
    review_days: int = 14


@strawberry.input
class EarningAdjustmentCreateInput:
    partner_id: strawberry.ID
    amount: MoneyInput = strawberry.field(description="Negative to take money back.")
    note: str = strawberry.field(description="Why; shown to the partner in the entry's rule.")
    idempotency_key: str = strawberry.field(
        description="A retry with the same key returns the first entry and changes nothing."
    )


@strawberry.input(description="A period [start, end); defaults to the current month.")
class EarningsPeriodInput:
    start: datetime
    end: datetime
