"""Who may do what: one table per domain, read by the services and by the schema.

Every root field restricted to roles takes its permission from a table (and the table's
operation is named after the field); a service called without GraphQL — from a CLI command
or a worker — refuses a role its table does not list, before touching anything.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLError
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import service as catalogue
from catalogue.policy import CATALOGUE
from deal_registration.attachments import ProofFile
from deal_registration.registrations import outcome, review
from deal_registration.registrations import proof as deal_proof
from deal_registration.registrations.policy import DEALS
from deal_registration.sales import claim_settings, proof, serials
from deal_registration.sales.policy import SALES
from deal_registration.storage import LocalStorage
from earnings import ledger, metrics, payouts, programs
from earnings.policy import EARNINGS
from forecasts import guardrails, submission
from forecasts.models import GuardrailScope, ShareBasis, ShareMetric
from forecasts.policy import FORECASTS
from incentives import rules as incentive_rules
from incentives.policy import RULES
from infra.clock import SystemClock
from infra.db import Database
from infra.errors import Forbidden
from leaderboards import service as contests
from leaderboards.policy import CONTESTS
from next_actions import service as next_actions
from next_actions.policy import NEXT_ACTIONS
from notifications.policy import NOTIFICATIONS
from partners import admin as partner_admin
from partners import applications as partner_applications
from partners import groups, invitations
from partners import imports as partner_imports
from partners import service as tenancy
from partners import users as user_admin
from partners.audit_log import AUDIT
from partners.group_policy import GROUPS
from partners.policy import APPLICATIONS, INVITATIONS, PARTNERS, TENANCY, USERS, Policy
from partners.roles import Principal, Role
from pilots import service as pilots
from pilots.policy import PILOTS
from schema.extensions import MaskUnexpectedErrors, _should_mask
from schema.partners.invitations import HasIdentity
from schema.permissions import IsAuthenticated, Public, ScreenOnly, ScreenOrAuthenticated
from schema.root import build_schema
from signals.policy import SIGNALS
from subscriptions.policy import SUBSCRIPTIONS
from webhooks import deliveries as webhook_deliveries
from webhooks import endpoints as webhook_endpoints
from webhooks.policy import WEBHOOKS
from webhooks.targets import TargetPolicy

TABLES: list[Policy[Any]] = [
    TENANCY, CATALOGUE, DEALS, SALES, EARNINGS, CONTESTS, GROUPS, AUDIT, USERS, INVITATIONS,
    PARTNERS, APPLICATIONS, NOTIFICATIONS, FORECASTS, SUBSCRIPTIONS, WEBHOOKS,
    RULES, SIGNALS, PILOTS, NEXT_ACTIONS,
]  # fmt: skip


def _root_fields() -> list[tuple[str, Any]]:
    schema = build_schema()
    found = []
    for root in (schema.query, schema.mutation, schema.subscription):
        definition = schema.get_type_by_name(root.__name__)  # type: ignore[union-attr]
        assert definition is not None
        for field in definition.fields:  # type: ignore[union-attr]
            found.append((schema.config.name_converter.get_graphql_name(field), field))
    return found


def test_every_role_restricted_root_field_reads_a_policy_table() -> None:
    operations = {op.value: (table, op) for table in TABLES for op in table.table}
    seen = set()
    for name, field in _root_fields():
        classes = field.permission_classes
        assert classes, f"{name} has no permission class"
        for permission in classes:
            # Not a role: who authenticated (a user, an API key, a display key).
            if permission in (
                IsAuthenticated,
                HasIdentity,
                Public,
                ScreenOrAuthenticated,
                ScreenOnly,
            ):
                continue
            table, op = operations[name]  # the table names its operations after the fields
            assert (permission.policy, permission.operation) == (table, op), name
            seen.add(name)
    assert seen == set(operations), "every table row guards a field"


def _principal(role: Role) -> Principal:
    partner = uuid.uuid4() if role.is_partner else None
    return Principal(vendor_id=uuid.uuid4(), role=role, user_id=uuid.uuid4(), partner_id=partner)


CLOCK = SystemClock()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
Call = Callable[[AsyncSession, Principal], Awaitable[object]]
# One refused call per domain (and the disagreement found: FINANCE attaching sale proof).
REFUSED: list[tuple[str, Role, Call]] = [
    ("api key", Role.FINANCE, lambda s, p: tenancy.create_api_key(
        s, p, CLOCK, name="k", role=Role.FINANCE)),
    ("user role", Role.CHANNEL_MANAGER, lambda s, p: user_admin.change_role(
        s, p, CLOCK, user_id=uuid.uuid4(), role=Role.FINANCE)),
    ("user deactivate", Role.PARTNER_REP, lambda s, p: user_admin.deactivate(
        s, p, CLOCK, user_id=uuid.uuid4())),
    ("product", Role.CHANNEL_MANAGER, lambda s, p: catalogue.upsert_product(
        s, p, CLOCK, sku="X", name="X", list_price_minor=1, currency="USD")),
    ("deal approve", Role.FINANCE, lambda s, p: review.approve(
        s, p, CLOCK, registration_id=uuid.uuid4())),
    ("deal withdraw", Role.VENDOR_ADMIN, lambda s, p: outcome.withdraw(
        s, p, CLOCK, registration_id=uuid.uuid4())),
    ("deal proof", Role.FINANCE, lambda s, p: deal_proof.attach_proof(
        s, p, CLOCK, LocalStorage(Path("unused")), registration_id=uuid.uuid4(),
        proof_files=[ProofFile("a.pdf", b"%PDF-")])),
    ("sale proof", Role.FINANCE, lambda s, p: proof.attach_proof(
        s, p, CLOCK, LocalStorage(Path("unused")), claim_id=uuid.uuid4(),
        proof_files=[ProofFile("a.pdf", b"%PDF-")])),
    ("sales settings", Role.CHANNEL_MANAGER, lambda s, p: claim_settings.update_settings(
        s, p, CLOCK, claim_window_days=30)),
    ("serials import", Role.FINANCE, lambda s, p: serials.import_serials(
        s, p, CLOCK, source=io.BytesIO(b""))),
    ("adjustment", Role.PARTNER_ADMIN, lambda s, p: ledger.adjust(
        s, p, CLOCK, partner_id=uuid.uuid4(), amount_minor=1, currency="USD", note="n",
        idempotency_key="k")),
    ("program", Role.FINANCE, lambda s, p: programs.create_program(
        s, p, CLOCK, name="p", currency="USD", rules=programs.Rules())),
    ("payout approve", Role.VENDOR_ADMIN, lambda s, p: payouts.approve(
        s, p, CLOCK, statement_id=uuid.uuid4())),
    ("metrics", Role.PARTNER_ADMIN, lambda s, p: metrics.vendor_metrics(
        s, p, start=NOW, end=NOW, currency="USD")),
    ("incentive rule", Role.CHANNEL_MANAGER, lambda s, p: incentive_rules.create_rule(
        s, p, CLOCK, name="r", condition="revenue_7d > 0", actions=[])),
    ("rule approval", Role.FINANCE, lambda s, p: incentive_rules.approve(
        s, p, CLOCK, version_id=uuid.uuid4(), reason="r")),
    ("partner group", Role.CHANNEL_MANAGER, lambda s, p: groups.create_group(
        s, p, CLOCK, name="g")),
    ("program tier", Role.FINANCE, lambda s, p: groups.set_program_tier(
        s, p, CLOCK, partner_id=uuid.uuid4(), tier="X", reason="r")),
    ("contest", Role.CHANNEL_MANAGER, lambda s, p: contests.cancel_contest(
        s, p, CLOCK, contest_id=uuid.uuid4())),
    ("partner suspend", Role.CHANNEL_MANAGER, lambda s, p: partner_admin.suspend_partner(
        s, p, CLOCK, partner_id=uuid.uuid4(), reason="r")),
    ("partner update", Role.FINANCE, lambda s, p: partner_admin.update_partner(
        s, p, CLOCK, partner_id=uuid.uuid4(), fields=partner_admin.PartnerFields(tags=["a"]))),
    ("partners import", Role.CHANNEL_MANAGER, lambda s, p: partner_imports.import_partners(
        s, p, CLOCK, source=io.BytesIO(b""))),
    ("application reject", Role.FINANCE, lambda s, p: partner_applications.reject(
        s, p, CLOCK, application_id=uuid.uuid4(), reason="r")),
    ("manager assign", Role.CHANNEL_MANAGER, lambda s, p: partner_admin.assign_manager(
        s, p, CLOCK, partner_id=uuid.uuid4(), manager_id=uuid.uuid4())),
    ("invitation", Role.PARTNER_REP, lambda s, p: invitations.create_invitation(
        s, p, CLOCK, email="x@example.com", role=Role.PARTNER_REP)),
    ("forecast", Role.VENDOR_ADMIN, lambda s, p: submission.submit(
        s, p, CLOCK, quarter="2099-Q1", currency="USD", lines=[])),
    ("concentration threshold", Role.FINANCE, lambda s, p: guardrails.set_threshold(
        s, p, CLOCK, metric=ShareMetric.TOP_PARTNER_SHARE, basis=ShareBasis.REVENUE,
        scope=GuardrailScope.OVERALL, max_share_bp=5000, currency="USD")),
    ("webhook endpoint", Role.FINANCE, lambda s, p: webhook_endpoints.create_endpoint(
        s, p, CLOCK, policy=TargetPolicy(), url="https://example.com/h",
        event_types=["partner.enrolled"])),
    ("webhook replay", Role.CHANNEL_MANAGER, lambda s, p: webhook_deliveries.replay(
        s, p, CLOCK, endpoint_id=uuid.uuid4(), event_id=uuid.uuid4())),
    ("pilot", Role.CHANNEL_MANAGER, lambda s, p: pilots.create_pilot(
        s, p, CLOCK, name="p", group_id=uuid.uuid4(), ends_at=NOW)),
    ("next actions", Role.FINANCE, lambda s, p: next_actions.viewpoint(
        s, p, CLOCK, partner_id=uuid.uuid4(), signals=None, leaderboards=None)),  # type: ignore[arg-type]
]  # fmt: skip


@pytest.mark.parametrize(("what", "role", "call"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_service_refuses_a_role_its_table_does_not_list(
    db: Database, what: str, role: Role, call: Call
) -> None:
    async with db.session() as session:
        with pytest.raises(Forbidden):
            await call(session, _principal(role))
        assert not session.new
        assert not session.dirty


def test_a_forbidden_escaping_a_service_is_answered_forbidden() -> None:
    escaped = GraphQLError("boom", original_error=Forbidden(next(iter(SALES.table))))
    assert _should_mask(escaped)
    answered = MaskUnexpectedErrors().anonymise_error(escaped)
    assert answered.extensions == {"code": "FORBIDDEN"}
