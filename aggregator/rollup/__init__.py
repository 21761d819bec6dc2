"""Roll indicator numerators and denominators up by org unit and period (SQL GROUP BYs), and read them back.

Only legacy-commune cells are computed from the ingested rows; every other level is a sum of commune cells:
legacy district and province, the 2025 communes (through the static legacy → 2025 commune map of
``core.orgunits``), and, for the 2025 hierarchy, the province and the legacy districts kept as a grouping.
Stock
indicators take the latest observation of each unit (child, station) within the period *before* grouping,
so each
unit lands in exactly one commune and the sums stay exact at every level. Ratios are computed last, on read.

Monthly cells are totals only; disaggregations are kept for quarters, years and school years.

A full rebuild (``build.rebuild``) computes every cell from the rows and also writes the rows the stock cells
count (``indicator_counted``: per unit and month its latest row, flagged when also its latest of the quarter,
year, school year, with what it adds). An incremental refresh (``build.refresh``, after each ingested page)
then keeps the cells **by difference** (``delta``): the units a page touches (its rows' units, and the units
its submissions' counted rows had: rows deleted or replaced) get their counted rows recomputed from their own
rows; Σ new − Σ old per cell is added to the commune cells and every level above, and cells left 0/0 are
removed. Its cost follows the page's units, not the rows of the communes they are in. The flow group (every
visit counts) recomputes its touched communes' cells and adds the difference with the stored ones. Until a
rebuild has filled the counted rows with the current definitions (after the upgrade, or a definition change),
or while a group has non-integer sums, refresh recomputes the touched (commune, period) cells instead. A
rebuild holds new source rows back until its commit (SHARE lock): its cells and counted rows must see the
same rows.
"""

from aggregator.rollup.build import (
    compute_into,
    derive,
    fetch_wide,
    rebuild,
    rebuild_plan,
    refresh,
    wide_table,
)
from aggregator.rollup.cells import ALL_PERIODS, CellQuery, groups, period_sql, periods_by_type
from aggregator.rollup.read import ROW_FIELDS, IndicatorRow, children_of, org_units, query_indicators, trend
from aggregator.rollup.tables import (
    COLS,
    HIERARCHIES,
    LEVELS,
    REBUILD_CONNECTIONS,
    IndicatorGeneration,
    IndicatorOrgUnit,
    IndicatorPeriodGeneration,
    IndicatorValue,
    bump_generation,
    ensure_tables,
    generation,
    period_generation,
    side_table,
    table_exists,
)

__all__ = [
    "ALL_PERIODS",
    "COLS",
    "REBUILD_CONNECTIONS",
    "ROW_FIELDS",
    "HIERARCHIES",
    "LEVELS",
    "CellQuery",
    "IndicatorGeneration",
    "IndicatorOrgUnit",
    "IndicatorPeriodGeneration",
    "IndicatorRow",
    "IndicatorValue",
    "bump_generation",
    "children_of",
    "compute_into",
    "derive",
    "ensure_tables",
    "fetch_wide",
    "generation",
    "groups",
    "org_units",
    "period_sql",
    "period_generation",
    "periods_by_type",
    "query_indicators",
    "rebuild",
    "rebuild_plan",
    "refresh",
    "side_table",
    "table_exists",
    "trend",
    "wide_table",
]
