"""SQL tables of the aggregator (docs/contracts.md §5): landing, rows, registry, quarantine, checkpoint."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

# Ids are text everywhere; every table carrying answers also carries ``submission_id`` (the CouchDB _id) so
# that a
# replayed page upserts instead of inserting twice. Booleans are NULL when the question was not asked.


class Checkpoint(SQLModel, table=True):
    """Where a feed follower stands: the last CouchDB ``seq`` whose rows are committed (opaque text)."""

    name: str = Field(primary_key=True)
    seq: str = "0"
    updated_at: datetime | None = None


class RawSubmission(SQLModel, table=True):
    """The instance as landed (no names, no personal ids), with capture org unit and submission lag."""

    id: str = Field(primary_key=True)  # meta/instanceID = CouchDB _id
    form_id: str = Field(index=True)
    form_version: str | None = None
    received_at: datetime | None = None
    end_time: datetime | None = None
    lag_seconds: float | None = None
    org_unit_province: str | None = None
    district_code: str | None = Field(default=None, index=True)
    commune_code: str | None = Field(default=None, index=True)
    commune_2025_code: str | None = None
    area_type: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    deprecated_id: str | None = Field(default=None, index=True)
    superseded: bool = False
    # additive (rule 1, aggregator.versions): a head of a record edited in two places that does not count —
    # the id of the version that does. NULL for the winner and for records never forked.
    lost_to: str | None = None
    deleted: bool = False
    submitted_by: str | None = None
    device_id: str | None = None
    ingested_at: datetime | None = None


class Household(SQLModel, table=True):
    """One household visit (a current, non-superseded household_child_check submission)."""

    __table_args__ = (  # (migration 0006_refresh, as on ChildObservation)
        Index(
            "ix_household_commune_visit", "commune_code", "visit_date", postgresql_include=["household_key"]
        ),
    )

    submission_id: str = Field(primary_key=True)
    visit_date: date | None = None
    year: int | None = Field(default=None, index=True)
    quarter: int | None = None
    month: int | None = None
    school_year: str | None = None
    district_code: str | None = Field(default=None, index=True)
    commune_code: str | None = Field(default=None, index=True)
    commune_2025_code: str | None = None
    area_type: str | None = None
    poverty_status: str | None = None
    unfenced_water: bool | None = None
    hotline_111_aware: bool | None = None
    births_12m: int | None = None
    under5_deaths_12m: int | None = None
    consent: bool | None = None
    n_children: int | None = None
    # additive: the registry's household key (hash; no names) so follow-up visits can be grouped
    household_key: str | None = Field(default=None, index=True)
    # additive (plan II.2): NULL for visits made with a form version that did not ask it
    child_drowning_deaths_12m: int | None = None
    # additive (rule 2, aggregator.versions.visit_order): ties of visit_date broken by these, then the id
    end_time: datetime | None = None
    received_at: datetime | None = None



class Child(SQLModel, table=True):
    """The child registry: one row per child across visits (stable id; keyed pseudonyms, no names or IDs)."""

    id: str = Field(primary_key=True)
    # additive: HMAC pseudonym of the valid personal ID (aggregator.registry.pid_pseudonym); the plain ID is
    # never stored. A database of an earlier version still has a ``personal_id`` column: init_db empties it.
    personal_id_hash: str | None = Field(default=None, index=True)
    household_key: str | None = Field(default=None, index=True)
    name_hash: str | None = Field(default=None, index=True)
    dob: date | None = None
    sex: str | None = None
    ethnicity: str | None = None
    first_seen: date | None = None
    last_seen: date | None = None
    district_code: str | None = None
    commune_code: str | None = None


class ChildObservation(SQLModel, table=True):
    """One child in one visit: id = submission_id + "/" + repeat index (0-based)."""

    # the indicator refresh's rows: a few communes over a span of dates (migration 0006_refresh)
    __table_args__ = (
        Index(
            "ix_childobservation_commune_visit", "commune_code", "visit_date", postgresql_include=["child_id"]
        ),
    )

    id: str = Field(primary_key=True)
    submission_id: str = Field(index=True)
    child_id: str | None = Field(default=None, index=True)
    visit_date: date | None = None
    year: int | None = Field(default=None, index=True)
    quarter: int | None = None
    month: int | None = None
    school_year: str | None = None
    district_code: str | None = Field(default=None, index=True)
    commune_code: str | None = Field(default=None, index=True)
    commune_2025_code: str | None = None
    area_type: str | None = None
    sex: str | None = None
    ethnicity: str | None = None
    age_years: int | None = None
    age_months: int | None = None
    birth_registered: str | None = None
    has_valid_personal_id: bool | None = None
    attends_school: bool | None = None
    school_level: str | None = None
    imm_card_seen: bool | None = None
    imm_antigens: str | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    waz: float | None = None
    haz: float | None = None
    whz: float | None = None
    can_swim: bool | None = None
    functional_difficulty: bool | None = None
    orphan_status: str | None = None
    care_arrangement: str | None = None
    work_hours_week: int | None = None
    chore_hours_week: int | None = None
    special_groups: str | None = None
    in_special_circumstance: bool | None = None
    at_risk: bool | None = None
    support_received: bool | None = None
    violence_signs: bool | None = None
    referred: bool | None = None
    referred_within_24h: bool | None = None
    play_space_access: bool | None = None
    # additive (plan II.2 injury events); NULL when not asked (older form versions)
    injury_12m: bool | None = None
    injury_type: str | None = None  # space-separated select_multiple answer, as given
    injury_drowning: bool | None = None  # injury_type has 'drowning' (drowning or near-drowning)
    # additive (rule 2, aggregator.versions.visit_order): ties of visit_date broken by these, then the id
    end_time: datetime | None = None
    received_at: datetime | None = None



class FacilityCheck(SQLModel, table=True):
    """One commune health-station check (commune_facility_check)."""

    submission_id: str = Field(primary_key=True)
    visit_date: date | None = None
    year: int | None = Field(default=None, index=True)
    quarter: int | None = None
    month: int | None = None
    district_code: str | None = Field(default=None, index=True)
    commune_code: str | None = Field(default=None, index=True)
    commune_2025_code: str | None = None
    area_type: str | None = None
    uses_national_immunisation_system: bool | None = None
    digital_child_health_records: bool | None = None
    commune_play_space: bool | None = None
    # additive (rule 2, aggregator.versions.visit_order): ties of visit_date broken by these, then the id
    end_time: datetime | None = None
    received_at: datetime | None = None



class QualityFlag(SQLModel, table=True):
    """An answer that looks wrong: flagged and counted, never dropped. id = submission/obs + "/" + code."""

    id: str = Field(primary_key=True)
    submission_id: str = Field(index=True)
    child_obs_id: str | None = None
    code: str = Field(index=True)
    message: str = ""
    created_at: datetime | None = None


class Quarantine(SQLModel, table=True):
    """A document that failed to process, with its error; retried with back-off, never blocking the feed."""

    submission_id: str = Field(primary_key=True)
    seq: str | None = None
    error: str = ""
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, index=True)
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None


class RegistryConflict(SQLModel, table=True):
    """Two registry children that may be the same child (or one id used twice): a human decides."""

    id: str = Field(primary_key=True)
    child_id_a: str
    child_id_b: str
    reason: str
    created_at: datetime | None = None
    resolved: bool = False


class RegistryKey(SQLModel, table=True):
    """Additive: which pseudonym key the registry was built with — its id (core.secrets.key_id), not the key.

    One row, ``name = "pseudonym"``. A follower whose key has another id refuses to write (see follower).
    """

    name: str = Field(primary_key=True)
    key_id: str
    recorded_at: datetime | None = None


class WorkerHeartbeat(SQLModel, table=True):
    """Additive: when each Celery worker last ran the follower (status works on brokers that cannot ping)."""

    name: str = Field(primary_key=True)  # celery node name, e.g. celery@host
    seen_at: datetime | None = None


class RegistryDecision(SQLModel, table=True):
    """Additive: an officer's decision on a registry conflict (web console), applied by ingestion.

    ``same``: ``child_merged`` is the same child as ``child_kept`` — its visits are re-linked to
    ``child_kept`` now and whenever ingestion matches a visit to ``child_merged`` later (an alias).
    ``different``: two children; the conflict is closed and stays closed.
    """

    conflict_id: str = Field(primary_key=True)
    decision: str  # same | different
    child_kept: str
    child_merged: str | None = Field(default=None, index=True)
    decided_by: str
    decided_at: datetime | None = None


class VersionChoice(SQLModel, table=True):
    """Additive (rule 1): an officer's pick of the version of a record that counts, applied by ingestion."""

    record: str = Field(primary_key=True)  # the original instanceID (aggregator.versions.record_of)
    instance_id: str
    chosen_by: str | None = None
    chosen_at: datetime | None = None


class RefreshDue(SQLModel, table=True):
    """Additive (rule 8): submissions whose indicator cells still need a refresh, written in the same
    transaction as the page that landed them and deleted once the refresh has committed."""

    submission_id: str = Field(primary_key=True)
    due_at: datetime | None = None
