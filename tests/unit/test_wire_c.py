"""``stream/_wire.c``: validate_event's answer for plain events (None for the rest), and
Kafka's murmur2."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import codec
from stream.codec import InvalidEvent, Limits, validate_event
from stream.dev.events import interleaved_events
from stream.output import murmur2
from tests.unit.bitwise import same

pytestmark = pytest.mark.unit

built = pytest.mark.skipif(codec._wire is None, reason="stream._wire is not built")
NOW = 1_760_000_000.0


def python_answer(event, limits=Limits(), catalog=False):
    """validate_event's answer in Python alone: the event, or the InvalidEvent raised."""
    fast, codec._wire = codec._wire, None
    try:
        return validate_event(event, limits, NOW, catalog)
    except InvalidEvent as err:
        return err
    finally:
        codec._wire = fast


def c_answer(event, limits=Limits(), catalog=False):
    return codec._wire.clean_event(event, codec._PLAIN_RULES, NOW + limits.max_future_s, catalog)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: codec.py runs in Python")
def test_the_install_builds_the_c_event_check():
    assert codec._wire is not None, "pip install -e . did not build stream._wire"


# Values of every kind a producer might send, valid and not, near each limit.
ids = st.sampled_from(["u1", "", "x" * 64, "x" * 65, "é" * 64, "__population__/0", "_other"])
ids = ids | st.integers(min_value=-3, max_value=3) | st.booleans() | st.none() | st.just(1.5)
names = st.sampled_from(["shoes", "", "_other", "c" * 32, "c" * 33, "é"]) | st.integers(0, 2)
cat_lists = st.lists(names, max_size=4) | st.just(["c"] * 65) | st.just(["c"] * 64)
types = st.sampled_from(["view", "pv", "buy", "favourite", "rate", "VIEW", "", "nope"])
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**1100)
    | st.sampled_from([0, -0.0, NOW, NOW + 300.0, NOW + 300.5, 1e6, 1e6 + 1, True, "5", None])
)
fields = {
    "user_id": ids,
    "item_id": ids,
    "categories": cat_lists | st.just("shoes") | st.just(("a",)),
    "category": names,
    "event_type": types | st.integers(0, 1),
    "ts": numbers,
    "weight": numbers,
    "extra": st.just("kept out"),
}


@st.composite
def events(draw) -> dict:
    """A plain event with up to three of its fields replaced by any value above, or left out."""
    event = {
        "user_id": draw(st.sampled_from(["u1", "x" * 64, "é" * 64, "user-7"])),
        "item_id": draw(st.sampled_from(["i1", "x" * 64])),
        "categories": draw(st.lists(st.sampled_from(["shoes", "c" * 32, "é"]), min_size=1)),
        "event_type": draw(st.sampled_from(["view", "pv", "buy", "purchase", "rate"])),
        "ts": draw(st.floats(min_value=0.0, max_value=NOW + 300.0) | st.integers(0, 2**40)),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        if draw(st.booleans()):
            event[name] = draw(fields[name])
        else:
            event.pop(name, None)
    return event


@built
@settings(max_examples=1500, deadline=None)
@given(events(), st.booleans())
def test_every_event_the_c_code_answers_gets_validate_events_answer(event, catalog):
    expected = python_answer(event, catalog=catalog)
    got = c_answer(event, catalog=catalog)
    if got is not None:
        assert same(got, expected), (event, got, expected)


@built
def test_the_c_code_answers_for_the_usual_events():
    """It must not leave everything to Python: every generated event is plain."""
    events = list(interleaved_events(0, 50, 4, seed=1, t0=NOW - 1_000))
    events += [{**events[0], "weight": 2}, {**events[1], "event_type": "pv", "ts": 5}]
    for event in events:
        got = c_answer(event)
        assert got is not None, event
        assert same(got, python_answer(event))
    for event in interleaved_events(0, 50, 4, seed=1, t0=NOW - 1_000, categories="catalog"):
        got = c_answer(event, catalog=True)  # the item catalog names the categories
        assert got is not None and got["categories"] is None, event
        assert same(got, python_answer(event, catalog=True))


@built
def test_events_it_leaves_to_python_still_get_their_reasons():
    for event, reason in [
        (
            {
                "user_id": "u",
                "item_id": "i",
                "categories": ["_other"],
                "event_type": "view",
                "ts": 1.0,
            },
            "reserved-id",
        ),
        (
            {
                "user_id": "u",
                "item_id": "i",
                "categories": ["c"],
                "event_type": "view",
                "ts": NOW + 301,
            },
            "future",
        ),
        ({"user_id": "u", "item_id": "i", "category": "c", "event_type": "view", "ts": 1.0}, None),
    ]:
        assert c_answer(event) is None
        if reason is None:
            assert validate_event(event, now=NOW)["categories"] == ["c"]
        else:
            with pytest.raises(InvalidEvent) as err:
                validate_event(event, now=NOW)
            assert err.value.reason == reason


@built
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_murmur2_in_c_is_the_python_definitions(key):
    assert murmur2.fast(key) == murmur2.python(key)


def test_murmur2_of_what_the_c_code_does_not_take_is_the_python_definitions():
    assert murmur2(bytearray(b"user-1")) == murmur2.python(b"user-1") == murmur2(b"user-1")
