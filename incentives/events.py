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
# A draft version was written (it waits for a second vendor admin's approval), or decided
# (approved: now the rule's active version; discarded: replaced by a newer draft): the
# vendor's other admins are told (notifications).
RULE_VERSION_DRAFTED = "RuleVersionDrafted"
RULE_VERSION_DECIDED = "RuleVersionDecided"


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


@dataclass(frozen=True)
class VersionDrafted(Event):
    """A vendor admin (``author_id``) drafted version ``version_number`` of a rule (a new
    rule's first, or a new version, ``rules.create_rule``/``draft_version``): it waits for
    a second vendor admin's approval. ``condition`` is its CEL source, ``period`` how often
    it may fire per partner; ``actions`` its actions as ``Action.to_json`` has them, each
    with the name of its group (``group_name``) or program (``program_name``) as they were
    then. ``replaced_number``: the draft it discarded, if any."""

    type: ClassVar[str] = RULE_VERSION_DRAFTED
    version_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    version_number: int
    condition: str
    period: str
    actions: list[dict[str, Any]]
    author_id: uuid.UUID
    drafted_at: datetime
    replaced_number: int | None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        replaced = payload.get("replaced_number")
        return cls(
            version_id=uuid.UUID(payload["version_id"]),
            rule_id=uuid.UUID(payload["rule_id"]),
            rule_name=str(payload["rule_name"]),
            version_number=int(payload["version_number"]),
            condition=str(payload["condition"]),
            period=str(payload["period"]),
            actions=[dict(a) for a in payload["actions"]],
            author_id=uuid.UUID(payload["author_id"]),
            drafted_at=datetime.fromisoformat(payload["drafted_at"]),
            replaced_number=None if replaced is None else int(replaced),
        )


@dataclass(frozen=True)
class VersionDecided(Event):
    """A draft version was decided by ``decided_by_id``: approved (``status`` APPROVED,
    with the approval's ``reason``; ``paused``: the rule stays paused) or discarded
    (DISCARDED: ``decided_by_id`` drafted version ``replaced_by_number`` in its place)."""

    type: ClassVar[str] = RULE_VERSION_DECIDED
    version_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    version_number: int
    status: str
    author_id: uuid.UUID | None
    decided_by_id: uuid.UUID | None
    reason: str
    decided_at: datetime
    replaced_by_number: int | None
    paused: bool

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        replaced_by = payload.get("replaced_by_number")
        return cls(
            version_id=uuid.UUID(payload["version_id"]),
            rule_id=uuid.UUID(payload["rule_id"]),
            rule_name=str(payload["rule_name"]),
            version_number=int(payload["version_number"]),
            status=str(payload["status"]),
            author_id=uuid_or_none(payload.get("author_id")),
            decided_by_id=uuid_or_none(payload.get("decided_by_id")),
            reason=str(payload.get("reason", "")),
            decided_at=datetime.fromisoformat(payload["decided_at"]),
            replaced_by_number=None if replaced_by is None else int(replaced_by),
            paused=bool(payload.get("paused", False)),
        )
