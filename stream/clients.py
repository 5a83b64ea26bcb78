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

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from models.schema import POPULATION_PREFIX
from stream.codec import decode_snapshot, pack
from stream.settings import Settings

log = logging.getLogger(__name__)

# How long the broker may hold a fetch of ours that finds no new data. A client has one fetch
# per broker in flight and leaves out partitions whose records it still holds, so a long wait
# on quiet partitions delays the busy ones: Kafka's default (500 ms; Faust's worker 1,500 ms)
# showed up whole in event-to-snapshot latency.
FETCH_MAX_WAIT_MS = 50


class BrokerUnavailable(RuntimeError):
    """No Kafka broker answered at the configured address.

    The commands report it on one line with exit status 1 (``stream.cli.common``):

    >>> import contextlib, sys
    >>> from stream.cli.common import reporting
    >>> follow = reporting(lambda args: list(iterate_snapshots(Settings(bootstrap=None))), "demo")
    >>> with contextlib.redirect_stderr(sys.stdout):  # the one line it prints on stderr
    ...     status = follow(None)
    demo: error: no Kafka broker configured: set KAFKA_BOOTSTRAP_SERVERS or run `make kafka-up`
    >>> status
    1
    """


class DeliveryFailed(RuntimeError):
    """The broker did not take some of the events sent (``Producer.flush`` and ``close``).

    Only a broker can refuse a delivery, so there is nothing of it to run here; what matters
    to a caller is that it is not :class:`BrokerUnavailable` (nothing sent at all):

    >>> issubclass(DeliveryFailed, BrokerUnavailable), issubclass(DeliveryFailed, RuntimeError)
    (False, True)
    """


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

    Examples
    --------
    Without a broker address nothing is started (the module docstring shows sending):

    >>> Producer(Settings(bootstrap=None))
    Traceback (most recent call last):
    ...
    stream.clients.BrokerUnavailable: no Kafka broker configured: set KAFKA_BOOTSTRAP_SERVERS ...
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
        self.failures: list[Exception] = []  # deliveries the broker refused or timed out
        self._reported = 0  # failures already raised by flush
        self.closed = False

    def send(self, event: Mapping, raw: bytes | None = None, headers=None) -> None:
        """Send one event (or ``raw`` bytes keyed by the event's user id). The worker
        validates it; one it refuses goes to the dead-letter topic with the reason. A delivery
        that fails is raised by the next ``flush`` or ``close``."""
        if not isinstance(event, Mapping):
            raise TypeError(f"an event is a mapping of its fields, not {type(event).__name__}")
        if event.get("user_id") is None:
            raise ValueError("the event has no user_id: it keys the message")
        key = str(event["user_id"]).encode()
        value = raw if raw is not None else pack(dict(event))
        future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        future.add_errback(self.failures.append)
        self.sent += 1

    def send_many(self, events: Iterable[Mapping]) -> int:
        n = 0
        for e in events:
            self.send(e)
            n += 1
        return n

    def flush(self, timeout: float | None = 60) -> None:
        """Wait until every event sent is delivered or has failed; :class:`DeliveryFailed`
        when any failed since the last flush."""
        self._producer.flush(timeout)
        new = self.failures[self._reported :]
        self._reported = len(self.failures)
        if new:
            raise DeliveryFailed(
                f"{len(new)} of the events sent were not delivered to {self.topic}: {new[0]!r}"
            )

    def close(self, timeout: float | None = 60) -> None:
        """Send what is buffered and close (raising as ``flush`` does); closing again does
        nothing."""
        if self.closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout)
            self.closed = True

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # an error is on its way out already: report lost deliveries beside it
            self.close()
        except DeliveryFailed as lost:
            log.error("%s", lost)


def snapshot_consumer(
    settings: Settings,
    topic: str | None = None,
    from_beginning: bool = True,
    timeout_s: float | None = None,
    **kafka: Any,
) -> KafkaConsumer:
    """A kafka-python consumer of the snapshot topic outside any group (nothing committed),
    with the settings' security; iteration stops after ``timeout_s`` without a message (None:
    never)."""
    if timeout_s is not None and not (timeout_s >= 0 and math.isfinite(timeout_s)):
        raise ValueError(f"timeout_s must be a finite number of seconds >= 0, not {timeout_s!r}")
    options = dict(
        bootstrap_servers=_bootstrap(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=float("inf") if timeout_s is None else int(timeout_s * 1000),
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
    ``{"user_id": ..., "deleted": True}``); ``include_population``: the partitions' population
    records too (keys ``__population__/p<N>``). A record that is not a readable snapshot is
    logged (topic, partition, offset, key) and skipped. Stops after ``timeout_s`` without a
    message."""
    settings = settings or Settings.from_env()
    want = settings.stored_user_id(str(user)).encode() if user is not None else None
    try:
        consumer = snapshot_consumer(settings, topic, from_beginning, timeout_s)
    except KafkaError as exc:
        raise BrokerUnavailable(f"no broker answered at {settings.bootstrap}") from exc
    population = POPULATION_PREFIX.encode()
    try:
        for msg in consumer:
            key = msg.key or b""
            if want is not None and key != want:
                continue
            if key.startswith(population) and not include_population:
                continue
            if msg.value is None:
                yield {"user_id": key.decode(errors="replace"), "deleted": True}
                continue
            snap = _readable_snapshot(msg)
            if snap is not None:
                snap["received_at"] = time.time()
                yield snap
    finally:
        consumer.close()


def _readable_snapshot(msg: Any) -> dict | None:
    """The snapshot a record holds; None (logged) when it holds none."""
    try:
        snap = decode_snapshot(msg.value)
        if isinstance(snap, dict) and "user_id" in snap:
            return snap
        problem = f"a {type(snap).__name__}, not a snapshot map"
    except Exception as exc:  # what msgpack and json raise on bytes they cannot read
        problem = f"{type(exc).__name__}: {exc}"[:200]
    log.warning(
        "skipped an unreadable snapshot record at %s[%s]@%s (key %r): %s",
        msg.topic,
        msg.partition,
        msg.offset,
        msg.key,
        problem,
    )
    return None
