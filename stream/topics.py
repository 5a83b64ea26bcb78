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
        wait_visible(admin, {t.name: t.num_partitions for t in wanted}, timeout)
        return [t.name for t in missing]
    finally:
        admin.close()


def wait_visible(admin: KafkaAdminClient, partitions: Mapping[str, int], timeout: float) -> None:
    """Return once the broker's metadata shows each topic with its ``partitions`` all led.

    A KRaft broker applies a created topic to its metadata after the creation is answered,
    which under load takes seconds. A worker that joins its group in between is told the
    topics are unknown; aiokafka keeps that answer until its next metadata refresh (5 min),
    and a group leader assigns without them: the worker sits idle, every partition unowned.
    """
    deadline = time.monotonic() + timeout
    while True:
        waiting = not_visible(admin.describe_topics(list(partitions)), partitions)
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"topics not in the broker's metadata {timeout:.0f} s after their creation: "
                + ", ".join(sorted(waiting))
            )
        time.sleep(0.2)


def not_visible(described: Iterable[Mapping[str, Any]], partitions: Mapping[str, int]) -> set[str]:
    """The topics of ``partitions`` that ``describe_topics``' answer lacks, reports with an
    error, or shows with fewer partitions that have a leader than wanted.

    >>> ok = {"name": "a", "error_code": 0, "partitions": [{"error_code": 0, "leader_id": 1}]}
    >>> not_visible([ok], {"a": 1}), not_visible([ok], {"a": 2, "b": 1}) == {"a", "b"}
    (set(), True)
    >>> not_visible([{**ok, "error_code": 3, "partitions": []}], {"a": 1})
    {'a'}
    """
    seen = {
        d["name"]: sum(1 for p in d["partitions"] if p["error_code"] == 0 and p["leader_id"] >= 0)
        for d in described
        if d["error_code"] == 0
    }
    return {name for name, n in partitions.items() if seen.get(name, 0) < n}
