"""The output path's partitioner: the same partition as Kafka's default partitioner."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from stream.output import PARTITION_MEMO, Output, murmur2

pytestmark = pytest.mark.unit


def test_murmur2_equals_the_kafka_clients_for_every_key_length():
    rng = random.Random(0)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(64) for _ in range(20)]
    keys += [f"user-{i}".encode() for i in range(2_000)] + ["ü-é-中".encode()]
    for key in keys:
        assert murmur2(key) & 0x7FFFFFFF == aiokafka_murmur2(key) & 0x7FFFFFFF, key


class _Cluster:
    def __init__(self, counts):
        self.counts, self.asked = counts, 0

    def partitions_for_topic(self, topic):
        self.asked += 1
        n = self.counts.get(topic)
        return set(range(n)) if n else None


class _App:
    """What ``Output`` reads of a Faust app: its producer's aiokafka client's metadata."""

    def __init__(self, counts):
        client = type("Client", (), {})()
        client.cluster = _Cluster(counts)
        client.add_topic = lambda topic: None
        producer = type("Producer", (), {"client": client})()
        self.producer = type("FaustProducer", (), {"_ensure_producer": lambda _: producer})()
        self.cluster = client.cluster


def test_partition_for_remembers_keys_and_stays_kafkas_partition():
    app = _App({"snaps": 8})
    out = Output(app, partitions=4)
    keys = [f"user-{i}".encode() for i in range(PARTITION_MEMO + 500)]
    first = [out.partition_for("snaps", k) for k in keys]
    again = [out.partition_for("snaps", k) for k in keys]
    expected = [(aiokafka_murmur2(k) & 0x7FFFFFFF) % 8 for k in keys]
    assert first == again == expected
    assert app.cluster.asked == 1  # the count is read once per topic
    assert 0 < len(out._memo["snaps"]) <= PARTITION_MEMO  # bounded


def test_partition_for_does_not_remember_a_guessed_partition_count():
    app = _App({})  # no metadata yet: the project's default count is used meanwhile
    out = Output(app, partitions=4)
    key = b"user-7"
    assert out.partition_for("late", key) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 4
    app.cluster.counts["late"] = 6  # the topic turns out to have 6
    assert out.partition_for("late", key) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 6


def _building_output(topic: str, partitions: int, batch_size: int) -> tuple[Output, list]:
    """An ``Output`` whose batches are real aiokafka builders of ``batch_size`` bytes, kept in
    the list returned beside it."""
    app, batches = _App({topic: partitions}), []

    def create_batch():
        batches.append(BatchBuilder(batch_size, 0))
        return batches[-1]

    app.producer._ensure_producer().create_batch = create_batch
    return Output(app, partitions=partitions), batches


def test_a_null_header_value_is_written_as_null():
    """aiokafka reads a header without a value as None; a record re-keyed with it keeps it."""
    out, batches = _building_output("events", 4, batch_size=16_384)
    out.add("events", b"u1", b"v", 0, headers=[("trace", None), ("content-type", b"x")])
    (record,) = DefaultRecordBatch(bytes(batches[0]._build()))
    assert record.headers == [("trace", None), ("content-type", b"x")]


def test_settle_waits_for_the_broker_to_take_the_output_and_no_longer_than_asked():
    async def run() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        app, acks = _App({"snaps": 1}), []

        async def send_batch(builder, topic, partition):
            acks.append(loop.create_future())  # resolved when the broker has the batch
            return acks[-1]

        producer = app.producer._ensure_producer()
        producer.create_batch, producer.send_batch = lambda: BatchBuilder(16_384, 0), send_batch
        out = Output(app, partitions=1)
        out.add("snaps", b"u1", b"v", 0)
        await out.send_behind()
        loop.call_later(0.01, lambda: acks[0].set_result(SimpleNamespace(offset=0)))
        await out.settle(5.0)
        first_taken = acks[0].done()
        out.add("snaps", b"u2", b"v", 0)
        await out.send_behind()  # this one is never acknowledged
        start = loop.time()
        await out.settle(0.05)
        return first_taken, acks[1].done(), loop.time() - start

    first_taken, second_taken, waited = asyncio.run(run())
    assert first_taken and not second_taken
    assert 0.04 <= waited < 1.0


def test_add_many_fills_batches_in_order_and_counts_every_record():
    """Records of one partition handed over together: a full batch is put aside and a new one
    started, the order kept across them, the counts each batch's own."""
    out, batches = _building_output("log", 2, batch_size=1_024)
    records = [(f"u{i}".encode(), bytes(100)) for i in range(25)]
    out.add_many("log", 1, records[:20])
    out.add("log", b"u20", bytes(100), 1)
    out.add_many("log", 1, records[21:])
    out.add_many("log", 0, [])  # nothing: no batch opened for it
    assert out.records == 25 and ("log", 0) not in out._open
    queued = [(t, p, n) for t, p, _, n in out._full] + [
        (t, p, n) for (t, p), (_, n) in out._open.items()
    ]
    assert len(queued) > 2 and {(t, p) for t, p, _ in queued} == {("log", 1)}
    assert sum(n for _, _, n in queued) == 25
    written = [r.key for b in batches for r in DefaultRecordBatch(bytes(b._build()))]
    assert written == [k for k, _ in records]
