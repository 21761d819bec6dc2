"""Local time: every date a person in Vietnam would compare, and every time a person reads, is in
Asia/Ho_Chi_Minh.

Timestamps are stored in UTC; a visit finished at 06:30 on a phone in Phú Quốc is 23:30 UTC the day before, so
taking ``.date()`` of a UTC timestamp puts it on the wrong day. Convert with :func:`local_date` first; show a
time to a person with :func:`shown` (zone named: ``UTC+7``).
Vietnam has kept UTC+07:00 without daylight saving since 1975, so a fixed offset is exact for every date the
forms can hold and needs no tz database on the server.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh


def local(moment: datetime) -> datetime:
    """``moment`` in Vietnam's zone; a naive datetime is taken as UTC (how carecheck stores them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM_TIME)


def local_date(moment: datetime | None) -> date | None:
    """The calendar date in Vietnam at ``moment`` (an aware datetime; a naive one is taken as UTC)."""
    if moment is None:
        return None
    return local(moment).date()


def shown(value: datetime | str | None, *, seconds: bool = True) -> str:
    """``2026-11-30 10:05:12 UTC+7`` for a datetime or an ISO 8601 string; "" for None; a string that is not
    a time, as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        parsed = value
    return local(parsed).strftime("%Y-%m-%d %H:%M:%S UTC+7" if seconds else "%Y-%m-%d %H:%M UTC+7")
