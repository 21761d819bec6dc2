"""Data-quality checks: answers that look wrong are flagged (code + bilingual message), never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aggregator.anthropometry import WHO_FLAG_LIMITS
from core.localtime import local_date

# Plausible age ranges (completed years) per school level, wider than the official ages (6–10 primary, 11–14
# lower
# secondary, 15–17 upper secondary) to allow for late entry and repetition; outside them the answer is
# flagged.
SCHOOL_AGE = {
    "preschool": (1, 7),
    "primary": (5, 15),
    "lower_secondary": (9, 18),
    "upper_secondary": (13, 20),
    "vocational": (13, 20),
}
MAX_WEEK_HOURS = 112  # 16 hours a day, 7 days: more economic work + chores than that is not credible

_Z_NAMES = {
    "waz": ("cân nặng theo tuổi", "weight-for-age"),
    "haz": ("chiều cao theo tuổi", "height-for-age"),
    "whz": ("cân nặng theo chiều cao", "weight-for-height"),
}


@dataclass(frozen=True)
class Flag:
    code: str
    message: str  # Vietnamese / English, no personal data


def household_flags(
    visit: date | None, received_at: datetime | None, births: int | None, deaths: int | None
) -> list[Flag]:
    out = []
    # The visit date is a day on the phone's calendar in Vietnam: compare it with the day of receipt there too
    # (a form sent at 06:40 in Vietnam is received at 23:40 UTC, on the UTC day before the visit).
    received = local_date(received_at)
    if visit and received and visit > received:
        out.append(
            Flag(
                "visit_after_received",
                "Ngày thăm hộ sau ngày gửi phiếu / visit date after the submission was received",
            )
        )
    if births is not None and births > 5:
        out.append(
            Flag(
                "births_implausible", f"Số trẻ sinh trong 12 tháng = {births} / {births} births in 12 months"
            )
        )
    if deaths is not None and deaths > 5:
        out.append(
            Flag(
                "deaths_implausible",
                f"Số trẻ dưới 5 tuổi tử vong trong 12 tháng = {deaths} / {deaths} "
                "under-5 deaths in 12 months",
            )
        )
    return out


def children_with_zero_count(entries: int) -> Flag:
    """The household answered 0 children, yet the instance has child entries (they are not counted)."""
    return Flag(
        "child_with_zero_count",
        f"Hộ trả lời 0 trẻ nhưng phiếu có {entries} mục trẻ em (không tính) / "
        f"0 children answered but {entries} child entries present (not counted)",
    )


def child_flags(
    obs: dict[str, Any], dob: date | None, visit: date | None, pid_given: bool, pid_error: str | None
) -> list[Flag]:
    """Flags for one child observation (``obs`` holds the ChildObservation column values)."""
    out: list[Flag] = []
    if dob and visit and dob > visit:
        out.append(Flag("dob_after_visit", "Ngày sinh sau ngày thăm / date of birth after the visit date"))
    age = obs.get("age_years")
    if age is not None and age >= 18:
        out.append(
            Flag("age_18_or_more", f"Trẻ {age} tuổi (từ 18 tuổi trở lên) / child aged {age} (18 or more)")
        )
    for z in ("waz", "haz", "whz"):
        v = obs.get(z)
        lo, hi = WHO_FLAG_LIMITS[z]
        if v is not None and not lo <= v <= hi:
            vi, en = _Z_NAMES[z]
            out.append(
                Flag(
                    f"{z}_implausible",
                    f"Chỉ số Z {vi} = {v} ngoài giới hạn WHO [{lo}, {hi}] / "
                    f"{en} z-score {v} outside WHO limits [{lo}, {hi}]",
                )
            )
    level = obs.get("school_level")
    if level in SCHOOL_AGE and age is not None:
        lo_a, hi_a = SCHOOL_AGE[level]
        if not lo_a <= age <= hi_a:
            out.append(
                Flag(
                    "age_school_level",
                    f"Tuổi {age} không hợp với cấp học {level} / age {age} "
                    f"inconsistent with school level {level}",
                )
            )
    hours = [h for h in (obs.get("work_hours_week"), obs.get("chore_hours_week")) if h is not None]
    if hours and sum(hours) > MAX_WEEK_HOURS:
        out.append(
            Flag(
                "hours_implausible",
                f"Tổng {sum(hours)} giờ lao động + việc nhà/tuần / {sum(hours)} hours "
                f"of work + chores a week (> {MAX_WEEK_HOURS})",
            )
        )
    if pid_given and pid_error:
        out.append(
            Flag(
                "personal_id_invalid",
                f"Số định danh cá nhân không hợp lệ ({pid_error}) / personal ID invalid ({pid_error})",
            )
        )
    if obs.get("birth_registered") == "no" and obs.get("has_valid_personal_id"):
        out.append(
            Flag(
                "pid_without_birth_registration",
                "Có số định danh nhưng chưa đăng ký khai sinh / personal ID given but birth not registered",
            )
        )
    return out
