"""Last contact per device and collaborator, kept out of the append-only submissions.

They live in the database ``<submissions db>_devices``.

Contact records are written at most once per device and account per minute (a burst of 200 submissions costs
one write); last submission and counts come from the ``device_stats`` view, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from core import orgunits
from core.couch import Couch, DocExists
from core.errors import Problem
from core.settings import Settings
from core.stores import devices_db
from sync_server.auth import Account
from sync_server.store import TIME_FORMAT, Submissions

log = logging.getLogger("carecheck.sync.devices")
THROTTLE_SECONDS = 60.0


class Devices:
    def __init__(self, couch: Couch, settings: Settings, submissions: Submissions):
        self.couch = couch
        self.db = devices_db(settings)
        self.submissions = submissions
        self._last_write: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch_later(self, background: Any, device_id: str | None, account: Account, what: str) -> None:
        """Schedule a contact record after the response, unless this device wrote one within the minute.

        The throttle check is in memory and inline, so the hot path adds no thread hop when nothing is due.
        """
        device = (device_id or "").strip()[:200] or f"unknown:{account.name}"
        key = f"device:{device}|{account.name}"
        now = time.monotonic()
        with self._lock:
            last = self._last_write.get(key)
            if last is not None and now - last < THROTTLE_SECONDS:
                return
            self._last_write[key] = now
        background.add_task(self._write, key, device, account, what)

    def _write(self, key: str, device: str, account: Account, what: str) -> None:
        """Record a contact; never fails the request it follows."""
        try:
            for _ in range(3):
                doc = self.couch.get(self.db, key) or {"_id": key, "type": "device_contact"}
                doc.update(
                    {
                        "device_id": device,
                        "account": account.name,
                        "area": account.area,
                        "last_contact": datetime.now(UTC).strftime(TIME_FORMAT),
                        "last_action": what,
                    }
                )
                try:
                    self.couch.save(self.db, doc)
                    return
                except DocExists:
                    continue
        except Problem as exc:  # the store is down: the submission path reports that; contact is best effort
            log.warning("device contact not recorded: %s", exc.message_en)
            with self._lock:
                self._last_write.pop(key, None)

    def report(self, area: str) -> list[dict[str, Any]]:
        """One row per (device, account) visible in ``area``: contact, last submission, days since, counts."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        contacts = self.couch.all_docs(self.db, include_docs=True, startkey="device:", endkey="device:\ufff0")
        for r in contacts["rows"]:
            d = r["doc"]
            if not _visible(area, d.get("area")):
                continue
            rows[(d["device_id"], d["account"])] = {
                "device_id": d["device_id"],
                "collaborator": d["account"],
                "area": d.get("area"),
                "last_contact": d.get("last_contact"),
                "last_submission": None,
                "submissions": 0,
            }
        for device_id, who, sub_area, count, last in self.submissions.device_stats():
            device = device_id or f"unknown:{who}"
            if not _visible(area, sub_area):
                continue
            row = rows.setdefault((device, who), {
                "device_id": device, "collaborator": who, "area": sub_area, "last_contact": None,
                "last_submission": None, "submissions": 0})  # fmt: skip
            row["submissions"] += count
            if row["last_submission"] is None or last > row["last_submission"]:
                row["last_submission"] = last
        now = datetime.now(UTC)
        out = []
        for row in rows.values():
            if row["last_contact"] is None or (row["last_submission"] or "") > row["last_contact"]:
                row["last_contact"] = row["last_submission"]
            for k in ("last_contact", "last_submission"):
                row[f"days_since_{k}"] = _days(now, row[k])
            out.append(row)
        out.sort(key=lambda r: (r["last_contact"] or "", r["device_id"]))
        return out


def _visible(area: str, item_area: str | None) -> bool:
    if area == orgunits.PROVINCE_CODE:
        return True
    if not item_area:
        return False
    if item_area == area:
        return True
    # A district officer sees collaborators of the communes in the district.
    return orgunits.covers(area, item_area)


def _days(now: datetime, stamp: str | None) -> int | None:
    if not stamp:
        return None
    t = datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC)
    return (now - t).days
