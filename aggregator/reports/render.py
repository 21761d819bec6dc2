"""render(): one org unit's indicator report for a period as HTML, XLSX or CSV bytes (CLI and HTTP route)."""

from __future__ import annotations

from core.settings import Settings

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
