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


@pytest.fixture
def pipeline():
    """(app, pipeline, snapshots sent, dead letters sent) for one test."""
    settings = Settings(
        bootstrap="127.0.0.1:1", app_id="agent-test", min_interval_s=0.0, batch=64, batch_ms=5.0
    )
    app, pipe = create_app(settings, store="memory://")
    snapshots, dead = [], []
    pipe.snapshots.send_soon = lambda key, value, **kw: snapshots.append((key, value))

    async def dlq_send(key=None, value=None, **kw):
        dead.append((key, value))

    pipe.dlq.send = dlq_send
    return app, pipe, snapshots, dead
