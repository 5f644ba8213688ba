"""Who may do what with webhooks: vendor admins configure endpoints and replay; vendor
admins and finance read endpoints and the delivery log (its bodies carry every partner's
events, payouts included, so not channel managers, who see their assigned partners only);
partner roles nothing."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, VENDOR_ADMIN, Policy


class WebhookOp(StrEnum):
    EVENT_TYPES_READ = "webhookEventTypes"
    ENDPOINTS_READ = "webhookEndpoints"
    DELIVERIES_READ = "webhookDeliveries"
    ENDPOINT_CREATE = "webhookEndpointCreate"
    ENDPOINT_UPDATE = "webhookEndpointUpdate"
    ENDPOINT_DISABLE = "webhookEndpointDisable"
    ENDPOINT_ENABLE = "webhookEndpointEnable"
    ENDPOINT_DELETE = "webhookEndpointDelete"
    SECRET_ROTATE = "webhookEndpointSecretRotate"
    REPLAY = "webhookReplay"


WEBHOOKS = Policy[WebhookOp](
    {
        WebhookOp.EVENT_TYPES_READ: FINANCE_OR_ADMIN,
        WebhookOp.ENDPOINTS_READ: FINANCE_OR_ADMIN,
        WebhookOp.DELIVERIES_READ: FINANCE_OR_ADMIN,
        WebhookOp.ENDPOINT_CREATE: VENDOR_ADMIN,
        WebhookOp.ENDPOINT_UPDATE: VENDOR_ADMIN,
        WebhookOp.ENDPOINT_DISABLE: VENDOR_ADMIN,
        WebhookOp.ENDPOINT_ENABLE: VENDOR_ADMIN,
        WebhookOp.ENDPOINT_DELETE: VENDOR_ADMIN,
        WebhookOp.SECRET_ROTATE: VENDOR_ADMIN,
        WebhookOp.REPLAY: VENDOR_ADMIN,
    }
)
