"""`carecheck report`: write an org unit's indicator report for a period as HTML, XLSX or CSV."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from core.errors import BadRequest, ConfigError
from core.settings import Settings, get_settings

FORMATS = ("html", "xlsx", "csv")


def render(
    settings: Settings, *, level: str, area: str, period: str, hierarchy: str, fmt: str, lang: str
) -> bytes:
    """The report's bytes in one format (shared by the CLI and the HTTP route)."""
    from aggregator.db import session_scope
    from aggregator.reports import build_report, check_choice

    check_choice("format", fmt, FORMATS)
    with session_scope(settings) as session:
        data = build_report(
            session,
            level=level,
            area=area,
            period=period,
            hierarchy=hierarchy,
            lang=lang,
            min_cell=settings.min_cell_size,
        )
    from aggregator.reports.quality import edge_rows

    data.quality.edges, data.quality.edges_unavailable = edge_rows(settings, level=level, area=area)
    if fmt == "html":
        from aggregator.reports.html import render_html

        return render_html(data).encode("utf-8")
    if fmt == "xlsx":
        from aggregator.reports.xlsx import render_xlsx

        return render_xlsx(data)
    from aggregator.reports.csv import render_csv

    return render_csv(data)


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
