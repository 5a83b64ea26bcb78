"""Privacy: `forget` erases a user for every subscriber and across a restart; pseudonymised ids."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from stream.dev.events import user_events
from tests.kafka.readback import read_topic, wait_for_final_snapshots

pytestmark = pytest.mark.kafka


def events(user: str, n: int, t0: float, category: str) -> list[dict]:
    return user_events(user, [category] * n, t0)


def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for key, value in read_topic(bootstrap, topic):
        latest[key] = value
    return latest


def test_forget_erases_a_user_everywhere_also_across_a_restart(
    kafka_bootstrap, make_settings, make_worker, make_producer
):
    # a builder process: the tombstone must still come after every snapshot of the user
    env, settings = make_settings(
        INTEREST_PSEUDONYMISE_KEY="test-secret", INTEREST_SNAPSHOT_PROCESSES="1"
    )
    alice, bob = settings.user_key("alice"), settings.user_key("bob")
    assert alice.startswith("p-") and alice != "alice"
    t0 = time.time() - 3600

    with make_worker(env), make_producer(settings) as producer:
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
    with make_worker(env, "worker2.log"), make_producer(settings) as producer:
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
