"""``make bench``: throughput, latency, memory and recovery through the real local broker.

Everything runs in one process tree on this machine, in one run, so the ratios are fair:

1. pre-produce ``--users × --events-per-user`` events (users in three waves: 10k, 100k, 200k
   distinct users) to one topic;
2. a bare aiokafka consumer reads and decodes the whole topic (the limit);
3. a real worker process consumes the same topic; its RSS is read as the waves complete;
4. the worker is restarted and the time to recover its table is measured;
5. a fresh worker gets events at half the measured maximum rate, stamped with the wall clock;
   a subscriber measures event-to-snapshot latency;
6. the Transformer scorer table (``models.bench_scorer``), when present.

Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from stream.codec import InvalidEvent, decode_event, decode_snapshot, pack
from stream.localrun import WorkerProcess, start_local_broker, stop_local_broker, worker_env
from stream.settings import Settings
from stream.topics import ensure_topics

EVENT_TYPES = ("view", "view", "view", "click", "cart", "fav", "purchase")


def make_events(first_user: int, last_user: int, per_user: int, seed: int) -> list[bytes]:
    """``per_user`` msgpack events for each user in [first, last), interleaved by time."""
    rng = random.Random(seed)
    out = []
    ts = 1_760_000_000.0
    for round_ in range(per_user):
        for u in range(first_user, last_user):
            ts += 0.01
            out.append(
                (
                    f"user-{u}",
                    pack(
                        {
                            "user_id": f"user-{u}",
                            "item_id": f"item-{rng.randrange(100_000)}",
                            "categories": [f"cat-{(u * 7 + rng.randrange(6)) % 500}"],
                            "event_type": rng.choice(EVENT_TYPES),
                            "ts": ts + round_,
                        }
                    ),
                )
            )
    return out


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


def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return ends


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


def run_worker_phase(
    bootstrap: str, env: dict, workdir: Path, waves: list[tuple[int, int]], total: int
) -> dict:
    """Start a worker on the pre-produced topic; time it and read its RSS at each wave."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    group = env["INTEREST_APP_ID"]
    worker = WorkerProcess(env, workdir / "worker.log", loglevel="info").start()
    idle_rss = worker.rss_bytes()
    started = time.monotonic()
    rss_at: dict[int, int] = {}
    pending = list(waves)
    try:
        while True:
            done = committed_total(admin, group, env["INTEREST_EVENTS_TOPIC"])
            while pending and done >= pending[0][1]:
                rss_at[pending.pop(0)[0]] = worker.rss_bytes()
            if done >= total:
                break
            if time.monotonic() - started > 1800:
                raise RuntimeError("worker did not finish within 30 minutes")
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        worker.stop()
        admin.close()
    restarted = WorkerProcess(env, workdir / "worker-restart.log", loglevel="info")
    restarted.start(timeout=900)
    recovery = restarted.ready_after
    restarted.stop()
    return {
        "seconds": seconds,
        "rate": total / seconds,
        "idle_rss": idle_rss,
        "rss_at": rss_at,
        "recovery_s": recovery,
    }


def latency_phase(
    bootstrap: str, env: dict, workdir: Path, rate: float, seconds: float, users: int
) -> dict:
    """Events stamped with the wall clock at ``rate``/s; snapshot latency seen by a subscriber."""
    settings = Settings.from_env(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, workdir / "worker-latency.log", loglevel="info").start()
    latencies: list[float] = []
    stop = threading.Event()

    def subscribe():
        consumer = KafkaConsumer(
            settings.snapshots_topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="latest",
            group_id=None,
            consumer_timeout_ms=500,
        )
        while not stop.is_set():
            for msg in consumer:
                if msg.key.startswith(b"__"):
                    continue
                snap = decode_snapshot(msg.value)
                latencies.append(time.time() - snap["ts"])
        consumer.close()

    sub = threading.Thread(target=subscribe, daemon=True)
    sub.start()
    time.sleep(3)  # let the subscriber join at the end of the topic
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    rng = random.Random(5)
    n = int(rate * seconds)
    started = time.monotonic()
    for i in range(n):
        target = started + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        u = rng.randrange(users)
        producer.send(
            settings.events_topic,
            key=f"user-{u}".encode(),
            value=pack(
                {
                    "user_id": f"user-{u}",
                    "item_id": f"i{i}",
                    "categories": [f"cat-{u % 300}"],
                    "event_type": "view",
                    "ts": time.time(),
                }
            ),
        )
    producer.flush()
    producer.close()
    time.sleep(3)
    stop.set()
    sub.join(5)
    worker.stop()
    lat = sorted(latencies)

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


def scorer_rows() -> tuple[list[dict], str]:
    """The Transformer scorer table (``models.bench_scorer``): rows and their Markdown."""
    from models import bench_scorer

    rows = bench_scorer.run_benchmark(seconds=0.5, rounds=3)
    return rows, bench_scorer.markdown(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--events-per-user", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--out", default="bench-results/bench.json")
    parser.add_argument("--skip-scorer", action="store_true")
    args = parser.parse_args(argv)

    env0 = dict(os.environ)
    started_broker = False
    if env0.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = env0["KAFKA_BOOTSTRAP_SERVERS"]
    else:
        bootstrap, started_broker = start_local_broker(env0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{stamp}-"))
    results: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}",
        "python": sys.version.split()[0],
        "date": stamp,
    }
    try:
        waves_users = [w for w in (10_000, 100_000, 200_000) if w <= args.users] or [args.users]
        if waves_users[-1] != args.users:
            waves_users.append(args.users)
        env = worker_env(
            bootstrap, f"bench-{stamp}", workdir / "state", INTEREST_MIN_INTERVAL_S="1.0"
        )
        settings = Settings.from_env(env)
        ensure_topics(settings)
        print(f"producing {args.users:,} users × {args.events_per_user} events …", flush=True)
        events, waves, prev = [], [], 0
        for i, w in enumerate(waves_users):
            events += make_events(prev, w, args.events_per_user, seed=i)
            waves.append((w, len(events)))
            prev = w
        total = len(events)
        produce_s = produce(bootstrap, settings.events_topic, events)
        del events
        print(f"produced {total:,} events in {produce_s:.1f}s; bare consumer …", flush=True)
        bare = asyncio.run(bare_consumer_rate(bootstrap, settings.events_topic, total))
        print(f"bare consumer {bare:,.0f}/s; full worker …", flush=True)
        worker = run_worker_phase(bootstrap, env, workdir, waves, total)
        results["throughput"] = {
            "events": total,
            "bare_consumer_per_s": bare,
            "worker_per_s": worker["rate"],
            "ratio": worker["rate"] / bare,
        }
        per_user = (
            (worker["rss_at"][waves_users[-1]] - worker["idle_rss"]) / waves_users[-1]
            if worker["rss_at"]
            else float("nan")
        )
        results["memory"] = {
            "idle_rss": worker["idle_rss"],
            "rss_at_users": worker["rss_at"],
            "bytes_per_user": per_user,
            "events_per_user": args.events_per_user,
        }
        results["recovery"] = {"users": waves_users[-1], "seconds": worker["recovery_s"]}
        print(f"worker {worker['rate']:,.0f}/s; latency at half that …", flush=True)
        lat_env = worker_env(
            bootstrap,
            f"bench-lat-{stamp}",
            workdir / "lat-state",
            INTEREST_MIN_INTERVAL_S="1.0",
            INTEREST_BATCH_MS="5",
        )
        results["latency"] = latency_phase(
            bootstrap, lat_env, workdir, worker["rate"] / 2, args.latency_seconds, users=50_000
        )
        if not args.skip_scorer:
            print("scorer benchmark …", flush=True)
            results["scorer"], scorer_table = scorer_rows()
    finally:
        if started_broker:
            stop_local_broker()
    print_table(results)
    if results.get("scorer"):
        print("\n### Transformer scorer\n")
        print(scorer_table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {out}")
    return 0


def print_table(r: dict) -> None:
    t, m, lat = r["throughput"], r["memory"], r["latency"]
    print(f"\n## Benchmark ({r['machine']}, Python {r['python']}, {r['date']})\n")
    print("| measure | value |\n|---|---|")
    print(f"| events in the pre-produced topic | {t['events']:,} |")
    print(
        f"| bare aiokafka consumer, decode + validate | {t['bare_consumer_per_s']:,.0f} events/s |"
    )
    print(f"| full worker (decode, validate, update, emit) | {t['worker_per_s']:,.0f} events/s |")
    print(f"| worker / bare consumer | {t['ratio']:.0%} |")
    print(
        f"| latency at {lat['rate']:,.0f} events/s: p50 / p95 / p99 | "
        f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f} ms "
        f"({lat['snapshots']:,} snapshots) |"
    )
    print(f"| worker RSS idle | {m['idle_rss'] / 2**20:,.0f} MiB |")
    for users, rss in m["rss_at_users"].items():
        print(f"| worker RSS after {users:,} users | {rss / 2**20:,.0f} MiB |")
    print(f"| RSS per user ({m['events_per_user']} events each) | {m['bytes_per_user']:,.0f} B |")
    print(
        f"| restart: recover {r['recovery']['users']:,} users | "
        f"{r['recovery']['seconds']:.1f} s to ready |"
    )


if __name__ == "__main__":
    sys.exit(main())
