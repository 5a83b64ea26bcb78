"""Event-to-snapshot latency through the real broker (a row of ``make bench``).

Events stamped with the wall clock go to a worker at a fixed rate; a subscriber in a process
of its own measures, for every snapshot, the time from its user's latest event to its arrival,
and splits it at the snapshot's ``emitted_at`` (when the worker built it): the time to the
build (the queue before the worker and its batch so far), and the time after it (the rest of
the batch, the producer, the broker's append, the subscriber's fetch). A snapshot that covers
several events (the emission policy coalesces a user's events) is measured from the latest;
the per-event figures measure every event, from its own time to the first snapshot that
counts it (the snapshot's ``n_events``), so an event that waited for a later one counts too.

The subscriber reads with aiokafka (records parsed in C) and ``decode_snapshot``. On this
project's 2-core bench machine it shares the cores with the worker, the producer and the
broker, and a pure-Python client (kafka-python, which ``stream.clients`` uses) parsing
~15,000 snapshots/s took a quarter of a core and added its own queue to the figures;
``subscriber="kafka-python"`` measures with it still (a row of the bench, see
``docs/RESULTS.md``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer

from stream.clients import FETCH_MAX_WAIT_MS
from stream.codec import decode_snapshot, pack
from stream.dev.localrun import WorkerProcess
from stream.dev.proc_cpu import core_waits_seconds, thread_cpu_seconds
from stream.dev.pyspy import profile, stop_profile
from stream.output import murmur2
from stream.settings import Settings
from stream.topics import ensure_topics

SUBSCRIBERS = ("aiokafka", "kafka-python")
# The producer's pace. Each send is a produce request, and on the loopback a request's
# socket write costs the sender the broker's side of TCP too: at 14,800 events/s the
# producer took 0.26 of a core sending every 2 ms, 0.19 every 5 ms, 0.14 every 10 ms
# (docs/RESULTS.md). Events are stamped when made, just before their send, so the pace
# adds nothing to the delays measured.
SEND_EVERY_S = 0.01


def subscribe_latencies(
    bootstrap: str, topic: str, out: Path, ready: Any, stop: Any, client: str = "aiokafka"
) -> None:
    """Until ``stop``: each snapshot's delay from its latest event (``ts``) to its arrival,
    read with ``client`` (one of ``SUBSCRIBERS``).

    Python's cyclic garbage collector is off in this process: its full collections over the
    growing list of observations paused the subscriber for 117-207 ms several times a run,
    and the snapshots that arrived meanwhile were stamped late, counted as the worker's
    latency (docs/RESULTS.md). Nothing kept here forms a cycle; reference counting frees
    the rest."""
    gc.disable()
    if client == "kafka-python":
        latencies = _kafka_python_latencies(bootstrap, topic, ready, stop)
    else:
        latencies = asyncio.run(_aiokafka_latencies(bootstrap, topic, ready, stop))
    out.write_text(json.dumps(latencies))


def _observe(records: Any, arrived: float, latencies: list[tuple]) -> None:
    """Per user snapshot: ``(user, n_events, arrival, emitted_at, ts)`` (``snapshot_delays``
    and ``event_delays`` make the figures of them)."""
    for msg in records:
        if not msg.key.startswith(b"__"):  # not the population's snapshots
            snapshot = decode_snapshot(msg.value)
            latencies.append(
                (
                    msg.key.decode(),
                    snapshot["n_events"],
                    arrived,
                    snapshot.get("emitted_at", arrived),
                    snapshot["ts"],
                )
            )


def snapshot_delays(seen: list[list]) -> list[tuple[float, float]]:
    """Per snapshot: its whole delay from the user's latest event, and the part before the
    worker built it (the rest is the batch's end, the producer, the broker and the fetch).

    >>> snapshot_delays([["u", 2, 10.5, 10.2, 10.0]])
    [(0.5, 0.2)]
    """
    return [(arrived - ts, emitted - ts) for _, _, arrived, emitted, ts in seen]


def event_delays(seen: list[list], sent: dict[str, list[float]]) -> list[float]:
    """Per event sent (``sent``: each user's event times in order): the time to the arrival
    of the first snapshot that counts it; events no snapshot counted are left out.

    >>> sent = {"u": [1.0, 2.0, 3.0]}
    >>> event_delays([["u", 2, 2.5, 2.4, 2.0], ["u", 3, 3.1, 3.0, 3.0]], sent)
    [1.5, 0.5, 0.1...]
    """
    out: list[float] = []
    done: dict[str, int] = {}
    for user, n, arrived, _, _ in sorted(seen, key=lambda s: s[2]):
        times = sent.get(user, [])
        first, last = done.get(user, 0), min(n, len(times))
        out.extend(arrived - t for t in times[first:last])
        done[user] = max(first, last)
    return out


async def _aiokafka_latencies(bootstrap: str, topic: str, ready: Any, stop: Any) -> list[tuple]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    latencies: list[tuple] = []
    try:
        await consumer.getmany(timeout_ms=1000)  # positioned at the end
        ready.set()
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for records in fetched.values():
                _observe(records, arrived, latencies)
    finally:
        await consumer.stop()
    return latencies


def _kafka_python_latencies(bootstrap: str, topic: str, ready: Any, stop: Any) -> list[tuple]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    latencies: list[tuple] = []
    consumer.poll(timeout_ms=1000)  # joined: positioned at the end
    ready.set()
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            _observe(records, time.time(), latencies)
    consumer.close()
    return latencies


async def paced_events(
    bootstrap: str, topic: str, rate: float, seconds: float, users: int
) -> dict[str, list[float]]:
    """Send ``rate`` events/s for ``seconds``, each stamped with the wall clock when made;
    returns each user's event times, in order.

    Every ``SEND_EVERY_S`` the events due are made, appended to per-partition batches and
    sent whole (Kafka's default partitioner, each user's partition computed once): the
    producer shares this 2-core machine with the worker it measures, so it must take as
    little of it as it can (a per-message producer took a good part of a core; a batch
    builder made per event and a pure-Python murmur2 per event still took a quarter of one
    at 10,500 events/s)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))
        keys = [f"user-{u}".encode() for u in range(users)]
        parts = [(murmur2(key) & 0x7FFFFFFF) % partitions for key in keys]
        rng = random.Random(5)
        times: dict[str, list[float]] = {f"user-{u}": [] for u in range(users)}
        n, sent, started = int(rate * seconds), 0, time.monotonic()
        while sent < n:
            due = min(n, int((time.monotonic() - started) * rate) + 1)
            batches: dict[int, Any] = {}
            now = time.time()
            for i in range(sent, due):
                u = rng.randrange(users)
                event = {
                    "user_id": f"user-{u}",
                    "item_id": f"i{i}",
                    "categories": [f"cat-{u % 300}"],
                    "event_type": "view",
                    "ts": now,
                }
                times[event["user_id"]].append(now)
                part, key, value = parts[u], keys[u], pack(event)
                batch = batches.get(part)
                if batch is None:
                    batch = batches[part] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await producer.send_batch(batch, topic, partition=part)
                    batches[part] = batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for part, batch in batches.items():
                await producer.send_batch(batch, topic, partition=part)
            sent = due
            await asyncio.sleep(SEND_EVERY_S)
        await producer.flush()
    finally:
        await producer.stop()
    return times


def latency_phase(
    bootstrap: str,
    env: dict,
    workdir: Path,
    rate: float,
    seconds: float,
    users: int,
    subscriber: str = "aiokafka",
    profile_to: Path | None = None,
) -> dict:
    """Events stamped with the wall clock at ``rate``/s; snapshot latency seen by a
    ``subscriber`` (one of ``SUBSCRIBERS``); a py-spy profile of the worker while they are
    sent to ``profile_to``, if given."""
    if subscriber not in SUBSCRIBERS:
        raise ValueError(f"subscriber must be one of {SUBSCRIBERS}, not {subscriber!r}")
    settings = Settings.from_env(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, workdir / "worker-latency.log", loglevel="info").start()
    # The subscriber is a process of its own, as a real one is: in this process it would
    # share the GIL with the producer's loop and add its own waits to the figures.
    stop, ready = multiprocessing.Event(), multiprocessing.Event()
    out = workdir / "latencies.json"
    sub = multiprocessing.Process(
        target=subscribe_latencies,
        args=(bootstrap, settings.snapshots_topic, out, ready, stop, subscriber),
    )
    sub.start()
    ready.wait(30)
    time.sleep(1)  # the subscriber's first fetch is at the end of the topic
    spy = profile(worker.pid, profile_to) if profile_to else None
    waits_before = core_waits_seconds(worker.pid)
    cpu_before, started = thread_cpu_seconds(worker.pid), time.monotonic()
    sent = asyncio.run(paced_events(bootstrap, settings.events_topic, rate, seconds, users))
    cpu_after, seconds_sent = thread_cpu_seconds(worker.pid), time.monotonic() - started
    waits = core_waits(waits_before, core_waits_seconds(worker.pid))
    if spy:
        stop_profile(spy)
    cpu = paced_cpu(cpu_before, cpu_after, worker.pid, seconds_sent)
    time.sleep(3)
    stop.set()
    sub.join(30)
    worker.stop()
    seen = json.loads(out.read_text())
    pairs = snapshot_delays(seen)
    total, built = sorted(p[0] for p in pairs), sorted(p[1] for p in pairs)
    after = sorted(p[0] - p[1] for p in pairs)
    per_event = sorted(event_delays(seen, sent))
    events = sum(len(t) for t in sent.values())
    return {
        "rate": rate,
        "events": events,
        "snapshots": len(total),
        # every event, to the first snapshot that counts it (coalesced ones included)
        "events_measured": len(per_event),
        "event_p50_ms": quantile_ms(per_event, 0.50),
        "event_p95_ms": quantile_ms(per_event, 0.95),
        "event_p99_ms": quantile_ms(per_event, 0.99),
        "p50_ms": quantile_ms(total, 0.50),
        "p95_ms": quantile_ms(total, 0.95),
        "p99_ms": quantile_ms(total, 0.99),
        # the same snapshots' delays split at emitted_at: to the worker's build, and after it
        "built_p50_ms": quantile_ms(built, 0.50),
        "built_p99_ms": quantile_ms(built, 0.99),
        "after_p50_ms": quantile_ms(after, 0.50),
        "after_p99_ms": quantile_ms(after, 0.99),
        # the worker's CPU while the events were sent (its backlog at the end excluded)
        "main_thread_share": cpu["main"] / cpu["seconds"],
        "main_thread_us_per_event": cpu["main"] / max(events, 1) * 1e6,
        "worker_us_per_event": cpu["all"] / max(events, 1) * 1e6,
        # shares of the time the events were sent: the worker's main thread runnable but
        # waiting for a core, and some task on the machine waiting for one (None: unknown)
        "main_thread_waited_share": None if waits[0] is None else waits[0] / seconds_sent,
        "cpu_pressure_share": None if waits[1] is None else waits[1] / seconds_sent,
    }


def core_waits(
    before: tuple[float | None, float | None], after: tuple[float | None, float | None]
) -> tuple[float | None, ...]:
    """The seconds waited for a core between two ``core_waits_seconds`` readings, each None
    where it is unknown.

    >>> core_waits((1.5, 10.0), (2.0, 12.5)), core_waits((None, 1.0), (None, 1.25))
    ((0.5, 2.5), (None, 0.25))
    """
    pairs = zip(before, after, strict=True)
    return tuple(None if a is None or b is None else b - a for a, b in pairs)


def paced_cpu(before: dict[int, float], after: dict[int, float], pid: int, seconds: float) -> dict:
    """The CPU seconds a worker's main thread (``pid``'s own) and all its threads spent
    between two ``thread_cpu_seconds`` readings ``seconds`` apart.

    >>> paced_cpu({7: 1.0, 8: 0.5}, {7: 1.5, 8: 0.75, 9: 0.25}, 7, 2.0)  # thread 9 is new
    {'main': 0.5, 'all': 1.0, 'seconds': 2.0}
    """
    spent = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    return {"main": spent.get(pid, 0.0), "all": sum(spent.values()), "seconds": seconds}


def median_run(runs: list[dict], key: str = "event_p99_ms") -> dict:
    """Of several ``latency_phase`` results, the run whose ``key`` is the median (of an even
    number, the lower of the middle two), with every run's ``p99_ms``, ``event_p99_ms`` and
    ``main_thread_waited_share`` beside it in run order (``runs_p99_ms``,
    ``runs_event_p99_ms``, ``runs_main_thread_waited_share``); one run as it is.

    >>> runs = [{"p99_ms": p, "event_p99_ms": p + 10} for p in (300.0, 1100.0, 190.0)]
    >>> r = median_run(runs); r["event_p99_ms"], r["runs_event_p99_ms"], r["runs_p99_ms"]
    (310.0, [310.0, 1110.0, 200.0], [300.0, 1100.0, 190.0])
    """
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r[key])
    return {
        **ordered[(len(runs) - 1) // 2],
        "runs_p99_ms": [r["p99_ms"] for r in runs],
        "runs_event_p99_ms": [r["event_p99_ms"] for r in runs],
        "runs_main_thread_waited_share": [r.get("main_thread_waited_share") for r in runs],
    }


def quantile_ms(sorted_seconds: list[float], p: float) -> float:
    """The ``p`` quantile of sorted delays in seconds, in ms (NaN when there are none).

    >>> quantile_ms([0.1, 0.2, 0.3, 0.4], 0.5), quantile_ms([], 0.99)
    (300.0, nan)
    """
    if not sorted_seconds:
        return float("nan")
    return sorted_seconds[min(len(sorted_seconds) - 1, int(p * len(sorted_seconds)))] * 1000
