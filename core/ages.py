"""The one age rule: completed calendar months and years at the visit date.

A child's age at a visit is counted on the calendar, never in days: the whole months from the date of birth to
the visit date are the difference of their (year, month), less one when the visit's day of the month comes
before the birth's; completed years are those months // 12. Both are calendar dates as people in Vietnam read
them (Asia/Ho_Chi_Minh): the visit date as the phone recorded it, the date of birth as given — so no time of
day, time zone, leap year or floating-point day count enters. Consequences:

- a child is 5 on their 5th birthday (60 months), 4 (59 months) the day before;
- a child is under 18 until the day before their 18th birthday, in every year;
- one born on 29 February becomes a year older on 1 March in common years (28 February is not yet the day);
- one born on the 31st completes a month on the 1st of the month after a shorter month.

The household form computes the same numbers with ``format-date`` pieces (forms/README.md, "Ages"), and its
date-of-birth constraint is this rule's ``months < 216``; tests/forms/test_engine.py drives the real form
engine (JavaRosa) and checks that it agrees with this module around the 1st to 18th birthdays. Everything in
the aggregator that needs an age calls :func:`age` (docs/contracts.md §2).
"""

from __future__ import annotations

from datetime import date

ADULT_YEARS = 18  # the household form lists children under 18 (age_years < 18; child labour counts 5–17)


def age_in_months(dob: date | None, on: date | None) -> int | None:
    """Completed calendar months from ``dob`` to ``on``; None when unknown or ``on`` is before ``dob``."""
    if dob is None or on is None or on < dob:
        return None
    return (on.year - dob.year) * 12 + on.month - dob.month - (1 if on.day < dob.day else 0)


def age(dob: date | None, on: date | None) -> tuple[int | None, int | None]:
    """(completed years, completed months) at ``on``; (None, None) when unknown or ``on`` < ``dob``."""
    months = age_in_months(dob, on)
    return (None, None) if months is None else (months // 12, months)
