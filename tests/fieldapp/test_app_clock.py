"""A phone whose clock is days off: the app says so in plain words (times in forms would be wrong)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.fieldapp.conftest import CHROMIUM_FLAGS, COLLABORATOR, FieldServer, chromium_path

pytestmark = pytest.mark.slow


def test_a_clock_three_days_behind_is_shown(field_server: FieldServer, tmp_path: Path) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.clock.install(time=datetime.now(UTC) - timedelta(days=3, hours=2))  # time then flows on
        page.goto(f"{field_server.base}/app/")
        page.wait_for_selector("#signin", timeout=20_000)
        page.fill("input[name=username]", COLLABORATOR[0])
        page.fill("input[name=password]", COLLABORATOR[1])
        page.click("#signin button")
        page.wait_for_selector("#clock", timeout=20_000)
        assert "lệch 3 ngày" in (page.text_content("#clock") or "")
        browser.close()
