"""Forms travel to edges through CouchDB: the province publishes its build tree, edges write it back to disk.

Province: ``publish`` puts every built form version (contracts §2) into the ``carecheck_forms`` database, one
doc ``form:<form_id>:<version>`` with ``form.xml``, ``form.json``, ``enketo.json`` (the field web app's form,
when built) and each media file as attachments (``media:<name>``) and ``current: true`` on the version phones
should download. Edges pull that database continuously (``carecheck-edge-forms-down``); ``apply`` writes what
arrived into the edge's own build directory, each version via a temporary directory renamed into place, so the
edge's sync server serves exactly the province's bytes (same md5 hashes in the formList) and never a
half-written form.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.couch import Couch, Doc
from core.settings import Settings
from core.stores import FORMS_DB
from edge.replication import now_iso
from forms.catalog import Catalog


def _doc_id(form_id: str, version: str) -> str:
    return f"form:{form_id}:{version}"


def publish(couch: Couch, settings: Settings) -> list[str]:
    """Put every built form version into ``carecheck_forms``; returns the doc ids written."""
    couch.ensure_db(FORMS_DB)
    catalog = Catalog(settings.effective_forms_build_dir)
    written: list[str] = []
    for built in catalog.all():
        current = catalog.current_version(built.form_id) == built.version
        media = {m.filename: m.hash for m in built.media}
        doc_id = _doc_id(built.form_id, built.version)
        old = couch.get(FORMS_DB, doc_id)
        if old and (old.get("hash"), old.get("media"), old.get("current")) == (built.hash, media, current):
            continue
        body: Doc = {"_id": doc_id, "type": "form", "form_id": built.form_id, "version": built.version,
                     "title": built.title, "hash": built.hash, "media": media, "current": current,
                     "published_at": now_iso()}
        files: dict[str, tuple[str, bytes]] = {
            "form.xml": ("text/xml", built.xml_bytes()),
            "form.json": ("application/json", (built.dir / "form.json").read_bytes()),
        }
        if (built.dir / "enketo.json").is_file():  # the field web app's form (forms/enketo.py), same build
            files["enketo.json"] = ("application/json", (built.dir / "enketo.json").read_bytes())
        for m in built.media:
            files[f"media:{m.filename}"] = ("application/octet-stream", m.path.read_bytes())
        body["_attachments"] = {name: {"content_type": ct, "data": base64.b64encode(data).decode("ascii")}
                                for name, (ct, data) in files.items()}
        if old:
            body["_rev"] = old["_rev"]
        couch.save(FORMS_DB, body)
        written.append(doc_id)
    return written


def apply(couch: Couch, settings: Settings) -> list[str]:
    """Write the forms this edge has received to its build directory; returns the versions (re)written."""
    build = settings.effective_forms_build_dir
    build.mkdir(parents=True, exist_ok=True)
    rows = couch.all_docs(FORMS_DB, include_docs=True, attachments=True, startkey="form:",
                          endkey="form:\ufff0").get("rows", [])
    written: list[str] = []
    for row in rows:
        doc: dict[str, Any] = row.get("doc") or {}
        form_id, version = str(doc.get("form_id", "")), str(doc.get("version", ""))
        if not form_id or not version or "/" in form_id + version or form_id.startswith("."):
            continue
        target = build / form_id / version
        meta = target / "form.json"
        have = json.loads(meta.read_text(encoding="utf-8")).get("hash") if meta.is_file() else None
        if have != doc.get("hash"):
            _write_version(target, doc)
            written.append(f"{form_id}/{version}")
        if doc.get("current"):
            _write_text(build / form_id / "current", version + "\n")
    return written


def _write_version(target: Path, doc: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, att in (doc.get("_attachments") or {}).items():
            data = base64.b64decode(att["data"])
            path = tmp / "media" / name.split(":", 1)[1] if name.startswith("media:") else tmp / name
            if path.parent != tmp and path.parent != tmp / "media":
                continue  # a name with a path in it: never write outside the version directory
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
