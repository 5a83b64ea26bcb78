"""Topic creation on the real broker: a worker subscribes only once every topic is in the
broker's metadata (else aiokafka keeps 'unknown topic' and the group is assigned without it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from stream.dev.localrun import worker_env
from stream.settings import Settings
from stream.topics import ensure_topics, not_visible, wait_visible

pytestmark = pytest.mark.kafka


def test_ensure_topics_returns_once_every_partition_has_a_leader(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
):
    settings = Settings.from_env(worker_env(kafka_bootstrap, unique_name, tmp_path))
    created = ensure_topics(settings)
    assert settings.events_topic in created and settings.snapshots_topic in created
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_topics(created)
        assert not_visible(described, created) == set()
        events = next(d for d in described if d["name"] == settings.events_topic)
        assert len(events["partitions"]) == settings.partitions
        assert ensure_topics(settings) == []  # idempotent: nothing left to create
    finally:
        admin.close()


def test_a_topic_that_never_appears_is_a_clear_error_not_a_silent_wait(
    kafka_bootstrap: str, unique_name: str
):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=f"{unique_name}.never"):
            wait_visible(admin, [f"{unique_name}.never"], timeout=0.6)
        assert time.monotonic() - started >= 0.6  # it kept asking until the deadline
        assert f"{unique_name}.never" not in admin.list_topics()  # asking created nothing
    finally:
        admin.close()


def test_a_topic_made_elsewhere_with_its_own_partition_count_is_not_waited_for(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
):
    settings = Settings.from_env(worker_env(kafka_bootstrap, unique_name, tmp_path))
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(settings.dlq_topic, 1, 1)])  # settings.partitions: 4
        started = time.monotonic()
        created = ensure_topics(settings, timeout=5)
        assert settings.dlq_topic not in created and settings.events_topic in created
        assert time.monotonic() - started < 5
        (dlq,) = admin.describe_topics([settings.dlq_topic])
        assert len(dlq["partitions"]) == 1  # left as it was made
    finally:
        admin.close()
