"""The child registry: stable child ids across visits, personal-ID validation, conflicts for a human.

Matching rule (applied to each child of each visit, in feed order):

1. **Valid personal ID** (``validate_personal_id`` returns no error): the child with that personal ID is the
  match
   when its sex and date of birth agree. If they disagree, the record gets a child of its own and a
   ``RegistryConflict`` ("same personal ID, different dob/sex") is written — never merged silently. If no
   child
   carries the ID yet, fall through to rule 2, and a rule-2 match with *another* personal ID is also a
   conflict
   ("same name+dob in one household, different personal IDs"); a rule-2 match without an ID gets this ID
   attached.
2. **Household + name + date of birth**: household key (sha256 of district | commune | normalised hamlet |
   normalised head-of-household name) + name hash (sha256 of the normalised child name) + exact dob. Names are
   normalised by Unicode NFD, dropping diacritics (đ → d), lower-casing and collapsing spaces, so "Nguyễn Văn
   An"
   and "nguyen van an" match; the dob and the household keep false matches rare.
3. Otherwise a new child. Its id is derived from the key that created it (``ch-`` + 20 hex of a sha256), so a
   rebuild from an empty database assigns the same ids.

Invalid personal IDs are kept on the observation only as ``has_valid_personal_id = false`` (quality flag) and
are
not used for matching. Plain names never reach SQL: only hashes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import or_
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
    s = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn")
    return " ".join(s.lower().split())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def name_hash(name: str | None) -> str | None:
    n = normalise_name(name)
    return _sha(n) if n else None


def household_key(
    district: str | None, commune: str | None, hamlet: str | None, head_name: str | None
) -> str:
    return _sha("|".join([district or "", commune or "", normalise_name(hamlet), normalise_name(head_name)]))[
        :32
    ]


def _child_id(key: str) -> str:
    return "ch-" + _sha(key)[:20]


@dataclass
class ChildRecord:
    """What one visit says about one child (personal data only in memory, never stored in plain)."""

    obs_id: str
    household_key: str
    name_hash: str | None
    dob: date | None
    sex: str | None
    ethnicity: str | None
    personal_id: str | None  # only when valid
    visit_date: date | None
    district_code: str | None
    commune_code: str | None


@dataclass
class Registry:
    """Page-local view of the registry: candidates loaded in two queries, new children added in memory."""

    session: Session
    by_pid: dict[str, Child] = field(default_factory=dict)
    by_hh: dict[tuple[str, str | None, date | None], Child] = field(default_factory=dict)
    by_id: dict[str, Child] = field(default_factory=dict)
    conflicts: dict[str, RegistryConflict] = field(default_factory=dict)

    def preload(self, records: Iterable[ChildRecord]) -> None:
        recs = list(records)
        pids = {r.personal_id for r in recs if r.personal_id}
        hks = {r.household_key for r in recs}
        if not pids and not hks:
            return
        conds = []
        if pids:
            conds.append(col(Child.personal_id).in_(sorted(pids)))
        if hks:
            conds.append(col(Child.household_key).in_(sorted(hks)))
        # Oldest first so that the first child registered under a personal ID stays its owner.
        for child in self.session.exec(
            select(Child).where(or_(*conds)).order_by(col(Child.first_seen), col(Child.id))
        ):
            self._index(child)

    def _index(self, child: Child) -> None:
        self.by_id[child.id] = child
        if child.personal_id:
            self.by_pid.setdefault(child.personal_id, child)
        self.by_hh.setdefault((child.household_key or "", child.name_hash, child.dob), child)

    def _conflict(self, a: str, b: str, reason: str) -> None:
        cid = "rc-" + _sha(f"{a}|{b}|{reason}")[:20]
        if cid not in self.conflicts:
            self.conflicts[cid] = RegistryConflict(
                id=cid,
                child_id_a=a,
                child_id_b=b,
                reason=reason,
                created_at=datetime.now(UTC),
                resolved=False,
            )

    def _new(self, key: str, r: ChildRecord, keep_pid: bool = True) -> Child:
        # An id made from a "hh:"/"pid:"/"anon:" key belongs to a child carrying this record's household key
        # or
        # personal ID, so the preload already holds it if it exists: no query per child. A "pid-conflict:"
        # child
        # keeps neither the ID nor (necessarily) this household: look it up.
        child = self.by_id.get(_child_id(key))
        if child is None and key.startswith("pid-conflict:"):
            child = self.session.get(Child, _child_id(key))
        if child is None:
            pid = r.personal_id if keep_pid else None
            child = Child(
                id=_child_id(key),
                personal_id=pid,
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
            self.session.add(child)
        self._index(child)
        return child

    def match(self, r: ChildRecord) -> str:
        """The stable child id for this record (creating or updating the registry row)."""
        child: Child | None = None
        if r.personal_id:
            owner = self.by_pid.get(r.personal_id)
            if owner is not None:
                if (owner.dob, owner.sex) == (r.dob, r.sex):
                    child = owner
                else:
                    # The ID stays with its first owner; this record's child is kept apart (without the ID)
                    # and
                    # every later visit of the same record lands on that same separate child.
                    child = self._new(f"pid-conflict:{r.personal_id}|{r.dob}|{r.sex}", r, keep_pid=False)
                    self._conflict(owner.id, child.id, "same personal ID, different dob/sex")
                    return self._seen(child, r)
        if child is None:
            cand = self.by_hh.get((r.household_key, r.name_hash, r.dob)) if r.name_hash else None
            if cand is not None and r.personal_id and cand.personal_id and cand.personal_id != r.personal_id:
                child = self._new(f"pid:{r.personal_id}", r)
                self._conflict(cand.id, child.id, "same name+dob in one household, different personal IDs")
                return self._seen(child, r)
            child = cand
        if child is None:
            key = f"pid:{r.personal_id}" if r.personal_id else f"hh:{r.household_key}|{r.name_hash}|{r.dob}"
            if not r.name_hash and not r.personal_id:
                key = f"anon:{r.obs_id}"  # nothing to match on: a child of its own
            child = self._new(key, r)
        elif r.personal_id and not child.personal_id:
            child.personal_id = r.personal_id
            self.by_pid.setdefault(r.personal_id, child)
        return self._seen(child, r)

    def _seen(self, child: Child, r: ChildRecord) -> str:
        if r.visit_date:
            if child.first_seen is None or r.visit_date < child.first_seen:
                child.first_seen = r.visit_date
            if child.last_seen is None or r.visit_date >= child.last_seen:
                child.last_seen = r.visit_date
                child.district_code, child.commune_code = r.district_code, r.commune_code
                child.ethnicity = r.ethnicity or child.ethnicity
        return child.id

    def flush_conflicts(self) -> None:
        for c in self.conflicts.values():
            if self.session.get(RegistryConflict, c.id) is None:
                self.session.add(c)
        self.conflicts.clear()


def list_conflicts(session: Session, include_resolved: bool = False) -> list[RegistryConflict]:
    q = select(RegistryConflict).order_by(col(RegistryConflict.created_at))
    if not include_resolved:
        q = q.where(col(RegistryConflict.resolved).is_(False))
    return list(session.exec(q))
