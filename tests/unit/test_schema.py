"""One schema: every event type and alias means the same thing online and offline."""

from __future__ import annotations

import csv

import pytest

from models.data.loaders import load_events
from models.schema import EVENT_TYPE_ALIASES, EVENT_TYPES
from models.sequence import event_type_index
from models.tracker import TrackerConfig, replay
from stream.codec import decode_event, pack

pytestmark = pytest.mark.unit

ALL_NAMES = [*EVENT_TYPES, *EVENT_TYPE_ALIASES]


def _events(name: str) -> list[dict]:
    return [
        {"user_id": "u", "item_id": f"i{i}", "categories": [c], "event_type": et, "ts": 10.0 * i}
        for i, (c, et) in enumerate([("a", "view"), ("b", name), ("a", "view"), ("b", name)])
    ]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_stream_and_offline_paths_give_the_same_state(name, tmp_path):
    events = _events(name)
    streamed = [decode_event(pack(e), now=1e9) for e in events]
    path = tmp_path / "log.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "category", "event_type", "ts"])
        for e in events:
            w.writerow([e["user_id"], e["item_id"], e["categories"][0], e["event_type"], e["ts"]])
    offline = load_events(path, "generic")
    assert [e["event_type"] for e in streamed] == [e["event_type"] for e in offline]
    cfg = TrackerConfig()
    assert replay(streamed, cfg).to_state() == replay(offline, cfg).to_state()
    # the raw alias, unnormalised, weighs the same in the estimator as its canonical name
    assert replay(events, cfg).interest.state() == replay(streamed, cfg).interest.state()


@pytest.mark.parametrize("alias", list(EVENT_TYPE_ALIASES))
def test_the_sequence_encoder_resolves_every_alias(alias):
    assert event_type_index(alias) == event_type_index(EVENT_TYPE_ALIASES[alias]) > 1
