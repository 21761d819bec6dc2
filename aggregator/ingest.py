"""Submission documents → SQL rows: raw landing (no personal data), flattening, derived fields, flags.

``apply_page`` writes one page of the changes feed into an open session (the follower owns the transaction and
the checkpoint). Every write is an upsert keyed on the CouchDB ``_id``: derived rows of a page's documents are
deleted and re-inserted, the raw row is an INSERT … ON CONFLICT UPDATE, so applying a page twice is harmless.
Edits (``deprecated_id``) supersede the original, whichever arrives first; deletions remove a document's rows.
A document that cannot be turned into rows is returned as a failure (the follower quarantines it).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col

from aggregator import quality
from aggregator.anthropometry import zscores
from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
    RegistryConflict,
)
from aggregator.registry import (
    ChildRecord,
    Registry,
    household_key,
    name_hash,
    pid_pseudonym,
    validate_personal_id,
)
from core import orgunits
from core.ages import age
from core.errors import Problem
from core.localtime import local_date

Doc = dict[str, Any]
log = logging.getLogger("carecheck.ingest")
FORM_HOUSEHOLD = "household_child_check"
FORM_FACILITY = "commune_facility_check"
# Never stored in RawSubmission.data: names and personal IDs stay in CouchDB (the registry keeps keyed
# pseudonyms). These are all the free-text answers about a person the forms ask (the hamlet is a place, the
# facility form's station_name a health station).
PERSONAL_FIELDS = frozenset({"head_name", "child_name", "personal_id"})
REPEATS = {FORM_HOUSEHOLD: frozenset({"child"})}
DERIVED = (Household, ChildObservation, FacilityCheck, QualityFlag)
SPECIAL_GROUPS = frozenset(f"g{i:02d}" for i in range(1, 15))

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


class BadSubmission(Exception):
    """The document cannot be turned into rows; the message says where and what (no personal data)."""


# ---------------------------------------------------------------- parsing and typed values
RepeatsOf = Callable[[str, str | None], frozenset[str]]


def compiled_repeats(build_dir: Path) -> RepeatsOf:
    """Repeat names per (form, version) from the compiled XForm in ``build_dir`` (cached), else defaults.

    The aggregator may run where forms were never built (a separate province machine): then the contract's
    repeats (``REPEATS``) are used, and forms.instance also treats any element occurring twice as a repeat.
    """

    @lru_cache(maxsize=64)
    def repeats_of(form_id: str, version: str | None) -> frozenset[str]:
        try:
            from forms.catalog import Catalog
            from forms.fields import repeat_names

            built = Catalog(build_dir).get(form_id, version or None)
            if built is not None:
                return frozenset(repeat_names(built)) | REPEATS.get(form_id, frozenset())
        except Exception:  # noqa: BLE001 - a broken build dir must not stop ingestion; defaults still apply
            log.warning("could not read the compiled form %s %s; using default repeats", form_id, version)
        return REPEATS.get(form_id, frozenset())

    return repeats_of


def _default_repeats(form_id: str, version: str | None) -> frozenset[str]:
    return REPEATS.get(form_id, frozenset())


def instance_dict(xml: str, form_id: str, repeats: frozenset[str] | None = None) -> dict[str, Any]:
    """The instance as a dict (groups flattened, repeats as lists, empty values absent), per contracts §2."""
    repeats = REPEATS.get(form_id, frozenset()) if repeats is None else repeats
    try:  # the forms package's hardened parser (refuses DOCTYPE/entities) when present
        from forms.instance import instance_to_dict, parse_xml
    except ImportError:
        parse_xml, instance_to_dict = None, None  # type: ignore[assignment]
    try:
        if parse_xml is not None:
            data = dict(instance_to_dict(parse_xml(xml.encode("utf-8")), repeats or None))
        else:
            root = etree.fromstring(xml.encode("utf-8"), _PARSER)
            data = _to_dict(root, repeats)
    except Problem as exc:
        raise BadSubmission(exc.message_en) from exc
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise BadSubmission(f"instance XML does not parse: {exc}") from exc
    for name in repeats:  # a single repeat instance is still a list
        if isinstance(data.get(name), dict):
            data[name] = [data[name]]
    return data


def _to_dict(el: Any, repeats: frozenset[str], out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name in repeats:
            out.setdefault(name, []).append(_to_dict(child, repeats))
        elif len(child):
            _to_dict(child, repeats, out)  # a group: flattened away
        elif text := (child.text or "").strip():
            out[name] = text
    return out


def _int(d: dict[str, Any], key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        return int(str(v).strip())
    except ValueError:
        raise BadSubmission(f"{where}{key}: {v!r} is not a whole number") from None


def _float(d: dict[str, Any], key: str, where: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        return float(str(v).strip())
    except ValueError:
        raise BadSubmission(f"{where}{key}: {v!r} is not a number") from None


def _bool(d: dict[str, Any], key: str) -> bool | None:
    v = d.get(key)
    return True if v == "yes" else False if v == "no" else None


def _date(d: dict[str, Any], key: str, where: str) -> date | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        return date.fromisoformat(str(v)[:10])
    except ValueError:
        raise BadSubmission(f"{where}{key}: {v!r} is not a date (YYYY-MM-DD)") from None


def _datetime(v: Any) -> datetime | None:
    """ISO-8601 → aware UTC (SQLModel stores timezone-aware UTC); no offset means UTC; unparseable → None."""
    if not v:
        return None
    try:
        dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def periods(d: date | None) -> dict[str, Any]:
    if d is None:
        return {"year": None, "quarter": None, "month": None, "school_year": None}
    sy = d.year if d.month >= 9 else d.year - 1
    return {
        "year": d.year,
        "quarter": (d.month - 1) // 3 + 1,
        "month": d.month,
        "school_year": f"SY{sy}-{sy + 1}",
    }


def _org(district: str | None, commune: str | None) -> dict[str, Any]:
    c = orgunits.communes().get(commune or "")
    return {
        "district_code": c.district_code if c else district,
        "commune_code": commune,
        "commune_2025_code": c.code_2025 if c else None,
        "area_type": c.area_type if c else None,
    }


def _strip_personal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_personal(v) for k, v in value.items() if k not in PERSONAL_FIELDS}
    if isinstance(value, list):
        return [_strip_personal(v) for v in value]
    return value


# ---------------------------------------------------------------- one document → rows (no database access)
@dataclass
class DocRows:
    doc_id: str
    deprecated_id: str | None
    raw: dict[str, Any]
    household: dict[str, Any] | None = None
    facility: dict[str, Any] | None = None
    children: list[tuple[dict[str, Any], ChildRecord]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)


def build_rows(
    doc: Doc, now: datetime, repeats_of: RepeatsOf = _default_repeats, *, key: bytes
) -> DocRows:
    """Everything one submission contributes, computed in memory; raises BadSubmission.

    ``key`` is the pseudonym key (core.secrets.pseudonym_key): names and valid personal IDs leave this
    function only as keyed pseudonyms.
    """
    doc_id = str(doc["_id"])
    form_id = doc.get("form_id")
    if not form_id or not isinstance(doc.get("xml"), str):
        raise BadSubmission("document has no form_id or no xml")
    data = instance_dict(doc["xml"], form_id, repeats_of(form_id, doc.get("form_version")))
    received = _datetime(doc.get("received_at"))
    end = _datetime(data.get("end"))
    org = _org(data.get("district"), data.get("commune"))
    raw = {
        "id": doc_id,
        "form_id": form_id,
        "form_version": doc.get("form_version"),
        "received_at": received,
        "end_time": end,
        "lag_seconds": (received - end).total_seconds() if received and end else None,
        "org_unit_province": orgunits.PROVINCE_CODE if org["commune_2025_code"] else None,
        **org,
        "data": _strip_personal(data),
        "deprecated_id": doc.get("deprecated_id") or None,
        "superseded": False,
        "deleted": False,
        "submitted_by": doc.get("submitted_by"),
        "device_id": doc.get("device_id"),
        "ingested_at": now,
    }
    rows = DocRows(doc_id, raw["deprecated_id"], raw)
    # Without an answered visit date: the day the form was finished, else received — in Vietnam, not UTC.
    visit = _date(data, "visit_date", "") or local_date(end) or local_date(received)
    base = {"visit_date": visit, **periods(visit), **org}
    if form_id == FORM_FACILITY:
        base.pop("school_year")
        rows.facility = {
            "submission_id": doc_id,
            **base,
            "uses_national_immunisation_system": _bool(data, "uses_national_immunisation_system"),
            "digital_child_health_records": _bool(data, "digital_child_health_records"),
            "commune_play_space": _bool(data, "commune_play_space"),
        }
    elif form_id == FORM_HOUSEHOLD:
        _household(rows, data, base, visit, received, now, key)
    return rows


def _flag(rows: DocRows, f: quality.Flag, now: datetime, obs_id: str | None = None) -> None:
    rows.flags.append(
        {
            "id": f"{obs_id or rows.doc_id}/{f.code}",
            "submission_id": rows.doc_id,
            "child_obs_id": obs_id,
            "code": f.code,
            "message": f.message,
            "created_at": now,
        }
    )


def _counted_children(rows: DocRows, data: dict[str, Any], now: datetime) -> list[Any]:
    """The child entries that count. "0 children" wins over child entries: forms before the repeat was made
    relevant only for children_count > 0 walked the collaborator through a phantom "child 1", which is
    ignored (no observation, no registry child) and flagged."""
    children: list[Any] = data.get("child") or []
    if children and str(data.get("children_count", "")).strip() == "0":
        _flag(rows, quality.children_with_zero_count(len(children)), now)
        return []
    return children


def _household(
    rows: DocRows,
    data: dict[str, Any],
    base: dict[str, Any],
    visit: date | None,
    received: datetime | None,
    now: datetime,
    key: bytes,
) -> None:
    children = _counted_children(rows, data, now)
    consent = _bool(data, "consent")
    hk = household_key(
        key, data.get("district"), data.get("commune"), data.get("hamlet"), data.get("head_name")
    )
    births, deaths = _int(data, "births_12m", ""), _int(data, "under5_deaths_12m", "")
    rows.household = {
        "submission_id": rows.doc_id,
        **base,
        "poverty_status": data.get("poverty_status"),
        "unfenced_water": _bool(data, "unfenced_water"),
        "hotline_111_aware": _bool(data, "hotline_111_aware"),
        "births_12m": births,
        "under5_deaths_12m": deaths,
        "consent": consent,
        "n_children": len(children) if consent else None,
        "household_key": hk,
        "child_drowning_deaths_12m": _int(data, "child_drowning_deaths_12m", ""),
    }
    for f in quality.household_flags(visit, received, births, deaths):
        _flag(rows, f, now)
    if consent is False:
        return
    for i, c in enumerate(children):
        if not isinstance(c, dict):
            raise BadSubmission(f"child[{i + 1}] is not a group of answers")
        where = f"child[{i + 1}]/"
        obs_id = f"{rows.doc_id}/{i}"
        dob, sex = _date(c, "dob", where), c.get("sex")
        years, months = age(dob, visit)
        weight, height = _float(c, "weight_kg", where), _float(c, "height_cm", where)
        z = zscores(sex, dob, visit, weight, height) if months is not None and months < 60 else None
        pid = (c.get("personal_id") or "").strip() or None
        pid_error = validate_personal_id(pid, sex, dob) if pid else "missing"
        groups = (c.get("special_groups") or "").split()
        injured = _bool(c, "injury_12m")
        injuries = (c.get("injury_type") or "").split()
        obs = {
            "id": obs_id,
            "submission_id": rows.doc_id,
            "child_id": None,
            **base,
            "sex": sex,
            "ethnicity": c.get("ethnicity"),
            "age_years": years,
            "age_months": months,
            "birth_registered": c.get("birth_registered"),
            "has_valid_personal_id": pid_error is None,
            "attends_school": _bool(c, "attends_school"),
            "school_level": c.get("school_level"),
            "imm_card_seen": _bool(c, "imm_card_seen"),
            "imm_antigens": c.get("imm_antigens"),
            "weight_kg": weight,
            "height_cm": height,
            "waz": z.waz if z else None,
            "haz": z.haz if z else None,
            "whz": z.whz if z else None,
            "can_swim": _bool(c, "can_swim"),
            "functional_difficulty": _bool(c, "functional_difficulty"),
            "orphan_status": c.get("orphan_status"),
            "care_arrangement": c.get("care_arrangement"),
            "work_hours_week": _int(c, "work_hours_week", where),
            "chore_hours_week": _int(c, "chore_hours_week", where),
            "special_groups": " ".join(groups) or None,
            "in_special_circumstance": any(g in SPECIAL_GROUPS for g in groups) if groups else None,
            "at_risk": _bool(c, "at_risk"),
            "support_received": _bool(c, "support_received"),
            "violence_signs": _bool(c, "violence_signs"),
            "referred": _bool(c, "referred"),
            "referred_within_24h": _bool(c, "referred_within_24h"),
            "play_space_access": _bool(c, "play_space_access"),
            "injury_12m": injured,
            "injury_type": " ".join(injuries) or None,
            # NULL when injury_12m was not asked (older form versions); after a "no" there is no event
            "injury_drowning": None if injured is None else injured and "drowning" in injuries,
        }
        rec = ChildRecord(
            obs_id=obs_id,
            household_key=hk,
            name_hash=name_hash(key, c.get("child_name")),
            dob=dob,
            sex=sex,
            ethnicity=c.get("ethnicity"),
            # validated on the plain value in memory; only a valid ID's pseudonym goes on
            pid_hash=pid_pseudonym(key, pid) if pid is not None and pid_error is None else None,
            visit_date=visit,
            district_code=base["district_code"],
            commune_code=base["commune_code"],
        )
        rows.children.append((obs, rec))
        for f in quality.child_flags(obs, dob, visit, pid is not None, pid_error if pid else None):
            _flag(rows, f, now, obs_id)


# ---------------------------------------------------------------- a page → the database
@dataclass
class PageOutcome:
    ingested: list[str] = field(default_factory=list)  # landed (current or superseded)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id → error (to quarantine)
    skipped: int = 0  # design docs, non-submissions
    rows: int = 0  # SQL rows written (raw + derived)

    @property
    def touched(self) -> list[str]:
        return self.ingested + self.deleted


def upsert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on PostgreSQL or SQLite."""
    if not rows:
        return
    table = model.__table__  # type: ignore[attr-defined]
    ins = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
    pk = [c.name for c in table.primary_key.columns]
    stmt = ins.on_conflict_do_update(
        index_elements=pk, set_={c.name: ins.excluded[c.name] for c in table.columns if c.name not in pk}
    )
    session.execute(stmt, rows)


def _insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(model.__table__.insert(), rows)  # type: ignore[attr-defined]


def _chunks(ids: Iterable[str], n: int = 500) -> Iterable[list[str]]:
    ids = sorted(set(ids))
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def _delete_derived(session: Session, ids: Iterable[str], children: set[str]) -> None:
    """Delete the rows derived from these submissions; collect the registry children they referred to."""
    obs = ChildObservation.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(ids):
        children.update(
            c
            for c in session.execute(select(obs.c.child_id).where(obs.c.submission_id.in_(chunk))).scalars()
            if c
        )
        for model in DERIVED:
            session.execute(delete(model).where(model.submission_id.in_(chunk)))  # type: ignore[attr-defined]


def apply_page(
    session: Session,
    changes: list[Doc],
    *,
    key: bytes,
    now: datetime | None = None,
    fetch: Callable[[str], Doc | None] | None = None,
    repeats_of: RepeatsOf = _default_repeats,
) -> PageOutcome:
    """Apply changes (``{"id", "seq", "deleted"?, "doc"}``) to the session without committing.

    ``key`` is the pseudonym key (core.secrets.pseudonym_key); every process writing one database must use the
    same key, or the registry's links between visits break.
    """
    now = now or datetime.now(UTC)
    out = PageOutcome()
    built: list[DocRows] = []
    deleted_ids: list[str] = []
    for ch in changes:
        doc = ch.get("doc") or {}
        doc_id = str(ch.get("id") or doc.get("_id"))
        if ch.get("deleted") or doc.get("_deleted"):
            deleted_ids.append(doc_id)
            continue
        if doc_id.startswith("_design/") or doc.get("type") != "submission":
            out.skipped += 1
            continue
        try:
            built.append(build_rows(doc, now, repeats_of, key=key))
        except Exception as exc:  # noqa: BLE001 - any failure of one document must not block the feed
            out.failed[doc_id] = _describe(exc)

    # Deletions: rows go, the raw row stays marked deleted; an edit's deletion brings its original back.
    restore: set[str] = set()
    touched_children: set[str] = set()
    if deleted_ids:
        _delete_derived(session, deleted_ids, touched_children)
        for chunk in _chunks(deleted_ids):
            for rid, dep in session.execute(
                select(col(RawSubmission.id), col(RawSubmission.deprecated_id)).where(
                    col(RawSubmission.id).in_(chunk)
                )
            ):
                out.deleted.append(rid)
                if dep:
                    restore.add(dep)
            session.execute(
                update(RawSubmission)
                .where(col(RawSubmission.id).in_(chunk))
                .values(deleted=True, superseded=False)
            )
            session.execute(delete(Quarantine).where(col(Quarantine.submission_id).in_(chunk)))
    page_ids = {r.doc_id for r in built}
    for rid in sorted(restore - page_ids):
        doc = fetch(rid) if fetch else None
        if doc and doc.get("type") == "submission":
            try:
                built.append(build_rows(doc, now, repeats_of, key=key))
                page_ids.add(rid)
            except Exception as exc:  # noqa: BLE001
                out.failed[rid] = _describe(exc)

    # Which of these documents are superseded (by an edit in this page or already landed), and which earlier
    # documents this page's edits supersede.
    targets = {r.deprecated_id for r in built if r.deprecated_id}
    superseded = targets & page_ids
    for chunk in _chunks(page_ids):
        superseded |= set(
            session.execute(
                select(col(RawSubmission.deprecated_id)).where(
                    col(RawSubmission.deprecated_id).in_(chunk),
                    col(RawSubmission.deleted).is_(False),
                )
            ).scalars()
        )
    if targets:
        _delete_derived(session, targets, touched_children)
        for chunk in _chunks(targets):
            session.execute(
                update(RawSubmission).where(col(RawSubmission.id).in_(chunk)).values(superseded=True)
            )
    _delete_derived(session, page_ids, touched_children)

    current = [r for r in built if r.doc_id not in superseded]
    registry = Registry(session, key)
    registry.preload(rec for r in current for _, rec in r.children)
    for r in current:
        for obs, rec in r.children:
            obs["child_id"] = registry.match(rec)
    session.flush()
    registry.flush_conflicts()

    raws = []
    for r in built:
        raws.append({**r.raw, "superseded": r.doc_id in superseded})
    upsert(session, RawSubmission, raws)
    households = [r.household for r in current if r.household]
    facilities = [r.facility for r in current if r.facility]
    observations = [obs for r in current for obs, _ in r.children]
    flags = [f for r in current for f in r.flags]
    _insert(session, Household, households)
    _insert(session, FacilityCheck, facilities)
    _insert(session, ChildObservation, observations)
    _insert(session, QualityFlag, flags)
    for chunk in _chunks(page_ids):
        session.execute(delete(Quarantine).where(col(Quarantine.submission_id).in_(chunk)))
    _prune_orphans(session, touched_children)
    out.ingested = sorted(page_ids)
    out.rows = len(raws) + len(households) + len(facilities) + len(observations)
    return out


def _prune_orphans(session: Session, child_ids: set[str]) -> None:
    """Registry children left without any observation (their only visit was edited away or deleted) go, and
    so do the conflicts naming them (moot; a replay under a new pseudonym key re-creates the live ones)."""
    child, obs = Child.__table__, ChildObservation.__table__  # type: ignore[attr-defined]
    conflict = RegistryConflict.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(child_ids):
        orphan = ~exists().where(obs.c.child_id == child.c.id)
        session.execute(delete(child).where(child.c.id.in_(chunk), orphan))
        for side in (conflict.c.child_id_a, conflict.c.child_id_b):
            gone = ~exists().where(child.c.id == side)
            session.execute(delete(conflict).where(side.in_(chunk), gone))


def _describe(exc: Exception) -> str:
    if isinstance(exc, BadSubmission):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno}" if tb else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
