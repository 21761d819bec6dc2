"""Keyed pseudonyms: the HMAC functions, the key (setting or key file), and that no plain personal ID or name
reaches SQL, logs or operator output."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from aggregator import follower
from aggregator.db import get_engine
from aggregator.models import Child, ChildObservation, RegistryConflict
from aggregator.registry import _child_id, _mac, household_key, name_hash, normalise_name, pid_pseudonym
from core import secrets as pk
from core.couch import Couch
from core.errors import ConfigError
from core.settings import ROOT, Settings
from tests.aggregator.conftest import CARECHECK, settings_env
from tests.aggregator.test_ingest import one_household

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
PID = "091218004217"  # valid for a boy born in 2018 (Kiên Giang)
NAME = "Nguyễn Văn Khôi"
HEAD = "Trần Thị Xuân Mai"


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    pk.clear_cache()
    yield
    pk.clear_cache()


# ---------------------------------------------------------------- the HMAC functions
def test_pseudonyms_are_keyed_stable_and_separated() -> None:
    for f in (
        lambda k: name_hash(k, NAME),
        lambda k: household_key(k, "911", "31078", "Ấp 3", HEAD),
        lambda k: pid_pseudonym(k, PID),
        lambda k: _child_id(k, "pid:x"),
    ):
        assert f(K1) == f(K1)  # same key: stable (ids survive a rebuild)
        assert f(K1) != f(K2)  # another key: another pseudonym
    # exactly HMAC-SHA256 with a domain prefix — and not the plain SHA-256 a dictionary attack would recompute
    assert name_hash(K1, NAME) == hmac.new(K1, b"name\0nguyen van khoi", hashlib.sha256).hexdigest()
    assert name_hash(K1, NAME) != hashlib.sha256(normalise_name(NAME).encode()).hexdigest()
    assert pid_pseudonym(K1, PID) != hashlib.sha256(PID.encode()).hexdigest()
    assert name_hash(K1, PID) != pid_pseudonym(K1, PID)  # domains keep kinds apart
    assert name_hash(K1, "Nguyen  van KHOI") == name_hash(K1, NAME)  # matching still on normalised names
    assert len(household_key(K1, "911", "31078", "Ấp 3", HEAD)) == 32
    assert _child_id(K1, "pid:x").startswith("ch-") and len(_child_id(K1, "pid:x")) == 23
    with pytest.raises(ValueError):
        name_hash(b"", NAME)  # never an unkeyed "pseudonym"


def test_hmac_is_rfc2104_for_any_key_length() -> None:
    """The pseudonyms' HMAC (set up once per key and copied, registry._keyed) is hmac.digest's, for keys
    shorter than, equal to and longer than SHA-256's block (64 bytes)."""
    for n in (1, 31, 32, 63, 64, 65, 100, 200):
        key = bytes((7 * i + n) % 256 for i in range(n))
        for domain, value in (("name", "nguyen van khoi"), ("pid", PID), ("household", "911|31078|ấp 3|x")):
            want = hmac.digest(key, f"{domain}\0{value}".encode(), "sha256").hex()
            assert _mac(key, domain, value) == want
        assert name_hash(key, NAME) == hmac.new(key, b"name\0nguyen van khoi", hashlib.sha256).hexdigest()


def test_normalised_names_drop_every_combining_mark() -> None:
    """normalise_name (a translate table of marks) as the rule says: NFD, every Mn character dropped."""
    samples = [
        NAME,
        HEAD,
        "Đặng Thị Ngọc Ánh",
        "Lý Thạch  Sa-rây",
        "e\u0301\u0323x",
        "Ω̃ ǅ ﬁ",
        "a\U0001d167b",
        "🙂 Ấp 3",
    ]
    for name in samples:
        nfd = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
        want = " ".join("".join(c for c in nfd if unicodedata.category(c) != "Mn").lower().split())
        assert normalise_name(name) == want
        assert normalise_name(name) == normalise_name(name)  # the table remembers what it looked up


# ---------------------------------------------------------------- the key
def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    s = Settings(var_dir=tmp_path / "var")
    key = pk.pseudonym_key(s)
    path = tmp_path / "var" / "secrets" / "pseudonym.key"
    assert len(key) == 32 and path.read_text().strip() == key.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    pk.clear_cache()
    assert pk.pseudonym_key(s) == key  # reused from the file, not made again
    assert pk.pseudonym_key(Settings(var_dir=tmp_path / "other")) != key  # another var dir, another key
    assert not [p for p in path.parent.iterdir() if p.name != "pseudonym.key"]  # no temporary file left

    # a damaged key file is an error, never silently replaced by a new key
    path.write_text("not a key\n")
    pk.clear_cache()
    with pytest.raises(ConfigError) as err:
        pk.pseudonym_key(s)
    assert "not a key" not in err.value.message_en
    assert path.read_text() == "not a key\n"


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    var = tmp_path / "var"
    start = time.time() + 1.5  # every process waits for this instant, then reads/creates the key
    code = (
        "import sys, time\n"
        "from core.secrets import pseudonym_key\n"
        "from core.settings import Settings\n"
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        "print(pseudonym_key(Settings(var_dir=sys.argv[1])).hex())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env["PYTHONPATH"] = str(ROOT)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(var)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
        for _ in range(12)
    ]
    keys = {p.communicate(timeout=60)[0].decode().strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in (var / "secrets").iterdir()] == ["pseudonym.key"]


def test_threads_creating_the_key_file_at_once_agree(tmp_path: Path) -> None:
    """The file step itself, below the per-process cache and lock: 16 racing creators, one key."""
    import threading

    path = tmp_path / "var" / "secrets" / "pseudonym.key"
    barrier = threading.Barrier(16)
    got: list[bytes] = []

    def run() -> None:
        barrier.wait()
        got.append(pk._from_file(path))

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 16 and len(set(got)) == 1
    assert got[0].hex() == path.read_text().strip()
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]


def test_key_from_the_environment_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "ab" * 32
    monkeypatch.setenv("CARECHECK_PSEUDONYM_KEY", secret)
    s = Settings(var_dir=tmp_path / "var")
    assert pk.pseudonym_key(s) == bytes.fromhex(secret)  # hex is decoded
    assert not (tmp_path / "var" / "secrets").exists()  # no key file when the key is configured
    for shown in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert secret not in shown
    monkeypatch.setenv("CARECHECK_PSEUDONYM_KEY", "a passphrase, not hex")
    assert pk.pseudonym_key(Settings(var_dir=tmp_path)) == b"a passphrase, not hex"
    monkeypatch.setenv("CARECHECK_PSEUDONYM_KEY", "short-key-7")
    with pytest.raises(ConfigError) as err:
        pk.pseudonym_key(Settings(var_dir=tmp_path))
    assert "short-key-7" not in str(err.value) and "short-key-7" not in err.value.text()


# ---------------------------------------------------------------- nothing plain reaches SQL, logs or the CLI
def dump_text(settings: Settings) -> str:
    """Every value of every table of the database, as text (whatever the models say)."""
    engine = get_engine(settings)
    parts = []
    with engine.connect() as c:
        for table in inspect(engine).get_table_names():
            for row in c.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(" ".join(str(v) for v in row))
    return "\n".join(parts)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_settings(request: pytest.FixtureRequest) -> Settings:
    s: Settings = request.getfixturevalue("sqlite_settings" if request.param == "sqlite" else "pg_settings")
    return s


def test_no_plain_id_or_name_in_sql_logs_or_cli(
    any_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    s = any_settings
    kid: dict[str, Any] = {
        "child_name": NAME,
        "sex": "male",
        "dob": "2018-03-04",
        "personal_id": PID,
        "birth_registered": "yes",
    }
    invalid = "091318007788"  # says female, the record says male: flagged, never stored
    bad = "091218005566"
    docs = [
        one_household("uuid:p-1", [kid], head=HEAD, visit="2026-10-01"),
        # a follow-up visit with the name typed differently: the same child
        one_household("uuid:p-2", [{**kid, "child_name": "nguyen van  khoi"}], head=HEAD, visit="2026-11-01"),
        # the same ID on another dob: a registry conflict (listed by `registry duplicates`)
        one_household(
            "uuid:p-3", [{**kid, "dob": "2018-09-09", "child_name": "Lê Văn Sang"}], head="Lê Văn Tư"
        ),
        one_household("uuid:p-4", [{**kid, "child_name": "Đỗ Văn Lợi", "personal_id": invalid}], head=HEAD),
        # a document that cannot be read (a dob that is no date): quarantined with its error
        one_household("uuid:p-5", [{**kid, "dob": "04/03/2018", "personal_id": bad}], head=HEAD),
    ]
    Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password).bulk_docs(s.submissions_db, docs)
    with caplog.at_level(logging.DEBUG):
        st = follower.follow(s)
    assert st.ingested == 4 and st.quarantined == 1

    key = pk.pseudonym_key(s)
    with Session(get_engine(s)) as sess:
        ids = {o.submission_id: o.child_id for o in sess.exec(select(ChildObservation))}
        assert ids["uuid:p-1"] == ids["uuid:p-2"] != ids["uuid:p-3"]  # linking works on pseudonyms
        child = sess.get(Child, ids["uuid:p-1"])
        assert child is not None and child.personal_id_hash == pid_pseudonym(key, PID)
        assert child.name_hash == name_hash(key, NAME)
        assert len(sess.exec(select(RegistryConflict)).all()) == 1

    secrets_ = [PID, invalid, bad, PID[3:], NAME, HEAD, "Khôi", normalise_name(NAME), normalise_name(HEAD)]
    secrets_ += ["Sang", "Lợi", "nguyen van  khoi"]
    plain_hashes = [hashlib.sha256(v.encode()).hexdigest()[:20] for v in (PID, normalise_name(NAME))]
    dump = dump_text(s)
    assert "uuid:p-5" in dump and "is not a date" in dump  # the dump does see the quarantine row
    assert "personal_id_invalid" in dump
    for value in secrets_ + plain_hashes + [key.hex()]:
        assert value not in dump, value
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "quarantined uuid:p-5" in logs
    for value in secrets_ + [key.hex()]:
        assert value not in logs, value

    out = subprocess.run(
        [CARECHECK, "registry", "duplicates"], env=settings_env(s), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "1 mục / entries" in out.stdout
    for value in secrets_ + [key.hex()]:
        assert value not in out.stdout + out.stderr, value


# ---------------------------------------------------------------- a new key, then a replay
def registry_state(settings: Settings) -> dict[str, Any]:
    with Session(get_engine(settings)) as sess:
        children = sorted(
            (c.id, c.personal_id_hash, c.household_key, c.name_hash, str(c.dob), str(c.first_seen))
            for c in sess.exec(select(Child))
        )
        links = sorted((o.id, o.child_id) for o in sess.exec(select(ChildObservation)))
        conflicts = sorted(
            (c.child_id_a, c.child_id_b, c.reason) for c in sess.exec(select(RegistryConflict))
        )
        households = sorted(str(r[0]) for r in sess.execute(text("SELECT household_key FROM household")))
    return {"children": children, "links": links, "conflicts": conflicts, "households": households}


def test_a_replay_after_a_key_change_gives_the_registry_a_fresh_rebuild_gives(
    pg_settings: Settings, tmp_path: Path
) -> None:
    """Old-key children are re-linked and pruned during the replay: no duplicates, no stale conflicts."""
    from tests.aggregator.factory import bulk_insert, households

    s = pg_settings
    kid: dict[str, Any] = {"child_name": NAME, "sex": "male", "dob": "2018-03-04", "personal_id": PID}
    docs = households(40, seed=17)
    docs.docs += [
        one_household("uuid:k-1", [kid], head=HEAD, visit="2026-10-01"),
        one_household("uuid:k-2", [{**kid, "personal_id": None}], head=HEAD, visit="2026-10-20"),
        one_household("uuid:k-3", [{**kid, "dob": "2018-09-09"}], head="Lê Văn Tư", visit="2026-11-02"),
    ]
    bulk_insert(Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password), s.submissions_db, docs.docs)
    assert follower.follow(s).ingested == 43  # with the key file's key
    old = registry_state(s)
    assert len(old["conflicts"]) == 1

    # The operator sets another key and replays the feed (`carecheck ingest --replay --once`).
    rotated = s.model_copy(update={"pseudonym_key": type(s.pseudonym_key)(K2.hex())})
    pk.clear_cache()
    follower.reset_checkpoint(rotated)
    assert follower.follow(rotated).ingested == 43
    replayed = registry_state(rotated)

    # What a rebuild from an empty database with the new key gives.
    fresh = Settings(
        var_dir=tmp_path / "fresh",
        database_url=f"sqlite:///{tmp_path}/fresh.db",
        couchdb_url=s.couchdb_url,
        couchdb_user=s.couchdb_user,
        couchdb_password=s.couchdb_password,
        submissions_db=s.submissions_db,
        ingest_hooks=False,
        pseudonym_key=K2.hex(),  # type: ignore[arg-type]
    )
    assert follower.follow(fresh).ingested == 43
    rebuilt = registry_state(fresh)

    assert replayed == rebuilt  # same children, ids, links and conflicts: nothing of the old key remains
    assert len(replayed["children"]) == len(old["children"])
    assert not {c[0] for c in old["children"]} & {c[0] for c in replayed["children"]}
    assert not set(old["households"]) & set(replayed["households"])


def test_a_follower_with_another_key_refuses_to_write(sqlite_settings: Settings) -> None:
    """Two keys on one database would split children silently: the second key is refused until a replay."""
    s = sqlite_settings
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    kid: dict[str, Any] = {"child_name": NAME, "sex": "male", "dob": "2018-03-04", "personal_id": PID}
    couch.bulk_docs(s.submissions_db, [one_household("uuid:g-1", [kid], head=HEAD)])
    assert follower.follow(s).ingested == 1  # records the key file's key id
    seq = follower.follow(s).seq

    other = s.model_copy(update={"pseudonym_key": type(s.pseudonym_key)(K2.hex())})
    couch.bulk_docs(s.submissions_db, [one_household("uuid:g-2", [kid], head=HEAD, visit="2026-11-20")])
    with pytest.raises(ConfigError) as err:
        follower.follow(other)
    assert pk.key_id(K2) in err.value.message_en and K2.hex() not in err.value.text()
    with Session(get_engine(s)) as sess:
        assert sess.get(ChildObservation, "uuid:g-2/0") is None  # nothing written, checkpoint not moved
    assert follower.follow(s).seq != seq  # the database's own key still works

    from aggregator.status import gather

    assert "DIFFERS" in str(gather(other, ping=False)["pseudonym_key_id"])
    follower.reset_checkpoint(other)  # the deliberate change: replay under the new key
    assert follower.follow(other).ingested == 2
    assert gather(other, ping=False)["pseudonym_key_id"] == pk.key_id(K2)
    couch.bulk_docs(s.submissions_db, [one_household("uuid:g-3", [kid], head=HEAD, visit="2026-11-25")])
    with pytest.raises(ConfigError):
        follower.follow(s)  # and now the old key is the one refused (checked before a page is written)
