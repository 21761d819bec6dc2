"""The field web app in a real browser (Debian's chromium, driven by Playwright) against `carecheck serve`.

Online sign-in → offline reload still opens → a household with two children and a card photo finished, another
left as a draft → browser closed and reopened on the same profile, both still there → back online, the
finished record is replicated once and the province API shows the same answers → a second sync sends nothing
→ a sync cut half-way (the server stored a batch but the phone never heard) resumes without a duplicate →
a pushed record of another area is refused. Screenshots at 360 px in Vietnamese and Khmer: test-artifacts/.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from fieldapp.router import _icon_png
from tests.fieldapp.conftest import CHROMIUM_FLAGS, COLLABORATOR, PROVINCE, FieldServer, chromium_path

pytestmark = pytest.mark.slow
ROOT_PATH = "/household_child_check"
CHILD = f"{ROOT_PATH}/household/child"

# Sets one answer the way a person does (a change event Enketo listens to); radio/checkbox by value(s).
FILL_JS = """([path, value, idx]) => {
  const form = document.querySelector('form.or');
  let scope = form;
  if (path.startsWith(CHILD + '/')) scope = form.querySelectorAll(`.or-repeat[name="${CHILD}"]`)[idx];
  if (!scope) throw new Error('no repeat #' + idx);
  const els = Array.from(scope.querySelectorAll(`[name="${path}"], [data-name="${path}"]`));
  if (!els.length) throw new Error('no control ' + path + ' #' + idx);
  const el = els[0];
  if (el.type === 'radio' || el.type === 'checkbox') {
    for (const v of String(value).split(' ')) {
      const box = els.find((e) => e.value === v);
      if (!box) throw new Error('no choice ' + v + ' for ' + path);
      if (!box.checked) box.click();
    }
  } else {
    el.value = value;
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }
}""".replace("CHILD", repr(CHILD))  # a JS string literal where the script says CHILD


def launch(pw: Playwright, profile: Path, *, offline: bool = False) -> tuple[BrowserContext, Page]:
    ctx = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=chromium_path(),
        headless=True,
        args=CHROMIUM_FLAGS,
        offline=offline,
        viewport={"width": 360, "height": 740},
        device_scale_factor=1,
        has_touch=True,
        locale="vi-VN",
    )
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.on("pageerror", lambda e: print("pageerror:", e))
    external: list[str] = []
    page.on(
        "request",
        lambda r: external.append(r.url) if r.url.startswith("http") and "127.0.0.1" not in r.url else None,
    )
    page.external = external  # type: ignore[attr-defined]
    return ctx, page


def fill(page: Page, path: str, value: str, idx: int = 0) -> None:
    page.evaluate(FILL_JS, [path, value, idx])


def open_app(page: Page, base: str) -> None:
    page.goto(f"{base}/app/")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)


def new_household(page: Page) -> None:
    page.click("button.new:has-text('hộ gia đình')")
    page.wait_for_selector("form.or", timeout=15_000)
    fill(page, f"{ROOT_PATH}/district", "911")
    page.wait_for_function(
        f"""document.querySelector('form.or [name="{ROOT_PATH}/commune"] option[value="31078"]')""",
        timeout=10_000,
    )
    fill(page, f"{ROOT_PATH}/commune", "31078")
    fill(page, f"{ROOT_PATH}/hamlet", "Ấp Suối Đá")


def finish(page: Page) -> None:
    page.click("#finish")
    page.wait_for_selector("#status", timeout=15_000)
    msg = page.text_content("#notice") or ""
    assert "hoàn tất" in msg, msg


def waiting(page: Page) -> int:
    return int(page.get_attribute("#waiting", "data-count") or "-1")


def send_now(page: Page) -> None:
    """Press "Gửi ngay" and wait until that sync has ended: a new last success or a new last error."""
    ok, err = page.get_attribute("#last-sync", "data-at"), page.get_attribute("#last-sync", "data-error-at")
    page.click("#send-now")
    page.wait_for_function(
        """([ok, err]) => { const el = document.querySelector('#last-sync');
                            return el && (el.dataset.at !== ok || el.dataset.errorAt !== err); }""",
        arg=[ok or "", err or ""],
        timeout=30_000,
    )


def province_get(base: str, path: str) -> httpx.Response:
    return httpx.get(f"{base}{path}", auth=PROVINCE, timeout=30)


def screenshot(page: Page, artifacts: Path, name: str) -> None:
    path = artifacts / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000


def test_offline_fill_draft_reopen_sync_once(
    field_server: FieldServer, tmp_path: Path, artifacts: Path
) -> None:
    base = field_server.base
    profile = tmp_path / "profile"
    photo = tmp_path / "the-card.png"
    photo.write_bytes(_icon_png(192))
    with sync_playwright() as pw:
        # --- online: sign in, forms downloaded, service worker installed ---
        ctx, page = launch(pw, profile)
        open_app(page, base)
        page.fill("input[name=username]", COLLABORATOR[0])
        page.fill("input[name=password]", COLLABORATOR[1])
        page.click("#signin button")
        page.wait_for_selector("button.new >> nth=1", timeout=20_000)
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        page.wait_for_function("caches.keys().then(k => k.length > 0)", timeout=15_000)
        stored = page.evaluate("Object.keys(localStorage).join(',') + '|' + document.cookie")
        assert COLLABORATOR[1] not in stored and COLLABORATOR[1] not in page.content()

        # --- offline: the app still opens ---
        ctx.set_offline(True)
        page.reload()
        page.wait_for_selector("#status", timeout=20_000)
        assert page.locator("#offline").is_visible()
        assert page.evaluate("fetch('/app/build.json').then(() => 'reached', () => 'offline')") == "offline"

        # --- a household with two children and a card photo, finished ---
        new_household(page)
        fill(page, f"{ROOT_PATH}/consent", "yes")
        fill(page, f"{ROOT_PATH}/household/head_name", "Trần Văn Hải")
        for q, v in (
            ("poverty_status", "near_poor"),
            ("unfenced_water", "yes"),
            ("hotline_111_aware", "no"),
            ("births_12m", "1"),
            ("under5_deaths_12m", "0"),
            ("child_drowning_deaths_12m", "0"),
            ("children_count", "2"),
        ):
            fill(page, f"{ROOT_PATH}/household/{q}", v)
        page.wait_for_function(f"""document.querySelectorAll('.or-repeat[name="{CHILD}"]').length === 2""")
        baby = {
            "child_name": "Trần Thị Bé",
            "sex": "female",
            "dob": "2025-06-01",
            "ethnicity": "kinh",
            "birth_registered": "yes",
            "imm_card_seen": "yes",
            "imm_antigens": "bcg hepb0 penta1",
            "weight_kg": "9.5",
            "height_cm": "74",
            "injury_12m": "no",
            "orphan_status": "none",
            "care_arrangement": "both_parents",
            "special_groups": "none",
            "at_risk": "no",
            "violence_signs": "no",
            "play_space_access": "yes",
        }
        pupil = {
            "child_name": "Trần Văn Tí",
            "sex": "male",
            "dob": "2018-03-10",
            "ethnicity": "khmer",
            "birth_registered": "yes",
            "attends_school": "yes",
            "school_level": "primary",
            "can_swim": "no",
            "injury_12m": "no",
            "functional_difficulty": "no",
            "orphan_status": "none",
            "care_arrangement": "both_parents",
            "work_hours_week": "0",
            "chore_hours_week": "3",
            "special_groups": "none",
            "at_risk": "no",
            "violence_signs": "no",
            "play_space_access": "yes",
        }
        for idx, child in enumerate((baby, pupil)):
            for q, v in child.items():
                fill(page, f"{CHILD}/{q}", v, idx)
        page.locator(f'.or-repeat[name="{CHILD}"]').nth(0).locator("input[type=file]").set_input_files(
            str(photo)
        )
        page.wait_for_timeout(500)
        finish(page)
        assert page.locator("#finished li.finished.waiting").count() == 1
        assert waiting(page) == 1
        finished_id = page.get_attribute("#finished li.finished", "data-id")
        assert finished_id and finished_id.startswith("uuid:")

        # --- another household left as a draft ---
        new_household(page)
        fill(page, f"{ROOT_PATH}/consent", "yes")
        fill(page, f"{ROOT_PATH}/household/head_name", "Lâm Thị Sương")
        page.click("#save-draft")
        page.wait_for_selector("#drafts li.draft", timeout=15_000)
        ctx.close()

        # --- browser closed and reopened on the same profile, still offline: both still there ---
        ctx, page = launch(pw, profile, offline=True)
        open_app(page, base)
        assert page.locator("#drafts li.draft").count() == 1
        assert page.locator("#finished li.finished.waiting").count() == 1
        page.click("#drafts button.open")
        page.wait_for_selector("form.or", timeout=15_000)
        assert page.input_value(f'form.or [name="{ROOT_PATH}/household/head_name"]') == "Lâm Thị Sương"
        page.click("#back")
        page.wait_for_selector("#status")

        # --- network back: the finished record goes once ---
        ctx.set_offline(False)
        send_now(page)
        page.wait_for_function("document.querySelector('#waiting[data-count=\"0\"]')", timeout=30_000)
        assert page.locator("#finished li.finished.sent").count() == 1
        r = province_get(base, f"/api/v1/submissions/{finished_id}")
        assert r.status_code == 200, r.text
        sub = r.json()
        fields = sub["fields"]
        assert fields["hamlet"] == "Ấp Suối Đá" and fields["commune"] == "31078"
        assert fields["head_name"] == "Trần Văn Hải" and fields["children_count"] == "2"
        children = fields["child"]
        assert [c["child_name"] for c in children] == ["Trần Thị Bé", "Trần Văn Tí"]
        assert children[0]["imm_antigens"] == "bcg hepb0 penta1" and children[1]["school_level"] == "primary"
        photo_name = children[0]["imm_card_photo"]
        assert photo_name and sub["attachments_expected"] == sub["attachments"] == [photo_name], sub
        assert sub["submitted_by"] == COLLABORATOR[0] and sub["area"] == COLLABORATOR[2]
        assert sub["org_unit"] == ["91", "911", "31078"] and sub["deprecated_id"] is None
        local_xml = page.evaluate(
            f"window.carecheck.outboxDb.get({json.dumps(finished_id)}).then(d => d.xml)"
        )
        assert sub["xml_sha256"] if "xml_sha256" in sub else True
        assert "Trần Văn Hải" in local_xml and photo_name in local_xml
        listing = province_get(base, "/api/v1/submissions?limit=100").json()["items"]
        assert [i["id"] if "id" in i else i.get("instance_id") for i in listing].count(finished_id) == 1, (
            listing
        )

        # --- ingestion treats it like an OpenRosa submission: one household, two children, no quarantine ---
        r = field_server.cli("ingest", "--once")
        assert r.returncode == 0, r.stderr + r.stdout
        with sqlite3.connect(field_server.tmp / "var" / "carecheck.db") as db:
            one = db.execute(
                "SELECT count(*) FROM household WHERE submission_id = ?", (finished_id,)
            ).fetchone()
            two = db.execute(
                "SELECT count(*) FROM childobservation WHERE submission_id = ?", (finished_id,)
            ).fetchone()
            stuck = db.execute("SELECT count(*) FROM quarantine").fetchone()
        assert (one[0], two[0], stuck[0]) == (1, 2, 0)

        # --- a second sync sends nothing ---
        send_now(page)
        assert page.get_attribute("#last-sync", "data-written") == "0"

        # --- an edit of the sent record: a new instanceID naming the old one; the photo carried forward ---
        page.click(f'#finished li[data-id="{finished_id}"] button.edit')
        page.wait_for_selector("form.or", timeout=15_000)
        fill(page, f"{ROOT_PATH}/hamlet", "Ấp Suối Đá 2")
        page.click("#finish")
        page.wait_for_selector(f'#finished li.superseded[data-id="{finished_id}"]', timeout=15_000)
        page.wait_for_function("document.querySelector('#waiting[data-count=\"0\"]')", timeout=30_000)
        edit_id = page.get_attribute(f'#finished li[data-deprecated="{finished_id}"]', "data-id")
        assert edit_id and edit_id != finished_id
        edited = province_get(base, f"/api/v1/submissions/{edit_id}").json()
        assert edited["deprecated_id"] == finished_id and edited["fields"]["hamlet"] == "Ấp Suối Đá 2"
        assert (
            edited["attachments"] == [photo_name]
            and edited["fields"]["child"][0]["imm_card_photo"] == photo_name
        )
        assert [v["instance_id"] for v in edited["versions"]] == [finished_id, edit_id]
        assert province_get(base, f"/api/v1/submissions/{finished_id}").json()["status"] == "superseded"

        # --- a sync cut half-way: batch 2 reaches the server, its answer is lost; resume, no duplicate ---
        ctx.set_offline(True)
        for _ in range(3):
            new_household(page)
            fill(page, f"{ROOT_PATH}/consent", "no")
            finish(page)
        ids = [
            i
            for i in page.eval_on_selector_all("#finished li.finished", "els => els.map(e => e.dataset.id)")
            if i not in (finished_id, edit_id)
        ]
        assert len(ids) == 3
        calls: list[str] = []

        def cut(route: Route) -> None:
            calls.append(route.request.url)
            if len(calls) == 2:
                route.fetch()  # the server stores the batch …
                route.abort("connectionreset")  # … and the phone never hears the answer
            else:
                route.continue_()

        ctx.route("**/sync/submissions/_bulk_docs", cut)
        ctx.set_offline(False)  # the app pushes by itself when the network returns (its `online` handler)
        for _ in range(200):
            if calls:
                break
            page.wait_for_timeout(100)
        if not calls:  # no `online` event here: the collaborator presses "Gửi ngay"
            page.click("#send-now")
        # One push, cut: nobody asked for another meanwhile (one asked during a push runs right after it).
        page.wait_for_selector("#last-error", timeout=30_000)
        assert waiting(page) >= 1
        ctx.unroute("**/sync/submissions/_bulk_docs")
        send_now(page)
        page.wait_for_function("document.querySelector('#waiting[data-count=\"0\"]')", timeout=30_000)
        assert page.locator("#last-error").count() == 0
        listing = province_get(base, "/api/v1/submissions?limit=100").json()["items"]
        got = [i.get("id") or i.get("instance_id") for i in listing]
        assert sorted(got) == sorted([finished_id, edit_id, *ids]), got

        # --- a record of another area pushed from this phone is refused, and says so ---
        _push_foreign(page)
        send_now(page)
        page.wait_for_selector("#finished li.finished.refused", timeout=30_000)
        # ... in the collaborator's language: the write rule's reason in Vietnamese, then in English
        why = page.locator("#finished li.finished.refused small.why")
        assert why.inner_text() in REFUSED_VI, why.inner_text()
        page.select_option("#ui-lang", "en")
        shown = "(ts) => ts.includes(document.querySelector('#finished li.refused small.why')?.innerText)"
        try:  # the list is drawn again in the new language (after the page's lang attribute changes)
            page.wait_for_function(shown, arg=list(REFUSED_EN), timeout=15_000)
        except PlaywrightTimeout:
            raise AssertionError(f"not in English: {why.inner_text()!r}") from None
        page.select_option("#ui-lang", "vi")
        page.wait_for_function(shown, arg=list(REFUSED_VI), timeout=15_000)

        # --- screenshots at 360 px: Vietnamese and Khmer ---
        screenshot(page, artifacts, "fieldapp-home-vi.png")
        page.select_option("#ui-lang", "km")
        page.wait_for_function("document.documentElement.lang === 'km'")
        screenshot(page, artifacts, "fieldapp-home-km.png")
        page.click("button.new:has-text('គ្រួសារ'), button.new >> nth=1")
        page.wait_for_selector("form.or", timeout=15_000)
        page.wait_for_timeout(500)
        screenshot(page, artifacts, "fieldapp-form-km.png")
        page.select_option("#ui-lang", "vi")
        page.wait_for_timeout(300)
        screenshot(page, artifacts, "fieldapp-form-vi.png")
        assert not page.external, page.external  # type: ignore[attr-defined]

        # --- an officer revokes this phone: it says so, keeps every record, and a new sign-in carries on ---
        page.click("#back")
        page.wait_for_selector("#status")
        listed = field_server.cli("token", "list", "--user", COLLABORATOR[0]).stdout.split()
        revoked = httpx.delete(f"{base}/app/api/tokens/{listed[0]}", auth=PROVINCE, timeout=30)
        assert revoked.json() == {"revoked": 1}
        page.click("#send-now")
        page.wait_for_selector("#revoked", timeout=30_000)
        assert page.evaluate("window.carecheck.outboxDb.allDocs().then(r => r.rows.length)") == 6
        page.fill("input[name=username]", COLLABORATOR[0])
        page.fill("input[name=password]", COLLABORATOR[1])
        page.click("#signin button")
        page.wait_for_selector("#status", timeout=20_000)
        assert page.locator("#finished li.finished.sent").count() == 5
        ctx.close()


# the write rule's reasons the foreign record may meet first (fieldapp/src/i18n.js): another area, an unknown
# form version
REFUSED_VI = (
    "Phiếu ghi người gửi hoặc địa bàn không phải của tài khoản này.",
    "Máy chủ không có biểu mẫu hoặc phiên bản này.",
)
REFUSED_EN = (
    "The record names a sender or area that is not this account's.",
    "The server does not have this form or this version of it.",
)


def _push_foreign(page: Page) -> None:
    """A doc claiming another area, put straight into the phone's outbox (as a tampered app would)."""
    page.evaluate("""async () => {
      const id = 'uuid:0f0f0f0f-0000-4000-8000-000000000001';
      const xml = `<household_child_check id="household_child_check"><meta><instanceID>${id}</instanceID>`
        + '</meta></household_child_check>';
      const d = new TextEncoder().encode(xml);
      const h = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', d)),
                           (b) => b.toString(16).padStart(2, '0')).join('');
      await window.carecheck.outboxDb.put({ _id: id, type: 'submission', form_id: 'household_child_check',
        form_version: 'x', xml, xml_sha256: h, deprecated_id: null, submitted_by: 'ctv_hatien_web',
        device_id: null, received_at: '2026-11-30T00:00:00Z', received_by: null, area: '30766',
        org_unit: null,
        attachments_expected: [] });
    }""")
    page.reload()
    page.wait_for_selector("#status", timeout=20_000)
