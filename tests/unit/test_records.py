"""The compact user record: round trips, old (version 1) changelog records, and size."""

from __future__ import annotations

import random

import pytest

from models.history import STALE_CATEGORIES, history_from_columns
from models.records import RecordField
from models.tracker import TrackerConfig, UserRecord, build_snapshot, replay
from stream.codec import decode_record, encode_record, pack

pytestmark = pytest.mark.unit


def _ms(ts: float) -> float:
    return round(ts * 1000) / 1000


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


def test_version_2_records_load_and_are_rewritten_with_millisecond_times():
    cfg = TrackerConfig()
    evs = events(30, whole_seconds=False)
    live = replay(evs, cfg)
    state = live.to_state()
    state[RecordField.VERSION] = 2
    state[RecordField.TIMES] = [e["ts"] for e in evs]  # version 2: a float per fractional time
    loaded = decode_record(pack(state), cfg)
    assert loaded.to_state() == live.to_state()
    assert [h[3] for h in loaded.history] == [round(e["ts"] * 1000) / 1000 for e in evs]
    whole = replay(events(5), cfg).to_state()
    first = whole[RecordField.TIMES][0][0]
    whole[RecordField.VERSION] = 2
    assert decode_record(pack(whole), cfg).to_state()[RecordField.TIMES][0] == [first]


@pytest.mark.parametrize("times", ["whole", "fractional", "whole, then fractional"])
def test_history_columns_kept_as_events_arrive_read_back_as_the_events(times):
    cfg = TrackerConfig(history=10)
    rng = random.Random(5)
    evs = events(200, seed=3, whole_seconds=times == "whole")
    if times == "whole, then fractional":
        later = events(100, seed=4, whole_seconds=False)
        evs = events(100, seed=3) + [{**e, "ts": e["ts"] + 1e5} for e in later]
    for e in evs:  # many categories: the table drops the ones that leave the history
        e["categories"] = [f"k{rng.randrange(60)}" for _ in range(rng.choice([1, 1, 3]))]
    record = UserRecord(cfg)
    for i, e in enumerate(evs):
        record.apply(e)
        ms = times != "whole" and any(not x["ts"].is_integer() for x in evs[: i + 1])
        expected = [  # history times are kept to the millisecond once one has a fraction
            (x["item_id"], tuple(x["categories"]), x["event_type"], _ms(x["ts"]) if ms else x["ts"])
            for x in evs[max(0, i + 1 - cfg.history) : i + 1]
        ]
        assert [h[:4] for h in record.history] == expected
        state = record.to_state()
        table, cats = state[RecordField.CATEGORY_TABLE], state[RecordField.CATEGORIES]
        used = {c for e in expected for c in e[1]}
        assert used <= set(table) and len(table) - len(used) <= STALE_CATEGORIES
        assert [tuple(table[j] for j in ([c] if isinstance(c, int) else c)) for c in cats] == [
            e[1] for e in expected
        ]
        restored = decode_record(encode_record(record), cfg)
        assert restored.history == record.history and restored.to_state() == state


@pytest.mark.parametrize(
    ("window", "top", "history", "asked"),
    [(20, 3, 50, 1), (5, 2, 8, 1), (30, 4, 10, 1), (20, 3, 50, 3), (6, 6, 50, 2)],
)
def test_explain_reused_between_events_equals_it_computed_afresh(window, top, history, asked):
    cfg = TrackerConfig(history=history, explain_window=window, explain_top=top)
    live = UserRecord(cfg)
    reused = 0
    rng = random.Random(window)
    for i, e in enumerate(events(400 * asked, seed=window)):
        live.apply(e)
        if rng.random() < 0.3:  # a tie: the event moved as much as an earlier one
            columns = live._history.columns()
            columns[-1][-1] = rng.choice(columns[-1])
            live._history = history_from_columns(*columns)
        if i % 97 == 96:  # a cache miss: the record comes back from its bytes
            live = decode_record(encode_record(live), cfg)
        if rng.randrange(asked):  # not every event is asked for (coalesced snapshots)
            continue
        before = live._explained
        got = live.explain(window, top)
        reused += before is not None and got[0] is before[4][0]
        fresh = UserRecord.from_state(live.to_state(), cfg)  # no cached answer
        assert got == fresh.explain(window, top)
        assert live.explain(window, top) == got  # asked again, no event between
    assert reused > 100  # most events leave the answer as it was
