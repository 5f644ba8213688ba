from __future__ import annotations

from datetime import date
from typing import Self

import strawberry

from schema.money import MoneyType
from signals.definitions import SignalDefinition, Unit, Visibility
from signals.reads import SignalDay
from signals.snapshots import Value

strawberry.enum(
    Unit,
    name="SignalUnit",
    description="MONEY: minor units of the vendor's signal currency; RATIO: a fraction "
    "(0.25 is 25 %); COUNT; DAYS; BOOL.",
)
strawberry.enum(
    Visibility,
    name="SignalVisibility",
    description="PARTNER: the partner's users and vendor staff; VENDOR_ONLY: vendor staff.",
)


@strawberry.type(name="SignalDefinition", description="What a signal means, in plain words.")
class SignalDefinitionType:
    name: str = strawberry.field(description="The identifier rule expressions use.")
    label: str
    description: str
    unit: Unit
    visibility: Visibility
    window_days: int | None = strawberry.field(
        description="The trailing window in days; null for all history or a current state."
    )
    per_rep: bool = strawberry.field(
        description="Also kept per rep (repSignals): the same formula over the sales, claims "
        "and deals that name the rep."
    )

    @classmethod
    def of(cls, d: SignalDefinition) -> Self:
        return cls(
            name=d.name,
            label=d.label,
            description=d.description,
            unit=d.unit,
            visibility=d.visibility,
            window_days=d.window_days,
            per_rep=d.per_rep,
        )


@strawberry.type(
    name="SignalValue",
    description="One signal's value on a day: in 'money' (MONEY), 'flag' (BOOL) or "
    "'number' (the other units); all null where the signal is undefined that day (a growth "
    "on a zero base, a margin without revenue).",
)
class SignalValueType:
    name: str
    unit: Unit
    number: float | None = None
    money: MoneyType | None = None
    flag: bool | None = None

    @classmethod
    def of(cls, d: SignalDefinition, value: Value, currency: str) -> Self:
        out = cls(name=d.name, unit=d.unit)
        if value is None:
            return out
        if d.unit is Unit.BOOL:
            out.flag = bool(value)
        elif d.unit is Unit.MONEY:
            out.money = MoneyType.of(int(value), currency)
        else:
            out.number = float(value)
        return out


@strawberry.type(
    name="SignalDay", description="A partner's (or a rep's) signals as of the end of a day."
)
class SignalDayType:
    day: date = strawberry.field(description="The UTC day; today's values are so far.")
    currency: str = strawberry.field(description="The currency of the money signals.")
    values: list[SignalValueType]

    @classmethod
    def of(cls, d: SignalDay) -> Self:
        return cls(
            day=d.day,
            currency=d.currency,
            values=[SignalValueType.of(defn, v, d.currency) for defn, v in d.values],
        )
