"""The batch consumer on a real broker: its two calls into the consumer's thread (the group's
committed offsets, and unreading fetched records: a fetch position moved back, never on), and
the commit it starts once it has caught up with its input."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream.batch_consumer import committed_offsets, unread_positions
from stream.dev.bench_topics import committed_total, records_written
from stream.dev.events import user_events

pytestmark = pytest.mark.kafka

N = 60


async def _fetch(consumer: AIOKafkaConsumer, tp: TopicPartition, n: int) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(60):
        while len(got) < n:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=n - len(got))
            got += [r.offset for r in batch.get(tp, [])]
    return got


def test_unread_records_are_fetched_again_and_committed_offsets_are_read(
    kafka_bootstrap: str, topic_name: str, group_id: str
):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(N):
        producer.send(topic_name, key=b"u", value=str(i).encode())
    producer.flush()
    producer.close()
    tp = TopicPartition(topic_name, 0)

    async def scenario() -> None:
        consumer = AIOKafkaConsumer(
            topic_name,
            bootstrap_servers=kafka_bootstrap,
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(60):
                while not consumer.assignment():
                    await asyncio.sleep(0.05)
            assert await committed_offsets(consumer, [tp]) == {tp: None}
            assert await _fetch(consumer, tp, 40) == list(range(40))
            await unread_positions(consumer, {tp: 25})  # 25-39 fetched, not applied
            assert await _fetch(consumer, tp, 20) == list(range(25, 45))
            await unread_positions(consumer, {tp: 50})  # never forward: 45-49 not skipped
            assert await _fetch(consumer, tp, 5) == list(range(45, 50))
            await unread_positions(consumer, {TopicPartition(topic_name, 7): 0})  # not held
            await consumer.commit({tp: OffsetAndMetadata(50, "")})
            assert await committed_offsets(consumer, [tp]) == {tp: 50}
        finally:
            await consumer.stop()

    asyncio.run(scenario())


def test_a_worker_that_has_caught_up_commits_before_the_commit_interval(
    make_settings, make_worker, make_producer
):
    """With a 60 s commit interval, the worker's offsets reach the end of its input within
    seconds of the last event (it commits once a fetch finds nothing to read), and the
    changelog already holds every user's record the offsets cover."""
    env, settings = make_settings(INTEREST_COMMIT_INTERVAL_S="60")
    users = [f"caught-up-{i}" for i in range(20)]
    events = [e for u in users for e in user_events(u, ["shoes", "hats"] * 5, time.time() - 60)]
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        with make_worker(env):
            with make_producer(settings) as producer:
                producer.send_many(events)
            deadline = time.monotonic() + 30  # half the interval: the first tick is at 60 s
            while committed_total(admin, settings.app_id, settings.events_topic) < len(events):
                assert time.monotonic() < deadline, "the offsets waited for the commit interval"
                time.sleep(0.2)
            changelog = f"{settings.app_id}-interest-users-changelog"
            assert records_written(settings.bootstrap, changelog) >= len(users)
    finally:
        admin.close()
