"""Feed lag and health for operators: changes behind, oldest pending change, quarantine, workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from aggregator.db import get_engine, init_db
from aggregator.feed import parts
from aggregator.follower import KEY_ID_ROW, checkpoint_name
from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
    RefreshDue,
    RegistryConflict,
    RegistryKey,
    WorkerHeartbeat,
)
from core.couch import Couch
from core.errors import Problem
from core.localtime import shown
from core.secrets import key_file, key_id, pseudonym_key
from core.settings import Settings

COUNT_PAGE = 5000
HEARTBEAT_WINDOW_S = 30


def pending_changes(couch: Couch, db: str, since: str) -> tuple[int, str | None]:
    """(changes after ``since``, received_at of the first of them). Uses CouchDB's ``pending`` when given,
    else counts id-only pages (pouchdb-server does not send ``pending``)."""
    r = couch.request(
        "GET",
        f"{db}/_changes",
        params={"since": since, "limit": 1, "include_docs": "true"},
        headers={"Accept-Encoding": "identity"},
        action="read changes",
    )
    data = r.json()
    results = data.get("results") or []
    if not results:
        return 0, None
    oldest = (results[0].get("doc") or {}).get("received_at")
    if "pending" in data:
        return int(data["pending"]) + len(results), oldest
    n, seq = 0, since
    while True:
        page, last = couch.changes(db, since=seq, limit=COUNT_PAGE, include_docs=False)
        n += len(page)
        if len(page) < COUNT_PAGE:
            return n, oldest
        seq = last


def workers_seen(timeout: float = 1.0) -> list[str] | None:
    """Worker names answering a broadcast ping, or None if the broker cannot broadcast (SQLite transport)."""
    try:
        from aggregator.celery_app import app

        replies = app.control.inspect(timeout=timeout).ping() or {}
        return sorted(replies)
    except Exception:  # noqa: BLE001 - status must always print; "unknown" is the honest answer
        return None


def gather(settings: Settings, *, ping: bool = True) -> dict[str, Any]:
    init_db(settings)
    now = datetime.now(UTC)
    out: dict[str, Any] = {}
    with Session(get_engine(settings)) as s:
        from aggregator.models import Checkpoint

        cp = s.get(Checkpoint, checkpoint_name(settings))
        out["checkpoint"] = cp.seq if cp else "0"
        if settings.ingest_partitions > 1:  # one checkpoint per partition: the oldest is how far all are
            cps = {p.index: s.get(Checkpoint, checkpoint_name(settings, p)) for p in parts(settings)}
            out["checkpoint"] = " ".join(f"{i}:{c.seq if c else '0'}" for i, c in cps.items())
            # the partition that moved least recently: a stalled one shows here
            cp = min(cps.values(), key=lambda c: c.updated_at.timestamp() if c and c.updated_at else 0.0)
        out["checkpoint_updated_at"] = shown(cp.updated_at) if cp and cp.updated_at else None  # UTC+7
        for key, model in (
            ("raw_submissions", RawSubmission),
            ("households", Household),
            ("child_observations", ChildObservation),
            ("children", Child),
            ("facility_checks", FacilityCheck),
            ("quality_flags", QualityFlag),
            ("quarantine", Quarantine),
            ("indicator_refreshes_due", RefreshDue),
        ):
            out[key] = int(s.exec(select(func.count()).select_from(model)).one())
        by_code = s.exec(
            select(QualityFlag.code, func.count())
            .group_by(col(QualityFlag.code))
            .order_by(func.count().desc())
        ).all()
        out["quality_flags_by_code"] = ", ".join(f"{code} {n}" for code, n in by_code) or None
        open_conflicts = select(func.count()).select_from(RegistryConflict)
        open_conflicts = open_conflicts.where(col(RegistryConflict.resolved).is_(False))
        out["registry_conflicts_open"] = int(s.exec(open_conflicts).one())
        lost = select(func.count()).select_from(RawSubmission).where(col(RawSubmission.lost_to).is_not(None))
        out["versions_not_counted"] = int(s.exec(lost).one())
        out["pseudonym_key_id"] = _key_id_line(settings, s.get(RegistryKey, KEY_ID_ROW))
    try:
        couch = Couch.from_settings(settings, timeout=10, start=False)  # read-only: never starts a store
        try:
            behind, oldest = pending_changes(couch, settings.submissions_db, out["checkpoint"])
        finally:
            couch.close()
        out["changes_behind"] = behind
        age = None
        if oldest:
            try:
                ts = datetime.fromisoformat(oldest.replace("Z", "+00:00")).astimezone(UTC)
                age = round((now - ts).total_seconds(), 1)
            except ValueError:
                age = None
        out["oldest_unprocessed_age_s"] = age
    except Problem as exc:
        out["changes_behind"] = None
        out["oldest_unprocessed_age_s"] = None
        out["couch_error"] = exc.text()
    pinged = workers_seen() if ping else None
    with Session(get_engine(settings)) as s:
        recent = now - timedelta(seconds=HEARTBEAT_WINDOW_S)
        beats = sorted(
            h.name for h in s.exec(select(WorkerHeartbeat).where(col(WorkerHeartbeat.seen_at) >= recent))
        )
    # A ping answer is best; on a broker that cannot broadcast (SQLite) the follower's heartbeats tell.
    out["workers"] = pinged if pinged else (beats or (None if pinged is None else []))
    return out


def _key_id_line(settings: Settings, row: RegistryKey | None) -> str | None:
    """The id (not the key) of the pseudonym key the registry was built with, and whether this process's key
    is that one. Read-only: no key file is created here."""
    if row is None:
        return None
    configured = settings.pseudonym_key.get_secret_value() or key_file(settings).exists()
    if not configured:
        return f"{row.key_id} (tiến trình này chưa có khoá / no key for this process)"
    try:
        ours = key_id(pseudonym_key(settings))
    except Problem as exc:
        return f"{row.key_id} ({exc.message_en})"
    if ours == row.key_id:
        return str(row.key_id)
    return f"{row.key_id} (KHÁC khoá của tiến trình này {ours} / DIFFERS from this process's key {ours})"


LABELS = {
    "checkpoint": ("Điểm đã xử lý (seq)", "Checkpoint (seq)"),
    "checkpoint_updated_at": ("Cập nhật lúc", "Checkpoint updated at"),
    "changes_behind": ("Số thay đổi chưa xử lý", "Changes behind"),
    "oldest_unprocessed_age_s": ("Thay đổi cũ nhất chưa xử lý (giây)", "Oldest unprocessed change (s)"),
    "quarantine": ("Phiếu bị cách ly (lỗi)", "Quarantined documents"),
    "indicator_refreshes_due": (
        "Phiếu chờ cập nhật chỉ tiêu (tự thử lại)",
        "Submissions whose indicator refresh is still due (retried)",
    ),
    "versions_not_counted": (
        "Phiên bản sửa hai nơi không được tính (carecheck conflicts)",
        "Versions of records edited twice that do not count (carecheck conflicts)",
    ),
    "workers": ("Tiến trình xử lý đang chạy (30 giây qua)", "Workers seen (last 30 s)"),
    "raw_submissions": ("Phiếu đã nhận vào SQL", "Submissions landed"),
    "households": ("Hộ gia đình", "Households"),
    "child_observations": ("Lượt trẻ em được thăm", "Child observations"),
    "children": ("Trẻ em trong sổ đăng ký", "Children in the registry"),
    "facility_checks": ("Phiếu trạm y tế", "Facility checks"),
    "quality_flags": ("Cảnh báo chất lượng dữ liệu", "Data-quality flags"),
    "quality_flags_by_code": ("Cảnh báo theo loại", "Flags by kind"),
    "registry_conflicts_open": ("Trùng lặp cần xem xét", "Registry duplicates to review"),
    "couch_error": ("Lỗi kho dữ liệu", "Store error"),
    "pseudonym_key_id": ("Mã khoá bí danh của sổ đăng ký", "Registry pseudonym key id"),
}
