"""Every table the migrations manage: import each domain's models here."""

from sqlalchemy import MetaData

import catalogue.models
import deal_registration.attachments
import deal_registration.registrations.models
import deal_registration.sales.models
import earnings.models
import forecasts.models
import incentives.models
import infra.audit
import infra.idempotency
import infra.outbox
import leaderboards.models
import notifications.models
import partners.group_models
import partners.models
import pilots.models
import signals.models
import subscriptions.models
import webhooks.models
from infra.db import metadata

MODEL_MODULES = (
    partners.models,
    partners.group_models,
    infra.outbox,
    infra.idempotency,
    catalogue.models,
    deal_registration.registrations.models,
    deal_registration.sales.models,
    earnings.models,
    forecasts.models,
    leaderboards.models,
    deal_registration.attachments,
    infra.audit,
    notifications.models,
    subscriptions.models,
    webhooks.models,
    pilots.models,
    signals.models,
    incentives.models,
)


def target_metadata() -> MetaData:
    return metadata
