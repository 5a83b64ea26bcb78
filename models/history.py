"""A user's event history as columns: what each event does to them.

``UserRecord`` (:mod:`models.tracker`) keeps its last events as the columns of
:class:`~models.records.RecordField` (items, a category table with per-entry reference counts,
categories as table indexes, type codes, times, moves) plus each event's time as a float.
:func:`push_event` appends one event and drops the oldest past the history's cap: a dozen
list and dict operations per event, about 10 µs in Python with a full 50-event history, so
it runs in C (``models/_history.c``) when that extension is built; this definition is the
specification, and the C one leaves the columns equal to it, bit for bit
(``tests/unit/test_history_c.py``). So do :func:`most_moved`, the events a snapshot's
``explain`` names, and :func:`explained`, their entries, asked for at every snapshot, and
:func:`read_columns`, what a record decoded from its stored columns keeps beside them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from models.native import accelerated_by
from models.records import read_times
from models.schema import EVENT_TYPES

try:
    from models import _history
except ImportError:  # not built (no C compiler at install): the Python definition runs
    _history = None


def table_ref(category: str, table: list[str], index: dict[str, int], refs: list[int]) -> int:
    """The table index of ``category`` (a new entry, interned, if the table lacks it), its
    reference count raised by one.

    >>> table, index, refs = ["a"], {"a": 0}, [0]
    >>> table_ref("b", table, index, refs), table_ref("a", table, index, refs), refs
    (1, 0, [1, 1])
    """
    i = index.get(category)
    if i is None:
        i = index[category] = len(table)
        table.append(sys.intern(category))
        refs.append(0)
    refs[i] += 1
    return i


def compact_table(table: list[str], cats: list) -> tuple[list[str], dict[str, int], list, list]:
    """A new category table with only the entries ``cats`` (a categories column: an index,
    or a list of them, per event) names, in order of first use: (table, index, reference
    counts, the column re-indexed).

    >>> compact_table(["a", "b", "c"], [2, [0, 2]])
    (['c', 'a'], {'c': 0, 'a': 1}, [2, 1], [0, [1, 0]])
    """
    new: list[str] = []
    index: dict[str, int] = {}
    refs: list[int] = []
    column = [
        table_ref(table[c], new, index, refs)
        if c.__class__ is int
        else [table_ref(table[i], new, index, refs) for i in c]
        for c in cats
    ]
    return new, index, refs, column


@accelerated_by(_history)
def push_event(
    history: Sequence[list | dict],
    item: str,
    cats: Sequence[str],
    type_code: int | str,
    ts: float,
    unit_mark: int | None,
    moved: float,
    cap: int,
    stale: int,
) -> int:
    """Append an event to ``history`` (in place: the columns items, table, index, refs, cats,
    types, ts, times, moved), then drop the oldest events past ``cap``; returns ``stale``
    updated: how many table entries no event names any more.

    ``ts`` is the event's time in the column's unit already rounded; ``unit_mark`` is None
    for a column in whole seconds, else the mark a millisecond column's first entry carries.
    An event of one category stores its table index, of several a list of them; ``moved``
    is stored in millionths.

    >>> h = ([], [], {}, [], [], [], [], [], [])
    >>> push_event(h, "i1", ["a"], 0, 100.0, None, 1.0, 2, 0)
    0
    >>> push_event(h, "i2", ["b", "a"], 1, 130.0, None, 0.5, 2, 0)
    0
    >>> push_event(h, "i3", ["b"], 0, 131.0, None, 0.25, 2, 0)  # i1 leaves: "a" still named
    0
    >>> push_event(h, "i4", ["b"], 0, 140.0, None, 0.125, 2, 0)  # i2 leaves: "a" is stale
    1
    >>> items, table, index, refs, cats, types, ts, times, moved = h
    >>> items, table, refs, cats, times, moved
    (['i3', 'i4'], ['a', 'b'], [0, 2], [1, 1], [[131], 9], [250000, 125000])
    """
    items, table, index, refs, cat_col, types, ts_col, times, moved_col = history

    def ref(category: str) -> int:
        nonlocal stale
        i = table_ref(category, table, index, refs)
        if refs[i] == 1 and i < n_table:  # an entry no event named any more, named again
            stale -= 1
        return i

    n_table = len(table)
    ms = unit_mark is not None
    items.append(item)
    if len(cats) == 1:
        cat_col.append(ref(cats[0]))
    else:
        cat_col.append([ref(c) for c in cats])
    types.append(type_code)
    if ts_col:
        prev = ts_col[-1]
        times.append(round(ts * 1000) - round(prev * 1000) if ms else int(ts) - int(prev))
    else:
        times.append([round(ts * 1000), unit_mark] if ms else [int(ts)])
    ts_col.append(ts)
    moved_col.append(round(moved * 1e6))
    over = len(items) - cap
    if over > 0:
        for c in cat_col[:over]:
            for i in (c,) if c.__class__ is int else c:
                refs[i] -= 1
                if refs[i] == 0:
                    stale += 1
        del items[:over], cat_col[:over], types[:over]
        del ts_col[:over], times[:over], moved_col[:over]
        if times:  # the new first time: absolute
            first = ts_col[0]
            times[0] = [round(first * 1000), unit_mark] if ms else [int(first)]
    return stale


@accelerated_by(_history)
def read_columns(
    table: list, cats: list, times: list
) -> tuple[list[str], dict[str, int], list[int], int, list[float], bool]:
    """What a record read from its stored columns (a version-3 record's category table,
    categories and times) keeps beside them: the table with its names interned (each name
    one object, shared by every record and estimator), their index, each entry's reference
    count, how many entries no event names, the events' times as floats, and whether the
    times are in milliseconds.

    >>> read_columns(["a", "b", "c"], [0, [0, 2], 2], [[100000, -3], 250, 1250])
    (['a', 'b', 'c'], {'a': 0, 'b': 1, 'c': 2}, [2, 0, 2], 1, [100.0, 100.25, 101.5], True)
    """
    names = list(map(sys.intern, table))
    index = {c: i for i, c in enumerate(names)}
    refs = [0] * len(names)
    for c in cats:
        if c.__class__ is int:
            refs[c] += 1
        else:
            for i in c:
                refs[i] += 1
    ms = bool(times) and len(times[0]) == 2
    return names, index, refs, refs.count(0), read_times(times), ms


@accelerated_by(_history)
def most_moved(moved: list[int], window: int, top: int) -> list[int]:
    """Of the last ``window`` entries of the moved column, the positions of the ``top``
    largest, largest first, the earlier first among equals.

    >>> most_moved([5, 9, 1, 9, 3], 4, 3)
    [1, 3, 4]
    >>> most_moved([5, 9], 10, 3), most_moved([5, 9], 2, 0)
    ([1, 0], [])
    """
    n = len(moved)
    return sorted(range(max(0, n - window), n), key=moved.__getitem__, reverse=True)[:top]


# The columns explain reads: items, the category table, categories, types, times (floats), moves.
ExplainColumns = tuple[list, list[str], list, list, list[float], list[int]]


def category_names(table: Sequence[str], c: int | Sequence[int]) -> list[str]:
    """A history event's categories: one index into the record's category table, or a list."""
    return [table[c]] if c.__class__ is int else [table[j] for j in c]


def event_type_name(et: int | str) -> str:
    """A history event's type: an index into ``EVENT_TYPES``, or a name kept as it came."""
    return EVENT_TYPES[et] if et.__class__ is int else et


def explain_entry(columns: ExplainColumns, i: int) -> dict:
    """The ``i``-th event of the history as a snapshot's ``explain`` entry.

    >>> explain_entry((["i"], ["a", "b"], [[1, 0]], [2], [5.0], [250000]), 0)
    {'item_id': 'i', 'categories': ['b', 'a'], 'event_type': 'cart', 'ts': 5.0, 'moved': 0.25}
    """
    items, table, cats, types, ts, moved = columns
    return {
        "item_id": items[i],
        "categories": category_names(table, cats[i]),
        "event_type": event_type_name(types[i]),
        "ts": ts[i],
        "moved": moved[i] / 1e6,
    }


@accelerated_by(_history)
def explained(
    cached: tuple | None, window: int, top: int, n: int, columns: ExplainColumns
) -> tuple[int, int, int, list[int], list[dict]]:
    """``UserRecord.explain``'s answer after ``n`` events, with what it is kept as:
    ``(window, top, n, event numbers, entries)``, the entries of the ``most_moved`` events.
    Entries of events ``cached`` (the previous answer kept so) still names are reused (an
    event's entry never changes), and its list too when the events are the same.

    >>> cols = (["i", "j", "k"], ["a"], [0, 0, 0], [0, 0, 0], [1.0, 2.0, 3.0], [9, 5, 7])
    >>> first = explained(None, 2, 1, 3, cols)
    >>> first[3], [e["item_id"] for e in first[4]]
    ([2], ['k'])
    >>> cols[0].append("l"); cols[2].append(0); cols[3].append(0); cols[4].append(4.0)
    >>> cols[5].append(1)
    >>> again = explained(first, 2, 1, 4, cols)
    >>> again[3], again[4] is first[4]
    ([2], True)
    """
    first = n - len(columns[5])
    numbers = [first + i for i in most_moved(columns[5], window, top)]
    if cached is not None and cached[:2] == (window, top) and numbers == cached[3]:
        entries = cached[4]
    else:
        known = dict(zip(cached[3], cached[4], strict=True)) if cached is not None else {}
        entries = [known.get(k) or explain_entry(columns, k - first) for k in numbers]
    return window, top, n, numbers, entries
