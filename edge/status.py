"""What an edge's replications are doing, in plain words, measured on delivered data — never on "triggered".

pouchdb-server keeps `_replication_state` at "triggered" for a continuous replication whether or not anything
moves (and `_active_tasks` is empty), so the state shown here is measured:

- **waiting** = documents on the source (for submissions: this area's) whose current revision the target does
  not have, asked of the target with `_revs_diff`. Only changes after ``verified_seq`` (the source sequence up
  to which everything was already confirmed delivered) are checked again, so a status check over a slow link
  stays small. When the other side cannot be reached, every unconfirmed document counts as waiting.
- **last success** = the last check that confirmed new deliveries or an empty backlog. A timeout or refusal is
  an error with its time, never a success (CHT #8303).
- **state** = error when the replicator reports one or the other side does not answer; running otherwise.

Each check is written into the edge's ``edge:<area>`` doc, which replicates up to the province; the province's
view of every edge is :func:`edge_summary`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from core.couch import Couch
from core.errors import ConfigError, Problem
from core.localtime import shown
from core.settings import Settings
from core.stores import EDGE_DB
from edge import replication as rep

LABELS = {
    "submissions_up": ("Phiếu gửi lên tỉnh", "Submissions up to the province"),
    "accounts_down": ("Tài khoản cộng tác viên tải về", "Collaborator accounts down"),
    "forms_down": ("Biểu mẫu tải về", "Forms down"),
    "report_up": ("Báo cáo trạng thái lên tỉnh", "Status report up"),
}
STATES = {
    "running": ("đang chạy", "running"),
    "error": ("lỗi", "error"),
    "completed": ("đã hoàn tất", "completed"),
    "missing": ("chưa thiết lập", "not set up"),
}
STALE_REPORT_SECONDS = 3600


@dataclass
class ReplicationStatus:
    kind: str
    state: str                       # running | error | completed | missing
    waiting: int | None              # documents not confirmed on the target
    checked: int                     # documents examined in this check
    verified_seq: str | None         # source seq up to which everything is confirmed delivered
    last_success: str | None         # ISO time of the last check that confirmed delivery
    last_error: str | None
    last_error_at: str | None


@dataclass
class EdgeStatus:
    area: str
    node_name: str
    central_url: str
    checked_at: str
    central_reachable: bool
    replications: list[ReplicationStatus]

    def as_report(self) -> dict[str, Any]:
        return {"checked_at": self.checked_at, "central_reachable": self.central_reachable,
                "replications": {r.kind: asdict(r) for r in self.replications}}


def _since_pages(couch: Couch, db: str, since: str | None, spec: rep.ReplicationSpec, local_side: bool
                 ) -> list[tuple[str, str, str]]:
    """(seq, id, rev) of the source's changes after ``since``, filtered like the replication."""
    params: dict[str, Any] = {"style": "all_docs"}
    if spec.filter:
        params["filter"] = spec.filter
        params.update(spec.query_params or {})
    out: list[tuple[str, str, str]] = []
    cursor = since
    while True:
        results, last = couch.changes(db, cursor, limit=1000, include_docs=False, **params)
        for r in results:
            if str(r["id"]).startswith("_design/"):
                continue
            for ch in r.get("changes", []):
                out.append((str(r["seq"]), str(r["id"]), str(ch["rev"])))
        if not results or last == cursor:
            break
        cursor = last
    del local_side
    return out


def measure(source: Couch, target: Couch, spec: rep.ReplicationSpec, since: str | None,
            *, source_db: str, target_db: str) -> tuple[int, int, str | None]:
    """(waiting, checked, verified_seq): how many source docs the target lacks, asked with `_revs_diff`."""
    changes = _since_pages(source, source_db, since, spec, True)
    missing: set[tuple[str, str]] = set()
    for i in range(0, len(changes), 500):
        chunk = changes[i:i + 500]
        body: dict[str, list[str]] = {}
        for _, docid, rev in chunk:
            body.setdefault(docid, []).append(rev)
        r = target.request("POST", f"{target_db}/_revs_diff", json=body, action="compare revisions")
        for docid, info in r.json().items():
            for rev in info.get("missing", []):
                missing.add((docid, rev))
    verified = since
    for seq, docid, rev in changes:
        if (docid, rev) in missing:
            break
        verified = seq
    waiting_ids = {docid for docid, _ in missing}
    return len(waiting_ids), len(changes), verified


def _count_unverified(source: Couch, spec: rep.ReplicationSpec, since: str | None, source_db: str) -> int:
    return len({docid for _, docid, _ in _since_pages(source, source_db, since, spec, True)})


def check(settings: Settings, local: Couch | None = None) -> EdgeStatus:
    """Measure every replication of this edge, store the result in the edge doc, and return it."""
    local = local or rep.local_couch(settings)
    config = rep.read_config(local)
    if config is None:
        raise ConfigError("Máy này chưa là nút biên: hãy chạy 'carecheck edge init'.",
                          "This node is not an edge yet: run 'carecheck edge init'.")
    previous = ((local.get(EDGE_DB, config.doc_id) or {}).get("report") or {}).get("replications", {})
    docs = rep.replicator_docs(local)
    now = rep.now_iso()
    reach_error: str | None = None
    central: Couch | None = None
    try:
        central = rep.central_from_replicator(local, config)
        central.db_info(settings.submissions_db)
    except Problem as exc:
        reach_error = f"Không kết nối được kho tỉnh / cannot reach the province store: {exc.message_en}"
    results: list[ReplicationStatus] = []
    for spec in rep.specs(settings, config.area):
        prev = previous.get(spec.kind) or {}
        doc = docs.get(spec.kind)
        st = ReplicationStatus(kind=spec.kind, state="running", waiting=None, checked=0,
                               verified_seq=prev.get("verified_seq"), last_success=prev.get("last_success"),
                               last_error=prev.get("last_error"), last_error_at=prev.get("last_error_at"))
        if doc is None:
            st.state = "missing"
        elif doc.get("_replication_state") == "error":
            st.state = "error"
            st.last_error = str(doc.get("_replication_state_reason") or "replication error")
            st.last_error_at = str(doc.get("_replication_state_time") or now)
        elif doc.get("_replication_state") == "completed":
            st.state = "completed"
        up = spec.direction == "up"
        src_db, tgt_db = (spec.local_db, spec.central_db) if up else (spec.central_db, spec.local_db)
        if reach_error is not None or central is None:
            if st.state != "missing":
                st.state = "error"
            st.last_error, st.last_error_at = reach_error, now
            if up:
                try:
                    st.waiting = _count_unverified(local, spec, st.verified_seq, src_db)
                except Problem:
                    st.waiting = None
        else:
            source, target = (local, central) if up else (central, local)
            try:
                waiting, checked, verified = measure(source, target, spec, st.verified_seq,
                                                     source_db=src_db, target_db=tgt_db)
            except Problem as exc:
                st.state = "error"
                st.last_error, st.last_error_at = exc.message_en, now
            else:
                st.waiting, st.checked = waiting, checked
                if waiting == 0 or verified != st.verified_seq:
                    st.last_success = now
                st.verified_seq = verified
        results.append(st)
    status = EdgeStatus(area=config.area, node_name=config.node_name, central_url=config.central_url,
                        checked_at=now, central_reachable=reach_error is None, replications=results)
    rep.write_report(local, config, status.as_report())
    return status


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "—"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    secs = int((now - t).total_seconds())
    when = shown(t)  # the province's time, zone named
    if secs < 120:
        return f"{when} ({secs}s)"
    if secs < 7200:
        return f"{when} ({secs // 60} min)"
    return f"{when} ({secs // 3600} h)"


def render(status: EdgeStatus, lang: str = "vi") -> list[str]:
    """Plain lines for the operator, Vietnamese by default (``lang="en"`` for English)."""
    en = lang == "en"
    now = datetime.now(UTC)
    i = 1 if en else 0
    head = (f"Edge {status.node_name} → {status.central_url}, checked {status.checked_at}" if en else
            f"Nút biên {status.node_name} → {status.central_url}, kiểm tra lúc {status.checked_at}")
    lines = [head]
    for r in status.replications:
        label = LABELS[r.kind][i]
        state = STATES[r.state][i]
        if r.waiting is None:
            wait = "unknown" if en else "không rõ"
        elif r.state == "error" and r.kind == "submissions_up":
            wait = (f"{r.waiting} not confirmed at the province" if en else
                    f"{r.waiting} phiếu chưa xác nhận đã lên tỉnh")
        else:
            wait = f"{r.waiting} waiting" if en else f"{r.waiting} đang chờ"
        ok = _ago(r.last_success, now)
        last = "last success" if en else "lần thành công gần nhất"
        lines.append(f"- {label}: {state}; {wait}; {last} {ok}")
        if r.last_error:
            err = "last error" if en else "lỗi gần nhất"
            lines.append(f"    {err} {r.last_error_at}: {r.last_error}")
    return lines


def sync_now(settings: Settings, timeout: float = 120.0, local: Couch | None = None) -> EdgeStatus:
    """Restart the replications and wait until every submission is confirmed at the province.

    Success means measured delivery (``waiting == 0`` by `_revs_diff`), never "the request was sent": on a
    timeout this raises a Problem saying how many are still waiting (CHT #8303).
    """
    import time

    local = local or rep.local_couch(settings)
    rep.restart(local)
    deadline = time.monotonic() + timeout
    while True:
        st = check(settings, local)
        up = next(r for r in st.replications if r.kind == "submissions_up")
        if st.central_reachable and up.waiting == 0:
            return st
        if time.monotonic() >= deadline:
            waiting = "?" if up.waiting is None else str(up.waiting)
            raise Problem(
                f"Chưa đồng bộ xong sau {timeout:.0f} giây: còn {waiting} phiếu chưa xác nhận đã lên tỉnh "
                f"({'mất kết nối tới tỉnh' if not st.central_reachable else 'đang gửi'}). "
                "Dữ liệu vẫn an toàn trên máy này và sẽ tự gửi tiếp.",
                f"Not synchronised after {timeout:.0f}s: {waiting} submissions not confirmed at the province "
                f"({'province unreachable' if not st.central_reachable else 'still sending'}). "
                "The data is safe on this node and replication keeps going.",
            )
        time.sleep(2.0)
