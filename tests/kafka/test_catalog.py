"""The item catalog on a real broker: published with the CLI, read by the worker, joined to
events without categories; unknown items dead-lettered; updates apply to later events only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from stream.cli.entry import main as cli_main
from stream.clients import snapshot_consumer
from stream.codec import decode_snapshot
from stream.settings import Settings
from tests.kafka.readback import dead_letters

pytestmark = pytest.mark.kafka
TS = 1_700_000_000.0


def event(user: str, item: str, i: int, categories: list[str] | None = None) -> dict:
    e = {"user_id": user, "item_id": item, "event_type": "view", "ts": TS + i}
    if categories is not None:
        e["categories"] = categories
    return e


def publish(path: Path, rows: list[str], env: dict, monkeypatch) -> None:
    path.write_text("item_id,categories,title\n" + "\n".join(rows) + "\n")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli_main(["catalog", "--data", str(path), "--format", "generic"]) == 0


def snapshots_until(settings: Settings, done, timeout: float = 60) -> dict[str, dict]:
    """Each user's latest snapshot, read until ``done(latest)`` holds."""
    consumer = snapshot_consumer(settings, timeout_s=0.5)
    latest: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(latest):
            for msg in consumer:
                if not msg.key.startswith(b"__"):
                    snap = decode_snapshot(msg.value)
                    latest[snap["user_id"]] = snap
    finally:
        consumer.close()
    return latest


def categories_seen(snap: dict) -> set[str]:
    return {c for c in snap["own"] if c != "_other"}


def test_events_without_categories_are_resolved_through_the_catalog(
    kafka_bootstrap, tmp_path, monkeypatch, make_settings, make_worker, make_producer
):
    env, settings = make_settings()
    publish(tmp_path / "items.csv", ["i1,shoes,Runner", "i2,bags|hats,Tote"], env, monkeypatch)
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    raw.send(settings.items_topic, key=b"i7", value=b"\xc1")  # not msgpack: ignored on recovery
    raw.flush()
    raw.close()
    with make_worker(env), make_producer(settings) as producer:
        producer.send(event("u1", "i1", 0))
        producer.send(event("u1", "i2", 1))
        producer.send(event("u2", "i9", 2))  # not in the catalog: DLQ
        producer.send(event("u2", "i7", 3))  # its catalog record is unreadable: DLQ
        producer.send(event("u2", "i1", 4, ["tea"]))  # its own categories win
        producer.flush()
        first = snapshots_until(settings, lambda s: {"u1", "u2"} <= set(s))
        assert categories_seen(first["u1"]) == {"shoes", "bags", "hats"}
        assert categories_seen(first["u2"]) == {"tea"} and first["u2"]["n_events"] == 1

        publish(tmp_path / "items.csv", ["i1,boots,Runner"], env, monkeypatch)
        # Probe with fresh users until the update has reached the worker: from then on,
        # every event of item i1 is a boots event, and earlier events keep their categories.
        probes = []
        for k in range(60):
            probes.append(f"probe-{k}")
            producer.send(event(probes[-1], "i1", 10 + k))
            producer.flush()
            time.sleep(0.5)
            snaps = snapshots_until(settings, lambda s: probes[-1] in s, timeout=10)
            if categories_seen(snaps[probes[-1]]) == {"boots"}:
                break
        seen = [categories_seen(snaps[p]) for p in probes]
        assert seen[-1] == {"boots"}, "the catalog update never reached the worker"
        switch = seen.index({"boots"})
        assert all(s == {"shoes"} for s in seen[:switch]) and all(
            s == {"boots"} for s in seen[switch:]
        )
        producer.send(event("u1", "i1", 100))
        producer.flush()
        final = snapshots_until(settings, lambda s: s.get("u1", {}).get("n_events") == 3)
    assert categories_seen(final["u1"]) == {"shoes", "bags", "hats", "boots"}
    dlq = dead_letters(kafka_bootstrap, settings.dlq_topic)
    assert [d["reason"] for d in dlq] == ["unknown-item", "unknown-item"]
