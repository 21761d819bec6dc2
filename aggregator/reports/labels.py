"""Bilingual report text (Vietnamese first, English second), number formats, period labels, traffic lights."""

from __future__ import annotations

from typing import Any

from aggregator.indicators.status import LABELS as STATUS_LABELS
from aggregator.indicators.status import has_target
from aggregator.periods import Period
from core.localtime import VIETNAM_TIME as VIETNAM_TIME  # the one definition (rule 7), used by the reports

Target = dict[str, Any] | None  # {"op": "<", "value": 0.8, "clause": "..."} as the rollup gives it
LANGS = ("vi", "en")
LEVELS = ("commune", "district", "province")
HIERARCHIES = ("legacy", "2025")

# Traffic lights: colour AND text, so a black-and-white print still says it. The statuses and their words
# are rule 9's (aggregator.indicators.status); this module only adds colours.
STATUS_COLOURS = {
    "met": "#1b7f3b",
    "close": "#b26a00",
    "not_met": "#c0262d",
    "no_target": "#44607a",
    "no_data": "#6b7280",
    "suppressed": "#6b7280",
}

TEXT: dict[str, tuple[str, str]] = {
    # the statuses' words: rule 9's, one place
    **{f"status_{code}": words for code, words in STATUS_LABELS.items()},
    # title and header
    "title": (
        "Báo cáo chỉ tiêu chăm sóc, giáo dục và bảo vệ trẻ em",
        "Child care, education and protection indicators report",
    ),
    "subtitle": ("Thực hiện Chỉ thị 28-CT/TW của Bộ Chính trị", "Implementing Politburo Directive 28-CT/TW"),
    "org_unit": ("Đơn vị", "Org unit"),
    "level": ("Cấp", "Level"),
    "hierarchy": ("Hệ thống đơn vị", "Hierarchy"),
    "period": ("Kỳ báo cáo", "Period"),
    "generated_at": ("Thời điểm lập", "Generated at"),
    "min_cell": ("Ngưỡng ẩn ô nhỏ (mẫu số dưới)", "Small-cell threshold (denominator below)"),
    "level_commune": ("Xã / phường", "Commune / ward"),
    "level_district": ("Huyện (trước 01/7/2025)", "District (legacy)"),
    "level_province": ("Tỉnh", "Province"),
    "hierarchy_legacy": ("Trước 01/7/2025 (tỉnh → huyện → xã)", "Legacy (province → district → commune)"),
    "hierarchy_2025": ("Từ 01/7/2025 (tỉnh → xã)", "Since 1 July 2025 (province → commune)"),
    # sections
    "sec_summary": ("1. Tổng hợp chỉ tiêu", "1. Indicator summary"),
    "sec_trend": ("2. Xu hướng 4 kỳ gần nhất", "2. Trend over the last 4 periods"),
    "sec_ranking": ("3. Xếp hạng đơn vị trực thuộc", "3. Ranking of constituent units"),
    "sec_disagg": ("4. Phân tổ theo loại địa bàn và dân tộc", "4. Disaggregation by area type and ethnicity"),
    "sec_quality": ("5. Chất lượng dữ liệu", "5. Data quality"),
    "no_ranking": (
        "Cấp xã không có đơn vị trực thuộc để xếp hạng.",
        "A commune has no constituent units to rank.",
    ),
    "no_rows": ("Chưa có số liệu.", "No data yet."),
    "no_figures_for": (
        "Không đơn vị trực thuộc nào có số liệu công bố được (không có số liệu hoặc ô nhỏ bị ẩn):",
        "No constituent unit has a figure that can be published (no data, or small cells hidden):",
    ),
    "no_figures": (
        "Chưa có đơn vị trực thuộc nào có số liệu công bố được (không có số liệu hoặc ô nhỏ bị ẩn).",
        "No constituent unit has a figure that can be published yet (no data, or small cells hidden).",
    ),
    # table headers
    "indicator": ("Chỉ tiêu", "Indicator"),
    "numerator": ("Tử số", "Numerator"),
    "denominator": ("Mẫu số", "Denominator"),
    "value": ("Giá trị", "Value"),
    "target": ("Mục tiêu", "Target"),
    "status": ("Đánh giá", "Status"),
    "unit": ("Đơn vị tính", "Unit"),
    "clause": ("Căn cứ", "Plan clause"),
    "rank": ("Hạng", "Rank"),
    "group": ("Nhóm", "Group"),
    "dimension": ("Phân tổ", "Disaggregation"),
    "code": ("Mã", "Code"),
    "name": ("Tên", "Name"),
    "figure": ("Số liệu", "Figure"),
    "area_type": ("Loại địa bàn", "Area type"),
    "ethnicity": ("Dân tộc", "Ethnicity"),
    "sex": ("Giới tính", "Sex"),
    "target_line": ("Đường mục tiêu", "Target line"),
    # statuses
    "close_note": (
        "Gần đạt: chưa đạt nhưng cách mục tiêu không quá 5 %. Ẩn (ô nhỏ): mẫu số dưới ngưỡng, không công bố.",
        "Close: not met but within 5 % of the target. Hidden: denominator below the threshold.",
    ),
    # units
    "unit_percent": ("%", "%"),
    "unit_per_1000": ("‰", "per 1,000"),
    "unit_count": ("số lượng", "count"),
    # disaggregation values
    "island": ("Hải đảo", "Island"),
    "border": ("Biên giới", "Border"),
    "mainland": ("Đất liền", "Mainland"),
    "kinh": ("Kinh", "Kinh"),
    "khmer": ("Khmer", "Khmer"),
    "hoa": ("Hoa", "Hoa"),
    "other": ("Dân tộc khác", "Other"),
    "male": ("Nam", "Male"),
    "female": ("Nữ", "Female"),
    # data quality
    "q_received": ("Số phiếu đã nhận", "Submissions received"),
    "q_current": (
        "Phiếu hiện hành (không tính bản đã sửa, đã xoá)",
        "Current submissions (excl. superseded, deleted)",
    ),
    "q_superseded": ("Phiếu đã được sửa (bản cũ)", "Superseded by an edit"),
    "q_deleted": ("Phiếu đã xoá", "Deleted"),
    "q_lag": ("Độ trễ gửi phiếu theo loại địa bàn", "Submission lag by area type"),
    "q_lag_median": ("Trung vị", "Median"),
    "q_lag_p90": ("Phân vị 90", "90th percentile"),
    "q_submissions": ("Số phiếu", "Submissions"),
    "q_flags": ("Câu trả lời bị gắn cờ theo mã", "Flagged answers by flag code"),
    "q_flag_code": ("Mã cờ", "Flag code"),
    "q_count": ("Số lượng", "Count"),
    "q_quarantined": ("Bản ghi đang cách ly (lỗi xử lý)", "Quarantined records (processing errors)"),
    "q_suppressed": ("Số ô bị ẩn trong báo cáo này", "Suppressed cells in this report"),
    "q_no_flags": ("Không có câu trả lời bị gắn cờ.", "No flagged answers."),
    "q_edges": (
        "Trạm biên (đảo, biên giới): đồng bộ lên tỉnh",
        "Edge nodes (islands, border): sync to the province",
    ),
    "q_edge_node": ("Trạm", "Node"),
    "q_edge_state": ("Trạng thái", "State"),
    "q_edge_last_success": ("Lần đồng bộ thành công gần nhất", "Last successful sync"),
    "q_edge_backlog": ("Phiếu chờ gửi lên", "Waiting to go up"),
    "q_edge_lag": ("Độ trễ", "Lag"),
    "q_edge_report": ("Báo cáo trạng thái cách đây", "Status reported"),
    "q_edge_stale": ("quá 1 giờ", "over 1 hour ago"),
    "q_no_edges": ("Không có trạm biên nào trong khu vực này.", "No edge nodes in this area."),
    "q_edges_unavailable": (
        "Không đọc được trạng thái trạm biên (kho dữ liệu không trả lời).",
        "Edge-node status unavailable (the store did not answer).",
    ),
    "q_all": ("Tất cả", "All"),
    "footer": (
        "Báo cáo chỉ chứa số liệu tổng hợp; không có thông tin cá nhân. Ô có mẫu số nhỏ hơn ngưỡng được ẩn,"
        " cùng với một số ô khác khi cần, để không thể suy ra ô bị ẩn từ các số tổng, và để phần còn lại"
        " của các ô bị ẩn không bao giờ là 0 % hay 100 % (lấy tổng trừ các ô công bố không cho biết ô bị"
        " ẩn đạt tất cả hay không đạt gì).",
        "Aggregates only; no personal data. Cells whose denominator is below the threshold are hidden,"
        " with other cells where needed, so that a hidden cell cannot be worked out from the totals, and so"
        " that the hidden cells of a total are never together 0 % or 100 % (the total minus the cells shown"
        " never tells that every hidden unit has all or none).",
    ),
    "sheet_summary": ("Tổng hợp", "Summary"),
    "sheet_trend": ("Xu hướng", "Trend"),
    "sheet_ranking": ("Xếp hạng", "Ranking"),
    "sheet_disagg": ("Phân tổ", "Disaggregation"),
    "sheet_quality": ("Chất lượng dữ liệu", "Data quality"),
}


def t(key: str, lang: str) -> str:
    """The text for ``key`` in ``lang`` (falls back to the key itself for unknown values)."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


def both(key: str) -> tuple[str, str]:
    """(Vietnamese, English) for ``key``."""
    return TEXT.get(key, (key, key))


# --- numbers ---


def fmt_number(x: float | None, lang: str, decimals: int = 0) -> str:
    """Vietnamese uses "." for thousands and "," for decimals; English the other way round."""
    if x is None:
        return "—"
    s = f"{x:,.{decimals}f}"
    if lang == "en":
        return s
    return s.replace(",", "\u2009").replace(".", ",").replace("\u2009", ".")


def fmt_value(x: float | None, unit: str, lang: str) -> str:
    if x is None:
        return "—"
    if unit == "count":
        return fmt_number(x, lang, 0)
    decimals = 2 if abs(x) < 10 else 1
    sign = {"percent": " %", "per_1000": " ‰"}.get(unit, "")
    return fmt_number(x, lang, decimals) + sign


def fmt_target(target: Target, unit: str, lang: str) -> str:
    if target is None or not has_target(target):
        return "—"
    op = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "="}.get(
        str(target.get("op")), str(target.get("op"))
    )
    return f"{op} {fmt_value(float(target['value']), unit, lang)}"


def fmt_seconds(s: float | None, lang: str) -> str:
    """A lag as hours or days, e.g. "2,5 ngày" / "2.5 days"."""
    if s is None:
        return "—"
    if s < 3600:
        return f"{fmt_number(s / 60, lang, 0)} {'phút' if lang == 'vi' else 'min'}"
    if s < 2 * 86400:
        return f"{fmt_number(s / 3600, lang, 1)} {'giờ' if lang == 'vi' else 'h'}"
    return f"{fmt_number(s / 86400, lang, 1)} {'ngày' if lang == 'vi' else 'days'}"


# --- traffic lights ---


def clause_text(row: Any, lang: str) -> str:
    """The plan clause the indicator answers to, in the reader's language (cited with or without a figure)."""
    target = row.target or {}
    return str(target.get("clause_vi" if lang == "vi" else "clause") or target.get("clause") or "")


def better_high(target: Target) -> bool:
    """Whether a higher value is better (for ranking): targets with ">" or ">=" say so; "<" the reverse."""
    return not (target is not None and has_target(target) and str(target.get("op", "")).startswith("<"))


# --- periods ---


def period_label(period: Period, lang: str) -> str:
    """A period as officers write it: "Quý 4/2026", "Tháng 11/2026", "Năm học 2026-2027"."""
    code = period.code
    if period.type == "quarter":
        y, q = code.split("Q")
        return f"Quý {q}/{y}" if lang == "vi" else f"Q{q} {y}"
    if period.type == "month":
        y, m = code.split("-")
        return f"Tháng {int(m)}/{y}" if lang == "vi" else f"{y}-{m}"
    if period.type == "school_year":
        return f"Năm học {code[2:]}" if lang == "vi" else f"School year {code[2:]}"
    return f"Năm {code}" if lang == "vi" else code
