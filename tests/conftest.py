"""Shared fixtures: one real Kafka broker per test session, unique names per test, and
factories (``make_settings``, ``make_worker``, ``make_producer``, ``make_consumer``) that give a
test its own topics, group, state dir, worker and clients, and clean them up at teardown.

Broker choice: ``KAFKA_BOOTSTRAP_SERVERS`` (an existing cluster) → testcontainers'
``KafkaContainer`` when a Docker engine answers → the project's local jar broker
(``docker/kafka/kafka.sh``). Under ``CI=true`` the kafka tier fails, never skips, without one.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kafka import KafkaConsumer

    from stream.clients import Producer
    from stream.dev.localrun import WorkerProcess
    from stream.settings import Settings

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


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> Callable[..., tuple[dict[str, str], Settings]]:
    """``make(**variables)``: a worker environment of its own (topics, group, state dir, web
    port; ``variables`` on top) and its settings, with the topics created. The first call of a
    test is named ``unique_name``, later ones ``unique_name-2``, ``-3``..."""
    from stream.dev.localrun import worker_env
    from stream.settings import Settings
    from stream.topics import ensure_topics

    calls = itertools.count(1)

    def make(**variables: str) -> tuple[dict[str, str], Settings]:
        n = next(calls)
        name = unique_name if n == 1 else f"{unique_name}-{n}"
        env = worker_env(kafka_bootstrap, name, tmp_path / ("state" if n == 1 else f"state-{n}"))
        env.update(variables)
        settings = Settings.from_env(env)
        ensure_topics(settings)
        return env, settings

    return make


def _made_and_cleaned(
    build: Callable[..., Any], clean: Callable[[Any], None]
) -> Iterator[Callable[..., Any]]:
    """Yield a function that builds things with ``build``; ``clean`` each of them afterwards."""
    made: list = []

    def make(*args: Any, **options: Any) -> Any:
        made.append(build(*args, **options))
        return made[-1]

    yield make
    for thing in made:
        clean(thing)


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``make(env, log="worker.log")``: a worker process (not started: ``with`` it or
    ``.start()`` it), logging under ``tmp_path`` and stopped at teardown."""
    from stream.dev.localrun import WorkerProcess

    def build(env: dict[str, str], log: str = "worker.log", **options: Any) -> WorkerProcess:
        return WorkerProcess(env, tmp_path / log, **options)

    yield from _made_and_cleaned(build, WorkerProcess.stop)


@pytest.fixture
def make_producer() -> Iterator[Callable[..., Producer]]:
    """``make(settings)``: an event producer on the settings' events topic, closed at
    teardown."""
    from stream.clients import Producer

    yield from _made_and_cleaned(Producer, Producer.close)


@pytest.fixture
def make_consumer() -> Iterator[Callable[..., KafkaConsumer]]:
    """``make(settings, timeout_s=1.0, ...)``: a consumer of the settings' snapshot topic
    outside any group (``stream.clients.snapshot_consumer``), closed at teardown."""
    from stream.clients import snapshot_consumer

    yield from _made_and_cleaned(snapshot_consumer, lambda consumer: consumer.close())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


TIERS = ("unit", "agent", "kafka")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Doctests (modules and README) are pure: they belong to the unit tier. Every other test
    names its tier, or ``make test-unit`` / ``make test-kafka`` would silently skip it."""
    unmarked = []
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.unit)
        elif not any(item.get_closest_marker(tier) for tier in TIERS):
            unmarked.append(item.nodeid)
    if unmarked:
        raise pytest.UsageError(f"tests without a tier marker {TIERS}: {', '.join(unmarked)}")
