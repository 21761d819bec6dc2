"""`carecheck report`: write an org unit's indicator report for a period as HTML, XLSX or CSV."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from aggregator.reports.render import render
from core.errors import BadRequest, ConfigError
from core.settings import get_settings


def _write_atomically(out: Path, body: bytes) -> None:
    """Write beside the target and rename, so a reader never opens half a report."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(
            f"Không ghi được tệp báo cáo '{out}': {exc.strerror}.",
            f"Could not write the report file '{out}': {exc.strerror}.",
        ) from exc


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        level: Annotated[str, typer.Option(help="commune | district | province")],
        area: Annotated[str, typer.Option(help="Org-unit code: 91, a legacy district (911) or a commune")],
        period: Annotated[str, typer.Option(help="2026, 2026Q4, 2026-11 or SY2026-2027")],
        out: Annotated[Path, typer.Option(help="Where to write the report")],
        hierarchy: Annotated[str, typer.Option(help="legacy or 2025")] = "legacy",
        fmt: Annotated[str, typer.Option("--format", help="html | xlsx | csv")] = "html",
        lang: Annotated[str, typer.Option(help="vi | en (default: the language setting)")] = "",
    ) -> None:
        """Write the indicator report of one org unit and period (aggregates only; small cells suppressed)."""
        settings = get_settings()
        if out.is_dir():
            raise BadRequest(
                f"'{out}' là một thư mục; hãy cho tên tệp, ví dụ {out / ('report.' + fmt)}.",
                f"'{out}' is a directory; give a file name, e.g. {out / ('report.' + fmt)}.",
            )
        from cli.progress import working

        with working(f"Đang lập báo cáo / writing the report {level} {area} {period}"):
            body = render(
                settings,
                level=level,
                area=area,
                period=period,
                hierarchy=hierarchy,
                fmt=fmt,
                lang=lang or settings.language,
            )
        _write_atomically(out, body)
        typer.echo(f"{out} ({len(body):,} bytes)")
