"""Indicator definitions: load the YAML files beside this module, validate them, compile conditions to SQL.

A definition is data (DHIS2-style): a numerator and a denominator, each ``{count: <table>, where:
"<condition>"}`` or
``{sum: <column>, of: <table>, where: "<condition>"}``. Conditions use a tiny, safe language (no function
calls, no
arithmetic, columns checked against the model):

    age_years < 16 and in_special_circumstance            a bare boolean column means "is true"
    school_level in ['preschool', 'primary']              membership in a list of literals
    haz is not null / not at_risk / (a or b)              null tests, negation, grouping
    imm_antigens has 'bcg' / imm_antigens has_all [...]   words of a space-separated select_multiple column

Comparison operators: ``< <= > >= == !=``. Every error names the file, the indicator and the field, and
says what
to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import ColumnElement, and_, case, literal, not_, or_, true
from sqlalchemy.sql.schema import Column

from aggregator.models import ChildObservation, FacilityCheck, Household
from core.errors import ConfigError

HERE = Path(__file__).parent

UNITS = {"percent": 100.0, "per_1000": 1000.0, "count": 1.0}
KINDS = ("flow", "stock")
TARGET_OPS = ("<", "<=", ">", ">=", "==")
DIMENSIONS = ("sex", "ethnicity", "area_type", "age_group")
# Values each disaggregation can take (reports list them even when a cell is empty); 'unknown' = not answered.
DIMENSION_VALUES: dict[str, tuple[str, ...]] = {
    "sex": ("male", "female"),
    "ethnicity": ("kinh", "khmer", "hoa", "other"),
    "area_type": ("island", "border", "mainland"),
    "age_group": ("0-4", "5-10", "11-15", "16-17"),
}
REQUIRED = ("code", "name", "doc", "unit", "kind", "numerator")


@dataclass(frozen=True)
class Source:
    """A table indicators count over, and the column identifying one unit for stock ("latest per unit")."""

    name: str
    model: Any
    stock_key: str | None

    @property
    def table(self) -> Any:
        return self.model.__table__

    def column(self, name: str) -> Column[Any]:
        return self.table.c[name]  # type: ignore[no-any-return]


SOURCES: dict[str, Source] = {
    "child": Source("child", ChildObservation, "child_id"),
    "household": Source("household", Household, None),  # no household registry id yet: flows only
    "facility": Source("facility", FacilityCheck, "commune_code"),  # one health station per commune
}


@dataclass(frozen=True)
class Measure:
    """One side of the ratio: count rows (or sum a column) of ``source`` where ``where`` holds."""

    source: str
    column: str | None = None  # None = count rows
    where: str | None = None

    def describe(self) -> str:
        what = f"count {self.source}" if self.column is None else f"sum {self.column} of {self.source}"
        return f"{what} where {self.where}" if self.where else what

    def condition(self) -> ColumnElement[bool] | None:
        """The row condition as SQL (None: every row)."""
        return compile_condition(self.where, SOURCES[self.source]) if self.where else None

    def sql(self) -> ColumnElement[Any]:
        """The per-row contribution: 1 (or the column's value) when the condition holds, else 0."""
        src = SOURCES[self.source]
        value: ColumnElement[Any] = literal(1) if self.column is None else src.column(self.column)
        cond = compile_condition(self.where, src) if self.where else None
        if self.column is not None:
            value = case((value.is_(None), literal(0)), else_=value)
        if cond is None:
            return value
        return case((cond, value), else_=literal(0))


@dataclass(frozen=True)
class Indicator:
    code: str
    name_vi: str
    name_en: str
    doc: str
    unit: str
    kind: str
    source: str
    numerator: Measure
    denominator: Measure  # for unit "count": the population observed (suppression, no-data), not divided by
    disaggregate: tuple[str, ...]
    target: dict[str, Any] | None
    file: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def factor(self) -> float:
        return UNITS[self.unit]

    def value(self, numerator: float | None, denominator: float | None) -> float | None:
        if numerator is None or not denominator:
            return None
        if self.unit == "count":
            return float(numerator)
        return self.factor * float(numerator) / float(denominator)

    def status(self, value: float | None) -> str:
        if value is None:
            return "no_data"
        if not self.target or self.target.get("op") is None:
            return "no_target"
        t = float(self.target["value"])
        op = self.target["op"]
        ok = {"<": value < t, "<=": value <= t, ">": value > t, ">=": value >= t, "==": value == t}[op]
        return "met" if ok else "not_met"


# ---------------------------------------------------------------- the condition language

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*')|(?P<op><=|>=|==|!=|<|>)|(?P<punct>[()\[\],])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "has", "has_all", "true", "false"}


class ConditionError(ValueError):
    """A condition that does not parse or names an unknown column; the message says where and how to fix."""


def _tokenize(text: str) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConditionError(f"cannot read {text[pos : pos + 20]!r} (at character {pos})")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind or "")
        if kind == "num":
            out.append(("num", float(raw) if "." in raw else int(raw)))
        elif kind == "str":
            out.append(("str", raw[1:-1]))
        elif kind == "word" and raw in _KEYWORDS:
            out.append(("kw", raw))
        else:
            out.append((kind or "", raw))
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str, src: Source):
        self.toks = _tokenize(text)
        self.i = 0
        self.src = src

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            want = value or kind or "more"
            raise ConditionError(f"expected {want!r} but found {tok[1] if tok else 'the end'!r}")
        self.i += 1
        return tok

    def parse(self) -> ColumnElement[bool]:
        expr = self.or_()
        if self.peek() is not None:
            raise ConditionError(f"unexpected {self.peek()[1]!r} (missing 'and'/'or'?)")  # type: ignore[index]
        return expr

    def or_(self) -> ColumnElement[bool]:
        parts = [self.and_()]
        while self.peek() == ("kw", "or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_(self) -> ColumnElement[bool]:
        parts = [self.not_()]
        while self.peek() == ("kw", "and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def not_(self) -> ColumnElement[bool]:
        if self.peek() == ("kw", "not"):
            self.take()
            return not_(self.not_())
        return self.primary()

    def literal_list(self) -> list[Any]:
        self.take("punct", "[")
        items = [self.literal()]
        while self.peek() == ("punct", ","):
            self.take()
            items.append(self.literal())
        self.take("punct", "]")
        return items

    def literal(self) -> Any:
        tok = self.peek()
        if tok and tok[0] in ("num", "str"):
            self.i += 1
            return tok[1]
        if tok in (("kw", "true"), ("kw", "false")):
            self.i += 1
            return tok[1] == "true"
        raise ConditionError(
            f"expected a number, 'text', true or false but found {tok[1] if tok else 'the end'!r}"
        )

    def column(self, name: str) -> Column[Any]:
        if name not in self.src.table.c:
            known = ", ".join(sorted(self.src.table.c.keys()))
            raise ConditionError(f"unknown column {name!r} of {self.src.name} (known: {known})")
        return self.src.column(name)

    def primary(self) -> ColumnElement[bool]:
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_()
            self.take("punct", ")")
            return inner
        _, name = self.take("word")
        col = self.column(name)
        tok = self.peek()
        if tok and tok[0] == "op":
            self.take()
            value = self.literal()
            _check_type(col, value, name)
            compared: dict[str, ColumnElement[bool]] = {
                "<": col < value,
                "<=": col <= value,
                ">": col > value,
                ">=": col >= value,
                "==": col == value,
                "!=": col != value,
            }
            return compared[tok[1]]
        if tok == ("kw", "in"):
            self.take()
            values = self.literal_list()
            for v in values:
                _check_type(col, v, name)
            return col.in_(values)
        if tok == ("kw", "is"):
            self.take()
            negate = self.peek() == ("kw", "not")
            if negate:
                self.take()
            self.take("kw", "null")
            return col.is_not(None) if negate else col.is_(None)
        if tok in (("kw", "has"), ("kw", "has_all")):
            self.take()
            if _pytype(col) is not str:
                raise ConditionError(f"'has' needs a text column; {name!r} is not one")
            words = [self.literal()] if tok[1] == "has" else self.literal_list()
            padded = literal(" ") + col + literal(" ")
            return and_(*[padded.like(f"% {w} %") for w in words])
        if _pytype(col) is not bool:
            raise ConditionError(f"{name!r} is not a yes/no column: compare it, e.g. \"{name} == 'yes'\"")
        return col.is_(True)


def _pytype(col: Column[Any]) -> type | None:
    sql_type = getattr(col.type, "impl", col.type)  # SQLModel's AutoString decorates String
    try:
        found: type = sql_type.python_type
        return found
    except NotImplementedError:
        return None


def _check_type(col: Column[Any], value: Any, name: str) -> None:
    t = _pytype(col)
    ok = (
        {
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            int: isinstance(value, (int, float)) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(t, True)
        if t is not None
        else True
    )
    if not ok:
        raise ConditionError(f"{name!r} cannot be compared with {value!r} (wrong type)")


def compile_condition(text: str, src: Source) -> ColumnElement[bool]:
    """Compile one condition over ``src``'s columns to a SQLAlchemy boolean expression."""
    return _Parser(text, src).parse()


def age_group_sql(src: Source) -> ColumnElement[str]:
    """The age_group disaggregation as SQL (from age_years)."""
    age = src.column("age_years")
    return case(
        (age < 5, "0-4"), (age <= 10, "5-10"), (age <= 15, "11-15"), (age <= 17, "16-17"), else_="unknown"
    )


def dimension_sql(dim: str, src: Source) -> ColumnElement[str]:
    """A disaggregation as SQL text, 'unknown' when not answered (so that NULL means "not grouped")."""
    if dim == "age_group":
        return age_group_sql(src)
    col = src.column(dim)
    return case((col.is_(None), "unknown"), else_=col)


# ---------------------------------------------------------------- loading and validation


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
    dis = tuple(d.get("disaggregate") or ())
    for dim in dis:
        if dim not in DIMENSIONS:
            raise ConfigError(f"{here}: unknown disaggregation {dim!r}; use {', '.join(DIMENSIONS)}")
        needed = "age_years" if dim == "age_group" else dim
        if needed not in src.table.c:
            raise ConfigError(f"{here}: {num.source} rows have no {needed!r} to disaggregate by")
    target = d.get("target")
    if target is not None:
        if not isinstance(target, dict) or not target.get("clause"):
            raise ConfigError(
                f"{here}: target needs a clause (the plan's words), op and value (null if none)"
            )
        if target.get("op") is not None and (
            target["op"] not in TARGET_OPS or not isinstance(target.get("value"), (int, float))
        ):
            raise ConfigError(f"{here}: target op must be one of {TARGET_OPS} with a numeric value")
        target = {"op": target.get("op"), "value": target.get("value"), "clause": str(target["clause"])}
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
        "| code | name (vi) | name (en) | unit | kind | target | plan clause |",
        "|---|---|---|---|---|---|---|",
    ]
    for ind in load().values():
        t = ind.target or {}
        target = f"{t['op']} {t['value']}" if t.get("op") else "—"
        lines.append(
            f"| `{ind.code}` | {ind.name_vi} | {ind.name_en} | {ind.unit} | {ind.kind} | {target} | "
            f"{t.get('clause', '—')} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "Indicator",
    "Measure",
    "Source",
    "SOURCES",
    "DIMENSIONS",
    "DIMENSION_VALUES",
    "load",
    "get",
    "compile_condition",
    "dimension_sql",
    "parse_definition",
    "readme_table",
    "ConditionError",
    "true",
]
