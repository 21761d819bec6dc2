"""core.ages (the one age rule) and core.localtime, with hand-worked dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from core.ages import age, age_in_months
from core.localtime import VIETNAM_TIME, local_date


@pytest.mark.parametrize(
    ("dob", "on", "years", "months"),
    [
        ("2020-03-01", "2025-02-28", 4, 59),  # the day before the 5th birthday
        ("2020-03-01", "2025-03-01", 5, 60),  # on it (365.25-day years said 4 y / 59 m)
        ("2010-06-15", "2026-06-14", 15, 191),
        ("2010-06-15", "2026-06-15", 16, 192),  # the 16th birthday, whatever the phone's time zone
        ("2008-03-02", "2026-03-01", 17, 215),  # under 18 until the day before the 18th birthday
        ("2008-03-01", "2026-03-01", 18, 216),
        ("2006-02-28", "2024-02-28", 18, 216),  # an 18th birthday in a leap year
        ("2006-03-01", "2024-02-29", 17, 215),  # the leap day before it
        ("2020-02-29", "2025-02-28", 4, 59),  # born on a leap day: a year older on 1 March in common years
        ("2020-02-29", "2025-03-01", 5, 60),
        ("2020-02-29", "2024-02-29", 4, 48),
        ("2021-01-31", "2021-02-28", 0, 0),  # born on the 31st: no 31 February
        ("2021-01-31", "2021-03-01", 0, 1),
        ("2021-01-31", "2021-03-31", 0, 2),
        ("2025-11-30", "2025-11-30", 0, 0),  # born on the visit day
    ],
)
def test_completed_calendar_years_and_months(dob: str, on: str, years: int, months: int) -> None:
    assert age(date.fromisoformat(dob), date.fromisoformat(on)) == (years, months)
    assert age_in_months(date.fromisoformat(dob), date.fromisoformat(on)) == months


def test_unknown_or_before_birth_is_none() -> None:
    assert age(None, date(2025, 1, 1)) == (None, None)
    assert age(date(2025, 1, 1), None) == (None, None)
    assert age(date(2025, 1, 2), date(2025, 1, 1)) == (None, None)


def test_months_never_decrease_day_by_day() -> None:
    dob = date(2004, 2, 29)
    last = 0
    for d in range(0, 22 * 366):
        m = age_in_months(dob, dob + timedelta(days=d))
        assert m is not None and last <= m <= last + 1
        last = m
    for y in range(1, 22):  # every birthday of a leap-day child: 1 March, or 29 February in leap years
        birthday = date(2004 + y, 2, 29) if (2004 + y) % 4 == 0 else date(2004 + y, 3, 1)
        assert age(dob, birthday)[0] == y and age(dob, birthday - timedelta(days=1))[0] == y - 1


def test_local_date_is_the_day_in_vietnam() -> None:
    # 06:40 on 10 November in Phú Quốc is 23:40 UTC on the 9th
    received = datetime(2026, 11, 9, 23, 40, tzinfo=UTC)
    assert local_date(received) == date(2026, 11, 10)
    assert local_date(datetime(2026, 11, 9, 23, 40)) == date(2026, 11, 10)  # naive = UTC
    phone = timezone(timedelta(hours=7))
    assert local_date(datetime(2026, 11, 10, 6, 30, tzinfo=phone)) == date(2026, 11, 10)
    assert local_date(datetime(2026, 11, 10, 16, 59, tzinfo=UTC)) == date(2026, 11, 10)
    assert local_date(datetime(2026, 11, 10, 17, 0, tzinfo=UTC)) == date(2026, 11, 11)
    assert local_date(None) is None
    assert VIETNAM_TIME.utcoffset(None) == timedelta(hours=7)
