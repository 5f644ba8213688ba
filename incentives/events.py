"""The events incentives records in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event, uuid_or_none

RULE_FIRED = "RuleFired"
# What a rule version placed for a partner was ended (a rollback, or a new version approved):
# its recommendations leave the partner's next actions.
RULE_EFFECTS_ENDED = "RuleEffectsEnded"
# A version was made active (approved, rolled back to) or the rule resumed: evaluate it now.
RULE_ACTIVATED = "RuleActivated"
# A loosening of a rule's budget was asked for, or decided (approved, cancelled): the
# vendor's other admins are told (notifications).
RULE_BUDGET_CHANGE_REQUESTED = "RuleBudgetChangeRequested"
RULE_BUDGET_CHANGE_DECIDED = "RuleBudgetChangeDecided"


@dataclass(frozen=True)
class RuleFired(Event):
    """A rule fired for a partner. ``notify_staff`` is set when one of its actions is
    "notify vendor staff" (notifications tell them); webhooks may forward every firing.
    ``actions`` are the action kinds applied (those skipped, e.g. over budget, are not);
    ``estimated_cost_minor`` the estimated incentive cost over their windows."""

    type: ClassVar[str] = RULE_FIRED
    firing_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    version_id: uuid.UUID
    version_number: int
    partner_id: uuid.UUID
    actions: list[str]
    estimated_cost_minor: int
    currency: str
    notify_staff: bool
    message: str
    fired_at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            firing_id=uuid.UUID(payload["firing_id"]),
            rule_id=uuid.UUID(payload["rule_id"]),
            rule_name=str(payload["rule_name"]),
            version_id=uuid.UUID(payload["version_id"]),
            version_number=int(payload["version_number"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            actions=[str(a) for a in payload["actions"]],
            estimated_cost_minor=int(payload["estimated_cost_minor"]),
            currency=str(payload["currency"]),
            notify_staff=bool(payload["notify_staff"]),
            message=str(payload.get("message", "")),
            fired_at=datetime.fromisoformat(payload["fired_at"]),
        )


@dataclass(frozen=True)
class RuleActivated(Event):
    """A rule became active with ``version_id`` in its ``activation`` (an approval, a
    rollback, a resume): the handler evaluates it at once for the vendor's partners, unless
    the rule has changed again since (that change has an event of its own)."""

    type: ClassVar[str] = RULE_ACTIVATED
    rule_id: uuid.UUID
    version_id: uuid.UUID
    version_number: int
    activation: int

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            rule_id=uuid.UUID(payload["rule_id"]),
            version_id=uuid.UUID(payload["version_id"]),
            version_number=int(payload["version_number"]),
            activation=int(payload["activation"]),
        )


def _minor(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class BudgetChangeRequested(Event):
    """A vendor admin asked to loosen a rule's budget (``rules.set_budget``): a pending
    change from ``from_*`` to ``to_*`` (a cap None: no cap) that a second vendor admin
    approves. ``superseded_id``: the pending change it replaced, if any."""

    type: ClassVar[str] = RULE_BUDGET_CHANGE_REQUESTED
    change_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    from_cap_minor: int | None
    from_currency: str
    to_cap_minor: int | None
    to_currency: str
    reason: str
    requested_by_id: uuid.UUID
    requested_at: datetime
    superseded_id: uuid.UUID | None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            change_id=uuid.UUID(payload["change_id"]),
            rule_id=uuid.UUID(payload["rule_id"]),
            rule_name=str(payload["rule_name"]),
            from_cap_minor=_minor(payload["from_cap_minor"]),
            from_currency=str(payload["from_currency"]),
            to_cap_minor=_minor(payload["to_cap_minor"]),
            to_currency=str(payload["to_currency"]),
            reason=str(payload["reason"]),
            requested_by_id=uuid.UUID(payload["requested_by_id"]),
            requested_at=datetime.fromisoformat(payload["requested_at"]),
            superseded_id=uuid_or_none(payload.get("superseded_id")),
        )


@dataclass(frozen=True)
class BudgetChangeDecided(Event):
    """A pending budget change was approved (``status`` APPLIED: the rule's budget is now
    ``to_*``), cancelled (CANCELLED: it stays ``from_*``) or replaced by a budget applied
    at once, a tightening (SUPERSEDED: the rule's budget is now ``now_*``), by
    ``decided_by_id`` (None: an API key with no known maker), with ``decision_reason``
    (a tightening's reason is optional: may be empty). ``now_*``: the rule's budget after
    the decision (empty ``now_currency``: an event recorded before it was kept). A change
    replaced by a later loosening request has no event of its own (the request tells
    of it)."""

    type: ClassVar[str] = RULE_BUDGET_CHANGE_DECIDED
    change_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    status: str
    from_cap_minor: int | None
    from_currency: str
    to_cap_minor: int | None
    to_currency: str
    requested_by_id: uuid.UUID | None
    decided_by_id: uuid.UUID | None
    decision_reason: str
    decided_at: datetime
    now_cap_minor: int | None = None
    now_currency: str = ""

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            change_id=uuid.UUID(payload["change_id"]),
            rule_id=uuid.UUID(payload["rule_id"]),
            rule_name=str(payload["rule_name"]),
            status=str(payload["status"]),
            from_cap_minor=_minor(payload["from_cap_minor"]),
            from_currency=str(payload["from_currency"]),
            to_cap_minor=_minor(payload["to_cap_minor"]),
            to_currency=str(payload["to_currency"]),
            requested_by_id=uuid_or_none(payload.get("requested_by_id")),
            decided_by_id=uuid_or_none(payload.get("decided_by_id")),
            decision_reason=str(payload["decision_reason"]),
            decided_at=datetime.fromisoformat(payload["decided_at"]),
            now_cap_minor=_minor(payload.get("now_cap_minor")),
            now_currency=str(payload.get("now_currency", "")),
        )
