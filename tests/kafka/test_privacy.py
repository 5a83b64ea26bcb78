"""Privacy: `forget` erases a user for every subscriber and across a restart; pseudonymised ids."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.clients import Producer
from stream.dev.localrun import WorkerProcess, worker_env
from stream.settings import Settings
from stream.topics import ensure_topics
from tests.kafka.readback import read_topic, wait_for_final_snapshots

pytestmark = pytest.mark.kafka


def events(user: str, n: int, t0: float, category: str) -> list[dict]:
    return [
        {
            "user_id": user,
            "item_id": f"i{i}",
            "categories": [category],
            "event_type": "view",
            "ts": t0 + i,
        }
        for i in range(n)
    ]


def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for key, value in read_topic(bootstrap, topic):
        latest[key] = value
    return latest


def test_forget_erases_a_user_everywhere_also_across_a_restart(
    kafka_bootstrap, unique_name, tmp_path: Path
):
    env = worker_env(
        kafka_bootstrap, unique_name, tmp_path / "state", INTEREST_PSEUDONYMISE_KEY="test-secret"
    )
    settings = Settings.from_env(env)
    ensure_topics(settings)
    alice, bob = settings.user_key("alice"), settings.user_key("bob")
    assert alice.startswith("p-") and alice != "alice"
    t0 = time.time() - 3600

    with WorkerProcess(env, tmp_path / "worker.log"), Producer(settings) as producer:
        producer.send_many(events("alice", 5, t0, "shoes") + events("bob", 4, t0, "hats"))
        producer.flush()
        finals = wait_for_final_snapshots(settings, {alice: 5, bob: 4}, timeout=60)
        assert {finals[alice]["n_events"], finals[bob]["n_events"]} == {5, 4}
        keys = latest_by_key(kafka_bootstrap, settings.snapshots_topic)
        assert b"alice" not in keys and alice.encode() in keys  # raw ids never published

        forget = subprocess.run(
            [sys.executable, "-m", "stream.cli", "forget", "--user", "alice"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert forget.returncode == 0, forget.stderr
        time.sleep(3)  # let the worker apply the deletion
        assert latest_by_key(kafka_bootstrap, settings.snapshots_topic)[alice.encode()] is None

    # After a restart (tables recovered from their changelogs) alice starts from nothing.
    with WorkerProcess(env, tmp_path / "worker2.log"), Producer(settings) as producer:
        producer.send_many(
            events("alice", 1, t0 + 100, "bags") + events("bob", 1, t0 + 100, "hats")
        )
        producer.flush()
        finals = wait_for_final_snapshots(settings, {alice: 1, bob: 5}, timeout=90)
    assert finals[alice]["n_events"] == 1
    # her own estimate starts from nothing (the published one is smoothed toward the
    # population, which still remembers the shoes that were viewed)
    assert list(finals[alice]["own"])[0] == "bags"
    assert finals[bob]["n_events"] == 5
