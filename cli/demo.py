"""`carecheck demo`: the main job, end to end, on embedded defaults.

Forms are built, the local store started, accounts created, a real sync server and a real Celery worker
started as separate processes (the worker on the server-less SQLite broker), a day of field work simulated
across all 15 districts through the OpenRosa API (island and border households are sent days after the
visit), the feed ingested, the indicators rebuilt and the district report written to disk. Every step is a
piece an operator also runs by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from core.errors import BadRequest, Problem
from core.settings import Settings

DEMO_USERS = [
    # name, password, role, area — a province-wide collaborator sends the simulated field work
    ("ctv_demo", "ctv-demo-2026", "collaborator", "899"),
    ("tinh_demo", "tinh-demo-2026", "province", "91"),
    ("phuquoc_demo", "phuquoc-demo-2026", "district", "911"),
]
REPORT_DISTRICT = "911"  # Phú Quốc: an island district, the point of the product


@dataclass
class DemoResult:
    """What a demo run did: the report, and per batch ("earlier YYYYQn", "day", "edits", "facilities") how
    many records were new and how many the store already had (a resend)."""

    report: Path
    day: date
    sent: dict[str, Counter[str]] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(c[kind] for c in self.sent.values())


def _tally(outcomes: Iterable[Any]) -> Counter[str]:
    c: Counter[str] = Counter()
    for o in outcomes:
        c[{"accepted": "new", "duplicate": "resent"}.get(o.status, "failed")] += 1
    return c


def _say_tally(console: Console, what: str, c: Counter[str]) -> None:
    console.print(
        f"  {what}: {c['new']} mới / new, {c['resent']} đã nhận trước đó (gửi lại) / already received "
        f"(resent), {c['failed']} lỗi / failed"
    )


def _carecheck() -> list[str]:
    exe = Path(sys.executable).parent / "carecheck"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]


def _env(settings: Settings, couch_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CARECHECK_VAR_DIR"] = str(settings.var_dir)
    env["CARECHECK_COUCHDB_URL"] = couch_url
    return env


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Problem(
                f"Máy chủ đồng bộ không khởi động được; xem {log}.",
                f"The sync server exited at start-up; see {log}.",
            )
        try:
            if httpx.head(url, timeout=2).status_code in (204, 401):  # 401: up, asking phones to log in
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise Problem(
        f"Máy chủ đồng bộ không trả lời sau {timeout:.0f}s; xem {log}.",
        f"The sync server did not answer within {timeout:.0f}s; see {log}.",
    )


def run_demo(
    settings: Settings,
    *,
    households: int = 600,
    seed: int = 2026,
    period: str | None = None,
    today: date | None = None,
) -> DemoResult:
    """Run the whole main job. The field work is yesterday's (``today`` moves the clock, e.g. to show the next
    day): the same day again is a resend of every record, another day adds that day's field work."""
    from cli.forms import print_built
    from cli.simulate import default_period as current_quarter
    from core.couch import Couch
    from core.services import ensure_embedded_couch, free_port
    from core.stores import ensure_store
    from forms.build import build_all
    from sync_server.auth import Accounts

    console = Console(width=max(Console().width, 130))
    started = time.monotonic()
    today = today or date.today()
    day = today - timedelta(days=1)  # the phones send yesterday's work (islands: days older)
    period = period or current_quarter(day)
    result = DemoResult(Path(), day)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.var_dir / "logs"

    console.rule("[bold]1. Biên dịch biểu mẫu / Build the XLSForms")
    built = build_all(settings.forms_src_dir, settings.effective_forms_build_dir)
    print_built(built, console)

    console.rule("[bold]2. Kho dữ liệu và tài khoản / Local store and accounts")
    couch_url = settings.couchdb_url or ensure_embedded_couch(settings)
    couch = Couch(couch_url, settings.couchdb_user, settings.couchdb_password)
    ensure_store(couch, settings)
    accounts = Accounts(couch, settings)
    for name, password, role, area in DEMO_USERS:
        try:
            accounts.add(name, password, role, area)
            console.print(f"  tạo / created {name} ({role}, {area})")
        except BadRequest:
            console.print(f"  có sẵn / exists {name} ({role}, {area})")
    console.print(f"  CouchDB: {couch_url} (dữ liệu / data: {settings.var_dir / 'couch'})")

    env = _env(settings, couch_url)
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    cli = _carecheck()
    with (
        _process(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)], env, logs / "server.log"
        ) as srv,
        _process([*cli, "worker", "--beat", "--concurrency", "1"], env, logs / "worker.log") as worker,
    ):
        _wait_http(f"{server}/submission", srv, logs / "server.log")
        console.print(f"  máy chủ đồng bộ / sync server: {server}  (log {logs / 'server.log'})")
        console.print(f"  Celery worker + beat (pid {worker.pid}, broker {settings.effective_broker_url})")

        console.rule(
            f"[bold]3. Một ngày công tác thực địa / A day of field work ({day}): {households} hộ, 15 huyện"
        )
        from cli.simulate import run_simulation

        user, password = DEMO_USERS[0][0], DEMO_USERS[0][1]
        # Earlier rounds of visits (the three quarters before), so the report's trends have a history.
        earlier = _previous_quarters(period, 3)
        for k, quarter in enumerate(earlier, start=1):
            past = run_simulation(
                server, user, password, max(1, households // 3), seed=seed + k, period=quarter, concurrency=4,
                today=today,
            )
            result.sent[f"earlier {quarter}"] = _tally(past.outcomes)
            tally = result.sent[f"earlier {quarter}"]
            _say_tally(console, f"vòng thăm trước / earlier round {quarter}", tally)
            if past.failed:
                _not_sent(past.failed, f"{quarter}: ", logs)
        t0 = time.monotonic()
        report = run_simulation(
            server,
            user,
            password,
            households,
            seed=seed,
            day=day,
            concurrency=4,
            edits=max(1, households // 100),
            today=today,
        )
        _print_arrivals(console, report, time.monotonic() - t0)
        result.sent["day"] = _tally(report.outcomes)
        result.sent["edits"] = _tally(report.edit_outcomes)
        _say_tally(console, f"ngày / day {day}", result.sent["day"])
        _say_tally(console, "sửa phiếu (deprecatedID) / corrections", result.sent["edits"])
        if report.failed:
            _not_sent(report.failed, "", logs)
        bad_edits = [o for o in report.edit_outcomes if not o.ok]
        if bad_edits:
            _not_sent(bad_edits, "corrections: ", logs)
        result.sent["facilities"] = _send_facility_checks(console, server, user, password, seed, day)
        failed = result.sent["facilities"]["failed"]
        if failed:
            raise Problem(
                f"{failed} phiếu trạm y tế không gửi được; xem {logs / 'server.log'}.",
                f"{failed} health-station records were not sent; see {logs / 'server.log'}.",
            )

        console.rule("[bold]4. Tổng hợp / Ingestion by the Celery worker")
        _wait_ingested(console, settings, couch, worker, logs / "worker.log")

    console.rule("[bold]5. Chỉ tiêu và báo cáo / Indicators and the district report")
    result.report = _indicators_and_report(console, settings, period)
    _what_next(console, settings, couch_url, result, time.monotonic() - started)
    return result


def _what_next(
    console: Console, settings: Settings, couch_url: str, result: DemoResult, seconds: float
) -> None:
    """The last screen: what is still running, how to stop it, the accounts, three things to try."""
    console.rule(f"[bold]Xong / Done in {seconds:.0f} s")
    console.print(
        f"  Tổng / in all: {result.total('new')} phiếu mới / new records, {result.total('resent')} đã nhận "
        "trước đó / already received (chạy lại cùng ngày là gửi lại / a rerun on the same day is a resend; "
        "ngày khác thêm công việc của ngày đó / another day adds that day's field work)."
    )
    if settings.embedded_couch:
        console.print(
            "  [bold]Vẫn chạy / still running:[/] kho dữ liệu nhúng / the embedded store (pouchdb-server) "
            f"at {couch_url}, data in {settings.var_dir / 'couch'}. Máy chủ đồng bộ và worker đã dừng / the "
            "sync server and the worker have stopped."
        )
        console.print(
            "  Dừng / stop it: [bold].venv/bin/carecheck local stop[/]  ·  xoá hết / delete everything: "
            "[bold]make clean[/]"
        )
    else:
        console.print(f"  Nothing of the demo is still running (CouchDB at {couch_url} is yours).")
    console.print(
        "  Tài khoản demo / demo accounts (tên / name, mật khẩu / password, vai trò / role, vùng / area):"
    )
    for name, password, role, area in DEMO_USERS:
        console.print(f"    {name:<14} {password:<18} {role:<13} {area}")
    console.print("  Thử / try:")
    console.print(
        "    1. [bold].venv/bin/carecheck serve --host 0.0.0.0 --port 8000[/], then ODK Collect → server "
        "http://<this machine>:8000, user ctv_demo: fill and send a household visit."
    )
    console.print(
        "    2. [bold].venv/bin/carecheck report --level province --area 91 --period "
        f"{result.report.stem.rsplit('-', 1)[-1]} --format xlsx --out province.xlsx[/] (aggregates only)."
    )
    console.print(
        f"    3. Mở / open [bold]{result.report}[/] in a browser; then [bold]make demo[/] again tomorrow: "
        "the earlier rounds are resent, the new day's field work is added."
    )


def _not_sent(failed: list[Any], what: str, logs: Path) -> None:
    """One line for the operator: why the demo's records were not sent, and what to do."""
    if all(o.http_status == 409 for o in failed):
        # instanceIDs are keyed on seed, index and day, and the answers on seed and index: a 409 (same
        # instanceID, other content) means var/ was filled by another version of the forms or of carecheck
        raise Problem(
            f"{what}{len(failed)} phiếu có mã (instanceID) đã nằm trong kho demo ở var/ nhưng nội dung khác: "
            "kho được tạo bởi phiên bản khác của biểu mẫu hoặc của carecheck. Chạy `make clean` rồi "
            "`make demo` để bắt đầu lại (xoá dữ liệu demo).",
            f"{what}{len(failed)} records have instanceIDs the demo store in var/ already holds with other "
            "content: it was filled by another version of the forms or of carecheck. Run `make clean`, then "
            "`make demo`, to start afresh (deletes the demo data).",
        )
    first = failed[0]
    raise Problem(
        f"{what}{len(failed)} phiếu không gửi được (ví dụ: HTTP {first.http_status or '—'} {first.message});"
        f" xem {logs / 'server.log'}.",
        f"{what}{len(failed)} records were not sent (e.g. HTTP {first.http_status or '—'} {first.message});"
        f" see {logs / 'server.log'}.",
    )


def _previous_quarters(quarter: str, n: int) -> list[str]:
    """The ``n`` quarters before ``quarter``, oldest first (``2026Q4``, 3 → ``2026Q1`` … ``2026Q3``)."""
    year, q = int(quarter[:4]), int(quarter[-1])
    out = []
    for _ in range(n):
        year, q = (year - 1, 4) if q == 1 else (year, q - 1)
        out.append(f"{year}Q{q}")
    return out[::-1]


def _send_facility_checks(
    console: Console, server: str, user: str, password: str, seed: int, day: date
) -> Counter[str]:
    """One health-station checklist per commune, sent like the households; returns new/resent/failed."""
    from cli.simulate import download_form
    from simulator.client import send_all
    from simulator.facilities import FORM_ID, generate_facilities
    from simulator.fill import fill

    template = download_form(server, user, password, form_id=FORM_ID)
    visits = generate_facilities(seed, day)
    records = ((fill(template, v), v.device_id, v.district) for v in visits)  # type: ignore[arg-type]
    outcomes = send_all(server, user, password, records, concurrency=4)
    tally = _tally(outcomes)
    _say_tally(console, "Phiếu trạm y tế xã / commune health-station checklists", tally)
    return tally


def _print_arrivals(console: Console, report: object, seconds: float) -> None:
    from statistics import median

    from core.orgunits import districts

    names = districts()
    by_district = report.by_district  # type: ignore[attr-defined]
    lags: dict[str, list[float]] = {}
    for h in report.households:  # type: ignore[attr-defined]
        lags.setdefault(h.district, []).append((h.send_after - h.captured_at).total_seconds() / 3600)
    table = Table(title=f"Phiếu đã nhận theo huyện / submissions received per district ({seconds:.0f} s)")
    table.add_column("Huyện / district", min_width=28, no_wrap=True)
    for head in (
        "gửi / sent",
        "mới / accepted",
        "đã nhận / already",
        "gửi lại / retried",
        "lỗi / failed",
        "trễ (giờ) / lag h, median",
    ):
        table.add_column(head, justify="right")
    for code in sorted(by_district):
        c = by_district[code]
        lag = f"{median(lags[code]):.0f}" if lags.get(code) else ""
        table.add_row(
            f"{code} {names[code].name if code in names else ''}",
            str(c["sent"]),
            str(c["accepted"]),
            str(c["already_received"]),
            str(c["retried"]),
            str(c["failed"]),
            lag,
        )
    console.print(table)


def _wait_ingested(
    console: Console,
    settings: Settings,
    couch: object,
    worker: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 300,
) -> None:
    from aggregator.status import gather

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise Problem(f"Celery worker đã dừng; xem {log}.", f"The Celery worker exited; see {log}.")
        st = gather(settings, ping=False)
        console.print(
            f"  còn chờ / behind: {st.get('changes_behind')}  phiếu / submissions: "
            f"{st.get('raw_submissions')}  trẻ em / children: {st.get('children')}  "
            f"cảnh báo / flags: {st.get('quality_flags')}  cách ly / quarantined: {st.get('quarantine')}"
        )
        if st.get("changes_behind") == 0 and st.get("raw_submissions"):
            return
        time.sleep(3)
    raise Problem(
        f"Chưa tổng hợp xong sau {timeout:.0f}s; xem {log}.",
        f"Ingestion did not catch up within {timeout:.0f}s; see {log}.",
    )


def _indicators_and_report(console: Console, settings: Settings, period: str) -> Path:
    from aggregator.db import get_engine, session_scope
    from aggregator.reports.render import render
    from aggregator.rollup import query_indicators, rebuild

    stats = rebuild(get_engine(settings))
    console.print(
        f"  tính lại toàn bộ / full rebuild: {stats['indicators']} chỉ tiêu / indicators, "
        f"{stats['rows']:,} ô / cells in {stats['seconds']:.1f} s"
    )
    out = settings.var_dir / "reports" / f"bao-cao-{REPORT_DISTRICT}-{period}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        render(
            settings,
            level="district",
            area=REPORT_DISTRICT,
            period=period,
            hierarchy="legacy",
            fmt="html",
            lang="vi",
        )
    )
    with session_scope(settings) as session:
        rows = query_indicators(session, level="province", area="91", period=period)
    table = Table(
        title=f"Tỉnh Kiên Giang (cũ) — {period}: chỉ tiêu so với kế hoạch / indicators against the plan"
    )
    for head in ("Chỉ tiêu / indicator", "tử số", "mẫu số", "giá trị", "mục tiêu", "đánh giá"):
        table.add_column(head, justify="left" if head.startswith("Chỉ") else "right")
    from aggregator.indicators.status import label, shows_denominator

    colour = {"met": "green", "close": "yellow", "not_met": "red"}
    for r in rows:
        target = f"{r.target['op']} {r.target['value']}" if r.target and r.target.get("op") else ""
        value = "" if r.value is None else (f"{r.value:,.0f}" if r.unit == "count" else f"{r.value:.1f}")
        words = label(r.status, "vi")  # rule 9: the same words as the API, reports and `indicators show`
        mark = f"[{colour[r.status]}]{words}[/]" if r.status in colour else words
        den = _num(r.denominator) if shows_denominator(r.unit) else ""
        table.add_row(r.name_vi, _num(r.numerator), den, value, target, mark)
    console.print(table)
    console.print(f"\n[bold]Báo cáo huyện / district report:[/] {out}")
    return out


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"
