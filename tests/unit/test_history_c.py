"""The history of ``models/_history.c``: ``history.py``'s, bit for bit."""

from __future__ import annotations

import copy
import math
import pickle
import shutil
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import history
from models.history import EventHistory, history_from_columns, most_moved
from models.records import MS
from models.tracker import TrackerConfig, UserRecord
from stream.dev.events import interleaved_events
from tests.unit.bitwise import same

pytestmark = pytest.mark.unit

built = pytest.mark.skipif(history._history is None, reason="models._history is not built")
Native = history._history.EventHistory if history._history is not None else None


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: history.py runs in Python")
def test_the_install_builds_the_c_history():
    assert history._history is not None, "pip install -e . did not build models._history"
    assert most_moved.fast is not None
    assert type(history.empty_history()) is Native


names = st.sampled_from(["a", "b", "c", "d", "shoes", "é"])
events = st.lists(
    st.tuples(
        st.lists(names, max_size=3),  # categories: none, one, several, repeated
        st.sampled_from([0, 1, 2, "custom"]),  # type code (an unknown type stays a name)
        st.floats(min_value=0.0, max_value=5_000.0, allow_nan=False),  # time step
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),  # moved
        st.integers(min_value=1, max_value=6),  # the cap of this push
    ),
    max_size=40,
)


def pushed(stream, whole: bool, kinds=(Native, EventHistory)) -> Iterator[list]:
    """Each kind of history after each event of ``stream``, times whole seconds or not."""
    out = [kind() for kind in kinds]
    ts = 1_760_000_000.0
    for i, (cats, type_code, step, moved, cap) in enumerate(stream):
        ts += step
        for h in out:
            h.push(f"item-{i}", cats, type_code, float(int(ts)) if whole else ts, moved, cap)
        yield out


@built
@settings(max_examples=300, deadline=None)
@given(events, st.booleans())
def test_push(stream, whole):
    """Event by event (the cap changing too; the times turning to milliseconds at their
    first fraction; the category table compacted): the same state, columns and entries."""
    for fast, python in pushed(stream, whole):
        assert same(fast.state(), python.state())
        assert same(fast.columns(), python.columns()) and len(fast) == len(python)
        assert same(
            [fast.entry(i) for i in range(len(fast))], [python.entry(i) for i in range(len(python))]
        )


def test_a_full_history_drops_the_oldest_and_restarts_its_times():
    for h in (history.empty_history(), EventHistory()):
        for i, (cats, t) in enumerate([(["a"], 10.0), (["b", "a"], 12.0), (["b"], 15.0)]):
            h.push(f"i{i}", cats, 0, t, 0.5, 2)
        assert h.columns() == [
            ["i1", "i2"],
            ["a", "b"],
            [[1, 0], 1],
            [0, 0],
            [[12], 3],
            [500000] * 2,
        ]
        assert h.state()[3] == [1, 2]  # "a" named once, "b" twice
        h.push("i3", ["b"], 0, 16.0, 0.5, 2)
        assert h.state()[3] == [0, 2] and h.columns()[4] == [[15], 1]
        assert h.state()[9] == 1  # "a": stale


def test_stale_categories_past_the_limit_rebuild_the_table():
    for h in (history.empty_history(), EventHistory()):
        for i in range(history.STALE_CATEGORIES + 2):
            h.push(f"i{i}", [f"c{i}"], 0, float(i), 0.1, 1)  # every event names a new one
        table, cats = h.columns()[1:3]
        assert table == [f"c{history.STALE_CATEGORIES + 1}"] and cats == [0]


@built
@pytest.mark.parametrize(
    "args",
    [
        ("i", [1], 0, 1.0, 0.5, 3),  # a category that is not a str
        ("i", ["a"], 0, math.inf, 0.5, 3),  # a time Python's round() refuses
        ("i", ["a"], 0, 1.0, 0.5, 0),  # cap 0: every event leaves at once
        ("i", ["a"], 99, 1.0, 0.5, 3),  # a type code naming no event type
        ("i", ["a"], 0, 1.0, 1, 3),  # an int move
        (7, ["a"], 0, 1.0, 0.5, 3),  # an item that is not a str
        ("i", iter(["a"]), 0, 1.0, 0.5, 3),  # categories that are not a list or tuple
        ("i", ["a"], 0, 1e300, 0.5, 3),  # a time past what int64 holds in milliseconds
    ],
)
def test_what_the_c_history_refuses_it_leaves_untouched(args):
    fast = history.empty_history()
    for i in range(3):
        fast.push(f"i{i}", ["a"], 0, float(i), 0.5, 3)
    before = fast.state()
    with pytest.raises(TypeError):
        fast.push(*args)
    assert same(fast.state(), before)


@built
def test_a_record_falls_back_to_the_python_history_for_what_the_c_one_refuses():
    """An item id that is not a str (the schema allows no such event; the Python definition
    takes it): the record carries on in Python from the same columns, as if always there."""
    cfg = TrackerConfig(history=4)
    evs = [
        {
            "item_id": f"i{i}",
            "categories": ["a", "b"][: 1 + i % 2],
            "event_type": "view",
            "ts": i + 0.5,
        }
        for i in range(6)
    ]
    evs[3]["item_id"] = 42
    fast, python = UserRecord(cfg), UserRecord(cfg)
    python._history = EventHistory()
    for e in evs:
        fast.apply(dict(e))
        python.apply(dict(e))
    assert type(fast._history) is EventHistory
    assert same(fast.to_state(), python.to_state())


def test_a_replay_gives_the_same_records_with_the_python_history(monkeypatch):
    """Records of 300 users × 24 events (a history of 10, so events leave and the category
    table compacts), some times with milliseconds: the same stored state either way."""
    cfg = TrackerConfig(history=10)
    events = list(interleaved_events(0, 300, 24, seed=3, categories="item"))
    for n, e in enumerate(events):
        if n % 7 == 0:
            e["ts"] += 0.125  # the column switches to milliseconds
        if n % 5 == 0:
            e["categories"] = [*e["categories"], f"extra-{n % 13}"]

    def replay() -> tuple[dict, list]:
        records: dict[str, UserRecord] = {}
        explained = []
        for e in events:
            r = records.setdefault(e["user_id"], UserRecord(cfg))
            r.apply(dict(e))
            explained.append(r.explain(6, 3))
        return {u: r.to_state() for u, r in records.items()}, explained

    fast = replay()
    monkeypatch.setattr(history, "_history", None)
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


@built
@settings(max_examples=300, deadline=None)
@given(
    events,
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 80)), min_size=1, max_size=4),
)
def test_explained(stream, asks):
    """Event by event, asked with each (window, top) of ``asks`` in turn and the answer kept
    as UserRecord.explain keeps it: the same answers, bit for bit, and the same entries and
    lists reused."""
    kept_fast = kept_python = None
    for n, (fast, python) in enumerate(pushed(stream, whole=False), start=1):
        for window, top in asks:
            a = fast.explained(kept_fast, window, top, n)
            b = python.explained(kept_python, window, top, n)
            assert same(a, b), (n, window, top)
            if kept_python is not None:  # reused where Python reuses
                assert (a[4] is kept_fast[4]) == (b[4] is kept_python[4])
                assert [any(e is k for k in kept_fast[4]) for e in a[4]] == [
                    any(e is k for k in kept_python[4]) for e in b[4]
                ]
            kept_fast, kept_python = a, b


@built
def test_what_explained_refuses_is_a_clear_error():
    h = history.empty_history()
    for i in range(5):
        h.push(f"i{i}", ["a", "b"] if i % 2 else ["b"], i % 3, float(i), i / 5, 5)
    kept = h.explained(None, 4, 2, 5)
    assert [e["item_id"] for e in kept[4]] == ["i4", "i3"]
    for cached in [
        kept[:4],  # too short
        (*kept[:3], [*kept[3], 99], kept[4]),  # numbers and entries of different lengths
        (*kept[:3], [float(k) for k in kept[3]], kept[4]),  # float event numbers
        (*kept[:4], [list(e.items()) for e in kept[4]]),  # entries that are not dicts
    ]:
        with pytest.raises(TypeError):
            h.explained(cached, 4, 2, 5)
    with pytest.raises(TypeError):
        h.explained(None, 4, -1, 5)


@built
@settings(max_examples=300, deadline=None)
@given(events, st.booleans())
def test_from_columns(stream, whole):
    """A history read from its stored columns is the one that wrote them, either kind from
    either kind's columns."""
    for fast, python in pushed(stream, whole):
        for columns in (fast.columns(), python.columns()):
            a = Native.from_columns(*copy.deepcopy(columns))
            b = EventHistory.from_columns(*copy.deepcopy(columns))
            assert same(a.state(), b.state()) and same(a.state(), python.state())


@built
@pytest.mark.parametrize(
    "columns",
    [
        (["i"], ["a"], [-1], [0], [[1]], [0]),  # a negative index: Python reads it from the end
        (["i"], ["a"], [1], [0], [[1]], [0]),  # past the table
        (["i"], ["a"], [True], [0], [[1]], [0]),  # not an int
        (["i"], ["a"], [(0,)], [0], [[1]], [0]),  # a tuple of indexes
        (["i"], [1], [0], [0], [[1]], [0]),  # a name that is not a str
        (["i"], ["a"], [0], [0], [[1.0]], [0]),  # a float time
        (["i", "j"], ["a"], [0, 0], [0, 0], [[2**60], 1], [0, 0]),  # a time past 2**53
        (["i"], ["a"], [0], [0], [5], [0]),  # no head
        (["i"], ["a"], [0], [0], [[1, MS, 0]], [0]),  # a head of three
        (["i"], ["a"], [0], [0], [[1, 7]], [0]),  # a unit mark that is not MS
        (["i"], ["a"], [0], [0], [[2**53 - 1, MS]], [0]),  # ms whose float loses the integer
        (["i"], ["a"], [0], [0], [[1]], [0.5]),  # a float move
        ([3], ["a"], [0], [0], [[1]], [0]),  # an item that is not a str
    ],
)
def test_what_from_columns_refuses_the_python_history_reads(columns):
    """The C refuses; ``history_from_columns`` answers as the Python definition does: the
    same history, or the same exception."""
    with pytest.raises(TypeError):
        Native.from_columns(*copy.deepcopy(columns))
    try:
        expected = EventHistory.from_columns(*copy.deepcopy(columns))
    except Exception as exc:  # noqa: BLE001 - the wrapper must raise what Python raises
        with pytest.raises(type(exc)):
            history_from_columns(*copy.deepcopy(columns))
    else:
        h = history_from_columns(*copy.deepcopy(columns))
        assert type(h) is EventHistory and same(h.state(), expected.state())


def test_columns_of_different_lengths_are_a_value_error():
    for kind in {Native, EventHistory} - {None}:
        with pytest.raises(ValueError, match="differ in length"):
            kind.from_columns(["i", "j"], ["a"], [0], [0], [[1]], [0])


def test_decoded_records_are_the_same_with_the_python_history(monkeypatch):
    """300 users × 24 events, a history of 10, some times with milliseconds, decoded from
    their stored state: the same histories either way, and the same as the live ones."""
    cfg = TrackerConfig(history=10)
    records: dict[str, UserRecord] = {}
    for n, e in enumerate(interleaved_events(0, 300, 24, seed=4, categories="item")):
        if n % 7 == 0:
            e["ts"] += 0.125
        records.setdefault(e["user_id"], UserRecord(cfg)).apply(dict(e))

    def decoded() -> list:
        return [UserRecord.from_state(r.to_state(), cfg)._history.state() for r in records.values()]

    fast = decoded()
    assert same(fast, [r._history.state() for r in records.values()])
    monkeypatch.setattr(history, "_history", None)
    assert same(fast, decoded())


def test_a_history_pickles_and_copies():
    h = history.empty_history()
    for i in range(7):
        h.push(f"i{i}", ["a", "b"][: 1 + i % 2], i % 3, 10.0 + i / 4, 0.1 * i, 5)
    for other in (pickle.loads(pickle.dumps(h)), copy.deepcopy(h), copy.copy(h)):
        assert type(other) is type(h) and same(other.state(), h.state())


@built
def test_a_full_c_history_is_a_fraction_of_the_python_one():
    """50 events (whole-second times, one category each, moves in millionths): the C ring
    against the nine lists and their numbers, counted as ``sys.getsizeof`` counts them."""
    fast, python = history.empty_history(), EventHistory()
    for h in (fast, python):
        for i in range(60):
            h.push(f"i{i}", [f"c{i % 6}"], 0, 1_760_000_000.0 + i, 0.123456 + i / 1000, 50)
    columns = python.state()
    held = {id(v): v for c in columns if isinstance(c, list) for v in c if not isinstance(v, str)}
    lists = sum(sys.getsizeof(c) for c in columns if isinstance(c, list | dict))
    numbers = sum(
        sys.getsizeof(v)
        for v in held.values()
        if isinstance(v, float) or (isinstance(v, int) and not -5 <= v <= 256)
    )
    assert sys.getsizeof(fast) < (lists + numbers) / 2
