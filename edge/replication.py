"""Set up an edge node: its local store, the `_replicator` documents to and from the province, its config doc.

The edge holds a credential of its own, enrolled at the province (``carecheck edge enroll --area``, pasted
here with ``carecheck edge init --enroll-secret``); it never holds a province CouchDB secret. Everything goes
through the province's sync server (``/sync/edge/…``, ``sync_server/routes/edge_sync.py``), which speaks
the CouchDB replication protocol and checks every call against that credential:

- ``submissions`` edge → province ``/sync/edge/submissions``, filtered with ``carecheck/records`` (every
  record this edge accepted, whatever its household's area; never a design doc). The province applies the
  write rule to each record, the edge vouching for its collaborator (``sync_server.edges``).
- ``/sync/edge/accounts`` → ``carecheck_accounts``: the province sends **collaborator accounts of the edge's
  area only**, stripped to what Digest/Basic checks need. A stolen edge laptop carries no officer's hash,
  no other area's collaborators, no province secret.
- ``/sync/edge/forms`` → ``carecheck_forms``: published forms, the same for every area (``edge.forms``).
- The status report goes up with each ``carecheck edge status`` (``PUT /sync/edge/report``).

pouchdb-server quirks handled here (docs/design.md §3): the replicator needs credentials (we send them as an
``Authorization`` header in the endpoint objects, never in a printed URL); a `_replicator` doc identical to an
old stale one never runs, so every (re)run deletes ours first and writes a new generation. The replication id
depends only on source, target, filter and query params, so a new generation resumes from the old checkpoint.

Upgrading an edge set up with the province's admin account (``edge init --user --password``, before
enrolment): ``edge init --enroll-secret`` deletes each old `_replicator` doc (the replicator forbids editing a
running one, so it cannot be overwritten first), then compacts ``_replicator`` so that no old revision keeps
the admin credentials, and drops ``central_user`` from the config doc.
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
from core.stores import DDOC, EDGE_DB, FORMS_DB, ensure_store
from edge.central import EDGE_PATH, Province, basic_auth

REPLICATOR_DB = "_replicator"
BATCH_SIZE = 25                     # small batches on bad links (docs/design.md §3): a cut loses one batch
RECORDS_FILTER = f"{DDOC}/records"  # every accepted record, no design doc (core.stores)


@dataclass(frozen=True)
class EdgeConfig:
    """What `carecheck edge init` recorded. No secrets: the credential is only in the `_replicator` docs."""

    area: str
    node_name: str
    central_url: str       # the province's sync server (base URL, as phones use it)
    edge_id: str           # this edge's enrolled account at the province ("" for a pre-enrolment set-up)
    configured_at: str
    via: str = ""          # the local uplink relay the replicator goes through (empty: straight to central)

    @property
    def doc_id(self) -> str:
        return f"edge:{self.area}"


@dataclass(frozen=True)
class ReplicationSpec:
    """One `_replicator` document we own."""

    doc_id: str
    kind: str              # submissions_up | accounts_down | forms_down
    direction: str         # up | down
    local_db: str
    central_db: str        # the database name under /sync/edge at the province
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
        raise BadRequest("Đừng ghi tài khoản trong địa chỉ; dùng --enroll-secret.",
                         "Do not put credentials in the URL; use --enroll-secret.")
    return url


def parse_token(token: str) -> tuple[str, str]:
    """(edge id, secret) from what `carecheck edge enroll` printed (``edge-<area>-<hex>:<secret>``)."""
    edge_id, _, secret = token.strip().partition(":")
    if not edge_id.startswith("edge-") or len(secret) < 16 or any(ch.isspace() for ch in token.strip()):
        raise BadRequest("Mã đăng ký không đúng dạng: hãy dán nguyên dòng 'edge-…:…' mà tỉnh đã đưa.",
                         "The enrolment secret is malformed: paste the whole 'edge-…:…' line the province "
                         "gave you.")
    return edge_id, secret


def specs(settings: Settings, area: str) -> list[ReplicationSpec]:
    """The replications an edge for ``area`` runs."""
    del area  # the province scopes what an edge gets from its credential, not from what the edge asks
    return [
        ReplicationSpec("carecheck-edge-submissions-up", "submissions_up", "up", settings.submissions_db,
                        "submissions", RECORDS_FILTER, {}),
        ReplicationSpec("carecheck-edge-accounts-down", "accounts_down", "down", settings.accounts_db,
                        "accounts"),
        ReplicationSpec("carecheck-edge-forms-down", "forms_down", "down", FORMS_DB, "forms"),
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
    central = {"url": f"{central_url}/{EDGE_PATH}/{spec.central_db}",
               "headers": {"Authorization": central_auth}}
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


def read_config(couch: Couch) -> EdgeConfig | None:
    """This node's edge config, or None when `carecheck edge init` has not run here."""
    if not couch.db_exists(EDGE_DB):
        return None
    rows = couch.all_docs(EDGE_DB, include_docs=True, startkey="edge:", endkey="edge:\ufff0").get("rows", [])
    for row in rows:
        doc = row["doc"]
        return EdgeConfig(area=doc["area"], node_name=doc["node_name"], central_url=doc["central_url"],
                          edge_id=doc.get("edge_id") or "", configured_at=doc["configured_at"],
                          via=doc.get("via") or "")
    return None


def write_report(couch: Couch, config: EdgeConfig, report: dict[str, Any]) -> None:
    """Store the latest status report in the config doc (replicated up to the province)."""
    for _ in range(3):
        doc = couch.get(EDGE_DB, config.doc_id) or {"_id": config.doc_id}
        doc.pop("central_user", None)  # a pre-enrolment set-up recorded the province admin's name
        doc.update({"type": "edge", **asdict(config), "report": report})
        try:
            couch.save(EDGE_DB, doc)
            return
        except DocExists:
            continue


def replicator_docs(couch: Couch, *, every: bool = False) -> dict[str, Doc]:
    """Our `_replicator` docs by kind (with the replicator's `_replication_*` fields); ``every``: all of
    them by id, also stale generations and kinds of older versions."""
    out: dict[str, Doc] = {}
    rows = couch.all_docs(REPLICATOR_DB, include_docs=True, startkey="carecheck-edge-",
                          endkey="carecheck-edge-\ufff0").get("rows", [])
    for row in rows:
        doc = row.get("doc") or {}
        kind = (doc.get("carecheck") or {}).get("kind")
        if every:
            out[str(doc.get("_id", row["id"]))] = doc
        elif kind:
            out[str(kind)] = doc
    return out


def central_auth(couch: Couch) -> str | None:
    """The Authorization this edge's replications send to the province (never printed), if set up."""
    doc = replicator_docs(couch).get("submissions_up")
    if doc is None:
        return None
    return str(((doc.get("target") or {}).get("headers") or {}).get("Authorization") or "") or None


def province(couch: Couch, config: EdgeConfig, *, timeout: float = 30.0) -> Province:
    """The province's sync server, as this edge (the credential kept in our own `_replicator` doc)."""
    auth = central_auth(couch)
    if auth is None or not config.edge_id:
        raise ConfigError("Nút biên chưa đăng ký với tỉnh: hãy chạy 'carecheck edge init --enroll-secret …'.",
                          "This edge is not enrolled with the province: run "
                          "'carecheck edge init --enroll-secret …'.")
    return Province(config.central_url, auth, timeout=timeout)


def _credential(local: Couch, enroll_secret: str | None) -> tuple[str, str]:
    """(edge id, Authorization): from the pasted secret, or the one this edge already replicates with."""
    if enroll_secret:
        edge_id, secret = parse_token(enroll_secret)
        return edge_id, basic_auth(edge_id, secret)
    auth = central_auth(local)
    if auth:
        user = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")[0]
        if user.startswith("edge-"):
            return user, auth
    raise BadRequest("Cần --enroll-secret: xin tỉnh chạy 'carecheck edge enroll --area …' rồi dán mã ở đây.",
                     "--enroll-secret is needed: ask the province to run 'carecheck edge enroll --area …' "
                     "and paste the secret here.")


def init_edge(settings: Settings, area: str, central_url: str, enroll_secret: str | None = None,
              *, local: Couch | None = None, via: str = "") -> EdgeConfig:
    """Make this node an edge for ``area``; idempotent (re-running replaces our `_replicator` docs).

    ``central_url`` is the province's sync server (what phones use), ``enroll_secret`` what
    ``carecheck edge enroll`` printed there (optional on a re-run: the credential already in use is kept).
    ``via``: this edge's uplink relay (``carecheck edge uplink``), which gzips what goes up; the replicator
    then reaches the province through it. Set-up itself always talks to the province directly.
    """
    area = check_area(area)
    central_url = check_central_url(central_url)
    via = check_central_url(via) if via else ""
    local = local or local_couch(settings)
    edge_id, auth = _credential(local, enroll_secret)
    link = Province(central_url, auth, timeout=15.0)
    try:
        who = link.whoami()
    except Problem as exc:
        raise Problem(exc.message, exc.message_en + " Run this command again when the link is up."
                      if exc.status == 503 else exc.message_en, code=exc.code) from None
    finally:
        link.close()
    if who.get("area") != area or who.get("edge") != edge_id:
        raise BadRequest(f"Mã đăng ký này của tỉnh dành cho vùng {who.get('area')}, không phải {area}.",
                         f"This enrolment secret is for area {who.get('area')}, not {area}.")

    for db in (settings.submissions_db, settings.accounts_db, FORMS_DB, EDGE_DB):
        local.ensure_db(db)
    ensure_submissions_design(local, settings)

    config = EdgeConfig(area=area, node_name=f"edge:{area}", central_url=central_url, edge_id=edge_id,
                        configured_at=now_iso(), via=via)
    write_report(local, config, {"state": "configured", "checked_at": config.configured_at})
    _write_var_file(settings, config)

    local_auth = basic_auth(settings.couchdb_user, settings.couchdb_password)
    generation = now_iso()
    wanted = {s.doc_id: replicator_doc(s, local.url, local_auth, via or central_url, auth, generation)
              for s in specs(settings, area)}
    # Delete every doc we own first (also specs of an older version, which may hold the province admin's
    # credentials): an identical stale doc never runs. Compaction drops the deleted revisions' bodies.
    old = [str(d["_id"]) for d in replicator_docs(local, every=True).values()] + list(wanted)
    for doc_id in old:
        _delete_replicator_doc(local, doc_id)
    if old:
        local.request("POST", f"{REPLICATOR_DB}/_compact", json={}, action="compact _replicator",
                      ok=(200, 201, 202))
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
