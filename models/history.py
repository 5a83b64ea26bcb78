"""A user's event history as columns: what each event does to them.

:class:`EventHistory` holds a user's last events as the columns of
:class:`~models.records.RecordField` (items, a category table with per-entry reference counts,
categories as table indexes, type codes, times, moves) plus each event's time as a float.
It is the specification; ``models/_history.c`` holds the same history as one C object (its
events in a ring of fixed slots, not nine Python lists: about a third of their memory, and
one block of it to read at each event), which answers every call as this class does, bit for bit
(``tests/unit/test_history_c.py``). :func:`empty_history` and :func:`history_from_columns`
give the C one where it is built. The functions below are this class's parts, and
:func:`most_moved` (in C too) also serves :func:`models.tracker.snapshot_parts`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from models.native import accelerated_by
from models.records import MS, read_times, stored_times
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


def history_entry(
    items: Sequence, table: Sequence, cats: Sequence, types: Sequence, ts: Sequence, moved, i: int
) -> tuple:
    """The ``i``-th event of history columns as a :class:`~models.records.HistoryField` tuple."""
    return (
        items[i],
        tuple(category_names(table, cats[i])),
        event_type_name(types[i]),
        ts[i],
        moved[i] / 1e6,
    )


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


# A history's category table may name this many categories its events no longer use before it
# is rebuilt (a few stale names cost a few bytes; rebuilding costs a pass over the history).
STALE_CATEGORIES = 8


class EventHistory:
    """A user's last events, oldest first, as the columns they are stored in.

    ``push`` appends an event and drops the oldest past ``cap``; times stay whole seconds
    until one has a fraction, then the column turns to milliseconds (times rounded to them).
    ``columns`` gives the stored columns (``RecordField.ITEMS`` to ``MOVED``), which
    ``from_columns`` reads back.

    >>> h = EventHistory()
    >>> for i, (c, t) in enumerate([(["a"], 10.0), (["b", "a"], 12.0), (["b"], 15.5)]):
    ...     h.push(f"i{i}", c, 0, t, 0.5, 2)
    >>> len(h), h.columns()
    (2, [['i1', 'i2'], ['a', 'b'], [[1, 0], 1], [0, 0], [[12000, -3], 3500], [500000, 500000]])
    >>> h.entry(1)
    ('i2', ('b',), 'view', 15.5, 0.5)
    >>> EventHistory.from_columns(*h.columns()).state() == h.state()
    True
    """

    __slots__ = (
        "items",
        "table",
        "index",
        "refs",
        "cats",
        "types",
        "ts",
        "times",
        "moved",
        "stale",
        "ms",
    )

    def __init__(self) -> None:
        self.items: list = []
        self.table: list[str] = []  # category names the events use (a few may be stale)
        self.index: dict[str, int] = {}
        self.refs: list[int] = []  # per table entry: how many events name it
        self.cats: list = []
        self.types: list = []
        self.ts: list[float] = []
        self.times: list = []
        self.moved: list[int] = []
        self.stale = 0  # table entries no event names any more
        self.ms = False  # times in milliseconds (some time was not whole seconds)

    @classmethod
    def from_columns(
        cls, items: list, table: list, cats: list, types: list, times: list, moved: list
    ) -> EventHistory:
        """The history of stored columns (a version-3 record's; the lists are kept)."""
        if not len(items) == len(cats) == len(types) == len(times) == len(moved):
            raise ValueError("a user record's history columns differ in length")
        h = cls.__new__(cls)
        h.items, h.cats, h.types, h.times, h.moved = items, cats, types, times, moved
        h.table, h.index, h.refs, h.stale, h.ts, h.ms = read_columns(table, cats, times)
        return h

    def __len__(self) -> int:
        return len(self.items)

    def push(
        self,
        item: str,
        cats: Sequence[str],
        type_code: int | str,
        ts: float,
        moved: float,
        cap: int,
    ) -> None:
        """Append an event (``moved``: how far it moved the distribution), then drop the
        oldest past ``cap`` (>= 1)."""
        ts = float(ts)
        if self.ms or not ts.is_integer():
            if not self.ms:  # the first sub-second time: the whole column to milliseconds
                self.times, self.ms = stored_times(self.ts, ms=True), True
            ts = round(ts * 1000) / 1000
        dropping = len(self.items) >= cap
        self.stale = push_event(
            self._lists(),
            item,
            cats,
            type_code,
            ts,
            MS if self.ms else None,
            moved,
            cap,
            self.stale,
        )
        if dropping and self.stale > STALE_CATEGORIES:
            self.table, self.index, self.refs, self.cats = compact_table(self.table, self.cats)
            self.stale = 0

    def columns(self, copy: bool = True) -> list[list]:
        """The stored columns, ``RecordField.ITEMS`` to ``MOVED``; ``copy=False`` shares the
        live ones (for a caller done with them before the next ``push``)."""
        columns = [self.items, self.table, self.cats, self.types, self.times, self.moved]
        return [c[:] for c in columns] if copy else columns

    def entry(self, i: int) -> tuple:
        """The ``i``-th event as a :class:`~models.records.HistoryField` tuple."""
        return history_entry(self.items, self.table, self.cats, self.types, self.ts, self.moved, i)

    def explained(self, cached: tuple | None, window: int, top: int, n: int) -> tuple:
        """:func:`explained` of these events, the last of them the ``n``-th."""
        columns = self.items, self.table, self.cats, self.types, self.ts, self.moved
        return explained(cached, window, top, n, columns)

    def _lists(self) -> tuple:
        """The nine columns, in :func:`push_event`'s order."""
        return (
            self.items,
            self.table,
            self.index,
            self.refs,
            self.cats,
            self.types,
            self.ts,
            self.times,
            self.moved,
        )

    def state(self) -> tuple:
        """Everything the history holds, for comparing two of them."""
        return (*self._lists(), self.stale, self.ms)

    def __reduce__(self) -> tuple:
        return history_from_columns, tuple(self.columns())


def empty_history() -> EventHistory:
    """A history without events: the C one where it is built."""
    return _history.EventHistory() if _history is not None else EventHistory()


def history_from_columns(
    items: list, table: list, cats: list, types: list, times: list, moved: list
) -> EventHistory:
    """:meth:`EventHistory.from_columns`: the C one where it is built and takes the columns
    (anything it refuses, the Python one reads as it always has)."""
    if _history is not None:
        try:
            return _history.EventHistory.from_columns(items, table, cats, types, times, moved)
        except TypeError:
            pass
    return EventHistory.from_columns(items, table, cats, types, times, moved)
