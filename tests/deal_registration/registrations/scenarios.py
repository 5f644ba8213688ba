"""Deal registration scenarios: a registration submitted (and reviewed, approved) through
the services, what a refused operation must leave as it was, and the GraphQL documents."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlmodel import col, func, select

from deal_registration.registrations import review, submission
from deal_registration.registrations.models import (
    DealConflict,
    DealExtensionRequest,
    DealRegistration,
    DealRegistrationLine,
    DealTransition,
)
from earnings.events import EARNINGS_CHANGED
from infra.clock import Clock, OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import User
from signals.events import SIGNALS_CHANGED
from tests.factories import principal_of
from tests.support import GQL


def registration_input(clock: Clock, **overrides: Any) -> submission.RegistrationInput:
    values: dict[str, Any] = {
        "customer_name": "Acme Corp.",
        "customer_domain": "acme.com",
        "customer_country": "US",
        "estimated_value_minor": 1_000_000,
        "currency": "USD",
        "expected_close_date": clock.now().date() + timedelta(days=60),
        "lines": [submission.LineInput(sku="NW-ROUTER-X1", quantity=5)],
    }
    values.update(overrides)
    return submission.RegistrationInput(**values)


async def register(
    db: Database,
    clock: Clock,
    user: User,
    *,
    draft: bool = False,
    review_as: User | None = None,
    approve_as: User | None = None,
    **overrides: Any,
) -> DealRegistration:
    """Submit a registration as ``user``; with a reviewer, take it into review (and
    approve it when ``approve_as`` is given)."""
    async with db.transaction() as session:
        registration = await submission.submit_registration(
            session, principal_of(user), clock, data=registration_input(clock, **overrides),
            draft=draft,
        )  # fmt: skip
    reviewer = review_as or approve_as
    if reviewer is not None:
        async with db.transaction() as session:
            registration = await review.start_review(
                session, principal_of(reviewer), clock, registration_id=registration.id
            )
    if approve_as is not None:
        async with db.transaction() as session:
            registration = await review.approve(
                session, principal_of(approve_as), clock, registration_id=registration.id
            )
    return registration


async def snapshot(db: Database, registration_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Everything a refused operation must leave as it was."""
    async with db.session() as session:
        counts = {}
        for model in (
            DealRegistration,
            DealRegistrationLine,
            DealTransition,
            DealConflict,
            DealExtensionRequest,
            OutboxEvent,
        ):
            counted = select(func.count()).select_from(model)
            if model is OutboxEvent:
                # Not the "earnings changed" notices the app's dispatcher records in the
                # background while it credits an earlier event (a won deal), nor the
                # "signals changed" ones it records while it keeps the signals of earlier
                # events: they are not the operation's doing, and the poll may run between
                # the two snapshots.
                counted = counted.where(
                    col(OutboxEvent.type).not_in([EARNINGS_CHANGED, SIGNALS_CHANGED])
                )
            counts[model.__name__] = await session.scalar(counted)
        row = None
        if registration_id is not None:
            found = await session.get(DealRegistration, registration_id)
            row = found.model_dump() if found else None
    return {"counts": counts, "row": row}


def future(clock: Clock, days: int = 60) -> str:
    return (clock.now().date() + timedelta(days=days)).isoformat()


def past(clock: Clock) -> date:
    return clock.now().date() - timedelta(days=1)


DEAL_FIELDS = """
  id status bigDeal protected registeredByName submittedAt reviewDueAt overdue expiresAt
  extensionsGranted
  customer { name domain country region }
  contact { name email }
  estimatedValue { amountMinor currency }
  lines { sku quantity }
  history { action fromStatus toStatus actorRole reason }
  conflictReasons
"""

SUBMIT = f"""
mutation Submit($input: DealRegistrationSubmitInput!) {{
  dealRegistrationSubmit(input: $input) {{
    dealRegistration {{ {DEAL_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""


def action_mutation(name: str, input_type: str) -> str:
    return f"""
mutation Act($input: {input_type}!) {{
  {name}(input: $input) {{
    dealRegistration {{ {DEAL_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""


START_REVIEW = action_mutation("dealRegistrationStartReview", "DealRegistrationIdInput")
APPROVE = action_mutation("dealRegistrationApprove", "DealRegistrationApproveInput")
REJECT = action_mutation("dealRegistrationReject", "DealRegistrationActionInput")
MARK_WON = action_mutation("dealRegistrationMarkWon", "DealRegistrationActionInput")
REQUEST_EXTENSION = action_mutation(
    "dealRegistrationExtensionRequest", "DealRegistrationActionInput"
)
DECIDE_EXTENSION = action_mutation(
    "dealRegistrationExtensionDecide", "DealRegistrationExtensionDecideInput"
)

DEALS = f"""
query Deals($filter: DealRegistrationFilter, $first: Int) {{
  deals(filter: $filter, first: $first) {{ totalCount edges {{ node {{ {DEAL_FIELDS} }} }} }}
}}"""

DEAL = """
query Deal($id: ID!) { deal(id: $id) { id status customer { name } } }
"""


def submit_input(clock: Clock, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "customer": {"name": "Acme Corp.", "domain": "shop.acme.com", "country": "US"},
        "estimatedValue": {"amount": "10000.00", "currency": "USD"},
        "expectedCloseDate": future(clock),
        "lines": [{"sku": "NW-ROUTER-X1", "quantity": 5}],
    }
    values.update(overrides)
    return values


async def submit(gql: GQL, user: User, clock: OffsetClock, **overrides: Any) -> str:
    data = await gql.data(SUBMIT, {"input": submit_input(clock, **overrides)}, as_user=user)
    result = data["dealRegistrationSubmit"]
    assert result["userErrors"] == []
    registration_id: str = result["dealRegistration"]["id"]
    return registration_id
