"""Shared fixtures: one real Kafka broker per test session, unique names per test.

Broker choice: ``KAFKA_BOOTSTRAP_SERVERS`` (an existing cluster) → testcontainers'
``KafkaContainer`` when a Docker engine answers → the project's local jar broker
(``docker/kafka/kafka.sh``). Under ``CI=true`` the kafka tier fails, never skips, without one.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _no_broker(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"kafka tier: no broker could be had under CI: {reason}", pytrace=False)
    pytest.skip(f"kafka tier: no broker: {reason}")


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _local_broker() -> Iterator[str]:
    from stream.dev.localrun import BrokerError, start_local_broker, stop_local_broker

    try:
        address, started = start_local_broker()
    except BrokerError as exc:
        _no_broker(str(exc))
    try:
        yield address
    finally:
        if started:
            stop_local_broker()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real broker for the whole session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
    elif _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.0.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        yield from _local_broker()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run: ``<test>-<uuid8>``, safe for topics and groups."""
    test = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_name(unique_name: str) -> str:
    return f"t.{unique_name}"


@pytest.fixture
def group_id(unique_name: str) -> str:
    return f"g.{unique_name}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Doctests (modules and README) are pure: they belong to the unit tier."""
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.unit)
