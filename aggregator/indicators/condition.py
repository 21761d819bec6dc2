"""The condition language of indicator definitions, compiled to SQL against the model columns.

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
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, not_, or_
from sqlalchemy.sql.schema import Column

from aggregator.indicators.sources import Source

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
