"""`carecheck indicators rebuild | list | show`: operator commands for indicator definitions and values."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Chỉ tiêu / indicators: definitions, rebuild, values.")


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "count" or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.1f}"


@app.command("rebuild")
def rebuild_cmd() -> None:
    """Recompute every indicator from the ingested rows into a side table, then swap it in."""
    from aggregator.db import init_db
    from aggregator.rollup import rebuild
    from cli.progress import working

    engine = init_db()
    with working("Đang tính lại chỉ tiêu / rebuilding the indicators"):
        stats = rebuild(engine)
    n, rows, cells, secs = stats["indicators"], stats["rows"], stats["commune_cells"], stats["seconds"]
    typer.echo(
        f"Đã tính lại {n} chỉ tiêu: {rows:,} ô ({cells:,} ô cấp xã) trong {secs:.1f} s / "
        f"rebuilt {n} indicators: {rows:,} cells in {secs:.1f} s."
    )


@app.command("list")
def list_cmd(lang: Annotated[str, typer.Option(help="vi | en")] = "vi") -> None:
    """Every indicator with its unit, kind and the plan's target."""
    from aggregator.indicators import load

    indicators = load()
    table = Table()
    # the code is what `indicators show` takes: never cut or wrapped, whatever the terminal's width
    table.add_column("code", no_wrap=True, min_width=max((len(c) for c in indicators), default=4))
    table.add_column("tên chỉ tiêu" if lang == "vi" else "name", ratio=1)
    for head in ("unit", "kind", "target"):
        table.add_column(head)
    for ind in indicators.values():
        t = ind.target or {}
        table.add_row(
            ind.code,
            ind.name_vi if lang == "vi" else ind.name_en,
            ind.unit,
            ind.kind,
            f"{t['op']} {t['value']}" if t.get("op") else "—",
        )
    Console().print(table)


@app.command("show")
def show_cmd(
    code: str,
    level: Annotated[str, typer.Option(help="province | district | commune")] = "province",
    area: Annotated[str | None, typer.Option(help="org unit code; default: the province")] = None,
    period: Annotated[
        str | None, typer.Option(help="2026, 2026Q4, 2026-11, SY2026-2027; default this year")
    ] = None,
    hierarchy: Annotated[str, typer.Option(help="legacy | 2025")] = "legacy",
    lang: Annotated[str, typer.Option(help="vi | en")] = "vi",
) -> None:
    """One indicator: its definition, and its values for an org unit and the units below it."""
    from sqlmodel import Session

    from aggregator.db import init_db
    from aggregator.indicators import get
    from aggregator.periods import default_period, parse_period
    from aggregator.rollup import query_indicators

    ind = get(code)
    per = parse_period(period).code if period else default_period().code
    console = Console()
    console.print(f"[bold]{ind.code}[/bold] — {ind.name_vi} / {ind.name_en}")
    console.print(ind.doc)
    console.print(f"unit {ind.unit}, kind {ind.kind}, file {ind.file}")
    console.print(f"numerator:   {ind.numerator.describe()}\ndenominator: {ind.denominator.describe()}")
    clause = ind.clause["en" if lang == "en" else "vi"]
    if ind.target and ind.target.get("op"):
        console.print(f"target: {ind.target['op']} {ind.target['value']} ({clause})")
    else:
        console.print(f"target: — ({clause})")
    area = area or ("91" if level == "province" else None)
    engine = init_db()
    with Session(engine) as session:
        rows = query_indicators(
            session, level=level, area=area, period=per, hierarchy=hierarchy, indicators=[code]
        )
        if area is not None and level != "commune":
            rows += query_indicators(
                session,
                level=level,
                area=area,
                period=per,
                hierarchy=hierarchy,
                indicators=[code],
                children=True,
            )
    from aggregator.indicators.status import label, shows_denominator

    table = Table(
        "org unit", "name", "level", "numerator", "denominator", "value", "status", title=f"{code} {per}"
    )
    for r in rows:
        table.add_row(
            r.org_unit,
            r.org_unit_name,
            r.level,
            _fmt(r.numerator, "count"),
            _fmt(r.denominator, "count") if shows_denominator(r.unit) else "",
            _fmt(r.value, r.unit),
            f"{label(r.status, lang)} ({r.status})",
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="indicators", help="Chỉ tiêu / indicators: rebuild, list, show.")
