"""A real ``interest-tracker worker`` process for kafka-tier tests, with its own topics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from stream.codec import decode_snapshot, unpack
from stream.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(bootstrap: str, name: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a worker and its clients: unique topics, group and state dir."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        INTEREST_EVENTS_TOPIC=f"{name}.events",
        INTEREST_SNAPSHOTS_TOPIC=f"{name}.snapshots",
        INTEREST_DLQ_TOPIC=f"{name}.dlq",
        INTEREST_APP_ID=f"{name}.app",
        INTEREST_STATE_DIR=str(state_dir),
        INTEREST_WEB_PORT=str(free_port()),
        INTEREST_MIN_INTERVAL_S="0.5",
        # Kafka-python and aiokafka honour these too; the worker stays quiet at WARNING.
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """Starts ``interest-tracker worker`` and waits until Faust says it is ready."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> WorkerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        start_at = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "-l", "info"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.tail()}")
            with open(self.log_path, "rb") as fh:
                fh.seek(start_at)
                if b"Worker ready" in fh.read():
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_topic(bootstrap: str, topic: str, idle_s: float = 2.0) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) currently in a topic, from the beginning."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_s * 1000),
    )
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    try:
        for msg in consumer:
            yield msg.key, msg.value
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
    finally:
        consumer.close()


def wait_for_final_snapshots(
    settings: Settings, expected_counts: dict[str, int], timeout: float = 180
) -> dict[str, dict]:
    """Follow the snapshot topic until every user's latest snapshot covers all their events."""
    consumer = KafkaConsumer(
        settings.snapshots_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    latest: dict[str, dict] = {}
    done = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(done) < len(expected_counts):
            for msg in consumer:
                if msg.value is None or msg.key.startswith(b"__"):
                    continue
                snap = decode_snapshot(msg.value)
                uid = snap["user_id"]
                if uid not in latest or snap["version"] >= latest[uid]["version"]:
                    latest[uid] = snap
                if snap["n_events"] == expected_counts.get(uid):
                    done.add(uid)
                if len(done) == len(expected_counts):
                    break
    finally:
        consumer.close()
    return latest


def dead_letters(bootstrap: str, topic: str) -> list[dict]:
    return [unpack(v) for _, v in read_topic(bootstrap, topic)]
