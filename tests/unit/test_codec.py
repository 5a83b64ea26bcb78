"""The codec: round trips and every kind of bad input, each with its precise reason."""

from __future__ import annotations

import json
import math

import msgpack
import pytest

from models.tracker import TrackerConfig, UserRecord, build_snapshot
from stream.codec import (
    InvalidEvent,
    Limits,
    control_key,
    dead_letter,
    decode_event,
    decode_snapshot,
    encode_snapshot,
    pack,
    unpack,
)

pytestmark = pytest.mark.unit
NOW = 1_800_000_000.0
GOOD = {
    "user_id": "u1",
    "item_id": 42,
    "categories": ["shoes", "sale"],
    "event_type": "cart",
    "ts": NOW - 10,
}


def reason(data: bytes, **kw) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_event(data, now=NOW, **kw)
    return info.value.reason


def test_event_round_trip_normalises_ids_and_aliases():
    e = decode_event(pack({**GOOD, "event_type": "buy", "weight": 2}), now=NOW)
    assert e == {
        "user_id": "u1",
        "item_id": "42",
        "categories": ["shoes", "sale"],
        "event_type": "purchase",
        "ts": NOW - 10,
        "weight": 2.0,
    }
    single = decode_event(
        pack(
            {
                **{k: v for k, v in GOOD.items() if k != "categories"},
                "category": "hats",
                "event_type": "pv",
            }
        ),
        now=NOW,
    )
    assert single["categories"] == ["hats"] and single["event_type"] == "view"


def test_json_is_accepted_only_where_marked():
    data = json.dumps(GOOD).encode()
    assert decode_event(data, b"application/json", now=NOW)["user_id"] == "u1"
    assert reason(data) == "json-unmarked"


def test_snapshot_round_trip_keeps_floats_exactly():
    snap = {
        "user_id": "u",
        "distribution": {"a": 0.1 + 0.2, "_other": 1 - (0.1 + 0.2)},
        "version": 3,
        "explain": [{"item_id": "i", "moved": 0.25}],
    }
    assert decode_snapshot(encode_snapshot(snap)) == snap


def test_a_published_snapshot_reads_as_msgpacks_own_reader_reads_it():
    record = UserRecord(TrackerConfig())
    for i in range(30):
        event = {"item_id": f"i{i}", "categories": [f"c{i % 7}", "all"], "event_type": "view"}
        record.apply({**event, "ts": 1.0 + i})
    data = encode_snapshot({**build_snapshot("user-1", record, TrackerConfig()), "emitted_at": 2.5})
    assert decode_snapshot(data) == unpack(data)
    assert decode_snapshot(b"\x81\xa1a\x01") == {"a": 1} and decode_snapshot(b'{"a":1}') == {"a": 1}
    with pytest.raises(ValueError):
        decode_snapshot(b"\x81\xa1a")  # cut short


def test_dead_letter_keeps_the_original_bytes():
    original = b"\xc1\xff garbage"
    record = unpack(dead_letter(original, "malformed", "bad", "t", 2, 17))
    assert record["original"] == original
    assert (record["reason"], record["topic"], record["partition"], record["offset"]) == (
        "malformed",
        "t",
        2,
        17,
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xc1", "malformed"),  # 0xc1 is never used in msgpack
        (pack(GOOD)[:-3], "malformed"),  # truncated
        (pack([1, 2, 3]), "not-a-map"),
        (pack("just a string"), "not-a-map"),
        (pack({k: v for k, v in GOOD.items() if k != "user_id"}), "missing-field"),
        (pack({k: v for k, v in GOOD.items() if k != "ts"}), "missing-field"),
        (pack({k: v for k, v in GOOD.items() if k != "categories"}), "missing-field"),
        (pack({k: v for k, v in GOOD.items() if k != "event_type"}), "missing-field"),
        (pack({**GOOD, "user_id": 1.5}), "wrong-type"),
        (pack({**GOOD, "user_id": True}), "wrong-type"),
        (pack({**GOOD, "item_id": None}), "wrong-type"),
        (pack({**GOOD, "categories": "shoes"}), "wrong-type"),
        (pack({**GOOD, "categories": [1.5]}), "wrong-type"),
        (pack({**GOOD, "ts": "yesterday"}), "wrong-type"),
        (pack({**GOOD, "event_type": 3}), "wrong-type"),
        (pack({**GOOD, "weight": "heavy"}), "wrong-type"),
        (pack({**GOOD, "categories": []}), "empty-categories"),
        (pack({**GOOD, "categories": [""]}), "empty-categories"),
        (pack({**GOOD, "user_id": "u" * 300}), "oversized-field"),
        (pack({**GOOD, "categories": ["c" * 200]}), "oversized-field"),
        (pack({**GOOD, "categories": [f"c{i}" for i in range(100)]}), "oversized-field"),
        (pack({**GOOD, "event_type": "teleport"}), "unknown-event-type"),
        (pack({**GOOD, "ts": math.nan}), "bad-timestamp"),
        (pack({**GOOD, "ts": math.inf}), "bad-timestamp"),
        (pack({**GOOD, "ts": -1.0}), "bad-timestamp"),
        (pack({**GOOD, "ts": NOW + 86400}), "future"),
        (pack({**GOOD, "weight": 1e308}), "oversized-field"),  # masses would reach infinity
        (pack({**GOOD, "categories": ["shoes", "_other"]}), "reserved-id"),  # the unnamed mass
        (
            pack({**{k: v for k, v in GOOD.items() if k != "categories"}, "category": "_other"}),
            "reserved-id",
        ),
        (b"\x81\xa1a" + b"\x91" * 5000 + b"\xc0", "malformed"),  # nested far too deep
        (b"\xa2\xff\xfe", "malformed"),  # invalid UTF-8 in a str
    ],
)
def test_bad_input_gets_its_reason(payload: bytes, expected: str):
    assert reason(payload) == expected


@pytest.mark.parametrize(("field", "expected"), [("ts", "bad-timestamp"), ("weight", "wrong-type")])
def test_a_json_number_past_floats_range_gets_its_reason(field: str, expected: str):
    text = json.dumps({**GOOD, field: 1}).replace(f'"{field}": 1', f'"{field}": 1{"0" * 400}')
    with pytest.raises(InvalidEvent) as err:
        decode_event(text.encode(), b"application/json", now=NOW)
    assert err.value.reason == expected


def test_control_records_name_their_user_by_a_utf8_key():
    assert control_key(b"user-1") == "user-1"
    for key, expected in [
        (None, "missing-field"),
        (b"", "missing-field"),
        (b"\xff\xfe", "wrong-type"),
        (b"__population__/p0", "reserved-id"),
    ]:
        with pytest.raises(InvalidEvent) as err:
            control_key(key)
        assert err.value.reason == expected


def test_oversized_payload_is_rejected_before_decoding():
    huge = pack({**GOOD, "padding": "x" * 70_000})
    assert reason(huge) == "oversized"
    assert decode_event(huge, limits=Limits(max_payload=1 << 20), now=NOW)["user_id"] == "u1"


def test_none_value_is_malformed():
    assert reason(None) == "malformed"


def test_unpack_reads_what_other_languages_write():
    # bytes written by a plain msgpack encoder (no project helpers) decode to the same event
    assert decode_event(msgpack.packb(GOOD), now=NOW)["categories"] == ["shoes", "sale"]
