"""The bench's topics: its events pre-produced, the catalog's items, and the bare consumer
that reads them as fast as the Kafka client can (the limit every row is compared with)."""

from __future__ import annotations

import contextlib
import time

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from stream.catalog import encode_item
from stream.codec import InvalidEvent, decode_event, pack
from stream.dev.events import ITEMS, interleaved_events, item_category


def make_events(
    first_user: int,
    last_user: int,
    per_user: int,
    seed: int,
    start_ts: float = 1_760_000_000.0,
    categories: str = "user",
) -> list[tuple[str, bytes]]:
    """``per_user`` msgpack events for each user in [first, last), interleaved by time
    (``stream.dev.events.interleaved_events``), keyed by user."""
    events = interleaved_events(first_user, last_user, per_user, seed, start_ts, categories)
    return [(e["user_id"], pack(e)) for e in events]


def catalog_entries() -> list[tuple[str, bytes]]:
    """The items of ``make_events`` with their categories, as records of the items topic."""
    return [(f"item-{i}", encode_item({"categories": [item_category(i)]})) for i in range(ITEMS)]


def produce(bootstrap: str, topic: str, events) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=512 * 1024,
        acks=1,
        compression_type=None,
    )
    started = time.monotonic()
    for key, value in events:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()
    return time.monotonic() - started


async def bare_consumer_rate(bootstrap: str, topic: str, total: int) -> float:
    """Events/s of a consumer that only fetches and decodes+validates (the limit)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    n = 0
    started = time.monotonic()
    now = time.time()
    try:
        while n < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for r in records:
                    with contextlib.suppress(InvalidEvent):
                        decode_event(r.value, None, now=now)
                    n += 1
    finally:
        await consumer.stop()
    return n / (time.monotonic() - started)


def committed_total(admin: KafkaAdminClient, group: str, topic: str) -> int:
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    return sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0)


def records_written(bootstrap: str, topic: str) -> int:
    """How many records were ever written to ``topic`` (the sum of its partitions' end
    offsets: compaction does not lower them)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()
