"""The officers' console in a real browser (Playwright driving Debian's chromium) against a real
`carecheck serve`, pouchdb-server and SQLite: area scoping, the collaborator QR code, data-quality decisions
that change what ingestion counts, bad input, screenshots at 360 and 1280 px, page weight under Slow 3G."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from tests.console.conftest import ADMIN, DISTRICT, OFFICER, OTHER_DISTRICT, PASSWORD, Console

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ("/", "/field", "/quality", "/submissions")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def sign_in(browser: Any, console: Console, user: str, width: int = 1280) -> Any:
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    page.goto(console.url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/")
    return page


def session(console: Console) -> Session:
    from aggregator.db import get_engine

    return Session(get_engine(console.settings))


def test_district_officer_sees_only_their_district(console: Console, browser: Any, artifacts: Path) -> None:
    from core.orgunits import communes

    mine = {c for c, u in communes().items() if u.district_code == DISTRICT}
    page = sign_in(browser, console, OFFICER)
    assert DISTRICT in page.inner_text("h1")
    ranking = page.locator("table.ranking tbody tr td:nth-child(2)").all_inner_texts()
    assert ranking and all(t.rsplit("(", 1)[1].rstrip(")") in mine for t in ranking)
    page.goto(console.url + "/submissions")
    rows = page.locator("table.submissions tbody tr td:nth-child(5)").all_inner_texts()
    assert rows and set(rows) <= mine, rows
    # Another area's ids typed into URLs: refused, nothing shown.
    for path, status in [
        (f"/submissions/{console.ids['other_doc']}", 404),
        (f"/submissions?unit={OTHER_DISTRICT}", 403),
        ("/users", 403),
        ("/audit", 403),
        (f"/reports/district/{OTHER_DISTRICT}", 403),
        (f"/odata/v4/IndicatorValues?$filter=org_unit eq '{OTHER_DISTRICT}'", 403),
    ]:
        resp = page.goto(console.url + path)
        assert resp is not None and resp.status == status, (path, resp and resp.status)
    resp = page.goto(console.url + f"/submissions/{console.ids['mine_doc']}")
    assert resp is not None and resp.status == 200
    assert "•••" in page.inner_text("table.answers")  # names masked until revealed
    assert page.inner_text("dd.ingest") == "counted"
    page.click("form[action$='/reveal'] button")  # a district officer may reveal, and it is recorded
    assert "•••" not in page.inner_text("table.answers")
    from console import audit

    views = audit.search(console.couch, console.settings, kind="identifiable_view", actor=OFFICER)
    assert [v["doc_id"] for v in views][:1] == [console.ids["mine_doc"]]
    page.goto(console.url + "/field")
    assert OTHER_DISTRICT not in page.inner_text("table.devices")
    for width in (1280, 360):
        p = sign_in(browser, console, OFFICER, width)
        for path in PAGES:
            p.goto(console.url + path)
            name = path.strip("/") or "overview"
            p.screenshot(path=str(artifacts / f"console-{name}-{width}.png"), full_page=True)
        p.context.close()
    page.context.close()


def test_admin_creates_collaborator_whose_qr_configures_collect(
    console: Console, browser: Any, artifacts: Path
) -> None:
    from console.odk import decode

    page = sign_in(browser, console, ADMIN)
    page.goto(console.url + "/users")
    page.fill("#create-user input[name=username]", "ctv_moi")
    page.fill("#create-user input[name=password]", "mk-ctv-moi-1")
    page.select_option("#create-user select[name=role]", "collaborator")
    page.fill("#create-user input[name=area]", DISTRICT)
    page.click("#create-user button")
    text = page.inner_text("#odk-payload").strip()
    settings = decode(text)
    assert settings["general"]["server_url"] == console.url
    assert settings["general"]["username"] == "ctv_moi"
    assert set(settings) == {"general", "admin", "project"}
    assert page.inner_text(".odk-text dd.server-url") == console.url  # the same settings as text
    assert page.inner_text(".odk-text dd.username") == "ctv_moi"
    shot = page.locator(".qr svg").screenshot()
    page.screenshot(path=str(artifacts / "console-users-qr-1280.png"), full_page=True)
    zxingcpp = pytest.importorskip("zxingcpp")
    image = pytest.importorskip("PIL.Image")
    found = zxingcpp.read_barcodes(image.open(io.BytesIO(shot)).convert("L"))
    assert [b.text for b in found] == [text]
    # That account downloads the form list as ODK Collect does (Digest).
    server = settings["general"]["server_url"]
    r = httpx.get(server + "/formList", auth=httpx.DigestAuth("ctv_moi", "mk-ctv-moi-1"))
    assert r.status_code == 200 and "household_child_check" in r.text
    assert r.headers["x-openrosa-version"] == "1.0"
    page.goto(console.url + "/audit?kind=account_created")
    assert "account ctv_moi" in page.inner_text("table.audit")
    page.context.close()
    for width in (1280, 360):
        p = sign_in(browser, console, ADMIN, width)
        for path in ("/", "/users", "/audit", "/users/ctv_moi/odk"):
            p.goto(console.url + path)
            name = path.strip("/").replace("/", "-") or "overview-province"
            p.screenshot(path=str(artifacts / f"console-{name}-{width}.png"), full_page=True)
        p.context.close()


def test_quality_decisions_change_what_ingestion_counts(console: Console, browser: Any) -> None:
    from aggregator.models import ChildObservation, Household, Quarantine, RawSubmission

    ids = console.ids
    page = sign_in(browser, console, OFFICER)
    page.goto(console.url + "/quality")
    with session(console) as s:
        assert (
            s.get(Quarantine, ids["quarantined"]) is not None and s.get(Household, ids["quarantined"]) is None
        )
    page.click(f"tr[data-doc='{ids['quarantined']}'] button")
    page.wait_for_url("**/quality?done=retry")
    with session(console) as s:
        assert (
            s.get(Quarantine, ids["quarantined"]) is None and s.get(Household, ids["quarantined"]) is not None
        )

    def counted() -> set[str]:
        with session(console) as s:
            return set(
                s.exec(select(Household.submission_id).where(col(Household.submission_id).in_(ids["edits"])))
            )

    assert counted() == {ids["edits"][1]}  # rule 1 before any decision: the later end time counts
    group = page.locator(f".edit-group[data-record='{ids['original']}']")
    group.locator("button").first.click()  # choose the other one
    page.wait_for_url("**/quality?done=edit")
    assert counted() == {ids["edits"][0]}  # the officer's pick
    with session(console) as s:
        assert s.get(RawSubmission, ids["edits"][1]).lost_to == ids["edits"][0]  # type: ignore[union-attr]

    def children() -> set[str]:
        with session(console) as s:
            return set(
                s.exec(
                    select(ChildObservation.child_id).where(
                        col(ChildObservation.submission_id).in_(ids["dups"])
                    )
                )
            )  # type: ignore[arg-type]

    assert len(children()) == 2
    page.locator(".dup button").first.click()  # same child
    page.wait_for_url("**/quality?done=duplicate")
    assert len(children()) == 1
    page.context.close()
    # Ingestion applies the decisions, not just this once: a full replay of the feed gives the same counts.
    from aggregator.follower import reset_checkpoint, run_page

    reset_checkpoint(console.settings)
    while run_page(console.settings, console.couch)[0]:
        pass
    assert counted() == {ids["edits"][0]}
    assert len(children()) == 1
    admin = sign_in(browser, console, ADMIN)
    admin.goto(console.url + "/audit")
    kinds = set(admin.locator("table.audit tbody tr").evaluate_all("rs => rs.map(r => r.dataset.kind)"))
    assert {"quarantine_retry", "edit_choice", "duplicate_decision", "sign_in"} <= kinds
    with admin.expect_download() as dl:
        admin.click("text=Xuất CSV")
    assert "edit_choice" in Path(dl.value.path()).read_text(encoding="utf-8")
    admin.context.close()


def test_bad_input_changes_nothing(console: Console, browser: Any) -> None:
    from console.sessions import COOKIE, make_cookie
    from sync_server.auth import load_secret

    c = httpx.Client(base_url=console.url)
    r = c.post("/login", data={"username": OFFICER, "password": "sai-mat-khau"})
    assert r.status_code == 401 and "Sai tên đăng nhập" in r.text
    r = c.post("/login", data={"username": OFFICER, "password": PASSWORD})
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=lax" in r.headers["set-cookie"].lower()
    r = c.post("/quality/retry", data={"doc_id": console.ids["mine_doc"], "csrf": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post("/users", data={"username": "x" * 70_000})
    assert r.status_code in (400, 403)
    r = c.post("/quality/retry", content=b"\xff\xfe not a form", headers={"content-type": "text/plain"})
    assert r.status_code == 400
    old = make_cookie(load_secret(console.settings), OFFICER, now=time.time() - 3 * 3600)
    r = httpx.get(console.url + "/", cookies={COOKIE: old})
    assert r.status_code == 303 and "expired=1" in r.headers["location"]
    r = httpx.get(console.url + "/", cookies={COOKIE: old.rsplit(".", 1)[0] + ".00"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_overview_page_weight_under_slow_3g(console: Console, browser: Any, artifacts: Path) -> None:
    page = sign_in(browser, console, OFFICER)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    # Chromium DevTools' "Slow 3G" preset: 500 kbit/s × 0.8 each way, 400 ms × 5 latency.
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 2000,
            "downloadThroughput": 500 * 1000 / 8 * 0.8,
            "uploadThroughput": 500 * 1000 / 8 * 0.8,
        },
    )
    sizes: list[float] = []
    cdp.on("Network.loadingFinished", lambda e: sizes.append(e["encodedDataLength"]))
    start = time.monotonic()
    page.goto(console.url + "/", wait_until="domcontentloaded")
    usable = time.monotonic() - start
    page.wait_for_load_state("load")
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " const rs = performance.getEntriesByType('resource');"
        " return {transfer: n.transferSize + rs.reduce((a, r) => a + r.transferSize, 0),"
        " resources: rs.length,"
        " ttfb: n.responseStart - n.requestStart, dcl: n.domContentLoadedEventEnd}; }"
    )
    total = max(sum(sizes), timing["transfer"])
    line = (
        f"overview first load under Slow 3G: {total / 1024:.1f} KB transferred in {len(sizes)} request(s), "
        f"usable (DOMContentLoaded) after {usable:.2f} s (of which the emulated latency is 2.0 s; "
        f"navigation timing {timing})"
    )
    (artifacts / "console-page-weight.txt").write_text(line + "\n", encoding="utf-8")
    print(line)
    assert total <= 150 * 1024
    # The preset adds 2 s of latency to every request, so no page can be usable before 2 s under it: the
    # budget checked is our share on top of that (one gzipped request); the figure is written above.
    assert usable - 2.0 <= 2.0
    page.context.close()
