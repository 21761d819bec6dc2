"""Reporting periods: year `2026`, quarter `2026Q4`, month `2026-11`, school year `SY2026-2027` (Sep–Aug)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from core.errors import BadRequest
from core.localtime import local_date

PERIOD_TYPES = ("month", "quarter", "year", "school_year")

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_SCHOOL_YEAR = re.compile(r"^SY(\d{4})-(\d{4})$")


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: its type, its canonical text and the dates it covers (inclusive)."""

    start: date
    end: date
    type: str
    code: str

    def __str__(self) -> str:
        return self.code

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end

    @property
    def months(self) -> list[str]:
        """The month codes (`2026-11`) this period covers, in order."""
        out, y, m = [], self.start.year, self.start.month
        while (y, m) <= (self.end.year, self.end.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def year(y: int) -> Period:
    return Period(date(y, 1, 1), date(y, 12, 31), "year", f"{y:04d}")


def quarter(y: int, q: int) -> Period:
    return Period(date(y, 3 * q - 2, 1), _month_end(y, 3 * q), "quarter", f"{y:04d}Q{q}")


def month(y: int, m: int) -> Period:
    return Period(date(y, m, 1), _month_end(y, m), "month", f"{y:04d}-{m:02d}")


def school_year(start_year: int) -> Period:
    """School year starting in September of ``start_year`` and ending in August of the next year."""
    return Period(
        date(start_year, 9, 1),
        date(start_year + 1, 8, 31),
        "school_year",
        f"SY{start_year:04d}-{start_year + 1:04d}",
    )


def parse_period(text: str) -> Period:
    """Parse a period string; a clear bilingual Problem when it is none of the four forms."""
    t = (text or "").strip()
    if m := _YEAR.match(t):
        return year(int(m[1]))
    if m := _QUARTER.match(t):
        return quarter(int(m[1]), int(m[2]))
    if m := _MONTH.match(t):
        return month(int(m[1]), int(m[2]))
    if (m := _SCHOOL_YEAR.match(t)) and int(m[2]) == int(m[1]) + 1:
        return school_year(int(m[1]))
    raise BadRequest(
        f"Kỳ báo cáo '{text}' không hợp lệ. Dùng dạng 2026, 2026Q4, 2026-11 hoặc SY2026-2027.",
        f"Period '{text}' is not valid. Use 2026, 2026Q4, 2026-11 or SY2026-2027.",
    )


def school_year_start(d: date) -> int:
    return d.year if d.month >= 9 else d.year - 1


def periods_of(d: date) -> dict[str, Period]:
    """The four periods a visit date belongs to, by type."""
    return {
        "month": month(d.year, d.month),
        "quarter": quarter(d.year, (d.month - 1) // 3 + 1),
        "year": year(d.year),
        "school_year": school_year(school_year_start(d)),
    }


def period_codes(d: date) -> dict[str, str]:
    """The four period codes of a date, by type (`{"month": "2026-11", "quarter": "2026Q4", ...}`)."""
    return {k: p.code for k, p in periods_of(d).items()}


def default_period(today: date | None = None) -> Period:
    """The current year in Vietnam (not the server's time zone): the default for reports and the API."""
    return year((today or local_date(datetime.now(UTC)) or date.today()).year)


def previous(p: Period, n: int = 1) -> list[Period]:
    """The ``n`` periods of the same type ending with ``p`` (oldest first) — for trends."""
    out = [p]
    cur = p
    for _ in range(n - 1):
        before = date.fromordinal(cur.start.toordinal() - 1)
        cur = periods_of(before)[cur.type]
        out.append(cur)
    return out[::-1]
