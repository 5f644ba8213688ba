"""The events forecasts record in the outbox (``infra.events.Event``): what other domains
(signals, notifications, webhooks) consume."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from infra.events import Event

FORECAST_ACCURACY_RECORDED = "ForecastAccuracyRecorded"
CONCENTRATION_ALERTED = "ConcentrationAlerted"
CONCENTRATION_THRESHOLD_CHANGED = "ConcentrationThresholdChanged"


@dataclass(frozen=True)
class ForecastAccuracyRecorded(Event):
    """A quarter closed: a partner's forecast was compared with its actual revenue
    (``forecasts.accuracy`` has the formula). A signal for rules."""

    type: ClassVar[str] = FORECAST_ACCURACY_RECORDED
    accuracy_id: uuid.UUID
    partner_id: uuid.UUID
    quarter: str
    currency: str
    commit_minor: int
    actual_minor: int
    accuracy_bp: int
    bias_bp: int | None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        bias = payload.get("bias_bp")
        return cls(
            accuracy_id=uuid.UUID(payload["accuracy_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            quarter=str(payload["quarter"]),
            currency=str(payload["currency"]),
            commit_minor=int(payload["commit_minor"]),
            actual_minor=int(payload["actual_minor"]),
            accuracy_bp=int(payload["accuracy_bp"]),
            bias_bp=None if bias is None else int(bias),
        )


@dataclass(frozen=True)
class ConcentrationAlerted(Event):
    """A concentration threshold was crossed in a quarter (once per threshold and quarter).
    Vendor-internal: never shown to partner roles."""

    type: ClassVar[str] = CONCENTRATION_ALERTED
    alert_id: uuid.UUID
    threshold_id: uuid.UUID
    quarter: str
    metric: str
    top_n: int
    basis: str
    scope: str
    scope_value: str
    currency: str
    share_bp: int
    max_share_bp: int
    top_partner_ids: list[str]

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            alert_id=uuid.UUID(payload["alert_id"]),
            threshold_id=uuid.UUID(payload["threshold_id"]),
            quarter=str(payload["quarter"]),
            metric=str(payload["metric"]),
            top_n=int(payload["top_n"]),
            basis=str(payload["basis"]),
            scope=str(payload["scope"]),
            scope_value=str(payload["scope_value"]),
            currency=str(payload["currency"]),
            share_bp=int(payload["share_bp"]),
            max_share_bp=int(payload["max_share_bp"]),
            top_partner_ids=[str(p) for p in payload["top_partner_ids"]],
        )


@dataclass(frozen=True)
class ConcentrationThresholdChanged(Event):
    """A threshold was set or changed: check it against the quarter so far."""

    type: ClassVar[str] = CONCENTRATION_THRESHOLD_CHANGED
    threshold_id: uuid.UUID

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(threshold_id=uuid.UUID(payload["threshold_id"]))
