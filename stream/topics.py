"""Creating the project's topics (idempotent) before a worker subscribes to them."""

from __future__ import annotations

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.settings import Settings

TABLES = ("interest-users", "interest-population")


def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the events, snapshots (compacted), DLQ and table changelog topics where missing.

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
        return [t.name for t in missing]
    finally:
        admin.close()
