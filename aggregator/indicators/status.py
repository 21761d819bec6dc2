"""One status rule (rule 9): met / close / not met / no target / hidden / no data — and the words for each.

Every output (the read API and HTTP JSON, ``carecheck indicators show``, the HTML, XLSX and CSV reports)
shows the status this module computes, by the same code and the same bilingual words:

- ``suppressed`` (hidden, "Ẩn (ô nhỏ)") — the cell is hidden by small-cell suppression (it has data);
- ``no_data`` — no denominator in the period;
- ``no_target`` — the plan clause names no figure;
- ``met`` — the value satisfies the target (``value op target``);
- ``close`` — not met, but within ``CLOSE_MARGIN`` (5 %) of the target value, relative to it;
- ``not_met`` — otherwise.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("met", "close", "not_met", "no_target", "suppressed", "no_data")
CLOSE_MARGIN = 0.05
LABELS: dict[str, tuple[str, str]] = {
    "met": ("Đạt", "Met"),
    "close": ("Gần đạt", "Close"),
    "not_met": ("Chưa đạt", "Not met"),
    "no_target": ("Không có mục tiêu", "No target"),
    "suppressed": ("Ẩn (ô nhỏ)", "Hidden (small cell)"),
    "no_data": ("Không có số liệu", "No data"),
}
_OPS = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: v == t,
}


def has_target(target: dict[str, Any] | None) -> bool:
    """A plan target with a figure (some clauses name none: ``{"op": null, "value": null}``)."""
    return target is not None and target.get("op") is not None and target.get("value") is not None


def status(value: float | None, target: dict[str, Any] | None, *, suppressed: bool = False) -> str:
    """The status of a value against its plan target (see the module docstring)."""
    if suppressed:
        return "suppressed"
    if value is None:
        return "no_data"
    if target is None or not has_target(target):
        return "no_target"
    tv = float(target["value"])
    if _OPS[str(target["op"])](value, tv):
        return "met"
    if tv != 0 and abs(value - tv) / abs(tv) <= CLOSE_MARGIN:
        return "close"
    return "not_met"


def label(code: str, lang: str = "vi") -> str:
    """The words for a status, in the reader's language."""
    vi, en = LABELS.get(code, LABELS["no_data"])
    return en if lang == "en" else vi


def from_label(text: str) -> str:
    """The status code shown by ``text`` (either language); for tests and readers of rendered outputs."""
    for code, words in LABELS.items():
        if text.strip() in words:
            return code
    raise ValueError(f"not a status label: {text!r}")


def shows_denominator(unit: str) -> bool:
    """Counts are shown as counts: no denominator column value and no decimals (the denominator of a count
    indicator is the population observed, used for suppression and "no data" only)."""
    return unit != "count"


__all__ = [
    "CLOSE_MARGIN",
    "LABELS",
    "STATUSES",
    "from_label",
    "has_target",
    "label",
    "shows_denominator",
    "status",
]
