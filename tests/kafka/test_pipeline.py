"""End to end on a real broker and a real worker process: taobao-head in, snapshots out."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from models.data.loaders import load_events
from models.tracker import TrackerConfig, build_snapshot, replay
from stream.clients import Producer
from stream.codec import pack
from stream.dev.localrun import WorkerProcess, worker_env
from stream.settings import Settings
from stream.topics import ensure_topics
from tests.kafka.readback import dead_letters, wait_for_final_snapshots

pytestmark = pytest.mark.kafka
N_EVENTS = 20_000


def malformed_payload(event: dict, rng: random.Random) -> tuple[bytes, str]:
    """A broken copy of ``event`` and the reason its dead letter must give."""
    good = pack(event)
    return rng.choice(
        [
            (good[: rng.randrange(1, len(good) - 1)], "malformed"),  # truncated
            (b"\xc1" + good, "malformed"),  # never-used msgpack byte
            # no categories and an empty catalog
            (pack({k: v for k, v in event.items() if k != "categories"}), "unknown-item"),
            (pack({**event, "event_type": "teleport"}), "unknown-event-type"),
            (pack({**event, "ts": float("nan")}), "bad-timestamp"),
            (pack({**event, "categories": []}), "empty-categories"),
            (pack({**event, "user_id": 1.5}), "wrong-type"),
            (b'{"user_id": "json-unmarked"}', "json-unmarked"),
        ]
    )


def run_replay(bootstrap: str, name: str, tmp: Path, events: list[dict], bad_every: int = 0):
    env = worker_env(bootstrap, name, tmp / f"{name}-state")
    settings = Settings.from_env(env)
    ensure_topics(settings)
    rng = random.Random(1)
    bad_reasons: list[str] = []  # the reason of each broken message sent
    with WorkerProcess(env, tmp / f"{name}-worker.log") as worker:
        started = time.monotonic()
        with Producer(settings) as producer:
            for i, e in enumerate(events):
                producer.send(e)
                if bad_every and i % bad_every == bad_every - 1:
                    payload, reason = malformed_payload(e, rng)
                    producer.send(e, raw=payload)
                    bad_reasons.append(reason)
        counts: dict[str, int] = defaultdict(int)
        for e in events:
            counts[e["user_id"]] += 1
        finals = wait_for_final_snapshots(settings, counts)
        seconds = time.monotonic() - started
        rss = worker.rss_bytes() // 1024
    dlq = dead_letters(bootstrap, settings.dlq_topic)
    return finals, counts, dlq, bad_reasons, seconds, rss


@pytest.fixture(scope="module")
def taobao_events(shared_data: Path) -> list[dict]:
    return load_events(shared_data / "taobao-head" / "UserBehavior.csv", "taobao")[:N_EVENTS]


def expected_distributions(events: list[dict]) -> dict[str, dict]:
    cfg = TrackerConfig()
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    return {u: build_snapshot(u, replay(evs, cfg), cfg)["own"] for u, evs in by_user.items()}


def assert_finals_match(finals: dict[str, dict], counts: dict[str, int], expected: dict):
    assert set(finals) == set(counts), f"users without a snapshot: {set(counts) - set(finals)}"
    wrong = []
    for uid, snap in finals.items():
        exp = expected[uid]
        if (
            snap["n_events"] != counts[uid]
            or snap["own"].keys() != exp.keys()  # the part that depends on the user alone
            or any(abs(snap["own"][c] - p) > 1e-9 for c, p in exp.items())
        ):
            wrong.append(uid)
    detail = ""
    if wrong:
        uid = wrong[0]
        detail = (
            f"; e.g. {uid}: n_events {finals[uid]['n_events']} vs {counts[uid]}, "
            f"{finals[uid]['distribution']} vs {expected[uid]}"
        )
    assert wrong == [], (
        f"{len(wrong)} users' final snapshots differ from the offline replay{detail}"
    )


def test_taobao_replay_final_snapshots_equal_offline_replay(
    kafka_bootstrap, unique_name, tmp_path, taobao_events, record_property
):
    finals, counts, dlq, _, seconds, rss = run_replay(
        kafka_bootstrap, unique_name, tmp_path, taobao_events
    )
    assert_finals_match(finals, counts, expected_distributions(taobao_events))
    assert dlq == []
    record_property("events_per_s", round(len(taobao_events) / seconds))
    record_property("worker_rss_kib", rss)
    print(
        f"\n{len(taobao_events)} events, {len(counts)} users: {len(taobao_events) / seconds:,.0f}"
        f" events/s end to end, worker RSS {rss / 1024:.0f} MiB"
    )


def test_malformed_events_go_to_the_dlq_and_change_nothing(
    kafka_bootstrap, unique_name, tmp_path, taobao_events
):
    finals, counts, dlq, bad_reasons, _, _ = run_replay(
        kafka_bootstrap, unique_name, tmp_path, taobao_events, bad_every=10
    )
    assert_finals_match(finals, counts, expected_distributions(taobao_events))
    assert len(set(bad_reasons)) > 5  # most kinds of breakage were sent
    assert Counter(d["reason"] for d in dlq) == Counter(bad_reasons)
    assert all(d["original"] is not None for d in dlq)


def test_rocksdb_store_with_a_restart_midway_equals_offline_replay(
    tmp_path, taobao_events, make_settings, make_producer
):
    """RocksDB state: half the events, a clean restart on the same state directory (which
    reads its local store and only the changelog's tail), the other half."""
    env, settings = make_settings(INTEREST_STORE="rocksdb://")
    half = len(taobao_events) // 2
    counts: dict[str, int] = defaultdict(int)
    logs = []
    for part, chunk in enumerate((taobao_events[:half], taobao_events[half:])):
        logs.append(tmp_path / f"worker-{part}.log")
        with WorkerProcess(env, logs[-1]), make_producer(settings) as producer:
            for e in chunk:
                producer.send(e)
                counts[e["user_id"]] += 1
            chunk_counts = {u: n for u, n in counts.items() if u in {e["user_id"] for e in chunk}}
            wait_for_final_snapshots(settings, chunk_counts)
    finals = wait_for_final_snapshots(settings, counts)
    assert_finals_match(finals, counts, expected_distributions(taobao_events))
    assert any((tmp_path / "state").rglob("CURRENT")), "no RocksDB database was written"
