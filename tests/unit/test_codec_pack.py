"""``pack`` and ``packed`` write exactly the bytes msgpack's own Packer writes, through
whichever packer."""

from __future__ import annotations

import collections
import dataclasses
import enum
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.tracker import TrackerConfig, UserRecord, build_snapshot
from stream.codec import (
    dead_letter,
    encode_record,
    encode_snapshot,
    msgpack_pack,
    pack,
    packed,
)
from stream.dev.events import interleaved_events

pytestmark = pytest.mark.unit

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
keys = st.text(max_size=20) | st.integers(min_value=-(2**63), max_value=2**64 - 1)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(keys, inner, max_size=20)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_pack_writes_msgpacks_bytes_for_any_nesting_of_plain_types(obj):
    assert pack(obj) == msgpack_pack(obj)
    assert packed(obj) == msgpack_pack(obj)
    if packed.fast is not None:  # the C writer answers for plain data itself
        assert packed.fast(obj) == msgpack_pack(obj)


def _record(events: int, fractional: bool, categories: int) -> UserRecord:
    record = UserRecord(TrackerConfig())
    for i, event in enumerate(interleaved_events(0, 1, events, seed=events)):
        event["ts"] = 1_700_000_000 + i * (1.25 if fractional else 60)
        event["categories"] = [f"cat-{(i + j) % 9}" for j in range(categories)]
        record.apply(event)
    return record


@pytest.mark.parametrize(
    ("events", "fractional", "categories"), [(1, False, 1), (3, True, 1), (60, True, 3)]
)
def test_records_snapshots_and_dead_letters_are_msgpacks_bytes(events, fractional, categories):
    record = _record(events, fractional, categories)
    state = record.to_state()
    assert pack(state) == msgpack_pack(state) == encode_record(record) == packed(state)
    snapshot = build_snapshot("user-1", record, TrackerConfig())
    assert encode_snapshot(snapshot) == msgpack_pack(dict(snapshot))
    letter = dead_letter(b"\x81\xa1a\x01", "malformed", "x", "events", 3, 17)
    assert letter == msgpack_pack(msgpack.unpackb(letter, raw=False))


class _Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class _Point:
    x: int = 1


def _deep(levels: int) -> list:
    out: list = []
    for _ in range(levels):
        out = [out]
    return out


@pytest.mark.parametrize(
    "obj",
    [
        collections.OrderedDict(a=1),
        collections.Counter(a=2),
        collections.defaultdict(int, a=1),
        np.float64(1.5),
        type("Name", (str,), {})("x"),
        {"nested": [collections.OrderedDict(b=np.float64(math.pi))]},
        _deep(300),  # past ormsgpack's nesting limit
    ],
)
def test_what_ormsgpack_refuses_msgpack_packs_as_before(obj):
    assert pack(obj) == msgpack_pack(obj) == packed(obj)
    if packed.fast is not None:  # refused by the C writer: msgpack's Packer answered
        with pytest.raises(TypeError):
            packed.fast(obj)


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        (2**64, OverflowError),
        (-(2**63) - 1, OverflowError),
        (_Colour.RED, TypeError),
        (_Point(), TypeError),
        ({1}, TypeError),
        ("\ud800", UnicodeEncodeError),
    ],
)
def test_what_msgpack_refuses_still_raises_its_error(obj, error):
    with pytest.raises(error):
        pack(obj)
    with pytest.raises(error):
        packed([1, {"k": obj}])
