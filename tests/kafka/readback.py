"""Reading back what a real worker wrote: snapshot and DLQ topics."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition

from stream.clients import snapshot_consumer
from stream.codec import decode_snapshot, unpack
from stream.settings import Settings


def read_topic(bootstrap: str, topic: str, idle_s: float = 2.0) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) currently in a topic, from the beginning."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_s * 1000),
    )
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    try:
        for msg in consumer:
            yield msg.key, msg.value
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
    finally:
        consumer.close()


def wait_for_final_snapshots(
    settings: Settings, expected_counts: dict[str, int], timeout: float = 180
) -> dict[str, dict]:
    """Follow the snapshot topic until every user's latest snapshot covers all their events."""
    consumer = snapshot_consumer(settings, timeout_s=1.0)
    latest: dict[str, dict] = {}
    done = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(done) < len(expected_counts):
            for msg in consumer:
                if msg.key.startswith(b"__"):
                    continue
                if msg.value is None:  # a tombstone: the user was forgotten
                    latest.pop(msg.key.decode(), None)
                    continue
                snap = decode_snapshot(msg.value)
                uid = snap["user_id"]
                latest[uid] = snap  # a user's snapshots share a partition: offset order
                if snap["n_events"] == expected_counts.get(uid):
                    done.add(uid)
                else:  # only the latest snapshot counts
                    done.discard(uid)
                if len(done) == len(expected_counts):
                    break
    finally:
        consumer.close()
    return latest


def dead_letters(bootstrap: str, topic: str) -> list[dict]:
    return [unpack(v) for _, v in read_topic(bootstrap, topic)]
