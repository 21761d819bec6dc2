"""What an edge's replications are doing, in plain words, measured on delivered data — never on "triggered".

pouchdb-server keeps `_replication_state` at "triggered" for a continuous replication whether or not anything
moves (and `_active_tasks` is empty), so the state shown here is measured:

- **waiting**, up = the records this edge accepted (any area) that the province does not hold yet, asked of
  the province by id and XML hash (``/sync/edge/submissions/_held``: a record that reached the province
  another way, e.g. the phone sent it again in town, counts as held); down = what the province would send
  (``/sync/edge/{forms,accounts}/_changes``) whose revision this edge lacks (`_revs_diff`). Only changes
  after ``verified_seq`` (up to which everything was already confirmed) are checked again, so a status check
  over a slow link stays small. When the province cannot be reached, every unconfirmed record is waiting.
- **refused**: the province does not take this edge's credential (revoked by ``carecheck edge revoke``, or
  unknown): one bilingual line saying so, and every replication is in error.
- **last success** = the last check that confirmed new deliveries or an empty backlog. A timeout or refusal is
  an error with its time, never a success (CHT #8303).
- **state** = error when the replicator reports one or the other side does not answer; running otherwise.

Each check is written into the edge's ``edge:<area>`` doc and sent to the province (``PUT
/sync/edge/report``); the province's view of every edge is ``core.stores.edge_summary``.
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
from edge.central import Province

LABELS = {
    "submissions_up": ("Phiếu gửi lên tỉnh", "Submissions up to the province"),
    "accounts_down": ("Tài khoản cộng tác viên tải về", "Collaborator accounts down"),
    "forms_down": ("Biểu mẫu tải về", "Forms down"),
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
    conflicting: int = 0             # up: records the province holds with other content under their id


@dataclass
class EdgeStatus:
    area: str
    node_name: str
    central_url: str
    checked_at: str
    central_reachable: bool
    replications: list[ReplicationStatus]
    refused: str | None = None       # the province refuses this edge (revoked, unknown): its bilingual reason

    def as_report(self) -> dict[str, Any]:
        return {"checked_at": self.checked_at, "central_reachable": self.central_reachable,
                "refused": self.refused, "replications": {r.kind: asdict(r) for r in self.replications}}


def _local_changes(couch: Couch, db: str, since: str | None, spec: rep.ReplicationSpec
                   ) -> list[tuple[str, str, str, str]]:
    """(seq, id, rev, xml_sha256) of this edge's changes after ``since``, filtered like the replication."""
    params: dict[str, Any] = {"style": "all_docs"}
    if spec.filter:
        params["filter"] = spec.filter
        params.update(spec.query_params or {})
    out: list[tuple[str, str, str, str]] = []
    cursor = since
    while True:
        results, last = couch.changes(db, cursor, limit=1000, include_docs=True, **params)
        for r in results:
            if str(r["id"]).startswith("_design/") or r.get("deleted"):
                continue
            sha = str((r.get("doc") or {}).get("xml_sha256") or "")
            for ch in r.get("changes", [])[:1]:
                out.append((str(r["seq"]), str(r["id"]), str(ch["rev"]), sha))
        if not results or last == cursor:
            break
        cursor = last
    return out


def measure_up(local: Couch, link: Province, spec: rep.ReplicationSpec, since: str | None
               ) -> tuple[int, int, int, str | None]:
    """(waiting, conflicting, checked, verified_seq) of the records this edge accepted: ``waiting`` = the
    province does not hold the record (by id), ``conflicting`` = it holds other content under its id."""
    changes = _local_changes(local, spec.local_db, since, spec)
    missing: set[str] = set()
    different: set[str] = set()
    for i in range(0, len(changes), 500):
        m, d = link.held({docid: sha for _, docid, _, sha in changes[i:i + 500]})
        missing |= m
        different |= d
    verified = since
    for seq, docid, _, _ in changes:
        if docid in missing or docid in different:
            break
        verified = seq
    return len(missing), len(different), len({c[1] for c in changes}), verified


def measure_down(local: Couch, link: Province, spec: rep.ReplicationSpec, since: str | None
                 ) -> tuple[int, int, str | None]:
    """(waiting, checked, verified_seq): what the province would send that this edge lacks (`_revs_diff`)."""
    changes: list[tuple[str, str, str]] = []
    cursor = since
    while True:
        results, last = link.changes(spec.central_db, cursor)
        changes += [(str(r["seq"]), str(r["id"]), str(ch["rev"]))
                    for r in results for ch in r.get("changes", [])]
        if not results or last == cursor:
            break
        cursor = last
    missing: set[tuple[str, str]] = set()
    for i in range(0, len(changes), 500):
        body: dict[str, list[str]] = {}
        for _, docid, rev in changes[i:i + 500]:
            body.setdefault(docid, []).append(rev)
        r = local.request("POST", f"{spec.local_db}/_revs_diff", json=body, action="compare revisions")
        for docid, info in r.json().items():
            missing |= {(docid, rev) for rev in info.get("missing", [])}
    verified = since
    for seq, docid, rev in changes:
        if (docid, rev) in missing:
            break
        verified = seq
    return len({docid for docid, _ in missing}), len(changes), verified


def check(settings: Settings, local: Couch | None = None) -> EdgeStatus:
    """Measure every replication of this edge, store the result in the edge doc (and at the province)."""
    local = local or rep.local_couch(settings)
    config = rep.read_config(local)
    if config is None:
        raise ConfigError("Máy này chưa là nút biên: hãy chạy 'carecheck edge init'.",
                          "This node is not an edge yet: run 'carecheck edge init'.")
    previous = ((local.get(EDGE_DB, config.doc_id) or {}).get("report") or {}).get("replications", {})
    docs = rep.replicator_docs(local)
    now = rep.now_iso()
    reach_error: str | None = None
    refused: str | None = None
    link: Province | None = None
    try:
        link = rep.province(local, config)
        link.whoami()
    except Problem as exc:
        if exc.status == 503:
            reach_error = f"Không kết nối được tỉnh / cannot reach the province: {exc.message_en}"
        else:  # revoked, unknown credential, not enrolled: the province will take nothing from this edge
            refused = f"{exc.message} / {exc.message_en}"
            reach_error = refused
        if link is not None:
            link.close()
            link = None
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
        if link is None:
            if st.state != "missing":
                st.state = "error"
            st.last_error, st.last_error_at = reach_error, now
            if up:
                try:
                    unverified = _local_changes(local, spec.local_db, st.verified_seq, spec)
                    st.waiting = len({c[1] for c in unverified})
                except Problem:
                    st.waiting = None
        else:
            try:
                if up:
                    waiting, st.conflicting, checked, verified = measure_up(local, link, spec,
                                                                            st.verified_seq)
                else:
                    waiting, checked, verified = measure_down(local, link, spec, st.verified_seq)
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
                        checked_at=now, central_reachable=link is not None, replications=results,
                        refused=refused)
    rep.write_report(local, config, status.as_report())
    if link is not None:
        try:
            link.put_report({"central_url": config.central_url, "configured_at": config.configured_at,
                             "via": config.via, "report": status.as_report()})
        except Problem:
            pass  # the next check reports again; the status itself is measured either way
        finally:
            link.close()
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
    if status.refused:  # both languages whatever --lang: this is the line an operator must act on
        lines.append(f"!! {status.refused}")
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
        if r.conflicting:
            lines.append(f"    {r.conflicting} records held at the province with other content under their id"
                         if en else f"    {r.conflicting} phiếu mà tỉnh giữ bản khác cùng mã")
        if r.last_error:
            err = "last error" if en else "lỗi gần nhất"
            lines.append(f"    {err} {r.last_error_at}: {r.last_error}")
    return lines


def sync_now(settings: Settings, timeout: float = 120.0, local: Couch | None = None) -> EdgeStatus:
    """Restart the replications and wait until every submission is confirmed at the province.

    Success means measured delivery (``waiting == 0``: the province holds every record), never "the request
    was sent": on a timeout this raises a Problem saying how many are still waiting (CHT #8303); when the
    province refuses this edge (revoked), at once with that reason.
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
        if st.refused:  # waiting will not help: the province takes nothing from this edge
            raise Problem(st.refused.split(" / ", 1)[0], st.refused.split(" / ", 1)[-1])
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
