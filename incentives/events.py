"""The events incentives records in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event

RULE_FIRED = "RuleFired"
# What a rule version placed for a partner was ended (a rollback, or a new version approved):
# its recommendations leave the partner's next actions.
RULE_EFFECTS_ENDED = "RuleEffectsEnded"
# A version was made active (approved, rolled back to) or the rule resumed: evaluate it now.
RULE_ACTIVATED = "RuleActivated"


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
