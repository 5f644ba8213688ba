"""Who may do what with forecasts, pipeline figures, scorecards, concentration guardrails
and exports. Row level: ``partners.access.scope`` (a partner admin its own partner, a
channel manager its assigned partners, vendor admins and finance every partner); partner
reps read none of these organisation-level figures."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, VENDOR_ADMIN, VENDOR_STAFF, Policy
from partners.roles import Role

PARTNER_ADMIN = frozenset({Role.PARTNER_ADMIN})
PARTNER_ADMIN_OR_STAFF = PARTNER_ADMIN | VENDOR_STAFF


class ForecastOp(StrEnum):
    SUBMIT = "forecastSubmit"
    DRAFT = "forecastDraft"
    READ = "forecasts"
    ROLLUP = "forecastRollup"
    ACCURACY = "forecastAccuracy"
    VELOCITY = "pipelineVelocity"
    SCORECARD = "partnerScorecard"
    THRESHOLD_SET = "concentrationThresholdSet"
    THRESHOLD_REMOVE = "concentrationThresholdRemove"
    THRESHOLDS_READ = "concentrationThresholds"
    ALERTS_READ = "concentrationAlerts"


FORECASTS = Policy[ForecastOp](
    {
        ForecastOp.SUBMIT: PARTNER_ADMIN,
        ForecastOp.DRAFT: PARTNER_ADMIN,
        ForecastOp.READ: PARTNER_ADMIN_OR_STAFF,
        ForecastOp.ROLLUP: VENDOR_STAFF,
        ForecastOp.ACCURACY: PARTNER_ADMIN_OR_STAFF,
        ForecastOp.VELOCITY: PARTNER_ADMIN_OR_STAFF,
        ForecastOp.SCORECARD: PARTNER_ADMIN_OR_STAFF,
        ForecastOp.THRESHOLD_SET: VENDOR_ADMIN,
        ForecastOp.THRESHOLD_REMOVE: VENDOR_ADMIN,
        ForecastOp.THRESHOLDS_READ: VENDOR_STAFF,
        ForecastOp.ALERTS_READ: VENDOR_STAFF,
    }
)


class ExportOp(StrEnum):
    """The CSV exports (HTTP ``GET /exports/{kind}.csv`` and ``channelboard exports``),
    named after their kind. Rows follow each kind's readable statement."""

    COMMISSIONS = "commissions"
    PAYOUTS = "payouts"
    FORECASTS = "forecasts"
    AUDIT = "audit"
    SUBSCRIPTIONS = "subscriptions"


EXPORTS = Policy[ExportOp](
    {
        ExportOp.COMMISSIONS: FINANCE_OR_ADMIN | PARTNER_ADMIN,
        ExportOp.PAYOUTS: FINANCE_OR_ADMIN | PARTNER_ADMIN,
        ExportOp.FORECASTS: PARTNER_ADMIN_OR_STAFF,
        ExportOp.AUDIT: FINANCE_OR_ADMIN,
        ExportOp.SUBSCRIPTIONS: FINANCE_OR_ADMIN | PARTNER_ADMIN,
    }
)
