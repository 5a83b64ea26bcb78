"""Any-language interop, proven with Kafka's own Java clients: JSON events in through the Java
console producer (with the ``content-type: application/json`` header), a real worker with
``INTEREST_SNAPSHOT_FORMAT=json``, JSON snapshots out through the Java console consumer."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaConsumer, TopicPartition

from models.data.loaders import load_events
from models.tracker import TrackerConfig, build_snapshot, replay
from stream.schemas import load_schema
from stream.settings import REPO_ROOT
from tests.kafka.readback import dead_letters, wait_for_final_snapshots

pytestmark = pytest.mark.kafka
N_EVENTS = 600
KAFKA_LIB = REPO_ROOT / "docker" / ".kafka-lib"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def java(main_class: str, *args: str, stdin: str | None = None, timeout: float = 120):
    if (
        shutil.which("java") is None
        or not (KAFKA_LIB / f"kafka-tools-{_kafka_version()}.jar").exists()
    ):
        pytest.fail("java and the broker's jars (make setup: docker/.kafka-lib) are needed")
    return subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", main_class, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def _kafka_version() -> str:
    return next(KAFKA_LIB.glob("kafka-clients-*.jar")).stem.removeprefix("kafka-clients-")


def published(bootstrap: str, topic: str) -> int:
    """Messages in a topic now (the worker has stopped; nothing is compacted this young)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def console_lines(events: list[dict]) -> str:
    """The console producer's input with parse.headers and parse.key: headers, key, value."""
    return "".join(
        f"content-type:application/json\t{e['user_id']}\t{json.dumps(e, separators=(',', ':'))}\n"
        for e in events
    )


def test_java_console_producer_and_consumer_speak_json_with_the_worker(
    kafka_bootstrap, shared_data: Path, make_settings, make_worker
):
    events = load_events(shared_data / "taobao-head" / "UserBehavior.csv", "taobao")[:N_EVENTS]
    counts = Counter(e["user_id"] for e in events)
    env, settings = make_settings(INTEREST_SNAPSHOT_FORMAT="json")
    with make_worker(env):
        java(
            PRODUCER,
            "--bootstrap-server", kafka_bootstrap,
            "--topic", settings.events_topic,
            "--property", "parse.key=true",
            "--property", "parse.headers=true",
            stdin=console_lines(events),
        )  # fmt: skip
        assert wait_for_final_snapshots(settings, dict(counts), timeout=120).keys() == counts.keys()
    consumed = java(
        CONSUMER,
        "--bootstrap-server", kafka_bootstrap,
        "--topic", settings.snapshots_topic,
        "--from-beginning",
        "--max-messages", str(published(kafka_bootstrap, settings.snapshots_topic)),
        "--timeout-ms", "60000",
        "--property", "print.key=true",
        "--property", "key.separator=\t",
    ).stdout  # fmt: skip
    finals: dict[str, dict] = {}
    validator = Draft202012Validator(load_schema("snapshot"))
    for line in filter(None, consumed.splitlines()):
        key, _, value = line.partition("\t")
        snapshot = json.loads(value)  # plain JSON text, as a Java (or any) consumer sees it
        validator.validate(snapshot)
        assert snapshot["user_id"] == key
        if not key.startswith("__"):
            finals[key] = snapshot  # one partition per user: the last line is the latest
    cfg = TrackerConfig()
    assert finals.keys() == counts.keys()
    for uid, snap in finals.items():
        expected = build_snapshot(uid, replay([e for e in events if e["user_id"] == uid], cfg), cfg)
        assert snap["n_events"] == counts[uid]
        # ``own`` depends on the user's events alone (``distribution`` also on the prior)
        assert snap["own"] == pytest.approx(expected["own"], abs=1e-9)
    assert dead_letters(kafka_bootstrap, settings.dlq_topic) == []
