from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from next_actions.actions import ActionKind, NextAction
from schema.money import MoneyType

ActionKindEnum = strawberry.enum(ActionKind, name="NextActionKind")


@strawberry.type(
    name="NextAction",
    description="Something worth doing now, with why in plain language. Ranked: see "
    "docs/signals.md (Next best actions).",
)
class NextActionType:
    key: str = strawberry.field(description="Stable while it is the same action.")
    kind: ActionKind
    title: str
    why: str
    due_at: datetime | None = strawberry.field(description="When acting stops helping.")
    amount: MoneyType | None = strawberry.field(description="Money at stake, if any.")
    link: str | None = strawberry.field(description="The app path to open.")
    code: str | None = strawberry.field(description="A code or number to quote or enter.")
    subject_id: strawberry.ID | None = strawberry.field(
        description="The global id of the record it is about (a claim, deal, statement, "
        "contest), when there is one."
    )

    @classmethod
    def of(cls, action: NextAction) -> NextActionType:
        amount = (
            MoneyType.of(action.amount_minor, action.currency)
            if action.amount_minor is not None and action.currency
            else None
        )
        subject = (
            strawberry.ID(relay.to_base64(action.subject_type, str(action.subject_id)))
            if action.subject_type and action.subject_id
            else None
        )
        return cls(
            key=action.key, kind=action.kind, title=action.title, why=action.why,
            due_at=action.due_at, amount=amount, link=action.link, code=action.code,
            subject_id=subject,
        )  # fmt: skip


@strawberry.type(name="NextActions")
class NextActionsType:
    actions: list[NextActionType]
