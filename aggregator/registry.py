"""The child registry: stable child ids across visits, personal-ID validation, conflicts for a human.

Matching rule (applied to each child of each visit, in feed order):

1. **Valid personal ID** (``validate_personal_id`` returns no error): the child with that ID's pseudonym
   is the match when its sex and date of birth agree. If they disagree, the record gets a child of its
   own and a ``RegistryConflict`` ("same personal ID, different dob/sex") is written — never merged
   silently. If no child carries the ID yet, fall through to rule 2, and a rule-2 match with *another*
   personal ID is also a conflict ("same name+dob in one household, different personal IDs"); a rule-2
   match without an ID gets this ID attached.
2. **Household + name + date of birth**: household key + name hash + exact dob. Names are normalised by
   Unicode NFD, dropping diacritics (đ → d), lower-casing and collapsing spaces, so "Nguyễn Văn An" and
   "nguyen van an" match; the dob and the household keep false matches rare.
3. Otherwise a new child. Its id is derived from the key that created it (``ch-`` + 20 hex of a keyed
   hash), so a rebuild from an empty database with the same pseudonym key assigns the same ids.

**Keyed pseudonyms.** Everything the registry stores about a person is an HMAC-SHA256 under the pseudonym
key (``core.secrets.pseudonym_key``), never a plain hash: the space of Vietnamese names, and of 12-digit
personal IDs (province, century/sex, birth year + 6 digits), is small enough to hash in full, so a plain
SHA-256 of them re-identifies children from a leaked database; without the key the pseudonyms cannot be
recomputed. Each use has its own domain prefix (``name``, ``household``, ``pid``, ``child``), so equal
inputs of two kinds never give equal pseudonyms. Matching is equality on pseudonyms, so it works exactly
as before for one key; a different key gives different pseudonyms, ids included (see docs/contracts.md §5
on key changes and replays).

- ``household_key`` = HMAC(district | commune | normalised hamlet | normalised head name)[:32]
- ``name_hash`` = HMAC(normalised child name)
- ``pid_pseudonym`` = HMAC(personal ID), computed only for a valid ID; the plain ID is never stored.

Invalid personal IDs are kept on the observation only as ``has_valid_personal_id = false`` (quality flag)
and are not used for matching. Plain names and personal IDs never reach SQL: only pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from aggregator.models import Child, RegistryConflict

# Province codes of birth registration (first 3 digits = "0" + the 2-digit province code). Source: the legacy
# 63-province register shipped by vietnamadminunits (admin_units_legacy.provinceCode), the codes in force when
# personal IDs were issued.
PROVINCE_CODES = frozenset(
    "01 02 04 06 08 10 11 12 14 15 17 19 20 22 24 25 26 27 30 31 33 34 35 36 37 38 40 42 44 45 46 48 "
    "49 51 52 54 "
    "56 58 60 62 64 66 67 68 70 72 74 75 77 79 80 82 83 84 86 87 89 91 92 93 94 95 96".split()
)
# 4th digit: century and sex (Circular 59/2021/TT-BCA): 0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s, ...
_CENTURY_BASE = {0: 1900, 2: 2000, 4: 2100, 6: 2200, 8: 2300}
_PID = re.compile(r"^[0-9]{12}$")


def validate_personal_id(pid: str | None, sex: str | None, dob: date | None) -> str | None:
    """None if ``pid`` is a plausible personal ID for this sex and dob, else why not (English, no digits)."""
    if not pid:
        return "missing"
    if not _PID.match(pid):
        return "not 12 digits"
    if pid[0] != "0" or pid[1:3] not in PROVINCE_CODES:
        return "the province code (digits 1-3) is not a Vietnamese province"
    d4 = int(pid[3])
    century = _CENTURY_BASE[d4 - d4 % 2]
    pid_sex = "male" if d4 % 2 == 0 else "female"
    if sex in ("male", "female") and sex != pid_sex:
        return f"the sex digit (4th) says {pid_sex}, the record says {sex}"
    if dob is not None:
        if dob.year // 100 * 100 != century:
            return f"the century digit (4th) says {century}s, the date of birth is {dob.year}"
        if pid[4:6] != f"{dob.year % 100:02d}":
            return f"the birth-year digits (5-6) do not match the date of birth ({dob.year})"
    return None


def normalise_name(name: str | None) -> str:
    """Lower-case, no diacritics (đ → d), single spaces: what two collaborators typing one name agree on."""
    if not name:
        return ""
    if name.isascii():  # nothing to decompose or drop (NFD of ASCII is itself, no ASCII mark is Mn)
        return " ".join(name.lower().split())
    s = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    return " ".join(s.translate(_NO_MARKS).lower().split())


class _NoMarks(dict[int, int | None]):
    """``str.translate`` table dropping combining marks (category Mn), each character's category looked up
    once and remembered: one C-level pass per name instead of a Python call per character."""

    def __missing__(self, cp: int) -> int | None:
        out = None if unicodedata.category(chr(cp)) == "Mn" else cp
        self[cp] = out
        return out


_NO_MARKS = _NoMarks()


def _sha(text: str) -> str:
    """Plain SHA-256: only for ids made of values that are pseudonyms already (conflict ids)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _mac(key: bytes, domain: str, text: str) -> str:
    """HMAC-SHA256 of ``domain`` NUL ``text`` under the pseudonym key (hex)."""
    if not key:
        raise ValueError("the pseudonym key is empty")
    h = _keyed(key).copy()
    h.update(f"{domain}\0{text}".encode())
    return h.hexdigest()


@lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """The key's HMAC, set up once: each pseudonym then copies it (``hmac``'s own way to reuse a key; a new
    OpenSSL 3 HMAC context per call was most of ``hmac.digest``'s time, ~3 µs of ~6 µs a pseudonym)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def name_hash(key: bytes, name: str | None) -> str | None:
    """Keyed pseudonym of a normalised name (None for no name)."""
    n = normalise_name(name)
    return _mac(key, "name", n) if n else None


def household_key(
    key: bytes, district: str | None, commune: str | None, hamlet: str | None, head_name: str | None
) -> str:
    """Keyed pseudonym of a household: district|commune|normalised hamlet|normalised head name (32 hex)."""
    parts = [district or "", commune or "", normalise_name(hamlet), normalise_name(head_name)]
    return _mac(key, "household", "|".join(parts))[:32]


def pid_pseudonym(key: bytes, pid: str) -> str:
    """Keyed pseudonym of a personal ID. Call it only for a valid ID (``validate_personal_id``)."""
    return _mac(key, "pid", pid)


def _child_id(key: bytes, origin: str) -> str:
    """The stable id of the child first registered from ``origin`` (itself made of pseudonyms)."""
    return "ch-" + _mac(key, "child", origin)[:20]


@dataclass
class ChildRecord:
    """What one visit says about one child (personal data only in memory, never stored in plain)."""

    obs_id: str
    household_key: str
    name_hash: str | None
    dob: date | None
    sex: str | None
    ethnicity: str | None
    pid_hash: str | None  # pid_pseudonym of the personal ID, only when it is valid
    visit_date: date | None
    district_code: str | None
    commune_code: str | None


@dataclass(slots=True)
class RegChild:
    """A registry row while a page is matched (a plain object: no ORM state per child)."""

    id: str
    personal_id_hash: str | None
    household_key: str | None
    name_hash: str | None
    dob: date | None
    sex: str | None
    ethnicity: str | None
    first_seen: date | None
    last_seen: date | None
    district_code: str | None
    commune_code: str | None

    def row(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in CHILD_COLUMNS}


CHILD_COLUMNS = tuple(RegChild.__dataclass_fields__)


@dataclass
class Registry:
    """Page-local view of the registry as a set join: every candidate of the page loaded in one query (by
    personal-ID pseudonym or household key), records matched in feed order against in-memory indexes, and
    the children touched written back with one set-based upsert (``flush``)."""

    session: Session
    key: bytes  # the pseudonym key (core.secrets.pseudonym_key)
    by_pid: dict[str, RegChild] = field(default_factory=dict)
    by_hh: dict[tuple[str, str | None, date | None], RegChild] = field(default_factory=dict)
    by_id: dict[str, RegChild] = field(default_factory=dict)
    touched: dict[str, RegChild] = field(default_factory=dict)
    conflicts: dict[str, dict[str, object]] = field(default_factory=dict)

    def _select(self, *where: Any) -> list[RegChild]:
        table = Child.__table__  # type: ignore[attr-defined]
        cols = [table.c[name] for name in CHILD_COLUMNS]
        # Oldest first so that the first child registered under a personal ID stays its owner.
        q = sa_select(*cols).where(*where).order_by(table.c.first_seen, table.c.id)
        return [RegChild(*row) for row in self.session.execute(q)]

    def preload(self, records: Iterable[ChildRecord]) -> None:
        from aggregator.ingest.bulk import one_of

        recs = list(records)
        pids = {r.pid_hash for r in recs if r.pid_hash}
        hks = {r.household_key for r in recs}
        if not pids and not hks:
            return
        table = Child.__table__  # type: ignore[attr-defined]
        conds = []
        if pids:
            conds.append(one_of(self.session, table.c.personal_id_hash, sorted(pids)))
        if hks:
            conds.append(one_of(self.session, table.c.household_key, sorted(hks)))
        for child in self._select(or_(*conds)):
            self._index(child)

    def _index(self, child: RegChild) -> None:
        self.by_id[child.id] = child
        if child.personal_id_hash:
            self.by_pid.setdefault(child.personal_id_hash, child)
        self.by_hh.setdefault((child.household_key or "", child.name_hash, child.dob), child)

    def _conflict(self, a: str, b: str, reason: str) -> None:
        cid = "rc-" + _sha(f"{a}|{b}|{reason}")[:20]
        if cid not in self.conflicts:
            self.conflicts[cid] = {
                "id": cid,
                "child_id_a": a,
                "child_id_b": b,
                "reason": reason,
                "created_at": datetime.now(UTC),
                "resolved": False,
            }

    def _new(self, origin: str, r: ChildRecord, keep_pid: bool = True) -> RegChild:
        # An id made from a "hh:"/"pid:"/"anon:" origin belongs to a child carrying this record's household
        # key or personal ID pseudonym, so the preload already holds it if it exists: no query per child. A
        # "pid-conflict:" child keeps neither the ID nor (necessarily) this household: look it up.
        cid = _child_id(self.key, origin)
        child = self.by_id.get(cid)
        if child is None and origin.startswith("pid-conflict:"):
            found = self._select(Child.__table__.c.id == cid)  # type: ignore[attr-defined]
            child = found[0] if found else None
        if child is None:
            child = RegChild(
                id=cid,
                personal_id_hash=r.pid_hash if keep_pid else None,
                household_key=r.household_key,
                name_hash=r.name_hash,
                dob=r.dob,
                sex=r.sex,
                ethnicity=r.ethnicity,
                first_seen=r.visit_date,
                last_seen=r.visit_date,
                district_code=r.district_code,
                commune_code=r.commune_code,
            )
        self._index(child)
        return child

    def match(self, r: ChildRecord) -> str:
        """The stable child id for this record (creating or updating the registry row)."""
        child: RegChild | None = None
        if r.pid_hash:
            owner = self.by_pid.get(r.pid_hash)
            if owner is not None:
                if (owner.dob, owner.sex) == (r.dob, r.sex):
                    child = owner
                else:
                    # The ID stays with its first owner; this record's child is kept apart (without the ID)
                    # and
                    # every later visit of the same record lands on that same separate child.
                    child = self._new(f"pid-conflict:{r.pid_hash}|{r.dob}|{r.sex}", r, keep_pid=False)
                    self._conflict(owner.id, child.id, "same personal ID, different dob/sex")
                    return self._seen(child, r)
        if child is None:
            cand = self.by_hh.get((r.household_key, r.name_hash, r.dob)) if r.name_hash else None
            other_pid = cand.personal_id_hash if cand is not None else None
            if cand is not None and r.pid_hash and other_pid and other_pid != r.pid_hash:
                child = self._new(f"pid:{r.pid_hash}", r)
                self._conflict(cand.id, child.id, "same name+dob in one household, different personal IDs")
                return self._seen(child, r)
            child = cand
        if child is None:
            origin = f"pid:{r.pid_hash}" if r.pid_hash else f"hh:{r.household_key}|{r.name_hash}|{r.dob}"
            if not r.name_hash and not r.pid_hash:
                origin = f"anon:{r.obs_id}"  # nothing to match on: a child of its own
            child = self._new(origin, r)
        elif r.pid_hash and not child.personal_id_hash:
            child.personal_id_hash = r.pid_hash
            self.by_pid.setdefault(r.pid_hash, child)
        return self._seen(child, r)

    def _seen(self, child: RegChild, r: ChildRecord) -> str:
        self.touched[child.id] = child
        if r.visit_date:
            if child.first_seen is None or r.visit_date < child.first_seen:
                child.first_seen = r.visit_date
            if child.last_seen is None or r.visit_date >= child.last_seen:
                child.last_seen = r.visit_date
                child.district_code, child.commune_code = r.district_code, r.commune_code
                child.ethnicity = r.ethnicity or child.ethnicity
        return child.id

    def flush(self) -> None:
        """Write the children this page touched and the conflicts it found (one statement each).

        Dates merge with what is stored (earliest first visit, latest last visit), so a row written from a
        page's view never moves them back.
        """
        from aggregator.ingest.bulk import upsert_rows

        rows = [c.row() for c in self.touched.values()]
        upsert_rows(
            self.session,
            Child,
            rows,
            merge={"first_seen": "least", "last_seen": "greatest"},
            skip_unchanged=True,
        )
        upsert_rows(self.session, RegistryConflict, list(self.conflicts.values()), update=False)
        self.touched.clear()
        self.conflicts.clear()


def settle_latest(session: Session, child_ids: Iterable[str]) -> None:
    """Recompute these children's first and last visit, and where they were last seen, from their current
    observations: the latest by rule 2 (aggregator.versions: visit date, end time, received_at, id), so a
    same-day revisit, an edit or a deletion leaves the registry as a rebuild would."""
    from sqlalchemy import func, update

    from aggregator.ingest.bulk import one_of
    from aggregator.models import ChildObservation
    from aggregator.versions import visit_order_of

    obs = ChildObservation.__table__  # type: ignore[attr-defined]
    ids = sorted(set(child_ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        ranked = (
            select(  # type: ignore[call-overload]
                obs.c.child_id,
                obs.c.visit_date,
                obs.c.district_code,
                obs.c.commune_code,
                obs.c.ethnicity,
                func.row_number()
                .over(partition_by=obs.c.child_id, order_by=visit_order_of(obs, descending=True))
                .label("rn"),
                func.min(obs.c.visit_date).over(partition_by=obs.c.child_id).label("first"),
            )
            .where(one_of(session, obs.c.child_id, chunk))
            .subquery()
        )
        # one UPDATE … FROM for the chunk (not a read and a write per child); a child already as computed (the
        # page's own flush usually got it right) is not written again: no new row version, no index entries
        child = Child.__table__  # type: ignore[attr-defined]
        latest = select(ranked).where(ranked.c.rn == 1).subquery()
        values = {
            "first_seen": latest.c.first,
            "last_seen": latest.c.visit_date,
            "district_code": latest.c.district_code,
            "commune_code": latest.c.commune_code,
            "ethnicity": func.coalesce(latest.c.ethnicity, child.c.ethnicity),
        }
        session.execute(
            update(child)
            .where(
                child.c.id == latest.c.child_id,
                or_(*(child.c[name].is_distinct_from(value) for name, value in values.items())),
            )
            .values(**values)
        )


def list_conflicts(session: Session, include_resolved: bool = False) -> list[RegistryConflict]:
    q = select(RegistryConflict).order_by(col(RegistryConflict.created_at))
    if not include_resolved:
        q = q.where(col(RegistryConflict.resolved).is_(False))
    return list(session.exec(q))
