"""Hostile input: 10,000 random and mutated payloads through the ingest agent.

Every one ends in the DLQ with a reason, memory stays bounded, and the valid events
interleaved with them are all applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.codec import REASONS, pack, unpack
from tests.agent.conftest import AGENT, scripted_events

pytestmark = pytest.mark.agent
N_HOSTILE = 10_000

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def mutate(rng: random.Random, good: bytes) -> bytes:
    """Truncate, flip, splice or extend valid msgpack, or build something nasty outright."""
    kind = rng.randrange(9)
    if kind == 0:
        return good[: rng.randrange(len(good))]
    if kind == 1:
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:
        return b"\x91" * rng.randint(1000, 20_000) + b"\xc0"  # deep nesting
    if kind == 3:
        return b"\xdd\xff\xff\xff\xff"  # an array claiming 4 billion items
    if kind == 4:
        return b"\xa5" + bytes(rng.randrange(128, 256) for _ in range(5))  # invalid UTF-8 str
    if kind == 5:
        return pack(
            {
                "user_id": "x" * rng.randint(300, 80_000),
                "item_id": 1,
                "categories": ["c"],
                "event_type": "view",
                "ts": 1.0,
            }
        )  # giant strings
    if kind == 6:
        return pack(
            {
                "user_id": "u",
                "item_id": 1,
                "categories": list(range(100_000)),
                "event_type": "view",
                "ts": 1.0,
            }
        )  # huge array
    if kind == 7:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return good + good  # trailing data


def is_valid(payload: bytes) -> bool:
    """Whether a payload happens to decode to a valid event (a mutation can be harmless)."""
    from stream.codec import InvalidEvent, decode_event

    try:
        decode_event(payload, now=2e9)
        return True
    except InvalidEvent:
        return False


@pytest.fixture
def hostile_payloads() -> list[bytes]:
    rng = random.Random(2024)
    goods = [pack(e) for e in scripted_events(50)]
    out: list[bytes] = []

    @settings(
        max_examples=2000, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(json_like)
    def collect(value):
        out.append(msgpack.packb(value, use_bin_type=True))

    collect()
    while len(out) < N_HOSTILE:
        out.append(mutate(rng, rng.choice(goods)))
    rng.shuffle(out)
    return [p for p in out[:N_HOSTILE] if not is_valid(p)]


def test_hostile_payloads_all_reach_the_dlq_and_valid_events_are_applied(
    pipeline, hostile_payloads
):
    app, pipe, _, _ = pipeline
    dead: list[tuple[str, str]] = []  # (reason, digest of the original): keeps the heap honest

    def dlq_send(key, value):
        record = unpack(value)
        dead.append((record["reason"], hashlib.sha1(record["original"]).hexdigest()))

    pipe.output.hooks[pipe.settings.dlq_topic] = dlq_send
    valid = scripted_events(500, users=20, seed=3)
    rng = random.Random(9)
    total = len(hostile_payloads) + len(valid)
    valid_at = set(rng.sample(range(total), len(valid)))
    hostile, good = iter(hostile_payloads), iter(valid)
    stream = []
    for i in range(total):
        if i in valid_at:  # valid events interleaved at random places, in their order
            e = next(good)
            stream.append((e["user_id"].encode(), pack(e)))
        else:
            stream.append((b"hostile", next(hostile)))

    tracemalloc.start()

    async def run():
        async with app.agents[AGENT].test_context() as agent:
            for i, (key, value) in enumerate(stream):
                await agent.put(key=key, value=value)
                if i == len(stream) // 10:
                    run.base = tracemalloc.get_traced_memory()[0]
            await asyncio.sleep(0.3)

    asyncio.run(run())
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(dead) == len(hostile_payloads)
    assert all(reason in REASONS and reason != "internal-error" for reason, _ in dead)
    assert [d for _, d in dead] == [hashlib.sha1(p).hexdigest() for p in hostile_payloads]
    assert pipe.counters.applied == len(valid)
    for uid in {e["user_id"] for e in valid}:
        n = sum(e["user_id"] == uid for e in valid)
        assert pipe.user_record(uid).n_events == n
    # bounded: what the worker keeps after the stream grew by < 16 MiB over its first tenth
    grew = retained - run.base
    assert grew < 16 * 2**20, f"memory grew by {grew / 2**20:.0f} MiB"
