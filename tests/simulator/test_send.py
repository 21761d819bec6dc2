"""End to end: `carecheck simulate` through a faulty link to the real server (uvicorn + pouchdb-server)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from cli.simulate import run_simulation, visit_window
from core.services import CouchProcess
from core.settings import ROOT
from simulator.client import OpenRosaClient
from simulator.fill import FormTemplate, fill
from simulator.households import generate
from tests.simulator.conftest import PASSWORD, USER, LiveServer, start_server
from tests.support.faultproxy import FaultProxy, Faults

N = 2000
SEED = 28
PERIOD = "2026Q3"
CARECHECK = str(Path(sys.executable).parent / "carecheck")


def _simulate(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARECHECK, "simulate", "--server", url, "--user", USER, "--password", PASSWORD,
         "--households", str(N), "--seed", str(SEED), "--period", PERIOD, "--concurrency", "6",
         "--timeout", "2", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})


def _total_row(stdout: str) -> list[int]:
    line = next(ln for ln in stdout.splitlines() if "total" in ln)
    return [int(x) for x in line.replace("│", " ").split() if x.isdigit()]


@pytest.mark.slow
def test_2000_households_through_lost_responses_and_resets(live_server: LiveServer, template: FormTemplate,
                                                          artifacts: Path) -> None:
    # 2 % lost responses, 2 % resets, 1 % answers held back past the phone's 2 s timeout.
    faults = Faults(lost=0.02, reset=0.02, delay=0.01, delay_s=2.5)
    with FaultProxy(live_server.port, faults, seed=SEED) as proxy:
        t0 = time.monotonic()
        first = _simulate(proxy.url)
        first_s = time.monotonic() - t0
        assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
        sent, accepted, already, retried, failed = _total_row(first.stdout)
        # The link really was bad: responses were lost after the server stored the record, connections reset.
        assert proxy.counts["lost"] >= 20 and proxy.counts["reset"] >= 20, proxy.counts
        assert proxy.counts["delay"] >= 10, proxy.counts
        assert (sent, failed) == (N, 0) and accepted + already == N and retried >= 30
        # A lost response is resent and answered "already received" (or accepted, if the loss hit a HEAD/401).
        assert already >= 1

        # Exactly one stored record per generated instanceID: none lost, none doubled.
        hhs = generate(N, SEED, first=visit_window(PERIOD)[0], last=visit_window(PERIOD)[1])
        ids = live_server.submission_ids()
        assert len(ids) == N and set(ids) == {h.instance_id for h in hhs}
        docs = {r["id"]: r["doc"] for r in live_server.couch.all_docs(
            live_server.settings.submissions_db, include_docs=True)["rows"]}
        for h in hhs:
            doc = docs[h.instance_id]
            filled = fill(template, h)
            assert doc["xml_sha256"] == hashlib.sha256(filled.xml).hexdigest()
            assert set(doc.get("_attachments") or {}) == set(h.photos)
            assert doc["device_id"] == h.device_id and doc["org_unit"] == ["91", h.district, h.commune]

        # Same seed again: a resend of everything; nothing new is stored.
        t0 = time.monotonic()
        second = _simulate(proxy.url)
        second_s = time.monotonic() - t0
    assert second.returncode == 0, second.stderr[-3000:]
    assert _total_row(second.stdout) == [N, 0, N, _total_row(second.stdout)[3], 0]
    assert len(live_server.submission_ids()) == N
    figures = {"households": N, "first_run_s": round(first_s, 1), "resend_s": round(second_s, 1),
               "first_retried": retried, "first_already_received": already, "proxy": dict(proxy.counts)}
    (artifacts / "simulator_2000.json").write_text(json.dumps(figures, indent=2))
    print(f"\n2,000 households through the fault proxy: {figures}")


def test_photos_over_the_limit_are_split_into_several_posts(tmp_path: Path, couch_server: CouchProcess,
                                                            built_forms: Path) -> None:
    server = start_server(tmp_path, couch_server, built_forms, max_submission_bytes=60_000)
    try:
        first, last = visit_window(PERIOD)
        hh = next(h for h in generate(400, 3, first=first, last=last) if len(h.photos) >= 2)
        with OpenRosaClient(server.url, USER, PASSWORD) as phone:
            form = next(f for f in phone.form_list() if f.form_id == "household_child_check")
            from simulator.fill import load_form

            tpl = load_form(phone.download(form))
            filled = fill(tpl, hh, photo_bytes=40_000)   # each fits under 60 kB with the XML; two do not
            out = phone.submit(filled, hh.device_id)
            assert phone.accept_length == 60_000
            assert (out.status, out.posts) == ("accepted", len(hh.photos)), out
            doc = server.couch.get(server.settings.submissions_db, hh.instance_id)
            assert doc is not None and set(doc["_attachments"]) == set(hh.photos)
            for name in hh.photos:
                got = server.couch.get_attachment(server.settings.submissions_db, hh.instance_id, name)
                assert got == filled.attachments[name][1]
            # Sent again (the phone never heard back): every part is acknowledged, nothing is added.
            again = phone.submit(filled, hh.device_id)
            assert again.status == "duplicate" and len(server.submission_ids()) == 1

            # One photo alone bigger than the limit cannot be split: rejected with the server's message, once.
            big = fill(tpl, next(h for h in generate(400, 4, first=first, last=last) if h.photos),
                       photo_bytes=80_000)
            out = phone.submit(big, None)
            assert out.status == "rejected" and out.http_status == 413 and "60,000" in out.message
            assert out.retries == 0 and out.posts == 2  # the first 413 makes it ask HEAD again and retry once
            assert server.couch.get(server.settings.submissions_db, big.instance_id) is None

        # The same through the CLI's runner: households with two or more photos need several POSTs.
        report = run_simulation(server.url, USER, PASSWORD, 300, seed=5, period=PERIOD, photo_bytes=30_000,
                                concurrency=3)
        assert not report.failed
        multi = [o for o, h in zip(report.outcomes, report.households, strict=True) if len(h.photos) >= 2]
        assert multi and all(o.posts >= 2 for o in multi)
    finally:
        server.stop()


def test_wrong_password_is_one_line_and_exit_1(live_server: LiveServer) -> None:
    r = subprocess.run([CARECHECK, "simulate", "--server", live_server.url, "--user", USER,
                        "--password", "sai", "--households", "3", "--period", PERIOD],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("carecheck: ") and "401" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_visit_window_never_in_the_future() -> None:
    assert visit_window("2026Q4", today=date(2026, 11, 29)) == (date(2026, 10, 1), date(2026, 11, 28))
    assert visit_window("2026Q3", today=date(2026, 11, 29)) == (date(2026, 7, 1), date(2026, 9, 30))


def test_a_day_of_field_work_through_the_cli(live_server: LiveServer) -> None:
    day = date.today() - timedelta(days=1)
    before = set(live_server.submission_ids())
    r = subprocess.run([CARECHECK, "simulate", "--server", live_server.url, "--user", USER, "--password",
                        PASSWORD, "--households", "25", "--seed", "99", "--day", day.isoformat()],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env={"COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    assert _total_row(r.stdout)[:3] == [25, 25, 0]
    hhs = generate(25, 99, send_day=day)
    assert set(live_server.submission_ids()) - before == {h.instance_id for h in hhs}
    bad = subprocess.run([CARECHECK, "simulate", "--server", live_server.url, "--user", USER, "--password",
                          PASSWORD, "--day", "28/11/2026"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "carecheck: --day '28/11/2026' không phải ngày YYYY-MM-DD. / "
        "--day '28/11/2026' is not a YYYY-MM-DD date."]


def test_corrections_deprecate_the_originals(live_server: LiveServer) -> None:
    before = set(live_server.submission_ids())
    report = run_simulation(live_server.url, USER, PASSWORD, 30, seed=41, period=PERIOD, edits=5,
                            concurrency=3)
    assert not report.failed and len(report.edits) == 5
    assert [o.status for o in report.edit_outcomes] == ["accepted"] * 5
    db = live_server.settings.submissions_db
    for e in report.edits:
        doc = live_server.couch.get(db, e.instance_id)
        assert doc is not None and doc["deprecated_id"] == e.deprecated_id
        assert live_server.couch.get(db, e.deprecated_id) is not None  # the original is kept
    assert len(set(live_server.submission_ids()) - before) == 35
    again = run_simulation(live_server.url, USER, PASSWORD, 30, seed=41, period=PERIOD, edits=5)
    assert {o.status for o in again.outcomes + again.edit_outcomes} == {"duplicate"}
    assert len(set(live_server.submission_ids()) - before) == 35
