"""Rule 7 in the aggregator: the dates a person compares are Vietnam dates, whatever the server's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator import periods


class _Clock(datetime):
    moment = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)  # 00:30 on 1 January 2027 in Vietnam

    @classmethod
    def now(cls, tz: object = None) -> _Clock:
        return cls.fromtimestamp(cls.moment.timestamp(), UTC)


def test_the_default_period_is_the_current_year_in_vietnam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periods, "datetime", _Clock)
    assert periods.default_period().code == "2027"  # the UTC date is still 31 December 2026
    assert periods.default_period(date(2026, 6, 1)).code == "2026"
