"""What closing revoked websockets costs: one re-check of N open sockets' principals (N
distinct partner users), as every API process runs after each change to the user, partner
or api_key tables (api.ws_sessions).

    .venv/bin/python -m benchmarks.ws_recheck [--sockets 5000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from api import migrations
from api.app import create_app
from api.auth import issue_token
from api.settings import Settings
from api.ws_sessions import RECHECK_BATCH
from infra.clock import SystemClock
from partners import service
from partners.roles import Principal, Role


async def main(sockets: int, database_url: str | None) -> None:
    var = Path(tempfile.mkdtemp(prefix="cb-recheck-"))
    env = {"CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": str(var)}
    if database_url:
        env["CHANNELBOARD_DATABASE_URL"] = database_url
    settings = Settings.from_env(env)
    await migrations.upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        db, clock = app.state.services.db, SystemClock()
        async with db.transaction() as session:
            slug = f"bench-{time.time_ns()}"
            vendor = await service.create_vendor(session, clock, name=slug, slug=slug)
            partner = await service.create_partner(
                session, clock, vendor_id=vendor.id, name="Partner", region="EMEA"
            )
            users = [
                await service.create_user(
                    session,
                    clock,
                    vendor_id=vendor.id,
                    partner_id=partner.id,
                    email=f"u{i}@{slug}.example",
                    role=Role.PARTNER_REP,
                    display_name=f"u{i}",
                )  # fmt: skip
                for i in range(sockets)
            ]
        authenticator = app.state.authenticator
        principals: list[Principal] = []
        for user in users:
            outcome = await authenticator.authenticate(f"Bearer {issue_token(settings.jwt, user)}")
            assert isinstance(outcome, Principal)
            principals.append(outcome)
        started = time.perf_counter()
        for start in range(0, sockets, RECHECK_BATCH):
            outcomes = await authenticator.current(principals[start : start + RECHECK_BATCH])
            assert all(now == before for before, now in outcomes.items())
        took = time.perf_counter() - started
    backend = settings.database_url.split(":", 1)[0]
    print(f"re-check of {sockets} open sockets' principals: {took * 1000:.0f} ms ({backend})")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(main(args.sockets, args.database_url))
