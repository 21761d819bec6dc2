"""Pure functions: WHO z-scores against the published tables, personal-ID rules, names, periods."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from aggregator.anthropometry import zscores
from aggregator.ingest import periods
from aggregator.registry import household_key, name_hash, normalise_name, validate_personal_id
from core.ages import age

D0 = date(2025, 1, 1)


@pytest.mark.parametrize(
    ("sex", "days", "weight", "height", "field", "expected"),
    [
        # WHO Child Growth Standards 2006, published tables (z-score = SD line the value sits on)
        ("male", 0, 3.3464, None, "waz", 0.0),  # boys weight-for-age, birth, median (M)
        ("female", 0, None, 49.1477, "haz", 0.0),  # girls length-for-age, birth, median
        ("male", 365, 9.6, None, "waz", 0.0),  # boys 12 months: median 9.6 kg
        ("male", 365, 7.7, None, "waz", -2.0),  # boys 12 months: -2 SD 7.7 kg
        ("male", 365, 12.0, None, "waz", 2.0),  # boys 12 months: +2 SD 12.0 kg
        ("female", 730, None, 86.4, "haz", 0.0),  # girls 24 months length: median 86.4 cm
        ("female", 730, None, 80.0, "haz", -2.0),  # girls 24 months length: -2 SD 80.0 cm
    ],
)
def test_zscores_match_who_tables(
    sex: str, days: int, weight: float | None, height: float | None, field: str, expected: float
) -> None:
    z = zscores(sex, D0, D0 + timedelta(days=days), weight, height)
    assert getattr(z, field) == pytest.approx(expected, abs=0.06)


def test_zscores_missing_inputs_give_none() -> None:
    assert zscores(None, D0, D0, 3.0, 50.0).waz is None
    assert zscores("male", D0, D0 - timedelta(days=1), 3.0, 50.0).waz is None  # visit before birth


@pytest.mark.parametrize(
    ("pid", "sex", "dob", "ok"),
    [
        ("091218000123", "male", date(2018, 4, 1), True),  # Kiên Giang, 2000s male, born 2018
        ("091318000123", "female", date(2018, 4, 1), True),  # 2000s female
        ("001099123456", "male", date(1999, 1, 1), True),  # Hà Nội, 1900s male
        ("096320123456", "female", date(2020, 6, 6), True),  # Cà Mau
        ("091218000123", "female", date(2018, 4, 1), False),  # sex digit disagrees
        ("091219000123", "male", date(2018, 4, 1), False),  # year digits disagree
        ("091018000123", "male", date(2018, 4, 1), False),  # century digit says 1900s
        ("003218000123", "male", date(2018, 4, 1), False),  # 003 is no province
        ("097218000123", "male", date(2018, 4, 1), False),  # beyond 096
        ("91218000123", "male", date(2018, 4, 1), False),  # 11 digits
        ("09121800012a", "male", date(2018, 4, 1), False),
    ],
)
def test_personal_id_rules(pid: str, sex: str, dob: date, ok: bool) -> None:
    err = validate_personal_id(pid, sex, dob)
    assert (err is None) == ok, err
    if err:
        assert pid[3:] not in err  # no digits of the ID in the message (it may reach logs)


KEY = bytes(range(32))


def test_names_normalise_and_hash() -> None:
    assert normalise_name("  Nguyễn  Văn   Đạt ") == "nguyen van dat" == normalise_name("NGUYEN VAN DAT")
    assert name_hash(KEY, "Lê Thị Hồng") == name_hash(KEY, "le thi hong") != name_hash(KEY, "Lê Thị Hương")
    assert name_hash(KEY, "") is None
    k = household_key(KEY, "911", "31078", "Ấp Bãi Bổn", "Trần Văn Hai")
    assert k == household_key(KEY, "911", "31078", "ap bai bon", "tran van  hai") and len(k) == 32
    assert k != household_key(KEY, "911", "31081", "Ấp Bãi Bổn", "Trần Văn Hai")


def test_age_and_periods() -> None:
    assert age(date(2020, 11, 30), date(2026, 11, 29)) == (5, 71)
    assert age(date(2020, 11, 29), date(2026, 11, 29)) == (6, 72)
    assert age(date(2027, 1, 1), date(2026, 11, 29)) == (None, None)
    assert periods(date(2026, 11, 29)) == {
        "year": 2026,
        "quarter": 4,
        "month": 11,
        "school_year": "SY2026-2027",
    }
    assert periods(date(2026, 8, 31))["school_year"] == "SY2025-2026"
