"""Authoring script that (re)writes the XLSForm sources; after the first run the .xlsx files are the truth.

Run ``python -m forms.authoring`` only to start over from this script: it overwrites
``forms/xlsforms/*.xlsx`` and then fills the admin-unit choice rows from the register
(``forms.admin_units``). Form authors edit the .xlsx files directly; ``carecheck forms admin-units``
refreshes only the district/commune rows. Question names and choice values follow contracts §2 exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

VI = "Tiếng Việt (vi)"
EN = "English (en)"
LANGS = (VI, EN)
SRC_DIR = Path(__file__).parent / "xlsforms"

SURVEY_COLUMNS = (
    ["type", "name"]
    + [f"label::{lang}" for lang in LANGS]
    + [f"hint::{lang}" for lang in LANGS]
    + ["required"]
    + [f"required_message::{lang}" for lang in LANGS]
    + ["relevant", "constraint"]
    + [f"constraint_message::{lang}" for lang in LANGS]
    + ["calculation", "default", "choice_filter", "appearance", "repeat_count", "parameters"]
)
CHOICES_COLUMNS = ["list_name", "name"] + [f"label::{lang}" for lang in LANGS] + ["district"]
SETTINGS_COLUMNS = ["form_id", "form_title", "default_language"]

REQUIRED_MSG = ("Câu hỏi này bắt buộc phải trả lời.", "This question is required.")
Row = dict[str, str]


def q(
    type_: str,
    name: str,
    vi: str = "",
    en: str = "",
    *,
    required: bool = False,
    hint: tuple[str, str] | None = None,
    cmsg: tuple[str, str] | None = None,
    **cols: str,
) -> Row:
    """One survey row; ``cols`` are the other XLSForm columns (relevant, constraint, calculation, …)."""
    row: Row = {"type": type_, "name": name}
    if vi:
        row[f"label::{VI}"], row[f"label::{EN}"] = vi, en
    if hint:
        row[f"hint::{VI}"], row[f"hint::{EN}"] = hint
    if required:
        row["required"] = "yes"
        row[f"required_message::{VI}"], row[f"required_message::{EN}"] = REQUIRED_MSG
    if cmsg:
        row[f"constraint_message::{VI}"], row[f"constraint_message::{EN}"] = cmsg
    row.update(cols)
    return row


def yn(name: str, vi: str, en: str, **cols: Any) -> Row:
    return q("select_one yes_no", name, vi, en, required=True, **cols)


def choices(list_name: str, items: list[tuple[str, str, str]]) -> list[Row]:
    return [
        {"list_name": list_name, "name": n, f"label::{VI}": vi, f"label::{EN}": en} for n, vi, en in items
    ]


META = [q("start", "start"), q("end", "end"), q("today", "today"), q("deviceid", "deviceid")]

PLACE = [
    q(
        "date",
        "visit_date",
        "Ngày thăm",
        "Date of the visit",
        required=True,
        default="today()",
        constraint=". <= today()",
        cmsg=("Ngày thăm không được ở tương lai.", "The visit date cannot be in the future."),
    ),
    q(
        "select_one district",
        "district",
        "Huyện / thành phố (trước 01/7/2025)",
        "District / city (before 1 July 2025)",
        required=True,
        appearance="minimal",
    ),
    q(
        "select_one commune",
        "commune",
        "Xã / phường / thị trấn (trước 01/7/2025)",
        "Commune / ward / town (before 1 July 2025)",
        required=True,
        appearance="minimal",
        choice_filter="district=${district}",
    ),
]

AGE_DAYS = "(decimal-date-time(${visit_date}) - decimal-date-time(${dob}))"

HOUSEHOLD_SURVEY: list[Row] = (
    META
    + PLACE
    + [
        q("text", "hamlet", "Ấp / khu phố", "Hamlet / neighbourhood", required=True),
        q(
            "geopoint",
            "gps",
            "Vị trí GPS của hộ",
            "GPS location of the household",
            hint=("Không bắt buộc.", "Optional."),
        ),
        yn(
            "consent",
            "Chủ hộ (hoặc người trả lời) có đồng ý tham gia không?",
            "Does the head of household (or the respondent) agree to take part?",
        ),
        q(
            "note",
            "consent_refused_note",
            "Người trả lời không đồng ý. Kết thúc phiếu tại đây và lưu lại.",
            "The respondent did not agree. End the form here and save it.",
            relevant="${consent} = 'no'",
        ),
        q("begin group", "household", "Hộ gia đình", "Household", relevant="${consent} = 'yes'"),
        q("text", "head_name", "Họ và tên chủ hộ", "Name of the head of household", required=True),
        q("select_one poverty_status", "poverty_status", "Hộ thuộc diện", "The household is", required=True),
        yn(
            "unfenced_water",
            "Gần nhà có ao, kênh, mương, sông không có rào chắn không?",
            "Is there an unfenced pond, canal, ditch or river near the house?",
        ),
        yn(
            "hotline_111_aware",
            "Hộ có biết Tổng đài quốc gia bảo vệ trẻ em 111 không?",
            "Does the household know the national child protection hotline 111?",
        ),
        q(
            "integer",
            "births_12m",
            "Số trẻ sinh ra sống trong hộ trong 12 tháng qua",
            "Live births in the household in the last 12 months",
            required=True,
            constraint=". >= 0 and . <= 5",
            cmsg=("Từ 0 đến 5.", "Between 0 and 5."),
        ),
        q(
            "integer",
            "under5_deaths_12m",
            "Số trẻ dưới 5 tuổi của hộ đã mất trong 12 tháng qua",
            "Deaths of children under 5 in the household in the last 12 months",
            required=True,
            constraint=". >= 0 and . <= 5",
            cmsg=("Từ 0 đến 5.", "Between 0 and 5."),
        ),
        q(
            "integer",
            "child_drowning_deaths_12m",
            "Số trẻ em dưới 16 tuổi của hộ tử vong do đuối nước trong 12 tháng qua",
            "Children under 16 of the household who died from drowning in the last 12 months",
            required=True,
            constraint=". >= 0 and . <= 10",
            cmsg=("Từ 0 đến 10.", "Between 0 and 10."),
        ),
        q(
            "integer",
            "children_count",
            "Số trẻ em dưới 18 tuổi đang sống trong hộ",
            "Number of children under 18 living in the household",
            required=True,
            constraint=". >= 0 and . <= 15",
            cmsg=("Từ 0 đến 15 trẻ.", "Between 0 and 15 children."),
        ),
        q("begin repeat", "child", "Trẻ em", "Child", repeat_count="${children_count}"),
        q("text", "child_name", "Họ và tên trẻ", "Child's full name", required=True),
        q("select_one sex", "sex", "Giới tính", "Sex", required=True),
        q(
            "date",
            "dob",
            "Ngày sinh",
            "Date of birth",
            required=True,
            constraint=". <= today() and . <= ${visit_date} and "
            "(decimal-date-time(${visit_date}) - decimal-date-time(.)) div 365.25 < 18",
            cmsg=(
                "Ngày sinh không được ở tương lai và trẻ phải dưới 18 tuổi vào ngày thăm.",
                "The date of birth cannot be in the future and the child must be under 18 on the visit date.",
            ),
        ),
        q("calculate", "age_years", calculation=f"if(${{dob}} = '', '', int({AGE_DAYS} div 365.25))"),
        q("calculate", "age_months", calculation=f"if(${{dob}} = '', '', int({AGE_DAYS} div 30.4375))"),
        q(
            "note",
            "age_note",
            "Tuổi: ${age_years} (${age_months} tháng)",
            "Age: ${age_years} (${age_months} months)",
            relevant="${dob} != ''",
        ),
        q("select_one ethnicity", "ethnicity", "Dân tộc", "Ethnicity", required=True),
        q(
            "select_one yes_no_dk",
            "birth_registered",
            "Trẻ đã được đăng ký khai sinh chưa?",
            "Has the child's birth been registered?",
            required=True,
        ),
        q(
            "text",
            "personal_id",
            "Số định danh cá nhân của trẻ (12 chữ số)",
            "Child's personal identification number (12 digits)",
            hint=(
                "Bỏ trống nếu trẻ chưa có hoặc hộ không biết.",
                "Leave empty if the child has none or it is unknown.",
            ),
            constraint="regex(., '^[0-9]{12}$')",
            appearance="numbers",
            cmsg=(
                "Số định danh cá nhân gồm đúng 12 chữ số.",
                "The personal identification number has exactly 12 digits.",
            ),
        ),
        yn(
            "attends_school",
            "Trẻ hiện có đi học (kể cả mẫu giáo) không?",
            "Does the child currently attend school (including preschool)?",
            relevant="${age_years} >= 3",
        ),
        q(
            "select_one school_level",
            "school_level",
            "Trẻ đang học cấp nào?",
            "Which level does the child attend?",
            required=True,
            relevant="${attends_school} = 'yes'",
        ),
        yn(
            "imm_card_seen",
            "Đã xem phiếu (sổ) tiêm chủng của trẻ chưa?",
            "Was the child's vaccination card seen?",
            relevant="${age_months} < 24",
        ),
        q(
            "image",
            "imm_card_photo",
            "Chụp ảnh phiếu tiêm chủng",
            "Photo of the vaccination card",
            hint=("Không bắt buộc.", "Optional."),
            relevant="${imm_card_seen} = 'yes'",
            parameters="max-pixels=1024",
        ),
        q(
            "select_multiple antigen",
            "imm_antigens",
            "Các mũi tiêm ghi trên phiếu",
            "Doses recorded on the card",
            relevant="${imm_card_seen} = 'yes'",
        ),
        q(
            "decimal",
            "weight_kg",
            "Cân nặng (kg)",
            "Weight (kg)",
            required=True,
            relevant="${age_months} < 60",
            constraint=". >= 1 and . <= 40",
            cmsg=("Cân nặng phải từ 1 đến 40 kg.", "Weight must be between 1 and 40 kg."),
        ),
        q(
            "decimal",
            "height_cm",
            "Chiều cao (cm)",
            "Height (cm)",
            required=True,
            relevant="${age_months} < 60",
            hint=("Trẻ dưới 24 tháng: đo chiều dài nằm.", "Under 24 months: measure lying length."),
            constraint=". >= 40 and . <= 130",
            cmsg=("Chiều cao phải từ 40 đến 130 cm.", "Height must be between 40 and 130 cm."),
        ),
        yn("can_swim", "Trẻ có biết bơi không?", "Can the child swim?", relevant="${age_years} >= 6"),
        yn(
            "injury_12m",
            "Trong 12 tháng qua, trẻ có bị tai nạn, thương tích phải chăm sóc y tế hoặc nghỉ sinh hoạt bình "
            "thường không?",
            "In the last 12 months, did this child have an injury that needed care or kept them from usual "
            "activities?",
        ),
        q(
            "select_multiple injury_type",
            "injury_type",
            "Trẻ bị loại tai nạn, thương tích nào?",
            "What kind of injury?",
            required=True,
            relevant="${injury_12m} = 'yes'",
            hint=(
                "Chọn tất cả các loại đã xảy ra. Đuối nước gồm cả trường hợp suýt đuối nước được cứu sống.",
                "Select every kind that happened. Drowning includes near-drowning (rescued alive).",
            ),
        ),
        yn(
            "functional_difficulty",
            "Trẻ có khó khăn về chức năng (nhìn, nghe, đi lại, giao tiếp, học tập) không?",
            "Does the child have a functional difficulty (seeing, hearing, walking, communicating, "
            "learning)?",
            relevant="${age_years} >= 2",
        ),
        q("select_one orphan_status", "orphan_status", "Tình trạng mồ côi", "Orphanhood", required=True),
        q(
            "select_one care_arrangement",
            "care_arrangement",
            "Trẻ đang được ai chăm sóc?",
            "Who cares for the child?",
            required=True,
            constraint="not(${orphan_status} = 'both_died' and (. = 'both_parents' or . = 'one_parent'))",
            cmsg=(
                "Trẻ mồ côi cả cha và mẹ không thể sống với cha mẹ.",
                "A child orphaned of both parents cannot live with a parent.",
            ),
        ),
        q(
            "integer",
            "work_hours_week",
            "Số giờ trẻ làm việc tạo thu nhập trong tuần qua",
            "Hours of economic work last week",
            required=True,
            relevant="${age_years} >= 5",
            hint=(
                "Làm thuê, buôn bán, đánh bắt, làm ruộng… cho hộ hoặc người khác.",
                "Paid work, trading, fishing, farming… for the household or others.",
            ),
            constraint=". >= 0 and . <= 100",
            cmsg=("Từ 0 đến 100 giờ.", "Between 0 and 100 hours."),
        ),
        q(
            "integer",
            "chore_hours_week",
            "Số giờ trẻ làm việc nhà trong tuần qua",
            "Hours of household chores last week",
            required=True,
            relevant="${age_years} >= 5",
            constraint=". >= 0 and . <= 100",
            cmsg=("Từ 0 đến 100 giờ.", "Between 0 and 100 hours."),
        ),
        q(
            "select_multiple special_group",
            "special_groups",
            "Trẻ thuộc nhóm trẻ em có hoàn cảnh đặc biệt nào (Điều 10, Luật Trẻ em 2016)?",
            "Which groups of children in especially difficult circumstances apply "
            "(Article 10, Law on Children 2016)?",
            required=True,
            relevant="${age_years} < 16",
            constraint="not(selected(., 'none') and count-selected(.) > 1)",
            cmsg=(
                "Không chọn 'Không thuộc nhóm nào' cùng với nhóm khác.",
                "'None of these' cannot be combined with another group.",
            ),
        ),
        yn(
            "at_risk",
            "Trẻ có nguy cơ rơi vào hoàn cảnh đặc biệt không?",
            "Is the child at risk of falling into especially difficult circumstances?",
            relevant="${age_years} < 16",
        ),
        yn(
            "support_received",
            "Trẻ có đang được hỗ trợ, can thiệp không?",
            "Is the child receiving support or intervention?",
            relevant="${special_groups} != '' and not(selected(${special_groups}, 'none'))",
        ),
        yn(
            "violence_signs",
            "Có dấu hiệu trẻ bị bạo lực, xâm hại không?",
            "Are there signs that the child suffers violence or abuse?",
        ),
        yn(
            "referred",
            "Đã chuyển gửi đến cơ quan, dịch vụ bảo vệ trẻ em chưa?",
            "Has the case been referred to child protection services?",
            relevant="${violence_signs} = 'yes'",
        ),
        yn(
            "referred_within_24h",
            "Việc chuyển gửi có trong vòng 24 giờ kể từ khi phát hiện không?",
            "Was it referred within 24 hours of detection?",
            relevant="${referred} = 'yes'",
        ),
        yn(
            "play_space_access",
            "Trẻ có nơi vui chơi an toàn gần nhà không?",
            "Does the child have a safe place to play near home?",
        ),
        q("end repeat", ""),
        q("end group", ""),
    ]
)

YES_NO = choices("yes_no", [("yes", "Có", "Yes"), ("no", "Không", "No")])
GROUPS = [
    ("g01", "Trẻ em mồ côi cả cha và mẹ", "Orphaned of both parents"),
    ("g02", "Trẻ em bị bỏ rơi", "Abandoned"),
    ("g03", "Trẻ em không nơi nương tựa", "Without a carer"),
    ("g04", "Trẻ em khuyết tật", "With disabilities"),
    ("g05", "Trẻ em nhiễm HIV/AIDS", "Living with HIV/AIDS"),
    ("g06", "Trẻ em vi phạm pháp luật", "In conflict with the law"),
    ("g07", "Trẻ em nghiện ma túy", "Using drugs"),
    (
        "g08",
        "Trẻ em phải bỏ học kiếm sống chưa hoàn thành phổ cập giáo dục trung học cơ sở",
        "Out of school to earn a living before finishing lower secondary",
    ),
    (
        "g09",
        "Trẻ em bị tổn hại nghiêm trọng về thể chất và tinh thần do bị bạo lực",
        "Seriously harmed physically or mentally by violence",
    ),
    ("g10", "Trẻ em bị bóc lột", "Exploited"),
    ("g11", "Trẻ em bị xâm hại tình dục", "Sexually abused"),
    ("g12", "Trẻ em bị mua bán", "Trafficked"),
    (
        "g13",
        "Trẻ em mắc bệnh hiểm nghèo hoặc bệnh phải điều trị dài ngày thuộc hộ nghèo, hộ cận nghèo",
        "Seriously or long-term ill in a poor or near-poor household",
    ),
    (
        "g14",
        "Trẻ em di cư, trẻ em lánh nạn, tị nạn chưa xác định được cha mẹ hoặc không có người chăm sóc",
        "Migrant or refugee child without an identified parent or carer",
    ),
    ("none", "Không thuộc nhóm nào", "None of these"),
]
HOUSEHOLD_CHOICES: list[Row] = (
    YES_NO
    + choices(
        "yes_no_dk", [("yes", "Có", "Yes"), ("no", "Không", "No"), ("dont_know", "Không biết", "Don't know")]
    )
    + choices(
        "poverty_status",
        [
            ("poor", "Hộ nghèo", "Poor household"),
            ("near_poor", "Hộ cận nghèo", "Near-poor household"),
            ("neither", "Không nghèo, không cận nghèo", "Neither poor nor near-poor"),
        ],
    )
    + choices("sex", [("male", "Nam", "Male"), ("female", "Nữ", "Female")])
    + choices(
        "ethnicity",
        [
            ("kinh", "Kinh", "Kinh"),
            ("khmer", "Khmer", "Khmer"),
            ("hoa", "Hoa", "Hoa"),
            ("other", "Dân tộc khác", "Other"),
        ],
    )
    + choices(
        "school_level",
        [
            ("preschool", "Mầm non / mẫu giáo", "Preschool"),
            ("primary", "Tiểu học", "Primary"),
            ("lower_secondary", "Trung học cơ sở", "Lower secondary"),
            ("upper_secondary", "Trung học phổ thông", "Upper secondary"),
            ("vocational", "Giáo dục nghề nghiệp", "Vocational"),
        ],
    )
    + choices(
        "antigen",
        [
            ("bcg", "BCG (lao)", "BCG (tuberculosis)"),
            ("hepb0", "Viêm gan B sơ sinh", "Hepatitis B birth dose"),
            ("penta1", "Vắc xin 5 trong 1, mũi 1", "Pentavalent, dose 1"),
            ("penta2", "Vắc xin 5 trong 1, mũi 2", "Pentavalent, dose 2"),
            ("penta3", "Vắc xin 5 trong 1, mũi 3", "Pentavalent, dose 3"),
            ("opv1", "Bại liệt uống, lần 1", "Oral polio, dose 1"),
            ("opv2", "Bại liệt uống, lần 2", "Oral polio, dose 2"),
            ("opv3", "Bại liệt uống, lần 3", "Oral polio, dose 3"),
            ("ipv", "Bại liệt tiêm (IPV)", "Inactivated polio (IPV)"),
            ("measles1", "Sởi, mũi 1", "Measles, dose 1"),
        ],
    )
    + choices(
        "orphan_status",
        [
            ("none", "Cha mẹ đều còn sống", "Both parents alive"),
            ("father_died", "Cha đã mất", "Father died"),
            ("mother_died", "Mẹ đã mất", "Mother died"),
            ("both_died", "Cả cha và mẹ đã mất", "Both parents died"),
        ],
    )
    + choices(
        "care_arrangement",
        [
            ("both_parents", "Cả cha và mẹ", "Both parents"),
            ("one_parent", "Cha hoặc mẹ", "One parent"),
            ("relatives", "Người thân (ông bà, họ hàng)", "Relatives"),
            ("foster_family", "Gia đình nhận chăm sóc thay thế", "Foster family"),
            ("institution", "Cơ sở trợ giúp xã hội", "Social protection institution"),
            ("none", "Không có người chăm sóc", "No carer"),
        ],
    )
    + choices("special_group", GROUPS)
    + choices(
        "injury_type",
        [
            ("drowning", "Đuối nước", "Drowning or near-drowning"),
            ("traffic", "Tai nạn giao thông", "Road traffic injury"),
            ("fall", "Ngã", "Fall"),
            ("burn", "Bỏng", "Burn"),
            ("animal", "Động vật cắn", "Animal bite"),
            ("poisoning", "Ngộ độc", "Poisoning"),
            ("other", "Khác", "Other"),
        ],
    )
)

FACILITY_SURVEY: list[Row] = (
    META
    + PLACE
    + [
        q("text", "station_name", "Tên trạm y tế xã", "Name of the commune health station", required=True),
        yn(
            "uses_national_immunisation_system",
            "Trạm có sử dụng Hệ thống thông tin quản lý tiêm chủng quốc gia không?",
            "Does the station use the national immunisation information system?",
        ),
        yn(
            "digital_child_health_records",
            "Trạm có quản lý hồ sơ sức khỏe trẻ em bằng phần mềm không?",
            "Does the station keep child health records digitally?",
        ),
        yn(
            "commune_play_space",
            "Xã có khu vui chơi công cộng an toàn cho trẻ em không?",
            "Does the commune have a safe public play space for children?",
        ),
        q(
            "integer",
            "children_under_1_registered",
            "Số trẻ dưới 1 tuổi đang được quản lý tiêm chủng",
            "Children under 1 registered for immunisation",
            required=True,
            constraint=". >= 0 and . <= 5000",
            cmsg=("Từ 0 đến 5000.", "Between 0 and 5000."),
        ),
    ]
)

FORMS: dict[str, dict[str, Any]] = {
    "household_child_check": {
        "title": "Phiếu kiểm tra chăm sóc trẻ em tại hộ gia đình",
        "survey": HOUSEHOLD_SURVEY,
        "choices": HOUSEHOLD_CHOICES,
    },
    "commune_facility_check": {
        "title": "Phiếu kiểm tra trạm y tế xã về sức khỏe trẻ em",
        "survey": FACILITY_SURVEY,
        "choices": list(YES_NO),
    },
}


def _sheet(wb: Workbook, title: str, columns: list[str], rows: list[Row], *, first: bool = False) -> None:
    ws = wb.active if first else wb.create_sheet(title)
    assert ws is not None
    ws.title = title
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"{title}: unknown columns {sorted(unknown)} in row {row}")
        ws.append([row.get(c) or None for c in columns])
    ws.freeze_panes = "C2"


def write_form(form_id: str, out: Path) -> Path:
    spec = FORMS[form_id]
    wb = Workbook()
    _sheet(wb, "survey", SURVEY_COLUMNS, spec["survey"], first=True)
    _sheet(wb, "choices", CHOICES_COLUMNS, spec["choices"])
    _sheet(
        wb,
        "settings",
        SETTINGS_COLUMNS,
        [{"form_id": form_id, "form_title": spec["title"], "default_language": VI}],
    )
    path = out / f"{form_id}.xlsx"
    wb.save(path)
    return path


def main(out: Path = SRC_DIR) -> list[Path]:
    from forms.admin_units import update_admin_units

    out.mkdir(parents=True, exist_ok=True)
    paths = [write_form(form_id, out) for form_id in FORMS]
    for p in paths:
        update_admin_units(p)
    return paths


if __name__ == "__main__":
    for p in main():
        print(f"wrote {p}")
