"""A first real round trip: kafka-python produces, aiokafka consumes, nothing lost or reordered."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import msgpack
import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.kafka

N_EVENTS = 10_000
N_PARTITIONS = 4


def _events(n: int) -> list[dict]:
    rng = random.Random(7)
    seq: Counter = Counter()
    out = []
    for i in range(n):
        user = f"u{rng.randrange(300)}"
        seq[user] += 1
        out.append(
            {
                "user_id": user,
                "item_id": rng.randrange(10**6),
                "categories": [f"c{rng.randrange(50)}" for _ in range(rng.randint(1, 3))],
                "event_type": rng.choice(["view", "click", "cart", "fav", "purchase"]),
                "ts": 1_700_000_000 + i * 0.5,
                "id": i,
                "seq": seq[user],
            }
        )
    return out


async def _consume_all(bootstrap: str, topic: str, group: str, n: int) -> list[tuple[int, dict]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        value_deserializer=lambda b: msgpack.unpackb(b, raw=False),
    )
    await consumer.start()
    got: list[tuple[int, dict]] = []
    try:
        async with asyncio.timeout(120):
            while len(got) < n:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp, records in batches.items():
                    got.extend((tp.partition, r.value) for r in records)
        # Anything beyond n would be a duplicate: give it a moment to show up.
        extra = await consumer.getmany(timeout_ms=1500)
        got.extend((tp.partition, r.value) for tp, rs in extra.items() for r in rs)
    finally:
        await consumer.stop()
    return got


def test_10k_msgpack_events_round_trip(kafka_bootstrap: str, topic_name: str, group_id: str):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic_name, N_PARTITIONS, 1)])
    admin.close()

    events = _events(N_EVENTS)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        key_serializer=str.encode,
        value_serializer=lambda v: msgpack.packb(v, use_bin_type=True),
        acks="all",
        linger_ms=5,
    )
    for e in events:
        producer.send(topic_name, key=e["user_id"], value=e)
    producer.flush()
    producer.close()

    got = asyncio.run(_consume_all(kafka_bootstrap, topic_name, group_id, N_EVENTS))

    assert len(got) == N_EVENTS
    by_id = {v["id"]: v for _, v in got}
    assert len(by_id) == N_EVENTS, "an event arrived more than once"
    assert all(by_id[e["id"]] == e for e in events), "an event's content changed"
    partitions_of: dict[str, set[int]] = defaultdict(set)
    per_user: dict[str, list[int]] = defaultdict(list)
    for partition, v in got:
        partitions_of[v["user_id"]].add(partition)
        per_user[v["user_id"]].append(v["seq"])
    assert all(len(p) == 1 for p in partitions_of.values()), "a key spread over partitions"
    assert all(s == sorted(s) for s in per_user.values()), "per-key order was not preserved"
    assert len({p for ps in partitions_of.values() for p in ps}) == N_PARTITIONS
