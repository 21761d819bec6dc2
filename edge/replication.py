"""Set up an edge node: its local store, the `_replicator` documents to and from the province, its config doc.

What moves where (all continuous, all resuming from CouchDB replication checkpoints):

- ``submissions`` edge → province, filtered with ``carecheck/by_area`` (contracts §3) and ``query_params
  {area: <edge area>}``: only this area's records go up; design docs never do.
- ``carecheck_accounts`` province → edge, filtered with ``carecheck_edge/accounts_for_area``: **collaborator
  accounts of the edge's area only** (the commune, or a district and its communes). Least privilege: a stolen
  edge laptop carries no district or province officer's password hash, and no other area's collaborators.
- ``carecheck_forms`` province → edge, whole database: published forms are the same for every area
  (``edge.forms``).
- ``carecheck_edge`` edge → province ``carecheck_edges``: one doc ``edge:<area>`` holding this node's config
  and its last status report, which the province reads for monitoring (``status.edge_summary``).

pouchdb-server quirks handled here (docs/design.md §3): the replicator needs credentials (we send them as an
``Authorization`` header in the endpoint objects, never in a printed URL); a `_replicator` doc identical to an
old stale one never runs, so every (re)run deletes ours first and writes a new generation. The replication id
depends only on source, target, filter and query params, so a new generation resumes from the old checkpoint.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from core import orgunits
from core.couch import Couch, Doc, DocExists
from core.errors import BadRequest, ConfigError, Problem
from core.settings import Settings
from core.stores import EDGE_DB, EDGES_DB, FORMS_DB, ensure_store

REPLICATOR_DB = "_replicator"
ACCOUNTS_DDOC = "_design/carecheck_edge"
BATCH_SIZE = 25  # small batches on bad links (docs/design.md §3): a cut loses at most one batch

_ACCOUNTS_FOR_AREA = """function (doc, req) {
  if (doc._id.indexOf('_design/') === 0) { return false; }
  if (doc.type !== 'user' || doc.role !== 'collaborator') { return false; }
  var areas = String(req.query.areas).split(',');
  return areas.indexOf(String(doc.area)) >= 0;
}"""

@dataclass(frozen=True)
class EdgeConfig:
    """What `carecheck edge init` recorded. No secrets: credentials live only in the `_replicator` docs."""

    area: str
    node_name: str
    central_url: str
    central_user: str
    configured_at: str
    via: str = ""          # the local uplink relay the replicator goes through (empty: straight to central)

    @property
    def doc_id(self) -> str:
        return f"edge:{self.area}"


@dataclass(frozen=True)
class ReplicationSpec:
    """One `_replicator` document we own."""

    doc_id: str
    kind: str              # submissions_up | accounts_down | forms_down | report_up
    direction: str         # up | down
    local_db: str
    central_db: str
    filter: str | None = None
    query_params: dict[str, str] | None = None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_area(area: str) -> str:
    area = area.strip()
    districts = orgunits.districts()
    if area == orgunits.PROVINCE_CODE:
        raise BadRequest("Tỉnh không phải là nút biên: hãy chọn mã huyện hoặc mã xã.",
                         "The province is not an edge node: choose a legacy district or commune code.")
    if area not in districts and area not in orgunits.communes():
        raise BadRequest(f"Mã vùng {area} không có trong danh mục Kiên Giang "
                         "(mã huyện 3 số hoặc mã xã 5 số).",
                         f"Area {area} is not a Kiên Giang district (3 digits) or commune (5 digits) code.")
    return area


def check_central_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"Địa chỉ kho dữ liệu tỉnh không hợp lệ: {url!r} (cần http:// hoặc https://).",
                         f"The province store URL {url!r} is not valid; it must start with http(s)://.")
    if parts.username or parts.password:
        raise BadRequest("Đừng ghi tài khoản trong địa chỉ; dùng --user và --password.",
                         "Do not put credentials in the URL; use --user and --password.")
    return url


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def specs(settings: Settings, area: str) -> list[ReplicationSpec]:
    """The replications an edge for ``area`` runs."""
    return [
        ReplicationSpec("carecheck-edge-submissions-up", "submissions_up", "up", settings.submissions_db,
                        settings.submissions_db, "carecheck/by_area", {"area": area}),
        ReplicationSpec("carecheck-edge-accounts-down", "accounts_down", "down", settings.accounts_db,
                        settings.accounts_db, "carecheck_edge/accounts_for_area",
                        {"areas": ",".join(orgunits.area_codes(area))}),
        ReplicationSpec("carecheck-edge-forms-down", "forms_down", "down", FORMS_DB, FORMS_DB),
        ReplicationSpec("carecheck-edge-report-up", "report_up", "up", EDGE_DB, EDGES_DB),
    ]


def generation_id(doc_id: str) -> str:
    """A `_replicator` doc id of its own per generation. pouchdb-server's replicator, when a replication
    whose doc was deleted winds down, marks *whatever doc now has that id* "completed" and forgets the new
    replication behind it (pouchdb-replicator's onReplicationComplete looks the doc up by id): re-creating a
    doc under the same id raced with that. CouchDB 3 does not care either way."""
    return f"{doc_id}~{uuid.uuid4().hex[:12]}"


def replicator_doc(spec: ReplicationSpec, local_url: str, local_auth: str, central_url: str,
                   central_auth: str, generation: str) -> Doc:
    local = {"url": f"{local_url}/{spec.local_db}", "headers": {"Authorization": local_auth}}
    central = {"url": f"{central_url}/{spec.central_db}", "headers": {"Authorization": central_auth}}
    doc: Doc = {
        "_id": generation_id(spec.doc_id),
        "source": local if spec.direction == "up" else central,
        "target": central if spec.direction == "up" else local,
        "continuous": True,
        "batch_size": BATCH_SIZE,
        # Ours, ignored by the replicator: lets status find the spec, and makes every generation a new doc.
        # The nonce keeps two generations made within one second apart: pouchdb-server's replicator takes a
        # doc whose body equals a running replication's (even one whose doc was just deleted: it never forgets
        # the signature) for a duplicate of it and never starts it.
        "carecheck": {"kind": spec.kind, "generation": generation, "nonce": uuid.uuid4().hex},
    }
    if spec.filter:
        doc["filter"] = spec.filter
        doc["query_params"] = spec.query_params or {}
    return doc


def ensure_submissions_design(couch: Couch, settings: Settings) -> None:
    """The sync server's databases and `_design/carecheck` with its by_area filter (contracts §3)."""
    ensure_store(couch, settings)


def local_couch(settings: Settings) -> Couch:
    return Couch.from_settings(settings)


def prepare_central(central: Couch, settings: Settings) -> None:
    """Databases and the accounts filter at the province. Needs an admin account there."""
    for db in (settings.submissions_db, settings.accounts_db, FORMS_DB, EDGES_DB):
        central.ensure_db(db)
    central.put_design(settings.accounts_db, {"_id": ACCOUNTS_DDOC, "language": "javascript",
                                              "filters": {"accounts_for_area": _ACCOUNTS_FOR_AREA}})
    ensure_submissions_design(central, settings)  # includes the received_by_stats view edge_summary reads


def read_config(couch: Couch) -> EdgeConfig | None:
    """This node's edge config, or None when `carecheck edge init` has not run here."""
    if not _db_exists(couch, EDGE_DB):
        return None
    rows = couch.all_docs(EDGE_DB, include_docs=True, startkey="edge:", endkey="edge:\ufff0").get("rows", [])
    for row in rows:
        doc = row["doc"]
        return EdgeConfig(area=doc["area"], node_name=doc["node_name"], central_url=doc["central_url"],
                          central_user=doc["central_user"], configured_at=doc["configured_at"],
                          via=doc.get("via") or "")
    return None


def _db_exists(couch: Couch, db: str) -> bool:
    r = couch.request("GET", db, action=f"read database {db}", ok=(200, 404))
    return r.status_code == 200


def write_report(couch: Couch, config: EdgeConfig, report: dict[str, Any]) -> None:
    """Store the latest status report in the config doc (replicated up to the province)."""
    for _ in range(3):
        doc = couch.get(EDGE_DB, config.doc_id) or {"_id": config.doc_id}
        doc.update({"type": "edge", **asdict(config), "report": report})
        try:
            couch.save(EDGE_DB, doc)
            return
        except DocExists:
            continue


def replicator_docs(couch: Couch) -> dict[str, Doc]:
    """Our `_replicator` docs by kind (with the replicator's `_replication_*` fields)."""
    out: dict[str, Doc] = {}
    rows = couch.all_docs(REPLICATOR_DB, include_docs=True, startkey="carecheck-edge-",
                          endkey="carecheck-edge-\ufff0").get("rows", [])
    for row in rows:
        doc = row.get("doc") or {}
        kind = (doc.get("carecheck") or {}).get("kind")
        if kind:
            out[str(kind)] = doc
    return out


def central_from_replicator(couch: Couch, config: EdgeConfig) -> Couch:
    """A connection to the province with the credentials kept in our own `_replicator` doc (never printed)."""
    doc = replicator_docs(couch).get("submissions_up")
    if doc is None:
        raise ConfigError("Nút biên chưa được thiết lập đầy đủ: hãy chạy lại 'carecheck edge init'.",
                          "This edge is not fully set up (no replication doc); "
                          "run 'carecheck edge init' again.")
    auth = str(doc["target"]["headers"]["Authorization"])
    user, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
    return Couch(config.central_url, user, password, timeout=30.0)


def init_edge(settings: Settings, area: str, central_url: str, user: str, password: str,
              *, local: Couch | None = None, via: str = "") -> EdgeConfig:
    """Make this node an edge for ``area``; idempotent (re-running replaces our `_replicator` docs).

    ``via``: the URL of this edge's uplink relay (``carecheck edge uplink``), which gzips what goes up; the
    replicator then reaches the province through it. Set-up itself always talks to the province directly.
    """
    area = check_area(area)
    central_url = check_central_url(central_url)
    via = check_central_url(via) if via else ""
    local = local or local_couch(settings)
    central = Couch(central_url, user, password, timeout=15.0)
    try:
        prepare_central(central, settings)
    except ConfigError:
        raise ConfigError(
            f"Kho dữ liệu tỉnh {central_url} từ chối tài khoản {user}: cần tài khoản quản trị của kho tỉnh.",
            f"The province store {central_url} refused account {user}: "
            "an admin account of that store is needed.",
        ) from None
    except Problem as exc:
        raise Problem(
            f"Không kết nối được kho dữ liệu tỉnh {central_url}. Hãy chạy lại lệnh khi có mạng.",
            f"Could not reach the province store {central_url} ({exc.message_en}). "
            "Run this command again when the link is up.",
        ) from None

    for db in (settings.submissions_db, settings.accounts_db, FORMS_DB, EDGE_DB):
        local.ensure_db(db)
    ensure_submissions_design(local, settings)

    config = EdgeConfig(area=area, node_name=f"edge:{area}", central_url=central_url, central_user=user,
                        configured_at=now_iso(), via=via)
    write_report(local, config, {"state": "configured", "checked_at": config.configured_at})
    _write_var_file(settings, config)

    local_auth = basic_auth(settings.couchdb_user, settings.couchdb_password)
    generation = now_iso()
    central_auth = basic_auth(user, password)
    wanted = {s.doc_id: replicator_doc(s, local.url, local_auth, via or central_url, central_auth, generation)
              for s in specs(settings, area)}
    # Delete every doc we own first (also specs of an older version): an identical stale doc never runs.
    for doc in replicator_docs(local).values():
        _delete_replicator_doc(local, str(doc["_id"]))
    for doc_id in wanted:  # docs of an older version kept the base id
        _delete_replicator_doc(local, doc_id)
    for doc in wanted.values():
        local.save(REPLICATOR_DB, doc)
    return config


def _write_var_file(settings: Settings, config: EdgeConfig) -> None:
    """var/edge.json: the same config for processes that start before the store (no secrets)."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    (settings.var_dir / "edge.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")


def _delete_replicator_doc(local: Couch, doc_id: str, attempts: int = 10) -> None:
    """Delete one of our `_replicator` docs. The replicator itself writes to them (state, replication id)
    at any moment, so a delete with the rev read a moment ago can conflict: read again and retry."""
    for _ in range(attempts):
        doc = local.get(REPLICATOR_DB, doc_id)
        if doc is None:
            return
        r = local.request(
            "DELETE",
            f"{REPLICATOR_DB}/{quote(doc_id, safe='')}",
            params={"rev": doc["_rev"]},
            action=f"delete {doc_id}",
            ok=(200, 202, 404, 409),
        )
        if r.status_code != 409:
            return
    raise Problem(
        f"Không xoá được {doc_id}: bộ sao chép liên tục ghi đè; hãy thử lại.",
        f"Could not delete {doc_id}: the replicator kept updating it; try again.",
    )


def restart(local: Couch) -> int:
    """Restart our replications now (new generation of each `_replicator` doc; they resume from checkpoints).

    pouchdb's retry back-off grows to minutes during a long outage; once the link is back this skips the wait.
    """
    generation = now_iso()
    docs = replicator_docs(local)
    for doc in docs.values():
        _delete_replicator_doc(local, str(doc["_id"]))
        fresh = {k: v for k, v in doc.items() if not k.startswith("_replication") and k != "_rev"}
        fresh["carecheck"] = dict(fresh.get("carecheck") or {}, generation=generation, nonce=uuid.uuid4().hex)
        fresh["_id"] = generation_id(str(doc["_id"]).split("~", 1)[0])
        local.save(REPLICATOR_DB, fresh)
    return len(docs)
