"""The GraphQL schema, composed from each domain's Query, Mutation and Subscription parts."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import strawberry
from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionResult, PreExecutionError

from schema.catalogue.mutations import CatalogueMutation
from schema.catalogue.queries import CatalogueQuery
from schema.catalogue.types import ProductType
from schema.deal_registration.registrations.mutations import DealRegistrationMutation
from schema.deal_registration.registrations.queries import DealRegistrationQuery
from schema.deal_registration.registrations.subscriptions import DealRegistrationSubscription
from schema.deal_registration.registrations.types import DealRegistrationType
from schema.deal_registration.sales.mutations import SalesMutation
from schema.deal_registration.sales.queries import SalesQuery
from schema.deal_registration.sales.subscriptions import SalesSubscription
from schema.deal_registration.sales.types import SaleClaimType
from schema.document_limits import DocumentGate, DocumentLimits
from schema.earnings.mutations import EarningsMutation
from schema.earnings.queries import EarningsQuery
from schema.earnings.subscriptions import EarningsSubscription
from schema.earnings.types import EarningEntryType, PayoutStatementType, ProgramType
from schema.execution import executor_for
from schema.extensions import build_extensions
from schema.forecasts.mutations import ForecastsMutation
from schema.forecasts.queries import ForecastsQuery
from schema.forecasts.types import (
    ConcentrationAlertType,
    ConcentrationThresholdType,
    ForecastAccuracyType,
    PartnerForecastType,
)
from schema.incentives.mutations import IncentivesMutation
from schema.incentives.queries import IncentivesQuery
from schema.incentives.types import IncentiveRuleType, RuleFiringType
from schema.instants import INSTANT_SCALARS
from schema.leaderboards.live import FastPath as LeaderboardFastPath
from schema.leaderboards.mutations import LeaderboardsMutation
from schema.leaderboards.queries import LeaderboardsQuery
from schema.leaderboards.screens import DisplayKeyType, ScreensMutation, ScreensQuery
from schema.leaderboards.subscriptions import LeaderboardsSubscription
from schema.leaderboards.types import LEADERBOARD_SCALARS, ContestType
from schema.money import SCALARS
from schema.naming import RememberedNames
from schema.next_actions.queries import NextActionsQuery, NextActionsSubscription
from schema.notifications.mutations import NotificationsMutation
from schema.notifications.queries import NotificationsQuery
from schema.notifications.subscriptions import NotificationsSubscription
from schema.notifications.types import NotificationType
from schema.operations.queries import OperationsQuery
from schema.partners.admin import PartnerAdminMutation
from schema.partners.applications import (
    ApplicationsMutation,
    ApplicationsQuery,
    PartnerApplicationType,
)
from schema.partners.audit_log import AuditEntryType, AuditLogQuery
from schema.partners.groups import PartnerGroupsMutation, PartnerGroupsQuery
from schema.partners.invitations import InvitationsMutation, InvitationsQuery, InvitationType
from schema.partners.mutations import PartnersMutation
from schema.partners.queries import PartnersQuery
from schema.partners.types import ApiKeyType, PartnerGroupType, PartnerType, UserType
from schema.partners.users import UsersMutation
from schema.pilots.mutations import PilotsMutation
from schema.pilots.queries import PilotsQuery
from schema.pilots.types import PilotType
from schema.scalars import INPUT_SCALARS
from schema.signals.queries import SignalsQuery
from schema.stream_errors import locate_stream_errors
from schema.subscriptions.mutations import SubscriptionsMutation
from schema.subscriptions.queries import SubscriptionsQuery
from schema.subscriptions.types import SubscriptionType
from schema.webhooks.mutations import WebhooksMutation
from schema.webhooks.queries import WebhooksQuery
from schema.webhooks.types import WebhookDeliveryType, WebhookEndpointType

# Each domain contributes its parts here; the order is the order fields appear in the schema.
QUERIES: tuple[type, ...] = (
    PartnersQuery,
    CatalogueQuery,
    DealRegistrationQuery,
    SalesQuery,
    EarningsQuery,
    SubscriptionsQuery,
    LeaderboardsQuery,
    ScreensQuery,
    OperationsQuery,
    InvitationsQuery,
    PartnerGroupsQuery,
    AuditLogQuery,
    ApplicationsQuery,
    NotificationsQuery,
    ForecastsQuery,
    WebhooksQuery,
    PilotsQuery,
    NextActionsQuery,
    IncentivesQuery,
    SignalsQuery,
)
MUTATIONS: tuple[type, ...] = (
    PartnersMutation,
    UsersMutation,
    PartnerAdminMutation,
    ApplicationsMutation,
    CatalogueMutation,
    DealRegistrationMutation,
    SalesMutation,
    EarningsMutation,
    SubscriptionsMutation,
    LeaderboardsMutation,
    ScreensMutation,
    InvitationsMutation,
    PartnerGroupsMutation,
    NotificationsMutation,
    ForecastsMutation,
    WebhooksMutation,
    PilotsMutation,
    IncentivesMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (
    DealRegistrationSubscription,
    SalesSubscription,
    EarningsSubscription,
    LeaderboardsSubscription,
    NotificationsSubscription,
    NextActionsSubscription,
)
# Subscriptions served by a fast path on graphql-transport-ws (see schema/leaderboards/live.py):
# factories (schema, services) -> object with plan(query, variables, name) and run(...).
FAST_SUBSCRIPTIONS: tuple[type, ...] = (LeaderboardFastPath,)
# Node types reachable only through `node(id)` must be listed so the schema knows them.
NODE_TYPES: tuple[type, ...] = (
    PartnerType,
    UserType,
    ApiKeyType,
    ProductType,
    DealRegistrationType,
    SaleClaimType,
    EarningEntryType,
    PayoutStatementType,
    ProgramType,
    SubscriptionType,
    ContestType,
    DisplayKeyType,
    InvitationType,
    PartnerGroupType,
    AuditEntryType,
    PartnerApplicationType,
    NotificationType,
    PartnerForecastType,
    ForecastAccuracyType,
    ConcentrationThresholdType,
    ConcentrationAlertType,
    WebhookEndpointType,
    WebhookDeliveryType,
    PilotType,
    IncentiveRuleType,
    RuleFiringType,
)


class Schema(strawberry.Schema):
    # The document limits every path checks before validation (schema.document_limits).
    document_gate: DocumentGate

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Expected errors (auth, limits, validation) are not worth a stack trace in the log;
        unexpected ones are logged where they are masked (schema.extensions)."""

    # Over websockets, strawberry tells a `PreExecutionError` as the protocol's `error`
    # message (legacy graphql-ws: `error` too), and it made one of everything graphql-core's
    # subscribe() returned instead of a stream: the variables' coercion errors, an argument
    # refused as the field starts. The protocol's reference server (graphql-ws makeServer)
    # sends `error` only for what stops an operation before it is executed (the document,
    # its validation) and a result that execute()/subscribe() returned as `next`, then
    # `complete`. Here an operation that was parsed and validated yields its errors as a
    # result (`next` or `data`, then `complete`), whatever returned them.

    async def _prepare_operation_async(self, context: Any, extensions_runner: Any) -> Any:
        refused = await super()._prepare_operation_async(context, extensions_runner)
        if refused is None:
            setattr(context, _PREPARED, True)  # (strawberry's ExecutionContext has no slots)
        return refused

    async def _stream(self, execution_context: Any, *args: Any, **kwargs: Any) -> Any:
        results = super()._stream(execution_context, *args, **kwargs)
        async with aclosing(results):
            async for result in results:
                if type(result) is PreExecutionError and getattr(
                    execution_context, _PREPARED, False
                ):
                    yield ExecutionResult(result.data, result.errors, result.extensions)
                else:
                    yield result


_PREPARED = "channelboard_prepared"


def build_schema(
    *, limits: DocumentLimits | None = None, production: bool = False
) -> strawberry.Schema:
    gate = DocumentGate(
        limits or DocumentLimits(),
        extra_rules=(NoSchemaIntrospectionCustomRule,) if production else (),
    )
    query = merge_types("Query", QUERIES)
    mutation = merge_types("Mutation", MUTATIONS) if MUTATIONS else None
    subscription = merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None
    schema = Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=NODE_TYPES,
        extensions=build_extensions(gate=gate, production=production),
        config=StrawberryConfig(
            disable_field_suggestions=production,
            scalar_map={**INSTANT_SCALARS, **SCALARS, **LEADERBOARD_SCALARS, **INPUT_SCALARS},
            name_converter=RememberedNames(),
        ),
    )
    schema.document_gate = gate
    # Plain attribute fields completed without graphql-core's per-field resolve info
    # (schema/execution.py): read by strawberry at every execute and subscribe.
    schema.execution_context_class = executor_for(schema)
    # An error a subscription's stream raises is the field's (schema/stream_errors.py).
    locate_stream_errors(schema._schema)
    return schema
