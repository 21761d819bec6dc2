"""`carecheck simulate`: download forms like a phone, fill N synthetic households, send them, summarise."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated

import typer

from core.errors import Problem
from core.orgunits import districts
from simulator.client import OpenRosaClient, Outcome, send_all
from simulator.fill import FormTemplate, fill, load_form
from simulator.households import FORM_ID, Household, corrected, generate, period_range


@dataclass
class Report:
    """Everything a run did: the households (in sending order) and one outcome per household.

    ``by_district[code]`` counts ``sent``, ``accepted``, ``already_received``, ``retried``, ``failed`` and
    ``posts`` (cli/demo.py prints them); ``failed`` includes rejected records.
    """

    form_version: str
    households: list[Household]
    outcomes: list[Outcome]
    by_district: dict[str, Counter[str]] = field(default_factory=dict)
    edits: list[Household] = field(default_factory=list)          # corrections sent after the originals
    edit_outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes + self.edit_outcomes if not o.ok]

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.by_district.values():
            total.update(c)
        return total


def default_period(today: date | None = None) -> str:
    today = today or date.today()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def visit_window(period: str, today: date | None = None) -> tuple[date, date]:
    """The period's days, up to yesterday at the latest: phones never capture a visit in the future."""
    first, last = period_range(period)
    yesterday = (today or date.today()) - timedelta(days=1)
    return first, max(first, min(last, yesterday))


def download_form(server: str, user: str, password: str, *, timeout: float = 30.0,
                  max_retry_seconds: float = 120.0, basic: bool = False,
                  form_id: str = FORM_ID) -> FormTemplate:
    """The server's current form (household by default), fetched like a phone: formList, then download."""
    phone = OpenRosaClient(server, user, password, timeout=timeout, max_retry_seconds=max_retry_seconds,
                           basic=basic)
    with phone:
        forms = {f.form_id: f for f in phone.form_list()}
        remote = forms.get(form_id)
        if remote is None:
            raise Problem(f"Máy chủ {server} không có biểu mẫu {form_id} (chạy 'carecheck forms build').",
                          f"The server {server} does not offer form {form_id}; "
                          "run 'carecheck forms build' there.")
        return load_form(phone.download(remote))


def run_simulation(server: str, user: str, password: str, households: int, *, seed: int = 1,
                   period: str | None = None, concurrency: int = 4, photo_bytes: int = 20_000,
                   timeout: float = 30.0, max_retry_seconds: float = 120.0,
                   on_done: Callable[[Outcome], None] | None = None,
                   template: FormTemplate | None = None, day: date | None = None, edits: int = 0,
                   basic: bool = False, today: date | None = None) -> Report:
    """Fill ``households`` households on the server's household form and send them, in send_after order.

    ``day``: simulate one day of field work instead of a period — what the phones send that day (mainland
    visits of the day; island and border visits captured offline in the days before). ``edits``: afterwards,
    send that many corrections (``deprecatedID``), households with implausible answers first. ``today``: the
    date the run takes as today (default: the real one).
    """
    if day is not None and day > (today or date.today()):
        raise Problem(f"Ngày {day} ở tương lai.", f"--day {day} is in the future.")
    if template is None:
        template = download_form(server, user, password, timeout=timeout, max_retry_seconds=max_retry_seconds,
                                 basic=basic)
    first, last = visit_window(period or default_period(today), today)
    hhs = sorted(generate(households, seed, first=first, last=last, send_day=day), key=lambda h: h.send_after)
    records = ((fill(template, h, photo_bytes=photo_bytes), h.device_id, h.district) for h in hhs)
    outcomes = send_all(server, user, password, records, concurrency=concurrency, on_done=on_done,
                        timeout=timeout, max_retry_seconds=max_retry_seconds, basic=basic)
    report = Report(template.version, hhs, outcomes)
    for o in outcomes:
        c = report.by_district.setdefault(o.tag, Counter())
        c["sent"] += 1
        c[{"accepted": "accepted", "duplicate": "already_received"}.get(o.status, "failed")] += 1
        c["retried"] += 1 if o.retries else 0
        c["posts"] += o.posts
    if edits:
        sent = [h for h, o in zip(hhs, outcomes, strict=True) if o.ok]
        chosen = sorted(sent, key=lambda h: (not h.odd, h.index))[:edits]
        report.edits = [corrected(h, seed) for h in chosen]
        report.edit_outcomes = send_all(
            server, user, password,
            ((fill(template, e, photo_bytes=photo_bytes), e.device_id, e.district) for e in report.edits),
            concurrency=concurrency, on_done=on_done, timeout=timeout, max_retry_seconds=max_retry_seconds,
            basic=basic)
    return report


def simulate(
    server: Annotated[str, typer.Option("--server", help="Server base URL, as set on the phones.")],
    user: Annotated[str, typer.Option("--user", help="Collaborator account.")],
    password: Annotated[str, typer.Option("--password", help="Its password.")],
    households: Annotated[int, typer.Option("--households", min=1, help="Households to visit.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Same seed and day of field work, same households and "
                                                      "instanceIDs: a rerun that day is a resend.")] = 1,
    period: Annotated[str | None, typer.Option("--period", help="Visit period (2026, 2026Q4, 2026-11); "
                                                                "default the current quarter up to yesterday."
                                               )] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Phones sending.")] = 4,
    photo_bytes: Annotated[int, typer.Option("--photo-bytes", min=200, help="Size of each vaccination-card "
                                                                            "photo.")] = 20_000,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for one answer.")] = 30.0,
    max_retry_seconds: Annotated[float, typer.Option("--max-retry-seconds",
                                                     help="Give up on a record after this long.")] = 120.0,
    day: Annotated[str | None, typer.Option(
        "--day", help="A day of field work (YYYY-MM-DD): what the phones send that day; island and border "
                      "households were captured days before.")] = None,
    edits: Annotated[int, typer.Option("--edits", min=0, help="Then send this many corrections "
                                                              "(deprecatedID), odd answers first.")] = 0,
    basic: Annotated[bool, typer.Option("--basic", help="Basic instead of Digest auth (HTTPS servers "
                                                        "only).")] = False,
) -> None:
    """Simulate collaborators: fill households on the server's own forms and send them like ODK Collect."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(stderr=True)
    try:
        send_day = date.fromisoformat(day) if day else None
    except ValueError as exc:
        raise Problem(f"--day '{day}' không phải ngày YYYY-MM-DD.",
                      f"--day '{day}' is not a YYYY-MM-DD date.") from exc
    if basic and not server.lower().startswith("https://"):
        raise Problem("--basic chỉ dùng với máy chủ https:// (mật khẩu sẽ lộ trên đường truyền).",
                      "--basic needs an https:// server: Basic auth sends the password in the clear.")
    template = download_form(server, user, password, timeout=timeout, max_retry_seconds=max_retry_seconds,
                             basic=basic)
    with Progress(TextColumn("[bold]Gửi phiếu / sending"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[state]}"), console=console) as progress:
        task = progress.add_task("send", total=households + edits, state="")
        tally: Counter[str] = Counter()

        def done(o: Outcome) -> None:
            tally[o.status] += 1
            progress.update(task, advance=1, state=" ".join(f"{k}={v}" for k, v in sorted(tally.items())))

        report = run_simulation(server, user, password, households, seed=seed, period=period,
                                concurrency=concurrency, photo_bytes=photo_bytes, timeout=timeout,
                                max_retry_seconds=max_retry_seconds, on_done=done, template=template,
                                day=send_day, edits=edits, basic=basic)

    names = districts()
    cols = ["sent", "accepted", "already_received", "retried", "failed"]
    table = Table(title=f"{FORM_ID} v{report.form_version}: theo huyện / by district")
    table.add_column("Huyện / district")
    for head in ("gửi\nsent", "mới\naccepted", "đã nhận\nalready received", "gửi lại\nretried",
                 "lỗi\nfailed"):
        table.add_column(head, justify="right")
    for code in sorted(report.by_district):
        c = report.by_district[code]
        table.add_row(f"{code} {names[code].name if code in names else ''}", *(str(c[k]) for k in cols))
    total = report.totals()
    table.add_row("[bold]Tổng / total", *(f"[bold]{total[k]}" for k in cols))
    Console().print(table)
    if report.edits:
        e = Counter(o.status for o in report.edit_outcomes)
        Console().print(f"Phiếu sửa / corrections (deprecatedID): {len(report.edits)} — mới / accepted "
                        f"{e['accepted']}, đã nhận trước đó / already received {e['duplicate']}, "
                        f"lỗi / failed {e['rejected'] + e['failed']}")
    for o in report.failed[:20]:
        console.print(f"[red]{o.instance_id}: {o.status} {o.http_status or ''} {o.message}")
    if report.failed:
        n = len(report.failed)
        raise Problem(f"{n} phiếu chưa gửi được; chạy lại cùng --seed (trong ngày) để gửi lại.",
                      f"{n} record(s) not sent; run again with the same --seed (the same day) to resend.")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
