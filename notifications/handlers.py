"""The notifier's outbox registration: one batch handler for every event type a trigger
reads (``notifications.triggers``), so these events join the dispatcher's runs."""

from __future__ import annotations

from infra.outbox import Registration, batch
from notifications.runtime import Notifier


def handlers(notifier: Notifier) -> list[Registration]:
    return [batch(sorted(notifier.triggers), notifier.handle)]
