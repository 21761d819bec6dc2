"""The feed split into partitions (in-process on PostgreSQL): every record once, edits and deletions across
partitions as in one feed, checkpoints per partition, and a change of the partition count mid-feed."""

from __future__ import annotations

from sqlmodel import Session, select

from aggregator import feed, follower
from aggregator.db import get_engine
from aggregator.models import Checkpoint, Household, RawSubmission
from core.settings import Settings
from tests.aggregator.conftest import counts
from tests.aggregator.factory import bulk_insert, households
from tests.aggregator.test_ingest import couch_of, one_household, snapshot


def _ids_in_other_parts(n: int) -> tuple[str, str, str]:
    """An original, its edit and a third record, each in another partition of ``n``."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < 3:
        iid = f"uuid:part-{i}"
        found.setdefault(feed.part_of(iid, n), iid)
        i += 1
    return found[0], found[1], found[2]


def test_partitions_land_every_record_once_and_equal_one_feed(pg_settings: Settings) -> None:
    s = pg_settings.model_copy(update={"ingest_partitions": 3})
    couch = couch_of(s)
    b = households(120, seed=31)
    original, edit, gone = _ids_in_other_parts(3)
    kid = [{"child_name": "Lê Thị Hoa", "sex": "female", "dob": "2020-03-01", "weight_kg": "15"}]
    bulk_insert(
        couch, s.submissions_db, b.docs[:60] + [one_household(original, kid), one_household(gone, kid)]
    )
    follower.follow(s, limit=20, budget_s=600)
    assert counts(s)["household"] == 62
    # an edit and a deletion, each landing in another partition than the record it changes
    bulk_insert(couch, s.submissions_db, [one_household(edit, kid, deprecated_id=original)] + b.docs[60:])
    rev = couch.get(s.submissions_db, gone)
    assert rev is not None
    couch.delete(s.submissions_db, gone, rev["_rev"])

    st = follower.follow(s, limit=20, budget_s=600)  # one run drains every partition it can take: all three
    assert not st.locked_out and st.caught_up
    c = counts(s)
    assert (c["raw"], c["household"], c["quarantine"]) == (123, 121, 0), c  # original superseded, one deleted
    with Session(get_engine(s)) as sess:
        raw = sess.get(RawSubmission, original)
        assert raw is not None and raw.superseded
        assert sess.get(Household, edit) is not None and sess.get(Household, original) is None
        assert sess.get(Household, gone) is None
        gone_raw = sess.get(RawSubmission, gone)
        assert gone_raw is not None and gone_raw.deleted
        names = sorted(sess.exec(select(Checkpoint.name)).all())
        end = couch.update_seq(s.submissions_db)
        seqs = {cp.name: cp.seq for cp in sess.exec(select(Checkpoint))}
    assert names == [follower.checkpoint_name(s, p) for p in feed.parts(s)]
    assert set(seqs.values()) == {end}  # every partition's checkpoint moved over the others' changes too
    partitioned = snapshot(s)

    # The same feed replayed as one partition gives the very same rows (upserts: nothing doubles).
    one = pg_settings
    follower.reset_checkpoint(one)
    follower.follow(one)
    assert snapshot(one) == partitioned


def test_changing_the_partition_count_starts_from_the_oldest_checkpoint(pg_settings: Settings) -> None:
    s = pg_settings
    couch = couch_of(s)
    b = households(90, seed=32)
    bulk_insert(couch, s.submissions_db, b.docs)
    n, out, seq = follower.run_page(s, couch, limit=30)  # one partition: 30 of 90 in
    assert n == 30 and out is not None and counts(s)["raw"] == 30

    two = s.model_copy(update={"ingest_partitions": 2})
    with Session(get_engine(two)) as sess:
        assert follower.read_checkpoint(sess, follower.checkpoint_name(two, feed.Part(1, 2))) == seq
    st = follower.follow(two, budget_s=600)
    assert st.caught_up
    c = counts(two)
    assert (c["raw"], c["household"], c["obs"], c["child"]) == (90, 90, b.children, b.children), c


def test_a_held_partition_is_left_to_its_holder(pg_settings: Settings) -> None:
    s = pg_settings.model_copy(update={"ingest_partitions": 2})
    bulk_insert(couch_of(s), s.submissions_db, households(40, seed=33).docs)
    held = feed.Part(0, 2)
    with follower.follower_lock(s, held) as got:
        assert got
        st = follower.follow(s)  # takes only partition 1
        assert not st.locked_out
        with Session(get_engine(s)) as sess:
            raw_ids = sess.exec(select(RawSubmission.id)).all()
        assert raw_ids and all(feed.part_of(i, 2) == 1 for i in raw_ids)
        with follower.follower_lock(s, feed.Part(1, 2)) as other:
            assert other
            assert follower.follow(s).locked_out  # both taken: nothing to do
    follower.follow(s)
    assert counts(s)["raw"] == 40
