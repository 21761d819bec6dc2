"""Local time: every date a person in Vietnam would compare is a date in Asia/Ho_Chi_Minh.

Timestamps are stored in UTC; a visit finished at 06:30 on a phone in Phú Quốc is 23:30 UTC the day before, so
taking ``.date()`` of a UTC timestamp puts it on the wrong day. Convert with :func:`local_date` first.
Vietnam has kept UTC+07:00 without daylight saving since 1975, so a fixed offset is exact for every date the
forms can hold and needs no tz database on the server.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh


def local_date(moment: datetime | None) -> date | None:
    """The calendar date in Vietnam at ``moment`` (an aware datetime; a naive one is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM_TIME).date()
