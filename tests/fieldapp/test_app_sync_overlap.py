"""A record finished while a push is running is sent by the app itself, without another "Gửi ngay".

The running push listed the phone's records before the new one existed; the app must push once more after it.
The first push is held at the network (Playwright holds its checkpoint write, after it has read the phone's
changes) so the overlap is certain.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.fieldapp.conftest import CHROMIUM_FLAGS, COLLABORATOR, FieldServer, chromium_path
from tests.fieldapp.test_app_browser import ROOT_PATH, fill, new_household, province_get

pytestmark = pytest.mark.slow


def test_a_record_finished_during_a_push_is_sent_after_it(field_server: FieldServer) -> None:
    base = field_server.base
    held: list[Route] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(f"{base}/app/")
        page.wait_for_selector("#signin", timeout=20_000)
        page.fill("input[name=username]", COLLABORATOR[0])
        page.fill("input[name=password]", COLLABORATOR[1])
        page.click("#signin button")
        page.wait_for_selector("button.new >> nth=1", timeout=20_000)

        def hold_checkpoint(route: Route) -> None:
            # The push's last step: its checkpoint, written after it has read every change on the phone.
            if not held and route.request.method == "PUT" and "/_local/" in route.request.url:
                held.append(route)  # answered below, once the second record is finished
            else:
                route.continue_()

        page.route("**/sync/submissions/**", hold_checkpoint)
        new_household(page)
        fill(page, f"{ROOT_PATH}/consent", "no")
        page.click("#finish")  # the app pushes at once, and that push is held at its checkpoint
        page.wait_for_selector("#status", timeout=15_000)
        for _ in range(300):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the first push never reached its checkpoint"

        new_household(page)
        fill(page, f"{ROOT_PATH}/consent", "no")
        page.click("#finish")
        page.wait_for_selector("#status", timeout=15_000)
        ids = [el.get_attribute("data-id") for el in page.query_selector_all("#finished li.finished")]
        assert len(ids) == 2

        held[0].continue_()  # the first push ends; nobody presses anything
        page.wait_for_function("document.querySelector('#waiting[data-count=\"0\"]')", timeout=30_000)
        browser.close()
    for instance_id in ids:
        r = province_get(base, f"/api/v1/submissions/{instance_id}")
        assert r.status_code == 200, r.text
        assert r.json()["fields"]["consent"] == "no"
