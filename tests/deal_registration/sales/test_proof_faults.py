"""Proof uploads when the file store fails: a store that refuses the write (a full disk, a
file where the vendor's directory should be) answers SERVICE_UNAVAILABLE and commits
nothing; files that a killed process left without a row (the file is written before the
row commits, never after) are swept once they are older than any open transaction."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sqlmodel import select

from deal_registration.attachments import Attachment
from deal_registration.sales.models import SaleClaim
from deal_registration.storage import LocalStorage
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import PDF, Tenant
from tests.processes import cli_process
from tests.support import GQL, multipart


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def _claim_with_proof(
    gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str
) -> dict[str, Any]:
    response = await multipart(
        gql, CREATE, {"input": {**claim_input([serial], clock), "proof": None}},
        {"variables.input.proof": ("invoice.pdf", PDF, "application/pdf")},
        token=gql.token(tenant.user(Role.PARTNER_REP, 0)),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _only_attachment(db: Database, tenant: Tenant) -> Attachment:
    async with db.session() as session:
        [attachment] = list(
            await session.exec(select(Attachment).where(Attachment.vendor_id == tenant.vendor.id))
        )
        return attachment


async def _claims(db: Database, tenant: Tenant) -> list[SaleClaim]:
    async with db.session() as session:
        rows = await session.exec(select(SaleClaim).where(SaleClaim.vendor_id == tenant.vendor.id))
        return list(rows)


async def test_a_store_that_refuses_the_file_is_a_coded_outage_and_nothing_is_committed(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Before, the OSError went out as INTERNAL_SERVER_ERROR with a traceback logged."""
    await seed_registry(db, clock, tenant, 4)
    root = gql.settings.var_dir / "attachments"
    root.mkdir(parents=True, exist_ok=True)
    blocked = root / str(tenant.vendor.id)  # a file where the vendor's directory goes
    blocked.write_bytes(b"")
    try:
        answer = await _claim_with_proof(gql, tenant, clock, "SN000001")
        [error] = answer["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", answer
        assert error["extensions"]["retryAfterSeconds"] > 0
        assert answer["data"] is None
        assert await _claims(db, tenant) == []
    finally:
        blocked.unlink()
    # Once the store takes files again, the same claim goes through.
    answer = await _claim_with_proof(gql, tenant, clock, "SN000001")
    assert answer["data"]["saleClaimCreate"]["userErrors"] == [], answer
    assert len(await _claims(db, tenant)) == 1


async def test_a_write_cut_short_leaves_no_partial_file(tmp_path: Path) -> None:
    """A write the disk refuses half-way (the file size limit stands in for a full disk)
    is an outage, and its partial file is removed (before, it stayed for good)."""
    import resource  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from deal_registration.storage import StorageUnavailable  # noqa: PLC0415

    storage = LocalStorage(tmp_path / "files")
    key = f"{uuid.uuid4()}/{uuid.uuid4()}"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        failed = None
        try:
            await storage.put(key, b"%PDF-" + b"x" * 100_000, "application/pdf")
        except StorageUnavailable as exc:
            failed = exc
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert failed is not None
    assert _files(tmp_path / "files") == set()


async def test_files_no_attachment_names_are_swept_once_old(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """What an API process killed between writing the proof and committing the claim
    leaves: a complete file, or a partial one, that no row names. Before, nothing ever
    removed them (found by SIGKILLs of `channelboard serve` under uploads)."""
    await seed_registry(db, clock, tenant, 4)
    answer = await _claim_with_proof(gql, tenant, clock, "SN000001")
    assert answer["data"]["saleClaimCreate"]["userErrors"] == [], answer
    kept = await _only_attachment(db, tenant)
    root = gql.settings.var_dir / "attachments"
    storage = LocalStorage(root)
    vendor = tenant.vendor.id
    orphan, partial, young = (f"{vendor}/{uuid.uuid4()}" for _ in range(3))
    await storage.put(orphan, PDF, "application/pdf")
    await storage.put(young, PDF, "application/pdf")
    (root / f"{partial}.part").write_bytes(PDF[:5])
    two_hours_ago = time.time() - 7200
    for name in (kept.storage_key, orphan, f"{partial}.part"):
        os.utime(root / name, (two_hours_ago, two_hours_ago))

    async with cli_process(gql.settings, "attachments", "sweep") as sweep:
        output, _ = await asyncio.wait_for(sweep.communicate(), 120)
    assert sweep.returncode == 0, output.decode()
    assert "file(s) that no attachment names" in output.decode()
    left = _files(root / str(vendor))
    assert {f"{vendor}/{name}" for name in left} == {kept.storage_key, young}
    assert await storage.get(kept.storage_key) == PDF


async def test_a_download_whose_file_is_gone_or_unreadable_is_coded(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A row whose file is missing (lost data) is NOT_FOUND and logged for an operator; a
    file the store cannot read now (a permission, a disk) is SERVICE_UNAVAILABLE. Before,
    both were an unhandled 500 with a traceback."""
    await seed_registry(db, clock, tenant, 4)
    answer = await _claim_with_proof(gql, tenant, clock, "SN000001")
    assert answer["data"]["saleClaimCreate"]["userErrors"] == [], answer
    kept = await _only_attachment(db, tenant)
    path = gql.settings.var_dir / "attachments" / kept.storage_key
    headers = {"authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}"}
    url = f"/attachments/{kept.id}"
    assert (await gql.client.get(url, headers=headers)).status_code == 200

    path.unlink()
    path.mkdir()  # there, but no file the store can read
    response = await gql.client.get(url, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"

    path.rmdir()
    response = await gql.client.get(url, headers=headers)
    assert response.status_code == 404, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
