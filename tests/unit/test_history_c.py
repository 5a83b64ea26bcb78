"""The history bookkeeping of ``models/_history.c``: ``history.py``'s, bit for bit."""

from __future__ import annotations

import copy
import math
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models.tracker
from models import history
from models.history import explained, most_moved, push_event, read_columns
from models.records import MS, RecordField
from models.schema import EVENT_TYPES
from models.tracker import TrackerConfig, UserRecord
from stream.dev.events import interleaved_events
from tests.unit.bitwise import same

pytestmark = pytest.mark.unit

built = pytest.mark.skipif(history._history is None, reason="models._history is not built")


def empty() -> list:
    return [[], [], {}, [], [], [], [], [], []]


def assert_refused_and_answered_as_python(fn, *args) -> None:
    """``fn``'s C definition refuses ``args`` (TypeError), and ``fn`` answers them as its
    Python definition does: the same value, or the same exception."""
    with pytest.raises(TypeError):
        fn.fast(*args)
    try:
        expected = fn.python(*args)
    except Exception as exc:  # noqa: BLE001 - the wrapper must raise what Python raises
        with pytest.raises(type(exc)):
            fn(*args)
    else:
        assert same(fn(*args), expected)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: history.py runs in Python")
def test_the_install_builds_the_c_history():
    assert history._history is not None, "pip install -e . did not build models._history"
    assert push_event.fast is not None and most_moved.fast is not None
    assert explained.fast is not None and read_columns.fast is not None


names = st.sampled_from(["a", "b", "c", "d", "shoes", "é"])
events = st.lists(
    st.tuples(
        st.lists(names, max_size=3),  # categories: none, one, several, repeated
        st.sampled_from([0, 1, 2, "custom"]),  # type code (an unknown type stays a name)
        st.floats(min_value=0.0, max_value=5_000.0, allow_nan=False),  # time step
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),  # moved
    ),
    max_size=40,
)


@built
@settings(max_examples=300, deadline=None)
@given(events, st.integers(min_value=1, max_value=6), st.booleans())
def test_push_event(stream, cap, ms):
    fast, python = empty(), empty()
    stale_fast = stale_python = 0
    ts = 1_760_000_000.0
    for i, (cats, type_code, step, moved) in enumerate(stream):
        ts += step
        t = round(ts * 1000) / 1000 if ms else float(int(ts))
        unit = MS if ms else None
        args = (f"item-{i}", cats, type_code, t, unit, moved, cap)
        stale_fast = push_event.fast(fast, *args, stale_fast)
        stale_python = push_event.python(python, *args, stale_python)
        assert stale_fast == stale_python
        assert same(fast, python), (i, fast, python)


def test_a_full_history_drops_the_oldest_and_restarts_its_times():
    h = empty()
    stale = 0
    for i, (cats, t) in enumerate([(["a"], 10.0), (["b", "a"], 12.0), (["b"], 15.0)]):
        stale = push_event(h, f"i{i}", cats, 0, t, None, 0.5, 2, stale)
    items, table, index, refs, cats, _, ts, times, moved = h
    assert (items, cats, ts, times, moved) == (
        ["i1", "i2"],
        [[1, 0], 1],
        [12.0, 15.0],
        [[12], 3],
        [500000, 500000],
    )
    assert (table, refs, stale) == (["a", "b"], [1, 2], 0)
    push_event(h, "i3", ["b"], 0, 16.0, None, 0.5, 2, stale)
    assert refs == [0, 2] and times == [[15], 1]


@built
@pytest.mark.parametrize(
    "spoil",
    [
        lambda h, a: h[3].__setitem__(0, 1.0),  # a reference count that is not an int
        lambda h, a: h[6].__setitem__(-1, 3),  # an int time where floats are stored
        lambda h, a: h[4].__setitem__(0, 99),  # a leaving event naming no table entry
        lambda h, a: h[1].pop(),  # table and counts of different lengths
        lambda h, a: a.__setitem__(3, 7),  # an int time
        lambda h, a: a.__setitem__(3, math.inf),  # a time Python's round() refuses
        lambda h, a: a.__setitem__(6, 0),  # cap 0: every event leaves at once
        lambda h, a: a.__setitem__(1, [1]),  # a category that is not a str
    ],
)
def test_what_the_c_code_refuses_it_leaves_untouched_for_the_python_definition(spoil):
    h = empty()
    for i in range(3):
        push_event(h, f"i{i}", ["a"], 0, float(i), None, 0.5, 3, 0)
    args = ["i9", ["b"], 0, 9.0, None, 0.5, 3]
    spoil(h, args)
    before = copy.deepcopy(h)
    with pytest.raises(TypeError):
        push_event.fast(h, *args, 0)
    assert same(h, before)
    try:
        expected = push_event.python(copy.deepcopy(h), *args, 0)
    except Exception as exc:  # noqa: BLE001 - the wrapper must raise what Python raises
        with pytest.raises(type(exc)):
            push_event(h, *args, 0)
    else:
        assert push_event(h, *args, 0) == expected


@built
def test_a_replay_gives_the_same_records_with_the_python_definition(monkeypatch):
    """Records of 300 users × 24 events (a history of 10, so events leave and the category
    table compacts), some times with milliseconds: the same stored state either way."""
    cfg = TrackerConfig(history=10)
    events = list(interleaved_events(0, 300, 24, seed=3, categories="item"))
    for n, e in enumerate(events):
        if n % 7 == 0:
            e["ts"] += 0.125  # the column switches to milliseconds
        if n % 5 == 0:
            e["categories"] = [*e["categories"], f"extra-{n % 13}"]

    def replay() -> dict:
        records: dict[str, UserRecord] = {}
        for e in events:
            records.setdefault(e["user_id"], UserRecord(cfg)).apply(dict(e))
        return {u: r.to_state() for u, r in records.items()}

    fast = replay()
    monkeypatch.setattr(models.tracker, "push_event", push_event.python)
    assert same(fast, replay())


@built
@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=4), max_size=90),  # few values: many ties
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=80),  # past 64 too: the C's buffers on the heap
)
def test_most_moved(moved, window, top):
    assert most_moved.fast(moved, window, top) == most_moved.python(moved, window, top)


@built
@pytest.mark.parametrize(
    "args",
    [
        ([3, 1.0, 2], 5, 2),  # a float among the moves
        ([3, 2**70], 5, 2),  # past int64
        ([3, 1], -1, 2),  # a negative window: Python's range is empty
        ([3, 1], 5, -1),  # a negative top: Python's slice drops from the end
        ((3, 1), 5, 1),  # not a list
    ],
)
def test_what_most_moved_refuses_the_python_definition_answers(args):
    with pytest.raises(TypeError):
        most_moved.fast(*args)
    assert most_moved(*args) == most_moved.python(*args)


def explain_columns(h: list) -> tuple:
    """The columns ``explained`` reads, from ``push_event``'s."""
    return h[0], h[1], h[4], h[5], h[6], h[8]


@built
@settings(max_examples=300, deadline=None)
@given(
    events,
    st.integers(min_value=1, max_value=8),
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 5)), min_size=1, max_size=4),
)
def test_explained(stream, cap, asks):
    """Event by event, asked with each (window, top) of ``asks`` in turn and the answer kept
    as UserRecord.explain keeps it: the same answers, bit for bit, and the same entries and
    lists reused."""
    h, stale, ts = empty(), 0, 1_760_000_000.0
    kept_fast = kept_python = None
    for n, (cats, type_code, step, moved) in enumerate(stream, start=1):
        ts += step
        stale = push_event(h, f"item-{n}", cats or ["a"], type_code, ts, None, moved, cap, stale)
        for window, top in asks:
            fast = explained.fast(kept_fast, window, top, n, explain_columns(h))
            python = explained.python(kept_python, window, top, n, explain_columns(h))
            assert same(fast, python), (n, window, top)
            if kept_python is not None:  # reused where Python reuses
                assert (fast[4] is kept_fast[4]) == (python[4] is kept_python[4])
                assert [any(e is k for k in kept_fast[4]) for e in fast[4]] == [
                    any(e is k for k in kept_python[4]) for e in python[4]
                ]
            kept_fast, kept_python = fast, python


def spoiled_cache(kept: tuple) -> list:
    return [
        kept[:4],  # too short
        (*kept[:3], [*kept[3], 99], kept[4]),  # numbers and entries of different lengths
        (*kept[:3], [float(k) for k in kept[3]], kept[4]),  # float event numbers
        (*kept[:4], [list(e.items()) for e in kept[4]]),  # entries that are not dicts
    ]


@built
def test_what_explained_refuses_the_python_definition_answers():
    h = empty()
    for i in range(5):
        push_event(h, f"i{i}", ["a", "b"] if i % 2 else ["b"], i % 3, float(i), None, i / 5, 5, 0)
    kept = explained(None, 4, 2, 5, explain_columns(h))
    assert [e["item_id"] for e in kept[4]] == ["i4", "i3"]
    cases = [(c, 4, 2, 5, explain_columns(h)) for c in spoiled_cache(kept)]
    cols = explain_columns(h)
    cases += [
        (None, 4, 2, 5, (*cols[:2], [*cols[2][:-1], 7], *cols[3:])),  # no such table entry
        (None, 4, 2, 5, (*cols[:3], [*cols[3][:-1], 40], *cols[4:])),  # no such type code
        (None, 4, 2, 5, (*cols[:5], [*cols[5][:-1], 0.5])),  # a float move
        (None, 4, 2, 5, (*cols[:5], cols[5][:-1])),  # columns of different lengths
        (None, 4, 2, 5, list(cols)),  # not a tuple
        (None, 4, -1, 5, cols),  # a negative top
    ]
    for args in cases:
        assert_refused_and_answered_as_python(explained, *args)


@built
def test_a_replay_explains_the_same_with_the_python_definition(monkeypatch):
    cfg = TrackerConfig(history=10, explain_window=6, explain_top=3)
    events = list(interleaved_events(0, 200, 30, seed=5))

    def replay() -> list:
        records: dict[str, UserRecord] = {}
        out = []
        for e in events:
            r = records.setdefault(e["user_id"], UserRecord(cfg))
            r.apply(dict(e))
            out.append(r.explain(cfg.explain_window, cfg.explain_top))
        return out

    fast = replay()
    monkeypatch.setattr(models.tracker, "explained", explained.python)
    assert same(fast, replay())


def stored_columns(record: UserRecord) -> tuple[list, list, list]:
    """A record's stored category table, categories and times, as a decoder reads them."""
    state = record.to_state()
    return (
        state[RecordField.CATEGORY_TABLE],
        state[RecordField.CATEGORIES],
        state[RecordField.TIMES],
    )


@built
@settings(max_examples=300, deadline=None)
@given(events, st.integers(min_value=1, max_value=6), st.booleans())
def test_read_columns(stream, cap, ms):
    record = UserRecord(TrackerConfig(history=cap))
    ts = 1_760_000_000.0
    for i, (cats, type_code, step, _) in enumerate(stream):
        ts += step
        cats = cats or ["none"]  # an event names at least one category
        t = ts if ms else float(int(ts))
        event_type = type_code if isinstance(type_code, str) else EVENT_TYPES[type_code]
        record.apply({"item_id": f"i{i}", "categories": cats, "event_type": event_type, "ts": t})
    columns = stored_columns(record)
    fast = read_columns.fast(*copy.deepcopy(columns))
    assert same(fast, read_columns.python(*copy.deepcopy(columns)))
    # what a decoded record keeps is what the live one kept
    assert same(
        list(fast[:5]), [record._table, record._index, record._refs, record._stale, record._ts]
    )
    assert fast[5] is record._ms


@built
@pytest.mark.parametrize(
    "columns",
    [
        (["a"], [-1], [[1]]),  # a negative index: Python reads it from the end
        (["a"], [1], [[1]]),  # past the table
        (["a"], [True], [[1]]),  # not an int
        (["a"], [(0,)], [[1]]),  # a tuple of indexes
        ([1], [0], [[1]]),  # a name that is not a str
        (["a"], [0], [[1.0]]),  # a float time
        (["a", "b"], [0, 1], [[2**60], 1]),  # a time past 2**53
        (["a", "b"], [0, 1], [[2**53], 1]),  # a sum past 2**53
        (["a"], [0], [5]),  # no head
        (["a"], [0], [[1, -3, 0]]),  # a head of three
    ],
)
def test_what_read_columns_refuses_the_python_definition_answers(columns):
    assert_refused_and_answered_as_python(read_columns, *columns)


def test_decoded_records_are_the_same_with_the_python_definition(monkeypatch):
    """300 users × 24 events, a history of 10, some times with milliseconds, decoded from
    their stored state: the same records either way, and the same as the live ones."""
    cfg = TrackerConfig(history=10)
    records: dict[str, UserRecord] = {}
    for n, e in enumerate(interleaved_events(0, 300, 24, seed=4, categories="item")):
        if n % 7 == 0:
            e["ts"] += 0.125
        records.setdefault(e["user_id"], UserRecord(cfg)).apply(dict(e))

    def decoded() -> list:
        out = []
        for r in records.values():
            d = UserRecord.from_state(r.to_state(), cfg)
            out.append([d.to_state(), d._index, d._refs, d._stale, d._ts, d._ms])
        return out

    fast = decoded()
    live = [[r.to_state(), r._index, r._refs, r._stale, r._ts, r._ms] for r in records.values()]
    assert same(fast, live)
    monkeypatch.setattr(models.tracker, "read_columns", read_columns.python)
    assert same(fast, decoded())
