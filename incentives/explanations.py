"""What a partner reads about a firing that affects it, in plain language: the signals it
may see that the condition read, then what happened and until when ("Your revenue grew
24 % week over week, so you are in Boost until 4 January 2027: +2 points on every sale").
Never a vendor-only signal, never the rule's target group (a pilot's treatment), never
an action the partner does not see (staff notifications, skipped actions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from incentives.actions import PARTNER_VISIBLE, ActionKind
from infra.money import Money
from signals.definitions import DEFINITIONS, Unit, Visibility


def points(bp: int, signed: bool = True) -> str:
    """200 -> '+2 points', -100 -> '-1 point', 150 -> '+1.5 points'."""
    whole, frac = divmod(abs(bp), 100)
    number = f"{whole}.{frac:02d}".rstrip("0").rstrip(".")
    sign = ("+" if bp > 0 else "-") if signed else ""
    return f"{sign}{number} point{'' if abs(bp) == 100 else 's'}"


def day(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


def _value(name: str, value: Any, currency: str) -> str | None:
    """The partner's words for one signal value; None when it has no value."""
    definition = DEFINITIONS.get(name)
    if definition is None or value is None:
        return None
    # "Revenue, 7 days" -> "your revenue over the last 7 days was ..."
    base = definition.label.split(",")[0]
    label = base[0].lower() + base[1:]
    over = f" over the last {definition.window_days} days" if definition.window_days else ""
    match definition.unit:
        case Unit.RATIO:
            percent = f"{abs(float(value)) * 100:.0f} %"
            if name.startswith("revenue_growth_"):
                when = "week over week" if name.endswith("wow") else "month over month"
                verb = "grew" if float(value) >= 0 else "fell"
                return f"your revenue {verb} {percent} {when}"
            return f"your {label}{over} was {float(value) * 100:.0f} %"
        case Unit.MONEY:
            return f"your {label}{over} was {Money(int(value), currency).format()}"
        case Unit.DAYS:
            return f"your {label} was {int(value)} days"
        case Unit.BOOL:
            return f"your {label}: {'yes' if value else 'no'}"
        case _:
            return f"your {label}{over} came to {value}"


def _action(outcome: Mapping[str, Any]) -> str | None:
    kind = ActionKind(outcome["kind"])
    if kind not in PARTNER_VISIBLE or outcome.get("skipped"):
        return None
    until = day(datetime.fromisoformat(outcome["until"]))
    match kind:
        case ActionKind.GROUP_WINDOW:
            pays = [
                f"{points(p['rate_bp'])} on every sale ({p['name']})"
                for p in outcome.get("programs", [])
            ]
            return f"you are in {outcome['group_name']} until {until}" + (
                ": " + ", ".join(pays) if pays else ""
            )
        case ActionKind.RATE_OVERLAY:
            return (
                f"{outcome['program_name']} pays {points(int(outcome['delta_bp']))} on every "
                f"sale until {until}"
            )
        case ActionKind.PAYOUT_HOLD:
            reason = str(outcome.get("partner_reason", "")).rstrip(".")
            return f"your payouts are held for review until {until}: {reason}"
        case ActionKind.RECOMMEND:
            return f"we recommend: {outcome['title']}"
    return None  # pragma: no cover


def explain(
    values: Mapping[str, Any], outcomes: Sequence[Mapping[str, Any]], currency: str
) -> str | None:
    """The partner's explanation of a firing, or None when nothing of it is visible."""
    actions = [a for a in (_action(o) for o in outcomes) if a]
    if not actions:
        return None
    seen = [
        v
        for name in sorted(values)
        if (d := DEFINITIONS.get(name)) is not None and d.visibility is Visibility.PARTNER
        if (v := _value(name, values[name], currency)) is not None
    ]
    what = "; ".join(actions)
    if seen:
        text = " and ".join(seen) + ", so " + what + "."
    else:
        text = "A program rule applies to you: " + what + "."
    return text[0].upper() + text[1:]


def parts(
    values: Mapping[str, Any], outcomes: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """What ``explain`` says, as data a notification renders in the reader's language: the
    partner-visible signal values read (name, unit, window, value) and the visible actions
    (kind, until, and what each names). None when nothing of the firing is visible."""
    shown = [o for o in outcomes if _action(o) is not None]
    if not shown:
        return None
    signals = [
        {"name": name, "unit": d.unit.value, "window_days": d.window_days, "value": values[name]}
        for name in sorted(values)
        if (d := DEFINITIONS.get(name)) is not None and d.visibility is Visibility.PARTNER
        if values[name] is not None
    ]
    keep = ("kind", "until", "group_name", "programs", "program_name", "delta_bp",
            "partner_reason", "title")  # fmt: skip
    actions = [{k: o[k] for k in keep if k in o} for o in shown]
    return {"signals": signals, "actions": actions}
