"""A real API process SIGKILLed in the middle of a claim with proof (`saleClaimCreate`,
multipart): the proof file is written (synced, renamed into place) before the transaction
that records its row commits. Killed after the file is in place with its COMMIT held in a
proxy before PostgreSQL (then dropped with the connection): no claim and no row, and the
file no row names is swept once old. Killed once its answer is on its way (committed): the
claim, its row and the whole file, which downloads. Never a row without its file."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.deal_registration.sales.test_proof_faults import _claims, _files, _only_attachment
from tests.factories import PDF, Tenant
from tests.processes import api_server, cli_process, kill, killed_answering
from tests.redis_proxy import HoldingProxy
from tests.support import GQL, eventually, no_write_transaction_open

pytestmark = pytest.mark.slow


async def _send_claim(
    http: httpx.AsyncClient, gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str
) -> httpx.Response:
    variables = {"input": {**claim_input([serial], clock), "proof": None}}
    form = {
        "operations": json.dumps({"query": CREATE, "variables": variables}),
        "map": json.dumps({"0": ["variables.input.proof"]}),
    }
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    return await http.post(
        "/graphql", data=form, files={"0": ("invoice.pdf", PDF, "application/pdf")},
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip


def _stored(settings: Settings, tenant: Tenant) -> Path:
    return settings.var_dir / "attachments" / str(tenant.vendor.id)


async def test_killed_before_the_claim_commits_leaves_only_a_file_that_is_swept(
    settings: Settings, gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("the proxy that holds the COMMIT stands before PostgreSQL")
    await seed_registry(db, clock, tenant, 4, settle=False)
    stored = _stored(settings, tenant)

    def commits_after_the_file(data: bytes) -> bool:
        return b"COMMIT" in data and any(p.suffix != ".part" for p in _entries(stored))

    proxy = HoldingProxy(
        f"postgresql://{url.host}:{url.port or 5432}", b"", hold_marker=True,
        carries=commits_after_the_file,
    )  # fmt: skip
    async with proxy.running() as port:
        through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        async with (
            api_server(settings, DATABASE_URL=through) as server,
            httpx.AsyncClient(base_url=f"http://{server.address}", timeout=120) as http,
        ):
            call = asyncio.create_task(_send_claim(http, gql, tenant, clock, "SN000001"))
            held = asyncio.create_task(proxy.holding.wait())
            await asyncio.wait({call, held}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            assert held.done(), f"the claim was answered unheld: {call.result().text}"
            await kill(server.process)
            proxy.discard = True  # the COMMIT is lost with its connection
            proxy.release.set()
            with pytest.raises(httpx.TransportError):
                await call
    await eventually(lambda: no_write_transaction_open(settings), within=30)

    assert await _claims(db, tenant) == []  # no claim, no attachment row
    [name] = _files(stored)
    assert (stored / name).read_bytes() == PDF  # whole, in place: only no row names it
    hours_ago = time.time() - 7200
    os.utime(stored / name, (hours_ago, hours_ago))
    async with cli_process(settings, "attachments", "sweep") as sweep:
        output, _ = await asyncio.wait_for(sweep.communicate(), 120)
    assert sweep.returncode == 0, output.decode()
    assert _files(stored) == set()


async def test_killed_after_the_claim_commits_leaves_the_row_and_its_whole_file(
    settings: Settings, gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 4, settle=False)
    async with api_server(settings) as server:

        async def send(http: httpx.AsyncClient) -> Any:
            return await _send_claim(http, gql, tenant, clock, "SN000001")

        await killed_answering(server, send)

    [claim] = await _claims(db, tenant)
    attachment = await _only_attachment(db, tenant)
    assert attachment.owner_id == claim.id
    stored = _stored(settings, tenant)
    assert _files(stored) == {str(attachment.id)}  # the file, and no partial one
    headers = {"authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}"}
    download = await gql.client.get(f"/attachments/{attachment.id}", headers=headers)
    assert download.status_code == 200, download.text
    assert download.content == PDF


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except FileNotFoundError:
        return []
