"""The Python client's own behaviour around the Kafka client, with kafka-python's producer and
consumer replaced by recorders (the broker round trip is the kafka tier's): bad records on the
snapshot topic are skipped and named, failed deliveries are raised, bad arguments are refused."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from stream import clients
from stream.clients import DeliveryFailed, Producer, iterate_snapshots
from stream.codec import encode_snapshot, pack
from stream.settings import Settings

pytestmark = pytest.mark.unit

SETTINGS = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})


def record(key: bytes | None, value: bytes | None, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="snaps", partition=0, offset=offset, key=key, value=value)


class FakeConsumer:
    def __init__(self, records: list, options: dict):
        self.records, self.options, self.closed = records, options, False

    def __iter__(self):
        return iter(self.records)

    def close(self):
        self.closed = True


@pytest.fixture
def topic(monkeypatch):
    """The records the next snapshot consumer reads, and the consumers made."""
    made: list[FakeConsumer] = []
    records: list = []

    def consumer(*topics, **options):
        made.append(FakeConsumer(records, options))
        return made[-1]

    monkeypatch.setattr(clients, "KafkaConsumer", consumer)
    return SimpleNamespace(records=records, made=made)


def snapshot(uid: str, version: int = 1) -> dict:
    return {"user_id": uid, "version": version, "distribution": {"a": 1.0}}


def test_unreadable_records_are_named_and_skipped_and_reading_goes_on(topic, caplog):
    topic.records += [
        record(b"u1", b"\xc1garbage", 0),
        record(b"u2", b'{"user_id": "u2", "version": ', 1),  # JSON cut short
        record(b"u3", pack([1, 2, 3]), 2),  # msgpack, but not a map
        record(b"u4", encode_snapshot(snapshot("u4")), 3),
        record(b"u5", encode_snapshot(snapshot("u5"), "json"), 4),
    ]
    with caplog.at_level(logging.WARNING, logger="stream.clients"):
        got = list(iterate_snapshots(SETTINGS, timeout_s=1))
    assert [s["user_id"] for s in got] == ["u4", "u5"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3 and all(
        "unreadable snapshot record at snaps[0]@" in m for m in skipped
    )
    assert "@2 (key b'u3'): a list, not a snapshot map" in skipped[2]
    assert topic.made[0].closed


def test_population_records_are_told_by_their_key_not_by_a_leading_underscore(topic):
    population = {"user_id": "__population__/p0", "distribution": {"a": 1.0}, "n_events": 3}
    topic.records += [
        record(b"__alice", encode_snapshot(snapshot("__alice")), 0),
        record(b"__population__/p0", encode_snapshot(population), 1),
        record(b"__population__/p1", None, 2),  # a population tombstone
        record(b"u1", None, 3),  # a forgotten user
    ]
    plain = list(iterate_snapshots(SETTINGS, timeout_s=1))
    assert [(s["user_id"], "deleted" in s) for s in plain] == [("__alice", False), ("u1", True)]
    every = list(iterate_snapshots(SETTINGS, timeout_s=1, include_population=True))
    assert [s["user_id"] for s in every] == [
        "__alice",
        "__population__/p0",
        "__population__/p1",
        "u1",
    ]


def test_an_int_user_is_keyed_as_the_worker_keys_it(topic):
    topic.records += [
        record(b"70", encode_snapshot(snapshot("70")), 0),
        record(b"7", encode_snapshot(snapshot("7", 4)), 1),
    ]
    assert [s["version"] for s in iterate_snapshots(SETTINGS, user=7, timeout_s=1)] == [4]


def test_timeouts(topic):
    list(iterate_snapshots(SETTINGS, timeout_s=0))
    list(iterate_snapshots(SETTINGS))
    assert [c.options["consumer_timeout_ms"] for c in topic.made] == [0, float("inf")]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout_s must be a finite number"):
            list(iterate_snapshots(SETTINGS, timeout_s=bad))
    assert len(topic.made) == 2  # refused before a consumer was made


class FakeProducer:
    def __init__(self, **options):
        self.sent: list[tuple] = []
        self.futures: list[Future] = []
        self.closed = False

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value))
        self.futures.append(Future())
        return self.futures[-1]

    def flush(self, timeout=None):
        for i, future in enumerate(self.futures):
            if future.is_done:
                continue
            if i % 3 == 2:  # the broker refuses every third one
                future.failure(KafkaTimeoutError("expired"))
            else:
                future.success(i)

    def close(self, timeout=None):
        self.closed = True


@pytest.fixture
def producer(monkeypatch):
    monkeypatch.setattr(clients, "KafkaProducer", FakeProducer)
    return Producer(SETTINGS, topic="events")


EVENT = {"user_id": 7, "item_id": "i", "categories": ["a"], "event_type": "view", "ts": 1.0}


def test_deliveries_the_broker_refused_are_raised_once_by_flush(producer):
    for _ in range(3):
        producer.send(EVENT)
    with pytest.raises(DeliveryFailed, match="1 of the events sent were not delivered to events"):
        producer.flush()
    producer.send(EVENT)
    producer.flush()  # the new one was delivered; the old failure is not raised again
    assert producer.sent == 4 and len(producer.failures) == 1


def test_close_raises_lost_deliveries_and_still_closes(producer):
    for _ in range(3):
        producer.send(EVENT)
    with pytest.raises(DeliveryFailed):
        producer.close()
    assert producer.closed and producer._producer.closed
    producer.close()  # closing again does nothing


def test_what_is_sent_and_what_is_refused_before_sending(producer):
    producer.send(EVENT)
    producer.send(EVENT, raw=b"")  # an empty value is sent as given
    (_, key, value), (_, _, empty) = producer._producer.sent
    assert key == b"7" and value == pack(EVENT) and empty == b""
    with pytest.raises(TypeError, match="a mapping of its fields, not list"):
        producer.send([EVENT])
    with pytest.raises(ValueError, match="no user_id"):
        producer.send({k: v for k, v in EVENT.items() if k != "user_id"})
    assert producer.sent == 2  # nothing more was sent
