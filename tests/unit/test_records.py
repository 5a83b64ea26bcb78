"""The compact user record: round trips, old (version 1) changelog records, and size."""

from __future__ import annotations

import random

import pytest

from models.tracker import TrackerConfig, UserRecord, build_snapshot, replay
from stream.codec import decode_record, encode_record, pack

pytestmark = pytest.mark.unit


def events(n: int, seed: int = 0, whole_seconds: bool = True) -> list[dict]:
    rng = random.Random(seed)
    ts = 1_700_000_000.0
    out = []
    for _ in range(n):
        ts += rng.randrange(1, 600) if whole_seconds else rng.random() * 60
        cats = [f"c{rng.randrange(8)}" for _ in range(rng.choice([1, 1, 2]))]
        out.append(
            {
                "item_id": f"item-{rng.randrange(10_000)}",
                "categories": cats,
                "event_type": rng.choice(["view", "click", "cart", "fav", "purchase", "odd"]),
                "ts": ts,
            }
        )
    return out


@pytest.mark.parametrize("whole_seconds", [True, False])
def test_a_decoded_record_learns_on_exactly_as_the_live_one(whole_seconds):
    cfg = TrackerConfig()
    evs = events(120, whole_seconds=whole_seconds)
    live = replay(evs[:80], cfg)
    live.partition, live.offset = 3, 79
    restored = decode_record(encode_record(live), cfg)
    assert restored.to_state() == live.to_state()
    assert (restored.partition, restored.offset) == (3, 79)
    assert [h[:4] for h in restored.history] == [h[:4] for h in live.history]
    for e in evs[80:]:
        live.apply(e)
        restored.apply(e)
    assert restored.interest.state() == live.interest.state()
    assert build_snapshot("u", restored, cfg) == build_snapshot("u", live, cfg)


def test_version_1_records_from_old_changelogs_still_load():
    cfg = TrackerConfig()
    evs = events(30)
    live = replay(evs, cfg)
    old = {  # the dict layout that changelogs held before version 2
        "u": live.interest.state(),
        "h": [[h[0], list(h[1]), h[2], h[3], h[4]] for h in live.history],
        "p": 1,
        "o": 29,
        "ed": {"c1": 1.0},
    }
    loaded = decode_record(pack(old), cfg)
    assert loaded.interest.state() == live.interest.state()
    assert loaded.history == live.history
    assert (loaded.partition, loaded.offset) == (1, 29)
    assert decode_record(encode_record(loaded), cfg).to_state() == loaded.to_state()


def test_an_unknown_record_version_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown user record version 9"):
        UserRecord.from_state([9, None, -1, None, [], [], [], [], [], [], None])


def test_records_are_compact():
    cfg = TrackerConfig()
    three = encode_record(replay(events(3), cfg))
    fifty = encode_record(replay(events(50), cfg))
    assert len(three) < 400, len(three)
    assert len(fifty) < 1400, len(fifty)
