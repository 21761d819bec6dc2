"""Small-cell suppression for shared outputs: primary, then complementary, over the whole published cube.

Primary: a cell whose denominator is below the threshold (``settings.min_cell_size``) is hidden.

Complementary: a hidden cell must not be recoverable by subtraction, neither within one answer nor by
combining answers (the commune list of one query with the district total of another). So the pattern is
worked out once per indicator and period over every cell anyone can ask for — every level, both hierarchies,
every disaggregation — and every answer applies the same pattern. The cells that add up to another cell form
a group (the parent first):

- a legacy district and its communes; the province and its districts;
- a 2025 commune and the legacy communes it took in; the province and the 2025 communes;
- an org unit's total and the values of one disaggregation (male + female, the four ethnicities, …);

each of these for every disaggregation value and for the totals. A group with exactly one hidden cell gives
it away (parent − the others, or the sum of the children), so another member is hidden too, the one with the
least loss: a few candidates (the smallest, and the parent) are tried, each with everything hiding it drags
along (a cell that is the only one with data under its parent is equal to it, so both go, and so on), and the
one that hides the fewest children in all is kept. Hiding one cell can leave another group with a single
hidden cell, so this runs until no group has one. A greedy heuristic: safe, not always minimal. Cells without
data (0/0) are known zeros and never hidden.

Attribute disclosure (rule 10): even when no hidden cell can be worked out alone, the hidden members of a
group together can: the parent minus the visible children is their summed numerator and denominator (the
*remainder*). If that remainder is all-or-nothing — numerator 0, or equal to its denominator — every hidden
member is 0 % or 100 % (the province's 142/143 stations with 12 visible districts at 123/124 leaves the three
hidden districts at 19/19: each 100 %). So, as τ-ARGUS-style protection does with its protection intervals,
cells are hidden until no group's remainder is homogeneous: the smallest visible child whose own share
differs joins the hidden ones (making the remainder mixed), else the parent is hidden (no remainder to
compute); the pattern is then closed again against single hidden cells, and this repeats until stable. A
published total that is itself all-or-nothing (8/8) already says so of every cell under it — hiding cannot
change that, and the total is at least the threshold — so its group is left as it is.

Hidden cells keep their denominator in the API (how many children the cell is about: what explains the
hiding) and lose numerator and value: status ``suppressed``. The reports hide the denominator too.

Not covered (documented in the README): differences between *periods* (three months against their quarter,
the quarters against the year). That needs a disclosure-control tool over every period at once (e.g.
τ-ARGUS); out of scope here.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable

from sqlalchemy import Connection, select

from core import orgunits

# a cell of the cube: (indicator, unit kind, org unit, dis_key, dis_value); unit kinds: province, district,
# commune (legacy), commune2025. dis_key "" is the total.
Key = tuple[str, str, str, str, str]


def unit_kind(level: str, hierarchy: str) -> str:
    return "commune2025" if level == "commune" and hierarchy == "2025" else level


def groups_of(keys: Iterable[Key]) -> list[list[Key]]:
    """The additive groups (parent first) among the cells that have data, in a fixed order."""
    communes = orgunits.communes()
    have = set(keys)
    by_parent: dict[tuple[Key, str], list[Key]] = defaultdict(list)  # (parent, kind of the children)
    totals: dict[tuple[str, str, str, str], list[Key]] = defaultdict(list)
    for k in have:
        ind, kind, unit, dk, dv = k
        if kind == "commune" and unit in communes:
            c = communes[unit]
            by_parent[((ind, "district", c.district_code, dk, dv), kind)].append(k)
            by_parent[((ind, "commune2025", c.code_2025, dk, dv), kind)].append(k)
        elif kind in ("district", "commune2025"):
            by_parent[((ind, "province", orgunits.PROVINCE_CODE, dk, dv), kind)].append(k)
        if dk:
            totals[(ind, kind, unit, dk)].append(k)
    out = [[parent, *sorted(kids)] for (parent, _kind), kids in by_parent.items()]
    out += [[(ind, kind, unit, "", ""), *sorted(kids)] for (ind, kind, unit, _dk), kids in totals.items()]
    # a fixed order: the greedy pattern depends on it, and every answer must get the same pattern
    return sorted(out)


LOOKAHEAD = 4  # candidates tried (the smallest, plus the parent) before choosing a complement


def pattern(
    denominators: dict[Key, float], min_cell: int, numerators: dict[Key, float] | None = None
) -> tuple[set[Key], set[Key]]:
    """(primary, complementary) hidden cells for these cells (denominator > 0: cells with data).

    With ``numerators``, also no hidden group may be all-or-nothing (attribute disclosure, see the module
    docstring): more cells are hidden until no group's remainder is homogeneous."""
    primary = {k for k, d in denominators.items() if d < min_cell}
    hidden: set[Key] = set()
    groups = [[k for k in g if k in denominators] for g in groups_of(denominators)]
    groups = [g for g in groups if len(g) > 1]
    member_of: dict[Key, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        for k in g:
            member_of[k].append(i)
    n_hidden = [0] * len(groups)  # hidden members per group, kept with ``hidden``
    moved: set[int] = set()  # groups that gained a hidden member since the last all-or-nothing check

    def hide(keys: Iterable[Key]) -> None:
        for k in keys:
            if k not in hidden:
                hidden.add(k)
                for i in member_of[k]:
                    n_hidden[i] += 1
                    moved.add(i)

    def by_size(k: Key) -> tuple[float, Key]:
        return denominators[k], k

    def settle(start: Key) -> set[Key]:
        """The cells hidden by hiding ``start`` and then, greedily, the smallest open member of every group
        left with a single hidden cell."""
        extra = {start}
        n_extra: dict[int, int] = defaultdict(int)  # members of ``extra`` per group (never hidden ones)
        for i in member_of[start]:
            n_extra[i] += 1
        work = deque(member_of[start])
        while work:
            i = work.popleft()
            if n_hidden[i] + n_extra[i] != 1:
                continue
            open_ = [k for k in groups[i] if k not in hidden and k not in extra]
            if open_:
                pick = min(open_, key=by_size)
                extra.add(pick)
                for j in member_of[pick]:
                    n_extra[j] += 1
                work.extend(member_of[pick])
        return extra

    def close(queue: deque[int]) -> None:
        """Hide complements until no group has exactly one hidden cell."""
        while queue:
            i = queue.popleft()
            if n_hidden[i] != 1:
                continue
            g = groups[i]
            # the LOOKAHEAD smallest open members (as the sorted list's first ones: keys are unique)
            open_ = heapq.nsmallest(LOOKAHEAD, (k for k in g if k not in hidden), key=by_size)
            if not open_:
                continue
            # look ahead: what each of a few candidates drags along (cells equal to it, groups it leaves with
            # a single hidden cell, …), and take the one that hides the fewest children in all
            parent_too = g[0] not in hidden and g[0] not in open_
            candidates = open_ + ([g[0]] if parent_too else [])
            outcomes = [
                (sum(denominators[k] for k in ext), denominators[c], c, ext)
                for c in candidates
                for ext in [settle(c)]
            ]
            *_, chosen = min(outcomes, key=lambda o: o[:3])
            hide(chosen)
            for k in sorted(chosen):  # sorted: a set's order varies with the process's string hashing
                queue.extend(member_of[k])

    hide(primary)
    close(deque(range(len(groups))))
    if numerators is not None:
        # a group's remainder depends only on which of its members are hidden: after the first round over
        # every group, only the groups that gained a hidden member can change their answer (one that gave a
        # fix gains it); a group with no hidden member has no remainder
        check: Iterable[int] = range(len(groups))
        while True:
            fixes = (
                homogeneous_fix(groups[i], hidden, numerators, denominators) for i in check if n_hidden[i]
            )
            extra = {fix for fix in fixes if fix is not None}
            if not extra:
                break
            moved.clear()
            hide(extra)
            close(deque(i for k in sorted(extra) for i in member_of[k]))
            check = sorted(moved)
    return primary, hidden - primary


def remainder(
    group: list[Key], hidden: set[Key], numerators: dict[Key, float], denominators: dict[Key, float]
) -> tuple[float, float] | None:
    """What a reader learns about the hidden children of a group: their summed (numerator, denominator) —
    the parent minus the visible children — or None when the parent is hidden or no child is."""
    parent, kids = group[0], group[1:]
    if parent in hidden or not any(k in hidden for k in kids):
        return None
    n = numerators.get(parent, 0.0) - sum(numerators.get(k, 0.0) for k in kids if k not in hidden)
    d = denominators[parent] - sum(denominators[k] for k in kids if k not in hidden)
    return n, d


def homogeneous(n: float, d: float) -> bool:
    """An all-or-nothing remainder: every hidden child's numerator is 0, or equals its denominator."""
    return d > EPS and (abs(n) < EPS or abs(n - d) < EPS)


def homogeneous_fix(
    group: list[Key], hidden: set[Key], numerators: dict[Key, float], denominators: dict[Key, float]
) -> Key | None:
    """The cell to hide next when the group's remainder is all-or-nothing: the smallest visible child whose
    own share differs (so the remainder is mixed), else the parent (so there is no remainder to compute)."""
    rest = remainder(group, hidden, numerators, denominators)
    if (
        rest is None
        or not homogeneous(*rest)
        or homogeneous(numerators.get(group[0], 0.0), denominators[group[0]])
    ):
        return None  # a total that is itself all-or-nothing already says so of every cell under it
    n_r, d_r = rest
    all_yes = abs(n_r - d_r) < EPS
    breakers = [
        k
        for k in group[1:]
        if k not in hidden
        and (numerators.get(k, 0.0) < denominators[k] - EPS if all_yes else numerators.get(k, 0.0) > EPS)
    ]
    if breakers:
        return min(breakers, key=lambda k: (denominators[k], k))
    return group[0]


EPS = 1e-9


_CACHE: dict[tuple[str, int, str, int, str], frozenset[Key]] = {}
CACHE_ENTRIES = 5000  # (period, indicator) patterns kept per process


def hidden_cells(conn: Connection, period: str, indicators: list[str], min_cell: int) -> set[Key]:
    """Every hidden cell of these indicators in this period (primary and complementary). Patterns are cached
    per indicator until the period's cells change (``rollup.period_generation``: a refresh stamps the
    periods it moved, a rebuild every period): a report asks for the same ones many times, and its trend's
    earlier periods stay cached while the current one takes new data."""
    from aggregator.indicators import load as load_definitions
    from aggregator.rollup.tables import IndicatorValue, period_generation

    scope = (str(conn.engine.url), period_generation(conn, period), period, min_cell)
    missing = [i for i in indicators if (*scope, i) not in _CACHE]
    if missing:
        t = IndicatorValue.__table__  # type: ignore[attr-defined]
        cols = (
            "hierarchy",
            "level",
            "org_unit",
            "dis_key",
            "dis_value",
            "indicator",
            "numerator",
            "denominator",
        )
        # every indicator of the period at once: one read of its cells instead of one per indicator (a
        # report's trend asks for each indicator of each earlier period alone), and each indicator's
        # pattern is the same computed alone or with others (test_suppression)
        q = select(*[t.c[c] for c in cols]).where(t.c.period == period, t.c.denominator > 0)
        denominators: dict[Key, float] = {}
        numerators: dict[Key, float] = {}
        for hierarchy, level, unit, dk, dv, ind, n, d in conn.execute(q):
            if hierarchy == "2025" and level != "commune":
                continue  # the 2025 province and district grouping are copies of the legacy ones
            if level == "commune" and hierarchy == "legacy" and unit == "":
                continue  # rows without a commune: never published as a unit
            key = (ind, unit_kind(level, hierarchy), unit, dk, dv)
            denominators[key], numerators[key] = float(d), float(n or 0)
        primary, complementary = pattern(denominators, min_cell, numerators)
        if len(_CACHE) > CACHE_ENTRIES:
            _CACHE.clear()
        by_indicator: dict[str, set[Key]] = {i: set() for i in missing}
        # every indicator read (or defined: a period without cells is read once, not once per indicator)
        for i in (*load_definitions(), *{k[0] for k in denominators}):
            by_indicator.setdefault(i, set())
        for k in primary | complementary:
            by_indicator[k[0]].add(k)
        for i, keys in by_indicator.items():
            _CACHE[(*scope, i)] = frozenset(keys)
    out: set[Key] = set()
    for i in indicators:
        out |= _CACHE[(*scope, i)]
    return out


__all__ = ["Key", "groups_of", "hidden_cells", "homogeneous", "pattern", "remainder", "unit_kind"]
