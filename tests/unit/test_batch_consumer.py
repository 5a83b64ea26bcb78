"""The batch consumer's wait for records: no second lost when a recovery resumes the streams."""

import asyncio
import time

import pytest
from faust.types import TP

from stream.app import create_app
from stream.settings import Settings

pytestmark = pytest.mark.unit

EVENTS = TP("interest.events", 0)


@pytest.fixture
def consumer():
    """A worker's consumer, not started: no partition active, as between a recovery's
    pausing of the changelogs and its resuming of the streams."""
    app, _ = create_app(Settings(bootstrap="127.0.0.1:1", app_id="wait"))
    consumer = app.consumer
    consumer._active_partitions = set()
    return consumer


def test_a_wait_with_no_active_partition_ends_when_one_is_resumed(consumer):
    async def resume_soon():
        await asyncio.sleep(0.05)
        consumer.resume_partitions({EVENTS})

    async def scenario():
        resumer = asyncio.ensure_future(resume_soon())
        started = time.monotonic()
        records, active = await consumer._wait_next_records(30.0)
        await resumer
        return records, active, time.monotonic() - started

    records, active, waited = asyncio.run(scenario())
    assert records == {} and active == {EVENTS}
    assert waited < 10.0  # not the timeout: Faust's own slept it out


def test_a_wait_with_no_active_partition_ends_at_its_timeout(consumer):
    records, active = asyncio.run(consumer._wait_next_records(0.05))
    assert records == {} and active == set()


def test_a_wait_with_active_partitions_reads_them(consumer):
    consumer.resume_partitions({EVENTS})
    asked = []

    async def getmany(active_partitions, timeout):
        asked.append((set(active_partitions), timeout))
        return {EVENTS: ["record"]}

    consumer._getmany = getmany
    records, active = asyncio.run(consumer._wait_next_records(0.1))
    assert records == {EVENTS: ["record"]} and active == {EVENTS}
    assert asked == [({EVENTS}, 0.1)]
