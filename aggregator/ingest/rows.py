"""Submission documents → SQL rows (pure): raw landing without personal data, flattening, derived fields.

Nothing here touches the database: ``build_rows`` maps one document to the rows it stands for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from aggregator import quality
from aggregator.anthropometry import plausible_z, zscores
from aggregator.models import (
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
)
from aggregator.registry import (
    ChildRecord,
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


def default_repeats(form_id: str, version: str | None) -> frozenset[str]:
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
    # answers are mostly strings: they are kept without a call each (this runs on every answer ingested)
    if isinstance(value, dict):
        return {
            k: v if isinstance(v, str) else _strip_personal(v)
            for k, v in value.items()
            if k not in PERSONAL_FIELDS
        }
    if isinstance(value, list):
        return [v if isinstance(v, str) else _strip_personal(v) for v in value]
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


def build_rows(doc: Doc, now: datetime, repeats_of: RepeatsOf = default_repeats, *, key: bytes) -> DocRows:
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
        # rule 6: a WHO-implausible z-score is flagged above (with its value) and left out of every nutrition
        # numerator and denominator, as WHO's igrowup sets flagged z-scores to missing
        for score in ("waz", "haz", "whz"):
            if not plausible_z(score, obs[score]):
                obs[score] = None


# ---------------------------------------------------------------- a page → the database
