"""Event-to-snapshot latency through the real broker (a row of ``make bench``).

Events stamped with the wall clock go to a worker at a fixed rate; a subscriber in a process
of its own measures, for every snapshot, the time from its user's latest event to its arrival.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from kafka import KafkaConsumer

from stream.clients import FETCH_MAX_WAIT_MS
from stream.codec import decode_snapshot, pack
from stream.dev.localrun import WorkerProcess
from stream.settings import Settings
from stream.topics import ensure_topics


def subscribe_latencies(bootstrap: str, topic: str, out: Path, ready: Any, stop: Any) -> None:
    """Until ``stop``: each snapshot's delay from its latest event (``ts``) to its arrival."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    latencies = []
    consumer.poll(timeout_ms=1000)  # joined: positioned at the end
    ready.set()
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            arrived = time.time()
            for msg in records:
                if not msg.key.startswith(b"__"):
                    latencies.append(arrived - decode_snapshot(msg.value)["ts"])
    consumer.close()
    out.write_text(json.dumps(latencies))


async def paced_events(bootstrap: str, topic: str, rate: float, seconds: float, users: int) -> int:
    """Send ``rate`` events/s for ``seconds``, each stamped with the wall clock when made.

    Every 2 ms the events due are appended to per-partition batches and sent whole (Kafka's
    default partitioner): a per-message Python producer at these rates took a good part of
    a core of this 2-core machine from the worker it measures."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))
        rng = random.Random(5)
        n, sent, started = int(rate * seconds), 0, time.monotonic()
        while sent < n:
            due = min(n, int((time.monotonic() - started) * rate) + 1)
            batches: dict[int, Any] = {}
            now = time.time()
            for i in range(sent, due):
                u = rng.randrange(users)
                key = f"user-{u}".encode()
                event = {
                    "user_id": f"user-{u}",
                    "item_id": f"i{i}",
                    "categories": [f"cat-{u % 300}"],
                    "event_type": "view",
                    "ts": now,
                }
                part = (murmur2(key) & 0x7FFFFFFF) % partitions
                batch = batches.setdefault(part, producer.create_batch())
                if batch.append(key=key, value=pack(event), timestamp=None) is None:
                    await producer.send_batch(batch, topic, partition=part)
                    batches[part] = batch = producer.create_batch()
                    batch.append(key=key, value=pack(event), timestamp=None)
            for part, batch in batches.items():
                await producer.send_batch(batch, topic, partition=part)
            sent = due
            await asyncio.sleep(0.002)
        await producer.flush()
    finally:
        await producer.stop()
    return n


def latency_phase(
    bootstrap: str, env: dict, workdir: Path, rate: float, seconds: float, users: int
) -> dict:
    """Events stamped with the wall clock at ``rate``/s; snapshot latency seen by a subscriber."""
    settings = Settings.from_env(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, workdir / "worker-latency.log", loglevel="info").start()
    # The subscriber is a process of its own, as a real one is: in this process it would
    # share the GIL with the producer's loop and add its own waits to the figures.
    stop, ready = multiprocessing.Event(), multiprocessing.Event()
    out = workdir / "latencies.json"
    sub = multiprocessing.Process(
        target=subscribe_latencies, args=(bootstrap, settings.snapshots_topic, out, ready, stop)
    )
    sub.start()
    ready.wait(30)
    time.sleep(1)  # the subscriber's first fetch is at the end of the topic
    n = asyncio.run(paced_events(bootstrap, settings.events_topic, rate, seconds, users))
    time.sleep(3)
    stop.set()
    sub.join(30)
    worker.stop()
    lat = sorted(json.loads(out.read_text()))

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "rate": rate,
        "events": n,
        "snapshots": len(lat),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
    }
