"""Creating the project's topics (idempotent) before a worker subscribes to them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.settings import Settings

TABLES = ("interest-users", "interest-population")
VISIBLE_TIMEOUT_S = 60.0


def ensure_topics(
    settings: Settings, replication: int = 1, timeout: float = VISIBLE_TIMEOUT_S
) -> list[str]:
    """Create the events, snapshots (compacted), DLQ and table changelog topics where missing,
    and wait until the broker's metadata shows every one of them (see :func:`wait_visible`).

    Returns the names of the topics it created.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id="interest-tracker-admin",
        **settings.kafka_client_config(),
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.events_topic, settings.partitions, replication),
            NewTopic(
                settings.snapshots_topic,
                settings.partitions,
                replication,
                topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
            ),
            NewTopic(settings.dlq_topic, settings.partitions, replication),
            # One partition: every worker reads all of it (a Faust GlobalTable).
            NewTopic(
                settings.items_topic, 1, replication, topic_configs={"cleanup.policy": "compact"}
            ),
        ] + [
            # Faust declares these itself, but asynchronously: a table written before its
            # changelog shows up in the metadata crashes the agent (PartitionsMismatch).
            NewTopic(
                f"{settings.app_id}-{table}-changelog",
                settings.partitions,
                replication,
                topic_configs={"cleanup.policy": "compact"},
            )
            for table in TABLES
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                admin.create_topics(missing)
        wait_visible(admin, [t.name for t in wanted], timeout)
        return [t.name for t in missing]
    finally:
        admin.close()


def wait_visible(admin: KafkaAdminClient, names: Iterable[str], timeout: float) -> None:
    """Return once the broker's metadata shows each topic of ``names`` with every partition
    led (however many partitions it has: a topic made elsewhere keeps its own count).

    A KRaft broker applies a created topic to its metadata after the creation is answered,
    which under load takes seconds. A worker that joins its group in between is told the
    topics are unknown; aiokafka keeps that answer until its next metadata refresh (5 min),
    and a group leader assigns without them: the worker sits idle, every partition unowned.
    """
    names = list(names)
    deadline = time.monotonic() + timeout
    while True:
        waiting = not_visible(admin.describe_topics(names), names)
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"topics not ready in the broker's metadata after {timeout:.0f} s (unknown, "
                "not authorised to describe, or a partition without a leader): "
                + ", ".join(sorted(waiting))
            )
        time.sleep(0.2)


def not_visible(described: Iterable[Mapping[str, Any]], names: Iterable[str]) -> set[str]:
    """The topics of ``names`` that ``describe_topics``' answer lacks, reports with an
    error, or shows with no partitions or a partition without a leader.

    >>> led = {"error_code": 0, "leader_id": 1}
    >>> ok = {"name": "a", "error_code": 0, "partitions": [led, led]}
    >>> not_visible([ok], ["a"]), not_visible([ok], ["a", "b"])
    (set(), {'b'})
    >>> not_visible([{**ok, "error_code": 3, "partitions": []}], ["a"])
    {'a'}
    >>> not_visible([{**ok, "partitions": [led, {"error_code": 5, "leader_id": -1}]}], ["a"])
    {'a'}
    """
    ready = {
        d["name"]
        for d in described
        if d["error_code"] == 0
        and d["partitions"]
        and all(p["error_code"] == 0 and p["leader_id"] >= 0 for p in d["partitions"])
    }
    return {name for name in names if name not in ready}
