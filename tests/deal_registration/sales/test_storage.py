"""The storage backends and their settings (the S3 backend needs a server: not run here)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from api.composition import build_storage
from api.settings import Settings, SettingsError
from deal_registration.storage import LocalStorage, StorageError

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


async def test_local_storage_round_trip_and_key_checks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    key = f"{uuid.uuid4()}/{uuid.uuid4()}"
    await storage.put(key, b"%PDF-1.7", "application/pdf")
    assert await storage.get(key) == b"%PDF-1.7"
    await storage.delete(key)
    with pytest.raises(StorageError):
        await storage.get(key)
    for bad in ("../etc/passwd", f"{uuid.uuid4()}/../../x", "/abs/path", ""):
        with pytest.raises(StorageError):
            await storage.put(bad, b"x", "application/pdf")
    assert not (tmp_path / "etc").exists()


def test_storage_settings(tmp_path: Path) -> None:
    local = Settings.from_env({"CHANNELBOARD_VAR_DIR": str(tmp_path)})
    storage = build_storage(local)
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "attachments").resolve()
    elsewhere = Settings.from_env({"CHANNELBOARD_STORAGE_DIR": str(tmp_path / "proofs")})
    assert build_storage(elsewhere).root == (tmp_path / "proofs").resolve()  # type: ignore[attr-defined]
    with pytest.raises(SettingsError):
        Settings.from_env({"CHANNELBOARD_STORAGE": "s3"})
    with pytest.raises(SettingsError):
        Settings.from_env({"CHANNELBOARD_STORAGE": "ftp"})
