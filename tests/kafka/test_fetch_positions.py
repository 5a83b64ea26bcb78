"""The batch consumer's two calls into the consumer's thread, on a real broker: the group's
committed offsets, and unreading fetched records (a fetch position moved back, never on)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream.batch_consumer import committed_offsets, unread_positions

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
