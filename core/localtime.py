"""Times shown to people: in the province's time zone (Asia/Ho_Chi_Minh), with the zone named.

Vietnam keeps UTC+7 all year (no daylight saving since 1975), so a fixed offset is exact and needs no tz
database (slim containers may have none). Times are stored and exchanged in UTC; only what a person reads is
converted, here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

PROVINCE_TZ = timezone(timedelta(hours=7), "UTC+7")


def local(value: datetime) -> datetime:
    """``value`` in the province's zone; a naive datetime is taken as UTC (how carecheck stores them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(PROVINCE_TZ)


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
