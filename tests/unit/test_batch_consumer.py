"""The batch consumer's wait for records: no second lost when a recovery resumes the streams."""

import asyncio
import threading
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


class Record:
    def __init__(self, offset: int):
        self.offset, self.key, self.value, self.headers = offset, b"u", b"", []


def records(first: int, last: int) -> list[Record]:
    return [Record(o) for o in range(first, last + 1)]


class Broker:
    """The consumer thread's side, as the broker would answer: committed offsets, and the
    fetch positions that ``unread`` moves (only back, as ``unread_positions`` does)."""

    def __init__(self, committed: dict, positions: dict):
        self.committed, self.positions, self.lookups = committed, positions, []

    async def committed_offsets(self, tps):
        self.lookups.append(set(tps))
        return {tp: self.committed.get(tp) for tp in tps}

    async def unread(self, offsets):
        for tp, offset in offsets.items():
            self.positions[tp] = min(self.positions[tp], offset)

    def highwater(self, tp):
        return 10_000


class Sink:
    def __init__(self):
        self.applied: list[int] = []

    async def handle_records(self, batches):
        self.applied += [r.offset for recs in batches.values() for r in recs]

    async def after_records(self):
        pass


@pytest.fixture
def delivering(consumer):
    """The consumer with a recording sink on the events topic, its partition 0 active, its
    group's committed offset 100 and its fetch position at 160."""
    sink, broker = Sink(), Broker({EVENTS: 100}, {EVENTS: 160})
    consumer.register_batch_topic(EVENTS.topic, sink)
    consumer._thread = broker
    consumer.resume_partitions({EVENTS})
    return consumer, sink, broker


def deliver(consumer, recs, active):
    asyncio.run(consumer._deliver({EVENTS: recs}, active))


def test_the_first_records_of_an_assignment_wait_for_the_committed_offset(delivering):
    consumer, sink, broker = delivering
    deliver(consumer, records(100, 159), {EVENTS})
    assert sink.applied == [] and broker.lookups == [{EVENTS}]
    assert broker.positions[EVENTS] == 100  # unread: fetched again
    deliver(consumer, records(100, 159), {EVENTS})
    assert sink.applied == list(range(100, 160)) and broker.lookups == [{EVENTS}]


def test_records_of_a_paused_partition_are_unread_not_dropped(delivering):
    consumer, sink, broker = delivering
    consumer.next_offsets.learn(EVENTS, 100)
    deliver(consumer, records(100, 159), set())  # paused (a recovery): not applied now
    assert sink.applied == [] and broker.positions[EVENTS] == 100
    deliver(consumer, records(100, 119), {EVENTS})
    assert sink.applied == list(range(100, 120))


def test_a_fetch_past_the_next_offset_is_read_again_and_applied_records_are_not(delivering):
    consumer, sink, broker = delivering
    consumer.next_offsets.learn(EVENTS, 100)
    deliver(consumer, records(158, 159), {EVENTS})  # 100-157 skipped by the fetch position
    assert sink.applied == [] and broker.positions[EVENTS] == 100
    deliver(consumer, records(100, 129), {EVENTS})
    deliver(consumer, records(120, 139), {EVENTS})  # a seek back to an older offset
    assert sink.applied == list(range(100, 140))


def test_the_consumer_service_runs_in_the_workers_own_loop():
    # No thread of its own: what Faust asks of "the consumer thread" runs in the caller's
    # loop and thread, awaited or not (a plain function's answer too).
    async def scenario():
        app, _ = create_app(Settings(bootstrap="127.0.0.1:1", app_id="one-loop"))
        service = app.consumer._new_consumer_thread()
        assert service.thread_loop is asyncio.get_running_loop()  # Faust's: a loop of its own
        seen = []

        async def where(tag):
            seen.append((tag, threading.get_ident(), asyncio.get_running_loop()))
            return tag

        answers = [await service.call_thread(where, "call"), await service.call_thread(len, "ab")]
        await service.cast_thread(where, "cast")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return service, asyncio.get_running_loop(), answers, seen

    service, loop, answers, seen = asyncio.run(scenario())
    assert service.parent_loop is loop
    assert answers == ["call", 2]
    assert service._method_queue is None  # no queue between the loops, none created
    assert seen == [(tag, threading.get_ident(), loop) for tag in ("call", "cast")]
