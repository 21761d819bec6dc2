"""Bytes on the wire per synced submission over the degraded island link, against the payload's gzip size.

Same run, same link (netns + veth, tc tbf 100 kbit/s, nft 5 % loss, ~300 ms round trip), same households,
twice: the edge's replicator straight to the province's sync server (``/sync/edge``, the CouchDB replication
protocol: JSON bodies up, gzip answers down), then through the edge's uplink relay (``carecheck edge
uplink``: gzip request bodies). Baseline: the payload (every submission doc as JSON) gzip-compressed one doc
at a time, as a phone sending each record compressed would. Goal: relay bytes per submission ≤ 1.3 × that.
Needs root (network namespaces).
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from console.app import create_app
from core.couch import Couch
from core.services import start_pouchdb
from core.stores import ensure_store
from edge import replication as rep
from edge.uplink import create_uplink
from sync_server.auth import Accounts
from sync_server.edges import enroll
from tests.conftest import make_settings
from tests.edge.households import submission_doc
from tests.edge.netlink import Link, NetnsUnavailable, serve_in_thread

AREA = "31105"


def _sync_once(n: int, via_uplink: bool, root: Path) -> dict[str, Any]:
    (root / "e").mkdir(parents=True)
    (root / "p").mkdir(parents=True)
    edge = start_pouchdb(root / "edge", user="admin", password="admin")
    prov = start_pouchdb(root / "prov", user="admin", password="admin")
    try:
        es = make_settings(root / "e", edge, node_name=f"edge:{AREA}")
        ps = make_settings(root / "p", prov, submissions_db=es.submissions_db, accounts_db=es.accounts_db)
        ecouch, pcouch = Couch(edge.url, "admin", "admin"), Couch(prov.url, "admin", "admin")
        # Set up both ends first (off the measured link), so only replication traffic is counted: the
        # province's store and sync server, the edge enrolled there, the records' collaborator account.
        ensure_store(pcouch, ps)
        Accounts(pcouch, ps).add(f"ctv_{AREA}_01", "mat-khau-123", "collaborator", AREA)
        token = enroll(pcouch, ps, AREA).token
        docs = [submission_doc(i, AREA, node=f"edge:{AREA}") for i in range(n)]
        ecouch.ensure_db(es.submissions_db)
        for i in range(0, n, 100):
            ecouch.bulk_docs(es.submissions_db, docs[i:i + 100])
        with serve_in_thread(create_app(ps)) as central, Link(int(central.rsplit(":", 1)[1])) as link:
            ctx = serve_in_thread(create_uplink(link.url)) if via_uplink else None
            via = ctx.__enter__() if ctx else ""
            try:
                wire0 = link.wire_bytes()
                t0 = time.monotonic()
                # Set-up talks to the province directly; the replicator goes through the link (plain) or the
                # uplink relay in front of the link.
                rep.init_edge(es, AREA, central, token, local=ecouch, via=via or link.url)
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    if _count(pcouch, ps.submissions_db) >= n:
                        break
                    time.sleep(0.5)
                took = time.monotonic() - t0
                time.sleep(1.0)
                wire1 = link.wire_bytes()
            finally:
                if ctx:
                    ctx.__exit__(None, None, None)
            relay = sum(link.counters.up.values()) + sum(link.counters.down.values())
            wire = (wire1["tx"] - wire0["tx"]) + (wire1["rx"] - wire0["rx"])
        got = _count(pcouch, ps.submissions_db)
        return {"docs": got, "seconds": took, "relay_bytes": relay, "wire_bytes": wire,
                "payload_json": sum(len(json.dumps(d, ensure_ascii=False).encode()) for d in docs),
                "payload_gzip_each": sum(len(gzip.compress(json.dumps(d, ensure_ascii=False).encode()))
                                         for d in docs)}
    finally:
        edge.stop()
        prov.stop()


def _count(couch: Couch, db: str) -> int:
    return sum(1 for r in couch.all_docs(db)["rows"] if not r["id"].startswith("_design/"))


def run(quick: bool) -> dict[str, Any]:
    n = 40 if quick else 150
    try:
        Link.check()
    except NetnsUnavailable as exc:
        return {"skipped": f"network namespaces unavailable: {exc}"}
    out: dict[str, Any] = {"submissions": n}
    with tempfile.TemporaryDirectory() as tmp:
        plain = _sync_once(n, False, Path(tmp) / "plain")
        relay = _sync_once(n, True, Path(tmp) / "uplink")
    gz = plain["payload_gzip_each"] / n
    out["payload_json_per_submission"] = round(plain["payload_json"] / n, 1)
    out["payload_gzip_per_submission"] = round(gz, 1)
    for name, r in (("plain", plain), ("uplink", relay)):
        out[f"{name}_delivered"] = r["docs"]
        out[f"{name}_seconds"] = round(r["seconds"], 1)
        out[f"{name}_relay_bytes_per_submission"] = round(r["relay_bytes"] / n, 1)
        out[f"{name}_wire_bytes_per_submission"] = round(r["wire_bytes"] / n, 1)
        out[f"{name}_ratio_vs_gzip"] = round(r["relay_bytes"] / n / gz, 3)
        out[f"{name}_wire_ratio_vs_gzip"] = round(r["wire_bytes"] / n / gz, 3)
    out["goal_ratio"] = 1.3
    out["goal_met"] = out["uplink_ratio_vs_gzip"] <= 1.3
    return out
