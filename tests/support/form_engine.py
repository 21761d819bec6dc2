"""The real form engine for tests: JavaRosa (ODK Collect's engine, inside pyxform's ODK Validate jar).

``FormEngine.build(dir)`` compiles ``javarosa/CollectFill.java`` against the jar with ``javac`` (Debian
``default-jdk-headless``, installed by scripts/system-deps.sh); ``engine.fill(form_xml, scripts)`` runs it
once for a batch of answer scripts and returns one :class:`Fill` per script. What a script looks like and
what the program does (new instance, preloads, answer only what the engine shows, repeats, constraints,
finalise, serialise) is written at the top of the Java source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyxform
from lxml import etree

SOURCE = Path(__file__).with_name("javarosa") / "CollectFill.java"
JAR = Path(pyxform.__file__).parent / "validators" / "odk_validate" / "bin" / "ODK_Validate.jar"
PHONE_TZ = "Asia/Ho_Chi_Minh"  # what the collaborators' phones are set to

Script = dict[str, Any]


@dataclass
class Fill:
    """What the engine did with one answer script."""

    status: str  # complete | stuck | invalid | error
    events: list[dict[str, Any]]
    unused: list[str]
    xml: bytes | None = None
    at: str | None = None
    reason: str | None = None
    message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def shown(self, name: str) -> list[dict[str, Any]]:
        """The question events (answers tried) for questions called ``name``, in order."""
        return [e for e in self.events if e["event"] == "question" and e["name"] == name]

    def root(self) -> etree._Element:
        assert self.xml is not None, f"{self.status} at {self.at} ({self.reason}: {self.message})"
        return etree.fromstring(self.xml)

    def values(self, name: str) -> list[str]:
        """The serialised text of every ``name`` element in the finished instance (document order)."""
        return [el.text or "" for el in self.root().iter() if etree.QName(el).localname == name]


class FormEngine:
    def __init__(self, classes: Path) -> None:
        self.classes = classes

    @classmethod
    def build(cls, out: Path) -> FormEngine:
        """Compile the program (once per source + jar: the class directory is named by their digest)."""
        javac, java = shutil.which("javac"), shutil.which("java")
        if javac is None or java is None:
            raise RuntimeError(
                "javac/java not found: install default-jdk-headless (scripts/system-deps.sh does, as root)"
            )
        digest = hashlib.sha256(SOURCE.read_bytes() + JAR.read_bytes()).hexdigest()[:16]
        classes = out / f"collectfill-{digest}"
        if not (classes / "CollectFill.class").exists():
            classes.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [javac, "-nowarn", "-encoding", "UTF-8", "-cp", str(JAR), "-d", str(classes), str(SOURCE)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        return cls(classes)

    def fill(self, form_xml: Path, scripts: list[Script], tz: str = PHONE_TZ) -> list[Fill]:
        """Fill ``form_xml`` once per script in a JVM whose clock and zone are a phone's in ``tz``."""
        env = {**os.environ, "TZ": tz}
        proc = subprocess.run(
            [
                "java",
                f"-Duser.timezone={tz}",
                "-Dfile.encoding=UTF-8",
                "-cp",
                f"{JAR}{os.pathsep}{self.classes}",
                "CollectFill",
                str(form_xml),
            ],
            input=json.dumps({"fills": scripts}).encode("utf-8"),
            capture_output=True,
            env=env,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"CollectFill failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
        out = []
        for r in json.loads(proc.stdout):
            out.append(
                Fill(
                    status=r["status"],
                    events=r["events"],
                    unused=r["unused"],
                    xml=r["xml"].encode("utf-8") if "xml" in r else None,
                    at=r.get("at"),
                    reason=r.get("reason"),
                    message=r.get("message"),
                    raw=r,
                )
            )
        return out


# ---------------------------------------------------------------- answer scripts for our two forms
def child_answers(dob: str | list[str], **over: str) -> dict[str, Any]:
    """Every answer a child may be asked; the engine asks only what is relevant for the child's age."""
    return {
        "child_name": "Trẻ thử",
        "sex": "female",
        "dob": dob,
        "ethnicity": "khmer",
        "birth_registered": "yes",
        "attends_school": "no",
        "imm_card_seen": "no",
        "weight_kg": "11.5",
        "height_cm": "84",
        "can_swim": "no",
        "injury_12m": "no",
        "functional_difficulty": "no",
        "orphan_status": "none",
        "care_arrangement": "both_parents",
        "work_hours_week": "0",
        "chore_hours_week": "3",
        "special_groups": "none",
        "at_risk": "no",
        "violence_signs": "no",
        "play_space_access": "yes",
        **over,
    }


def household_script(
    visit_date: str | None,
    children: list[dict[str, Any]],
    *,
    children_count: int | None = None,
    **over: str,
) -> Script:
    """A consenting household in Phú Quốc (district 911, commune 31078) with these children."""
    answers: dict[str, Any] = {
        "district": "911",
        "commune": "31078",
        "hamlet": "Ấp Suối Lớn",
        "consent": "yes",
        "head_name": "Danh Thị Sa Ra",
        "poverty_status": "near_poor",
        "unfenced_water": "yes",
        "hotline_111_aware": "no",
        "births_12m": "0",
        "under5_deaths_12m": "0",
        "child_drowning_deaths_12m": "0",
        "children_count": str(len(children) if children_count is None else children_count),
        **over,
    }
    if visit_date is not None:
        answers["visit_date"] = visit_date
    return {"answers": answers, "repeats": {"child": children}}


def facility_script(visit_date: str | None, **over: str) -> Script:
    answers: dict[str, Any] = {
        "district": "911",
        "commune": "31078",
        "station_name": "Trạm Y tế phường Dương Đông",
        "uses_national_immunisation_system": "yes",
        "digital_child_health_records": "no",
        "commune_play_space": "yes",
        "children_under_1_registered": "42",
        **over,
    }
    if visit_date is not None:
        answers["visit_date"] = visit_date
    return {"answers": answers}
