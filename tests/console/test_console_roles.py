"""Roles over plain HTTP (httpx, a real client of the real server): a commune officer sees one commune, a
district admin manages accounts of their district only, sign-in edge cases, the language switch."""

from __future__ import annotations

import re
import time
from datetime import date

import httpx

from tests.console.conftest import (
    COMMUNE_OFFICER,
    DISTRICT,
    DISTRICT_ADMIN,
    OFFICER,
    OTHER_DISTRICT,
    PASSWORD,
    Console,
)


def signed_in(console: Console, user: str) -> httpx.Client:
    c = httpx.Client(base_url=console.url)
    r = c.post("/login", data={"username": user, "password": PASSWORD})
    assert r.status_code == 303, r.text[:500]
    return c


def csrf(c: httpx.Client, path: str = "/") -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(path).text)
    assert m
    return m.group(1)


def test_commune_officer_sees_one_commune(console: Console) -> None:
    commune = console.ids["commune"]
    c = signed_in(console, COMMUNE_OFFICER)
    page = c.get("/")
    assert page.status_code == 200 and f"({commune})" in page.text
    assert 'table class="ranking"' not in page.text  # a commune has no units below it
    rows = c.get("/submissions").text
    assert set(re.findall(r"<td>(\d{5})</td>", rows)) == {commune}
    assert c.get(f"/submissions?unit={DISTRICT}").status_code == 403
    assert c.get(f"/submissions/{console.ids['mine_doc']}").status_code in (200, 404)
    assert c.get(f"/submissions/{console.ids['other_doc']}").status_code == 404
    assert c.get("/users").status_code == 403
    bad = c.get("/field?days=many")
    assert bad.status_code == 400 and "text/html" in bad.headers["content-type"] and "days" in bad.text
    ind = c.get(
        "/api/v1/indicators", params={"level": "district", "area": DISTRICT}, auth=(COMMUNE_OFFICER, PASSWORD)
    )
    assert ind.status_code == 403


def test_district_admin_manages_only_their_district(console: Console) -> None:
    c = signed_in(console, DISTRICT_ADMIN)
    token = csrf(c, "/users")
    commune = console.ids["commune"]

    def create(name: str, role: str, area: str) -> httpx.Response:
        return c.post(
            "/users",
            data={"csrf": token, "username": name, "password": "mk-123456", "role": role, "area": area},
        )

    assert create("ctv_khac", "collaborator", OTHER_DISTRICT).status_code == 403
    assert create("tinh_x", "province", "91").status_code == 403
    assert create("ctv/../x", "collaborator", commune).status_code == 400
    assert create("ctv_xa", "collaborator", commune).status_code == 201
    assert console.couch.get(console.settings.accounts_db, "user:ctv_khac") is None
    listing = c.get("/users").text
    assert "ctv_xa" in listing and "tinh_admin" not in listing
    assert c.post("/users/tinh_admin/password", data={"csrf": token, "password": "x" * 8}).status_code == 404
    assert c.post(f"/users/{DISTRICT_ADMIN}/active", data={"csrf": token, "active": "0"}).status_code == 400
    assert c.post("/users/ctv_xa/active", data={"csrf": token, "active": "0"}).status_code == 303
    assert console.couch.get(console.settings.accounts_db, "user:ctv_xa")["active"] is False
    audit = c.get("/audit").text
    assert "account ctv_xa" in audit
    assert c.get("/audit.csv").status_code == 403  # exports: the province admin


def test_sign_in_edges_and_language(console: Console) -> None:
    c = httpx.Client(base_url=console.url)
    r = c.post("/login", data={"username": OFFICER, "password": PASSWORD, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    evil = httpx.post(
        console.url + "/login",
        data={"username": OFFICER, "password": PASSWORD},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403 and "set-cookie" not in evil.headers
    https = httpx.post(
        console.url + "/login",
        data={"username": OFFICER, "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "secure" in https.headers["set-cookie"].lower()
    assert "Tổng quan" in c.get("/").text
    c.get("/lang/en?next=/")
    assert "Overview" in c.get("/").text
    token = csrf(c)
    copied = dict(c.cookies)
    out = c.post("/logout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert c.get("/").status_code == 303
    # A copy of the cookie taken before signing out no longer works either (the end time is recorded).
    assert httpx.get(console.url + "/", cookies=copied).status_code == 303
    again = signed_in(console, OFFICER)
    assert again.get("/").status_code == 200


def test_decisions_on_another_areas_records_are_refused(console: Console) -> None:
    """Forged posts naming records outside the officer's area: 404, and nothing is recorded or applied."""
    from sqlmodel import Session, select

    from aggregator.db import get_engine
    from aggregator.models import Quarantine, RegistryDecision, VersionChoice

    c = signed_in(console, OFFICER)
    token = csrf(c, "/quality")
    with Session(get_engine(console.settings)) as s:
        before = (
            len(s.exec(select(VersionChoice)).all()),
            len(s.exec(select(RegistryDecision)).all()),
            len(s.exec(select(Quarantine)).all()),
        )
    for path, data in [
        ("/quality/retry", {"doc_id": console.ids["other_doc"]}),
        ("/quality/edit", {"record": console.ids["other_doc"], "chosen": console.ids["other_doc"]}),
        ("/quality/duplicate", {"conflict": "rc-does-not-exist", "decision": "same"}),
    ]:
        r = c.post(path, data={"csrf": token, **data})
        assert r.status_code == 404 and "vùng của bạn" in r.text, (path, r.status_code)
    with Session(get_engine(console.settings)) as s:
        after = (
            len(s.exec(select(VersionChoice)).all()),
            len(s.exec(select(RegistryDecision)).all()),
            len(s.exec(select(Quarantine)).all()),
        )
    assert after == before


def test_province_officers_never_see_identifiable_answers(console: Console) -> None:
    from tests.console.conftest import ADMIN

    c = signed_in(console, ADMIN)
    page = c.get(f"/submissions/{console.ids['mine_doc']}")
    assert page.status_code == 200 and "•••" in page.text and "/reveal" not in page.text
    token = csrf(c, f"/submissions/{console.ids['mine_doc']}")
    r = c.post(f"/submissions/{console.ids['mine_doc']}/reveal", data={"csrf": token})
    assert r.status_code == 403 and "•••" not in r.text


def test_field_team_highlights_silent_devices(console: Console) -> None:
    """The seeded phone's last submission is days old: silent for more than a day, not for longer."""
    c = signed_in(console, OFFICER)
    page = c.get("/field", params={"days": 1}).text
    assert 'class="silent"' in page and "ctv_test_01" in page
    since = (date.today() - date(2026, 11, 10)).days + 1  # the seeded visits were received from 2026-11-10 on
    if since <= 365:
        assert '<tr class="silent">' not in c.get("/field", params={"days": since}).text
    assert c.get("/field", params={"days": 0}).status_code == 400


def test_console_sign_in_is_throttled_like_the_phones(console: Console) -> None:
    """core.throttle: ten wrong passwords lock the account; then even the right one answers 429 (a page with
    Retry-After), the lockout is in the audit log, and `carecheck user unlock` (Throttle.unlock) lifts it."""
    from console import audit
    from core.throttle import ACCOUNT_LIMIT, Throttle
    from sync_server.auth import Accounts

    Accounts(console.couch, console.settings).add("xa_khoa", PASSWORD, "commune", console.ids["commune"])
    c = httpx.Client(base_url=console.url)
    for _ in range(ACCOUNT_LIMIT):
        assert c.post("/login", data={"username": "xa_khoa", "password": "sai-mat-khau"}).status_code == 401
    locked = c.post("/login", data={"username": "xa_khoa", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0 and "khoá" in locked.text
    kinds = {e["kind"] for e in audit.search(console.couch, console.settings, actor="xa_khoa")}
    assert {"account_locked", "sign_in_failed"} <= kinds
    Throttle(console.couch, console.settings).unlock("xa_khoa", by="test")
    time.sleep(2.5)  # the server's throttle cache (CACHE_TTL 2 s)
    assert c.post("/login", data={"username": "xa_khoa", "password": PASSWORD}).status_code == 303
