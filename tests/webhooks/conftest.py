"""The webhook tests' delivery worker: one of the test's own, with a short timeout, while
the app's worker waits (so the test decides when a round runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infra.clock import OffsetClock
from schema.context import Services
from webhooks.targets import TargetPolicy
from webhooks.worker import DeliveryWorker


@pytest.fixture
async def worker(services: Services, clock: OffsetClock) -> AsyncIterator[DeliveryWorker]:
    """A worker with a short timeout; the app's own worker waits meanwhile."""
    own = DeliveryWorker(services.db, clock, policy=TargetPolicy(allow_private=True), timeout=0.5)
    async with services.webhooks.paused():
        yield own
    await own.close()
