"""The webhook tests' delivery worker: one of the test's own, while the app's worker waits
(so the test decides when a round runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infra.clock import OffsetClock
from schema.context import Services
from webhooks.targets import TargetPolicy
from webhooks.worker import DeliveryWorker


@pytest.fixture
async def worker(services: Services, clock: OffsetClock) -> AsyncIterator[DeliveryWorker]:
    """A worker of the test's own; the app's own worker waits meanwhile. Its timeout is
    the product's (10 s), a bound on a hang: the receiver shares the test's event loop,
    and on a loaded machine it answered later than the 0.5 s this had (the attempt failed,
    its retry was not due yet, and the test found the message missing). A test of a
    receiver that never answers shortens it for that round."""
    own = DeliveryWorker(services.db, clock, policy=TargetPolicy(allow_private=True))
    async with services.webhooks.paused():
        yield own
    await own.close()
