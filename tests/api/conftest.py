"""Fixtures of the API tests that drive a real browser."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless chromium, the system's (Playwright downloads no browser here)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "install Chromium (apt-get install -y chromium; .ci/run does)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=binary, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()
