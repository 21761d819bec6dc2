"""Load the YAML definitions beside this package, validate them, and write the README table."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from aggregator.indicators.condition import ConditionError, compile_condition
from aggregator.indicators.model import (
    DIMENSIONS,
    HERE,
    KINDS,
    REQUIRED,
    TARGET_OPS,
    UNITS,
    Indicator,
    Measure,
)
from aggregator.indicators.sources import SOURCES
from core.errors import ConfigError


def _measure(spec: Any, where: str) -> Measure:
    if not isinstance(spec, dict):
        raise ConfigError(
            f'{where}: expected {{count: child, where: "..."}} or {{sum: column, of: household}}'
        )
    unknown = set(spec) - {"count", "sum", "of", "where"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use count/sum/of/where")
    if "count" in spec:
        m = Measure(source=str(spec["count"]), where=spec.get("where"))
    elif "sum" in spec:
        m = Measure(source=str(spec.get("of", "")), column=str(spec["sum"]), where=spec.get("where"))
    else:
        raise ConfigError(f"{where}: needs 'count: <table>' or 'sum: <column>, of: <table>'")
    if m.source not in SOURCES:
        raise ConfigError(f"{where}: unknown table {m.source!r}; use one of {', '.join(SOURCES)}")
    src = SOURCES[m.source]
    if m.column is not None and m.column not in src.table.c:
        raise ConfigError(f"{where}: unknown column {m.column!r} of {m.source}")
    if m.where is not None:
        try:
            compile_condition(str(m.where), src)
        except ConditionError as exc:
            raise ConfigError(f"{where}.where: {exc}") from exc
    return m


def parse_definition(d: dict[str, Any], file: str = "<inline>") -> Indicator:
    """Validate one YAML definition; ConfigError naming the file, indicator and field on any mistake."""
    code = d.get("code", "?")
    here = f"{file}: indicator {code!r}"
    for key in REQUIRED:
        if d.get(key) in (None, "", {}):
            raise ConfigError(f"{here}: missing field {key!r}")
    extra = set(d) - {*REQUIRED, "denominator", "disaggregate", "target", "tags"}
    if extra:
        raise ConfigError(f"{here}: unknown field(s) {sorted(extra)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(code)):
        raise ConfigError(f"{here}: code must be lower_snake_case")
    name = d["name"]
    if not isinstance(name, dict) or not name.get("vi") or not name.get("en"):
        raise ConfigError(f"{here}: name needs both vi and en")
    if d["unit"] not in UNITS:
        raise ConfigError(f"{here}: unit must be one of {', '.join(UNITS)}")
    if d["kind"] not in KINDS:
        raise ConfigError(f"{here}: kind must be flow or stock")
    num = _measure(d["numerator"], f"{here}.numerator")
    if d.get("denominator") is None:
        if d["unit"] != "count":
            raise ConfigError(f"{here}: missing field 'denominator' (only count indicators may omit it)")
        den = Measure(source=num.source)
    else:
        den = _measure(d["denominator"], f"{here}.denominator")
    if den.source != num.source:
        raise ConfigError(f"{here}: numerator and denominator must count the same table")
    src = SOURCES[num.source]
    if d["kind"] == "stock" and src.stock_key is None:
        raise ConfigError(f"{here}: {num.source} rows have no unit id, so the indicator must be a flow")
    if d["kind"] == "flow" and src.once_per_period:
        raise ConfigError(
            f"{here}: each {num.source} counts once per period (its latest visit), so the indicator "
            "must be a stock"
        )
    dis = tuple(d.get("disaggregate") or ())
    for dim in dis:
        if dim not in DIMENSIONS:
            raise ConfigError(f"{here}: unknown disaggregation {dim!r}; use {', '.join(DIMENSIONS)}")
        needed = "age_years" if dim == "age_group" else dim
        if needed not in src.table.c:
            raise ConfigError(f"{here}: {num.source} rows have no {needed!r} to disaggregate by")
    target = d.get("target")
    if target is not None:
        if not isinstance(target, dict) or not target.get("clause") or not target.get("clause_vi"):
            raise ConfigError(
                f"{here}: target needs the plan clause in English and Vietnamese (clause, clause_vi), op and "
                "value (null if none)"
            )
        if target.get("op") is not None and (
            target["op"] not in TARGET_OPS or not isinstance(target.get("value"), (int, float))
        ):
            raise ConfigError(f"{here}: target op must be one of {TARGET_OPS} with a numeric value")
        target = {
            "op": target.get("op"),
            "value": target.get("value"),
            "clause": str(target["clause"]),
            "clause_vi": str(target["clause_vi"]),
        }
    return Indicator(
        code=str(code),
        name_vi=str(name["vi"]),
        name_en=str(name["en"]),
        doc=" ".join(str(d["doc"]).split()),
        unit=d["unit"],
        kind=d["kind"],
        source=num.source,
        numerator=num,
        denominator=den,
        disaggregate=dis,
        target=target,
        file=file,
        tags=tuple(d.get("tags") or ()),
    )


def load_file(path: Path) -> list[Indicator]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML ({exc})") from exc
    items = doc.get("indicators") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path.name}: expected a top-level 'indicators:' list")
    return [parse_definition(d, path.name) for d in items]


@lru_cache
def load(directory: Path = HERE) -> dict[str, Indicator]:
    """All indicators, by code, in file order. Raises ConfigError on the first invalid definition."""
    out: dict[str, Indicator] = {}
    for path in sorted(directory.glob("*.yaml")):
        for ind in load_file(path):
            if ind.code in out:
                raise ConfigError(
                    f"{path.name}: indicator {ind.code!r} is also defined in {out[ind.code].file}"
                )
            out[ind.code] = ind
    return out


def get(code: str) -> Indicator:
    from core.errors import NotFound

    defs = load()
    if code not in defs:
        raise NotFound(f"Không có chỉ tiêu '{code}'.", f"No indicator '{code}'. Known: {', '.join(defs)}")
    return defs[code]


def write_readme() -> Path:
    """Regenerate the table at the end of README.md (``python -m aggregator.indicators``)."""
    readme = HERE / "README.md"
    head = readme.read_text(encoding="utf-8").split("| code | name (vi)")[0]
    readme.write_text(head + readme_table(), encoding="utf-8")
    return readme


def readme_table() -> str:
    """The Markdown table of every indicator, as README.md carries it (a test checks it is up to date)."""
    lines = [
        "| code | name (vi) | name (en) | unit | kind | target | plan clause | điều khoản kế hoạch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ind in load().values():
        t = ind.target or {}
        target = f"{t['op']} {t['value']}" if t.get("op") else "—"
        lines.append(
            f"| `{ind.code}` | {ind.name_vi} | {ind.name_en} | {ind.unit} | {ind.kind} | {target} | "
            f"{t.get('clause', '—')} | {t.get('clause_vi', '—')} |"
        )
    return "\n".join(lines) + "\n"
