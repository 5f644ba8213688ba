"""`channelboard demo` seeds deal registrations for Acme and Globex with a conflicting pair,
and running it again changes nothing."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import func, select

from api.cli.demo import seed_demo
from api.settings import Settings
from deal_registration.registrations.models import DealConflict, DealRegistration, DealStatus
from infra.clock import OffsetClock
from infra.db import Database
from tests.support import DEMO_DATES


async def test_demo_registrations_include_a_conflicting_pair(
    db: Database, settings: Settings
) -> None:
    await _check_registrations(db, settings)


@pytest.mark.slow
@pytest.mark.parametrize("when", DEMO_DATES, ids=lambda d: f"{d:%Y-%m-%dT%H:%M}")
async def test_demo_registrations_on_every_date(
    when: datetime, db: Database, settings: Settings, clock: OffsetClock
) -> None:
    clock.freeze(when)
    await _check_registrations(db, settings, clock)


async def _check_registrations(
    db: Database, settings: Settings, clock: OffsetClock | None = None
) -> None:
    await seed_demo(settings, clock)
    async with db.session() as session:
        registrations = {r.customer_name: r for r in await session.exec(select(DealRegistration))}
        conflicts = list(await session.exec(select(DealConflict)))
    assert set(registrations) == {
        "Initech LLC", "Umbrella Holdings Ltd", "Initech, L.L.C.", "Hooli Inc."
    }  # fmt: skip
    acme, globex = registrations["Initech LLC"], registrations["Initech, L.L.C."]
    assert acme.status is DealStatus.APPROVED
    assert acme.is_protected
    assert globex.status is DealStatus.UNDER_REVIEW
    assert acme.partner_id != globex.partner_id
    pair = [c for c in conflicts if c.registration_id == globex.id]
    assert pair
    assert {c.other_registration_id for c in pair} == {acme.id}
    assert "DOMAIN" in pair[0].rules
    assert registrations["Hooli Inc."].status is DealStatus.DRAFT

    await seed_demo(settings, clock)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(DealRegistration)) == 4
