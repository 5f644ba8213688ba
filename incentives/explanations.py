"""What a partner reads about a firing that affects it, in plain language: the signals it
may see that the condition read, then what happened and until when ("Your revenue grew
24 % week over week, so you are in Boost until 4 January 2027: +2 points on every sale").
Never a vendor-only signal, never the rule's target group (a pilot's treatment), never
an action the partner does not see (staff notifications, skipped actions).

What a change of the rule ended early (``RuleFiringEnd``: a new version approved, a
rollback) is told in the past tense, with when it ended ("…, so you were in Boost: +2
points on every sale (Boost bonus); we recommended: Keep growing. Boost ended and the
recommendation was withdrawn on 6 December 2026 when the rule changed."): a withdrawn
recommendation never reads as current. Never which version, nor why the vendor changed it.

What ended otherwise by the time it is read is told in the past tense too, with when: a
group window closed early (the vendor archived the group) or run out ("Boost ended on 8
December 2026."), a recommendation expired ("the recommendation expired on …"), an
overlay or a payout hold run out. Money
among the signal values is in the signals' currency (the vendor's), never the rule's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from incentives.actions import PARTNER_VISIBLE, ActionKind, effect_id
from incentives.models import RuleFiringEnd
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


def count(n: int, noun: str) -> str:
    """1 -> '1 day', 2 -> '2 days'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
            return f"your {label} was {count(int(value), 'day')}"
        case Unit.BOOL:
            return f"your {label}: {'yes' if value else 'no'}"
        case _:
            return f"your {label}{over} came to {value}"


def _action(outcome: Mapping[str, Any], until_at: datetime | None = None) -> str | None:
    """What the outcome does, in the present tense, until its end (``until_at`` when a
    rule change moved it)."""
    kind = ActionKind(outcome["kind"])
    if kind not in PARTNER_VISIBLE or outcome.get("skipped"):
        return None
    until = day(until_at or datetime.fromisoformat(outcome["until"]))
    match kind:
        case ActionKind.GROUP_WINDOW:
            return f"you are in {outcome['group_name']} until {until}" + _pays(outcome)
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


def drafted_action(action: Mapping[str, Any]) -> str:
    """What one action of a version not yet approved would do for a partner it fires
    for, in the words of the partner's explanation (``_action``) but for the action's
    window rather than until a date, and about the partner rather than to it: for the
    vendor admins asked to approve it. ``action``: ``Action.to_json`` with the name of its
    group (``group_name``) or program (``program_name``)."""
    days = count(int(action.get("days", 30)), "day")
    match ActionKind(action["kind"]):
        case ActionKind.GROUP_WINDOW:
            return f"the partner is in {action.get('group_name', '')} for {days}"
        case ActionKind.RATE_OVERLAY:
            return (
                f"{action.get('program_name', '')} pays {points(int(action.get('delta_bp', 0)))}"
                f" on every sale for {days}"
            )
        case ActionKind.PAYOUT_HOLD:
            reason = str(action.get("partner_reason", "")).rstrip(".")
            return f"the partner's payouts are held for review for {days}: {reason}"
        case ActionKind.RECOMMEND:
            return f"we recommend: {action.get('title', '')} (for {days})"
        case ActionKind.NOTIFY_STAFF:
            message = str(action.get("message", ""))
            return "vendor staff are told" + (f": {message}" if message else "")
    return ""  # pragma: no cover


def _pays(outcome: Mapping[str, Any]) -> str:
    pays = [
        f"{points(p['rate_bp'])} on every sale ({p['name']})" for p in outcome.get("programs", [])
    ]
    return ": " + ", ".join(pays) if pays else ""


def _ended(outcome: Mapping[str, Any]) -> tuple[str, str]:
    """A visible outcome that ended (by a rule change, or run out): what it did, in the past
    tense, and what ended."""
    match ActionKind(outcome["kind"]):
        case ActionKind.GROUP_WINDOW:
            group = outcome["group_name"]
            return f"you were in {group}" + _pays(outcome), f"{group} ended"
        case ActionKind.RATE_OVERLAY:
            delta, program = points(int(outcome["delta_bp"])), outcome["program_name"]
            return f"{program} paid {delta} on every sale", f"the {delta} on {program} ended"
        case ActionKind.PAYOUT_HOLD:
            reason = str(outcome.get("partner_reason", "")).rstrip(".")
            return (
                f"your payouts were held for review: {reason}",
                "the review of your payouts ended",
            )
        case _:
            return f"we recommended: {outcome['title']}", "the recommendation was withdrawn"


def _stopped(
    outcome: Mapping[str, Any], now: datetime | None, window_ends: Mapping[str, datetime]
) -> datetime | None:
    """When what the outcome placed stopped by ``now`` other than by a rule change: a group
    window's membership closed (at its end, or earlier: its group archived), a
    recommendation expired, an overlay or a hold ran out. None while it runs (and always
    without ``now``)."""
    if now is None:
        return None
    match ActionKind(outcome["kind"]):
        case ActionKind.GROUP_WINDOW:
            at = window_ends.get(str(outcome.get("membership_id")))
        case ActionKind.RECOMMEND | ActionKind.RATE_OVERLAY | ActionKind.PAYOUT_HOLD:
            # (An overlay a later firing extended is that firing's to tell: this one's
            # part ended at its own end.)
            at = datetime.fromisoformat(outcome["until"])
        case _:
            return None
    return at if at is not None and at <= now else None


def _changes(
    outcome: Mapping[str, Any], ends: Sequence[RuleFiringEnd]
) -> tuple[datetime, datetime] | None:
    """When a rule change last ended or shortened what the outcome placed, and the end it
    has since; None when no change touched it."""
    effect = effect_id(outcome)
    found = None
    for end in sorted(ends, key=lambda e: e.ended_at):
        if effect is not None and effect in end.effects:
            found = (end.ended_at, datetime.fromisoformat(end.effects[effect]))
    return found


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def explain(
    values: Mapping[str, Any],
    outcomes: Sequence[Mapping[str, Any]],
    currency: str,
    ends: Sequence[RuleFiringEnd] = (),
    *,
    now: datetime | None = None,
    window_ends: Mapping[str, datetime] | None = None,
) -> str | None:
    """The partner's explanation of a firing, or None when nothing of it is visible.
    ``currency``: that of the money among ``values`` (the signals', recorded with the
    firing); ``ends``: what changes of the rule ended of it since; ``now``: when it is
    read (without it, nothing has run out); ``window_ends``: when each group window it
    opened closes, by membership id (``repository.readings``)."""
    actions: list[str] = []
    # (when, by a rule change) -> what ended then
    ended: dict[tuple[datetime, bool], list[str]] = {}
    for outcome in outcomes:
        if _action(outcome) is None:
            continue
        change = _changes(outcome, ends)
        if change is None:
            stopped = _stopped(outcome, now, window_ends or {})
            if stopped is None:
                actions.append(str(_action(outcome)))
                continue
            did, what = _ended(outcome)
            if ActionKind(outcome["kind"]) is ActionKind.RECOMMEND:
                what = "the recommendation expired"
            actions.append(did)
            ended.setdefault((stopped, False), []).append(what)
            continue
        at, until = change
        if until > at:  # only an extension was withdrawn: it runs on to its earlier end
            actions.append(str(_action(outcome, until)))
            ended.setdefault((at, True), []).append(
                f"the {points(int(outcome['delta_bp']))} on {outcome['program_name']} was "
                f"brought back to end on {day(until)}"
            )
            continue
        did, what = _ended(outcome)
        actions.append(did)
        ended.setdefault((at, True), []).append(what)
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
    for (at, by_change), changed in sorted(ended.items()):
        said = f"{_and(changed)} on {day(at)}" + (" when the rule changed." if by_change else ".")
        text += " " + said[0].upper() + said[1:]
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
