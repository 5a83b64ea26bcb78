"""The developer tools' broker hygiene: a bench run removes its own topics, and only those."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from stream.dev.localrun import delete_run_topics

pytestmark = pytest.mark.kafka


def test_a_run_deletes_its_topics_and_leaves_the_others(kafka_bootstrap: str, unique_name: str):
    mine = [f"{unique_name}-run.events", f"{unique_name}-run.app-interest-users-changelog"]
    other = f"{unique_name}-other.events"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(t, 2, 1) for t in [*mine, other]])
        assert delete_run_topics(kafka_bootstrap, f"{unique_name}-run") == sorted(mine)
        left = set(admin.list_topics())
        assert other in left and not left & set(mine)
        assert delete_run_topics(kafka_bootstrap, f"{unique_name}-run") == []
    finally:
        delete_run_topics(kafka_bootstrap, unique_name)
        admin.close()
