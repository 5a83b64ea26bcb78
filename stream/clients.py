"""The Python API for producers and subscribers (see the README for a runnable walk-through).

Publishing events and following snapshots::

    from stream.clients import Producer, iterate_snapshots

    with Producer() as p:
        p.send({"user_id": "u1", "item_id": "i9", "categories": ["shoes"],
                "event_type": "click", "ts": 1764000000.0})
    for snap in iterate_snapshots(user="u1"):
        print(snap["distribution"])
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from stream.codec import decode_snapshot, pack
from stream.settings import Settings

# How long the broker may hold a fetch of ours that finds no new data. A client has one fetch
# per broker in flight and leaves out partitions whose records it still holds, so a long wait
# on quiet partitions delays the busy ones: Kafka's default (500 ms; Faust's worker 1,500 ms)
# showed up whole in event-to-snapshot latency.
FETCH_MAX_WAIT_MS = 50


class BrokerUnavailable(RuntimeError):
    """No Kafka broker answered at the configured address."""


def _bootstrap(settings: Settings) -> str:
    if not settings.bootstrap:
        raise BrokerUnavailable(
            "no Kafka broker configured: set KAFKA_BOOTSTRAP_SERVERS or run `make kafka-up`"
        )
    return settings.bootstrap


class Producer:
    """Publishes events (msgpack, keyed by user id) to the events topic.

    Parameters
    ----------
    settings
        Where to publish; ``Settings.from_env()`` when omitted.
    topic
        Overrides the settings' events topic.
    """

    def __init__(self, settings: Settings | None = None, topic: str | None = None, **kafka):
        self.settings = settings or Settings.from_env()
        self.topic = topic or self.settings.events_topic
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=_bootstrap(self.settings),
                acks=kafka.pop("acks", "all"),
                linger_ms=kafka.pop("linger_ms", 5),
                batch_size=kafka.pop("batch_size", 256 * 1024),
                retries=kafka.pop("retries", 2**31 - 1),
                **{**self.settings.kafka_client_config(), **kafka},
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"no broker answered at {self.settings.bootstrap}") from exc
        self.sent = 0
        self.closed = False

    def send(self, event: Mapping, raw: bytes | None = None, headers=None) -> None:
        """Send one event (or ``raw`` bytes keyed by the event's user id)."""
        key = str(event["user_id"]).encode()
        self._producer.send(self.topic, key=key, value=raw or pack(dict(event)), headers=headers)
        self.sent += 1

    def send_many(self, events: Iterable[Mapping]) -> int:
        n = 0
        for e in events:
            self.send(e)
            n += 1
        return n

    def flush(self, timeout: float | None = 60) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        """Send what is buffered and close; closing again does nothing."""
        if self.closed:
            return
        self._producer.flush()
        self._producer.close()
        self.closed = True

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def snapshot_consumer(
    settings: Settings,
    topic: str | None = None,
    from_beginning: bool = True,
    timeout_s: float | None = None,
    **kafka: Any,
) -> KafkaConsumer:
    """A kafka-python consumer of the snapshot topic outside any group (nothing committed),
    with the settings' security; iteration stops after ``timeout_s`` without a message."""
    options = dict(
        bootstrap_servers=_bootstrap(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000) if timeout_s else float("inf"),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        **settings.kafka_client_config(),
    )
    return KafkaConsumer(topic or settings.snapshots_topic, **{**options, **kafka})


def iterate_snapshots(
    settings: Settings | None = None,
    user: str | None = None,
    from_beginning: bool = True,
    timeout_s: float | None = None,
    topic: str | None = None,
    include_population: bool = False,
) -> Iterator[dict]:
    """Yield snapshots from the snapshot topic as they arrive (a tombstone yields
    ``{"user_id": ..., "deleted": True}``). Stops after ``timeout_s`` without a message."""
    settings = settings or Settings.from_env()
    try:
        consumer = snapshot_consumer(settings, topic, from_beginning, timeout_s)
    except KafkaError as exc:
        raise BrokerUnavailable(f"no broker answered at {settings.bootstrap}") from exc
    want = settings.user_key(user).encode() if user is not None else None
    try:
        for msg in consumer:
            if want is not None and msg.key != want:
                continue
            if msg.value is None:
                yield {"user_id": msg.key.decode(errors="replace"), "deleted": True}
                continue
            snap = decode_snapshot(msg.value)
            if not include_population and str(snap.get("user_id", "")).startswith("__"):
                continue
            snap["received_at"] = time.time()
            yield snap
    finally:
        consumer.close()
