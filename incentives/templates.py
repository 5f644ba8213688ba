"""The rule templates shipped with the product (``ruleTemplates``): the seed's examples.
A template gives a condition and actions with blanks the vendor fills in when it creates a
rule from it (the group to promote into, the program to adjust)."""

from __future__ import annotations

from dataclasses import dataclass

from incentives.actions import Action, ActionKind
from incentives.models import Period


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    condition: str
    period: Period
    actions: tuple[Action, ...]
    needs_group: bool = False
    needs_program: bool = False


TEMPLATES: tuple[Template, ...] = (
    Template(
        key="growth_promotion",
        name="Growth promotion",
        description="Weekly revenue up 20 % or more on the week before: the partner joins "
        "a promotion group for 30 days (programs targeting the group pay their uplift).",
        condition="revenue_growth_wow != null && revenue_growth_wow >= 0.2",
        period=Period.MONTH,
        actions=(Action(ActionKind.GROUP_WINDOW, days=30),),
        needs_group=True,
    ),
    Template(
        key="margin_guard",
        name="Margin guard",
        description="Gross margin below the 25 % target: the program pays one point less "
        "for 30 days.",
        condition="gross_margin != null && gross_margin < 0.25",
        period=Period.MONTH,
        actions=(Action(ActionKind.RATE_OVERLAY, days=30, delta_bp=-100),),
        needs_program=True,
    ),
    Template(
        key="payout_spike_review",
        name="Payout spike review",
        description="Earnings of the last 7 days at least 3 times the weekly average of the "
        "last 30 days: hold payouts for review for 14 days and tell vendor staff.",
        condition="earnings_30d > 0 && earnings_7d * 30 >= 3 * 7 * earnings_30d",
        period=Period.WEEK,
        actions=(
            Action(
                ActionKind.PAYOUT_HOLD,
                days=14,
                partner_reason="Your recent earnings are well above your usual pace, so our "
                "finance team reviews your payouts before paying them",
            ),
            Action(ActionKind.NOTIFY_STAFF, days=14, message="Payout spike: review the payouts."),
        ),  # fmt: skip
    ),
    Template(
        key="engagement_boost",
        name="Engagement boost",
        description="Earnings of the last 7 days below half the weekly pace of the last 30 "
        "days while the partner's users stay active: recommend a boost.",
        condition="earnings_30d > 0 && earnings_7d * 30 * 2 < earnings_30d * 7 "
        "&& active_users_7d >= 2",
        period=Period.WEEK,
        actions=(
            Action(
                ActionKind.RECOMMEND,
                days=14,
                title="Boost your sales this week",
                text="Your team is active but sales have slowed: register your open deals "
                "and claim this month's sales to keep your earnings on pace.",
            ),
        ),  # fmt: skip
    ),
)

BY_KEY = {t.key: t for t in TEMPLATES}
