"""Fault tests: a rebalance between two live workers, and a broker outage mid-stream."""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from models.data.loaders import load_events
from stream.clients import Producer
from stream.dev.localrun import (
    WorkerProcess,
    start_local_broker,
    stop_local_broker,
    worker_env,
)
from stream.settings import Settings, local_broker_address
from stream.topics import ensure_topics
from tests.kafka.readback import wait_for_final_snapshots
from tests.kafka.test_pipeline import assert_finals_match, expected_distributions

pytestmark = pytest.mark.kafka
N_EVENTS = 20_000


def _paced_replay(
    settings: Settings,
    events: list[dict],
    done: threading.Event,
    per_tick: int = 500,
    tick_s: float = 0.2,
) -> threading.Thread:
    def run() -> None:
        with Producer(settings) as producer:
            for i in range(0, len(events), per_tick):
                producer.send_many(events[i : i + per_tick])
                time.sleep(tick_s)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _counts(events: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        counts[e["user_id"]] += 1
    return counts


@pytest.fixture(scope="module")
def events(shared_data: Path) -> list[dict]:
    return load_events(shared_data / "taobao-head" / "UserBehavior.csv", "taobao")[:N_EVENTS]


def test_fault_rebalance_second_worker_joins_then_first_leaves(
    kafka_bootstrap, unique_name, tmp_path, events
):
    base = worker_env(kafka_bootstrap, unique_name, tmp_path / "a")
    settings = Settings.from_env(base)
    ensure_topics(settings)
    env_b = {**base, **worker_env(kafka_bootstrap, unique_name, tmp_path / "b")}
    done = threading.Event()
    with WorkerProcess(base, tmp_path / "a.log") as first:
        sender = _paced_replay(settings, events, done)
        time.sleep(2.5)
        second = WorkerProcess(env_b, tmp_path / "b.log").start()
        try:
            time.sleep(3)
            first.stop()  # mid-stream: its partitions and their tables move to the second
            sender.join(120)
            assert done.is_set()
            finals = wait_for_final_snapshots(settings, _counts(events), timeout=180)
        finally:
            second.stop()
    assert_finals_match(finals, _counts(events), expected_distributions(events))
    log_b = (tmp_path / "b.log").read_text(errors="replace")
    assert log_b.count("Worker ready") >= 1
    assert "interest-users-changelog" in log_b  # the second worker recovered table partitions


INJECT = Path(__file__).parent / "inject"  # its sitecustomize pauses partitions mid-fetch


def test_fault_partitions_paused_while_their_fetches_are_in_flight_lose_nothing(
    events, make_settings, make_worker
):
    """Records fetched for a partition paused meanwhile are read again when it resumes, with
    no seek to committed offsets between (Faust's drop of them lost events in a rebalance)."""
    path = os.pathsep.join(p for p in (str(INJECT), os.environ.get("PYTHONPATH")) if p)
    env, settings = make_settings(INTEREST_TEST_PAUSE_EVERY="4", PYTHONPATH=path)
    done = threading.Event()
    with make_worker(env) as worker:
        sender = _paced_replay(settings, events, done, per_tick=1000, tick_s=0.1)
        sender.join(120)
        assert done.is_set()
        finals = wait_for_final_snapshots(settings, _counts(events), timeout=120)
        metrics_url = f"http://127.0.0.1:{env['INTEREST_WEB_PORT']}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            metrics = response.read().decode()
    assert worker.log_path.read_text(errors="replace").count("injected:") >= 5
    unread = re.search(r"^interest_fetch_unread_total (\S+)$", metrics, re.M)
    assert unread is not None and float(unread.group(1)) >= 5  # read again, not dropped
    assert_finals_match(finals, _counts(events), expected_distributions(events))


def test_fault_broker_stopped_for_10s_mid_stream(
    kafka_bootstrap, events, make_settings, make_worker
):
    if local_broker_address() != kafka_bootstrap:
        pytest.skip("the broker is not this project's local one: not ours to stop")
    env, settings = make_settings()
    done = threading.Event()
    with make_worker(env):
        sender = _paced_replay(settings, events, done, per_tick=250)
        time.sleep(3)
        stop_local_broker()
        time.sleep(10)
        # Without KAFKA_BOOTSTRAP_SERVERS (start_local_broker drops it): with it, kafka.sh up
        # names that cluster and starts nothing, and the broker stayed down.
        address, started = start_local_broker()
        assert started, "the broker was not stopped"
        assert address == kafka_bootstrap, "the broker came back elsewhere"
        sender.join(300)
        assert done.is_set(), "the producer did not reconnect"
        finals = wait_for_final_snapshots(settings, _counts(events), timeout=240)
    assert_finals_match(finals, _counts(events), expected_distributions(events))


def test_fault_a_slow_snapshot_consumer_does_not_hold_up_ingestion(
    kafka_bootstrap, unique_name, events, make_settings, make_worker, make_producer
):
    """Kafka decouples them: the worker finishes while a slow subscriber is still far behind."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient

    env, settings = make_settings()
    read = 0
    stop = threading.Event()

    def slow_subscriber() -> None:
        nonlocal read
        consumer = KafkaConsumer(
            settings.snapshots_topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"{unique_name}.slow",
            max_poll_records=1,
            consumer_timeout_ms=200,
        )
        while not stop.is_set():
            for _ in consumer:
                read += 1
                time.sleep(0.05)  # 20 snapshots/s at most
                if stop.is_set():
                    break
        consumer.close()

    slow = threading.Thread(target=slow_subscriber, daemon=True)
    slow.start()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        with make_worker(env), make_producer(settings) as producer:
            producer.send_many(events)
            producer.flush()
            deadline = time.monotonic() + 180
            committed = 0
            while committed < len(events) and time.monotonic() < deadline:
                offsets = admin.list_group_offsets({settings.app_id: None})[settings.app_id]
                committed = sum(
                    m.offset
                    for tp, m in offsets.items()
                    if tp.topic == settings.events_topic and m.offset > 0
                )
                time.sleep(0.2)
            behind = read
    finally:
        stop.set()
        slow.join(10)
        admin.close()
    assert committed == len(events), "ingestion did not finish"
    assert behind < len(_counts(events)), "the subscriber was not slow enough to show anything"
