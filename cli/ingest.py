"""Operator commands: `carecheck worker|beat|ingest|status|registry duplicates`."""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from cli.progress import counting
from core.errors import Problem
from core.settings import Settings, get_settings


def _console() -> Console:
    # Piped into a file or grep, rich would wrap tables at 80 columns and split ids; keep rows whole there.
    return Console() if sys.stdout.isatty() else Console(width=220)


registry_app = typer.Typer(no_args_is_help=True, help="Sổ đăng ký trẻ em / the child registry.")


def worker(
    beat: bool = typer.Option(False, "--beat", help="Chạy kèm lịch (beat) / embed the beat scheduler (-B)."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="Worker processes."),
    pool: str = typer.Option("prefork", "--pool", help="Celery pool: prefork or solo."),
    hostname: str = typer.Option("", "--hostname", "-n", help="Worker node name (default celery@host)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
) -> None:
    """Chạy tiến trình xử lý (Celery worker) / run a Celery worker that follows the submissions feed."""
    from aggregator.celery_app import app

    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        "-Q",
        "carecheck",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv += ["-n", hostname]
    if beat:
        argv += ["-B", "-s", str(get_settings().var_dir / "celerybeat-schedule")]
    app.worker_main(argv)


def beat(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Chạy lịch gửi việc (Celery beat) / run the scheduler: follow the feed each second, retry quarantine."""
    from aggregator.celery_app import app

    app.start(["beat", f"--loglevel={loglevel}", "-s", str(get_settings().var_dir / "celerybeat-schedule")])


def ingest(
    once: bool = typer.Option(False, "--once", help="Dừng khi đã xử lý hết / stop when caught up."),
    replay: bool = typer.Option(
        False,
        "--replay",
        help="Đọc lại toàn bộ phiếu từ đầu (sau khi nâng cấp thêm cột) / re-read the whole feed from the "
        "start, e.g. after an upgrade added columns; safe to repeat.",
    ),
) -> None:
    """Xử lý phiếu ngay trong tiến trình này / run the follower in-process (no broker needed)."""
    from aggregator import follower

    settings = get_settings()
    console = Console()
    if replay:
        # rows are upserted by submission id, so re-reading changes nothing but what the new code reads
        # differently; a follower running elsewhere loses its compare-and-swap and re-reads from 0 too
        old = follower.reset_checkpoint(settings)
        console.print(f"Đọc lại từ đầu / replaying from the start (was at seq {old})")
        from core.secrets import key_id, pseudonym_key

        console.print(f"Mã khoá bí danh / pseudonym key id: {key_id(pseudonym_key(settings))}")
    total = 0
    t0 = time.monotonic()
    with counting("Xử lý phiếu / ingesting", _changes_behind(settings)) as (bar, task):
        while True:
            # short turns, so the bar moves; each page still commits with its checkpoint
            stats = follower.follow(settings, budget_s=2.0)
            total += stats.ingested
            if stats.pages:
                bar.advance(task, stats.ingested + stats.quarantined)
                bar.console.print(
                    f"Đã xử lý / ingested {stats.ingested} phiếu ({stats.rows} dòng / rows), "
                    f"cách ly / quarantined {stats.quarantined}, seq {stats.seq}"
                )
            if stats.locked_out:
                bar.console.print("Một tiến trình khác đang xử lý / another follower is running; waiting…")
            if stats.caught_up and not stats.locked_out:
                retried = follower.retry_quarantine(settings)
                if retried["retried"]:
                    bar.console.print(f"Thử lại phiếu cách ly / quarantine retried: {retried}")
                if once:
                    break
            if stats.locked_out or stats.caught_up:
                time.sleep(1.0)  # nothing new (or another follower busy): poll again in a second
    console.print(
        f"[green]Đã cập nhật đến seq {stats.seq}[/] / caught up: {total} submissions in "
        f"{time.monotonic() - t0:.1f} s"
    )


def _changes_behind(settings: Settings) -> int | None:
    """How many changes the feed has past the checkpoint (the bar's total), or None if the store won't say."""
    from aggregator.status import gather
    from core.couch import Couch

    try:
        Couch.from_settings(settings).close()  # ingesting needs the store: the embedded one starts here
        behind = gather(settings, ping=False).get("changes_behind")
    except Problem:
        return None
    return behind if isinstance(behind, int) else None


def status(
    lang: str = typer.Option("", "--lang", help="vi | en (default: both)."),
) -> None:
    """Tình trạng xử lý / feed lag, quarantine, workers."""
    from aggregator.status import LABELS, gather

    info = gather(get_settings())
    table = Table(show_header=False)
    for key, value in info.items():
        vi, en = LABELS.get(key, (key, key))
        label = vi if lang == "vi" else en if lang == "en" else f"{vi} / {en}"
        if key == "workers":
            value = (
                "không rõ / unknown"
                if value is None
                else (", ".join(value) or "0 (carecheck worker + beat?)")
            )
        table.add_row(label, "—" if value is None else str(value))
    _console().print(table)
    from core.throttle import security_lines

    for line in security_lines(get_settings(), lang):
        _console().print(line)


@registry_app.command("duplicates")
def duplicates(
    all_: bool = typer.Option(False, "--all", help="Cả các mục đã giải quyết / include resolved ones."),
) -> None:
    """Liệt kê hồ sơ trẻ em có thể trùng / list conflicting child records for a person to resolve."""
    from sqlmodel import Session

    from aggregator.db import get_engine, init_db
    from aggregator.models import Child
    from aggregator.registry import list_conflicts
    from core.localtime import shown

    settings = get_settings()
    init_db(settings)
    console = _console()
    with Session(get_engine(settings)) as s:
        rows = list_conflicts(s, include_resolved=all_)
        if not rows:
            console.print("Không có hồ sơ trùng cần xem xét / no registry duplicates to review.")
            return
        table = Table(
            "id", "trẻ A / child A", "trẻ B / child B", "lý do / reason", "xã / commune", "ngày / at"
        )
        for c in rows:
            a = s.get(Child, c.child_id_a)
            table.add_row(
                c.id,
                c.child_id_a,
                c.child_id_b,
                c.reason,
                (a.commune_code if a else "") or "",
                shown(c.created_at),
            )
        console.print(table)
        console.print(f"{len(rows)} mục / entries")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("ingest")(ingest)
    app.command("status")(status)
    app.add_typer(registry_app, name="registry", help="Sổ đăng ký trẻ em / the child registry.")
