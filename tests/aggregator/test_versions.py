"""Rules 1 and 2 as pure functions (aggregator/versions.py): which version counts, which visit is latest."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from aggregator.versions import Candidate, Node, Visit, latest_visit, ranked, record_of, settle, winner


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_winner_latest_end_then_received_then_id() -> None:
    a = Candidate("uuid:a", t(2, 2), t(3, 1))
    b = Candidate("uuid:b", t(2, 8), t(2, 9))  # finished later, received earlier: wins
    assert winner([a, b]).id == "uuid:b"
    c = Candidate("uuid:c", t(2, 8), t(4, 0))  # same end as b, received later: wins
    assert winner([a, b, c]).id == "uuid:c"
    d = Candidate("uuid:d", t(2, 8), t(4, 0))  # same end and receipt: the greater instanceID
    assert winner([c, d]).id == "uuid:d" and winner([d, c]).id == "uuid:d"
    assert winner([Candidate("uuid:z"), a]).id == "uuid:a"  # an unknown end time ranks lowest
    # an officer's choice wins when it is one of the heads, and is ignored otherwise
    assert winner([a, b, c], chosen="uuid:a").id == "uuid:a"
    assert winner([a, b, c], chosen="uuid:gone").id == "uuid:c"
    assert [x.id for x in ranked([a, b, c], chosen="uuid:a")] == ["uuid:a", "uuid:c", "uuid:b"]


def test_settle_forks_chains_and_deletions_in_any_order() -> None:
    # A ← B ← D, and A ← C (edited in two places; D is B's later edit). Heads: C and D.
    nodes = [
        Node("A", None, False, t(1, 3), t(1, 4)),
        Node("B", "A", False, t(2, 2), t(2, 3)),
        Node("C", "A", False, t(2, 5), t(2, 6)),
        Node("D", "B", False, t(2, 4), t(2, 7)),
    ]
    for order in itertools.permutations(nodes):
        st = settle(order)
        assert {k for k, v in st.items() if v.live} == {"C"}
        assert st["A"].superseded and st["B"].superseded and not st["C"].superseded
        assert st["D"].lost_to == "C" and st["C"].lost_to is None and st["A"].lost_to is None
        assert {v.record for v in st.values()} == {"A"}
    # the officer picks D
    st = settle(nodes, {"A": "D"})
    assert st["D"].live and st["C"].lost_to == "D"
    # C deleted: D counts; D deleted too: B is a head again; an edit arriving before its original: still one
    st = settle([*nodes[:2], Node("C", "A", True, t(2, 5), t(2, 6)), nodes[3]])
    assert {k for k, v in st.items() if v.live} == {"D"}
    st = settle([nodes[0], nodes[1], Node("C", "A", True, None, None), Node("D", "B", True, None, None)])
    assert {k for k, v in st.items() if v.live} == {"B"} and not st["B"].superseded
    st = settle([Node("E", "X", False, None, None), Node("F", "X", False, t(1, 1), None)])
    assert {k for k, v in st.items() if v.live} == {"F"} and st["E"].record == "X"


def test_record_of_survives_cycles() -> None:
    assert record_of("c", {"c": "b", "b": "a"}) == "a"
    assert record_of("x", {"x": "y", "y": "x"}) in ("x", "y")


def test_latest_visit_same_day_by_end_time() -> None:
    """The issue's health station checked twice in a day: 09:20 yes, 15:20 no — the 15:20 check is the latest,
    whatever the instanceIDs."""
    day = date(2026, 6, 1)
    morning = Visit("uuid:zz", day, datetime(2026, 6, 1, 2, 20, tzinfo=UTC))
    afternoon = Visit("uuid:aa", day, datetime(2026, 6, 1, 8, 20, tzinfo=UTC))
    assert latest_visit([morning, afternoon]) is afternoon
    later_day = Visit("uuid:00", date(2026, 6, 2), None)
    assert latest_visit([morning, afternoon, later_day]) is later_day
    same = Visit("uuid:ab", day, afternoon.end, datetime(2026, 6, 2, tzinfo=UTC))
    assert latest_visit([afternoon, same]) is same  # then the later receipt
