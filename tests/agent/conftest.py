"""Agent-tier fixtures: a pipeline under Faust's test_context, its outputs captured."""

from __future__ import annotations

import random

import pytest

from stream.app import create_app
from stream.settings import Settings

AGENT = "interest-tracker-events"


def scripted_events(n: int = 400, users: int = 7, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    out, ts = [], 1_700_000_000.0
    for i in range(n):
        ts += rng.expovariate(1 / 90)
        u = rng.randrange(users)
        phase = "early" if i < n // 2 else "late"
        out.append(
            {
                "user_id": f"user-{u}",
                "item_id": f"item-{rng.randrange(50)}",
                "categories": [f"{phase}-{(u + rng.randrange(3)) % 6}"] * rng.randint(1, 2),
                "event_type": rng.choice(["view", "view", "click", "cart", "fav", "purchase"]),
                "ts": round(ts, 3),
            }
        )
    return out


class RecordingOutput:
    """Takes the place of ``stream.output.Output`` under test_context, where there is no
    producer: each record is kept as (key, value) under its topic, or given to a hook."""

    def __init__(self, topics):
        self.sent = {topic: [] for topic in topics}
        self.hooks = {}

    def partition_for(self, topic, key):
        return 0

    def add(self, topic, key, value, partition, headers=None):
        hook = self.hooks.get(topic)
        if hook is not None:
            hook(key, value)
        else:
            self.sent.setdefault(topic, []).append((key, value))

    def add_many(self, topic, partition, records, headers=None):
        for key, value in records:
            self.add(topic, key, value, partition, headers)

    def on_sent(self, topic, callback):
        pass

    async def send(self):
        pass

    async def send_behind(self):
        pass

    async def drain(self):
        pass


@pytest.fixture
def make_pipeline():
    """A factory: (app, pipeline, snapshots sent, dead letters sent) under ``Settings``
    overrides (by default min-interval 0: a snapshot per change)."""

    def make(**overrides):
        settings = Settings(
            bootstrap="127.0.0.1:1",
            app_id="agent-test",
            **{
                "min_interval_s": 0.0,
                "batch": 64,
                "batch_ms": 5.0,
                # built in the test's process: test_snapshot_builder has the rest
                "snapshot_processes": 0,
                **overrides,
            },
        )
        app, pipe = create_app(settings, store="memory://")
        s = pipe.settings
        pipe.output = pipe.builder.output = pipe.records.output = RecordingOutput(
            [s.snapshots_topic, s.dlq_topic, s.events_topic]
        )
        return app, pipe, pipe.output.sent[s.snapshots_topic], pipe.output.sent[s.dlq_topic]

    return make


@pytest.fixture
def pipeline(make_pipeline):
    """(app, pipeline, snapshots sent, dead letters sent) for one test."""
    return make_pipeline()
